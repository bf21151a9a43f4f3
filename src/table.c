/*
 * The writer side of the table: inserting new ids, growing, compacting, and
 * deferring frees until readers are done.
 *
 * ck_ht allows one writer at a time, so every ck_ht write (put, grow) runs
 * under reg->writer. Changes of state of a slot already in the table never
 * take this lock (see ops.c).
 *
 * Nothing is ever removed from a live table. Removal would leave a
 * tombstone, and reusing a tombstone bumps the map's deletion counter, which
 * makes every concurrent ck_ht_get_spmc() start over: lookups would no
 * longer be wait-free (and 0.7.1 has two bugs on that path). Instead an
 * untracked slot stays in place, and once untracked slots make up half of
 * the table, compact_locked() builds a fresh table without them and swaps
 * it in with one pointer store. Readers still on the old table finish there.
 */
#include <linux/membarrier.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#define COMPACT_MIN_DEAD 64
#define POLL_INTERVAL    32

/* ck_ht's allocator hooks have no context argument, so the registry that a
 * ck_ht call works for is named here for the duration of the call. Only the
 * writer lock's holder sets it. */
static _Thread_local struct portreg *hook_reg;

/* Every map ck_ht allocates carries this header, so free() can find its
 * registry and defer itself through ck_epoch without allocating. */
struct map_header {
    ck_epoch_entry_t entry;
    struct portreg *reg;
    size_t size;
    _Alignas(16) char data[];
};

static void *ckm_malloc(size_t size)
{
    struct portreg *reg = hook_reg;
    struct map_header *h = mem_alloc(reg, sizeof *h + size);
    if (h == NULL)
        return NULL;
    h->reg = reg;
    h->size = size;
    atomic_fetch_add_explicit(&reg->table_bytes, size, memory_order_relaxed);
    /* A map of n buckets takes 32n bytes plus a header smaller than 4
     * buckets' worth, so this rounds back to n. */
    size_t cap = 1;
    while (cap * 2 <= size / sizeof(ck_ht_entry_t))
        cap *= 2;
    atomic_store_explicit(&reg->table_capacity, cap, memory_order_relaxed);
    /* TSan sees malloc as a write to the map; ck_ht publishes the map
     * with uninstrumented stores. Paired with the acquire in iter.c, the
     * only place our own code reads a map's buckets. */
    TSAN_RELEASE(h->data);
    return h->data;
}

static void map_free_now(struct map_header *h)
{
    struct portreg *reg = h->reg;
    atomic_fetch_sub_explicit(&reg->table_bytes, h->size, memory_order_relaxed);
    mem_free(reg, h, sizeof *h + h->size);
}

static void map_free_deferred(ck_epoch_entry_t *e)
{
    struct map_header *h = (struct map_header *)(void *)e;
    TSAN_ACQUIRE(&h->reg->tsan_sync); /* pairs with reader_end() */
    map_free_now(h);
}

/* defer is true when ck_ht replaced the map (grow): readers may still be
 * probing it, so it waits for a grace period. */
static void ckm_free(void *p, size_t size, bool defer)
{
    struct map_header *h = (struct map_header *)((char *)p - offsetof(struct map_header, data));
    (void)size;
    if (defer)
        ck_epoch_call(&h->reg->writer_rec->rec, &h->entry, map_free_deferred);
    else
        map_free_now(h);
}

/* ck_ht's hash hook: the same function table_find() inlines. */
static void hash_callback(ck_ht_hash_t *h, const void *key, size_t len, uint64_t seed)
{
    h->value = id_hash(key, len, seed);
}

/* Registers the process for expedited private membarriers, once; false
 * where the kernel (or a seccomp filter) does not offer them. */
bool membarrier_setup(void)
{
    static _Atomic int state; /* 0 unknown, 1 available, -1 not */
    int s = atomic_load_explicit(&state, memory_order_acquire);
    if (s == 0) {
        long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
        bool ok = cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
                  syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
        s = ok ? 1 : -1;
        atomic_store_explicit(&state, s, memory_order_release);
    }
    return s > 0;
}

/* Before scanning epoch records: see reader_begin(). */
void epoch_scan_barrier(struct portreg *reg)
{
    if (reg->membarrier)
        syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
}

void writer_lock(struct portreg *reg)
{
    pthread_mutex_lock(&reg->writer);
    hook_reg = reg;
}

void writer_unlock(struct portreg *reg)
{
    /* Run the deferred frees whose grace period is over. With membarrier
     * every poll interrupts the cores running our threads, so poll once in
     * POLL_INTERVAL unlocks that leave something pending: the backlog stays
     * bounded and a stream of inserts does not pay for a barrier each. */
    if (reg->writer_rec->rec.n_pending > 0 &&
        (!reg->membarrier || ++reg->unlocks_since_poll >= POLL_INTERVAL)) {
        reg->unlocks_since_poll = 0;
        epoch_scan_barrier(reg);
        ck_epoch_poll(&reg->writer_rec->rec);
    }
    hook_reg = NULL;
    pthread_mutex_unlock(&reg->writer);
}

ck_ht_t *table_new(struct portreg *reg, size_t capacity)
{
    reg->ckm.malloc = ckm_malloc;
    reg->ckm.free = ckm_free;
    ck_ht_t *ht = mem_alloc(reg, sizeof *ht);
    if (ht == NULL)
        return NULL;
    if (capacity > UINT32_MAX / 2)
        capacity = UINT32_MAX / 2;
    /* ck_ht keeps a load factor of one half: room for capacity ids. */
    if (!ck_ht_init(ht, CK_HT_MODE_BYTESTRING, hash_callback, &reg->ckm, capacity * 2, reg->seed)) {
        mem_free(reg, ht, sizeof *ht);
        return NULL;
    }
    return ht;
}

/* For tables no reader can reach (never published, or at destroy). */
void table_free_now(struct portreg *reg, ck_ht_t *ht)
{
    ck_ht_destroy(ht);
    mem_free(reg, ht, sizeof *ht);
}

static size_t slot_size(size_t id_len)
{
    return sizeof(struct slot) + id_len;
}

void slot_free(struct portreg *reg, struct slot *s)
{
    size_t size = slot_size(s->id_len);
    atomic_fetch_sub_explicit(&reg->slot_bytes, size, memory_order_relaxed);
    mem_free(reg, s, size);
}

/* Inserts a new slot for id with the given state into the current table.
 * Caller holds the writer lock and has checked that id is absent. */
int table_insert(struct portreg *reg, const char *id, size_t id_len, uint64_t state,
                 struct slot **out)
{
    ck_ht_t *ht = atomic_load_explicit(&reg->table, memory_order_relaxed); /* ours: lock */
    size_t size = slot_size(id_len);
    struct slot *s = mem_alloc(reg, size);
    if (s == NULL)
        return PORTREG_ENOMEM;
    s->id_len = (uint8_t)id_len;
    memcpy(s->id, id, id_len);
    /* release: the slot's contents before its word; readers acquire it. */
    atomic_store_explicit(&s->state, state, memory_order_release);
    TSAN_RELEASE(s); /* ck_ht_put_spmc() publishes s; table_find() acquires */

    ck_ht_entry_t e;
    ck_ht_hash_t h;
    ck_ht_hash(&h, ht, s->id, (uint16_t)id_len);
    ck_ht_entry_set(&e, h, s->id, (uint16_t)id_len, s);
    /* put fails only if the table had to grow first and that allocation
     * failed; then nothing was published. A failure of the grow that put
     * attempts after inserting is ignored by ck_ht and retried next time. */
    if (!ck_ht_put_spmc(ht, h, &e)) {
        mem_free(reg, s, size);
        return PORTREG_ENOMEM;
    }
    atomic_fetch_add_explicit(&reg->slot_bytes, size, memory_order_relaxed);
    atomic_fetch_add_explicit(&reg->slots, 1, memory_order_relaxed);
    if (st_tracked(state))
        atomic_fetch_add_explicit(&reg->tracked, 1, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&reg->dead, 1, memory_order_relaxed);
    if (out != NULL)
        *out = s;
    return 0;
}

/* What compaction hands to ck_epoch: the old table and the slots it
 * dropped, freed together once no reader can hold them. */
struct graveyard {
    ck_epoch_entry_t entry;
    struct portreg *reg;
    ck_ht_t *old;
    size_t n, cap;
    struct slot *slots[];
};

static void graveyard_free(struct portreg *reg, struct graveyard *g)
{
    mem_free(reg, g, sizeof *g + g->cap * sizeof g->slots[0]);
}

static void graveyard_run(ck_epoch_entry_t *e)
{
    struct graveyard *g = (struct graveyard *)(void *)e;
    struct portreg *reg = g->reg;

    TSAN_ACQUIRE(&reg->tsan_sync); /* pairs with reader_end() */
    table_free_now(reg, g->old);
#ifndef PORTREG_PLANT_EARLY_FREE
    for (size_t i = 0; i < g->n; i++)
        slot_free(reg, g->slots[i]);
#endif
    graveyard_free(reg, g);
}

/* Rebuilds the table without its untracked slots. Caller holds the lock.
 * On allocation failure nothing changes (the untracked slots stay). */
static void compact_locked(struct portreg *reg)
{
    ck_ht_t *old = atomic_load_explicit(&reg->table, memory_order_relaxed); /* ours: lock */
    size_t total = (size_t)ck_ht_count(old);
    /* Only untracks (lock-free) add dead slots while we run; the ones we
     * counted here are the ones we have room to drop. */
    size_t cap = counter_read(&reg->dead);
    if (cap == 0 || cap > total)
        return;

    struct graveyard *g = mem_alloc(reg, sizeof *g + cap * sizeof g->slots[0]);
    if (g == NULL)
        return;
    g->reg = reg;
    g->old = old;
    g->n = 0;
    g->cap = cap;
    ck_ht_t *fresh = table_new(reg, total - cap + 1);
    if (fresh == NULL) {
        graveyard_free(reg, g);
        return;
    }

    uint32_t floor = reg->version_floor;
    ck_ht_iterator_t it = CK_HT_ITERATOR_INITIALIZER;
    ck_ht_entry_t *e;
    while (ck_ht_next(old, &it, &e)) {
        struct slot *s = ck_ht_entry_value(e);
        uint64_t w = atomic_load_explicit(&s->state, memory_order_acquire);
        /* Retire only an untracked slot nobody waits on. acq_rel: a writer
         * that loses the race to us sees RETIRED and retries under the
         * lock; one that wins keeps the slot alive and we carry it over. */
        if (g->n < g->cap && st_status(w) == PORTREG_UNTRACKED && st_waiters(w) == 0 &&
            atomic_compare_exchange_strong_explicit(&s->state, &w,
                                                    st_pack(ST_RETIRED, 0, st_version(w)),
                                                    memory_order_acq_rel, memory_order_acquire)) {
            g->slots[g->n++] = s;
            if (st_version(w) > floor)
                floor = st_version(w);
            continue;
        }
        ck_ht_entry_t ne;
        ck_ht_hash_t h;
        ck_ht_hash(&h, fresh, s->id, s->id_len);
        ck_ht_entry_set(&ne, h, s->id, s->id_len, s);
        if (!ck_ht_put_spmc(fresh, h, &ne))
            goto undo;
    }

    /* release: fresh's buckets before the pointer; pairs with the acquire
     * in table_current(). */
    atomic_store_explicit(&reg->table, fresh, memory_order_release);
    reg->version_floor = floor;
    atomic_fetch_sub_explicit(&reg->dead, (intptr_t)g->n, memory_order_relaxed);
    atomic_fetch_sub_explicit(&reg->slots, (intptr_t)g->n, memory_order_relaxed);
    atomic_fetch_add_explicit(&reg->compactions, 1, memory_order_relaxed);
#ifdef PORTREG_PLANT_EARLY_FREE
    /* Planted bug: free the dropped slots before readers are done. */
    for (size_t i = 0; i < g->n; i++)
        slot_free(reg, g->slots[i]);
#endif
    ck_epoch_call(&reg->writer_rec->rec, &g->entry, graveyard_run);
    return;

undo:
    /* Nobody changes a RETIRED word, and writers who saw it are waiting
     * for our lock: put the words back as they were. */
    for (size_t i = 0; i < g->n; i++) {
        uint64_t w = atomic_load_explicit(&g->slots[i]->state, memory_order_relaxed);
        atomic_store_explicit(&g->slots[i]->state, st_pack(PORTREG_UNTRACKED, 0, st_version(w)),
                              memory_order_release);
    }
    table_free_now(reg, fresh);
    graveyard_free(reg, g);
}

static bool compact_due(struct portreg *reg)
{
    size_t dead = counter_read(&reg->dead);
    size_t slots = counter_read(&reg->slots);
    return dead >= COMPACT_MIN_DEAD && dead * 2 >= slots;
}

/* Called after an untrack. trylock: an untrack never waits for the lock;
 * if another writer holds it, a later untrack checks again. */
void compact_if_due(struct portreg *reg)
{
    if (!compact_due(reg) || pthread_mutex_trylock(&reg->writer) != 0)
        return;
    hook_reg = reg;
    if (compact_due(reg))
        compact_locked(reg);
    writer_unlock(reg);
}
