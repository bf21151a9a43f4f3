/* The ck_ht store of ckmap.h: allocator hooks, create, destroy, insert,
 * remove. */
#include <stdlib.h>
#include <string.h>

#include "ckmap.h"

_Static_assert(offsetof(struct ckmap, records.epoch) + sizeof(ck_epoch_t) <= 64,
               "what a lookup reads stays on the first cache line");

static _Thread_local struct ckmap *tl_map;
static _Thread_local ck_epoch_record_t *tl_defer;

void ckm_writer_context(struct ckmap *m, ck_epoch_record_t *defer)
{
    tl_map = m;
    tl_defer = defer;
}

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
    ck_records_init(&m->records);
    pthread_mutex_init(&m->writer_lock, NULL);
    pthread_mutex_init(&m->lock, NULL);
    pthread_rwlock_init(&m->rwlock, NULL);
    ckm_writer_context(m, NULL);
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
    ckm_writer_context(m, NULL);
    ck_ht_destroy(&m->ht);
    ck_records_destroy(&m->records);
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

struct ck_slot *ckm_insert_locked(struct ckmap *m, const char *id, size_t len, uint16_t port)
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

struct ck_slot *ckm_remove_locked(struct ckmap *m, const char *id, size_t len)
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

const struct bench_store ckm_store = {"ck_ht", ckm_create, ckm_destroy, ckm_bytes};
