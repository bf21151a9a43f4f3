/*
 * The ck_ht that four peers share (ck-raw, ck-nosync, mutex, rwlock):
 * CK_HT_MODE_BYTESTRING, slots {packed state word, id}. The same table and
 * slots under four kinds of synchronisation, so that only the
 * synchronisation differs; each peer is in its own file.
 */
#ifndef BENCH_CKMAP_H
#define BENCH_CKMAP_H

#include <pthread.h>

#include <ck_epoch.h>
#include <ck_ht.h>

#include "ck_records.h"
#include "loops.h"

struct ck_slot {
    _Atomic uint64_t state;
    ck_epoch_entry_t epoch_entry; /* ck-raw: the deferred free after removal */
    uint16_t len;
    char id[];
};

struct ckmap {
    /* Read by every lookup: one cache line (ck_ht_t 40 bytes, then the
     * records' ck_epoch_t 24 bytes), which writers leave alone unless the
     * table itself changes. */
    ck_ht_t ht;
    struct ck_records records; /* ck-raw's epoch and its per-thread records */
    /* Writer side from the next line on, so that taking a lock or counting
     * bytes does not take the readers' line away from them. */
    _Alignas(64) pthread_mutex_t writer_lock; /* ck-raw: ck_ht's one writer */
    pthread_mutex_t lock;                     /* the mutex peer's lock */
    pthread_rwlock_t rwlock;                  /* the rwlock peer's lock */
    _Atomic size_t table_bytes;               /* relaxed: statistics, read after joins */
    _Atomic size_t slot_bytes;
};

/* The store all four peers name. */
extern const struct bench_store ckm_store;

/* ck_ht allocates through struct ck_malloc, which has no context argument:
 * a writer names the map and its epoch record (NULL: free at once, for the
 * lock-based peers) with this before any ck_ht call that may allocate. */
void ckm_writer_context(struct ckmap *m, ck_epoch_record_t *defer);

static inline struct ck_slot *ckm_find(struct ckmap *m, const char *id, size_t len)
{
    ck_ht_hash_t h;
    ck_ht_entry_t e;
    ck_ht_hash(&h, &m->ht, id, (uint16_t)len);
    ck_ht_entry_key_set(&e, id, (uint16_t)len);
    return ck_ht_get_spmc(&m->ht, h, &e) ? ck_ht_entry_value(&e) : NULL;
}

/* Inserts a new bound slot; the caller holds the peer's writer lock and has
 * set the writer context. Returns the slot already there, if any. */
struct ck_slot *ckm_insert_locked(struct ckmap *m, const char *id, size_t len, uint16_t port);

/* Removes id's slot from the table; the caller frees it when it is safe. */
struct ck_slot *ckm_remove_locked(struct ckmap *m, const char *id, size_t len);

static inline bool ckm_bound_port(uint64_t w, uint16_t *port)
{
    if (bst_status(w) != BST_BOUND)
        return false;
    *port = (uint16_t)w;
    return true;
}

#endif
