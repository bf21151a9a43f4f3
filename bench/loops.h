/*
 * The reader and writer loops, written once and inlined into each impl's
 * translation unit with that impl's operations, so that every impl pays the
 * same loop overhead and no indirect call per operation.
 *
 * Include after defining the impl's operations; call the loops from small
 * wrapper functions (see impl_*.c).
 */
#ifndef BENCH_LOOPS_H
#define BENCH_LOOPS_H

#include <x86intrin.h>

#include "bench.h"

#define BENCH_INLINE static inline __attribute__((always_inline))

/* Lookups between two polls of the stop flag (and, for qsbr, between two
 * quiescent-state announcements). The first lookup of each batch is timed
 * for the latency histogram; the rest run untimed, so that the fences
 * around the timer (tens of cycles) stay a small share of a lookup that
 * takes a few (a handle's). */
#define BENCH_BATCH 256
/* How many lookups ahead the read loop fetches its ids. */
#define BENCH_PREFETCH 8

typedef bool (*bench_lookup_fn)(void *inst, void *tls, const char *id, size_t len, uint16_t *port);
typedef void (*bench_change_fn)(void *inst, void *tls, const char *id, size_t len, enum bst_op op,
                                uint16_t port);
typedef void (*bench_quiesce_fn)(void *tls);
/* Starts fetching what a later lookup of id will need first. */
typedef void (*bench_prefetch_fn)(void *tls, const bench_id_t *id);

BENCH_INLINE uint64_t bench_rng(uint64_t *s)
{
    /* splitmix64: one add and a short mix, cheap next to a lookup */
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* An index in [0, n) from the high half of r (n < 2^32). */
BENCH_INLINE size_t bench_pick(uint64_t r, size_t n)
{
    return (size_t)(((r >> 32) * (uint64_t)n) >> 32);
}

/* The lfence keeps the lookup's loads from starting before the first read
 * of the TSC; rdtscp waits for them to finish before the second. */
BENCH_INLINE uint64_t bench_tsc_begin(void)
{
    _mm_lfence();
    uint64_t t = __rdtsc();
    _mm_lfence();
    return t;
}

BENCH_INLINE uint64_t bench_tsc_end(void)
{
    unsigned aux;
    uint64_t t = __rdtscp(&aux);
    _mm_lfence();
    return t;
}

BENCH_INLINE bool bench_stopped(const struct bench_cell *c)
{
    /* relaxed: only a flag; the join publishes the thread's counters */
    return atomic_load_explicit(&c->stop, memory_order_relaxed);
}

/* The id itself: a broker has it in its request buffer. */
BENCH_INLINE void bench_prefetch_id(void *tls, const bench_id_t *id)
{
    (void)tls;
    __builtin_prefetch(id);
}

/* The id of the request at pos in the cell's stream (see struct
 * bench_cell: absent ids follow present ones, so one index reaches both). */
BENCH_INLINE const bench_id_t *bench_request(const struct bench_cell *c, size_t pos)
{
    return &c->present[c->stream[pos & c->stream_mask]];
}

/* The read loop with the impl's own prefetch (portreg-handle fetches the
 * handle that stands for the id). It walks the cell's request stream from
 * the thread's own random place: drawing the requests before the window
 * leaves the loop a load, a prefetch and the call, the same for every impl,
 * so that what it measures is the lookup. */
BENCH_INLINE void bench_read_loop_prefetch(struct bench_thread *t, bench_lookup_fn lookup,
                                           bench_quiesce_fn quiesce, bench_prefetch_fn prefetch)
{
    const struct bench_cell *c = t->cell;
    void *inst = t->inst;
    void *tls = t->tls;
    uint64_t ops = 0, hits = 0;
    size_t pos = (size_t)t->rng;
    for (unsigned i = 0; i < BENCH_PREFETCH; i++)
        prefetch(tls, bench_request(c, pos + i));

    while (!bench_stopped(c)) {
        const bench_id_t *id = bench_request(c, pos);
        prefetch(tls, bench_request(c, pos + BENCH_PREFETCH));
        uint16_t port;
        uint64_t t0 = bench_tsc_begin();
        bool hit = lookup(inst, tls, id->p, id->len, &port);
        uint64_t t1 = bench_tsc_end();
        hits += hit;
        lat_add(t->hist, t1 - t0);
        pos++;
        for (unsigned i = 1; i < BENCH_BATCH; i++, pos++) {
            id = bench_request(c, pos);
            prefetch(tls, bench_request(c, pos + BENCH_PREFETCH));
            hits += lookup(inst, tls, id->p, id->len, &port);
        }
        ops += BENCH_BATCH;
        quiesce(tls);
    }
    t->ops = ops;
    t->hits = hits;
}

BENCH_INLINE void bench_read_loop(struct bench_thread *t, bench_lookup_fn lookup,
                                  bench_quiesce_fn quiesce)
{
    bench_read_loop_prefetch(t, lookup, quiesce, bench_prefetch_id);
}

/* A port that changes with every write and is never 0. */
BENCH_INLINE uint16_t bench_port(uint64_t n)
{
    return (uint16_t)(1024 + n % 60000);
}

BENCH_INLINE void bench_write_loop(struct bench_thread *t, bench_change_fn change,
                                   bench_quiesce_fn quiesce)
{
    struct bench_cell *c = t->cell;
    void *inst = t->inst;
    void *tls = t->tls;
    uint64_t rng = t->rng, ops = 0;
    uint64_t t0 = bench_now_ns();

    switch (c->wl) {
    case WL_READ_MOSTLY:
        while (!bench_stopped(c)) {
            for (unsigned i = 0; i < 64; i++) {
                const bench_id_t *id = &c->present[bench_pick(bench_rng(&rng), c->n_present)];
                change(inst, tls, id->p, id->len, BST_REGISTER, bench_port(ops + i));
            }
            ops += 64;
            quiesce(tls);
        }
        break;
    case WL_CHURN: {
        /* A backend restart: untrack it, track it again (pending) a little
         * later, bind its new port later still; gap ids are in flux. */
        size_t n = c->n_present, gap = c->churn_gap, cur = c->churn_cursor;
        while (!bench_stopped(c)) {
            for (unsigned i = 0; i < 64; i += 3) {
                const bench_id_t *a = &c->present[cur];
                const bench_id_t *b = &c->present[(cur + n - gap / 2) % n];
                const bench_id_t *d = &c->present[(cur + n - gap) % n];
                change(inst, tls, a->p, a->len, BST_UNTRACK, 0);
                change(inst, tls, b->p, b->len, BST_TRACK, 0);
                change(inst, tls, d->p, d->len, BST_REGISTER, bench_port(ops + i));
                cur = (cur + 1) % n;
            }
            ops += 66;
            quiesce(tls);
        }
        t->churn_end = cur;
        break;
    }
    case WL_INSERT:
        for (size_t i = 0; i < c->n_fresh && !bench_stopped(c); i++) {
            change(inst, tls, c->fresh[i].p, c->fresh[i].len, BST_REGISTER, bench_port(i));
            ops++;
            if (i % 64 == 63)
                quiesce(tls);
        }
        /* release: pairs with the driver's acquire; it ends the window */
        atomic_store_explicit(&c->writer_done, true, memory_order_release);
        break;
    default:
        break;
    }
    t->busy_ns = bench_now_ns() - t0;
    t->ops = ops;
}

BENCH_INLINE void bench_no_quiesce(void *tls)
{
    (void)tls;
}

#endif
