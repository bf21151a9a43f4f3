/*
 * unit.fork_alloc_lock: the library must never allocate while it holds a
 * lock its fork handlers take. An allocator that is fork-safe the usual
 * way takes its own lock in a prepare handler; registered after the
 * library's, that handler runs first, so a thread that allocates under one
 * of the library's locks then waits for the allocator's lock, held by the
 * forking thread, which waits for the library's: both hang. 0.3.0 created
 * the reclaim thread under the registry's lock, and pthread_create()
 * allocates (calloc) when no stack is cached.
 *
 * This program stands in for such an allocator by interposing calloc()
 * (the library itself never calls it); semaphores force the interleaving.
 * Exit status 0: fork returned; 1: fork hung (an alarm ends it); 77: the
 * C library created the thread without calloc(), so nothing was tested.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "portreg.h"

extern void *__libc_calloc(size_t n, size_t size);

static pthread_mutex_t allocator_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool armed;
static sem_t in_alloc, go;

void *calloc(size_t n, size_t size)
{
    if (atomic_exchange(&armed, false)) {
        sem_post(&in_alloc);
        sem_wait(&go); /* until the fork's prepare handlers run */
    }
    pthread_mutex_lock(&allocator_lock);
    void *p = __libc_calloc(n, size);
    pthread_mutex_unlock(&allocator_lock);
    return p;
}

static void prepare(void)
{
    pthread_mutex_lock(&allocator_lock);
    sem_post(&go);
}

static void after(void)
{
    pthread_mutex_unlock(&allocator_lock);
}

static void hung(int sig)
{
    (void)sig;
    static const char msg[] = "fork_alloc_lock: fork() hung on the library's lock\n";
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
    _exit(1);
}

/* Churn until a compaction defers memory: the first defer starts the
 * reclaim thread. */
static void *churn(void *arg)
{
    portreg_t *reg = arg;
    char id[32];
    atomic_store(&armed, true);
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(id, sizeof id, "churn-%d", i);
        if (portreg_track(reg, id, (size_t)n) != 0 ||
            portreg_untrack(reg, id, (size_t)n, NULL) != 0)
            abort();
    }
    return NULL;
}

int main(void)
{
    sem_init(&in_alloc, 0, 0);
    sem_init(&go, 0, 0);
    pthread_atfork(prepare, after, after);
    portreg_t *reg = portreg_create(NULL);
    if (reg == NULL)
        return 1;
    pthread_t t;
    if (pthread_create(&t, NULL, churn, reg) != 0)
        return 1;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    while (sem_timedwait(&in_alloc, &until) != 0)
        if (errno != EINTR) {
            pthread_join(t, NULL);
            portreg_destroy(reg);
            puts("fork_alloc_lock: no calloc() while the reclaim thread started: not tested");
            return 77;
        }
    signal(SIGALRM, hung);
    alarm(10);
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    alarm(0);
    if (pid < 0 || waitpid(pid, NULL, 0) != pid)
        return 1;
    pthread_join(t, NULL);
    portreg_destroy(reg);
    puts("fork_alloc_lock: fork returned while the reclaim thread was being created");
    return 0;
}
