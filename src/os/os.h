/*
 * The operating system, as the rest of portreg sees it. Everything that
 * differs between systems is behind these names, and each backend is one
 * file in this directory, chosen by the build (PORTREG_OS):
 *
 *   linux.c  Linux (glibc, musl): futex(2), membarrier(2), eventfd(2),
 *            getrandom(2), pthread_mutex_timedlock(), a CLOCK_MONOTONIC
 *            condition variable.
 *   posix.c  any POSIX system (macOS, the BSDs; also Linux, to test it):
 *            condition variables in a hashed table for word waits, no
 *            asymmetric barrier, a pipe for notification, getentropy(),
 *            a lock of a mutex, a condition variable and a flag for timed
 *            locking. No pthread_mutex_timedlock() and no
 *            pthread_condattr_setclock() (macOS has neither).
 *   win32.c  Windows 8 and later (x64): WaitOnAddress(), slim
 *            reader/writer locks and condition variables, an event object
 *            for notification, BCryptGenRandom(), fiber-local storage
 *            callbacks at thread exit, no asymmetric barrier, no fork.
 *
 * No file outside src/os/ tests which system it is built for.
 *
 * Clock: every deadline here is an absolute time in nanoseconds of
 * portreg__os_now_ns() (monotonic; -1: no deadline). Every wait may return
 * early (a spurious wake-up, or a wake-up meant for another word): callers
 * check their condition again in a loop, and their deadline too.
 *
 * Mutexes, condition variables, threads, thread-exit keys and fork
 * handlers are POSIX threads' on the linux and posix backends (below, and
 * os/pthread.c), the system's own on Windows (win32.c).
 */
#ifndef PORTREG_OS_H
#define PORTREG_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "os/tls.h"
/* generated: PORTREG_OS_LINUX, PORTREG_OS_POSIX or PORTREG_OS_WIN32 */
#include "portreg_os_config.h"

#if !defined(PORTREG_OS_WIN32)
#include <pthread.h>
#include <time.h>
#endif

/* Windows has no hidden visibility: a DLL exports what is marked
 * dllexport (the public API) and nothing else. */
#ifndef PORTREG_HIDDEN
#if defined(_WIN32)
#define PORTREG_HIDDEN
#else
#define PORTREG_HIDDEN __attribute__((visibility("hidden")))
#endif
#endif

/* Monotonic time in nanoseconds. */
PORTREG_HIDDEN int64_t portreg__os_now_ns(void);
/* Lets another ready thread run (POSIX: sched_yield(); Windows:
 * SwitchToThread()). */
PORTREG_HIDDEN void portreg__os_yield(void);
/* Sleeps for at least us microseconds (Windows rounds up to whole
 * milliseconds). */
PORTREG_HIDDEN void portreg__os_sleep_us(unsigned us);

/* Sleeps while *word holds expected, until portreg__os_wake32(word), the
 * deadline, or a spurious wake-up. A wake that follows a change of *word
 * is never lost: either this call sees the new value and returns at once,
 * or the wake finds it asleep. The word is read atomically (it may be half
 * of a 64-bit atomic). */
PORTREG_HIDDEN void portreg__os_wait32(const uint32_t *word, uint32_t expected, int64_t deadline);

/* Wakes every thread in portreg__os_wait32() on word. Call it after the
 * change of *word that the waiters wait for. */
PORTREG_HIDDEN void portreg__os_wake32(const uint32_t *word);

/* The process-wide asymmetric barrier (Linux: membarrier's private
 * expedited command). _setup() registers for it, once per process, and
 * says whether it exists; the epoch read side then needs only compiler
 * ordering, and each scan calls portreg__os_heavy_barrier() (0, or an
 * errno value). Where it does not exist, readers fence (epoch.h). */
PORTREG_HIDDEN bool portreg__os_heavy_barrier_setup(void);
PORTREG_HIDDEN int portreg__os_heavy_barrier(void);

/* Fills buf with len (at most 256) bytes from the system's random source
 * without blocking; false if it has none ready. */
PORTREG_HIDDEN bool portreg__os_random(void *buf, size_t len);

/* Advice that [p, p + len), page-aligned memory of ours, is read at
 * random: back it with huge pages where the system offers them. Only
 * advice: elsewhere, or when refused, nothing changes. */
PORTREG_HIDDEN void portreg__os_advise_huge_pages(void *p, size_t len);

/* The change notification behind portreg_eventfd(): a file descriptor that
 * becomes readable after portreg__os_notifier_signal() (Windows: an
 * auto-reset event's HANDLE, as an int, that is signalled by it; a
 * successful wait re-arms it; poll_fd == signal_fd).
 *   Linux: an eventfd (EFD_NONBLOCK | EFD_CLOEXEC); one 8-byte read makes
 *          it unreadable again. poll_fd == signal_fd.
 *   POSIX: the read end of a pipe (both ends O_NONBLOCK and FD_CLOEXEC,
 *          set after pipe(), so a fork()+exec() in another thread at that
 *          moment may inherit them); each signal writes one byte, so the
 *          reader reads until EAGAIN. A full pipe drops the byte: it is
 *          readable anyway.
 * After fork() the child shares the object with its parent (both
 * backends): a change in either makes it readable in both, which the
 * other sees as a wake-up with no change. */
struct portreg_os_notifier {
    int poll_fd;   /* what portreg_eventfd() returns */
    int signal_fd; /* what portreg__os_notifier_signal() writes to */
};
/* 0, or an errno value. */
PORTREG_HIDDEN int portreg__os_notifier_open(struct portreg_os_notifier *n);
/* Async-signal-safe; never blocks. */
PORTREG_HIDDEN void portreg__os_notifier_signal(const struct portreg_os_notifier *n);
PORTREG_HIDDEN void portreg__os_notifier_close(struct portreg_os_notifier *n);

/* A mutex that can also be taken with a deadline (the writer lock).
 * Not recursive; unlocked by the thread that locked it. */
#if defined(PORTREG_OS_WIN32)
/* The system's slim lock and condition variable (one pointer each). */
typedef struct {
    void *opaque;
} portreg_os_mutex;
typedef struct {
    void *opaque;
} portreg_os_cond;
typedef void *portreg_os_thread; /* a struct win_thread (win32.c) */
typedef uint32_t portreg_os_key; /* a fiber-local storage index */
#define PORTREG_OS_MUTEX_INITIALIZER                                                               \
    {                                                                                              \
        NULL                                                                                       \
    } /* SRWLOCK_INIT */
#endif

#if defined(PORTREG_OS_WIN32)
struct portreg_os_lock {
    portreg_os_mutex m; /* guards held */
    portreg_os_cond freed;
    bool held;
};
#elif defined(PORTREG_OS_POSIX)
/* One word on the backend's own word waits: 0 free, 1 held, 2 held with
 * someone waiting. No pthread object, so nothing of a thread a fork left
 * behind can block the child (a condition variable's destroy waits for
 * waiters that do not exist there), and a try is one compare-and-swap. */
struct portreg_os_lock {
    _Atomic uint32_t word;
};
#else
struct portreg_os_lock {
    pthread_mutex_t m;
};
#endif
/* 0, or an errno value. */
PORTREG_HIDDEN int portreg__os_lock_init(struct portreg_os_lock *l);
PORTREG_HIDDEN void portreg__os_lock_destroy(struct portreg_os_lock *l);
PORTREG_HIDDEN void portreg__os_lock(struct portreg_os_lock *l);
PORTREG_HIDDEN bool portreg__os_trylock(struct portreg_os_lock *l);
/* True once locked; false when the deadline passed first (a deadline in
 * the past still tries once). */
PORTREG_HIDDEN bool portreg__os_lock_until(struct portreg_os_lock *l, int64_t deadline);
PORTREG_HIDDEN void portreg__os_unlock(struct portreg_os_lock *l);

#if defined(PORTREG_OS_WIN32)
/* As below, out of line in win32.c. */
PORTREG_HIDDEN int portreg__os_mutex_init(portreg_os_mutex *m);
PORTREG_HIDDEN void portreg__os_mutex_destroy(portreg_os_mutex *m);
PORTREG_HIDDEN void portreg__os_mutex_lock(portreg_os_mutex *m);
PORTREG_HIDDEN bool portreg__os_mutex_trylock(portreg_os_mutex *m);
PORTREG_HIDDEN void portreg__os_mutex_unlock(portreg_os_mutex *m);
PORTREG_HIDDEN int portreg__os_cond_init(portreg_os_cond *c);
PORTREG_HIDDEN void portreg__os_cond_destroy(portreg_os_cond *c);
PORTREG_HIDDEN void portreg__os_cond_signal(portreg_os_cond *c);
PORTREG_HIDDEN void portreg__os_cond_wait_until(portreg_os_cond *c, portreg_os_mutex *m,
                                                int64_t deadline);
PORTREG_HIDDEN int portreg__os_thread_start(portreg_os_thread *t, void *(*fn)(void *), void *arg);
/* Waits until the thread's fn has returned (not for the thread's end,
 * which needs the loader lock a joiner may hold: win32.c). */
PORTREG_HIDDEN void portreg__os_thread_join(portreg_os_thread t);
PORTREG_HIDDEN bool portreg__os_thread_is_current(portreg_os_thread t);
#else
/* A mutex, a condition variable and a thread: POSIX threads' on both
 * backends (inline below), so that no file outside src/os/ names them.
 * PORTREG_OS_MUTEX_INITIALIZER makes a static mutex. _init functions
 * return 0 or an errno value; a mutex may be initialised again in a
 * forked child, whatever its state was in the parent. */
/* ns (of portreg__os_now_ns(), or a wall-clock time) as a timespec. */
static inline struct timespec portreg__os_timespec(int64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000), .tv_nsec = (long)(ns % 1000000000)};
    return ts;
}

typedef pthread_mutex_t portreg_os_mutex;
typedef pthread_cond_t portreg_os_cond;
typedef pthread_t portreg_os_thread;
#define PORTREG_OS_MUTEX_INITIALIZER PTHREAD_MUTEX_INITIALIZER

static inline int portreg__os_mutex_init(portreg_os_mutex *m)
{
    return pthread_mutex_init(m, NULL);
}
static inline void portreg__os_mutex_destroy(portreg_os_mutex *m)
{
    pthread_mutex_destroy(m);
}
static inline void portreg__os_mutex_lock(portreg_os_mutex *m)
{
    pthread_mutex_lock(m);
}
static inline bool portreg__os_mutex_trylock(portreg_os_mutex *m)
{
    return pthread_mutex_trylock(m) == 0;
}
static inline void portreg__os_mutex_unlock(portreg_os_mutex *m)
{
    pthread_mutex_unlock(m);
}

/* The timed wait takes a deadline of portreg__os_now_ns() (Linux: the
 * condition variable is on CLOCK_MONOTONIC; POSIX: the deadline is
 * converted to the wall clock at each wait, so a step of the wall clock
 * backwards lengthens that wait by the step, unless the system has a
 * relative timed wait, as macOS does). */
PORTREG_HIDDEN int portreg__os_cond_init(portreg_os_cond *c);
static inline void portreg__os_cond_destroy(portreg_os_cond *c)
{
    pthread_cond_destroy(c);
}
static inline void portreg__os_cond_signal(portreg_os_cond *c)
{
    pthread_cond_signal(c);
}
/* Caller holds m. Returns on a signal, at the deadline (-1: none) or
 * spuriously. */
PORTREG_HIDDEN void portreg__os_cond_wait_until(portreg_os_cond *c, portreg_os_mutex *m,
                                                int64_t deadline);

/* Starts fn(arg) on a new thread that blocks every signal (a library's
 * thread must not take the application's signals). 0, or an errno value. */
PORTREG_HIDDEN int portreg__os_thread_start(portreg_os_thread *t, void *(*fn)(void *), void *arg);
/* True on the thread t names. */
static inline bool portreg__os_thread_is_current(portreg_os_thread t)
{
    return pthread_equal(t, pthread_self()) != 0;
}

static inline void portreg__os_thread_join(portreg_os_thread t)
{
    pthread_join(t, NULL);
}
#endif

/* A thread-local value with a function that runs at the thread's exit
 * when the value is not NULL (POSIX: a pthread key; the value is NULL
 * again while the function runs, and setting it there runs the function
 * once more; Windows: a fiber-local storage callback, which runs once, and
 * pins the module that holds it; the value stored is the setter's fiber or
 * thread, not v, and the function runs only when the thread itself exits,
 * not when another fiber is deleted: see win32.c). Never deleted. 0, or an
 * errno value. */
#if !defined(PORTREG_OS_WIN32)
typedef pthread_key_t portreg_os_key;
#endif
PORTREG_HIDDEN int portreg__os_key_create(portreg_os_key *k, void (*at_thread_exit)(void *));
PORTREG_HIDDEN void *portreg__os_key_get(portreg_os_key k);
PORTREG_HIDDEN int portreg__os_key_set(portreg_os_key k, const void *v);

/* A call on a thread whose exit function (above) has already run has no
 * exit left to give its record back (Windows: a call from a thread-exit
 * hook that runs after the fiber-local storage callback; POSIX: never,
 * since setting the key there runs the function once more).
 * epoch_records.c keeps such a thread's links, with a hold on the thread,
 * and hands them back for it once it has ended.
 * portreg__os_exit_ran(): true on such a thread.
 * portreg__os_thread_hold(): something that tells later whether the
 * calling thread has ended; 0 if it cannot be had (POSIX: always).
 * portreg__os_thread_ended(): whether that thread has ended: it never
 * runs again once this says so, and its stores come before this call's
 * return. portreg__os_thread_release() lets the hold go. */
PORTREG_HIDDEN bool portreg__os_exit_ran(void);
PORTREG_HIDDEN uintptr_t portreg__os_thread_hold(void);
PORTREG_HIDDEN bool portreg__os_thread_ended(uintptr_t hold);
PORTREG_HIDDEN void portreg__os_thread_release(uintptr_t hold);

/* Handlers fork() runs (POSIX: pthread_atfork(); prepare handlers in
 * reverse order of registration, the others in order; Windows has no
 * fork: accepted, never run). 0, or an errno value. */
PORTREG_HIDDEN int portreg__os_atfork(void (*prepare)(void), void (*parent)(void),
                                      void (*child)(void));

#endif
