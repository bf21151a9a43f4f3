/*
 * Four peers on one ck_ht (CK_HT_MODE_BYTESTRING) of slots
 * {packed state word, id}: the same table and slots under four kinds of
 * synchronisation, so that only the synchronisation differs.
 *
 *   ck-raw     ck_epoch section around ck_ht_get_spmc, state changes by CAS,
 *              inserts and removals serialised by a mutex (ck_ht is
 *              single-writer), removed slots and old tables freed through
 *              ck_epoch_call: the building blocks of portreg, no wrapper.
 *   ck-nosync  ck_ht_get_spmc alone, no epoch section; only ever runs with
 *              no writer: the floor.
 *   mutex      one pthread_mutex_t around every operation.
 *   rwlock     one pthread_rwlock_t (default attributes): shared for
 *              lookups, exclusive for writes.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ck_epoch.h>
#include <ck_ht.h>

#include "loops.h"

struct ck_slot {
    _Atomic uint64_t state;
    ck_epoch_entry_t epoch_entry; /* ck-raw: the deferred free after removal */
    uint16_t len;
    char id[];
};

/* ck_ht allocates through struct ck_malloc, which has no context argument:
 * a writer names the map and its epoch record (NULL: free at once, for the
 * lock-based peers) in these before any ck_ht call that may allocate. */
struct ckmap;
static _Thread_local struct ckmap *tl_map;
static _Thread_local ck_epoch_record_t *tl_defer;

struct rec_box {
    ck_epoch_record_t rec; /* first: a recycled record is its box */
    struct rec_box *next;
};

struct ckmap {
    /* Read by every lookup: one cache line (40 + 24 bytes), which writers
     * leave alone unless the table itself changes. */
    ck_ht_t ht;
    ck_epoch_t epoch;
    /* Writer side from the next line on, so that taking a lock or counting
     * bytes does not take the readers' line away from them. */
    _Alignas(64) pthread_mutex_t writer_lock; /* ck-raw: ck_ht's one writer */
    pthread_mutex_t lock;                     /* the mutex peer's lock */
    pthread_rwlock_t rwlock;                  /* the rwlock peer's lock */
    struct rec_box *boxes;                    /* every epoch record, freed by destroy */
    _Atomic size_t table_bytes;               /* relaxed: statistics, read after joins */
    _Atomic size_t slot_bytes;
};

/* A table block with room for its deferred free in front. */
struct ck_block {
    ck_epoch_entry_t epoch_entry;
    size_t size;
    _Alignas(16) unsigned char data[];
};

static void *ckm_malloc(size_t size)
{
    struct ck_block *b = malloc(sizeof *b + size);
    if (b == NULL)
        return NULL;
    b->size = size;
    atomic_fetch_add_explicit(&tl_map->table_bytes, size, memory_order_relaxed);
    return b->data;
}

static void ckm_block_free(ck_epoch_entry_t *e)
{
    free((char *)e - offsetof(struct ck_block, epoch_entry));
}

static void ckm_free(void *p, size_t size, bool defer)
{
    (void)size;
    if (p == NULL)
        return;
    struct ck_block *b = (struct ck_block *)((char *)p - offsetof(struct ck_block, data));
    atomic_fetch_sub_explicit(&tl_map->table_bytes, b->size, memory_order_relaxed);
    /* defer: readers may still probe the old table after a grow */
    if (defer && tl_defer != NULL)
        ck_epoch_call(tl_defer, &b->epoch_entry, ckm_block_free);
    else
        free(b);
}

static void *ckm_realloc(void *p, size_t old, size_t size, bool defer)
{
    void *n = ckm_malloc(size);
    if (n != NULL && p != NULL) {
        memcpy(n, p, old < size ? old : size);
        ckm_free(p, old, defer);
    }
    return n;
}

static struct ck_malloc ckm_allocator = {ckm_malloc, ckm_realloc, ckm_free};

static void *ckm_create(size_t capacity)
{
    struct ckmap *m = aligned_alloc(_Alignof(struct ckmap), sizeof *m);
    if (m == NULL)
        return NULL;
    memset(m, 0, sizeof *m);
    ck_epoch_init(&m->epoch);
    pthread_mutex_init(&m->writer_lock, NULL);
    pthread_mutex_init(&m->lock, NULL);
    pthread_rwlock_init(&m->rwlock, NULL);
    tl_map = m;
    tl_defer = NULL;
    if (!ck_ht_init(&m->ht, CK_HT_MODE_BYTESTRING, NULL, &ckm_allocator,
                    capacity < 16 ? 16 : capacity, BENCH_SEED)) {
        free(m);
        return NULL;
    }
    return m;
}

static void ckm_destroy(void *inst)
{
    struct ckmap *m = inst;
    ck_ht_iterator_t it = CK_HT_ITERATOR_INITIALIZER;
    ck_ht_entry_t *e;
    while (ck_ht_next(&m->ht, &it, &e))
        free(ck_ht_entry_value(e));
    tl_map = m;
    tl_defer = NULL;
    ck_ht_destroy(&m->ht);
    while (m->boxes != NULL) {
        struct rec_box *b = m->boxes;
        m->boxes = b->next;
        free(b);
    }
    pthread_mutex_destroy(&m->writer_lock);
    pthread_mutex_destroy(&m->lock);
    pthread_rwlock_destroy(&m->rwlock);
    free(m);
}

static size_t ckm_bytes(void *inst)
{
    struct ckmap *m = inst;
    return atomic_load_explicit(&m->table_bytes, memory_order_relaxed) +
           atomic_load_explicit(&m->slot_bytes, memory_order_relaxed);
}

static inline struct ck_slot *ckm_find(struct ckmap *m, const char *id, size_t len)
{
    ck_ht_hash_t h;
    ck_ht_entry_t e;
    ck_ht_hash(&h, &m->ht, id, (uint16_t)len);
    ck_ht_entry_key_set(&e, id, (uint16_t)len);
    return ck_ht_get_spmc(&m->ht, h, &e) ? ck_ht_entry_value(&e) : NULL;
}

/* Inserts a new bound slot; the caller holds the peer's writer lock and has
 * set tl_map / tl_defer. Returns the slot already there, if any. */
static struct ck_slot *ckm_insert_locked(struct ckmap *m, const char *id, size_t len, uint16_t port)
{
    struct ck_slot *s = ckm_find(m, id, len);
    if (s != NULL)
        return s;
    s = malloc(sizeof *s + len);
    if (s == NULL)
        abort();
    s->len = (uint16_t)len;
    memcpy(s->id, id, len);
    /* release: readers acquire-load the word of a slot they found */
    atomic_store_explicit(&s->state, bst_pack(BST_BOUND, port, 1), memory_order_release);
    ck_ht_hash_t h;
    ck_ht_entry_t e;
    ck_ht_hash(&h, &m->ht, s->id, (uint16_t)len);
    ck_ht_entry_set(&e, h, s->id, (uint16_t)len, s);
    if (!ck_ht_put_spmc(&m->ht, h, &e))
        abort(); /* absent above and we are the only writer: only ENOMEM */
    atomic_fetch_add_explicit(&m->slot_bytes, sizeof *s + len, memory_order_relaxed);
    return NULL;
}

/* Removes id's slot from the table; the caller frees it when it is safe. */
static struct ck_slot *ckm_remove_locked(struct ckmap *m, const char *id, size_t len)
{
    ck_ht_hash_t h;
    ck_ht_entry_t e;
    ck_ht_hash(&h, &m->ht, id, (uint16_t)len);
    ck_ht_entry_key_set(&e, id, (uint16_t)len);
    if (!ck_ht_remove_spmc(&m->ht, h, &e))
        return NULL;
    struct ck_slot *s = ck_ht_entry_value(&e);
    atomic_fetch_sub_explicit(&m->slot_bytes, sizeof *s + s->len, memory_order_relaxed);
    return s;
}

static inline bool bound_port(uint64_t w, uint16_t *port)
{
    if (bst_status(w) != BST_BOUND)
        return false;
    *port = (uint16_t)w;
    return true;
}

/* ---- ck-raw ---- */

static void *raw_enter(void *inst)
{
    struct ckmap *m = inst;
    ck_epoch_record_t *rec = ck_epoch_recycle(&m->epoch, NULL);
    if (rec == NULL) {
        struct rec_box *b = aligned_alloc(CK_MD_CACHELINE, sizeof *b);
        if (b == NULL)
            abort();
        memset(b, 0, sizeof *b);
        pthread_mutex_lock(&m->writer_lock);
        b->next = m->boxes;
        m->boxes = b;
        pthread_mutex_unlock(&m->writer_lock);
        rec = &b->rec;
        ck_epoch_register(&m->epoch, rec, NULL);
    }
    return rec;
}

static void raw_leave(void *inst, void *tls)
{
    (void)inst;
    ck_epoch_record_t *rec = tls;
    /* Run this thread's deferred frees before its record is recycled. */
    if (rec->n_pending > 0)
        ck_epoch_barrier(rec);
    ck_epoch_unregister(rec);
}

static inline bool raw_lookup(void *inst, void *tls, const char *id, size_t len, uint16_t *port)
{
    ck_epoch_record_t *rec = tls;
    ck_epoch_begin(rec, NULL);
    struct ck_slot *s = ckm_find(inst, id, len);
    /* acquire: pairs with the release store / CAS that wrote the word */
    uint64_t w = s != NULL ? atomic_load_explicit(&s->state, memory_order_acquire) : 0;
    ck_epoch_end(rec, NULL);
    return bound_port(w, port);
}

static void raw_insert_slow(struct ckmap *m, ck_epoch_record_t *rec, const char *id, size_t len,
                            uint16_t port)
{
    pthread_mutex_lock(&m->writer_lock);
    tl_map = m;
    tl_defer = rec;
    struct ck_slot *s = ckm_insert_locked(m, id, len, port);
    if (s != NULL) /* another writer got there first */
        bst_cas_apply(&s->state, BST_REGISTER, port);
    pthread_mutex_unlock(&m->writer_lock);
    /* a grow deferred the old table: free it once readers have moved on */
    if (rec->n_pending > 0)
        ck_epoch_poll(rec);
}

static inline void raw_change(void *inst, void *tls, const char *id, size_t len, enum bst_op op,
                              uint16_t port)
{
    ck_epoch_record_t *rec = tls;
    ck_epoch_begin(rec, NULL);
    struct ck_slot *s = ckm_find(inst, id, len);
    if (s != NULL)
        bst_cas_apply(&s->state, op, port);
    ck_epoch_end(rec, NULL);
    if (s == NULL && op == BST_REGISTER)
        raw_insert_slow(inst, rec, id, len, port);
}

static int raw_insert(void *inst, void *tls, const char *id, size_t len, uint16_t port)
{
    raw_change(inst, tls, id, len, BST_REGISTER, port);
    return 0;
}

static void raw_slot_free(ck_epoch_entry_t *e)
{
    free((char *)e - offsetof(struct ck_slot, epoch_entry));
}

static void raw_remove(void *inst, void *tls, const char *id, size_t len)
{
    struct ckmap *m = inst;
    ck_epoch_record_t *rec = tls;
    pthread_mutex_lock(&m->writer_lock);
    tl_map = m;
    tl_defer = rec;
    struct ck_slot *s = ckm_remove_locked(m, id, len);
    pthread_mutex_unlock(&m->writer_lock);
    if (s != NULL)
        ck_epoch_call(rec, &s->epoch_entry, raw_slot_free);
    if (rec->n_pending >= 1024)
        ck_epoch_poll(rec);
}

static void raw_read(struct bench_thread *t)
{
    bench_read_loop(t, raw_lookup, bench_no_quiesce);
}

static void raw_write(struct bench_thread *t)
{
    bench_write_loop(t, raw_change, bench_no_quiesce);
}

/* ---- ck-nosync ---- */

static void *none_enter(void *inst)
{
    (void)inst;
    return NULL;
}

static void none_leave(void *inst, void *tls)
{
    (void)inst;
    (void)tls;
}

static inline bool nosync_lookup(void *inst, void *tls, const char *id, size_t len, uint16_t *port)
{
    (void)tls;
    struct ck_slot *s = ckm_find(inst, id, len);
    uint64_t w = s != NULL ? atomic_load_explicit(&s->state, memory_order_relaxed) : 0;
    return bound_port(w, port);
}

static void nosync_read(struct bench_thread *t)
{
    bench_read_loop(t, nosync_lookup, bench_no_quiesce);
}

/* ---- mutex and rwlock: every access under the lock, so plain (relaxed)
 * accesses to the word and immediate frees are enough ---- */

static inline void locked_change(struct ckmap *m, const char *id, size_t len, enum bst_op op,
                                 uint16_t port)
{
    struct ck_slot *s = ckm_find(m, id, len);
    if (s != NULL) {
        uint64_t w = atomic_load_explicit(&s->state, memory_order_relaxed);
        atomic_store_explicit(&s->state, bst_apply(w, op, port), memory_order_relaxed);
    } else if (op == BST_REGISTER) {
        tl_map = m;
        tl_defer = NULL;
        ckm_insert_locked(m, id, len, port);
    }
}

static inline bool mutex_lookup(void *inst, void *tls, const char *id, size_t len, uint16_t *port)
{
    (void)tls;
    struct ckmap *m = inst;
    pthread_mutex_lock(&m->lock);
    struct ck_slot *s = ckm_find(m, id, len);
    uint64_t w = s != NULL ? atomic_load_explicit(&s->state, memory_order_relaxed) : 0;
    pthread_mutex_unlock(&m->lock);
    return bound_port(w, port);
}

static inline void mutex_change(void *inst, void *tls, const char *id, size_t len, enum bst_op op,
                                uint16_t port)
{
    (void)tls;
    struct ckmap *m = inst;
    pthread_mutex_lock(&m->lock);
    locked_change(m, id, len, op, port);
    pthread_mutex_unlock(&m->lock);
}

static int mutex_insert(void *inst, void *tls, const char *id, size_t len, uint16_t port)
{
    mutex_change(inst, tls, id, len, BST_REGISTER, port);
    return 0;
}

static void mutex_remove(void *inst, void *tls, const char *id, size_t len)
{
    (void)tls;
    struct ckmap *m = inst;
    pthread_mutex_lock(&m->lock);
    tl_map = m;
    tl_defer = NULL;
    free(ckm_remove_locked(m, id, len));
    pthread_mutex_unlock(&m->lock);
}

static void mutex_read(struct bench_thread *t)
{
    bench_read_loop(t, mutex_lookup, bench_no_quiesce);
}

static void mutex_write(struct bench_thread *t)
{
    bench_write_loop(t, mutex_change, bench_no_quiesce);
}

static inline bool rw_lookup(void *inst, void *tls, const char *id, size_t len, uint16_t *port)
{
    (void)tls;
    struct ckmap *m = inst;
    pthread_rwlock_rdlock(&m->rwlock);
    struct ck_slot *s = ckm_find(m, id, len);
    uint64_t w = s != NULL ? atomic_load_explicit(&s->state, memory_order_relaxed) : 0;
    pthread_rwlock_unlock(&m->rwlock);
    return bound_port(w, port);
}

static inline void rw_change(void *inst, void *tls, const char *id, size_t len, enum bst_op op,
                             uint16_t port)
{
    (void)tls;
    struct ckmap *m = inst;
    pthread_rwlock_wrlock(&m->rwlock);
    locked_change(m, id, len, op, port);
    pthread_rwlock_unlock(&m->rwlock);
}

static int rw_insert(void *inst, void *tls, const char *id, size_t len, uint16_t port)
{
    rw_change(inst, tls, id, len, BST_REGISTER, port);
    return 0;
}

static void rw_remove(void *inst, void *tls, const char *id, size_t len)
{
    (void)tls;
    struct ckmap *m = inst;
    pthread_rwlock_wrlock(&m->rwlock);
    tl_map = m;
    tl_defer = NULL;
    free(ckm_remove_locked(m, id, len));
    pthread_rwlock_unlock(&m->rwlock);
}

static void rw_read(struct bench_thread *t)
{
    bench_read_loop(t, rw_lookup, bench_no_quiesce);
}

static void rw_write(struct bench_thread *t)
{
    bench_write_loop(t, rw_change, bench_no_quiesce);
}

static const struct bench_store ckm_store = {"ck_ht", ckm_create, ckm_destroy, ckm_bytes};

const struct bench_impl bench_impl_ck_raw = {
    .name = "ck-raw",
    .store = &ckm_store,
    .workloads = WL_ALL,
    .thread_enter = raw_enter,
    .thread_leave = raw_leave,
    .read_loop = raw_read,
    .write_loop = raw_write,
    .lookup = raw_lookup,
    .insert = raw_insert,
    .remove = raw_remove,
};

const struct bench_impl bench_impl_ck_nosync = {
    .name = "ck-nosync",
    .store = &ckm_store,
    .workloads = WL_READ_ONLY,
    .thread_enter = none_enter,
    .thread_leave = none_leave,
    .read_loop = nosync_read,
    .lookup = nosync_lookup,
};

const struct bench_impl bench_impl_mutex = {
    .name = "mutex",
    .store = &ckm_store,
    .workloads = WL_ALL,
    .thread_enter = none_enter,
    .thread_leave = none_leave,
    .read_loop = mutex_read,
    .write_loop = mutex_write,
    .lookup = mutex_lookup,
    .insert = mutex_insert,
    .remove = mutex_remove,
};

const struct bench_impl bench_impl_rwlock = {
    .name = "rwlock",
    .store = &ckm_store,
    .workloads = WL_ALL,
    .thread_enter = none_enter,
    .thread_leave = none_leave,
    .read_loop = rw_read,
    .write_loop = rw_write,
    .lookup = rw_lookup,
    .insert = rw_insert,
    .remove = rw_remove,
};
