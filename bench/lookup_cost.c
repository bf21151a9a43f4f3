/*
 * portreg-lookup-cost: ns per portreg_lookup() on one thread, 1,000 keys,
 * hits and misses, in thread CPU time (the fastest of 15 runs), so that two
 * builds of the library can be compared on a shared machine. It uses only
 * API that every release has; build it against another release's headers
 * and static library to compare (bench/RESULTS.md, "Id hash").
 *
 * It also times the fenced read side (portreg_options_t.no_membarrier: an
 * atomic exchange to enter each section), the one every registry uses
 * where there is no asymmetric barrier (the POSIX backend, src/os/os.h),
 * next to the default one (plain stores, membarrier on Linux).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#if defined(_WIN32)
#include <windows.h>
#endif

#include "portreg.h"

#include "loops.h"

#define N_IDS 1000
#define REPS  15

#if defined(_WIN32)
/* Windows counts a thread's CPU time in scheduler ticks (15.6 ms; Wine's
 * clock_gettime() too), far too coarse: the performance counter's elapsed
 * time instead, which the fastest of the runs keeps close to CPU time on
 * an idle machine. */
static double cpu_seconds(void)
{
    LARGE_INTEGER c, f;
    QueryPerformanceCounter(&c);
    QueryPerformanceFrequency(&f);
    return (double)c.QuadPart / (double)f.QuadPart;
}
#else
static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
#endif

static bool no_lookup(void *inst, const char *id, size_t len, uint16_t *port)
{
    (void)inst;
    *port = (uint16_t)len;
    return id[0] == 0;
}

static bool real_lookup(void *inst, const char *id, size_t len, uint16_t *port)
{
    return portreg_lookup(inst, id, len, port);
}

typedef bool lookup_fn(void *inst, const char *id, size_t len, uint16_t *port);

/* The same loop as the instruction counts: a random id of ids[0..N_IDS). */
__attribute__((noinline)) static uint64_t run(lookup_fn *fn, void *inst, const bench_id_t *ids,
                                              size_t count)
{
    uint64_t rng = 1, hits = 0;
    for (size_t i = 0; i < count; i++) {
        const bench_id_t *id = &ids[bench_pick(bench_rng(&rng), N_IDS)];
        uint16_t port;
        hits += fn(inst, id->p, id->len, &port);
    }
    return hits;
}

static double ns_per_lookup(lookup_fn *fn, void *inst, const bench_id_t *ids)
{
    const size_t count = 200000;
    double best = 1e30;
    for (int r = 0; r < REPS; r++) {
        double t0 = cpu_seconds();
        volatile uint64_t hits = run(fn, inst, ids, count);
        (void)hits;
        double ns = (cpu_seconds() - t0) * 1e9 / (double)count;
        if (ns < best)
            best = ns;
    }
    return best;
}

/* A registry of the first N_IDS ids; fenced: the read side without an
 * asymmetric barrier. */
static portreg_t *registry_of(const bench_idset_t *set, bool fenced)
{
    portreg_options_t o;
    portreg_options_init(&o);
    o.initial_capacity = N_IDS;
    o.hash_seed = BENCH_SEED;
    o.no_membarrier = fenced;
    portreg_t *reg = portreg_create(&o);
    if (reg == NULL)
        return NULL;
    for (size_t i = 0; i < N_IDS; i++)
        if (portreg_register(reg, set->ids[i].p, set->ids[i].len, bench_port(i), NULL) != 0)
            return NULL;
    return reg;
}

int main(void)
{
    bench_idset_t set;
    if (bench_ids_generate(&set, 2 * N_IDS, BENCH_SEED) != 0)
        return 1;
    const bench_id_t *present = set.ids, *absent = set.ids + N_IDS;
    static const char *const side[] = {"default read side", "fenced read side (no_membarrier)"};
    for (int fenced = 0; fenced <= 1; fenced++) {
        portreg_t *reg = registry_of(&set, fenced);
        if (reg == NULL)
            return 1;
        double loop = ns_per_lookup(no_lookup, reg, present);
        double hit = ns_per_lookup(real_lookup, reg, present);
        double miss = ns_per_lookup(real_lookup, reg, absent);
        printf("%s: portreg_lookup at %d keys, one thread, %s: hit %.2f ns, miss %.2f ns "
               "(net of the loop's %.2f ns)\n",
               portreg_version_string(), N_IDS, side[fenced], hit - loop, miss - loop, loop);
        portreg_destroy(reg);
    }
    bench_ids_free(&set);
    return 0;
}
