/*
 * Promises that must hold under every interleaving: each test here
 * reproduces a defect an adversarial review found in 0.2.0 (through the
 * public API) and fails on that code. tests/test_internals.c holds the
 * ones that need a hand inside the table.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if !defined(_WIN32)
#include <sys/wait.h>
#include <unistd.h>
#else
#include <windows.h>
#endif

#include "fixture.h"

TestSuite(robustness, .init = registry_setup, .fini = registry_teardown, .timeout = 60);

static int idf(char *buf, size_t cap, const char *prefix, unsigned i)
{
    return snprintf(buf, cap, "%s-%u", prefix, i);
}

/* Spins politely until flag is set: the condition is the synchronization. */
static void await_flag(atomic_bool *flag)
{
    while (!atomic_load(flag))
        sched_yield();
}

struct reclaimer {
    atomic_bool started, done;
    int rc;
};

static void *reclaim_thread(void *arg)
{
    struct reclaimer *rc = arg;
    atomic_store(&rc->started, true);
    rc->rc = portreg_reclaim(reg);
    atomic_store(&rc->done, true);
    return NULL;
}

/* 0.2.0: portreg_reclaim() held the writer lock while it waited for the
 * iteration's read section to end, and the iteration's track waited for
 * that lock: neither returned. */
Test(robustness, iteration_that_inserts_is_safe_beside_reclaim)
{
    char id[32];
    portreg_iter_t it;

    portreg_iter_init(&it, reg);
    /* Garbage that only the end of our own section can free: the table
     * grows (its old maps are deferred) while we iterate. */
    for (unsigned i = 0; i < 1000; i++)
        cr_assert_eq(portreg_track(reg, id, (size_t)idf(id, sizeof id, "grow", i)), 0);

    struct reclaimer rc = {0};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, reclaim_thread, &rc), 0);
    await_flag(&rc.started);
    /* However long the reclaimer has been waiting for us, inserts and
     * waits on unknown ids (which insert a placeholder) go through. */
    for (unsigned i = 0; i < 300; i++) {
        cr_assert_eq(portreg_track(reg, id, (size_t)idf(id, sizeof id, "more", i)), 0);
        portreg_state_t s;
        cr_assert_eq(portreg_wait(reg, id, (size_t)idf(id, sizeof id, "unknown", i), 0, 1000, &s),
                     PORTREG_ETIMEDOUT);
        sched_yield();
    }
    /* It cannot have finished: our section was open all along. */
    cr_assert_not(atomic_load(&rc.done));
    portreg_iter_fini(&it);
    pthread_join(t, NULL);
    cr_assert_eq(rc.rc, 0);
}

Test(robustness, reclaim_inside_an_iteration_refuses_instead_of_waiting_for_itself)
{
    portreg_iter_t it;
    portreg_iter_init(&it, reg);
    cr_assert_eq(portreg_reclaim(reg), PORTREG_EINVAL);
    portreg_iter_fini(&it);
    cr_assert_eq(portreg_reclaim(reg), 0);
}

/* 0.2.0: placeholders with sleepers counted toward the compaction trigger
 * but could not be dropped, so once they made up half the table every
 * untrack rebuilt it. */
Test(robustness, sleeping_waiters_do_not_make_every_untrack_compact)
{
    enum { SLEEPERS = 100, CYCLES = 3000 };
    static struct bg_wait sl[SLEEPERS];
    static char names[SLEEPERS][32];
    pthread_t t[SLEEPERS];
    char id[32];

    for (unsigned i = 0; i < SLEEPERS; i++) {
        sl[i] = (struct bg_wait){.id = names[i], .seen = 0, .timeout = -1};
        sl[i].len = (size_t)idf(names[i], sizeof names[i], "asleep", i);
        t[i] = bg_wait_start(&sl[i]);
    }
    /* A waiter inserts its placeholder and counts itself on it in one
     * critical section, so this many slots means this many counted. */
    while (stats_now().slots < SLEEPERS)
        sched_yield();

    for (unsigned i = 0; i < CYCLES; i++) {
        int n = idf(id, sizeof id, "churn", i);
        cr_assert_eq(portreg_track(reg, id, (size_t)n), 0);
        cr_assert_eq(portreg_untrack(reg, id, (size_t)n, NULL), 0);
    }
    portreg_stats_t st = stats_now();
    /* Each rebuild is paid for by dozens of untracks (64 once settled). */
    cr_assert_leq(st.compactions, CYCLES / 32, "%lu compactions for %d untracks",
                  (unsigned long)st.compactions, CYCLES);
    cr_assert_leq(st.slots, SLEEPERS + 2 * 64 + 1);

    for (unsigned i = 0; i < SLEEPERS; i++)
        cr_assert_eq(portreg_track(reg, sl[i].id, sl[i].len), 0);
    for (unsigned i = 0; i < SLEEPERS; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(sl[i].rc, 0);
        cr_assert_eq(sl[i].state.status, PORTREG_PENDING);
    }
}

/* 0.2.0: compaction was tried only after an untrack, so timed-out waits on
 * unknown ids left one placeholder each, forever. */
Test(robustness, abandoned_wait_placeholders_are_reclaimed)
{
    enum { WAITS = 3000 };
    char id[32];

    for (unsigned i = 0; i < WAITS; i++) {
        portreg_state_t s;
        int n = idf(id, sizeof id, "gone", i);
        cr_assert_eq(portreg_wait(reg, id, (size_t)n, 0, 20000, &s), PORTREG_ETIMEDOUT);
        cr_assert_eq(s.status, PORTREG_UNTRACKED);
    }
    portreg_stats_t st = stats_now();
    cr_assert_leq(st.slots, 2 * 64 + 1, "%zu placeholders left after %d timed-out waits", st.slots,
                  WAITS);
    cr_assert_eq(st.tracked, 0);
}

/* 0.2.0: the last batch of deferred frees waited for the next writer. */
Test(robustness, deferred_memory_is_freed_after_writers_go_quiet)
{
    char id[32];
    /* All tracked, then all untracked: the last compaction drops a table
     * of 100,000 slots, and no writer comes after it. */
    for (unsigned i = 0; i < 100000; i++)
        cr_assert_eq(portreg_track(reg, id, (size_t)idf(id, sizeof id, "quiet", i)), 0);
    for (unsigned i = 0; i < 100000; i++)
        cr_assert_eq(portreg_untrack(reg, id, (size_t)idf(id, sizeof id, "quiet", i), NULL), 0);
    /* No writer runs from here on. The reclaim thread must free what is
     * deferred once its grace period is over: give it 10 s at most. */
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    portreg_stats_t st;
    for (;;) {
        st = stats_now();
        /* Both: an entry leaves the deferred list just before it is freed. */
        if (st.deferred_bytes == 0 && st.bytes < 256 * 1024)
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        cr_assert_lt(now.tv_sec - start.tv_sec, 10,
                     "%zu bytes held, %zu of them deferred, after 10 s", st.bytes,
                     st.deferred_bytes);
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL); /* polling a condition, with a deadline */
    }
}

Test(robustness, without_the_reclaim_thread_reclaim_frees_everything)
{
    portreg_options_t o;
    portreg_options_init(&o);
    o.no_reclaim_thread = true;
    portreg_t *r = portreg_create(&o);
    cr_assert_not_null(r);
    char id[32];
    for (unsigned i = 0; i < 5000; i++) {
        int n = idf(id, sizeof id, "nt", i);
        cr_assert_eq(portreg_track(r, id, (size_t)n), 0);
        cr_assert_eq(portreg_untrack(r, id, (size_t)n, NULL), 0);
    }
    cr_assert_eq(portreg_reclaim(r), 0);
    portreg_stats_t st;
    cr_assert_eq(portreg_stats(r, &st), 0);
    cr_assert_eq(st.deferred_bytes, 0);
    portreg_destroy(r);
}

/* 0.2.0: an iterator's entry->id passed with a shorter length matched the
 * entry by pointer before ck_ht compared lengths, rebinding another id. */
Test(robustness, ids_match_by_length_and_bytes_never_by_pointer)
{
    char id[32];
    /* Enough ids in a small table that probe sequences cross entries. */
    portreg_options_t o;
    portreg_options_init(&o);
    o.initial_capacity = 16;
    portreg_t *r = portreg_create(&o);
    cr_assert_not_null(r);
    for (unsigned i = 0; i < 400; i++)
        cr_assert_eq(portreg_register(r, id, (size_t)idf(id, sizeof id, "svc", i), 1000, NULL), 0);

    portreg_iter_t it;
    portreg_entry_t e;
    unsigned checked = 0;
    portreg_iter_init(&it, r);
    while (portreg_iter_next(&it, &e)) {
        for (size_t len = 1; len < e.id_len; len++) {
            /* What the registry holds for the prefix, asked with a copy. */
            char copy[32];
            memcpy(copy, e.id, len);
            portreg_state_t by_copy, by_alias;
            cr_assert_eq(portreg_get(r, copy, len, &by_copy), 0);
            cr_assert_eq(portreg_get(r, e.id, len, &by_alias), 0);
            cr_assert_eq(by_alias.status, by_copy.status, "prefix %zu of %.*s", len, (int)e.id_len,
                         e.id);
            cr_assert_eq(by_alias.version, by_copy.version);
            checked++;
        }
    }
    portreg_iter_fini(&it);
    cr_assert_gt(checked, 1000);
    /* And a write through the alias touches only the prefix. */
    portreg_iter_init(&it, r);
    cr_assert(portreg_iter_next(&it, &e));
    char whole[32];
    size_t whole_len = e.id_len;
    memcpy(whole, e.id, whole_len);
    cr_assert_eq(portreg_register(r, e.id, 3, 9999, NULL), 0);
    portreg_iter_fini(&it);
    uint16_t port = 0;
    cr_assert(portreg_lookup(r, whole, whole_len, &port));
    cr_assert_eq(port, 1000);
    cr_assert(portreg_lookup(r, whole, 3, &port));
    cr_assert_eq(port, 9999);
    portreg_destroy(r);
}

/* 0.2.0: now + INT64_MAX overflowed (UBSan aborts in the asan build). */
Test(robustness, huge_timeouts_mean_wait_forever)
{
    portreg_state_t s;
    cr_assert_eq(portreg_track(reg, ID("huge")), 0);
    cr_assert_eq(portreg_get(reg, ID("huge"), &s), 0);
    struct bg_wait w = {.id = "huge", .len = 4, .seen = s.version, .timeout = INT64_MAX};
    pthread_t t = bg_wait_start(&w);
    cr_assert_eq(portreg_register(reg, ID("huge"), 4242, NULL), 0);
    pthread_join(t, NULL);
    cr_assert_eq(w.rc, 0);
    cr_assert_eq(w.state.status, PORTREG_BOUND);
    cr_assert_eq(w.state.port, 4242);
}

/* seen_version 0 on an untracked id: any change wakes the waiter, even a
 * track that an untrack undoes before the waiter runs. */
Test(robustness, wait_on_version_zero_returns_on_any_change)
{
    struct bg_wait w = {.id = "blink", .len = 5, .seen = 0, .timeout = -1};
    pthread_t t = bg_wait_start(&w);
    /* The placeholder appears in the same critical section in which the
     * waiter counts itself on it. */
    while (stats_now().slots < 1)
        sched_yield();
    cr_assert_eq(portreg_track(reg, ID("blink")), 0);
    cr_assert_eq(portreg_untrack(reg, ID("blink"), NULL), 0);
    pthread_join(t, NULL);
    cr_assert_eq(w.rc, 0);
    cr_assert(w.state.status == PORTREG_UNTRACKED || w.state.status == PORTREG_PENDING);
}

static atomic_int attach_rc;

static void *untrack_in_new_thread(void *arg)
{
    (void)arg;
    portreg_state_t prev = {PORTREG_BOUND, 1, 1};
    atomic_store(&attach_rc, portreg_untrack(reg, ID("kept"), &prev));
    return NULL;
}

/* The header now says so: a thread's first call may fail for lack of
 * memory for its epoch record, and then changes nothing. */
Test(robustness, first_call_without_memory_returns_enomem_and_changes_nothing)
{
    /* static: the fixture's teardown destroys the registry, through these
     * hooks, after this function has returned. */
    static struct counting c;
    portreg_options_t o;
    counting_options(&c, &o);
    portreg_destroy(reg);
    reg = portreg_create(&o);
    cr_assert_not_null(reg);
    cr_assert_eq(portreg_track(reg, ID("kept")), 0);
    atomic_store(&c.fail_countdown, 1);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, untrack_in_new_thread, NULL), 0);
    pthread_join(t, NULL);
    cr_assert_eq(atomic_load(&attach_rc), PORTREG_ENOMEM);
    cr_assert_eq(state_of(ID("kept")).status, PORTREG_PENDING);
}

Test(robustness, stats_expose_the_probe_maximum)
{
    char id[32];
    for (unsigned i = 0; i < 5000; i++)
        cr_assert_eq(portreg_track(reg, id, (size_t)idf(id, sizeof id, "p", i)), 0);
    portreg_stats_t st = stats_now();
    cr_assert_gt(st.probe_max, 0);
    /* Random-looking ids probe far less than the reseed threshold. */
    cr_assert_lt(st.probe_max, 16 + 2 * 15);
    cr_assert_eq(st.reseeds, 0);
}

/* Review of 0.3 (2): placeholders whose waiters had left stayed counted as
 * kept, so they were never compacted and max_ids filled up with them. */
Test(robustness, abandoned_placeholders_do_not_fill_max_ids)
{
    portreg_options_t o;
    portreg_options_init(&o);
    o.max_ids = 256;
    portreg_t *r = portreg_create(&o);
    cr_assert_not_null(r);
    char id[32];
    /* Waits that time out while others sleep make rebuilds keep them. */
    for (unsigned i = 0; i < 200; i++) {
        portreg_state_t s;
        int n = idf(id, sizeof id, "abandoned", i);
        cr_assert_eq(portreg_wait(r, id, (size_t)n, 0, 20000, &s), PORTREG_ETIMEDOUT);
    }
    /* Room for all but what compaction may leave (under 1/16 of max_ids). */
    unsigned tracked = 0;
    for (unsigned i = 0; i < 256; i++) {
        int n = idf(id, sizeof id, "real", i);
        int rc = portreg_track(r, id, (size_t)n);
        if (rc == PORTREG_EFULL)
            break;
        cr_assert_eq(rc, 0);
        tracked++;
    }
    cr_assert_geq(tracked, 256 - 256 / 16, "EFULL with only %u ids tracked", tracked);
    cr_assert_eq(portreg_count(r), tracked);
    portreg_destroy(r);
}

/* Review of 0.3 (4): after a call on another registry, reclaim inside an
 * iteration waited for its own thread forever instead of refusing. */
Test(robustness, reclaim_inside_an_iteration_refuses_after_calls_on_another_registry)
{
    portreg_t *other = portreg_create(NULL);
    cr_assert_not_null(other);
    portreg_iter_t it;
    portreg_iter_init(&it, reg);
    cr_assert_eq(portreg_track(other, ID("elsewhere")), 0); /* the thread cache now names other */
    cr_assert_eq(portreg_reclaim(reg), PORTREG_EINVAL);
    portreg_iter_fini(&it);
    cr_assert_eq(portreg_reclaim(reg), 0);
    portreg_destroy(other);
}

/* Review of 0.3 (6): deferred_bytes counted only a compaction's bookkeeping
 * array, not the old table and the slots it dropped. */
Test(robustness, deferred_bytes_counts_everything_waiting_for_a_grace_period)
{
    char id[32];
    for (unsigned i = 0; i < 20000; i++)
        cr_assert_eq(portreg_track(reg, id, (size_t)idf(id, sizeof id, "d", i)), 0);
    /* Our own open iteration holds every grace period back. */
    portreg_iter_t it;
    portreg_iter_init(&it, reg);
    for (unsigned i = 0; i < 20000; i++)
        cr_assert_eq(portreg_untrack(reg, id, (size_t)idf(id, sizeof id, "d", i), NULL), 0);
    portreg_stats_t st = stats_now();
    cr_assert_gt(st.bytes, 1000000);
    cr_assert_lt(st.bytes - st.deferred_bytes, 128 * 1024,
                 "%zu bytes held, only %zu of them counted as deferred", st.bytes,
                 st.deferred_bytes);
    portreg_iter_fini(&it);
}

#if PORTREG_TEST_HAVE_FORK
/* Review of 0.3 (9): a child of fork() has no reclaim thread; it starts its
 * own instead of leaving deferred memory for good. */
Test(robustness, a_forked_child_frees_deferred_memory_on_its_own)
{
    char id[32];
    cr_assert_eq(portreg_track(reg, ID("before-fork")), 0);
    for (unsigned i = 0; i < 2000; i++) { /* the parent's reclaim thread exists now */
        int n = idf(id, sizeof id, "p", i);
        cr_assert_eq(portreg_track(reg, id, (size_t)n), 0);
        cr_assert_eq(portreg_untrack(reg, id, (size_t)n, NULL), 0);
    }
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        alarm(20); /* a child that hangs must not outlive the test */
        for (unsigned i = 0; i < 2000; i++) {
            int n = idf(id, sizeof id, "c", i);
            portreg_track(reg, id, (size_t)n);
            portreg_untrack(reg, id, (size_t)n, NULL);
        }
        for (int ms = 0; ms < 5000; ms++) {
            portreg_stats_t st;
            portreg_stats(reg, &st);
            if (st.deferred_bytes == 0) {
                /* Review, second round (2): destroy in a child hung on the
                 * parent's reclaim thread's condition variable. */
                portreg_destroy(reg);
                _exit(0);
            }
            struct timespec one = {0, 1000000};
            nanosleep(&one, NULL); /* polling a condition, with a deadline */
        }
        _exit(1);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the child still had deferred memory after 5 s");
}

#else
SKIPPED_TEST(robustness, a_forked_child_frees_deferred_memory_on_its_own, "Windows has no fork()")
#endif

/* ---- threads that exit while the registry is destroyed ---- */

#define EXITERS 8

struct exiting_user {
    portreg_t *r;
    pthread_barrier_t *go;
    bool found;
};

static void *use_then_exit(void *arg)
{
    struct exiting_user *u = arg;
    uint16_t port = 0;
    u->found = portreg_lookup(u->r, ID("svc"), &port) && port == 8080;
    pthread_barrier_wait(u->go);
    return NULL; /* the exit hands the record back beside the destroy */
}

/* The header lets threads that used a registry exit at any time, also while
 * it is destroyed: a Rust Arc dropped by one thread as another exits does
 * exactly that. Under ASan and TSan this overlaps the two for real; the
 * deterministic orders are in test_internals.c (thread_exit). */
Test(robustness, threads_may_exit_while_the_registry_is_destroyed)
{
    for (int round = 0; round < 200; round++) {
        struct counting c;
        portreg_t *r = counted_registry(&c);
        cr_assert_eq(portreg_register(r, ID("svc"), 8080, NULL), 0);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, EXITERS + 1);
        struct exiting_user u[EXITERS];
        pthread_t t[EXITERS];
        for (int i = 0; i < EXITERS; i++) {
            u[i] = (struct exiting_user){r, &go, false};
            cr_assert_eq(pthread_create(&t[i], NULL, use_then_exit, &u[i]), 0);
        }
        pthread_barrier_wait(&go);
        portreg_destroy(r);
        for (int i = 0; i < EXITERS; i++) {
            pthread_join(t[i], NULL);
            cr_assert(u[i].found, "round %d, thread %d: lookup failed", round, i);
        }
        pthread_barrier_destroy(&go);
        cr_assert(counting_is_empty(&c), "round %d: the registry's memory leaked", round);
        cr_assert_eq(atomic_load(&c.bad_frees), 0u);
    }
}

/* Registries no longer take a pthread key each: more than PTHREAD_KEYS_MAX
 * (1024 on glibc) live at once, and one thread switching among them finds
 * its record in each, also in registries that reuse the slot numbers of
 * destroyed ones it had used. */
Test(robustness, more_registries_than_pthread_keys)
{
    enum { N = 1500 };
    portreg_t **r = calloc(N, sizeof *r);
    cr_assert_not_null(r);
    for (int i = 0; i < N; i++) {
        r[i] = portreg_create(NULL);
        cr_assert_not_null(r[i], "registry %d: %s", i, strerror(errno));
        cr_assert_eq(portreg_register(r[i], ID("svc"), (uint16_t)(1000 + i), NULL), 0);
    }
    for (int i = 0; i < N; i += 2) {
        portreg_destroy(r[i]);
        r[i] = portreg_create(NULL);
        cr_assert_not_null(r[i]);
        cr_assert_eq(portreg_register(r[i], ID("svc"), (uint16_t)(30000 + i), NULL), 0);
    }
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            uint16_t port = 0;
            cr_assert(portreg_lookup(r[i], ID("svc"), &port), "registry %d lost its id", i);
            cr_assert_eq(port, (uint16_t)(i % 2 == 0 ? 30000 + i : 1000 + i));
        }
    }
    for (int i = 0; i < N; i++)
        portreg_destroy(r[i]);
    free(r);
}

static void *reclaim_batch_on(void *r)
{
    return (void *)(intptr_t)portreg_reclaim(r);
}

static void *alloc_plain(void *ctx, size_t size)
{
    (void)ctx;
    return malloc(size);
}

/* A registry of its own (allocator hooks NULL: the default), without the
 * reclaim thread, after n tracks and untracks of ids named prefix-i made
 * inside an open iteration: it holds the grace period back, so the memory
 * they free stays deferred also with the fenced read side, where every
 * writer polls. */
static portreg_t *deferring_registry(portreg_alloc_fn alloc, portreg_free_fn free_fn,
                                     const char *prefix, unsigned n)
{
    portreg_options_t o;
    portreg_options_init(&o);
    o.alloc = alloc;
    o.free = free_fn;
    o.no_reclaim_thread = true;
    portreg_t *r = portreg_create(&o);
    cr_assert_not_null(r);
    char id[32];
    portreg_iter_t it;
    portreg_iter_init(&it, r);
    for (unsigned i = 0; i < n; i++) {
        int len = idf(id, sizeof id, prefix, i);
        cr_assert_eq(portreg_track(r, id, (size_t)len), 0);
        cr_assert_eq(portreg_untrack(r, id, (size_t)len, NULL), 0);
    }
    portreg_iter_fini(&it);
    return r;
}

#if PORTREG_TEST_HAVE_FORK
/* ---- fork handlers that use the library ---- */

/* No fixture: the first portreg_create() of the process must come after
 * the test's own pthread_atfork(), as in a program that registers its
 * handlers at start-up. */
TestSuite(fork_handlers, .timeout = 60);

static portreg_t *handler_reg;
static _Atomic bool handler_armed;

/* The child's exit status, or -1 if it has not exited within secs (then it
 * is killed): a child stuck in a fork handler cannot time itself out. */
static int child_status_within(pid_t pid, int secs)
{
    int status = 0;
    for (int waited_ms = 0; waited_ms < secs * 1000; waited_ms += 10) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
        struct timespec ten_ms = {0, 10 * 1000 * 1000};
        nanosleep(&ten_ms, NULL); /* polling for a deadline, not ordering */
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

static void child_replaces_the_registry(void)
{
    if (!atomic_load(&handler_armed))
        return;
    portreg_destroy(handler_reg);
    handler_reg = portreg_create(NULL);
}

/* Review of 0.3 (fourth round, 1): the library registered its fork
 * handlers at the first create, after the program's, so the program's
 * child handler ran while the library's lock was still held, and a
 * destroy or create there waited for it forever. */
Test(fork_handlers, a_child_handler_may_destroy_and_create)
{
    cr_assert_eq(pthread_atfork(NULL, NULL, child_replaces_the_registry), 0);
    handler_reg = portreg_create(NULL);
    cr_assert_not_null(handler_reg);
    cr_assert_eq(portreg_register(handler_reg, ID("svc"), 8080, NULL), 0);
    atomic_store(&handler_armed, true);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        /* The handler has run: a new, empty registry that works. */
        uint16_t port = 0;
        bool ok = handler_reg != NULL && !portreg_lookup(handler_reg, ID("svc"), NULL) &&
                  portreg_register(handler_reg, ID("svc"), 9090, NULL) == 0 &&
                  portreg_lookup(handler_reg, ID("svc"), &port) && port == 9090;
        portreg_destroy(handler_reg);
        _exit(ok ? 0 : 1);
    }
    atomic_store(&handler_armed, false);
    int status = child_status_within(pid, 10);
    cr_assert_neq(status, -1, "the child's fork handler did not return");
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the child's registry failed (status %#x)", status);
    uint16_t port = 0;
    cr_assert(portreg_lookup(handler_reg, ID("svc"), &port) && port == 8080);
    portreg_destroy(handler_reg);
}

static pthread_mutex_t program_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic bool churn_stop;

static void take_program_lock(void)
{
    pthread_mutex_lock(&program_lock);
}

static void drop_program_lock(void)
{
    pthread_mutex_unlock(&program_lock);
}

static void *create_destroy_under_program_lock(void *arg)
{
    (void)arg;
    while (!atomic_load(&churn_stop)) {
        pthread_mutex_lock(&program_lock);
        portreg_destroy(portreg_create(NULL));
        pthread_mutex_unlock(&program_lock);
    }
    return NULL;
}

/* Review of 0.3 (fourth round, 2): the same late registration made fork()
 * take the library's lock before the program's prepare handler took the
 * program's own lock, while a thread holding that lock was creating a
 * registry: each waited for the other. */
Test(fork_handlers, fork_beside_a_create_under_the_programs_lock)
{
    cr_assert_eq(pthread_atfork(take_program_lock, drop_program_lock, drop_program_lock), 0);
    portreg_destroy(portreg_create(NULL)); /* the first create comes after */
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, create_destroy_under_program_lock, NULL), 0);
    for (int i = 0; i < 300; i++) {
        pid_t pid = fork(); /* the test's timeout catches a deadlock here */
        cr_assert_neq(pid, -1);
        if (pid == 0)
            _exit(0);
        int status = 0;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
    }
    atomic_store(&churn_stop, true);
    pthread_join(t, NULL);
}

/* Defect of 0.3.0: a forked child's first call set up the registry's
 * reclaim lock again before it published that it had, so two threads
 * making their first calls at once could both do it, one while the other
 * held the lock (double free, or a mutex assertion, in 3 to 4 children of
 * 300). The child's fork handler does it now, before any thread exists. */
static pthread_barrier_t child_start;

static void *reclaim_at_once(void *arg)
{
    pthread_barrier_wait(&child_start);
    return (void *)(intptr_t)portreg_reclaim(arg);
}

Test(robustness, threads_of_a_forked_child_may_make_their_first_calls_at_once, .timeout = 120)
{
    /* Without the reclaim thread, memory stays deferred in the parent, so
     * every child's reclaims have a list to detach. */
    portreg_t *r = deferring_registry(NULL, NULL, "f", 1000);
    portreg_stats_t st;
    cr_assert_eq(portreg_stats(r, &st), 0);
    cr_assert_gt(st.deferred_bytes, 0);
    unsigned failed = 0;
    for (int child = 0; child < 300; child++) {
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            alarm(20); /* a child that hangs must not outlive the test */
            enum { THREADS = 4 };
            pthread_barrier_init(&child_start, NULL, THREADS);
            pthread_t t[THREADS];
            for (int i = 0; i < THREADS; i++)
                if (pthread_create(&t[i], NULL, reclaim_at_once, r) != 0)
                    _exit(2);
            int bad = 0;
            for (int i = 0; i < THREADS; i++) {
                void *rc;
                pthread_join(t[i], &rc);
                bad += rc != NULL;
            }
            portreg_destroy(r);
            _exit(bad == 0 ? 0 : 1);
        }
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    cr_assert_eq(failed, 0, "%u of 300 children failed", failed);
    portreg_destroy(r);
}

/* Defect of 0.3.0: fork() could copy a list of deferred memory that a
 * thread had detached and was freeing. The child has no such thread, and
 * the list was on no other: all of it leaked there. Now entries are freed
 * one at a time off a list the child keeps; only the one whose free was
 * under way at the fork stays allocated in the child (it cannot tell how
 * far that free got, and fork() must not wait for an allocator hook). Here
 * the fork comes while a reclaim is inside its first free, held there
 * until the fork has returned (or two seconds at most). */
static struct {
    atomic_llong live;
    atomic_bool armed, in_free, forked;
} batch;

static void *alloc_live(void *ctx, size_t size)
{
    (void)ctx;
    void *p = malloc(size);
    if (p != NULL)
        atomic_fetch_add(&batch.live, (long long)size);
    return p;
}

static void free_stalling(void *ctx, void *p, size_t size)
{
    (void)ctx;
    if (atomic_exchange(&batch.armed, false)) {
        atomic_store(&batch.in_free, true);
        struct timespec start, now;
        clock_gettime(CLOCK_MONOTONIC, &start);
        do {
            sched_yield();
            clock_gettime(CLOCK_MONOTONIC, &now);
        } while (!atomic_load(&batch.forked) && now.tv_sec - start.tv_sec < 2);
    }
    atomic_fetch_sub(&batch.live, (long long)size);
    free(p);
}

static void *reclaim_batch(void *arg)
{
    atomic_store(&batch.armed, true);
    return (void *)(intptr_t)portreg_reclaim(arg);
}

Test(robustness, a_fork_while_a_batch_is_freed_neither_leaks_it_nor_frees_it_twice)
{
    portreg_t *r = deferring_registry(alloc_live, free_stalling, "batch", 1000);
    portreg_stats_t st;
    cr_assert_eq(portreg_stats(r, &st), 0);
    /* Many batches (old tables, dropped slots), none a large part. */
    cr_assert_gt(st.compactions, 8);
    cr_assert_gt(st.deferred_bytes, 0);
    long long deferred = (long long)st.deferred_bytes;
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, reclaim_batch, r), 0);
    await_flag(&batch.in_free);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        alarm(20);
        long long live_at_fork = atomic_load(&batch.live);
        portreg_destroy(r);
        long long left = atomic_load(&batch.live);
        /* Not negative (nothing freed twice), and at most the batch whose
         * free was under way: far less than all that was deferred. */
        _exit(left >= 0 && left * 4 < deferred && live_at_fork > left ? 0 : 1);
    }
    atomic_store(&batch.forked, true);
    void *rc;
    pthread_join(t, &rc);
    cr_assert_null(rc);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "the child died (signal %d)", WTERMSIG(status));
    cr_assert_eq(WEXITSTATUS(status), 0, "the child's destroy left the deferred memory allocated");
    portreg_destroy(r);
    cr_assert_eq(atomic_load(&batch.live), 0);
}

/* Review of the fork fix (1): freeing a batch under a lock that the fork
 * handlers take deadlocked fork() with an allocator that is fork-safe the
 * usual way: its own mutex, taken by a prepare handler the program
 * registers after the library's (so it runs first). The forking thread
 * held the pool's mutex and waited for the registry's; the freeing thread
 * held the registry's and waited in its free hook for the pool's. The
 * semaphores force the interleaving a race produced within a few forks. */
static struct {
    pthread_mutex_t lock;
    atomic_bool armed;
    sem_t in_free, go;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *pool_alloc(void *ctx, size_t size)
{
    (void)ctx;
    pthread_mutex_lock(&pool.lock);
    void *p = malloc(size);
    pthread_mutex_unlock(&pool.lock);
    return p;
}

static void pool_free(void *ctx, void *p, size_t size)
{
    (void)ctx;
    (void)size;
    if (atomic_exchange(&pool.armed, false)) {
        sem_post(&pool.in_free);
        sem_wait(&pool.go); /* until the fork's prepare handlers run */
    }
    pthread_mutex_lock(&pool.lock);
    free(p);
    pthread_mutex_unlock(&pool.lock);
}

static void pool_prepare(void)
{
    pthread_mutex_lock(&pool.lock);
    sem_post(&pool.go); /* the freeing thread goes on, and needs the lock */
}

static void pool_after_fork(void)
{
    pthread_mutex_unlock(&pool.lock);
}

static void fork_hung(int sig)
{
    (void)sig;
    static const char msg[] = "fork() hung: the pool's lock against the registry's\n";
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
    _exit(3);
}

Test(robustness, fork_never_waits_for_an_allocator_hook)
{
    sem_init(&pool.in_free, 0, 0);
    sem_init(&pool.go, 0, 0);
    cr_assert_eq(pthread_atfork(pool_prepare, pool_after_fork, pool_after_fork), 0);
    portreg_t *r = deferring_registry(pool_alloc, pool_free, "pool", 1000);
    pthread_t t;
    atomic_store(&pool.armed, true);
    cr_assert_eq(pthread_create(&t, NULL, reclaim_batch_on, r), 0);
    sem_wait(&pool.in_free);
    signal(SIGALRM, fork_hung);
    alarm(10);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(0);
    alarm(0);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    void *rc;
    pthread_join(t, &rc);
    cr_assert_null(rc);
    portreg_destroy(r);
}
#else
TestSuite(fork_handlers);
SKIPPED_TEST(fork_handlers, a_child_handler_may_destroy_and_create, "Windows has no fork()")
SKIPPED_TEST(fork_handlers, fork_beside_a_create_under_the_programs_lock, "Windows has no fork()")
SKIPPED_TEST(robustness, threads_of_a_forked_child_may_make_their_first_calls_at_once,
             "Windows has no fork()")
SKIPPED_TEST(robustness, a_fork_while_a_batch_is_freed_neither_leaks_it_nor_frees_it_twice,
             "Windows has no fork()")
SKIPPED_TEST(robustness, fork_never_waits_for_an_allocator_hook, "Windows has no fork()")
#endif

/* Review of the fork fix (2): an allocator hook that calls
 * portreg_reclaim() on the registry whose memory it is freeing waited for
 * itself. It is refused now (what it would wait for is its caller). */
static struct {
    portreg_t *reg;
    atomic_bool armed;
    atomic_int rc;
} nested = {.rc = 1};

static void free_reclaiming(void *ctx, void *p, size_t size)
{
    (void)ctx;
    (void)size;
    if (atomic_exchange(&nested.armed, false))
        atomic_store(&nested.rc, portreg_reclaim(nested.reg));
    free(p);
}

Test(robustness, reclaim_from_a_free_hook_of_the_same_registry_is_refused)
{
    portreg_t *r = nested.reg = deferring_registry(alloc_plain, free_reclaiming, "nested", 300);
    atomic_store(&nested.armed, true);
    cr_assert_eq(portreg_reclaim(r), 0);
    cr_assert(!atomic_load(&nested.armed), "no free ran inside the reclaim");
    cr_assert_eq(atomic_load(&nested.rc), PORTREG_EINVAL);
    portreg_destroy(r);
}

/* Review of the fork fix (3), and 0.3.0 already: while another thread
 * freed a batch it had taken off the list, portreg_reclaim() found the
 * list empty and returned, with memory deferred before the call still
 * allocated. It waits for that free now. */
static struct {
    atomic_bool armed, in_free, go, finished, entered;
} slow;

static void free_slowly(void *ctx, void *p, size_t size)
{
    (void)ctx;
    (void)size;
    bool mine = atomic_exchange(&slow.armed, false);
    if (mine) {
        atomic_store(&slow.in_free, true);
        await_flag(&slow.go);
    }
    free(p);
    if (mine)
        atomic_store(&slow.finished, true);
}

static void *reclaim_then_check(void *arg)
{
    atomic_store(&slow.entered, true);
    int rc = portreg_reclaim(arg);
    /* Everything deferred before the call is freed: the slow free too. */
    return (void *)(intptr_t)(rc == 0 && atomic_load(&slow.finished) ? 0 : 1);
}

Test(robustness, reclaim_waits_for_a_batch_another_thread_is_freeing)
{
    portreg_t *r = deferring_registry(alloc_plain, free_slowly, "slow", 1000);
    pthread_t freer, checker;
    atomic_store(&slow.armed, true);
    cr_assert_eq(pthread_create(&freer, NULL, reclaim_batch_on, r), 0);
    await_flag(&slow.in_free);
    cr_assert_eq(pthread_create(&checker, NULL, reclaim_then_check, r), 0);
    await_flag(&slow.entered);
    /* Give a reclaim that does not wait the time to return early. */
    struct timespec pause = {0, 100 * 1000000};
    nanosleep(&pause, NULL);
    atomic_store(&slow.go, true);
    void *rc;
    pthread_join(checker, &rc);
    cr_assert_null(rc, "portreg_reclaim() returned before the free it owed had run");
    pthread_join(freer, &rc);
    cr_assert_null(rc);
    portreg_destroy(r);
}

/* Second review (D2, D3): a free hook of registry A that reclaimed B (so
 * ran B's frees inside A's) forgot that it was still inside A's free, and
 * its reclaim of A then waited for itself; two hooks reclaiming each
 * other's registries waited for each other. A reclaim from inside any
 * allocator hook's free is refused now. */
static struct {
    portreg_t *a, *b;
    atomic_bool armed;
    atomic_int rc_b, rc_a;
} cross = {.rc_b = 1, .rc_a = 1};

static void free_reclaiming_both(void *ctx, void *p, size_t size)
{
    (void)ctx;
    (void)size;
    if (atomic_exchange(&cross.armed, false)) {
        atomic_store(&cross.rc_b, portreg_reclaim(cross.b));
        atomic_store(&cross.rc_a, portreg_reclaim(cross.a));
    }
    free(p);
}

static void free_plain_hook(void *ctx, void *p, size_t size)
{
    (void)ctx;
    (void)size;
    free(p);
}

Test(robustness, reclaim_from_inside_any_free_hook_is_refused)
{
    cross.b = deferring_registry(alloc_plain, free_plain_hook, "b", 300);
    cross.a = deferring_registry(alloc_plain, free_reclaiming_both, "a", 300);
    atomic_store(&cross.armed, true);
    cr_assert_eq(portreg_reclaim(cross.a), 0);
    cr_assert(!atomic_load(&cross.armed), "no free ran inside the reclaim");
    cr_assert_eq(atomic_load(&cross.rc_b), PORTREG_EINVAL);
    cr_assert_eq(atomic_load(&cross.rc_a), PORTREG_EINVAL);
    portreg_destroy(cross.a);
    portreg_destroy(cross.b);
}

/* Second review (D4): with one thread freeing everything the others took
 * off the list, one slow free hook let the backlog grow without bound (a
 * stalled hook: 19 MB held after 100,000 churn cycles; 0.3.0: 79 KiB).
 * Each thread frees the batch it took again, so a stalled free stalls
 * only its own batch. */
static struct {
    atomic_llong live;
    atomic_bool armed, in_free, go;
} stall;

static void *alloc_counted_stall(void *ctx, size_t size)
{
    (void)ctx;
    void *p = malloc(size);
    if (p != NULL)
        atomic_fetch_add(&stall.live, (long long)size);
    return p;
}

static void free_stalled(void *ctx, void *p, size_t size)
{
    (void)ctx;
    if (atomic_exchange(&stall.armed, false)) {
        atomic_store(&stall.in_free, true);
        await_flag(&stall.go);
    }
    atomic_fetch_sub(&stall.live, (long long)size);
    free(p);
}

Test(robustness, a_stalled_free_hook_does_not_hold_back_other_threads_frees)
{
    portreg_t *r = deferring_registry(alloc_counted_stall, free_stalled, "warm", 1000);
    char id[32];
    atomic_store(&stall.armed, true);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, reclaim_batch_on, r), 0);
    await_flag(&stall.in_free);
    for (unsigned i = 0; i < 100000; i++) {
        int n = idf(id, sizeof id, "churn", i);
        cr_assert_eq(portreg_track(r, id, (size_t)n), 0);
        cr_assert_eq(portreg_untrack(r, id, (size_t)n, NULL), 0);
    }
    long long held = atomic_load(&stall.live);
    atomic_store(&stall.go, true);
    void *rc;
    pthread_join(t, &rc);
    cr_assert_null(rc);
    cr_assert_lt(held, 4 << 20, "%lld bytes held after 100,000 cycles beside a stalled free", held);
    portreg_destroy(r);
    cr_assert_eq(atomic_load(&stall.live), 0);
}

#if PORTREG_TEST_HAVE_FORK
/* Review of the OS layer (1, 2): the POSIX backend's writer lock was a
 * mutex, a condition variable and a flag. A forked child's destroy waited
 * in pthread_cond_destroy() for parent threads that had been waiting for
 * the lock (they do not exist in the child), and its try-lock could block
 * on the mutex. The lock is one word on the backend's word waits now. The
 * Linux backend never hung here; this keeps both honest. */
static atomic_bool lockers_stop;

static void *churn_until_stopped(void *arg)
{
    char id[32];
    for (unsigned n = 0; !atomic_load(&lockers_stop); n++) {
        int len = idf(id, sizeof id, arg, n % 5000);
        if (strcmp(arg, "waited") == 0) {
            portreg_wait(reg, id, (size_t)len, 0, 1000, NULL); /* takes the writer lock */
        } else {
            portreg_track(reg, id, (size_t)len);
            portreg_untrack(reg, id, (size_t)len, NULL);
        }
    }
    return NULL;
}

Test(robustness, a_child_destroys_a_registry_whose_writer_lock_parent_threads_wanted,
     .timeout = 120)
{
    pthread_t t[3];
    cr_assert_eq(pthread_create(&t[0], NULL, churn_until_stopped, "churned"), 0);
    cr_assert_eq(pthread_create(&t[1], NULL, churn_until_stopped, "waited"), 0);
    cr_assert_eq(pthread_create(&t[2], NULL, churn_until_stopped, "waited"), 0);
    unsigned hung = 0;
    for (int i = 0; i < 200; i++) {
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            alarm(5); /* a child that hangs must not outlive the test */
            portreg_destroy(reg);
            _exit(0);
        }
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        hung += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    atomic_store(&lockers_stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(hung, 0, "%u of 200 children hung in destroy", hung);
}
#endif

#if defined(_WIN32)
/* ---- fibers (Windows) ---- */

struct fiber_call {
    portreg_t *r;
    void *back; /* the fiber that switched to this one */
    int rc;
};

static void WINAPI track_from_a_fiber(void *arg)
{
    struct fiber_call *c = arg;
    c->rc = portreg_track(c->r, "fiber", 5);
    SwitchToFiber(c->back);
}

/* Found by the win32 review: DeleteFiber() runs the deleted fiber's
 * fiber-local storage callbacks on the calling thread, which lives on. The
 * thread-exit callback took that for the thread's exit and gave back the
 * thread's epoch records while it held an iteration open: reclaim then
 * freed the memory the iteration was still reading. */
Test(robustness, deleting_a_fiber_leaves_the_thread_inside_its_iteration)
{
    void *self = ConvertThreadToFiber(NULL);
    cr_assert_not_null(self);
    portreg_options_t o;
    portreg_options_init(&o);
    o.no_reclaim_thread = true; /* only this test frees deferred memory */
    portreg_t *r = portreg_create(&o);
    portreg_t *other = portreg_create(NULL);
    cr_assert(r != NULL && other != NULL);
    /* The fiber's call is the thread's first: the exit key's value is set
     * in the fiber's own storage. */
    struct fiber_call c = {other, self, -1};
    void *fiber = CreateFiber(0, track_from_a_fiber, &c);
    cr_assert_not_null(fiber);
    SwitchToFiber(fiber);
    cr_assert_eq(c.rc, 0);

    char id[32];
    for (unsigned i = 0; i < 100; i++) {
        int len = idf(id, sizeof id, "stable", i);
        cr_assert_eq(portreg_track(r, id, (size_t)len), 0);
    }
    cr_assert_eq(portreg_reclaim(r), 0);
    portreg_iter_t it;
    portreg_iter_init(&it, r);
    /* Memory deferred under the iteration: the tables compactions replace. */
    for (unsigned i = 0; i < 1000; i++) {
        int len = idf(id, sizeof id, "churn", i);
        cr_assert_eq(portreg_track(r, id, (size_t)len), 0);
        cr_assert_eq(portreg_untrack(r, id, (size_t)len, NULL), 0);
    }
    portreg_stats_t before, after;
    cr_assert_eq(portreg_stats(r, &before), 0);
    cr_assert_gt(before.deferred_bytes, 0);

    DeleteFiber(fiber);
    cr_assert_eq(portreg_reclaim(r), PORTREG_EINVAL,
                 "reclaim does not see the thread inside its iteration");
    cr_assert_eq(portreg_stats(r, &after), 0);
    cr_assert_eq(after.deferred_bytes, before.deferred_bytes, "%zu of %zu deferred bytes freed",
                 before.deferred_bytes - after.deferred_bytes, before.deferred_bytes);
    unsigned stable = 0;
    portreg_entry_t e;
    while (portreg_iter_next(&it, &e))
        stable += e.id_len > 7 && memcmp(e.id, "stable-", 7) == 0;
    portreg_iter_fini(&it);
    cr_assert_eq(stable, 100);
    cr_assert_eq(portreg_reclaim(r), 0);
    cr_assert_eq(portreg_stats(r, &after), 0);
    cr_assert_eq(after.deferred_bytes, 0);
    portreg_destroy(r);
    portreg_destroy(other);
    cr_assert(ConvertFiberToThread());
}
#endif
