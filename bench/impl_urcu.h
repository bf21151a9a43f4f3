/*
 * liburcu's cds_lfht with one RCU flavour, instantiated by impl_urcu_memb.c
 * and impl_urcu_qsbr.c (a flavour's header maps names, so one per file).
 *
 * Before including, define URCU_FL(x) to the flavour's prefix
 * (urcu_memb_##x), URCU_QSBR to 1 for the qsbr flavour (else 0) and
 * include the flavour's header (<urcu/urcu-memb.h> ...).
 *
 * A node is {lfht node, packed state word, rcu_head, id}; state changes are
 * CASes on the word inside a read-side section, as in portreg. The "repl"
 * variant (memb only) instead registers by building a new node and
 * cds_lfht_replace()-ing the old one, freed with call_rcu: urcu's idiomatic
 * update, the reference for portreg's register of an existing id.
 *
 * Every thread that touches a table registers with the flavour
 * (thread_enter); qsbr threads announce a quiescent state every batch and
 * go offline before blocking.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <urcu/rculfhash.h>

#include "loops.h"

struct ur_node {
    struct cds_lfht_node lf;
    _Atomic uint64_t state;
    struct rcu_head rcu;
    uint16_t len;
    char id[];
};

struct ur_map {
    struct cds_lfht *ht; /* read by every lookup */
    /* relaxed: statistics, read after joins. On a line of its own: writers
     * bump it on every insert and replace. */
    _Alignas(64) _Atomic size_t node_bytes;
};

struct ur_key {
    const char *p;
    size_t len;
};

static int ur_match(struct cds_lfht_node *node, const void *key)
{
    const struct ur_node *n = caa_container_of(node, struct ur_node, lf);
    const struct ur_key *k = key;
    return n->len == k->len && memcmp(n->id, k->p, k->len) == 0;
}

static inline unsigned long ur_hash(const char *id, size_t len)
{
    return (unsigned long)bench_hash(id, len, BENCH_SEED);
}

static void *ur_create(size_t capacity)
{
    struct ur_map *m = aligned_alloc(_Alignof(struct ur_map), sizeof *m);
    if (m == NULL)
        return NULL;
    memset(m, 0, sizeof *m);
    unsigned long buckets = 1;
    while (buckets < capacity)
        buckets <<= 1;
    /* Sized for the ids up front, as the other peers are: resizes of a
     * lfht run in a worker thread and would still be going on when the
     * first window starts. AUTO_RESIZE handles insert-heavy growth. */
    m->ht = cds_lfht_new_flavor(buckets, 1, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
                                &URCU_FL(flavor), NULL);
    if (m->ht == NULL) {
        free(m);
        return NULL;
    }
    return m;
}

static void ur_node_free(struct rcu_head *head)
{
    free(caa_container_of(head, struct ur_node, rcu));
}

static void ur_destroy(void *inst)
{
    struct ur_map *m = inst;
    struct cds_lfht_iter it;
    struct ur_node *n;
    URCU_FL(register_thread)();
    URCU_FL(read_lock)();
    cds_lfht_for_each_entry(m->ht, &it, n, lf)
    {
        if (cds_lfht_del(m->ht, &n->lf) == 0)
            URCU_FL(call_rcu)(&n->rcu, ur_node_free);
    }
    URCU_FL(read_unlock)();
    URCU_FL(thread_offline)(); /* qsbr: the barrier waits for grace periods */
    URCU_FL(barrier)();
    URCU_FL(thread_online)();
    URCU_FL(unregister_thread)();
    if (cds_lfht_destroy(m->ht, NULL) != 0)
        fprintf(stderr, "cds_lfht_destroy failed\n");
    free(m);
}

static size_t ur_bytes(void *inst)
{
    /* Nodes and ids only: the bucket table is internal to liburcu; the
     * mallinfo2 column has the whole cost. */
    struct ur_map *m = inst;
    return atomic_load_explicit(&m->node_bytes, memory_order_relaxed);
}

static void *ur_enter(void *inst)
{
    (void)inst;
    URCU_FL(register_thread)();
    return NULL;
}

static void ur_leave(void *inst, void *tls)
{
    (void)inst;
    (void)tls;
    URCU_FL(unregister_thread)();
}

static void ur_offline(void *tls)
{
    (void)tls;
    URCU_FL(thread_offline)();
}

static void ur_online(void *tls)
{
    (void)tls;
    URCU_FL(thread_online)();
}

static inline void ur_quiesce(void *tls)
{
    (void)tls;
#if URCU_QSBR
    URCU_FL(quiescent_state)();
#endif
}

/* Call inside a read-side section. */
static inline struct ur_node *ur_find(struct ur_map *m, const char *id, size_t len,
                                      struct cds_lfht_iter *it)
{
    struct ur_key k = {id, len};
    cds_lfht_lookup(m->ht, ur_hash(id, len), ur_match, &k, it);
    struct cds_lfht_node *node = cds_lfht_iter_get_node(it);
    return node != NULL ? caa_container_of(node, struct ur_node, lf) : NULL;
}

static inline bool ur_lookup(void *inst, void *tls, const char *id, size_t len, uint16_t *port)
{
    (void)tls;
    struct cds_lfht_iter it;
    URCU_FL(read_lock)();
    struct ur_node *n = ur_find(inst, id, len, &it);
    /* acquire: pairs with the release store / CAS that wrote the word */
    uint64_t w = n != NULL ? atomic_load_explicit(&n->state, memory_order_acquire) : 0;
    URCU_FL(read_unlock)();
    if (bst_status(w) != BST_BOUND)
        return false;
    *port = (uint16_t)w;
    return true;
}

static struct ur_node *ur_node_new(struct ur_map *m, const char *id, size_t len, uint64_t state)
{
    struct ur_node *n = malloc(sizeof *n + len);
    if (n == NULL)
        abort();
    cds_lfht_node_init(&n->lf);
    n->len = (uint16_t)len;
    memcpy(n->id, id, len);
    /* release: the node is published by cds_lfht_add/replace, whose
     * barriers also order this; kept explicit for the word's readers */
    atomic_store_explicit(&n->state, state, memory_order_release);
    atomic_fetch_add_explicit(&m->node_bytes, sizeof *n + len, memory_order_relaxed);
    return n;
}

static void ur_node_retire(struct ur_map *m, struct ur_node *n)
{
    atomic_fetch_sub_explicit(&m->node_bytes, sizeof *n + n->len, memory_order_relaxed);
    URCU_FL(call_rcu)(&n->rcu, ur_node_free);
}

/* Inserts a bound node unless the id is there; then changes that one. */
static void ur_insert_or_change(struct ur_map *m, const char *id, size_t len, uint16_t port)
{
    struct ur_node *n = ur_node_new(m, id, len, bst_pack(BST_BOUND, port, 1));
    struct ur_key k = {id, len};
    URCU_FL(read_lock)();
    struct cds_lfht_node *got = cds_lfht_add_unique(m->ht, ur_hash(id, len), ur_match, &k, &n->lf);
    if (got != &n->lf)
        bst_cas_apply(&caa_container_of(got, struct ur_node, lf)->state, BST_REGISTER, port);
    URCU_FL(read_unlock)();
    if (got != &n->lf) {
        atomic_fetch_sub_explicit(&m->node_bytes, sizeof *n + len, memory_order_relaxed);
        free(n); /* never published */
    }
}

static inline void ur_change(void *inst, void *tls, const char *id, size_t len, enum bst_op op,
                             uint16_t port)
{
    (void)tls;
    struct cds_lfht_iter it;
    URCU_FL(read_lock)();
    struct ur_node *n = ur_find(inst, id, len, &it);
    if (n != NULL)
        bst_cas_apply(&n->state, op, port);
    URCU_FL(read_unlock)();
    if (n == NULL && op == BST_REGISTER)
        ur_insert_or_change(inst, id, len, port);
}

/* register by replacement: a new node with the new state, old one retired */
static inline void ur_change_repl(void *inst, void *tls, const char *id, size_t len, enum bst_op op,
                                  uint16_t port)
{
    struct ur_map *m = inst;
    if (op != BST_REGISTER) {
        ur_change(inst, tls, id, len, op, port);
        return;
    }
    struct cds_lfht_iter it;
    struct ur_key k = {id, len};
    URCU_FL(read_lock)();
    struct ur_node *old = ur_find(m, id, len, &it);
    struct ur_node *n = NULL;
    if (old != NULL) {
        uint64_t w = atomic_load_explicit(&old->state, memory_order_acquire);
        n = ur_node_new(m, id, len, bst_apply(w, BST_REGISTER, port));
        if (cds_lfht_replace(m->ht, &it, ur_hash(id, len), ur_match, &k, &n->lf) != 0) {
            /* removed meanwhile (not in this benchmark: one writer) */
            atomic_fetch_sub_explicit(&m->node_bytes, sizeof *n + len, memory_order_relaxed);
            free(n);
            old = n = NULL;
        }
    }
    URCU_FL(read_unlock)();
    if (old != NULL)
        ur_node_retire(m, old);
    else
        ur_insert_or_change(m, id, len, port);
}

static int ur_insert(void *inst, void *tls, const char *id, size_t len, uint16_t port)
{
    ur_change(inst, tls, id, len, BST_REGISTER, port);
    return 0;
}

static void ur_remove(void *inst, void *tls, const char *id, size_t len)
{
    (void)tls;
    struct ur_map *m = inst;
    struct cds_lfht_iter it;
    URCU_FL(read_lock)();
    struct ur_node *n = ur_find(m, id, len, &it);
    if (n != NULL && cds_lfht_del(m->ht, &n->lf) != 0)
        n = NULL;
    URCU_FL(read_unlock)();
    if (n != NULL)
        ur_node_retire(m, n);
}

static void ur_read(struct bench_thread *t)
{
    bench_read_loop(t, ur_lookup, ur_quiesce);
}

static void ur_write(struct bench_thread *t)
{
    bench_write_loop(t, ur_change, ur_quiesce);
}

/* The impl table both flavours export; only the names differ. */
#define UR_DEFINE_IMPL(var, label)                                                                 \
    static const struct bench_store var##_store = {label, ur_create, ur_destroy, ur_bytes};        \
    const struct bench_impl var = {                                                                \
        .name = label,                                                                             \
        .store = &var##_store,                                                                     \
        .workloads = WL_ALL,                                                                       \
        .thread_enter = ur_enter,                                                                  \
        .thread_leave = ur_leave,                                                                  \
        .thread_offline = ur_offline,                                                              \
        .thread_online = ur_online,                                                                \
        .read_loop = ur_read,                                                                      \
        .write_loop = ur_write,                                                                    \
        .lookup = ur_lookup,                                                                       \
        .insert = ur_insert,                                                                       \
        .remove = ur_remove,                                                                       \
    }
