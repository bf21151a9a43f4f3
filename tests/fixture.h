/* What most test files share: one fresh registry per test. */
#ifndef PORTREG_TEST_FIXTURE_H
#define PORTREG_TEST_FIXTURE_H

#include <criterion/criterion.h>
#include <pthread.h>
#include <time.h>

#include "portreg.h"
#include "testsupport.h"

static portreg_t *reg;

static inline void registry_setup(void)
{
    reg = portreg_create(NULL);
    cr_assert_not_null(reg);
}

static inline void registry_teardown(void)
{
    portreg_destroy(reg);
}

/* A registry of the test's own whose every allocation goes through c
 * (zeroed first; see testsupport.h). */
static inline portreg_t *counted_registry(struct counting *c)
{
    portreg_options_t o;
    counting_options(c, &o);
    portreg_t *r = portreg_create(&o);
    cr_assert_not_null(r);
    return r;
}

/* The state of id, asserting that get succeeds. */
static inline portreg_state_t state_of(const char *id, size_t len)
{
    portreg_state_t s;
    cr_assert_eq(portreg_get(reg, id, len, &s), 0);
    return s;
}

/* The registry's statistics now, asserting that stats succeeds. */
static inline portreg_stats_t stats_now(void)
{
    portreg_stats_t st;
    cr_assert_eq(portreg_stats(reg, &st), 0);
    return st;
}

/* A portreg_wait() on a thread of its own: what it asked, what it got, and
 * how long it took (wall clock and the thread's CPU time). */
struct bg_wait {
    const char *id;
    size_t len;
    uint32_t seen;
    int64_t timeout;
    int rc;
    portreg_state_t state;
    double ms, cpu_ms;
};

static inline double ms_between(struct timespec a, struct timespec b)
{
    return (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
}

/* A thread body: runs the wait that arg (a struct bg_wait) describes. */
static inline void *bg_wait_run(void *arg)
{
    struct bg_wait *w = arg;
    struct timespec a, b, ca, cb;
    clock_gettime(CLOCK_MONOTONIC, &a);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ca);
    w->rc = portreg_wait(reg, w->id, w->len, w->seen, w->timeout, &w->state);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cb);
    clock_gettime(CLOCK_MONOTONIC, &b);
    w->ms = ms_between(a, b);
    w->cpu_ms = ms_between(ca, cb);
    return NULL;
}

static inline pthread_t bg_wait_start(struct bg_wait *w)
{
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, bg_wait_run, w), 0);
    return t;
}

#endif
