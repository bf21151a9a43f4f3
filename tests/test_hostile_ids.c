/*
 * Ids chosen by a hostile daemon must cost what random ids cost.
 *
 * Each family below is inserted into a fresh registry, and so is a set of
 * random ids with the same lengths; every id is then looked up. The
 * family's table may be at most twice as large (table_capacity) and its
 * longest probe at most FACTOR times as long plus SLACK (probe_max: what a
 * lookup pays at worst) as the random set's. A hash that inputs can steer
 * makes them collide: the table then grows to escape the probe bound
 * (capacity blows up) or its probes get long, whatever the seed. Costs are
 * read from portreg_stats(), never from a clock.
 *
 * The families: ids of 9..16 bytes ending in one 8-byte word and ids of
 * more than 16 bytes starting with another (the words that zeroed a
 * multiply in 0.2.0's hash, which made all such ids share a bucket for
 * every seed), ids one or two bytes apart at every length and position,
 * runs of one byte at every length 1..255, and ids that are mostly NUL.
 *
 * The second half tests max_ids: PORTREG_EFULL, what it leaves unchanged,
 * and that untracking makes room again.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "portreg.h"

#define ZERO_TAIL UINT64_C(0xb7e151628aed2a6b)
#define ZERO_HEAD UINT64_C(0xa4093822299f31d1)

#define FACTOR 3
#define SLACK  8

static const uint64_t seeds[] = {1, 0x5eed, UINT64_C(0x9e3779b97f4a7c15)};
#define NSEEDS (sizeof seeds / sizeof seeds[0])

static uint64_t mix64(uint64_t x)
{
    x += UINT64_C(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i)); /* little-endian, as the hash loads words */
}

/* A family: id i of n written to out (PORTREG_ID_MAX bytes); returns its
 * length. Ids of a family are distinct. */
struct family {
    const char *name;
    size_t n;
    size_t (*make)(const struct family *f, size_t i, unsigned char *out);
    size_t len, pos, pos2; /* parameters, as each maker reads them */
    unsigned char base[PORTREG_ID_MAX];
};

/* Random-looking ids with the lengths of family f, distinct: the first
 * bytes (up to three) are an odd multiple of i, the rest random. */
static size_t random_like(const struct family *f, size_t i, unsigned char *out, uint64_t salt)
{
    const size_t len = f->make(f, i, out);
    const uint64_t v = (uint64_t)i * 0x9e3779b1u + salt;
    for (size_t k = 0; k < len; k += 8) {
        uint64_t w = mix64(salt ^ (i << 16) ^ k);
        memcpy(out + k, &w, len - k < 8 ? len - k : 8);
    }
    /* The multiplier is odd, so ids of one length 1..3 stay apart as long
     * as their i differ modulo 2^(8 len) (callers check the count). */
    for (size_t k = 0; k < len && k < 3; k++)
        out[k] = (unsigned char)(v >> (8 * k));
    return len;
}

struct cost {
    size_t capacity, probe_max, tracked;
    uint64_t reseeds;
};

/* Registers ids 0..n-1 (from the family or random with its lengths), looks
 * every one up, and returns the table's figures. */
static struct cost insert_all(const struct family *f, uint64_t seed, bool random)
{
    portreg_options_t opts;
    portreg_options_init(&opts);
    opts.hash_seed = seed;
    opts.no_reclaim_thread = true;
    portreg_t *reg = portreg_create(&opts);
    cr_assert_not_null(reg);

    unsigned char id[PORTREG_ID_MAX];
    for (size_t i = 0; i < f->n; i++) {
        size_t len = random ? random_like(f, i, id, seed) : f->make(f, i, id);
        cr_assert_eq(portreg_register(reg, (const char *)id, len, (uint16_t)(1 + i % 65535), NULL),
                     0, "%s: id %zu", f->name, i);
    }
    for (size_t i = 0; i < f->n; i++) {
        size_t len = random ? random_like(f, i, id, seed) : f->make(f, i, id);
        uint16_t port = 0;
        cr_assert(portreg_lookup(reg, (const char *)id, len, &port), "%s: id %zu", f->name, i);
        cr_assert_eq(port, (uint16_t)(1 + i % 65535));
    }

    portreg_stats_t st;
    memset(&st, 0, sizeof st);
    cr_assert_eq(portreg_stats(reg, &st), 0);
    portreg_destroy(reg);
    return (struct cost){st.table_capacity, st.probe_max, st.tracked, st.reseeds};
}

/* The family costs what random ids of its lengths cost, for every seed. */
static void assert_costs_like_random(const struct family *f)
{
    for (size_t s = 0; s < NSEEDS; s++) {
        struct cost fam = insert_all(f, seeds[s], false);
        struct cost rnd = insert_all(f, seeds[s], true);
        cr_assert_eq(fam.tracked, f->n, "%s: ids are not distinct", f->name);
        cr_assert_eq(rnd.tracked, f->n, "%s: random ids are not distinct", f->name);
        cr_assert_leq(fam.capacity, 2 * rnd.capacity,
                      "%s, %zu ids, seed %#llx: %zu buckets, random ids %zu", f->name, f->n,
                      (unsigned long long)seeds[s], fam.capacity, rnd.capacity);
        cr_assert_leq(fam.probe_max, FACTOR * rnd.probe_max + SLACK,
                      "%s, %zu ids, seed %#llx: probe_max %zu, random ids %zu", f->name, f->n,
                      (unsigned long long)seeds[s], fam.probe_max, rnd.probe_max);
        /* Reseeding is for leaked keys; these ids must not need it. */
        cr_assert_leq(fam.reseeds, 1, "%s, seed %#llx: %llu reseeds", f->name,
                      (unsigned long long)seeds[s], (unsigned long long)fam.reseeds);
    }
}

/* f->len bytes: a fixed random base, the first bytes counting, the last 8
 * the word that zeroed 0.2.0's last fold. */
static size_t make_zero_tail(const struct family *f, size_t i, unsigned char *out)
{
    memcpy(out, f->base, f->len);
    out[0] = (unsigned char)i;
    if (f->len > 9)
        out[1] = (unsigned char)(i >> 8);
    put64(out + f->len - 8, ZERO_TAIL);
    return f->len;
}

/* f->len bytes starting with the word that zeroed 0.2.0's first round
 * (erasing the seed and bytes 8..15, which count here); with pos2 set,
 * also ending in the zero-tail word. */
static size_t make_zero_head(const struct family *f, size_t i, unsigned char *out)
{
    memcpy(out, f->base, f->len);
    put64(out, ZERO_HEAD);
    out[8] = (unsigned char)i;
    out[9] = (unsigned char)(i >> 8);
    if (f->pos2 != 0)
        put64(out + f->len - 8, ZERO_TAIL);
    return f->len;
}

/* The base with byte pos taking value i % 256 and, for i >= 256 (or with
 * pos2 != pos), byte pos2 taking i / 256. */
static size_t make_near(const struct family *f, size_t i, unsigned char *out)
{
    memcpy(out, f->base, f->len);
    out[f->pos] = (unsigned char)i;
    if (f->pos2 != f->pos)
        out[f->pos2] = (unsigned char)(f->base[f->pos2] ^ (i >> 8));
    return f->len;
}

/* Runs of one byte: i % 255 + 1 bytes of value i / 255. */
static size_t make_run(const struct family *f, size_t i, unsigned char *out)
{
    (void)f;
    const size_t len = i % PORTREG_ID_MAX + 1;
    memset(out, (int)(i / PORTREG_ID_MAX), len);
    return len;
}

/* Mostly NUL: a short name from the base padded with i % 252 NULs (one of
 * i / 252 names), every length 4..255. */
static size_t make_nul_padded(const struct family *f, size_t i, unsigned char *out)
{
    const size_t pad = i % 252, name = i / 252;
    memset(out, 0, PORTREG_ID_MAX);
    memcpy(out, f->base, 4);
    out[0] = (unsigned char)name;
    return 4 + pad;
}

/* Mostly NUL: f->len zero bytes but one, at i % len, with value
 * 1 + (i / len) % 255. */
static size_t make_nul_one(const struct family *f, size_t i, unsigned char *out)
{
    memset(out, 0, f->len);
    out[i % f->len] = (unsigned char)(1 + (i / f->len) % 255);
    return f->len;
}

static void random_base(struct family *f, uint64_t salt)
{
    for (size_t k = 0; k < sizeof f->base; k++)
        f->base[k] = (unsigned char)mix64(salt * 1000 + k);
}

Test(hostile_ids, ids_ending_in_a_zeroing_word_cost_what_random_ids_cost)
{
    struct family f = {.name = "zero tail", .make = make_zero_tail};
    for (f.len = 9; f.len <= 16; f.len++) {
        random_base(&f, f.len);
        f.n = f.len == 9 ? 256 : 16384;
        assert_costs_like_random(&f);
    }
}

Test(hostile_ids, ids_starting_with_a_zeroing_word_cost_what_random_ids_cost)
{
    static const size_t lens[] = {17, 24, 31, 32, 33, 48, 64, 100, 128, 200, 255};
    struct family f = {.name = "zero head", .make = make_zero_head, .n = 16384};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        f.len = lens[k];
        random_base(&f, f.len);
        f.pos2 = 0;
        assert_costs_like_random(&f);
        if (f.len >= 24) {
            f.name = "zero head and tail";
            f.pos2 = 1;
            assert_costs_like_random(&f);
            f.name = "zero head";
        }
    }
}

Test(hostile_ids, ids_one_byte_apart_cost_what_random_ids_cost_at_every_length_and_position)
{
    struct family f = {.name = "one byte apart", .make = make_near, .n = 256};
    for (f.len = 1; f.len <= PORTREG_ID_MAX; f.len++) {
        random_base(&f, f.len);
        const size_t pos[] = {0, f.len / 2, f.len - 1};
        for (size_t k = 0; k < 3; k++) {
            f.pos = f.pos2 = pos[k];
            /* One seed per position: the lengths and positions vary enough. */
            struct cost fam = insert_all(&f, seeds[k], false);
            struct cost rnd = insert_all(&f, seeds[k], true);
            cr_assert_eq(fam.tracked, f.n);
            cr_assert_leq(fam.capacity, 2 * rnd.capacity, "length %zu byte %zu", f.len, f.pos);
            cr_assert_leq(fam.probe_max, FACTOR * rnd.probe_max + SLACK,
                          "length %zu byte %zu: probe_max %zu, random %zu", f.len, f.pos,
                          fam.probe_max, rnd.probe_max);
        }
    }
}

Test(hostile_ids, ids_two_bytes_apart_cost_what_random_ids_cost_at_every_length)
{
    struct family f = {.name = "two bytes apart", .make = make_near, .n = 2048};
    for (f.len = 2; f.len <= PORTREG_ID_MAX; f.len++) {
        random_base(&f, f.len + 1000);
        f.pos = mix64(f.len) % f.len;
        f.pos2 = (f.pos + 1 + mix64(f.len + 7) % (f.len - 1)) % f.len;
        const uint64_t seed = seeds[f.len % NSEEDS];
        struct cost fam = insert_all(&f, seed, false);
        struct cost rnd = insert_all(&f, seed, true);
        cr_assert_eq(fam.tracked, f.n);
        cr_assert_leq(fam.capacity, 2 * rnd.capacity, "length %zu bytes %zu, %zu", f.len, f.pos,
                      f.pos2);
        cr_assert_leq(fam.probe_max, FACTOR * rnd.probe_max + SLACK,
                      "length %zu bytes %zu, %zu: probe_max %zu, random %zu", f.len, f.pos, f.pos2,
                      fam.probe_max, rnd.probe_max);
    }
}

Test(hostile_ids, runs_of_one_byte_at_every_length_cost_what_random_ids_cost)
{
    /* 16 byte values, NUL and 0xff among them, each at lengths 1..255. */
    struct family f = {.name = "runs", .make = make_run, .n = 16 * PORTREG_ID_MAX};
    assert_costs_like_random(&f);
}

Test(hostile_ids, mostly_nul_ids_cost_what_random_ids_cost)
{
    struct family f = {.name = "NUL padded", .make = make_nul_padded, .n = 16 * 252};
    random_base(&f, 77);
    assert_costs_like_random(&f);

    static const size_t lens[] = {8, 9, 16, 17, 32, 64, 255};
    f.name = "NUL but one byte";
    f.make = make_nul_one;
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        f.len = lens[k];
        f.n = f.len * 255 < 16384 ? f.len * 255 : 16384;
        assert_costs_like_random(&f);
    }
}

/* max_ids
 * ------- */

#define ID_NEW "fresh-id"

static portreg_t *limited(size_t max_ids)
{
    portreg_options_t opts;
    portreg_options_init(&opts);
    opts.max_ids = max_ids;
    opts.no_reclaim_thread = true;
    portreg_t *reg = portreg_create(&opts);
    cr_assert_not_null(reg);
    return reg;
}

static void name(char *buf, size_t cap, size_t i)
{
    snprintf(buf, cap, "backend-%zu", i);
}

static size_t track_n(portreg_t *reg, size_t n)
{
    char id[32];
    for (size_t i = 0; i < n; i++) {
        name(id, sizeof id, i);
        cr_assert_eq(portreg_register(reg, id, strlen(id), (uint16_t)(1000 + i), NULL), 0);
    }
    return n;
}

static portreg_state_t state(portreg_t *reg, const char *id)
{
    portreg_state_t s;
    cr_assert_eq(portreg_get(reg, id, strlen(id), &s), 0);
    return s;
}

Test(max_ids, a_new_id_beyond_the_limit_fails_and_changes_nothing)
{
    portreg_t *reg = limited(8);
    track_n(reg, 8);
    portreg_stats_t before, after;
    cr_assert_eq(portreg_stats(reg, &before), 0);

    const char *id = "one-too-many";
    const size_t len = strlen(id);
    const uint8_t body[] = {0x08, 0x50}; /* BackendHttpReady{port: 80} */
    portreg_state_t prev;
    uint16_t port = 0;
    portreg_handle_t *h = NULL;
    cr_assert_eq(portreg_track(reg, id, len), PORTREG_EFULL);
    cr_assert_eq(portreg_register(reg, id, len, 80, &prev), PORTREG_EFULL);
    cr_assert_eq(portreg_register_if(reg, id, len, 80, 0, &prev), PORTREG_EFULL);
    cr_assert_eq(portreg_decode_and_register(reg, id, len, body, sizeof body, &port),
                 PORTREG_EFULL);
    cr_assert_eq(portreg_handle_open(reg, id, len, &h), PORTREG_EFULL);

    cr_assert_eq(state(reg, id).status, PORTREG_UNTRACKED);
    cr_assert_eq(state(reg, id).version, 0);
    cr_assert_not(portreg_lookup(reg, id, len, NULL));
    cr_assert_eq(portreg_stats(reg, &after), 0);
    cr_assert_eq(after.tracked, 8);
    cr_assert_eq(after.slots, before.slots);
    cr_assert_eq(after.changes, before.changes);
    /* Ops that insert nothing still answer on the unknown id. */
    cr_assert_eq(portreg_untrack(reg, id, len, &prev), 0);
    cr_assert_eq(prev.status, PORTREG_UNTRACKED);
    cr_assert_eq(portreg_unbind(reg, id, len, NULL), 0);
    cr_assert_eq(portreg_register_if(reg, id, len, 80, 5, &prev), PORTREG_ECONFLICT);
    portreg_destroy(reg);
}

Test(max_ids, tracked_ids_still_change_state_at_the_limit)
{
    portreg_t *reg = limited(4);
    track_n(reg, 4);
    portreg_state_t prev;
    uint32_t v = state(reg, "backend-0").version;
    cr_assert_eq(portreg_register(reg, "backend-0", 9, 2000, &prev), 0);
    cr_assert_eq(prev.port, 1000);
    cr_assert_gt(state(reg, "backend-0").version, v);
    cr_assert_eq(portreg_unbind(reg, "backend-1", 9, NULL), 0);
    cr_assert_eq(state(reg, "backend-1").status, PORTREG_PENDING);
    cr_assert_eq(
        portreg_register_if(reg, "backend-2", 9, 3000, state(reg, "backend-2").version, NULL), 0);
    cr_assert_eq(portreg_untrack(reg, "backend-3", 9, NULL), 0);
    cr_assert_eq(portreg_count(reg), 3);
    /* Room either way: its slot is still there or was compacted away. */
    cr_assert_eq(portreg_track(reg, "backend-3", 9), 0);
    cr_assert_eq(portreg_count(reg), 4);
    portreg_destroy(reg);
}

Test(max_ids, untracking_makes_room_for_a_new_id)
{
    portreg_t *reg = limited(8);
    track_n(reg, 8);
    cr_assert_eq(portreg_track(reg, ID_NEW, sizeof ID_NEW - 1), PORTREG_EFULL);
    cr_assert_eq(portreg_untrack(reg, "backend-5", 9, NULL), 0);
    /* The untracked slot is compacted away to make room. */
    cr_assert_eq(portreg_track(reg, ID_NEW, sizeof ID_NEW - 1), 0);
    portreg_stats_t st;
    cr_assert_eq(portreg_stats(reg, &st), 0);
    cr_assert_eq(st.tracked, 8);
    cr_assert_leq(st.slots, 8);
    portreg_destroy(reg);
}

/* The header lets the compaction wait until a sixteenth of max_ids could
 * go (so churn at the limit stays cheap); from there a new id must fit. */
Test(max_ids, untracking_a_sixteenth_of_the_limit_makes_room)
{
    portreg_t *reg = limited(256);
    char id[32];
    track_n(reg, 256);
    cr_assert_eq(portreg_track(reg, ID_NEW, sizeof ID_NEW - 1), PORTREG_EFULL);
    for (size_t i = 0; i < 256 / 16; i++) {
        name(id, sizeof id, i * 7);
        cr_assert_eq(portreg_untrack(reg, id, strlen(id), NULL), 0);
    }
    cr_assert_eq(portreg_track(reg, ID_NEW, sizeof ID_NEW - 1), 0);
    portreg_stats_t st;
    cr_assert_eq(portreg_stats(reg, &st), 0);
    cr_assert_eq(st.tracked, 256 - 256 / 16 + 1);
    cr_assert_leq(st.slots, 256);
    portreg_destroy(reg);
}

Test(max_ids, churn_at_the_limit_never_exceeds_it)
{
    portreg_t *reg = limited(64);
    char id[32];
    track_n(reg, 64);
    /* Replace every id, one at a time, several times over. */
    for (size_t i = 64; i < 64 * 8; i++) {
        name(id, sizeof id, i - 64);
        cr_assert_eq(portreg_untrack(reg, id, strlen(id), NULL), 0);
        name(id, sizeof id, i);
        int rc = portreg_track(reg, id, strlen(id));
        portreg_stats_t st;
        cr_assert_eq(portreg_stats(reg, &st), 0);
        cr_assert_leq(st.slots, 64, "slots %zu after %zu", st.slots, i);
        /* EFULL is allowed only while untracked ids fill the table. */
        if (rc == PORTREG_EFULL) {
            cr_assert_eq(st.slots, 64);
            cr_assert_lt(st.tracked, 64);
        } else {
            cr_assert_eq(rc, 0);
        }
    }
    portreg_destroy(reg);
}

Test(max_ids, closing_the_last_handle_on_an_untracked_id_makes_room)
{
    portreg_t *reg = limited(3);
    portreg_handle_t *h;
    track_n(reg, 3);
    cr_assert_eq(portreg_untrack(reg, "backend-0", 9, NULL), 0);
    cr_assert_eq(portreg_handle_open(reg, "backend-0", 9, &h), 0);
    /* The handle holds backend-0's slot: the table is full. */
    cr_assert_eq(portreg_track(reg, ID_NEW, sizeof ID_NEW - 1), PORTREG_EFULL);
    /* The held untracked id can still change state. */
    cr_assert_eq(portreg_track(reg, "backend-0", 9), 0);
    cr_assert_eq(portreg_untrack(reg, "backend-0", 9, NULL), 0);
    portreg_handle_close(h);
    cr_assert_eq(portreg_track(reg, ID_NEW, sizeof ID_NEW - 1), 0);
    portreg_destroy(reg);
}

Test(max_ids, zero_means_no_limit)
{
    portreg_t *reg = limited(0);
    track_n(reg, 5000);
    cr_assert_eq(portreg_count(reg), 5000);
    portreg_destroy(reg);
}
