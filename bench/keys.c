/*
 * Ids that look like real service names: "<service>-<tag>[-<role>][.<region>]
 * [.<env>]", 9 to 40 bytes. The 6-character tag is index i scrambled by a
 * bijection of 30-bit numbers and written in base 32, so ids are distinct;
 * no service name is another one plus "-...", so the tag's position, and
 * with it the tag, can be read back from the id.
 */
#include <stdlib.h>
#if defined(_WIN32)
#include <malloc.h> /* _aligned_malloc() */
#endif
#include <string.h>

#include "loops.h"

static const char *const services[] = {
    "auth",     "billing",      "cart",          "catalog",
    "checkout", "search",       "payments",      "inventory",
    "shipping", "notification", "profile",       "gateway",
    "ledger",   "fraud-scorer", "image-resizer", "recommendation",
    "pricing",  "session",      "metrics",       "audit-log",
    "db",       "kv",           "s3-proxy",      "mail",
};
static const char *const roles[] = {"api",      "worker",  "grpc",    "http",  "cron",
                                    "consumer", "indexer", "replica", "canary"};
static const char *const regions[] = {"us-east-1", "eu-west-1",    "ap-south-1",
                                      "us-west-2", "eu-central-1", "sa-east-1"};
static const char *const envs[] = {"prod", "staging", "dev"};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define ID_MAX   40 /* fits bench_id_t.p */

static size_t append(char *buf, size_t len, char sep, const char *part)
{
    size_t n = strlen(part);
    if (len + 1 + n > ID_MAX)
        return len;
    buf[len++] = sep;
    memcpy(buf + len, part, n);
    return len + n;
}

static size_t make_id(char *buf, size_t i, uint64_t *rng)
{
    uint64_t r = bench_rng(rng);
    const char *svc = services[r % NELEM(services)];
    size_t len = strlen(svc);
    memcpy(buf, svc, len);
    buf[len++] = '-';
    uint32_t tag = (uint32_t)((i * UINT64_C(0x2545f491)) & ((UINT64_C(1) << 30) - 1));
    for (int k = 5; k >= 0; k--)
        buf[len++] = "0123456789abcdefghijklmnopqrstuv"[(tag >> (5 * k)) & 31];
    r >>= 8;
    if (r % 8 < 5)
        len = append(buf, len, '-', roles[(r >> 3) % NELEM(roles)]);
    r >>= 8;
    if (r % 8 < 4)
        len = append(buf, len, '.', regions[(r >> 3) % NELEM(regions)]);
    r >>= 8;
    if (r % 8 < 3)
        len = append(buf, len, '.', envs[(r >> 3) % NELEM(envs)]);
    return len;
}

int bench_ids_generate(bench_idset_t *set, size_t n, uint64_t seed)
{
    memset(set, 0, sizeof *set);
#if defined(_WIN32)
    /* The C runtime of Windows has no aligned_alloc(). */
    set->ids = _aligned_malloc(n * sizeof(bench_id_t), sizeof(bench_id_t));
#else
    set->ids = aligned_alloc(sizeof(bench_id_t), n * sizeof(bench_id_t));
#endif
    if (set->ids == NULL)
        return -1;
    uint64_t rng = seed;
    for (size_t i = 0; i < n; i++)
        set->ids[i].len = (uint8_t)make_id(set->ids[i].p, i, &rng);
    set->n = n;
    return 0;
}

void bench_ids_free(bench_idset_t *set)
{
#if defined(_WIN32)
    _aligned_free(set->ids);
#else
    free(set->ids);
#endif
    memset(set, 0, sizeof *set);
}

double bench_ids_mean_len(const bench_id_t *ids, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += ids[i].len;
    return n > 0 ? sum / (double)n : 0;
}

void bench_stream_fill(uint32_t *stream, size_t len, size_t n_present, uint32_t miss_per_1024,
                       uint64_t seed)
{
    uint64_t rng = seed;
    for (size_t i = 0; i < len; i++) {
        uint64_t r = bench_rng(&rng);
        size_t k = bench_pick(r, n_present);
        stream[i] = (uint32_t)((r & 1023) < miss_per_1024 ? n_present + k : k);
    }
}

size_t bench_stream_len(size_t n)
{
    size_t len = (size_t)1 << 16;
    while (len < 4 * n)
        len *= 2;
    return len;
}
