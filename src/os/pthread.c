/*
 * What both POSIX backends (linux, posix) take from POSIX threads as it
 * is: the monotonic clock, thread-exit keys and fork handlers (os.h).
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <time.h>

#include "os/os.h"

int64_t portreg__os_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void portreg__os_yield(void)
{
    sched_yield();
}

void portreg__os_sleep_us(unsigned us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int portreg__os_thread_start(portreg_os_thread *t, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    int err = pthread_sigmask(SIG_SETMASK, &all, &old);
    if (err != 0)
        return err;
    err = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return err;
}

int portreg__os_key_create(portreg_os_key *k, void (*at_thread_exit)(void *))
{
    return pthread_key_create(k, at_thread_exit);
}

void *portreg__os_key_get(portreg_os_key k)
{
    return pthread_getspecific(k);
}

int portreg__os_key_set(portreg_os_key k, const void *v)
{
    return pthread_setspecific(k, v);
}

/* A key's function runs again for a value set while it runs: no call is
 * ever late here (os.h). */
bool portreg__os_exit_ran(void)
{
    return false;
}

uintptr_t portreg__os_thread_hold(void)
{
    return 0;
}

bool portreg__os_thread_ended(uintptr_t hold)
{
    (void)hold;
    return true;
}

void portreg__os_thread_release(uintptr_t hold)
{
    (void)hold;
}

int portreg__os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    return pthread_atfork(prepare, parent, child);
}
