/*
 * Private structures shared by the library's source files.
 *
 * Layout of a registry:
 *
 *   reg->table ──► ck_ht_t (bytestring keys) ──► entries {key, len, hash, value}
 *                                                           │         │
 *                                                           ▼         ▼
 *                                              struct slot { state word, id bytes }
 *
 * The key pointer of each ck_ht entry points at slot->id and the value at the
 * slot, so a lookup touches the bucket and then one slot. Slots are never
 * removed from a live table (that would leave tombstones, which make
 * ck_ht_get_spmc() start over): untrack flips the state word, and compaction
 * builds a fresh table without the untracked slots and swaps it in.
 */
#ifndef PORTREG_INTERNAL_H
#define PORTREG_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ck_epoch.h>
#include <ck_ht.h>
#include <ck_malloc.h>
#include <ck_pr.h>

#include "hash.h"
#include "portreg.h"
#include "state.h"

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer)
/* libck is not instrumented, so TSan cannot see the happens-before edges
 * inside ck_ht and ck_epoch; these restate them (see shared notes). */
#include <sanitizer/tsan_interface.h>
#define TSAN_RELEASE(addr) __tsan_release((void *)(addr))
#define TSAN_ACQUIRE(addr) __tsan_acquire((void *)(addr))
#else
#define TSAN_RELEASE(addr) ((void)(addr))
#define TSAN_ACQUIRE(addr) ((void)(addr))
#endif

#define PORTREG_HIDDEN __attribute__((visibility("hidden")))
#define LIKELY(x)      __builtin_expect(!!(x), 1)
#define UNLIKELY(x)    __builtin_expect(!!(x), 0)

/* One backend. Allocated with its id; freed only after a grace period. */
struct slot {
    _Atomic uint64_t state; /* see state.h */
    uint8_t id_len;
    char id[]; /* not NUL-terminated; ck_ht's key points here */
};

/* A thread's epoch record for one registry. */
struct reader {
    ck_epoch_record_t rec; /* first: ck_epoch hands us &rec back */
    void *raw;             /* what the allocator returned, for free */
    size_t raw_size;
};

/* Fields are grouped by who writes them, one cache line per group, so
 * lookups never share a line with the counters every change updates. */
struct portreg {
    /* Read by every call; written only by compaction (table) and by
     * portreg_eventfd() (efd, once). */
    _Alignas(64) _Atomic(ck_ht_t *) table;
    uint64_t gen;    /* unique per registry in this process: guards TLS caches */
    bool membarrier; /* readers skip the fence; see reader_begin() */
    _Atomic int efd; /* eventfd, -1 until portreg_eventfd() */
    pthread_key_t key;
    uint64_t seed;
    ck_epoch_t epoch; /* readers load epoch.epoch on entry */
    portreg_alloc_fn alloc;
    portreg_free_fn free;
    void *alloc_ctx;

    /* Updated by every applied change (lock-free writers), relaxed:
     * statistics and compaction triggers only. Signed: the updates that
     * follow two CASes on one slot may land in either order, so a counter
     * can dip below zero for a moment. */
    _Alignas(64) _Atomic intptr_t tracked;
    _Atomic intptr_t dead; /* slots in the table whose state is UNTRACKED */
    _Atomic uint64_t changes;

    /* Writer side: guarded by the lock unless atomic. */
    _Alignas(64) pthread_mutex_t writer;
    struct reader *writer_rec; /* defers frees; used only under the lock */
    uint32_t version_floor;    /* highest version any dropped slot had */
    unsigned unlocks_since_poll;
    struct ck_malloc ckm; /* ck_ht's allocator hooks (route to ours) */
    _Atomic intptr_t slots;
    _Atomic size_t slot_bytes;     /* live slots, ids included */
    _Atomic size_t table_bytes;    /* ck_ht maps allocated and not yet freed */
    _Atomic size_t table_capacity; /* buckets of the newest map */
    _Atomic uint64_t compactions;
    void *raw; /* what the allocator returned for this struct */
    size_t raw_size;

    /* TSan: the reclamation edge (epoch end -> deferred free) lives here. */
    char tsan_sync;
};

/* Allocation through the registry's hooks. */
PORTREG_HIDDEN void *mem_alloc(struct portreg *reg, size_t size);
PORTREG_HIDDEN void mem_free(struct portreg *reg, void *ptr, size_t size);

/* thread.c: the calling thread's record for reg, or NULL if it cannot be
 * allocated. */
PORTREG_HIDDEN struct reader *reader_get_slow(struct portreg *reg);
PORTREG_HIDDEN void reader_release(void *reader);
PORTREG_HIDDEN void readers_free_all(struct portreg *reg);
PORTREG_HIDDEN struct reader *reader_new(struct portreg *reg);

struct reader_cache {
    const struct portreg *reg;
    uint64_t gen;
    struct reader *r;
};
/* initial-exec: a plain %fs-relative load on the lookup path instead of a
 * __tls_get_addr() call. */
extern _Thread_local struct reader_cache portreg_tls_reader PORTREG_HIDDEN
    __attribute__((tls_model("initial-exec")));

static inline struct reader *reader_get(struct portreg *reg)
{
    struct reader_cache *c = &portreg_tls_reader;
    if (LIKELY(c->reg == reg && c->gen == reg->gen))
        return c->r;
    return reader_get_slow(reg);
}

/* Enters an epoch section. ck_epoch_begin() orders the record's stores
 * before the section's loads with an atomic exchange, about a third of a
 * lookup. With membarrier(2), the reclaimer pays instead: it makes every
 * running thread of the process execute a full barrier before it scans the
 * records (epoch_scan_barrier()), so a store still in a reader's store
 * buffer becomes visible to the scan, and a reader whose store was not yet
 * made has not loaded anything the scan is about to free. Same argument as
 * liburcu's memb flavour. Nested sections only count. */
static inline void reader_begin(struct portreg *reg, struct reader *r)
{
    ck_epoch_record_t *rec = &r->rec;

    if (UNLIKELY(!reg->membarrier)) {
        ck_epoch_begin(rec, NULL);
        return;
    }
    unsigned active = ck_pr_load_uint(&rec->active);
    if (active == 0) {
        ck_pr_store_uint(&rec->active, 1);
        ck_pr_store_uint(&rec->epoch, ck_pr_load_uint(&reg->epoch.epoch));
        /* compiler barrier: the section's loads stay after these stores
         * in program order; membarrier() supplies the CPU ordering. */
        atomic_signal_fence(memory_order_seq_cst);
    } else {
        ck_pr_store_uint(&rec->active, active + 1);
    }
}

static inline void reader_end(struct portreg *reg, struct reader *r)
{
    /* TSan: release before the section ends, acquired by deferred frees. */
    TSAN_RELEASE(&reg->tsan_sync);
    ck_epoch_end(&r->rec, NULL);
}

/* The current table. Acquire: pairs with the release in table_publish(),
 * so the new table's ck_ht_t fields are visible before we use them. */
static inline ck_ht_t *table_current(struct portreg *reg)
{
    return atomic_load_explicit(&reg->table, memory_order_acquire);
}

/* The slot for id in ht, or NULL. Call inside an epoch section (or under
 * the writer lock). Wait-free: ht never holds tombstones. */
static inline struct slot *table_find(ck_ht_t *ht, const char *id, size_t id_len)
{
    ck_ht_entry_t e;
    ck_ht_hash_t h;

    /* ht->seed: the seed this table was built with (our hash callback). */
    h.value = id_hash(id, id_len, ht->seed);
    ck_ht_entry_key_set(&e, id, (uint16_t)id_len);
    if (!ck_ht_get_spmc(ht, h, &e))
        return NULL;
    struct slot *s = ck_ht_entry_value(&e);
    TSAN_ACQUIRE(s); /* pairs with TSAN_RELEASE in table_insert() */
    return s;
}

/* A bookkeeping counter as a size, clamping the transient dips. */
static inline size_t counter_read(_Atomic intptr_t *c)
{
    intptr_t v = atomic_load_explicit(c, memory_order_relaxed);
    return v > 0 ? (size_t)v : 0;
}

static inline bool id_valid(const char *id, size_t id_len)
{
    return id != NULL && id_len > 0 && id_len <= PORTREG_ID_MAX;
}

/* table.c: the writer side. All take/assume the writer lock as named. */
PORTREG_HIDDEN void writer_lock(struct portreg *reg);
PORTREG_HIDDEN bool membarrier_setup(void);
PORTREG_HIDDEN void epoch_scan_barrier(struct portreg *reg);
PORTREG_HIDDEN void writer_unlock(struct portreg *reg);
PORTREG_HIDDEN ck_ht_t *table_new(struct portreg *reg, size_t capacity);
PORTREG_HIDDEN void table_free_now(struct portreg *reg, ck_ht_t *ht);
PORTREG_HIDDEN int table_insert(struct portreg *reg, const char *id, size_t id_len, uint64_t state,
                                struct slot **out);
PORTREG_HIDDEN void compact_if_due(struct portreg *reg);
PORTREG_HIDDEN void slot_free(struct portreg *reg, struct slot *s);

/* error.c: records err for portreg_last_errno(); returns PORTREG_ESYSTEM. */
PORTREG_HIDDEN int portreg__system_error(int err);

/* wait.c: wakes futex sleepers on s and signals the eventfd. */
PORTREG_HIDDEN void notify_change(struct portreg *reg, struct slot *s, uint64_t old);

#endif
