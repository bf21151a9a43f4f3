/*
 * The POSIX backend of os.h, for systems without Linux's calls (macOS, the
 * BSDs), and on Linux with -DPORTREG_OS=posix so that it is tested here.
 *
 * Word waits. A waiter and a waker on the same word meet at one of
 * WAIT_BUCKETS mutex and condition variable pairs, chosen by the word's
 * address. The waiter compares the word under the bucket's mutex and
 * sleeps on the condition variable, which releases the mutex atomically;
 * the waker changes the word first and then broadcasts under the same
 * mutex. So a wake is never lost: if the waiter's compare came before the
 * waker took the mutex, the waiter was already asleep when the broadcast
 * came (it held the mutex until it slept); if after, the waiter's compare
 * sees the change, since the waker's change precedes its unlock. Words that
 * share a bucket wake each other's waiters: a spurious wake-up, which os.h
 * allows (callers compare again). No barrier or atomic read-modify-write is
 * needed on the word beyond its atomic load: the mutex orders the pair.
 *
 * No asymmetric barrier: epoch readers fence (epoch.h), scans fence.
 *
 * Timed waits go through pthread_cond_timedwait() on the wall clock (no
 * pthread_condattr_setclock() on macOS), or its relative variant where it
 * exists; the timed lock is a mutex, a condition variable and a flag (no
 * pthread_mutex_timedlock() on macOS).
 *
 * fork(): the child re-initialises every bucket (a thread of the parent may
 * have held one); none of the parent's waiters exist in the child.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#if defined(__APPLE__)
#include <sys/random.h> /* getentropy() */
#endif

#include "os/os.h"

/* Caller holds m. */
void portreg__os_cond_wait_until(portreg_os_cond *c, portreg_os_mutex *m, int64_t deadline)
{
    if (deadline < 0) {
        pthread_cond_wait(c, m);
        return;
    }
    int64_t left = deadline - portreg__os_now_ns();
    if (left <= 0)
        return;
#if defined(PORTREG_HAVE_COND_TIMEDWAIT_RELATIVE_NP)
    struct timespec rel = portreg__os_timespec(left);
    pthread_cond_timedwait_relative_np(c, m, &rel);
#else
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t now = (int64_t)wall.tv_sec * 1000000000 + wall.tv_nsec;
    wall = portreg__os_timespec(left > INT64_MAX - now ? INT64_MAX : now + left);
    pthread_cond_timedwait(c, m, &wall);
#endif
}

int portreg__os_cond_init(portreg_os_cond *c)
{
    return pthread_cond_init(c, NULL);
}

#define WAIT_BUCKETS 64

struct bucket {
    _Alignas(64) pthread_mutex_t m; /* one cache line (or two) per bucket */
    pthread_cond_t c;
};

static struct bucket buckets[WAIT_BUCKETS] = {
    [0 ... WAIT_BUCKETS - 1] = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER},
};

static struct bucket *bucket_of(const uint32_t *word)
{
    uint64_t a = (uint64_t)(uintptr_t)word >> 2;
    return &buckets[(a * UINT64_C(0x9e3779b97f4a7c15)) >> 58];
}

static void buckets_after_fork_in_child(void)
{
    for (size_t i = 0; i < WAIT_BUCKETS; i++) {
        pthread_mutex_init(&buckets[i].m, NULL);
        pthread_cond_init(&buckets[i].c, NULL);
    }
}

__attribute__((constructor)) static void buckets_fork_handler(void)
{
    pthread_atfork(NULL, NULL, buckets_after_fork_in_child);
}

void portreg__os_wait32(const uint32_t *word, uint32_t expected, int64_t deadline)
{
    struct bucket *b = bucket_of(word);
    pthread_mutex_lock(&b->m);
    /* seq_cst load; the mutex orders it against the waker (see above). */
    if (__atomic_load_n(word, __ATOMIC_SEQ_CST) == expected)
        portreg__os_cond_wait_until(&b->c, &b->m, deadline);
    pthread_mutex_unlock(&b->m);
}

void portreg__os_wake32(const uint32_t *word)
{
    struct bucket *b = bucket_of(word);
    pthread_mutex_lock(&b->m);
    pthread_cond_broadcast(&b->c);
    pthread_mutex_unlock(&b->m);
}

bool portreg__os_heavy_barrier_setup(void)
{
    return false;
}

int portreg__os_heavy_barrier(void)
{
    return ENOSYS;
}

/* getentropy() takes at most 256 bytes; it may block until the system has
 * gathered its first entropy (early boot only). */
bool portreg__os_random(void *buf, size_t len)
{
    return len <= 256 && getentropy(buf, len) == 0;
}

void portreg__os_advise_huge_pages(void *p, size_t len)
{
#ifdef MADV_HUGEPAGE /* Linux and a few others; macOS has none */
    (void)madvise(p, len, MADV_HUGEPAGE);
#else
    (void)p;
    (void)len;
#endif
}

static int set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return errno;
    int fdfl = fcntl(fd, F_GETFD);
    if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0)
        return errno;
    return 0;
}

int portreg__os_notifier_open(struct portreg_os_notifier *n)
{
    /* A socket pair rather than a pipe: a write to a pipe whose read end
     * the caller closed raises SIGPIPE, which would kill the process from
     * inside a registry call; send() can be told not to. */
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0)
        return errno;
#ifdef SO_NOSIGPIPE /* macOS and the BSDs: no MSG_NOSIGNAL there */
    int on = 1;
    (void)setsockopt(fds[1], SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof on);
#endif
    int err = set_flags(fds[0]);
    if (err == 0)
        err = set_flags(fds[1]);
    if (err != 0) {
        close(fds[0]);
        close(fds[1]);
        return err;
    }
    n->poll_fd = fds[0];
    n->signal_fd = fds[1];
    return 0;
}

void portreg__os_notifier_signal(const struct portreg_os_notifier *n)
{
    char one = 1;
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* SO_NOSIGPIPE was set instead */
#endif
    /* EAGAIN: the buffer is full, so already readable. EPIPE: the caller
     * closed the read end; nobody is listening. */
    ssize_t r = send(n->signal_fd, &one, 1, MSG_NOSIGNAL);
    (void)r;
}

void portreg__os_notifier_close(struct portreg_os_notifier *n)
{
    close(n->poll_fd);
    close(n->signal_fd);
    n->poll_fd = n->signal_fd = -1;
}

int portreg__os_lock_init(struct portreg_os_lock *l)
{
    atomic_init(&l->word, 0);
    return 0;
}

void portreg__os_lock_destroy(struct portreg_os_lock *l)
{
    (void)l;
}

bool portreg__os_lock_until(struct portreg_os_lock *l, int64_t deadline)
{
    uint32_t free_word = 0;
    /* acquire: what the last holder wrote before its release exchange. */
    if (atomic_compare_exchange_strong_explicit(&l->word, &free_word, 1, memory_order_acquire,
                                                memory_order_relaxed))
        return true;
    for (;;) {
        /* Marks it contended, so the holder's unlock wakes us; taking a
         * free lock this way just leaves one spurious wake behind. */
        if (atomic_exchange_explicit(&l->word, 2, memory_order_acquire) == 0)
            return true;
        if (deadline >= 0 && portreg__os_now_ns() >= deadline)
            return false;
        portreg__os_wait32((const uint32_t *)&l->word, 2, deadline);
    }
}

void portreg__os_lock(struct portreg_os_lock *l)
{
    portreg__os_lock_until(l, -1);
}

bool portreg__os_trylock(struct portreg_os_lock *l)
{
    uint32_t free_word = 0;
    return atomic_compare_exchange_strong_explicit(&l->word, &free_word, 1, memory_order_acquire,
                                                   memory_order_relaxed);
}

void portreg__os_unlock(struct portreg_os_lock *l)
{
    /* release: the critical section before the next holder's acquire. */
    if (atomic_exchange_explicit(&l->word, 0, memory_order_release) == 2)
        portreg__os_wake32((const uint32_t *)&l->word);
}
