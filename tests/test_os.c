/*
 * The operating system layer (src/os/os.h), on whichever backend this
 * build uses (PORTREG_OS): what its contract promises, including across
 * fork(). Linked against the library's objects.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#if defined(_WIN32)
#include <windows.h>
#else
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "os/os.h"

TestSuite(os, .timeout = 60);

/* A word two threads pass back and forth. */
struct pingpong {
    _Alignas(8) uint32_t word;
    unsigned rounds;
    unsigned early; /* wait32 returns that found the word unchanged */
};

static uint32_t load32(const uint32_t *w)
{
    return __atomic_load_n(w, __ATOMIC_SEQ_CST);
}

/* Waits until the word is odd, makes it even, wakes; rounds times. */
static void *pong(void *arg)
{
    struct pingpong *p = arg;
    for (unsigned i = 0; i < p->rounds; i++) {
        uint32_t v;
        while ((v = load32(&p->word)) % 2 == 0) {
            portreg__os_wait32(&p->word, v, -1);
            if (load32(&p->word) == v)
                p->early++;
        }
        __atomic_store_n(&p->word, v + 1, __ATOMIC_SEQ_CST);
        portreg__os_wake32(&p->word);
    }
    return NULL;
}

/* Every change is followed by a wake, and every waiter compares and sleeps
 * with no deadline: a single lost wake-up leaves both threads asleep for
 * good, and the suite's timeout fails the test. */
Test(os, no_wake_up_is_lost_between_two_threads)
{
    struct pingpong p = {.word = 0, .rounds = 20000};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, pong, &p), 0);
    for (unsigned i = 0; i < p.rounds; i++) {
        uint32_t v;
        while ((v = load32(&p.word)) % 2 == 1)
            portreg__os_wait32(&p.word, v, -1);
        __atomic_store_n(&p.word, v + 1, __ATOMIC_SEQ_CST);
        portreg__os_wake32(&p.word);
    }
    pthread_join(t, NULL);
    cr_assert_eq(load32(&p.word), 2 * p.rounds);
    cr_log_info("%u early returns in %u rounds", p.early, p.rounds);
}

Test(os, a_wait_on_a_changed_word_returns_at_once)
{
    uint32_t w = 5;
    int64_t t0 = portreg__os_now_ns();
    portreg__os_wait32(&w, 4, t0 + 10LL * 1000000000);
    cr_assert_lt(portreg__os_now_ns() - t0, 5LL * 1000000000, "it slept on a changed word");
}

Test(os, a_wait_ends_by_its_deadline)
{
    uint32_t w = 5;
    int64_t deadline = portreg__os_now_ns() + 50 * 1000000;
    /* Early returns are allowed: wait until the deadline, as callers do. */
    while (portreg__os_now_ns() < deadline)
        portreg__os_wait32(&w, 5, deadline);
    cr_assert_lt(portreg__os_now_ns() - deadline, 5LL * 1000000000);
}

struct neighbour {
    _Alignas(8) uint32_t word;
    _Atomic bool asleep;
    _Atomic bool returned_unchanged_exit; /* the loop ended without a change */
};

static void *wait_for_change(void *arg)
{
    struct neighbour *n = arg;
    atomic_store(&n->asleep, true);
    while (load32(&n->word) == 0)
        portreg__os_wait32(&n->word, 0, -1);
    if (load32(&n->word) != 1)
        atomic_store(&n->returned_unchanged_exit, true);
    return NULL;
}

/* Wakes of other words (which may share the waiter's bucket or hash slot)
 * are at most spurious wake-ups: the waiter goes back to sleep, and its
 * own wake still reaches it. */
Test(os, wakes_of_other_words_do_not_end_or_lose_a_wait)
{
    static uint32_t others[4096];
    struct neighbour n = {.word = 0};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, wait_for_change, &n), 0);
    while (!atomic_load(&n.asleep))
        sched_yield();
    for (int round = 0; round < 20; round++)
        for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
            portreg__os_wake32(&others[i]);
    __atomic_store_n(&n.word, 1, __ATOMIC_SEQ_CST);
    portreg__os_wake32(&n.word);
    pthread_join(t, NULL);
    cr_assert_not(atomic_load(&n.returned_unchanged_exit));
}

#if !defined(_WIN32)
static void *wait_forever(void *arg)
{
    uint32_t *w = arg;
    while (load32(w) == 0)
        portreg__os_wait32(w, 0, -1);
    return NULL;
}

/* A thread of the parent sleeps on a word when the process forks: in the
 * child (where that thread does not exist) waits and wakes on the same
 * word still work. */
#endif
Test(os, waits_and_wakes_work_in_a_child_forked_during_a_wait)
{
#if defined(_WIN32)
    cr_skip_test("Windows has no fork()");
#else
    static uint32_t w;
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, wait_forever, &w), 0);
    struct timespec ms = {0, 20 * 1000000};
    nanosleep(&ms, NULL); /* not needed for correctness: makes the sleeper likelier asleep */
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        portreg__os_wake32(&w);
        int64_t deadline = portreg__os_now_ns() + 20 * 1000000;
        while (portreg__os_now_ns() < deadline)
            portreg__os_wait32(&w, 0, deadline);
        portreg__os_wake32(&w);
        _exit(0);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    __atomic_store_n(&w, 1, __ATOMIC_SEQ_CST);
    portreg__os_wake32(&w);
    pthread_join(t, NULL);
#endif
}

/* A notifier signalled far more often than it is read never blocks the
 * signaller and stays readable until drained (Windows: an auto-reset event,
 * signalled until one wait takes it). */
#if defined(_WIN32)
Test(os, a_notifier_never_blocks_and_one_wait_re_arms_it)
{
    struct portreg_os_notifier n;
    cr_assert_eq(portreg__os_notifier_open(&n), 0);
    cr_assert_eq(n.poll_fd, n.signal_fd);
    HANDLE h = (HANDLE)(intptr_t)n.poll_fd;
    cr_assert_eq(WaitForSingleObject(h, 0), WAIT_TIMEOUT);
    for (int i = 0; i < 200000; i++)
        portreg__os_notifier_signal(&n);
    cr_assert_eq(WaitForSingleObject(h, 0), WAIT_OBJECT_0);
    cr_assert_eq(WaitForSingleObject(h, 0), WAIT_TIMEOUT, "taken, so re-armed");
    portreg__os_notifier_signal(&n);
    cr_assert_eq(WaitForSingleObject(h, 0), WAIT_OBJECT_0);
    portreg__os_notifier_close(&n);
}
#else
Test(os, a_notifier_never_blocks_and_reads_until_eagain)
{
    struct portreg_os_notifier n;
    cr_assert_eq(portreg__os_notifier_open(&n), 0);
    struct pollfd p = {n.poll_fd, POLLIN, 0};
    cr_assert_eq(poll(&p, 1, 0), 0);
    for (int i = 0; i < 200000; i++)
        portreg__os_notifier_signal(&n);
    cr_assert_eq(poll(&p, 1, 0), 1);
    char buf[4096];
    ssize_t got;
    while ((got = read(n.poll_fd, buf, sizeof buf)) > 0)
        ;
    cr_assert_eq(got, -1);
    cr_assert_eq(errno, EAGAIN);
    cr_assert_eq(poll(&p, 1, 0), 0, "drained, so re-armed");
    portreg__os_notifier_signal(&n);
    cr_assert_eq(poll(&p, 1, 0), 1);
    portreg__os_notifier_close(&n);
}
#endif

struct held {
    struct portreg_os_lock *l;
    int64_t hold_ns;
    _Atomic bool locked;
};

/* Takes the lock, holds it hold_ns (its holder at work), gives it back. */
static void *hold_for_a_while(void *arg)
{
    struct held *h = arg;
    portreg__os_lock(h->l);
    atomic_store(&h->locked, true);
    struct timespec ts = {(time_t)(h->hold_ns / 1000000000), (long)(h->hold_ns % 1000000000)};
    nanosleep(&ts, NULL);
    portreg__os_unlock(h->l);
    return NULL;
}

Test(os, a_timed_lock_gives_up_at_its_deadline_and_gets_a_freed_lock)
{
    struct portreg_os_lock l;
    cr_assert_eq(portreg__os_lock_init(&l), 0);
    struct held h = {.l = &l, .hold_ns = 300 * 1000000};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, hold_for_a_while, &h), 0);
    while (!atomic_load(&h.locked))
        sched_yield();
    cr_assert_not(portreg__os_trylock(&l));
    int64_t deadline = portreg__os_now_ns() + 30 * 1000000;
    cr_assert_not(portreg__os_lock_until(&l, deadline));
    cr_assert_geq(portreg__os_now_ns(), deadline, "gave up before its deadline");
    /* Unlocked by its holder while we wait: we get it, long before our
     * distant deadline. */
    int64_t t0 = portreg__os_now_ns();
    cr_assert(portreg__os_lock_until(&l, t0 + 30LL * 1000000000));
    cr_assert_lt(portreg__os_now_ns() - t0, 20LL * 1000000000, "slept through the unlock");
    portreg__os_unlock(&l);
    pthread_join(t, NULL);
    cr_assert(portreg__os_trylock(&l));
    portreg__os_unlock(&l);
    portreg__os_lock_destroy(&l);
}

Test(os, random_bytes_differ_between_calls)
{
    uint64_t a = 0, b = 0;
    cr_assert(portreg__os_random(&a, sizeof a));
    cr_assert(portreg__os_random(&b, sizeof b));
    cr_assert_neq(a, b);
}

Test(os, a_condition_wait_ends_by_its_deadline)
{
    portreg_os_mutex m = PORTREG_OS_MUTEX_INITIALIZER;
    portreg_os_cond c;
    cr_assert_eq(portreg__os_cond_init(&c), 0);
    portreg__os_mutex_lock(&m);
    int64_t deadline = portreg__os_now_ns() + 30 * 1000000;
    while (portreg__os_now_ns() < deadline)
        portreg__os_cond_wait_until(&c, &m, deadline);
    portreg__os_mutex_unlock(&m);
    cr_assert_lt(portreg__os_now_ns() - deadline, 5LL * 1000000000);
    portreg__os_cond_destroy(&c);
}
