/*
 * The Linux backend of os.h (glibc and musl): futex(2) for word waits,
 * membarrier(2) for the asymmetric barrier, eventfd(2), getrandom(2).
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "os/os.h"

void portreg__os_wait32(const uint32_t *word, uint32_t expected, int64_t deadline)
{
    struct timespec ts, *tsp = NULL;
    if (deadline >= 0) {
        ts = portreg__os_timespec(deadline);
        tsp = &ts;
    }
    /* The kernel compares *word with expected under its own lock and sleeps
     * only if they are equal: a wake after the change cannot be lost. An
     * absolute CLOCK_MONOTONIC deadline: early wake-ups do not stretch it. */
    syscall(SYS_futex, word, FUTEX_WAIT_BITSET_PRIVATE, expected, tsp, NULL,
            FUTEX_BITSET_MATCH_ANY);
}

void portreg__os_wake32(const uint32_t *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

bool portreg__os_heavy_barrier_setup(void)
{
    static _Atomic int state; /* 0 unknown, 1 available, -1 not */
    /* acquire/release: only the value is shared; registering twice (two
     * first registries at once) is harmless. */
    int s = atomic_load_explicit(&state, memory_order_acquire);
    if (s == 0) {
        long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
        bool ok = cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
                  syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
        s = ok ? 1 : -1;
        atomic_store_explicit(&state, s, memory_order_release);
    }
    return s > 0;
}

int portreg__os_heavy_barrier(void)
{
    return syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0 ? 0 : errno;
}

bool portreg__os_random(void *buf, size_t len)
{
    return getrandom(buf, len, GRND_NONBLOCK) == (ssize_t)len;
}

void portreg__os_advise_huge_pages(void *p, size_t len)
{
    (void)madvise(p, len, MADV_HUGEPAGE);
}

int portreg__os_notifier_open(struct portreg_os_notifier *n)
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return errno;
    n->poll_fd = n->signal_fd = fd;
    return 0;
}

void portreg__os_notifier_signal(const struct portreg_os_notifier *n)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is saturated: already readable. */
    ssize_t r = write(n->signal_fd, &one, sizeof one);
    (void)r;
}

void portreg__os_notifier_close(struct portreg_os_notifier *n)
{
    close(n->poll_fd);
    n->poll_fd = n->signal_fd = -1;
}

int portreg__os_lock_init(struct portreg_os_lock *l)
{
    return pthread_mutex_init(&l->m, NULL);
}

void portreg__os_lock_destroy(struct portreg_os_lock *l)
{
    pthread_mutex_destroy(&l->m);
}

void portreg__os_lock(struct portreg_os_lock *l)
{
    pthread_mutex_lock(&l->m);
}

bool portreg__os_trylock(struct portreg_os_lock *l)
{
    return pthread_mutex_trylock(&l->m) == 0;
}

bool portreg__os_lock_until(struct portreg_os_lock *l, int64_t deadline)
{
    if (deadline < 0) {
        pthread_mutex_lock(&l->m);
        return true;
    }
    /* pthread_mutex_timedlock() takes a CLOCK_REALTIME deadline (the
     * CLOCK_MONOTONIC variant is invisible to ThreadSanitizer): wait in
     * slices of at most 10 ms, each checked against the monotonic
     * deadline. A forward jump of the wall clock only ends a slice early;
     * a backward jump during a slice stretches that slice by the jump. */
    for (;;) {
        int64_t left = deadline - portreg__os_now_ns();
        if (left <= 0)
            return pthread_mutex_trylock(&l->m) == 0;
        if (left > 10000000)
            left = 10000000;
        struct timespec wall;
        clock_gettime(CLOCK_REALTIME, &wall);
        wall = portreg__os_timespec((int64_t)wall.tv_sec * 1000000000 + wall.tv_nsec + left);
        int rc = pthread_mutex_timedlock(&l->m, &wall);
        if (rc == 0)
            return true;
        if (rc != ETIMEDOUT)
            return false;
    }
}

void portreg__os_unlock(struct portreg_os_lock *l)
{
    pthread_mutex_unlock(&l->m);
}

int portreg__os_cond_init(portreg_os_cond *c)
{
    pthread_condattr_t attr;
    int err = pthread_condattr_init(&attr);
    if (err != 0)
        return err;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    err = pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
    return err;
}

void portreg__os_cond_wait_until(portreg_os_cond *c, portreg_os_mutex *m, int64_t deadline)
{
    if (deadline < 0) {
        pthread_cond_wait(c, m);
        return;
    }
    struct timespec ts = portreg__os_timespec(deadline);
    pthread_cond_timedwait(c, m, &ts);
}
