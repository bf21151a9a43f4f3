/*
 * eventfd: several threads call portreg_eventfd() for the first time
 * while writers apply changes (meant for the TSan build).
 *
 * The promise: once a creator holds the fd and has read portreg_changes()
 * right after, every change is either counted in that baseline or
 * signalled on the fd (a change increments the change count, then writes
 * to the fd if it exists; a creator publishes the fd, then reads the
 * count: with both pairs ordered, no change can miss both). Changes are
 * numbered by their increment of the count, so a change that was not
 * signalled is among the first B of them, where B is any creator's
 * baseline, and the fd's counter, read once every writer has stopped,
 * must hold at least (total changes - smallest baseline). It can hold no
 * more than the total: each change writes at most once.
 *
 * Each round uses a fresh registry, so each round races the creation
 * again. Every creator must get the same fd, a second call must return it
 * again, and portreg_destroy() must close it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(_WIN32)
#include <windows.h>
#else
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include "stress.h"

#define CHECK "eventfd"

#define IDS_PER_WRITER 16

struct erun {
    const struct cfg *cfg;
    portreg_t *reg;
    unsigned round;
    bool done;
    pthread_barrier_t start, created, end;
    _Atomic bool stop_writers;
};

struct ethread {
    struct erun *r;
    bool creator;
    unsigned index;
    pthread_t tid;
    struct rng rng;
    int fd;            /* creators: what portreg_eventfd() returned */
    uint64_t baseline; /* creators: portreg_changes() right after */
    uint64_t ops;
};

static void writer_round(struct ethread *t)
{
    struct erun *r = t->r;
    char b[ID_BUF];
    uint16_t port = 0;

    /* Writes before, during and after the creators' first calls. relaxed:
     * the flag only says when to stop; the end barrier orders the rest. */
    while (!atomic_load_explicit(&r->stop_writers, memory_order_relaxed) && !stopping()) {
        size_t len = id_make(b, 'e', t->index, rng_below(&t->rng, IDS_PER_WRITER));
        port = (uint16_t)(port % 60000 + 1);
        int rc = rng_below(&t->rng, 4) == 0 ? portreg_untrack(r->reg, b, len, NULL)
                                            : portreg_register(r->reg, b, len, port, NULL);
        if (rc != 0)
            die("eventfd writer: %s", portreg_strerror(rc));
        t->ops++;
    }
}

static void creator_round(struct ethread *t)
{
    /* The first call on this registry, racing with the other creators. */
    t->fd = portreg_eventfd(t->r->reg);
    t->baseline = portreg_changes(t->r->reg);
    if (t->fd < 0)
        fail(CHECK, "creator %u: portreg_eventfd returned %s (%s)", t->index,
             portreg_err_name(t->fd), strerror(portreg_last_errno()));
    else if (portreg_eventfd(t->r->reg) != t->fd)
        fail(CHECK, "creator %u: a second call returned another fd", t->index);
}

static void *ethread_main(void *arg)
{
    struct ethread *t = arg;
    struct erun *r = t->r;

    for (;;) {
        pthread_barrier_wait(&r->start);
        if (r->done)
            break;
        if (t->creator) {
            /* Let the writers get going first, most rounds. */
            unsigned spin = rng_below(&t->rng, 2000);
            for (volatile unsigned i = 0; i < spin; i++)
                ;
            creator_round(t);
            pthread_barrier_wait(&r->created);
        } else {
            writer_round(t);
        }
        pthread_barrier_wait(&r->end);
    }
    return NULL;
}

/* After the round: every writer has stopped and no call is in flight. */
/* Whether the fd (Windows: the event's HANDLE) is still open. */
static bool fd_is_open(int fd)
{
#if defined(_WIN32)
    DWORD flags;
    return GetHandleInformation((HANDLE)(intptr_t)fd, &flags) != 0;
#else
    return fcntl(fd, F_GETFD) != -1;
#endif
}

static void verify_round(struct erun *r, struct ethread *th, unsigned nc, uint64_t *signalled,
                         uint64_t *changes, uint64_t *before_fd)
{
    unsigned long long seed = (unsigned long long)r->cfg->seed;
    int fd = th[0].fd;
    uint64_t min_base = UINT64_MAX, count = 0;

    for (unsigned i = 0; i < nc; i++) {
        if (th[i].fd != fd)
            fail(CHECK, "round %u: creators got fds %d and %d (seed %llu)", r->round, fd, th[i].fd,
                 seed);
        if (th[i].baseline < min_base)
            min_base = th[i].baseline;
    }
    if (fd < 0)
        return;
    uint64_t total = portreg_changes(r->reg);
#if defined(_WIN32)
    /* Windows: an auto-reset event, which holds no count: after any change
     * not counted in the smallest baseline, it must be set (the wait takes
     * it, as reading the eventfd does). */
    DWORD w = WaitForSingleObject((HANDLE)(intptr_t)fd, 0);
    if (w != WAIT_OBJECT_0 && min_base < total)
        fail(CHECK,
             "round %u: %llu changes, smallest creator baseline %llu, but the event is not "
             "set (seed %llu)",
             r->round, (unsigned long long)total, (unsigned long long)min_base, seed);
    /* One signal stands for every change since the creators' baselines. */
    *signalled += w == WAIT_OBJECT_0;
    *changes += total;
    *before_fd += min_base;
    (void)count;
    return;
#else
    struct stat st;
    if (fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
        /* The POSIX backend's socket: one byte per signal, dropped when
         * it is full, so no count: after any change not counted in the
         * smallest baseline, the socket must be readable. */
        char buf[4096];
        ssize_t got = read(fd, buf, sizeof buf);
        if (got <= 0 && min_base < total)
            fail(CHECK,
                 "round %u: %llu changes, smallest creator baseline %llu, but the socket is "
                 "empty (seed %llu)",
                 r->round, (unsigned long long)total, (unsigned long long)min_base, seed);
        while (got > 0) {
            count += (uint64_t)got;
            got = read(fd, buf, sizeof buf);
        }
        if (count > total)
            fail(CHECK, "round %u: %llu signals for %llu changes", r->round,
                 (unsigned long long)count, (unsigned long long)total);
        *signalled += count;
        *changes += total;
        *before_fd += min_base;
        return;
    }
    ssize_t n = read(fd, &count, sizeof count);
    if (n != (ssize_t)sizeof count) {
        if (n < 0 && errno == EAGAIN)
            count = 0;
        else
            fail(CHECK, "round %u: read of the eventfd returned %zd (%s)", r->round, n,
                 strerror(errno));
    }
    if (count + min_base < total)
        fail(CHECK,
             "round %u: %llu changes, %llu signalled on the eventfd, smallest creator "
             "baseline %llu: %llu changes were neither signalled nor counted (seed %llu)",
             r->round, (unsigned long long)total, (unsigned long long)count,
             (unsigned long long)min_base, (unsigned long long)(total - min_base - count), seed);
    if (count > total)
        fail(CHECK, "round %u: %llu signals for %llu changes", r->round, (unsigned long long)count,
             (unsigned long long)total);
    *signalled += count;
    *changes += total;
    *before_fd += min_base;
#endif
}

unsigned check_eventfd(const struct cfg *cfg)
{
    struct erun r = {.cfg = cfg};
    unsigned before = atomic_load(&stress_failures);
    unsigned nc = cfg->e_creators, nw = cfg->e_writers, n = nc + nw;
    uint64_t signalled = 0, changes = 0, before_fd = 0, wops = 0;
    unsigned rounds = 0, closed = 0;
    double t0 = now_s();

    if (nc == 0 || nw == 0)
        die("eventfd: needs creators and writers");
    struct ethread *th = xcalloc(n, sizeof *th);
    pthread_barrier_init(&r.start, NULL, n + 1);
    pthread_barrier_init(&r.created, NULL, nc + 1);
    pthread_barrier_init(&r.end, NULL, n + 1);
    for (unsigned i = 0; i < n; i++) {
        th[i].r = &r;
        th[i].creator = i < nc;
        th[i].index = i < nc ? i : i - nc;
        th[i].rng = rng_for(cfg->seed, 1100 + i);
        start_thread(&th[i].tid, ethread_main, &th[i]);
    }
    for (r.round = 0; r.round < cfg->e_rounds && !stopping(); r.round++) {
        r.reg = portreg_create(NULL);
        if (r.reg == NULL)
            die("portreg_create failed");
        /* relaxed: the start barrier publishes it. */
        atomic_store_explicit(&r.stop_writers, false, memory_order_relaxed);
        pthread_barrier_wait(&r.start);
        pthread_barrier_wait(&r.created); /* every creator has its fd */
        /* Some changes after creation, then stop the writers. */
        while (portreg_changes(r.reg) < th[0].baseline + 200 && !stopping())
            nap_ns(50 * 1000); /* paces the poll */
        atomic_store_explicit(&r.stop_writers, true, memory_order_relaxed);
        pthread_barrier_wait(&r.end);
        verify_round(&r, th, nc, &signalled, &changes, &before_fd);
        int fd = th[0].fd;
        portreg_destroy(r.reg);
        /* Nothing else in the process opens files meanwhile. */
        if (fd >= 0 && fd_is_open(fd))
            fail(CHECK, "round %u: portreg_destroy left the eventfd %d open", r.round, fd);
        closed += fd >= 0;
        rounds++;
    }
    r.done = true;
    pthread_barrier_wait(&r.start);
    for (unsigned i = 0; i < n; i++) {
        join_thread(th[i].tid);
        wops += th[i].ops;
    }
    free(th);
    pthread_barrier_destroy(&r.start);
    pthread_barrier_destroy(&r.created);
    pthread_barrier_destroy(&r.end);

    if (!stopping() && (rounds == 0 || signalled == 0 || before_fd == 0))
        fail(CHECK, "proved too little: %u rounds, %llu changes signalled, %llu before creation",
             rounds, (unsigned long long)signalled, (unsigned long long)before_fd);
    double secs = now_s() - t0;
    unsigned found = atomic_load(&stress_failures) - before;
    printf("eventfd: %s seed=%llu threads=%u (%u creators, %u writers) rounds=%u "
           "writer_ops=%llu\n",
           found ? "FAIL" : "PASS", (unsigned long long)cfg->seed, n, nc, nw, rounds,
           (unsigned long long)wops);
    printf("eventfd:   %llu changes: %llu signalled, %llu counted in the smallest creator "
           "baseline; every change one or the other; one fd per registry, closed by destroy "
           "(%u); %.1f s\n",
           (unsigned long long)changes, (unsigned long long)signalled,
           (unsigned long long)before_fd, closed, secs);
    return found;
}
