/*
 * Private structures shared by the library's source files.
 *
 * Layout of a registry (doc/ARCHITECTURE.md walks through it):
 *
 *   reg->table ──► struct table { ck_ht_t, hash keys }
 *                        │
 *                        ▼
 *                  ck_ht entries {key, len, hash, value}
 *                                   │          │
 *                                   ▼          ▼
 *                        struct slot { state word, pins, id bytes }
 *
 * The key pointer of each ck_ht entry points at slot->id and the value at
 * the slot, so a lookup touches the bucket and then one slot. Slots are
 * never removed from a live table (that would leave tombstones, which make
 * ck_ht_get_spmc() start over): untrack flips the state word, and
 * compaction builds a fresh table without the untracked slots and swaps it
 * in. Internal functions with external linkage are named portreg__*.
 */
#ifndef PORTREG_INTERNAL_H
#define PORTREG_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ck_ht.h>
#include <ck_malloc.h>

#include "epoch.h"
#include "hash.h"
#include "os/os.h"
#include "portreg.h"
#include "probe.h"
#include "state.h"

/* One backend. Allocated with its id; freed only after a grace period. */
struct slot {
    _Atomic uint64_t state; /* see state.h */
    /* Open handles. Raised only under the writer lock, lowered anywhere:
     * compaction, which holds the lock, never sees a stale zero. */
    _Atomic uint64_t pins;
    /* Set by the rebuild that had to keep this untracked slot (counted in
     * books.stuck); cleared, and the count lowered, once the slot becomes
     * droppable or tracked. */
    _Atomic bool kept;
    uint8_t id_len;
    char id[]; /* not NUL-terminated; ck_ht's key points here */
};

/* A hash table and the secret keys of its hash. ck_ht's "seed" argument
 * carries the address of key (see table.c). */
struct table {
    ck_ht_t ht;
    struct hash_key key;
    /* Lookups read ht's map inline (probe.h) rather than through
     * ck_ht_get_spmc(): the build and the running libck allow it. */
    bool inline_read;
};

/* Statistics and compaction triggers; books.h owns every update. */
struct books {
    /* Signed: the updates that follow two CASes on one slot may land in
     * either order, so a counter can dip below zero for a moment. */
    _Atomic intptr_t tracked;
    _Atomic intptr_t dead; /* slots in the table whose state is UNTRACKED */
    _Atomic intptr_t slots;
    _Atomic uint64_t changes;
    _Atomic size_t slot_bytes;     /* slots allocated and not yet freed */
    _Atomic size_t table_bytes;    /* ck_ht maps allocated and not yet freed */
    _Atomic size_t table_capacity; /* buckets of the current table's map */
    _Atomic uint64_t compactions;
    _Atomic uint64_t reseeds;
    _Atomic size_t probe_max; /* of the current table, after the last insert */
    /* Writer lock: untracked slots the last rebuild had to keep (someone
     * waits on them or holds a handle); they do not count toward the next
     * compaction trigger. */
    _Atomic intptr_t stuck;
    /* Slots the last rebuild left in the table (0 before the first). */
    _Atomic intptr_t slots_after_rebuild;
};

/* Fields are grouped by who writes them, one cache line per group, so
 * lookups never share a line with the counters every change updates. */
struct portreg {
    /* Read by every call: the table (written by rebuilds) and the epoch
     * domain's reader part. */
    _Alignas(64) _Atomic(struct table *) table;
    struct epoch_domain epoch;

    /* Updated by every applied change (lock-free writers). */
    _Alignas(64) struct books books;
    /* portreg_eventfd()'s notifier, both fds packed (wait.c), or
     * NOTIFIER_NONE until the first call. */
    _Atomic uint64_t notifier;
#define NOTIFIER_NONE UINT64_MAX

    /* Writer side: guarded by the lock unless atomic. */
    _Alignas(64) struct portreg_os_lock writer;
    uint32_t version_floor; /* highest version any dropped slot had */
    size_t max_ids;         /* 0: no limit */
    uint64_t seed;          /* the next table's seed comes from it */
    bool seed_fixed;        /* the caller chose it: reseeds stay reproducible */
    size_t reseed_after;    /* no reseed before the table holds this many slots */
    size_t full_refusals;   /* inserts refused at max_ids since the last rebuild */
    /* Buckets of the current table's map when the allocator refused the
     * sparse floor's larger map (table.c); 0: not refused. Inserts ask
     * again once the map has grown, or the next table does. */
    size_t sparse_refused_at;
    /* Non-zero: the probe maximum above which inserts reseed. Only tests
     * set it: ids that defeat the keyed hash cannot be built without the
     * keys, so they lower the bar to reach the reseed path on demand. */
    size_t reseed_limit_for_tests;
    bool inline_read;     /* its tables read inline (portreg__probe_inline_ok()) */
    struct ck_malloc ckm; /* ck_ht's allocator hooks (table.c) */
    portreg_alloc_fn alloc;
    portreg_free_fn free;
    void *alloc_ctx;
    void *raw; /* what the allocator returned for this struct */
    size_t raw_size;
};

#include "alloc.h" /* allocation through the registry's hooks */

/* The current table. Acquire: pairs with the release in table_publish()
 * (table.c), so the new table's fields are visible before we use them. */
static inline struct table *table_current(struct portreg *reg)
{
    return atomic_load_explicit(&reg->table, memory_order_acquire);
}

/* probe.c: table_find() through ck_ht_get_spmc(), for tables that do
 * not read inline. */
PORTREG_HIDDEN struct slot *portreg__table_find_ck(struct table *t, uint64_t h, const char *id,
                                                   size_t id_len);

/* The slot for id in t, or NULL. Call inside a read section (or under the
 * writer lock). Wait-free: t never holds tombstones. */
static PROBE_INLINE struct slot *table_find(struct table *t, const char *id, size_t id_len)
{
    uint64_t h = id_hash(id, id_len, &t->key);
    if (PORTREG_INLINE_PROBE && LIKELY(t->inline_read))
        return (struct slot *)probe_get(&t->ht, h, id, id_len);
    return portreg__table_find_ck(t, h, id, id_len);
}

static inline bool id_valid(const char *id, size_t id_len)
{
    return id != NULL && id_len > 0 && id_len <= PORTREG_ID_MAX;
}

/* probe.c: whether this process's libck may be read inline; checks once
 * (again after a check that ran out of memory). */
PORTREG_HIDDEN bool portreg__probe_inline_ok(void);
/* Tests only: makes the check see a broken layout or a wrong result. */
#define PORTREG_PROBE_FAULT_LAYOUT 1
#define PORTREG_PROBE_FAULT_RESULT 2
extern _Atomic int portreg__probe_fault_for_tests PORTREG_HIDDEN;

/* table.c: the writer side. */
PORTREG_HIDDEN void portreg__writer_lock(struct portreg *reg);
PORTREG_HIDDEN void portreg__writer_unlock(struct portreg *reg);
PORTREG_HIDDEN struct table *portreg__table_new(struct portreg *reg, size_t capacity,
                                                uint64_t seed);
PORTREG_HIDDEN void portreg__table_free_now(struct portreg *reg, struct table *t);
/* portreg_create(): makes t the registry's first table. */
PORTREG_HIDDEN void portreg__table_install(struct portreg *reg, struct table *t);
/* Inserts a slot for id, which the current table lacks, in the state op
 * gives an untracked id (op NULL: an untracked placeholder), with the
 * caller counted as its first waiter if waiter is true. Writer lock held.
 * Returns 0, PORTREG_ENOMEM or PORTREG_EFULL; *word is the word the slot
 * starts with. */
PORTREG_HIDDEN int portreg__table_insert(struct portreg *reg, const char *id, size_t id_len,
                                         const struct op *op, bool waiter, struct slot **out,
                                         uint64_t *word);
/* The slot for id in the current table, inserting an untracked
 * placeholder if there is none. Writer lock held. Returns 0 when the slot
 * was there, or a negative code. With waiter, a placeholder it inserts
 * counts the caller as a waiter from the instant it is published (lock-free
 * writers can change it before the caller runs again): then it returns 1
 * and *born is the word the slot was published with. */
PORTREG_HIDDEN int portreg__table_hold(struct portreg *reg, const char *id, size_t id_len,
                                       bool waiter, struct slot **out, uint64_t *born);
/* The writer lock, giving up at deadline (CLOCK_MONOTONIC ns; -1: never).
 * False if the deadline passed first. */
PORTREG_HIDDEN bool portreg__writer_lock_until(struct portreg *reg, int64_t deadline);
/* s lost its last waiter or pin, or was tracked: if it was counted as
 * kept (books.stuck), it no longer is. */
PORTREG_HIDDEN void portreg__slot_released(struct portreg *reg, struct slot *s);
/* s is untracked and someone holds it (pin or waiter): count it as kept,
 * so it does not look droppable to the compaction trigger. */
PORTREG_HIDDEN void portreg__slot_held(struct portreg *reg, struct slot *s);
/* After an untrack: compacts if due, unless the writer lock is busy. */
PORTREG_HIDDEN void portreg__table_compact_if_due(struct portreg *reg);
/* Rebuilds the table with fresh keys now, as abnormal probing does. For
 * tests: ids that defeat the keyed hash cannot be built without its keys. */
PORTREG_HIDDEN void portreg__table_reseed(struct portreg *reg);
/* Destroy: frees the table and every slot, checking for open handles. */
PORTREG_HIDDEN void portreg__table_destroy(struct portreg *reg);

/* wait.c: wakes the sleepers on s and signals the notifier. */
PORTREG_HIDDEN void portreg__notify_change(struct portreg *reg, struct slot *s, uint64_t old);
/* wait.c: closes portreg_eventfd()'s notifier, if it was made (destroy). */
PORTREG_HIDDEN void portreg__notifier_close(struct portreg *reg);
/* Sleeps on a slot the caller keeps alive (a handle, or a waiter count it
 * holds); see wait.c. */
PORTREG_HIDDEN int portreg__slot_wait(struct slot *s, uint32_t seen_version, int64_t timeout_ns,
                                      portreg_state_t *state);

/* error.c: records err for portreg_last_errno(); returns PORTREG_ESYSTEM. */
PORTREG_HIDDEN int portreg__system_error(int err);

#include "books.h"

#endif
