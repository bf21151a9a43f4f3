/*
 * The stress harness: a black-box client of portreg that checks results,
 * not only crashes. Each check lives in its own file; this header holds
 * what they share (configuration, seeded randomness, ids, failure
 * reporting, memory figures); the counting allocator comes from
 * tests/support/testsupport.h.
 */
#ifndef PORTREG_STRESS_H
#define PORTREG_STRESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "portreg.h"
#include "testsupport.h"

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer)
#define STRESS_BUILD "tsan"
#elif defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define STRESS_BUILD "asan"
#else
#define STRESS_BUILD "plain"
#endif

/* Sizes of one run; "ci" and "long" fill them in per build (main.c). */
struct cfg {
    uint64_t seed;
    const char *size;
    const char *build; /* plain, debug (unoptimized), tsan or asan */

    /* exchange: rounds of writers against readers on fresh ids. */
    unsigned x_writers, x_readers;
    unsigned x_rounds, x_ops_per_round; /* register-class ops per writer per round */
    unsigned x_hot, x_cold;

    /* iter: iterators against churners, over stable and churned ids. */
    unsigned i_churners, i_iterators;
    unsigned i_ops;                 /* per churner */
    unsigned i_stable, i_churn_ids; /* churn ids per churner */

    /* reclaim: track/untrack cycles of distinct ids, readers running. */
    unsigned r_cyclers, r_readers;
    unsigned r_cycles;  /* per cycler */
    unsigned r_window;  /* ids each cycler keeps tracked */
    bool r_enforce_rss; /* allocator quarantine (ASan) makes RSS meaningless */

    /* churn: many short-lived threads. */
    unsigned c_threads; /* created over the whole check */
    unsigned c_alive;   /* at most this many at a time */
    unsigned c_readers; /* long-lived readers running throughout */

    /* iterinsert: iterations that insert and wait, beside portreg_reclaim(). */
    unsigned n_iterators, n_reclaimers, n_growers;
    unsigned n_passes;  /* per iterator */
    unsigned n_stall_s; /* the watchdog fails the check after this long */

    /* waiters: waits on churned and never-tracked ids. */
    unsigned w_owners, w_waiters, w_sleepers;
    unsigned w_waits; /* per waiter and phase */

    /* eventfd: first calls of portreg_eventfd() racing with writers. */
    unsigned e_rounds, e_creators, e_writers;

    /* handles: the exchange check with readers through handles. */
    unsigned h_rounds, h_extra; /* rounds; threads churning extra ids */

    /* exits: threads exiting beside and after portreg_destroy(). */
    unsigned q_rounds, q_threads;
};

/* splitmix64: seeds every thread's generator from (run seed, stream). */
static inline uint64_t mix64(uint64_t x)
{
    x += UINT64_C(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

struct rng {
    uint64_t s;
};

static inline struct rng rng_for(uint64_t seed, uint64_t stream)
{
    struct rng r = {mix64(seed ^ mix64(stream + 1))};
    return r;
}

/* xorshift64*: fast, and plenty for choosing operations. */
static inline uint64_t rng_next(struct rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * UINT64_C(0x2545f4914f6cdd1d);
}

static inline unsigned rng_below(struct rng *r, unsigned n)
{
    return (unsigned)(((rng_next(r) >> 32) * n) >> 32);
}

/* Ids are binary (NUL bytes included, as the API allows): a tag byte, a
 * 32-bit group (round, thread), a 32-bit index, then pad bytes so lengths
 * vary. id_parse() undoes it; false for anything the harness never made. */
#define ID_BUF 48
size_t id_make(char *buf, char tag, uint32_t group, uint32_t index);
bool id_parse(const char *id, size_t len, char *tag, uint32_t *group, uint32_t *index);

/* Failure reporting. A failure prints "<check> check FAILED: ..." (the
 * planted-bug scripts grep for it), counts, and raises the stop flag so the
 * other threads wind down. Only the first few are printed. */
extern _Atomic unsigned stress_failures;
extern _Atomic bool stress_stop;
/* mingw-w64's printf dialect (C99) where the build selects it; clang
 * knows no gnu_printf and checks printf against C99 there. */
#if defined(__MINGW32__) && !defined(__clang__)
#define STRESS_PRINTF gnu_printf
#else
#define STRESS_PRINTF printf
#endif
void fail(const char *check, const char *fmt, ...) __attribute__((format(STRESS_PRINTF, 2, 3)));
static inline bool stopping(void)
{
    /* relaxed: a hint to stop early; results are read after joins. */
    return atomic_load_explicit(&stress_stop, memory_order_relaxed);
}
/* Setup errors (thread creation, allocation): not a finding, exit 2. */
void die(const char *fmt, ...) __attribute__((format(STRESS_PRINTF, 1, 2), noreturn));
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n, size_t size);

/* Memory figures from /proc/self/status, in KiB; 0 if unreadable. */
struct mem {
    size_t rss_kib, hwm_kib;
};
struct mem mem_now(void);
/* Before a check: hands freed heap back to the system and resets VmHWM
 * (Linux >= 4.0), so each check reports its own resident figures. */
void mem_reset_peak(void);

/* Destroys reg and fails check if it left anything allocated or freed a
 * block with the wrong size; returns whether nothing was left. */
bool destroy_and_check_empty(const char *check, portreg_t *reg, struct counting *c);

double now_s(void);
void start_thread(pthread_t *t, void *(*fn)(void *), void *arg);
void join_thread(pthread_t t);

/* One per check; each returns the number of failures it found. */
unsigned check_exchange(const struct cfg *cfg);
unsigned check_iter(const struct cfg *cfg);
unsigned check_reclaim(const struct cfg *cfg);
unsigned check_churn(const struct cfg *cfg);
unsigned check_iterinsert(const struct cfg *cfg);
unsigned check_waiters(const struct cfg *cfg);
unsigned check_eventfd(const struct cfg *cfg);
unsigned check_handles(const struct cfg *cfg);
unsigned check_exits(const struct cfg *cfg);

/* Sleeps for ns nanoseconds: for pacing samplers and watchdogs, never to
 * order threads. */
static inline void nap_ns(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Nanoseconds on the monotonic clock. */
static inline int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
