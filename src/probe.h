/*
 * The inline read of a ck_ht map: ck_ht_get_spmc()'s reader, compiled
 * into the lookup path instead of called through libck.
 *
 * libck keeps struct ck_ht_map private (src/ck_ht.c). This file mirrors
 * the layout of Concurrency Kit 0.7.1 without pointer packing (the
 * configuration Debian ships and the build accepts, CMakeLists.txt) and
 * follows that release's reader step for step; doc/ARCHITECTURE.md
 * ("The inline map read") gives the argument. Two guards keep a
 * different libck from being misread:
 * - the build compiles this read only against CK 0.7.1
 *   (PORTREG_INLINE_PROBE), and
 * - portreg_create() checks once, on a probe table of its own (probe.c),
 *   that the layout holds and that this read and ck_ht_get_spmc() agree
 *   on every key; where they do not, every table of the registry calls
 *   ck_ht_get_spmc() instead (struct table's inline_read).
 *
 * What the read does differently, and why the result is the same:
 * - It has no key-pointer shortcut. ck_ht takes an entry whose key
 *   pointer equals the probe key's as a match before comparing lengths;
 *   here an entry matches only on length, full hash and bytes, which is
 *   what the shortcut means for a caller whose key is a copy (the public
 *   call's path, portreg__table_find_ck(), probes again with a copy when
 *   it is not).
 * - It compares the key bytes itself, inline, instead of calling memcmp().
 * - It decides the first row from both of its entries loaded together
 *   (probe_first_row()), with the outcome libck's loop would reach.
 * - It samples the deletion counter once per probe rather than before
 *   each entry. The counter only grows, so a probe that finds it equal
 *   after a match also found it equal against every per-entry sample:
 *   it starts over in every case libck's reader does (and the registry's
 *   tables never bump the counter, so it never starts over at all).
 */
#ifndef PORTREG_PROBE_H
#define PORTREG_PROBE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <ck_ht.h>
#include <ck_md.h>
#include <ck_pr.h>

#include "epoch.h"

#ifndef PORTREG_INLINE_PROBE
#define PORTREG_INLINE_PROBE 0
#endif
#if PORTREG_INLINE_PROBE && defined(CK_HT_PP)
#error "the inline ck_ht read mirrors CK 0.7.1 without pointer packing (CK_HT_PP)"
#endif

/* ck_ht_map's probe-bound word: CK_HT_WORD in 0.7.1's ck_ht.c. */
#if defined(CK_F_PR_LOAD_8) && defined(CK_F_PR_STORE_8)
typedef uint8_t probe_word_t;
#define PROBE_WORD_MAX UINT8_MAX
#elif defined(CK_F_PR_LOAD_16) && defined(CK_F_PR_STORE_16)
typedef uint16_t probe_word_t;
#define PROBE_WORD_MAX UINT16_MAX
#else
typedef uint32_t probe_word_t;
#define PROBE_WORD_MAX UINT32_MAX
#endif

/* struct ck_ht_map of CK 0.7.1, field for field. */
struct probe_map {
    unsigned int mode;
    CK_HT_TYPE deletions;
    CK_HT_TYPE probe_maximum;
    CK_HT_TYPE probe_length;
    CK_HT_TYPE probe_limit;
    CK_HT_TYPE size;
    CK_HT_TYPE n_entries;
    CK_HT_TYPE mask;
    CK_HT_TYPE capacity;
    CK_HT_TYPE step;
    probe_word_t *probe_bound;
    struct ck_ht_entry *entries;
};

/* Entries per probe row: one cache line of 32-byte entries. */
#define PROBE_ROW 2u

/* Loads as libck's ck_pr_load_*: single-copy atomic, no ordering of their
 * own (the fences below order them). */
#define PROBE_LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)

/* The map a table reads now. ck_ht's writer publishes a new map (grow)
 * with a store after a store fence; this load with the acquire fence in
 * probe_begin() is its reader side, as ck_pr_load_ptr() in libck (the
 * map's fields are then read after the fence). */
static inline const struct probe_map *probe_map_of(const ck_ht_t *ht)
{
    const struct probe_map *m = (const struct probe_map *)PROBE_LOAD(&ht->map);
    /* TSan cannot see libck's store fence before the map pointer: pairs
     * with the TSAN_RELEASE in ckm_malloc() (table.c), where the map's
     * memory comes from. */
    TSAN_ACQUIRE(m);
    return m;
}

#define PROBE_INLINE inline __attribute__((always_inline))

/* Outcome of examining one entry or one row. */
enum probe_result { PROBE_MISS, PROBE_HIT, PROBE_MORE, PROBE_RESTART };

/* What ck_ht_map_probe_rd() reads before its first entry: the deletion
 * counter (ck_ht_get_spmc()'s first sample) and the probe bound
 * (ck_ht_map_bound_get()). */
struct probe_start {
    CK_HT_TYPE d;     /* the deletion counter when the probe began */
    CK_HT_TYPE bound; /* the probe may examine entries while probes <= bound */
};

static PROBE_INLINE struct probe_start probe_begin(const struct probe_map *m, uint64_t h)
{
    struct probe_start ps;
    /* acquire: the map's fields after its pointer, as libck's reader
     * (a compiler barrier on TSO, a load fence elsewhere). */
    atomic_thread_fence(memory_order_acquire);
    ps.d = PROBE_LOAD(&m->deletions);
    const probe_word_t *pb = m->probe_bound;
    if (pb != NULL) {
        ps.bound = PROBE_LOAD(&pb[h & m->mask]);
        if (ps.bound == PROBE_WORD_MAX)
            ps.bound = PROBE_LOAD(&m->probe_maximum);
    } else {
        ps.bound = PROBE_LOAD(&m->probe_maximum);
    }
    return ps;
}

/* ck_ht_map_probe_next(): the row after the one at offset. Shift counts
 * are taken modulo 64, as x86-64 and AArch64 shifts do in libck. */
static PROBE_INLINE size_t probe_next_offset(const struct probe_map *m, size_t offset, uint64_t h,
                                             CK_HT_TYPE probes)
{
    uint64_t level = probes / PROBE_ROW;
    uint64_t r = (h >> (m->step & 63)) >> (level & 63);
    uint64_t stride = ((r & ~(uint64_t)(PROBE_ROW - 1)) << 1) | (r & (PROBE_ROW - 1));
    return (size_t)((offset + level + (stride | PROBE_ROW)) & m->mask);
}

/* The first entry of the row the entry at offset belongs to. */
static PROBE_INLINE const struct ck_ht_entry *probe_row(const struct probe_map *m, size_t offset)
{
    /* libck's "bucket": the cache line the entry at offset lies in. */
    return (const struct ck_ht_entry *)((uintptr_t)(m->entries + offset) &
                                        ~(uintptr_t)(CK_MD_CACHELINE - 1));
}

static PROBE_INLINE uint64_t probe_load64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static PROBE_INLINE uint32_t probe_load32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Bytes equal: the probe key against an entry's key (len bytes each,
 * len 1..PORTREG_ID_MAX). Up to 32 bytes, overlapping loads and no call. */
static PROBE_INLINE bool probe_key_equal(const char *a, const char *b, size_t len)
{
    if (LIKELY(len >= 8)) {
        uint64_t d = (probe_load64(a) ^ probe_load64(b)) |
                     (probe_load64(a + len - 8) ^ probe_load64(b + len - 8));
        if (len <= 16)
            return d == 0;
        if (len <= 32)
            return (d | (probe_load64(a + 8) ^ probe_load64(b + 8)) |
                    (probe_load64(a + len - 16) ^ probe_load64(b + len - 16))) == 0;
        return d == 0 && memcmp(a, b, len) == 0;
    }
    if (len >= 4)
        return ((probe_load32(a) ^ probe_load32(b)) |
                (probe_load32(a + len - 4) ^ probe_load32(b + len - 4))) == 0;
    uint8_t d = (uint8_t)(a[0] ^ b[0]);
    if (len > 1)
        d |= (uint8_t)(a[1] ^ b[1]) | (uint8_t)(a[len - 1] ^ b[len - 1]);
    return d == 0;
}

/* Examines entry c, as the body of ck_ht_map_probe_rd()'s inner loop:
 * PROBE_HIT (*value set), PROBE_MISS (an empty entry ends the probe),
 * PROBE_MORE (not this one) or PROBE_RESTART (the deletion counter moved
 * since ps was read: start over from the map pointer). */
static PROBE_INLINE enum probe_result probe_entry(const struct probe_map *m, struct probe_start ps,
                                                  const struct ck_ht_entry *c, uint64_t h,
                                                  const char *key, size_t key_len, uintptr_t *value)
{
    uintptr_t k = PROBE_LOAD(&c->key);
    /* acquire: the entry's other fields after its key; pairs with the
     * store fence ck_ht_put_spmc() issues before it stores the key. */
    atomic_thread_fence(memory_order_acquire);
    CK_HT_TYPE len = PROBE_LOAD(&c->key_length);
    CK_HT_TYPE hash = PROBE_LOAD(&c->hash);
    uintptr_t v = PROBE_LOAD(&c->value);
    if (k == CK_HT_KEY_EMPTY)
        return PROBE_MISS;
    if (UNLIKELY(k == CK_HT_KEY_TOMBSTONE) || hash != h || len != key_len)
        return PROBE_MORE;
    /* libck's second sample before its memcmp: the entry may have been
     * replaced since we read it only if the counter moved. */
    if (UNLIKELY(PROBE_LOAD(&m->deletions) != ps.d))
        return PROBE_RESTART;
    /* The key bytes live in the slot the value points to; TSan learns of
     * its publication here (TSAN_RELEASE in the insert). */
    TSAN_ACQUIRE(v);
    if (!probe_key_equal((const char *)k, key, key_len))
        return PROBE_MORE;
    *value = v;
    return PROBE_HIT;
}

/* Examines the row at *offset, as one iteration of the outer loop of
 * ck_ht_map_probe_rd(); on PROBE_MORE, *offset is the next row's.
 * *probes counts the entries examined, against ps.bound. */
static PROBE_INLINE enum probe_result
probe_row_scan(const struct probe_map *m, struct probe_start ps, size_t *offset, CK_HT_TYPE *probes,
               uint64_t h, const char *key, size_t key_len, uintptr_t *value)
{
    const struct ck_ht_entry *row = probe_row(m, *offset);
    for (size_t j = 0; j < PROBE_ROW; j++) {
        if ((*probes)++ > ps.bound)
            return PROBE_MISS;
        enum probe_result r =
            probe_entry(m, ps, row + ((j + *offset) & (PROBE_ROW - 1)), h, key, key_len, value);
        if (r != PROBE_MORE)
            return r;
    }
    *offset = probe_next_offset(m, *offset, h, *probes);
    return PROBE_MORE;
}

/* The rest of a probe whose first rows were examined elsewhere (rows of
 * them, next at offset); then ck_ht_get_spmc()'s last sample of the
 * counter. The value, 0 for a miss, or -1 (PROBE_AGAIN): start over. */
#define PROBE_AGAIN UINTPTR_MAX
static PROBE_INLINE uintptr_t probe_finish(const struct probe_map *m, struct probe_start ps,
                                           enum probe_result r, size_t offset, CK_HT_TYPE probes,
                                           CK_HT_TYPE rows, uint64_t h, const char *key,
                                           size_t key_len, uintptr_t v)
{
    CK_HT_TYPE limit = m->probe_limit;
    while (r == PROBE_MORE) {
        if (rows++ >= limit) {
            r = PROBE_MISS;
            break;
        }
        r = probe_row_scan(m, ps, &offset, &probes, h, key, key_len, &v);
    }
    if (UNLIKELY(r == PROBE_RESTART || PROBE_LOAD(&m->deletions) != ps.d))
        return PROBE_AGAIN;
    return r == PROBE_HIT ? v : 0;
}

/* The first row of a probe, all most probes examine, decided with as few
 * branches as possible: both entries' keys are loaded, then (after the
 * fence) both entries' fields, and the outcome libck's entry-by-entry
 * loop would reach is computed from them. Loading the second entry when
 * the first already decides is a read libck would not make; its value is
 * then ignored. The row needs no probe_limit check (at least 64 rows:
 * probe.c checks it) and its first entry no bound check (probes 0 never
 * exceeds it).
 * PROBE_HIT: an entry whose length and full hash match, its value in
 * *value and its key in *key_at (probe_confirm() compares the bytes);
 * PROBE_MISS; PROBE_MORE: neither entry decides, the probe goes on at
 * the next row (probe_finish()). */
static PROBE_INLINE enum probe_result probe_first_row(const struct probe_map *m,
                                                      struct probe_start ps, uint64_t h,
                                                      size_t key_len, uintptr_t *key_at,
                                                      uintptr_t *value)
{
    size_t offset = (size_t)(h & m->mask);
    const struct ck_ht_entry *row = probe_row(m, offset);
    const struct ck_ht_entry *c0 = row + (offset & 1), *c1 = row + (~offset & 1);
    uintptr_t k0 = PROBE_LOAD(&c0->key), k1 = PROBE_LOAD(&c1->key);
    /* acquire: as in probe_entry(), for both entries at once. */
    atomic_thread_fence(memory_order_acquire);
    /* A put in progress stores length, hash and value before the key: an
     * entry whose key still reads empty may show the fields of the id
     * being inserted. As in libck, an empty key ends the probe whatever
     * the other fields say. */
    bool m0 = PROBE_LOAD(&c0->hash) == h && PROBE_LOAD(&c0->key_length) == key_len &&
              k0 != CK_HT_KEY_EMPTY && k0 != CK_HT_KEY_TOMBSTONE;
    bool m1 = PROBE_LOAD(&c1->hash) == h && PROBE_LOAD(&c1->key_length) == key_len &&
              k1 != CK_HT_KEY_EMPTY && k1 != CK_HT_KEY_TOMBSTONE && ps.bound >= 1;
    uintptr_t v0 = PROBE_LOAD(&c0->value), v1 = PROBE_LOAD(&c1->value);
    bool first = m0 || k0 == CK_HT_KEY_EMPTY;
    *key_at = first ? k0 : k1;
    *value = first ? v0 : v1;
    if (LIKELY(m0 || (k0 != CK_HT_KEY_EMPTY && m1)))
        return PROBE_HIT;
    if (LIKELY(k0 == CK_HT_KEY_EMPTY || ps.bound < 1 || k1 == CK_HT_KEY_EMPTY))
        return PROBE_MISS;
    return PROBE_MORE;
}

/* A candidate of probe_first_row(): libck's second sample of the counter,
 * then the bytes. PROBE_HIT, PROBE_MORE (other bytes under the same hash
 * and length: the caller probes entry by entry) or PROBE_RESTART. */
static PROBE_INLINE enum probe_result probe_confirm(const struct probe_map *m,
                                                    struct probe_start ps, uintptr_t key_at,
                                                    uintptr_t value, const char *key,
                                                    size_t key_len)
{
    if (UNLIKELY(PROBE_LOAD(&m->deletions) != ps.d))
        return PROBE_RESTART;
    /* The key bytes live in the slot the value points to; TSan learns of
     * its publication here (TSAN_RELEASE in the insert). */
    TSAN_ACQUIRE(value);
    return LIKELY(probe_key_equal((const char *)key_at, key, key_len)) ? PROBE_HIT : PROBE_MORE;
}

/* probe.c: probe_finish() out of line, for what the first row does not
 * decide (rare), so that the common path keeps its registers. */
PORTREG_HIDDEN uintptr_t portreg__probe_rest(const struct probe_map *m, struct probe_start ps,
                                             size_t offset, CK_HT_TYPE probes, CK_HT_TYPE rows,
                                             uint64_t h, const char *key, size_t key_len)
    __attribute__((cold, noinline));

/* The value stored for key (hash h) in ht, or 0 when ht does not hold it:
 * ck_ht_get_spmc() inline. Call inside a read section. */
static PROBE_INLINE uintptr_t probe_get(const ck_ht_t *ht, uint64_t h, const char *key,
                                        size_t key_len)
{
    for (;;) {
        const struct probe_map *m = probe_map_of(ht);
        struct probe_start ps = probe_begin(m, h);
        uintptr_t k, v, r;
        enum probe_result pr = probe_first_row(m, ps, h, key_len, &k, &v);
        if (LIKELY(pr == PROBE_HIT)) {
            pr = probe_confirm(m, ps, k, v, key, key_len);
            if (UNLIKELY(pr == PROBE_RESTART))
                continue;
            /* Other bytes under the same hash and length: the
             * entry-by-entry loop, from the first row. */
            r = LIKELY(pr == PROBE_HIT)
                    ? v
                    : portreg__probe_rest(m, ps, (size_t)(h & m->mask), 0, 0, h, key, key_len);
        } else if (LIKELY(pr == PROBE_MISS)) {
            r = 0;
        } else {
            /* Neither entry of the first row decides: on from the next. */
            r = portreg__probe_rest(m, ps,
                                    probe_next_offset(m, (size_t)(h & m->mask), h, PROBE_ROW),
                                    PROBE_ROW, 1, h, key, key_len);
        }
        if (UNLIKELY(r == PROBE_AGAIN))
            continue;
        /* ck_ht_get_spmc()'s last sample. */
        if (LIKELY(PROBE_LOAD(&m->deletions) == ps.d))
            return r;
    }
}

#endif
