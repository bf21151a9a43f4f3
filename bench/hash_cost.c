/*
 * portreg-hash-cost: what candidate id hashes cost on the benchmark's ids.
 *
 * Candidates (all keyed or seeded per table, all 64-bit):
 *   portreg     the library's id hash (src/hash.h), inlined as the lookup
 *               path inlines it
 *   0.2.0       the hash portreg 0.2.0 shipped: a seeded multiply-fold whose
 *               fold can be zeroed by the input (kept here only to measure)
 *   siphash13   SipHash with one compression and three finalisation rounds
 *   murmur64a   ck_ht's own hash (MurmurHash64A), called through
 *               ck_ht_hash() on a table created with the default hash, as
 *               a ck_ht user calls it
 *
 * Without options it prints, per candidate, nanoseconds per hash over the
 * benchmark's ids (independent hashes: throughput; and a dependent chain in
 * which each hash picks the next id: latency) and over fixed lengths.
 * `--instr N` instead hashes the ids N times per candidate between
 * callgrind client requests (run it under
 * `valgrind --tool=callgrind --collect-atstart=no`); bench/hash-cost does
 * both and prints one table.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ck_ht.h>

#ifdef BENCH_HAVE_CALLGRIND
#include <valgrind/callgrind.h>
#endif

#include "bench.h"
#include "hash.h"

#define N_IDS 1000 /* the 1k-key table's ids */

/* ---- 0.2.0's id hash, as it was ---- */

#define H020_K0 UINT64_C(0x243f6a8885a308d3)
#define H020_K1 UINT64_C(0x13198a2e03707345)
#define H020_K2 UINT64_C(0xa4093822299f31d1)
#define H020_K3 UINT64_C(0xb7e151628aed2a6b)

static inline uint64_t h020_fold(uint64_t a, uint64_t b)
{
    unsigned __int128 m = (unsigned __int128)a * b;
    return (uint64_t)m ^ (uint64_t)(m >> 64);
}

static inline uint64_t h020(const void *key, size_t len, uint64_t seed)
{
    const unsigned char *p = key;
    uint64_t h = seed ^ h020_fold(len ^ H020_K0, H020_K1);
    uint64_t a = 0, b = 0;
    while (len > 16) {
        h = h020_fold(hash_load64(p) ^ H020_K2, hash_load64(p + 8) ^ h);
        p += 16;
        len -= 16;
    }
    if (len >= 8) {
        a = hash_load64(p);
        b = hash_load64(p + len - 8);
    } else if (len >= 4) {
        a = hash_load32(p);
        b = hash_load32(p + len - 4);
    } else if (len > 0) {
        a = ((uint64_t)p[0] << 16) | ((uint64_t)p[len / 2] << 8) | p[len - 1];
    }
    h = h020_fold(a ^ H020_K2 ^ h, b ^ H020_K3);
    return h020_fold(h ^ H020_K0, H020_K3);
}

/* ---- SipHash-c-d ---- */

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

struct sip {
    uint64_t v0, v1, v2, v3;
};

static inline __attribute__((always_inline)) void sip_round(struct sip *s)
{
    s->v0 += s->v1;
    s->v1 = rotl64(s->v1, 13) ^ s->v0;
    s->v0 = rotl64(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = rotl64(s->v3, 16) ^ s->v2;
    s->v0 += s->v3;
    s->v3 = rotl64(s->v3, 21) ^ s->v0;
    s->v2 += s->v1;
    s->v1 = rotl64(s->v1, 17) ^ s->v2;
    s->v2 = rotl64(s->v2, 32);
}

static inline __attribute__((always_inline)) void sip_absorb(struct sip *s, uint64_t m, int c)
{
    s->v3 ^= m;
    for (int i = 0; i < c; i++)
        sip_round(s);
    s->v0 ^= m;
}

/* c compression rounds per 8-byte word, d finalisation rounds; the last
 * word carries the length's low byte in its top byte. */
static inline __attribute__((always_inline)) uint64_t
siphash(const void *key, size_t len, uint64_t k0, uint64_t k1, int c, int d)
{
    const unsigned char *p = key;
    struct sip s = {k0 ^ UINT64_C(0x736f6d6570736575), k1 ^ UINT64_C(0x646f72616e646f6d),
                    k0 ^ UINT64_C(0x6c7967656e657261), k1 ^ UINT64_C(0x7465646279746573)};
    size_t n = len;
    for (; n >= 8; n -= 8, p += 8)
        sip_absorb(&s, hash_load64(p), c);
    uint64_t last = (uint64_t)len << 56;
    for (size_t i = 0; i < n; i++)
        last |= (uint64_t)p[i] << (8 * i);
    sip_absorb(&s, last, c);
    s.v2 ^= 0xff;
    for (int i = 0; i < d; i++)
        sip_round(&s);
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

/* Known answers, checked at start-up: SipHash-2-4's first reference
 * vectors (key 00 01 .. 0f; messages of 0 and 1 bytes) and SipHash-1-3
 * with an all-zero key as CPython computes it for hash(b"abc") with
 * PYTHONHASHSEED=0. */
static int sip_selftest(void)
{
    uint64_t k0 = UINT64_C(0x0706050403020100), k1 = UINT64_C(0x0f0e0d0c0b0a0908);
    unsigned char zero = 0;
    int bad = 0;
    bad |= siphash("", 0, k0, k1, 2, 4) != UINT64_C(0x726fdb47dd0e0e31);
    bad |= siphash(&zero, 1, k0, k1, 2, 4) != UINT64_C(0x74f839c593dc67fd);
    bad |= siphash("abc", 3, 0, 0, 1, 3) != (uint64_t)INT64_C(-4594863902769663758);
    return bad;
}

/* ---- the candidates, each with its per-table key material ---- */

static void *ht_malloc(size_t size)
{
    return malloc(size);
}

static void ht_free(void *p, size_t size, bool defer)
{
    (void)size;
    (void)defer;
    free(p);
}

static struct ck_malloc ht_allocator = {.malloc = ht_malloc, .free = ht_free};

static struct hash_key pr_key;
static uint64_t sip_k0, sip_k1;
static ck_ht_t murmur_table;

static inline uint64_t cand_portreg(const char *p, size_t n)
{
    return id_hash(p, n, &pr_key);
}

static inline uint64_t cand_020(const char *p, size_t n)
{
    return h020(p, n, BENCH_SEED);
}

static inline uint64_t cand_sip13(const char *p, size_t n)
{
    return siphash(p, n, sip_k0, sip_k1, 1, 3);
}

static inline uint64_t cand_murmur(const char *p, size_t n)
{
    ck_ht_hash_t h;
    ck_ht_hash(&h, &murmur_table, p, (uint16_t)n);
    return h.value;
}

/* The loop alone: reads the id's length and first byte, and spreads them
 * (one multiply) so that the chain below still moves between ids. */
static inline uint64_t cand_none(const char *p, size_t n)
{
    return ((uint64_t)n ^ (unsigned char)p[0]) * UINT64_C(0x9e3779b97f4a7c15);
}

/* Independent hashes (they overlap in the pipeline) and a dependent chain
 * (each hash picks the next id, as a probe waits for its hash). */
#define DEFINE_LOOPS(name, fn)                                                                     \
    __attribute__((noinline)) static uint64_t name##_indep(const bench_id_t *ids, size_t n,        \
                                                           size_t rounds)                          \
    {                                                                                              \
        uint64_t acc = 0;                                                                          \
        for (size_t r = 0; r < rounds; r++)                                                        \
            for (size_t i = 0; i < n; i++)                                                         \
                acc += fn(ids[i].p, ids[i].len);                                                   \
        return acc;                                                                                \
    }                                                                                              \
    __attribute__((noinline)) static uint64_t name##_chain(const bench_id_t *ids, size_t n,        \
                                                           size_t count)                           \
    {                                                                                              \
        size_t i = 0;                                                                              \
        uint64_t h = 0;                                                                            \
        for (size_t k = 0; k < count; k++) {                                                       \
            h = fn(ids[i].p, ids[i].len);                                                          \
            i = (size_t)((((h >> 32) * (uint64_t)n)) >> 32);                                       \
        }                                                                                          \
        return h;                                                                                  \
    }

DEFINE_LOOPS(portreg, cand_portreg)
DEFINE_LOOPS(v020, cand_020)
DEFINE_LOOPS(sip13, cand_sip13)
DEFINE_LOOPS(murmur, cand_murmur)
DEFINE_LOOPS(none, cand_none)

typedef uint64_t loop_fn(const bench_id_t *ids, size_t n, size_t count);

static const struct candidate {
    const char *name;
    const char *what;
    loop_fn *indep, *chain;
} candidates[] = {
    {"loop", "the loop alone (subtracted below)", none_indep, none_chain},
    {"0.2.0", "0.2.0's seeded multiply-fold", v020_indep, v020_chain},
    {"portreg", "the library's keyed protected mix (src/hash.h)", portreg_indep, portreg_chain},
    {"siphash13", "SipHash-1-3, 128-bit key", sip13_indep, sip13_chain},
    {"murmur64a", "MurmurHash64A via ck_ht_hash()", murmur_indep, murmur_chain},
};
#define N_CAND (sizeof candidates / sizeof candidates[0])

static volatile uint64_t sink;

/* This thread's CPU time: time slices that other processes take from a
 * run on a shared machine do not count. */
static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ns per hash: the fastest of REPS timed runs of about 20 ms of CPU time
 * each (on a shared machine other processes only ever add time, through
 * the caches they share). */
static double ns_per_hash(loop_fn *fn, const bench_id_t *ids, size_t n, bool chain)
{
    enum { REPS = 15 };
    size_t count = 1;
    for (;;) { /* calibrate: enough hashes for 20 ms */
        double t0 = seconds();
        sink = fn(ids, n, count);
        if (seconds() - t0 > 0.02)
            break;
        count *= 2;
    }
    double v[REPS];
    for (int r = 0; r < REPS; r++) {
        double t0 = seconds();
        sink = fn(ids, n, count);
        v[r] = (seconds() - t0) * 1e9 / (double)(chain ? count : count * n);
    }
    qsort(v, REPS, sizeof v[0], cmp_double);
    return v[0];
}

/* n ids of exactly len bytes (random letters), in the benchmark's layout. */
static bench_id_t *fixed_ids(size_t n, size_t len)
{
    bench_id_t *ids = aligned_alloc(sizeof(bench_id_t), n * sizeof(bench_id_t));
    if (ids == NULL)
        exit(1);
    uint64_t s = BENCH_SEED ^ len;
    for (size_t i = 0; i < n; i++) {
        ids[i].len = (uint8_t)len;
        for (size_t j = 0; j < len; j++) {
            s = s * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
            ids[i].p[j] = (char)('a' + (s >> 59));
        }
    }
    return ids;
}

/* instructions per hash from bench/hash-cost: "name,count,instructions" */
static bool read_instr(const char *path, double out[N_CAND])
{
    FILE *f = path != NULL ? fopen(path, "r") : NULL;
    if (f == NULL)
        return false;
    char line[256], name[64];
    double count, ir;
    bool any = false;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "%63[^,],%lf,%lf", name, &count, &ir) == 3 && count > 0)
            for (size_t c = 0; c < N_CAND; c++)
                if (strcmp(name, candidates[c].name) == 0)
                    out[c] = ir / count, any = true;
    fclose(f);
    return any;
}

static int instr_mode(const bench_id_t *ids, size_t rounds)
{
#ifndef BENCH_HAVE_CALLGRIND
    fprintf(stderr, "portreg-hash-cost: built without valgrind/callgrind.h\n");
#endif
    for (size_t c = 0; c < N_CAND; c++) {
        char label[96];
        snprintf(label, sizeof label, "hash:%s:%zu", candidates[c].name, rounds * N_IDS);
        sink = candidates[c].indep(ids, N_IDS, 1); /* warm caches */
#ifdef BENCH_HAVE_CALLGRIND
        CALLGRIND_ZERO_STATS;
        CALLGRIND_TOGGLE_COLLECT;
#endif
        sink = candidates[c].indep(ids, N_IDS, rounds);
#ifdef BENCH_HAVE_CALLGRIND
        CALLGRIND_TOGGLE_COLLECT;
        CALLGRIND_DUMP_STATS_AT(label);
#endif
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"instr", required_argument, 0, 'I'},
        {"instr-csv", required_argument, 0, 'C'},
        {0, 0, 0, 0},
    };
    size_t instr = 0;
    const char *instr_csv = NULL;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'I')
            instr = (size_t)atol(optarg);
        else if (o == 'C')
            instr_csv = optarg;
        else {
            fputs("usage: portreg-hash-cost [--instr ROUNDS | --instr-csv FILE]\n", stderr);
            return 2;
        }
    }
    if (sip_selftest() != 0) {
        fputs("portreg-hash-cost: SipHash known-answer test failed\n", stderr);
        return 1;
    }
    hash_key_init(&pr_key, BENCH_SEED);
    uint64_t s = BENCH_SEED;
    sip_k0 = hash_splitmix(&s);
    sip_k1 = hash_splitmix(&s);
    /* NULL hash: ck_ht's default, MurmurHash64A */
    if (!ck_ht_init(&murmur_table, CK_HT_MODE_BYTESTRING, NULL, &ht_allocator, 16, BENCH_SEED)) {
        fputs("portreg-hash-cost: ck_ht_init failed\n", stderr);
        return 1;
    }

    bench_idset_t set;
    if (bench_ids_generate(&set, N_IDS, BENCH_SEED) != 0)
        return 1;
    if (instr > 0)
        return instr_mode(set.ids, instr);

    static const size_t lens[] = {8, 16, 32, 48};
    enum { N_LENS = sizeof lens / sizeof lens[0] };
    double ir[N_CAND] = {0};
    bool have_ir = read_instr(instr_csv, ir);
    double indep[N_CAND], chain[N_CAND], fixed[N_CAND][N_LENS];
    for (size_t c = 0; c < N_CAND; c++) {
        indep[c] = ns_per_hash(candidates[c].indep, set.ids, N_IDS, false);
        chain[c] = ns_per_hash(candidates[c].chain, set.ids, N_IDS, true);
    }
    for (size_t l = 0; l < N_LENS; l++) {
        bench_id_t *ids = fixed_ids(N_IDS, lens[l]);
        for (size_t c = 0; c < N_CAND; c++)
            fixed[c][l] = ns_per_hash(candidates[c].indep, ids, N_IDS, false);
        free(ids);
    }

    printf("Ids: the benchmark's 1,000 ids of the 1k-key table (%.1f bytes on average); "
           "fixed lengths: 1,000 random ids of that length. Fastest of 15 runs, in thread "
           "CPU time; ns net of the loop's own time.\n\n",
           bench_ids_mean_len(set.ids, N_IDS));
    printf("| hash | what | Mhashes/s (bench ids, loop included) | ns/hash | ns/hash, dependent "
           "chain |%s "
           "ns at 8 B | 16 B | 32 B | 48 B |\n",
           have_ir ? " instructions/hash |" : "");
    printf("|---|---|---:|---:|---:|%s---:|---:|---:|---:|\n", have_ir ? "---:|" : "");
    for (size_t c = 1; c < N_CAND; c++) {
        double net = indep[c] - indep[0];
        printf("| %s | %s | %.0f | %.2f | %.2f |", candidates[c].name, candidates[c].what,
               1e3 / indep[c], net, chain[c] - chain[0]);
        if (have_ir)
            printf(" %.1f |", ir[c] - ir[0]);
        for (size_t l = 0; l < N_LENS; l++)
            printf(" %.2f |", fixed[c][l] - fixed[0][l]);
        printf("\n");
    }
    printf("\nThe loop alone: %.2f ns per id (independent), %.2f ns (chain)%s.\n", indep[0],
           chain[0], have_ir ? "" : "; instructions not measured (run bench/hash-cost)");
    if (have_ir)
        printf("Instructions: callgrind, net of the loop's %.1f per id.\n", ir[0]);
    bench_ids_free(&set);
    ck_ht_destroy(&murmur_table);
    return 0;
}
