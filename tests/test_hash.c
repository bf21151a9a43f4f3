/*
 * The id hash (src/hash.h) as a statistician sees it.
 *
 * Avalanche: for ids of every length 1..255, flipping any one input bit
 * must flip every output bit in about half of all samples. The checker
 * counts, for each (input bit, output bit) cell, how many of N random ids
 * flipped that output bit, and rejects a length when one cell lies outside
 * a band that a fair coin leaves with probability below 1e-12, or when the
 * cells together stray from 1/2 more than chance allows (a chi-square sum
 * more than 7 standard deviations above its mean). A hash that fails
 * either way has output bits an attacker can predict.
 *
 * Seed dependence: sets of ids built to defeat multiply-fold hashes (a
 * word that zeroes one factor, ids one or two bytes apart) must spread
 * over the low bits, which pick the bucket, like random ids do, for every
 * seed tried.
 *
 * Each checker is also run against a deliberately weak hash defined here,
 * and must reject it: a test that cannot fail proves nothing. Every random
 * choice comes from fixed seeds, so a run is reproducible.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

#define MAX_LEN 255

static uint64_t rng_next(uint64_t *state)
{
    return hash_splitmix(state);
}

static void fill_random(unsigned char *p, size_t n, uint64_t *rng)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t w = rng_next(rng);
        memcpy(p + i, &w, n - i < 8 ? n - i : 8);
    }
}

/* A hash under test: the library's, or one of the weak ones below. */
struct hasher {
    uint64_t (*fn)(const struct hasher *h, const void *key, size_t len);
    struct hash_key hk;
    uint64_t seed;
};

static uint64_t real_hash(const struct hasher *h, const void *key, size_t len)
{
    return id_hash(key, len, &h->hk);
}

static struct hasher real_hasher(uint64_t seed)
{
    struct hasher h = {.fn = real_hash, .seed = seed};
    hash_key_init(&h.hk, seed);
    return h;
}

static uint64_t fold(uint64_t a, uint64_t b)
{
    unsigned __int128 m = (unsigned __int128)a * b;
    return (uint64_t)m ^ (uint64_t)(m >> 64);
}

/* Weak on purpose: a multiply-fold over 8-byte words with public
 * constants only and no final mixing. The last word goes through one
 * fold, so its high input bits reach the low output bits in fixed
 * patterns. */
static uint64_t unkeyed_fold(const struct hasher *h, const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t s = len;
    (void)h;
    for (size_t i = 0; i < len; i += 8) {
        uint64_t w = 0;
        memcpy(&w, p + i, len - i < 8 ? len - i : 8);
        s = fold(s ^ w, UINT64_C(0x9e3779b97f4a7c15));
    }
    return s;
}

/* Weak on purpose: keyed, but the key enters each multiply on one side
 * only, so an input word equal to a public constant zeroes a factor and
 * the product forgets the seed and every byte before it. The same kind of
 * flaw that the zero-product families below were built for. */
#define CANCEL_TAIL UINT64_C(0xb7e151628aed2a6b)
#define CANCEL_HEAD UINT64_C(0xa4093822299f31d1)

static uint64_t cancellable_fold(const struct hasher *h, const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t s = h->seed ^ len, a = 0, b = 0;
    while (len > 16) {
        s = fold(hash_load64(p) ^ CANCEL_HEAD, hash_load64(p + 8) ^ s);
        p += 16;
        len -= 16;
    }
    if (len >= 8) {
        a = hash_load64(p);
        b = hash_load64(p + len - 8);
    } else if (len > 0) {
        memcpy(&a, p, len);
    }
    s = fold(a ^ CANCEL_HEAD ^ s, b ^ CANCEL_TAIL);
    return fold(s ^ UINT64_C(0x243f6a8885a308d3), CANCEL_TAIL);
}

/* Avalanche
 * --------- */

#define AV_SAMPLES 64
/* P(|c - N/2| > 28) for c ~ Binomial(64, 1/2) is below 1e-13 per cell. */
#define AV_CELL_SLACK 28
#define AV_CHI_SIGMAS 7.0

struct avalanche {
    unsigned worst_cell; /* largest |count - N/2| over all cells */
    double chi;          /* sum over cells of (count - N/2)^2 / (N/4) */
    double chi_limit;    /* cells + 7 sd */
};

static bool avalanche_ok(const struct avalanche *a)
{
    return a->worst_cell <= AV_CELL_SLACK && a->chi <= a->chi_limit;
}

/* Ids of one or two bytes have too few values for random draws to stay
 * distinct: sample s of input bit i walks the other bits with an odd step
 * (bit i clear), so no pair (id, id with bit i set) comes twice. */
static void short_sample(unsigned char *id, size_t len, size_t bit, int s)
{
    const unsigned space = 1u << (8 * len - 1);
    unsigned v = (unsigned)(s * 0x9e37u + (unsigned)bit * 0x51u) & (space - 1);
    const unsigned low = v & ((1u << bit) - 1);
    v = low | (v - low) << 1; /* a zero inserted at bit */
    id[0] = (unsigned char)v;
    if (len == 2)
        id[1] = (unsigned char)(v >> 8);
}

/* Cells flipped[input bit][output bit], over AV_SAMPLES ids per input bit.
 * Each pair compared is (id with bit i clear, id with bit i set). */
static struct avalanche avalanche_at(const struct hasher *h, size_t len, uint64_t *rng)
{
    static uint16_t counts[MAX_LEN * 8][64];
    unsigned char id[MAX_LEN];
    const size_t bits = len * 8;

    memset(counts, 0, bits * sizeof counts[0]);
    for (int s = 0; s < AV_SAMPLES; s++) {
        fill_random(id, len, rng);
        for (size_t i = 0; i < bits; i++) {
            const unsigned char mask = (unsigned char)(1u << (i % 8)), keep = id[i / 8];
            if (len <= 2)
                short_sample(id, len, i, s);
            id[i / 8] &= (unsigned char)~mask;
            const uint64_t base = h->fn(h, id, len);
            id[i / 8] |= mask;
            for (uint64_t d = base ^ h->fn(h, id, len); d != 0; d &= d - 1)
                counts[i][__builtin_ctzll(d)]++;
            id[i / 8] = keep;
        }
    }

    struct avalanche a = {0, 0.0, 0.0};
    for (size_t i = 0; i < bits; i++) {
        for (int o = 0; o < 64; o++) {
            int dev = (int)counts[i][o] - AV_SAMPLES / 2;
            unsigned adev = (unsigned)abs(dev);
            if (adev > a.worst_cell)
                a.worst_cell = adev;
            a.chi += (double)dev * dev / (AV_SAMPLES / 4.0);
        }
    }
    const double cells = (double)bits * 64;
    a.chi_limit = cells + AV_CHI_SIGMAS * sqrt(2.0 * cells);
    return a;
}

Test(hash, every_input_bit_flips_every_output_bit_half_the_time_at_every_length)
{
    uint64_t rng = 0xa5a1a2c3;
    for (size_t len = 1; len <= MAX_LEN; len++) {
        struct hasher h = real_hasher(rng_next(&rng));
        struct avalanche a = avalanche_at(&h, len, &rng);
        cr_assert(avalanche_ok(&a),
                  "length %zu: worst cell %u off N/2 (limit %d), chi-square %.0f (limit %.0f)", len,
                  a.worst_cell, AV_CELL_SLACK, a.chi, a.chi_limit);
    }
}

/* Every length up to 32, then every 8th: each block structure is seen. */
Test(hash, avalanche_checker_rejects_an_unkeyed_fold)
{
    uint64_t rng = 0x5eed0001;
    struct hasher h = {.fn = unkeyed_fold};
    for (size_t len = 1; len <= MAX_LEN; len += len < 32 ? 1 : 8) {
        struct avalanche a = avalanche_at(&h, len, &rng);
        cr_assert_not(avalanche_ok(&a), "length %zu: the weak fold passed (worst %u, chi %.0f)",
                      len, a.worst_cell, a.chi);
    }
}

/* The seed is an input too: each of its bits must reach every output bit. */
Test(hash, every_seed_bit_flips_every_output_bit_half_the_time)
{
    static uint16_t counts[64][64];
    const int samples = 256;
    uint64_t rng = 0x5eedb175;
    unsigned char id[MAX_LEN];

    for (size_t len = 1; len <= MAX_LEN; len += 7) {
        memset(counts, 0, sizeof counts);
        for (int s = 0; s < samples; s++) {
            fill_random(id, len, &rng);
            const uint64_t seed = rng_next(&rng);
            struct hasher h = real_hasher(seed);
            const uint64_t base = id_hash(id, len, &h.hk);
            for (int i = 0; i < 64; i++) {
                struct hasher g = real_hasher(seed ^ (UINT64_C(1) << i));
                uint64_t d = base ^ id_hash(id, len, &g.hk);
                for (int o = 0; o < 64; o++)
                    counts[i][o] += (uint16_t)((d >> o) & 1);
            }
        }
        /* Binomial(256, 1/2): sd 8; 7.5 sd is below 1e-13 per cell. */
        for (int i = 0; i < 64; i++)
            for (int o = 0; o < 64; o++)
                cr_assert(abs((int)counts[i][o] - samples / 2) <= 60,
                          "length %zu: seed bit %d flipped output bit %d %u times of %d", len, i, o,
                          counts[i][o], samples);
    }
}

/* Seed dependence
 * ---------------
 * A family of ids is hashed under many seeds; for each seed, the number
 * of pairs that share their low LOW_BITS bits (the bucket of a table of
 * 2^LOW_BITS) must stay near what random values give: pairs / 2^LOW_BITS,
 * Poisson-like. No two ids may share the whole 64-bit hash. */

#define LOW_BITS    10
#define FAMILY_MAX  512
#define SEEDS_TRIED 8

struct family {
    size_t n, len;
    unsigned char ids[FAMILY_MAX][MAX_LEN];
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Colliding pairs in the low bits; *full counts whole-hash collisions. */
static double low_bit_pairs(const struct hasher *h, const struct family *f, size_t *full)
{
    static uint32_t buckets[1u << LOW_BITS];
    uint64_t hv[FAMILY_MAX];
    double pairs = 0;

    memset(buckets, 0, sizeof buckets);
    for (size_t i = 0; i < f->n; i++) {
        hv[i] = h->fn(h, f->ids[i], f->len);
        pairs += buckets[hv[i] & ((1u << LOW_BITS) - 1)]++;
    }
    qsort(hv, f->n, sizeof hv[0], cmp_u64);
    *full = 0;
    for (size_t i = 1; i < f->n; i++)
        *full += hv[i] == hv[i - 1];
    return pairs;
}

/* Whether the family spreads like random ids under every seed tried. */
static bool spreads(uint64_t (*fn)(const struct hasher *, const void *, size_t),
                    const struct family *f, uint64_t *rng, char *why, size_t why_len)
{
    const double expected = (double)f->n * (double)(f->n - 1) / 2.0 / (1u << LOW_BITS);
    const double limit = expected + 7.0 * sqrt(expected) + 8.0;
    for (int s = 0; s < SEEDS_TRIED; s++) {
        struct hasher h = real_hasher(rng_next(rng));
        h.fn = fn;
        size_t full;
        double pairs = low_bit_pairs(&h, f, &full);
        if (pairs > limit || full > 0) {
            snprintf(why, why_len,
                     "length %zu, %zu ids, seed %#llx: %.0f low-bit pairs (expected %.1f, "
                     "limit %.1f), %zu full collisions",
                     f->len, f->n, (unsigned long long)h.seed, pairs, expected, limit, full);
            return false;
        }
    }
    return true;
}

static void put64(unsigned char *p, uint64_t v)
{
    memcpy(p, &v, sizeof v); /* the hash loads words little-endian (x86-64) */
}

/* 9..16 bytes ending in the word that zeroed the last fold in 0.2.0: one
 * random id with its first two bytes counting (its only byte, at 9). */
static void zero_tail_family(struct family *f, size_t len, uint64_t *rng)
{
    unsigned char base[MAX_LEN];
    fill_random(base, len, rng);
    put64(base + len - 8, CANCEL_TAIL);
    f->len = len;
    f->n = len == 9 ? 256 : FAMILY_MAX;
    for (size_t i = 0; i < f->n; i++) {
        memcpy(f->ids[i], base, len);
        f->ids[i][0] = (unsigned char)i;
        if (len > 9)
            f->ids[i][1] = (unsigned char)(i >> 8);
    }
}

/* Over 16 bytes starting with the word that zeroed the first round in
 * 0.2.0 (which then forgot the seed and bytes 8..15): one random id with
 * bytes 8 and 9 counting; with tail_too (24 bytes and up), also ending in
 * the word that zeroed the last fold. */
static void zero_head_family(struct family *f, size_t len, bool tail_too, uint64_t *rng)
{
    unsigned char base[MAX_LEN];
    fill_random(base, len, rng);
    put64(base, CANCEL_HEAD);
    if (tail_too && len >= 24)
        put64(base + len - 8, CANCEL_TAIL);
    f->len = len;
    f->n = FAMILY_MAX;
    for (size_t i = 0; i < f->n; i++) {
        memcpy(f->ids[i], base, len);
        f->ids[i][8] = (unsigned char)i;
        f->ids[i][9] = (unsigned char)(i >> 8);
    }
}

/* One random id, with the byte at pos taking every value (256 ids), or
 * the bytes at pos and pos2 taking 512 pairs of values. */
static void near_family(struct family *f, size_t len, size_t pos, size_t pos2, uint64_t *rng)
{
    unsigned char base[MAX_LEN];
    fill_random(base, len, rng);
    f->len = len;
    f->n = pos2 == pos ? 256 : FAMILY_MAX;
    for (size_t i = 0; i < f->n; i++) {
        memcpy(f->ids[i], base, len);
        f->ids[i][pos] = (unsigned char)i;
        if (pos2 != pos)
            f->ids[i][pos2] = (unsigned char)(i >> 8 ^ i * 0x9d);
    }
}

static struct family fam;

Test(hash, ids_ending_in_a_zeroing_word_spread_under_every_seed)
{
    char why[256];
    uint64_t rng = 0x7a11;
    for (size_t len = 9; len <= 16; len++) {
        zero_tail_family(&fam, len, &rng);
        cr_assert(spreads(real_hash, &fam, &rng, why, sizeof why), "%s", why);
    }
}

Test(hash, ids_starting_with_a_zeroing_word_spread_under_every_seed)
{
    char why[256];
    uint64_t rng = 0x4ead;
    for (size_t len = 17; len <= MAX_LEN; len++) {
        zero_head_family(&fam, len, len % 2 == 0, &rng);
        cr_assert(spreads(real_hash, &fam, &rng, why, sizeof why), "%s", why);
    }
}

Test(hash, ids_one_byte_apart_spread_at_every_length_and_position)
{
    char why[256];
    uint64_t rng = 0x0b1e;
    for (size_t len = 1; len <= MAX_LEN; len++) {
        /* First, last and a middle byte; at short lengths, all of them. */
        size_t pos[3] = {0, len / 2, len - 1};
        for (int k = 0; k < 3; k++) {
            near_family(&fam, len, pos[k], pos[k], &rng);
            cr_assert(spreads(real_hash, &fam, &rng, why, sizeof why), "byte %zu: %s", pos[k], why);
        }
    }
}

Test(hash, ids_two_bytes_apart_spread_at_every_length)
{
    char why[256];
    uint64_t rng = 0x2b1e;
    for (size_t len = 2; len <= MAX_LEN; len++) {
        size_t a = rng_next(&rng) % len, b = rng_next(&rng) % len;
        if (a == b)
            b = (a + 1) % len;
        near_family(&fam, len, a, b, &rng);
        cr_assert(spreads(real_hash, &fam, &rng, why, sizeof why), "bytes %zu, %zu: %s", a, b, why);
    }
}

Test(hash, spread_checker_rejects_a_hash_whose_seed_an_input_cancels)
{
    char why[256];
    uint64_t rng = 0xbad;
    for (size_t len = 9; len <= 16; len++) {
        zero_tail_family(&fam, len, &rng);
        cr_assert_not(spreads(cancellable_fold, &fam, &rng, why, sizeof why),
                      "length %zu: the cancellable fold passed", len);
    }
    for (size_t len = 17; len <= MAX_LEN; len += 3) {
        zero_head_family(&fam, len, len % 2 == 0, &rng);
        cr_assert_not(spreads(cancellable_fold, &fam, &rng, why, sizeof why),
                      "length %zu: the cancellable fold passed", len);
    }
}

Test(hash, same_bytes_same_hash_and_other_seeds_other_hashes)
{
    uint64_t rng = 0x5a3e;
    unsigned char id[MAX_LEN + 1], copy[MAX_LEN];
    for (size_t len = 1; len <= MAX_LEN; len++) {
        fill_random(id, len, &rng);
        memcpy(copy, id, len);
        struct hasher h = real_hasher(rng_next(&rng)), g = real_hasher(h.seed + 1);
        cr_assert_eq(id_hash(id, len, &h.hk), id_hash(copy, len, &h.hk));
        cr_assert_neq(id_hash(id, len, &h.hk), id_hash(id, len, &g.hk), "length %zu", len);
        /* A trailing NUL makes another id. */
        id[len] = 0;
        if (len < MAX_LEN)
            cr_assert_neq(id_hash(id, len, &h.hk), id_hash(id, len + 1, &h.hk), "length %zu", len);
    }
}
