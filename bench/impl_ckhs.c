/*
 * ck-hs: a reference for the lookup path, not one of the peers. ck_hs
 * (CK_HS_MODE_SPMC | CK_HS_MODE_OBJECT) holds pointers to the same slots
 * {state word, id}; the hash is the caller's (bench_hash, inlined) and the
 * id is compared in a callback. Lookups run in a ck_epoch section as in
 * ck-raw. It runs only in the read-only workloads: the question it answers
 * is what ck_ht's probe and MurmurHash cost next to ck_hs's (libck's own
 * source calls ck_ht superseded by ck_hs and ck_rhs).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <ck_epoch.h>
#include <ck_hs.h>

#include "ck_records.h"
#include "loops.h"

struct hs_slot {
    _Atomic uint64_t state;
    uint16_t len;
    char id[];
};

/* What a lookup passes to the compare callback. */
struct hs_probe {
    const char *id;
    size_t len;
};

struct hsmap {
    ck_hs_t hs;
    struct ck_records records;
    pthread_mutex_t lock;           /* fill; ck_hs is single-writer */
    size_t table_bytes, slot_bytes; /* under lock */
};

/* ck_malloc has no context: the filling thread names its map here. Nothing
 * reads a ck-hs table while it is filled, so frees need no deferral. */
static _Thread_local struct hsmap *tl_hs;

static void *hs_malloc(size_t size)
{
    tl_hs->table_bytes += size;
    return malloc(size);
}

static void hs_free(void *p, size_t size, bool defer)
{
    (void)defer;
    tl_hs->table_bytes -= size;
    free(p);
}

static struct ck_malloc hs_allocator = {.malloc = hs_malloc, .free = hs_free};

static unsigned long hs_hash_slot(const void *object, unsigned long seed)
{
    const struct hs_slot *s = object;
    return (unsigned long)bench_hash(s->id, s->len, seed);
}

static bool hs_compare(const void *stored, const void *probe)
{
    const struct hs_slot *s = stored;
    const struct hs_probe *p = probe;
    return s->len == p->len && memcmp(s->id, p->id, p->len) == 0;
}

static void *hs_create(size_t capacity)
{
    struct hsmap *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    ck_records_init(&m->records);
    pthread_mutex_init(&m->lock, NULL);
    tl_hs = m;
    if (!ck_hs_init(&m->hs, CK_HS_MODE_SPMC | CK_HS_MODE_OBJECT, hs_hash_slot, hs_compare,
                    &hs_allocator, capacity < 16 ? 16 : capacity, BENCH_SEED)) {
        free(m);
        return NULL;
    }
    return m;
}

static void hs_destroy(void *inst)
{
    struct hsmap *m = inst;
    ck_hs_iterator_t it;
    void *obj;
    ck_hs_iterator_init(&it);
    while (ck_hs_next(&m->hs, &it, &obj))
        free(obj);
    tl_hs = m;
    ck_hs_destroy(&m->hs);
    ck_records_destroy(&m->records);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static size_t hs_bytes(void *inst)
{
    struct hsmap *m = inst;
    return m->table_bytes + m->slot_bytes;
}

static void *hs_enter(void *inst)
{
    struct hsmap *m = inst;
    return ck_records_enter(&m->records);
}

static void hs_leave(void *inst, void *tls)
{
    (void)inst;
    ck_epoch_unregister(tls);
}

static inline bool hs_lookup(void *inst, void *tls, const char *id, size_t len, uint16_t *port)
{
    struct hsmap *m = inst;
    ck_epoch_record_t *rec = tls;
    struct hs_probe p = {id, len};
    ck_epoch_begin(rec, NULL);
    const struct hs_slot *s = ck_hs_get(&m->hs, (unsigned long)bench_hash(id, len, BENCH_SEED), &p);
    /* acquire: pairs with the release store that initialised the word */
    uint64_t w = s != NULL ? atomic_load_explicit(&s->state, memory_order_acquire) : 0;
    ck_epoch_end(rec, NULL);
    if (bst_status(w) != BST_BOUND)
        return false;
    *port = (uint16_t)w;
    return true;
}

static int hs_insert(void *inst, void *tls, const char *id, size_t len, uint16_t port)
{
    (void)tls;
    struct hsmap *m = inst;
    struct hs_slot *s = malloc(sizeof *s + len);
    if (s == NULL)
        return -1;
    s->len = (uint16_t)len;
    memcpy(s->id, id, len);
    atomic_store_explicit(&s->state, bst_pack(BST_BOUND, port, 1), memory_order_release);
    pthread_mutex_lock(&m->lock);
    tl_hs = m;
    bool ok = ck_hs_put_unique(&m->hs, (unsigned long)bench_hash(id, len, BENCH_SEED), s);
    if (ok)
        m->slot_bytes += sizeof *s + len;
    pthread_mutex_unlock(&m->lock);
    if (!ok)
        free(s);
    return ok ? 0 : -1;
}

static void hs_read(struct bench_thread *t)
{
    bench_read_loop(t, hs_lookup, bench_no_quiesce);
}

static const struct bench_store hs_store = {"ck_hs", hs_create, hs_destroy, hs_bytes};

const struct bench_impl bench_impl_ck_hs = {
    .name = "ck-hs",
    .store = &hs_store,
    .workloads = WL_READ_ONLY,
    .thread_enter = hs_enter,
    .thread_leave = hs_leave,
    .read_loop = hs_read,
    .lookup = hs_lookup,
    .insert = hs_insert,
};
