/*
 * The id hash: keyed, inline, and cheap for the short ids brokers use.
 *
 * Ids come from daemons the broker cannot trust, so the hash must not let
 * an input choose its bucket. Each table draws four secret 64-bit keys
 * from its random seed (hash_key_init()). The hash is built from one step,
 * hash_mix(x, y) = x ^ y ^ lo(x * y) ^ hi(x * y), and every 16-byte block
 * of input enters it as (block[0..8) ^ k1, block[8..16) ^ k2 ^ state):
 *
 * - Keys on both sides of every multiply. A multiply-fold hash is broken
 *   when an input can make one factor a known value (0 above all): the
 *   product then no longer depends on the other factor, seed included.
 *   Here each factor is an input word XORed with a secret word, so no
 *   input, chosen without the keys, can fix either factor.
 * - A zero product erases nothing. hash_mix() keeps x ^ y next to the
 *   folded product, so even a product of 0 leaves the state that the other
 *   factor carried (the construction rapidhash calls "protected").
 * - Length is in the state from the start, and blocks are chained, so
 *   equal bytes at other lengths or positions give unrelated values.
 *
 * What this promises: without the keys, an attacker cannot build ids that
 * share a bucket more often than random ids do (blind flooding fails).
 * What it does not: it is not a cryptographic MAC. Someone who learns the
 * keys (or the hash values of many ids of their choice) can build
 * collisions; the table's reseeding (table.c) then draws new keys.
 *
 * ck_ht calls the hash through a hook with one 64-bit "seed" argument: the
 * table passes the address of its struct hash_key there (see table.h), and
 * the lookup path calls id_hash() inline with the same key.
 */
#ifndef PORTREG_HASH_H
#define PORTREG_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* 64-bit targets only: hash_mix() multiplies in 128 bits, and Concurrency
 * Kit's ck_ht on a 32-bit target keeps 32 bits of each 64-bit hash, then
 * compares them with all 64 (so every lookup would miss). */
#if UINTPTR_MAX != UINT64_MAX || !defined(__SIZEOF_INT128__)
#error "portreg needs a 64-bit target with unsigned __int128 (GCC or Clang)"
#endif

struct hash_key {
    uint64_t k[4];
};

/* splitmix64: spreads one seed into independent-looking key words. */
static inline uint64_t hash_splitmix(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static inline void hash_key_init(struct hash_key *hk, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        hk->k[i] = hash_splitmix(&seed);
}

/* The protected multiply-fold step (see the top of the file). */
static inline uint64_t hash_mix(uint64_t x, uint64_t y)
{
    unsigned __int128 m = (unsigned __int128)x * y;
    return x ^ y ^ (uint64_t)m ^ (uint64_t)(m >> 64);
}

static inline uint64_t hash_load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint64_t hash_load32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint64_t id_hash(const void *key, size_t len, const struct hash_key *hk)
{
    const unsigned char *p = key;
    uint64_t s = hk->k[0] ^ len;
    size_t n = len;
    uint64_t a = 0, b = 0;

    while (n > 16) {
        s = hash_mix(hash_load64(p) ^ hk->k[1], hash_load64(p + 8) ^ hk->k[2] ^ s);
        p += 16;
        n -= 16;
    }
    /* 0..16 bytes left: two (possibly overlapping) loads cover them; the
     * length in s tells the overlaps apart. */
    if (n >= 8) {
        a = hash_load64(p);
        b = hash_load64(p + n - 8);
    } else if (n >= 4) {
        a = hash_load32(p);
        b = hash_load32(p + n - 4);
    } else if (n > 0) {
        a = ((uint64_t)p[0] << 16) | ((uint64_t)p[n / 2] << 8) | p[n - 1];
    }
    s = hash_mix(a ^ hk->k[1], b ^ hk->k[2] ^ s);
    /* Final avalanche: both factors depend on every bit of s. */
    return hash_mix(s ^ hk->k[3], ((s >> 32) | (s << 32)) ^ hk->k[0]);
}

#endif
