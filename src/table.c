/*
 * The table: finding and inserting slots, and rebuilding the table to
 * drop untracked ids (compaction) or to draw new hash keys (reseeding).
 *
 * ck_ht allows one writer at a time, so every ck_ht write (put, grow) runs
 * under reg->writer. Changes of state of a slot already in the table never
 * take this lock (ops.c).
 *
 * Nothing is ever removed from a live table. Removal would leave a
 * tombstone, and reusing a tombstone bumps the map's deletion counter,
 * which makes every concurrent ck_ht_get_spmc() start over: lookups would
 * no longer be wait-free (and libck 0.7.1 has two bugs on that path).
 * Instead an untracked slot stays in place, and rebuild() builds a fresh
 * table without the untracked slots nobody waits on or holds, and swaps it
 * in with one pointer store. Readers still on the old table finish there;
 * the old table and the dropped slots are freed after a grace period.
 *
 * Probe lengths. A lookup examines at most probe_max + 1 entries of the
 * current map (portreg_stats_t.probe_max: the longest probe any insert
 * into this map needed). libck grows a map before an insert would probe
 * more than 2 * max(64, buckets / 8) entries, which bounds probe_max.
 * Random ids keep it far lower (measured with the keyed hash: 8-10 at a
 * thousand ids, 12-13 at 100,000, 18-19 at a million): below log2 of the
 * bucket count. The reseed threshold, RESEED_BASE + RESEED_PER_DOUBLING *
 * log2(buckets) (36 at 1,024 buckets, 58 at two million), leaves about
 * three times that. An insert that leaves probe_max above it means the
 * ids collide far more than random ones do (the keys leaked, or the hash
 * met inputs it handles badly): the table is rebuilt with fresh keys.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Planted bug (stress/run-planted.sh): free dropped slots before readers
 * are done with them. */
#if defined(PORTREG_PLANT_EARLY_FREE)
#define PLANT_EARLY_FREE 1
#else
#define PLANT_EARLY_FREE 0
#endif
/* Planted bug: compaction ignores handles and retires a pinned slot. */
#if defined(PORTREG_PLANT_RETIRE_PINNED)
#define PLANT_RETIRE_PINNED 1
#else
#define PLANT_RETIRE_PINNED 0
#endif

/* An insert that finds the table at max_ids compacts first if at least
 * this fraction of the slots could go: O(FULL_COMPACT_DIV) per insert,
 * amortized, however a daemon churns ids at the limit. */
#define FULL_COMPACT_DIV 16

/* Reseed when probe_max exceeds RESEED_BASE + RESEED_PER_DOUBLING *
 * log2(buckets); after a reseed, not again before the table has grown by
 * half (so even ids that defeat every key cost O(1) amortized). */
#define RESEED_BASE         16
#define RESEED_PER_DOUBLING 2

/* Mid-sized maps are kept sparser than ck_ht's half full, so that most
 * lookups decide on the first entry they examine, a miss included: a map
 * of more than SMALL_BUCKETS and fewer than SPARSE_BUCKETS buckets grows
 * at a quarter full, and the map of a registry with more than SPARSE_LIVE
 * tracked ids gets at least SPARSE_MIN_BUCKETS (512 KiB of map: at 1,000
 * ids a sixteenth full, where a miss takes about 20% less time than at a
 * quarter). Larger maps keep ck_ht's half, for memory (96 bytes per entry
 * at 1M ids). Smaller ones keep it too, and the floor counts tracked ids,
 * not slots, because a small table under churn is rebuilt very often:
 * every rebuild defers its old map to the epoch, and a table of a few
 * hundred tracked ids fills up with as many untracked slots (and held
 * placeholders) between two rebuilds. The floor only saves time: when the
 * allocator refuses it, inserts ask again only once the map has grown, or
 * the next table does (reg->sparse_refused_at). */
#define SMALL_BUCKETS      ((size_t)1 << 10)
#define SPARSE_LIVE        ((size_t)512)
#define SPARSE_MIN_BUCKETS ((size_t)1 << 14)
#define SPARSE_BUCKETS     ((size_t)1 << 16)

/* The fewest buckets, at least at_least (a power of two), for ids
 * entries at ck_ht's half full. */
static size_t map_half_for(size_t ids, size_t at_least)
{
    size_t buckets = at_least;
    while (ids > buckets / 2)
        buckets *= 2;
    return buckets;
}

/* The same by the rule above, for a map whose registry has live tracked
 * ids (0: no floor). */
static size_t map_buckets_for(size_t ids, size_t live, size_t at_least)
{
    size_t buckets = map_half_for(ids, at_least);
    if (buckets > SMALL_BUCKETS) {
        while (ids > buckets / 4 && buckets < SPARSE_BUCKETS)
            buckets *= 2;
        if (live > SPARSE_LIVE && buckets < SPARSE_MIN_BUCKETS)
            buckets = SPARSE_MIN_BUCKETS;
    }
    return buckets;
}

/* ck_ht's allocator hooks have no context argument. Every ck_ht call that
 * may allocate runs through ht_init_for() or ht_put_for(), which name the
 * registry the hooks allocate for while the call runs. */
static _Thread_local struct portreg *ckm_owner;

/* Every map ck_ht allocates carries this header, so free() can find its
 * registry and defer itself without allocating. */
struct map_header {
    struct epoch_entry entry;
    struct portreg *reg;
    size_t size;
    _Alignas(16) char data[];
};

/* A large map is probed at random: on 4 KiB pages nearly every probe
 * also misses the TLB. Where the map comes from malloc (not a caller's
 * allocator, whose memory we do not manage), ask for transparent huge
 * pages on the 2 MiB-aligned part of it, before libck first writes it.
 * Only advice: where the kernel does not take it, nothing changes. */
#define MAP_HUGE_MIN ((size_t)4 << 20)
static void map_advise_huge(struct portreg *reg, void *p, size_t size)
{
    const uintptr_t huge = (uintptr_t)2 << 20;
    if (reg->alloc != NULL || size < MAP_HUGE_MIN)
        return;
    uintptr_t from = ((uintptr_t)p + huge - 1) & ~(huge - 1);
    uintptr_t to = ((uintptr_t)p + size) & ~(huge - 1);
    if (to > from)
        portreg__os_advise_huge_pages((void *)from, to - from);
}

static void *ckm_malloc(size_t size)
{
    struct portreg *reg = ckm_owner;
    struct map_header *h = portreg__mem_alloc(reg, sizeof *h + size);
    if (h == NULL)
        return NULL;
    h->reg = reg;
    h->size = size;
    map_advise_huge(reg, h, sizeof *h + size);
    books_map_allocated(reg, size);
    /* TSan sees malloc as a write to the map; ck_ht publishes the map
     * with uninstrumented stores. Paired with the acquire in iter.c, the
     * only place our own code reads a map's buckets. */
    TSAN_RELEASE(h->data);
    return h->data;
}

/* What ckm_malloc() returned is the data of one of our headers. */
static struct map_header *header_of(void *data)
{
    return (struct map_header *)((char *)data - offsetof(struct map_header, data));
}

/* The map a table uses now: ck_ht's map pointer is what ckm_malloc()
 * returned. Writer lock held. */
static struct map_header *map_of(struct table *t)
{
    return header_of(t->ht.map);
}

/* log2 of a map's bucket count. A map of n buckets takes 32n bytes plus a
 * header smaller than 4 buckets' worth, so this rounds back to n. */
static unsigned map_log2_buckets(const struct map_header *h)
{
    return 63u - (unsigned)__builtin_clzll((unsigned long long)(h->size / sizeof(ck_ht_entry_t)));
}

/* The buckets of t's current map. */
static size_t table_buckets(struct table *t)
{
    return (size_t)1 << map_log2_buckets(map_of(t));
}

static void map_free_now(struct map_header *h)
{
    books_map_freed(h->reg, h->size);
    portreg__mem_free(h->reg, h, sizeof *h + h->size);
}

static void map_free_deferred(struct epoch_entry *e)
{
    map_free_now((struct map_header *)(void *)e);
}

/* defer is true when ck_ht replaced the map (grow): readers may still be
 * probing it. */
static void ckm_free(void *p, size_t size, bool defer)
{
    struct map_header *h = header_of(p);
    (void)size;
    if (defer)
        portreg__epoch_defer(h->reg, &h->entry, map_free_deferred, h->size);
    else
        map_free_now(h);
}

/* ck_ht's hash hook. Its seed argument is the address of the table's
 * keys (portreg__table_new()); table_find() inlines the same function. */
static void hash_callback(ck_ht_hash_t *h, const void *key, size_t len, uint64_t seed)
{
    h->value = id_hash(key, len, (const struct hash_key *)(uintptr_t)seed);
}

static bool ht_init_for(struct portreg *reg, struct table *t, size_t buckets)
{
    ckm_owner = reg;
    bool ok = ck_ht_init(&t->ht, CK_HT_MODE_BYTESTRING, hash_callback, &reg->ckm, buckets,
                         (uint64_t)(uintptr_t)&t->key);
    ckm_owner = NULL;
    return ok;
}

/* The tracked ids the floor of map_buckets_for() counts for a table of
 * reg, with s (if not NULL), a slot the books do not count yet. Writer
 * lock held. */
static size_t sparse_live(struct portreg *reg, const struct slot *s)
{
    size_t tracked = books_read(&reg->books.tracked);
    if (s != NULL && st_tracked(atomic_load_explicit(&s->state, memory_order_relaxed)))
        tracked++;
    return tracked;
}

/* Puts s into t; s is new (not in the books yet) or carried over by a
 * rebuild. */
static bool ht_put_for(struct portreg *reg, struct table *t, struct slot *s, bool new_slot)
{
    ck_ht_entry_t e;
    ck_ht_hash_t h;

    h.value = id_hash(s->id, s->id_len, &t->key);
    ck_ht_entry_set(&e, h, s->id, s->id_len, s);
    ckm_owner = reg;
    /* A map kept sparser than libck's half (map_buckets_for()) grows
     * before the put, in one step to the size it needs with the new
     * entry, so that the put does not first grow it by libck's rule. If
     * the grows fail, the put goes on in the map there is (libck grows it
     * at half full). */
    size_t buckets = table_buckets(t);
    size_t ids = (size_t)ck_ht_count(&t->ht) + 1;
    /* After the allocator refused the floor's map for a map of this size,
     * no floor until the map has grown. */
    size_t live = buckets == reg->sparse_refused_at ? 0 : sparse_live(reg, new_slot ? s : NULL);
    size_t want = map_buckets_for(ids, live, buckets);
    if (want > buckets && !ck_ht_grow_spmc(&t->ht, want)) {
        /* Without the floor: a smaller map, which the allocator may have. */
        size_t smaller = map_buckets_for(ids, 0, buckets);
        if (smaller > buckets && smaller < want)
            ck_ht_grow_spmc(&t->ht, smaller);
        if (smaller < want)
            reg->sparse_refused_at = table_buckets(t);
    }
    /* put fails only if the map had to grow first and that allocation
     * failed; then nothing was published. A failed grow after inserting
     * is ignored by ck_ht and retried on a later put. */
    bool ok = ck_ht_put_spmc(&t->ht, h, &e);
    ckm_owner = NULL;
    return ok;
}

void portreg__writer_lock(struct portreg *reg)
{
    portreg__os_lock(&reg->writer);
}

bool portreg__writer_lock_until(struct portreg *reg, int64_t deadline)
{
    return portreg__os_lock_until(&reg->writer, deadline);
}

void portreg__writer_unlock(struct portreg *reg)
{
    portreg__os_unlock(&reg->writer);
    portreg__epoch_poll_if_due(reg);
}

/* A table with room for capacity ids, live of them tracked, hashing with
 * key. */
static struct table *table_make(struct portreg *reg, size_t capacity, size_t live,
                                const struct hash_key *key)
{
    struct table *t = portreg__mem_alloc(reg, sizeof *t);
    if (t == NULL)
        return NULL;
    t->key = *key;
    t->inline_read = reg->inline_read;
    if (capacity > UINT32_MAX / 2)
        capacity = UINT32_MAX / 2;
    /* The size the puts would grow the map to (ht_put_for()); if that much
     * memory is not to be had, the size without the floor, then ck_ht's
     * half full: a map's sparseness only saves time, and a rebuild that
     * fails leaves its untracked slots in place. */
    size_t sizes[3] = {map_buckets_for(capacity, live, 2), map_buckets_for(capacity, 0, 2),
                       map_half_for(capacity, 2)};
    size_t i = 0;
    while (!ht_init_for(reg, t, sizes[i])) {
        /* The sizes only shrink: on to the next smaller one. */
        size_t refused = sizes[i];
        while (i < 3 && sizes[i] == refused)
            i++;
        if (i == 3) {
            portreg__mem_free(reg, t, sizeof *t);
            return NULL;
        }
    }
    /* If the floor was refused, the puts into this table do not ask again
     * before its map grows. (Should a rebuild throw t away, the mark may
     * keep the old table's map of that size from asking; only speed
     * depends on it.) */
    reg->sparse_refused_at = sizes[i] < sizes[0] ? sizes[i] : 0;
    return t;
}

struct table *portreg__table_new(struct portreg *reg, size_t capacity, uint64_t seed)
{
    struct hash_key key;

    reg->ckm.malloc = ckm_malloc;
    reg->ckm.free = ckm_free;
    hash_key_init(&key, seed);
    return table_make(reg, capacity, capacity, &key);
}

void portreg__table_install(struct portreg *reg, struct table *t)
{
    books_table(reg, 0, table_buckets(t));
    /* Nobody else can see reg yet; the store still publishes the table. */
    atomic_store_explicit(&reg->table, t, memory_order_release);
}

/* For tables no reader can reach (never published, or past their grace
 * period, or at destroy). */
void portreg__table_free_now(struct portreg *reg, struct table *t)
{
    ck_ht_destroy(&t->ht);
    portreg__mem_free(reg, t, sizeof *t);
}

static size_t slot_size(size_t id_len)
{
    return sizeof(struct slot) + id_len;
}

static void slot_free(struct portreg *reg, struct slot *s)
{
    size_t size = slot_size(s->id_len);
    books_slot_freed(reg, size);
    portreg__mem_free(reg, s, size);
}

/* The current table, as its only writer sees it. */
static struct table *table_locked(struct portreg *reg)
{
    return atomic_load_explicit(&reg->table, memory_order_relaxed); /* ours: lock */
}

/* Records the current table's probe maximum; true if it is abnormal:
 * far above what random ids produce at any size (see the top of the
 * file), far below libck's own limit. */
static bool probe_max_abnormal(struct portreg *reg)
{
    struct table *t = table_locked(reg);
    struct ck_ht_stat st;
    ck_ht_stat(&t->ht, &st);
    unsigned log2 = map_log2_buckets(map_of(t));
    books_table(reg, (size_t)st.probe_maximum, (size_t)1 << log2);
    uint64_t limit = RESEED_BASE + RESEED_PER_DOUBLING * (uint64_t)log2;
    if (reg->reseed_limit_for_tests != 0)
        limit = reg->reseed_limit_for_tests;
    return st.probe_maximum > limit;
}

static uint64_t next_seed(struct portreg *reg)
{
    uint64_t seed = 0;
    if (reg->seed_fixed || !portreg__os_random(&seed, sizeof seed) || seed == 0)
        seed = hash_splitmix(&reg->seed);
    return seed;
}

/* What a rebuild hands to the epoch: the old table and the slots it
 * dropped, freed together once no reader can hold them. */
struct graveyard {
    struct epoch_entry entry;
    struct portreg *reg;
    struct table *old;
    size_t n, cap;
    struct slot *slots[];
};

static size_t graveyard_size(size_t cap)
{
    return sizeof(struct graveyard) + cap * sizeof(struct slot *);
}

static void graveyard_run(struct epoch_entry *e)
{
    struct graveyard *g = (struct graveyard *)(void *)e;
    struct portreg *reg = g->reg;

    portreg__table_free_now(reg, g->old);
    if (!PLANT_EARLY_FREE)
        for (size_t i = 0; i < g->n; i++)
            slot_free(reg, g->slots[i]);
    portreg__mem_free(reg, g, graveyard_size(g->cap));
}

/* A slot compaction may drop: untracked, nobody asleep on it, no handle. */
static bool slot_droppable(struct slot *s, uint64_t w)
{
    /* acquire: pairs with the release in portreg_handle_close(). Pins
     * only rise under the lock we hold, so a zero here stays zero. */
    uint64_t pins = atomic_load_explicit(&s->pins, memory_order_acquire);
    return st_status(w) == PORTREG_UNTRACKED && st_waiters(w) == 0 &&
           (pins == 0 || PLANT_RETIRE_PINNED);
}

/* After a rebuild: flags the untracked slots it kept (someone waits on
 * them or holds a handle) and returns how many. A pass of its own, after
 * the swap, because the copy loop may still be undone. They do not count toward
 * the next compaction until they are released (portreg__slot_released())
 * or tracked. */
static size_t mark_kept(struct table *t)
{
    ck_ht_iterator_t it = CK_HT_ITERATOR_INITIALIZER;
    ck_ht_entry_t *e;
    size_t kept = 0;

    while (ck_ht_next(&t->ht, &it, &e)) {
        struct slot *s = ck_ht_entry_value(e);
        uint64_t w = atomic_load_explicit(&s->state, memory_order_relaxed);
        bool held = !st_tracked(w) && !slot_droppable(s, w);
        atomic_store_explicit(&s->kept, held, memory_order_relaxed);
        kept += held;
    }
    return kept;
}

void portreg__slot_held(struct portreg *reg, struct slot *s)
{
    if (!atomic_load_explicit(&s->kept, memory_order_relaxed) &&
        !atomic_exchange_explicit(&s->kept, true, memory_order_relaxed))
        books_kept(reg);
}

void portreg__slot_released(struct portreg *reg, struct slot *s)
{
    if (atomic_load_explicit(&s->kept, memory_order_relaxed) &&
        atomic_exchange_explicit(&s->kept, false, memory_order_relaxed))
        books_unkept(reg);
}

/* Builds a fresh table holding every slot except the droppable ones and
 * swaps it in; reseed draws new hash keys. keep (may be NULL) is never
 * dropped: the slot an insert has just made, before its caller could pin
 * it or count itself on it. Writer lock held. On allocation failure
 * nothing changes. */
static void rebuild(struct portreg *reg, bool reseed, struct slot *keep)
{
    struct table *old = table_locked(reg);
    size_t total = (size_t)ck_ht_count(&old->ht);
    /* Only untracks (lock-free) add dead slots while we run; the ones
     * counted here are the ones we have room to drop. */
    size_t cap = books_read(&reg->books.dead);
    if (cap > total)
        cap = total;
    /* Size the new table for what will stay: the slots the last rebuild
     * had to keep are likely kept again. */
    size_t stuck_before = books_read(&reg->books.stuck);
    size_t drop_guess = cap > stuck_before ? cap - stuck_before : 0;

    struct graveyard *g = portreg__mem_alloc(reg, graveyard_size(cap));
    if (g == NULL)
        return;
    g->reg = reg;
    g->old = old;
    g->n = 0;
    g->cap = cap;
    /* A compaction keeps the keys; a reseed draws new ones. */
    struct table *fresh;
    /* + 1, as in the capacity: room for the insert that may follow. */
    size_t live = sparse_live(reg, NULL) + 1;
    if (reseed) {
        struct hash_key key;
        hash_key_init(&key, next_seed(reg));
        fresh = table_make(reg, total + 1, live, &key);
    } else {
        fresh = table_make(reg, total - drop_guess + 1, live, &old->key);
    }
    if (fresh == NULL) {
        portreg__mem_free(reg, g, graveyard_size(cap));
        return;
    }

    uint32_t floor = reg->version_floor;
    /* What portreg_stats_t.bytes counts and this defers: the old map and
     * the dropped slots. */
    size_t freed = map_of(old)->size;
    ck_ht_iterator_t it = CK_HT_ITERATOR_INITIALIZER;
    ck_ht_entry_t *e;
    while (ck_ht_next(&old->ht, &it, &e)) {
        struct slot *s = ck_ht_entry_value(e);
        uint64_t w = atomic_load_explicit(&s->state, memory_order_acquire);
        /* acq_rel: a writer that loses the race to us sees RETIRED; one
         * that wins keeps the slot alive and we carry it over. */
        if (g->n < g->cap && s != keep && slot_droppable(s, w) &&
            atomic_compare_exchange_strong_explicit(&s->state, &w,
                                                    st_pack(ST_RETIRED, 0, st_version(w)),
                                                    memory_order_acq_rel, memory_order_acquire)) {
            g->slots[g->n++] = s;
            freed += slot_size(s->id_len);
            if (st_version(w) > floor)
                floor = st_version(w);
            continue;
        }
        if (!ht_put_for(reg, fresh, s, false))
            goto undo;
    }

    /* release: fresh's buckets and keys before the pointer; pairs with
     * the acquire in table_current(). */
    atomic_store_explicit(&reg->table, fresh, memory_order_release);
    reg->version_floor = floor;
    /* The dropped slots are no longer kept, if they were: a waiter still
     * leaving one must not lower books.stuck, which is set afresh next. */
    for (size_t i = 0; i < g->n; i++)
        atomic_store_explicit(&g->slots[i]->kept, false, memory_order_relaxed);
    books_rebuilt(reg, g->n, mark_kept(fresh), reseed);
    probe_max_abnormal(reg);
    if (reseed) {
        size_t slots = books_read(&reg->books.slots);
        reg->reseed_after = slots + slots / 2 + COMPACT_MIN_DEAD;
    }
    if (PLANT_EARLY_FREE)
        for (size_t i = 0; i < g->n; i++)
            slot_free(reg, g->slots[i]);
    portreg__epoch_defer(reg, &g->entry, graveyard_run, freed);
    return;

undo:
    /* Nobody changes a RETIRED word, and only inserting writers wait for
     * our lock: put the words back as they were. */
    for (size_t i = 0; i < g->n; i++) {
        uint64_t w = atomic_load_explicit(&g->slots[i]->state, memory_order_relaxed);
        atomic_store_explicit(&g->slots[i]->state, st_pack(PORTREG_UNTRACKED, 0, st_version(w)),
                              memory_order_release);
    }
    portreg__table_free_now(reg, fresh);
    portreg__mem_free(reg, g, graveyard_size(cap));
}

int portreg__table_insert(struct portreg *reg, const char *id, size_t id_len, const struct op *op,
                          bool waiter, struct slot **out, uint64_t *word)
{
    /* Before inserting, so the new slot cannot be dropped before its
     * caller counts itself on it. */
    if (books_compaction_due(reg))
        rebuild(reg, false, NULL);
    if (reg->max_ids != 0 && books_read(&reg->books.slots) >= reg->max_ids) {
        /* Compact if enough could go. A handle closed since the last
         * rebuild is not counted as droppable until the next one (see
         * books_compaction_due()), so also when enough of the table is
         * untracked and as many slots were inserted since the last
         * rebuild (they pay for it), and at the latest once per
         * max_ids / FULL_COMPACT_DIV refusals. */
        size_t dead = books_read(&reg->books.dead), stuck = books_read(&reg->books.stuck);
        size_t slots = books_read(&reg->books.slots);
        size_t base = books_read(&reg->books.slots_after_rebuild);
        size_t inserted = slots > base ? slots - base : 0;
        if ((dead > stuck && (dead - stuck) * FULL_COMPACT_DIV >= reg->max_ids) ||
            (dead * FULL_COMPACT_DIV >= reg->max_ids &&
             inserted * FULL_COMPACT_DIV >= reg->max_ids) ||
            ++reg->full_refusals * FULL_COMPACT_DIV >= reg->max_ids) {
            reg->full_refusals = 0;
            rebuild(reg, false, NULL);
        }
        if (books_read(&reg->books.slots) >= reg->max_ids)
            return PORTREG_EFULL;
    }

    /* A new slot continues above every version a dropped one had. */
    uint64_t w = st_pack(PORTREG_UNTRACKED, 0, reg->version_floor);
    if (op != NULL && op_transition(op, w, &w) != 1)
        return PORTREG_EINVAL; /* callers insert only for ops that change an untracked id */
    if (waiter)
        w += ST_WAITER_ONE;

    size_t size = slot_size(id_len);
    struct slot *s = portreg__mem_alloc(reg, size);
    if (s == NULL)
        return PORTREG_ENOMEM;
    s->id_len = (uint8_t)id_len;
    memcpy(s->id, id, id_len);
    atomic_init(&s->pins, 0);
    atomic_init(&s->kept, false);
    /* release: the slot's contents before its word; readers acquire it. */
    atomic_store_explicit(&s->state, w, memory_order_release);
    TSAN_RELEASE(s); /* ck_ht_put_spmc() publishes s; table_find() acquires */
    struct table *t = table_locked(reg);
    if (!ht_put_for(reg, t, s, true)) {
        portreg__mem_free(reg, s, size);
        return PORTREG_ENOMEM;
    }
    books_slot_inserted(reg, w, size);
    *out = s;
    *word = w;

    if (probe_max_abnormal(reg) && books_read(&reg->books.slots) >= reg->reseed_after)
        rebuild(reg, true, s);
    return 0;
}

int portreg__table_hold(struct portreg *reg, const char *id, size_t id_len, bool waiter,
                        struct slot **out, uint64_t *born)
{
    int rc = 0;

    *out = table_find(table_locked(reg), id, id_len);
    if (*out == NULL) {
        rc = portreg__table_insert(reg, id, id_len, NULL, waiter, out, born);
        if (rc == 0 && waiter)
            rc = 1;
    }
    /* The caller pins it or sleeps on it: an untracked slot it holds is
     * not something the next compaction can drop. */
    if (rc >= 0 && !st_tracked(atomic_load_explicit(&(*out)->state, memory_order_relaxed)))
        portreg__slot_held(reg, *out);
    return rc;
}

void portreg__table_reseed(struct portreg *reg)
{
    portreg__writer_lock(reg);
    rebuild(reg, true, NULL);
    portreg__writer_unlock(reg);
}

void portreg__table_compact_if_due(struct portreg *reg)
{
    /* trylock: an untrack never waits for the lock; if another writer
     * holds it, a later untrack or insert checks again. */
    if (!books_compaction_due(reg) || !portreg__os_trylock(&reg->writer))
        return;
    if (books_compaction_due(reg))
        rebuild(reg, false, NULL);
    portreg__writer_unlock(reg);
}

void portreg__table_destroy(struct portreg *reg)
{
    struct table *t = table_locked(reg);
    ck_ht_iterator_t it = CK_HT_ITERATOR_INITIALIZER;
    ck_ht_entry_t *e;
    size_t open = 0;

    while (ck_ht_next(&t->ht, &it, &e)) {
        struct slot *s = ck_ht_entry_value(e);
        open += atomic_load_explicit(&s->pins, memory_order_relaxed) != 0;
        slot_free(reg, s);
    }
    portreg__table_free_now(reg, t);
#ifdef NDEBUG
    (void)open; /* NDEBUG: the handle dangles, as the header warns */
#else
    if (open != 0) {
        /* A handle outlives its registry: its next read would touch freed
         * memory. Stop here rather than later, somewhere unrelated. */
        static const char msg[] = "portreg_destroy: a handle is still open\n";
        fwrite(msg, 1, sizeof msg - 1, stderr);
        abort();
    }
#endif
}
