/*
 * epoll_changes: learning about registry changes in an event loop.
 *
 * A thread that runs an event loop must not block in portreg_wait(). It
 * gets portreg_eventfd() instead: an eventfd that becomes readable after
 * every change. The loop
 *   1. waits for the fd with epoll, next to its sockets and timers;
 *   2. reads it (8 bytes), which makes it unreadable again;
 *   3. then calls portreg_changes(), the registry-wide change count, and
 *      handles everything since the count it saw last.
 * Reading before looking is what makes it race-free: a change that lands
 * after step 2 makes the fd readable again, so the loop wakes once more
 * instead of missing it. Many changes may share one wake-up; the count says
 * how many there were.
 *
 * Here a writer thread makes a known number of changes and the loop runs
 * until it has seen all of them. Exit status 0 only if it did.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "portreg.h"

#define IDS    8
#define ROUNDS 50
/* Round r registers every id (IDS changes each); then each id is unbound
 * and untracked (2 more each). */
#define EXPECTED_CHANGES ((uint64_t)ROUNDS * IDS + 2 * IDS)
/* Far longer than the writer needs; only there so a bug cannot hang CI. */
#define IDLE_TIMEOUT_MS 10000
#define WAKEUPS_SHOWN   8

struct writer {
    portreg_t *reg;
    uint64_t applied; /* changes the writer's calls reported; read after join */
    int error;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    char id[16];
    portreg_state_t prev;

    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < IDS; i++) {
            int len = snprintf(id, sizeof id, "backend-%d", i);
            /* Every register is a change, even to the same port. */
            int rc = portreg_register(w->reg, id, (size_t)len, (uint16_t)(8000 + r), NULL);
            if (rc != 0) {
                w->error = rc;
                return NULL;
            }
            w->applied++;
        }
    }
    for (int i = 0; i < IDS; i++) {
        int len = snprintf(id, sizeof id, "backend-%d", i);
        if (portreg_unbind(w->reg, id, (size_t)len, &prev) == 0 && prev.status == PORTREG_BOUND)
            w->applied++;
        if (portreg_untrack(w->reg, id, (size_t)len, &prev) == 0 &&
            prev.status != PORTREG_UNTRACKED)
            w->applied++;
    }
    return NULL;
}

int main(void)
{
    portreg_t *reg = portreg_create(NULL);
    if (reg == NULL) {
        perror("portreg_create");
        return 1;
    }
    /* Before the writer starts: writers signal the fd only once it exists. */
    int efd = portreg_eventfd(reg);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    if (efd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) != 0) {
        fprintf(stderr, "setup: %s\n", efd < 0 ? portreg_strerror(efd) : strerror(errno));
        return 1;
    }

    struct writer w = {.reg = reg};
    pthread_t tid;
    if (pthread_create(&tid, NULL, writer_main, &w) != 0) {
        perror("pthread_create");
        return 1;
    }

    uint64_t seen = 0, wakeups = 0;
    int status = 0;
    while (seen < EXPECTED_CHANGES) {
        int n = epoll_wait(ep, &ev, 1, IDLE_TIMEOUT_MS);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "no change for %d ms after %" PRIu64 " of %" PRIu64 " changes\n",
                    IDLE_TIMEOUT_MS, seen, (uint64_t)EXPECTED_CHANGES);
            status = 1;
            break;
        }
        /* Re-arm first, then look: see the comment at the top. */
        uint64_t signals;
        if (read(efd, &signals, sizeof signals) != sizeof signals && errno != EAGAIN) {
            perror("read eventfd");
            status = 1;
            break;
        }
        uint64_t now = portreg_changes(reg);
        wakeups++;
        if (wakeups <= WAKEUPS_SHOWN)
            printf("wake-up %" PRIu64 ": changes %" PRIu64 " -> %" PRIu64 " (+%" PRIu64 ")\n",
                   wakeups, seen, now, now - seen);
        else if (wakeups == WAKEUPS_SHOWN + 1)
            printf("...\n");
        /* A real loop would walk the registry (portreg_snapshot()) here,
         * or look up the few ids it cares about. */
        seen = now;
    }
    pthread_join(tid, NULL);

    printf("saw %" PRIu64 " changes in %" PRIu64 " wake-ups; the writer applied %" PRIu64 "\n",
           seen, wakeups, w.applied);
    if (w.error != 0) {
        fprintf(stderr, "writer: %s\n", portreg_strerror(w.error));
        status = 1;
    }
    if (status == 0 && (seen != EXPECTED_CHANGES || w.applied != EXPECTED_CHANGES ||
                        portreg_changes(reg) != EXPECTED_CHANGES)) {
        fprintf(stderr, "expected exactly %" PRIu64 " changes\n", (uint64_t)EXPECTED_CHANGES);
        status = 1;
    }
    close(ep);
    portreg_destroy(reg); /* closes efd too */
    return status;
}
