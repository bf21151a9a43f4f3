/*
 * The Windows backend of os.h (Windows 8 and later, x64), built with
 * mingw-w64 and tested under Wine.
 *
 * Word waits are WaitOnAddress() and WakeByAddressAll(): the system
 * compares the word with the expected value and queues the waiter as one
 * step against WakeByAddress*(), so a wake that follows a change is never
 * lost (the waiter either sees the change or is queued when the wake
 * comes).
 *
 * No asymmetric barrier. FlushProcessWriteBuffers() would be one, but
 * Wine implements it as a call that does nothing, so a read side that
 * relied on it could not be tested here and would be unsafe under Wine:
 * epoch readers fence (epoch.h), scans fence.
 *
 * Mutexes are slim reader/writer locks taken exclusively, condition
 * variables are the system's (timed waits take a relative time in
 * milliseconds, rounded up, so a wait never ends before its deadline for
 * rounding's sake), and the timed writer lock is a lock, a condition
 * variable and a flag, as on the POSIX backend (a slim lock has no timed
 * acquire).
 *
 * The change notification is an auto-reset event: set on every change,
 * and a successful wait on it re-arms it. Its HANDLE travels in the
 * notifier's int (portreg_eventfd()'s type): the system keeps handle
 * values below 2^24 and documents that a handle may be truncated to 32
 * bits and sign-extended back.
 *
 * Thread-exit keys are fiber-local storage indices with a callback, which
 * the system runs at every thread's exit for a non-NULL value (also for
 * threads ended by ExitThread() or _endthreadex()), and also when a fiber
 * is deleted: the callback tells the two apart (see fls_exit()), and does
 * nothing once ExitProcess() has begun. There is one such key. The callback is this
 * library's code: the first key pins the module (the DLL, or the program
 * that links the static library) so that it is never unloaded while a
 * thread may still exit through it, as -z nodelete does on Linux.
 *
 * Windows has no fork: fork handlers are accepted and never run.
 */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>

#include <bcrypt.h>
#include <errno.h>
#include <process.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "os/os.h"

_Static_assert(sizeof(SRWLOCK) == sizeof(portreg_os_mutex), "portreg_os_mutex holds an SRWLOCK");
_Static_assert(sizeof(CONDITION_VARIABLE) == sizeof(portreg_os_cond),
               "portreg_os_cond holds a CONDITION_VARIABLE");

static SRWLOCK *srw(portreg_os_mutex *m)
{
    return (SRWLOCK *)(void *)m;
}

static CONDITION_VARIABLE *cv(portreg_os_cond *c)
{
    return (CONDITION_VARIABLE *)(void *)c;
}

int64_t portreg__os_now_ns(void)
{
    /* The frequency is fixed at boot; the call reads it from memory the
     * system shares with every process (no system call). */
    LARGE_INTEGER freq, c;
    QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&c);
    int64_t f = freq.QuadPart;
    /* Split so that the product cannot overflow. */
    return c.QuadPart / f * 1000000000 + c.QuadPart % f * 1000000000 / f;
}

void portreg__os_yield(void)
{
    SwitchToThread();
}

void portreg__os_sleep_us(unsigned us)
{
    Sleep((us + 999) / 1000);
}

/* Milliseconds from now to deadline, rounded up; INFINITE for none, 0 once
 * past. */
static DWORD ms_until(int64_t deadline)
{
    if (deadline < 0)
        return INFINITE;
    int64_t left = deadline - portreg__os_now_ns();
    if (left <= 0)
        return 0;
    int64_t ms = (left + 999999) / 1000000;
    return ms >= (int64_t)INFINITE ? INFINITE - 1 : (DWORD)ms;
}

void portreg__os_wait32(const uint32_t *word, uint32_t expected, int64_t deadline)
{
    DWORD ms = ms_until(deadline);
    if (ms == 0)
        return;
    /* WaitOnAddress() compares *word with expected itself, atomically with
     * respect to WakeByAddressAll(). */
    WaitOnAddress((volatile VOID *)word, &expected, sizeof expected, ms);
}

void portreg__os_wake32(const uint32_t *word)
{
    WakeByAddressAll((PVOID)word);
}

bool portreg__os_heavy_barrier_setup(void)
{
    return false;
}

int portreg__os_heavy_barrier(void)
{
    return ENOSYS;
}

bool portreg__os_random(void *buf, size_t len)
{
    return len <= 256 &&
           BCRYPT_SUCCESS(BCryptGenRandom(NULL, buf, (ULONG)len, BCRYPT_USE_SYSTEM_PREFERRED_RNG));
}

/* Large pages on Windows need a privilege a service rarely has, and must
 * be asked for when memory is allocated: no advice to give afterwards. */
void portreg__os_advise_huge_pages(void *p, size_t len)
{
    (void)p;
    (void)len;
}

int portreg__os_notifier_open(struct portreg_os_notifier *n)
{
    /* Auto-reset, not signalled, unnamed, not inherited by child processes. */
    HANDLE h = CreateEventW(NULL, FALSE, FALSE, NULL);
    if (h == NULL)
        return ENOMEM;
    intptr_t v = (intptr_t)h;
    if (v <= 0 || v > INT32_MAX) {
        CloseHandle(h);
        return EMFILE;
    }
    n->poll_fd = n->signal_fd = (int)v;
    return 0;
}

void portreg__os_notifier_signal(const struct portreg_os_notifier *n)
{
    SetEvent((HANDLE)(intptr_t)n->signal_fd);
}

void portreg__os_notifier_close(struct portreg_os_notifier *n)
{
    CloseHandle((HANDLE)(intptr_t)n->poll_fd);
    n->poll_fd = n->signal_fd = -1;
}

int portreg__os_mutex_init(portreg_os_mutex *m)
{
    InitializeSRWLock(srw(m));
    return 0;
}

void portreg__os_mutex_destroy(portreg_os_mutex *m)
{
    (void)m; /* a slim lock holds no resources */
}

void portreg__os_mutex_lock(portreg_os_mutex *m)
{
    AcquireSRWLockExclusive(srw(m));
}

bool portreg__os_mutex_trylock(portreg_os_mutex *m)
{
    return TryAcquireSRWLockExclusive(srw(m)) != 0;
}

void portreg__os_mutex_unlock(portreg_os_mutex *m)
{
    ReleaseSRWLockExclusive(srw(m));
}

int portreg__os_cond_init(portreg_os_cond *c)
{
    InitializeConditionVariable(cv(c));
    return 0;
}

void portreg__os_cond_destroy(portreg_os_cond *c)
{
    (void)c;
}

void portreg__os_cond_signal(portreg_os_cond *c)
{
    WakeConditionVariable(cv(c));
}

void portreg__os_cond_wait_until(portreg_os_cond *c, portreg_os_mutex *m, int64_t deadline)
{
    DWORD ms = ms_until(deadline);
    if (ms == 0)
        return;
    SleepConditionVariableSRW(cv(c), srw(m), ms, 0);
}

/* A library thread. A thread's start and its end both take the loader
 * lock (to deliver DLL_THREAD_ATTACH and DLL_THREAD_DETACH), and a joiner
 * may hold it (portreg_destroy() called from DllMain, a TLS callback or a
 * C++ thread_local destructor). So a join waits neither for the thread's
 * start nor for its end:
 * - a thread that has not begun fn yet is abandoned: when it runs, it
 *   frees its own state and returns without calling fn;
 * - otherwise the join waits for fn to return (fn takes no loader lock),
 *   or for the thread's end if it was ended without returning (at process
 *   exit), after which the thread touches nothing of the joiner's and leaves
 *   through this module's code, pinned (pin_this_module()) when the first
 *   registry is made, before any library thread starts.
 * `state` settles which of the two happens: the thread moves it from
 * NOT_BEGUN to RUNNING, the joiner from NOT_BEGUN to ABANDONED; whoever
 * fails found the other's. */
enum { NOT_BEGUN, RUNNING, ABANDONED };
struct win_thread {
    void *(*fn)(void *);
    void *arg;
    HANDLE returned; /* manual-reset: fn has returned */
    HANDLE thread;
    _Atomic int state;
};

static void win_thread_free(struct win_thread *t)
{
    CloseHandle(t->returned);
    CloseHandle(t->thread);
    free(t);
}

static unsigned __stdcall thread_main(void *p)
{
    struct win_thread *t = p;
    int expected = NOT_BEGUN;
    /* acq_rel: the joiner's abandonment, with its store of t->thread,
     * comes before the free below; the start, before its join's wait. */
    if (!atomic_compare_exchange_strong_explicit(&t->state, &expected, RUNNING,
                                                 memory_order_acq_rel, memory_order_acquire)) {
        win_thread_free(t); /* abandoned: nobody else holds t */
        return 0;
    }
    t->fn(t->arg);
    /* The last touch of *t: the joiner may free it from here on. */
    SetEvent(t->returned);
    return 0;
}

/* Windows delivers no signals to threads: nothing to block. */
int portreg__os_thread_start(portreg_os_thread *out, void *(*fn)(void *), void *arg)
{
    struct win_thread *t = malloc(sizeof *t);
    if (t == NULL)
        return ENOMEM;
    t->fn = fn;
    t->arg = arg;
    t->thread = NULL;
    atomic_init(&t->state, NOT_BEGUN);
    t->returned = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (t->returned == NULL) {
        free(t);
        return EAGAIN;
    }
    /* Suspended until t->thread is stored: an abandoned thread closes it. */
    uintptr_t h = _beginthreadex(NULL, 0, thread_main, t, CREATE_SUSPENDED, NULL);
    if (h == 0) {
        int err = errno != 0 ? errno : EAGAIN;
        CloseHandle(t->returned);
        free(t);
        return err;
    }
    t->thread = (HANDLE)h;
    ResumeThread(t->thread);
    *out = t;
    return 0;
}

bool portreg__os_thread_is_current(portreg_os_thread t)
{
    return GetThreadId(((struct win_thread *)t)->thread) == GetCurrentThreadId();
}

void portreg__os_thread_join(portreg_os_thread p)
{
    struct win_thread *t = p;
    int expected = NOT_BEGUN;
    if (atomic_compare_exchange_strong_explicit(&t->state, &expected, ABANDONED,
                                                memory_order_acq_rel, memory_order_acquire))
        return; /* the thread frees t when it runs */
    /* fn returns, or the thread is gone without returning: ExitProcess()
     * ends every other thread before DllMain(DLL_PROCESS_DETACH) runs, and
     * a destroy may run there. */
    HANDLE either[2] = {t->returned, t->thread};
    WaitForMultipleObjects(2, either, FALSE, INFINITE);
    win_thread_free(t);
}

/* Keeps this module (the DLL, or the program holding the static library)
 * loaded until the process ends: thread-exit callbacks point into it. */
static bool pin_this_module(void)
{
    HMODULE self;
    return GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS |
                                  GET_MODULE_HANDLE_EX_FLAG_PIN,
                              (LPCWSTR)(void *)pin_this_module, &self) != 0;
}

/* ntdll: true once ExitProcess() has begun. */
__declspec(dllimport) BOOLEAN NTAPI RtlDllShutdownInProgress(void);

/* The one thread-exit function (the library makes one key). */
static void (*exit_fn)(void *);
/* Set on a thread once its exit function has run: a call after that is
 * late (os.h). A thread-local written from the callback, as the exit
 * function's own are: native thread-locals live until the end of the
 * thread's exit; GCC's emulated ones are the limit the README states. */
static _Thread_local bool exit_ran;

/* What the key holds: who set it. A fiber's fiber-local storage moves with
 * the fiber, and the system runs its callback at the exit of the thread
 * that runs it, but also on a live thread that deletes it (DeleteFiber()
 * of another fiber). The value is the fiber that set it, or, on a thread
 * that is no fiber, an odd number made from the thread's id (a fiber's
 * address is even). */
static void *exit_identity(void)
{
    if (IsThreadAFiber()) {
        /* GetCurrentFiber() reads the thread's information block at a
         * fixed offset from the gs segment, which GCC takes for an
         * access past an empty array. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
        return GetCurrentFiber();
#pragma GCC diagnostic pop
    }
    return (void *)(((uintptr_t)GetCurrentThreadId() << 1) | 1);
}

/* The callback runs for a value set in the storage it is given back:
 * - at the exit of the thread that runs the storage's fiber (or whose own
 *   storage it is, for a thread that is no fiber): then that fiber is the
 *   current one, or that thread is the caller, and the identity matches;
 * - when a fiber is deleted by another fiber or on another thread: the
 *   caller is alive and may be inside an epoch section of the thread's
 *   records, so it must not give them back. The deleted fiber is not the
 *   current one (deleting the current fiber ends its thread: the case
 *   above), and it is not the caller either: the identity differs.
 * So the exit function runs only when the identity matches. Otherwise the
 * thread's records stay registered (registry memory, freed at destroy)
 * and its links stay allocated: a thread that exits while running a fiber
 * whose storage was not the one its first call set (its value names
 * another fiber, or the thread before it became a fiber) keeps them, a
 * bounded leak per such thread, never a hand-back under a live reader.
 * At ExitProcess() the system has already ended every other thread,
 * wherever it was (inside a lock of ours, say), and then runs the exiting
 * thread's callbacks: a hand-back there could wait for a lock forever.
 * Nothing needs to be given back to a process that ends, as with exit()
 * on POSIX systems, which runs no key destructors. No thread-local is read
 * here: the C runtime may be tearing them down. */
static void WINAPI fls_exit(void *value)
{
    if (value == exit_identity() && !RtlDllShutdownInProgress()) {
        exit_ran = true;
        exit_fn(value);
    }
}

bool portreg__os_exit_ran(void)
{
    return exit_ran;
}

uintptr_t portreg__os_thread_hold(void)
{
    HANDLE h;
    if (!DuplicateHandle(GetCurrentProcess(), GetCurrentThread(), GetCurrentProcess(), &h,
                         SYNCHRONIZE, FALSE, 0))
        return 0;
    return (uintptr_t)h;
}

/* A thread's handle is signalled once the thread has ended; a wait that
 * sees it signalled synchronizes with the thread's end. */
bool portreg__os_thread_ended(uintptr_t hold)
{
    return WaitForSingleObject((HANDLE)hold, 0) == WAIT_OBJECT_0;
}

void portreg__os_thread_release(uintptr_t hold)
{
    CloseHandle((HANDLE)hold);
}

int portreg__os_key_create(portreg_os_key *k, void (*at_thread_exit)(void *))
{
    if (exit_fn != NULL && exit_fn != at_thread_exit)
        return EEXIST; /* one key per process here */
    if (!pin_this_module())
        return EAGAIN;
    exit_fn = at_thread_exit;
    DWORD i = FlsAlloc(fls_exit);
    if (i == FLS_OUT_OF_INDEXES)
        return EAGAIN;
    *k = i;
    return 0;
}

void *portreg__os_key_get(portreg_os_key k)
{
    return FlsGetValue(k);
}

/* Stores the caller's identity, not v (see fls_exit()). */
int portreg__os_key_set(portreg_os_key k, const void *v)
{
    (void)v;
    return FlsSetValue(k, exit_identity()) ? 0 : ENOMEM;
}

int portreg__os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    (void)prepare;
    (void)parent;
    (void)child;
    return 0;
}

int portreg__os_lock_init(struct portreg_os_lock *l)
{
    portreg__os_mutex_init(&l->m);
    portreg__os_cond_init(&l->freed);
    l->held = false;
    return 0;
}

void portreg__os_lock_destroy(struct portreg_os_lock *l)
{
    (void)l;
}

bool portreg__os_lock_until(struct portreg_os_lock *l, int64_t deadline)
{
    portreg__os_mutex_lock(&l->m);
    while (l->held && (deadline < 0 || portreg__os_now_ns() < deadline))
        portreg__os_cond_wait_until(&l->freed, &l->m, deadline);
    bool got = !l->held;
    if (got)
        l->held = true;
    portreg__os_mutex_unlock(&l->m);
    return got;
}

void portreg__os_lock(struct portreg_os_lock *l)
{
    portreg__os_lock_until(l, -1);
}

bool portreg__os_trylock(struct portreg_os_lock *l)
{
    portreg__os_mutex_lock(&l->m);
    bool got = !l->held;
    if (got)
        l->held = true;
    portreg__os_mutex_unlock(&l->m);
    return got;
}

void portreg__os_unlock(struct portreg_os_lock *l)
{
    portreg__os_mutex_lock(&l->m);
    l->held = false;
    portreg__os_cond_signal(&l->freed);
    portreg__os_mutex_unlock(&l->m);
}
