/*
 * The id hash: seeded, inline, and cheap for the short ids brokers use
 * (service names of 8..40 bytes take one to three 64x64->128-bit
 * multiplies). ck_ht would call MurmurHash64A through a function pointer;
 * we give ck_ht this function as its hash callback (so every ck_ht path
 * agrees) and call it directly on the lookup path.
 */
#ifndef PORTREG_HASH_H
#define PORTREG_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Odd constants with well-spread bits (digits of pi and e, made odd). */
#define HASH_K0 UINT64_C(0x243f6a8885a308d3)
#define HASH_K1 UINT64_C(0x13198a2e03707345)
#define HASH_K2 UINT64_C(0xa4093822299f31d1)
#define HASH_K3 UINT64_C(0xb7e151628aed2a6b)

/* Multiply and fold the 128-bit product: every input bit reaches every
 * output bit. */
static inline uint64_t hash_fold(uint64_t a, uint64_t b)
{
    unsigned __int128 m = (unsigned __int128)a * b;
    return (uint64_t)m ^ (uint64_t)(m >> 64);
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

static inline uint64_t id_hash(const void *key, size_t len, uint64_t seed)
{
    const unsigned char *p = key;
    uint64_t h = seed ^ hash_fold(len ^ HASH_K0, HASH_K1);
    uint64_t a = 0, b = 0;

    while (len > 16) {
        h = hash_fold(hash_load64(p) ^ HASH_K2, hash_load64(p + 8) ^ h);
        p += 16;
        len -= 16;
    }
    /* 0..16 bytes left: two (possibly overlapping) loads cover them. */
    if (len >= 8) {
        a = hash_load64(p);
        b = hash_load64(p + len - 8);
    } else if (len >= 4) {
        a = hash_load32(p);
        b = hash_load32(p + len - 4);
    } else if (len > 0) {
        a = ((uint64_t)p[0] << 16) | ((uint64_t)p[len / 2] << 8) | p[len - 1];
    }
    h = hash_fold(a ^ HASH_K2 ^ h, b ^ HASH_K3);
    return hash_fold(h ^ HASH_K0, HASH_K3);
}

#endif
