/*
 * unit.late_exit_call (Windows, a library built with native thread-locals,
 * by clang): a C++ program's thread_local destructors call into the
 * library on threads that used a registry.
 *
 * Such a destructor runs while the thread exits, after the library's own
 * exit callback (fiber-local storage) has given the thread's records back,
 * and with the loader lock held. Checked here:
 * - the late call links records that no exit gives back; the library
 *   hands them back for the thread once it has ended (at the next first
 *   call of a thread, or at destroy): what the registries hold must not
 *   grow with the number of threads;
 * - meanwhile the late thread's calls find its records as an early call
 *   would: two registries in turn, and portreg_reclaim() inside an
 *   iteration refuses (PORTREG_EINVAL) instead of waiting for the thread
 *   itself;
 * - a destroy made there returns, whether the registry's reclaim thread
 *   ran already or was started there (and cannot start while the lock is
 *   held);
 * - every thread finishes exiting and the process heap stays intact. A
 *   library built by mingw-w64 GCC, whose thread-locals are emulated in
 *   per-thread blocks that the C runtime frees while the thread exits,
 *   fails this: under Wine a late call hung the next thread's start (5 of
 *   5 runs) or corrupted the heap.
 *
 * The program is built by mingw-w64 g++, as a user's would be: its own
 * thread_locals are emulated, whatever compiled the library.
 *
 * Exit status 0 when all of that held, 1 otherwise.
 */
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <windows.h>

#include "portreg.h"

namespace
{

constexpr int threads = 200;

std::atomic<long> live_blocks;
portreg_t *reg, *reg2;
std::atomic<int> late_calls, late_answers, late_reclaims;

void *count_alloc(void *, size_t size)
{
    void *p = std::malloc(size);
    if (p != nullptr)
        live_blocks++;
    return p;
}

void count_free(void *, void *p, size_t)
{
    if (p != nullptr)
        live_blocks--;
    std::free(p);
}

bool resolves(void)
{
    uint16_t port = 0;
    return portreg_lookup(reg, "svc", 3, &port) && port == 8080;
}

bool resolves2(void)
{
    uint16_t port = 0;
    return portreg_lookup(reg2, "svc", 3, &port) && port == 9090;
}

struct LateCaller {
    bool armed = false;
    ~LateCaller()
    {
        if (!armed)
            return;
        int n = late_calls++;
        /* Two registries in turn: each call finds the thread's record the
         * way an early call does. */
        bool ok = portreg_thread_attach(reg) == 0;
        for (int i = 0; i < 50 && ok; i++)
            ok = resolves() && resolves2();
        if (ok)
            late_answers++;
        /* Inside an iteration the thread's record is in a section:
         * reclaim must see that and refuse (it would wait for itself). */
        if (n % 20 == 0) {
            portreg_iter_t it;
            portreg_iter_init(&it, reg);
            if (portreg_reclaim(reg) == PORTREG_EINVAL)
                late_reclaims++;
            portreg_iter_fini(&it);
        }
    }
};

thread_local LateCaller late_caller;

/* Defers memory until the registry's reclaim thread has started. */
bool churn(portreg_t *r)
{
    char id[32];
    for (int i = 0; i < 3000; i++) {
        int n = std::snprintf(id, sizeof id, "churn-%d", i);
        if (portreg_register(r, id, (size_t)n, 1000, nullptr) != 0 ||
            portreg_untrack(r, id, (size_t)n, nullptr) != 0)
            return false;
    }
    return true;
}

/* portreg_destroy() under the loader lock (a thread_local destructor
 * holds it): of a registry whose reclaim thread runs already, and of one
 * made there, whose reclaim thread cannot even start until the lock is
 * free. Neither may wait for that thread's start or end. */
portreg_t *early_reg;
std::atomic<int> late_destroys;
struct LateDestroyer {
    bool armed = false;
    ~LateDestroyer()
    {
        if (!armed)
            return;
        portreg_destroy(early_reg);
        late_destroys++;
        portreg_t *r = portreg_create(nullptr);
        if (r == nullptr || !churn(r))
            return;
        portreg_destroy(r);
        late_destroys++;
    }
};
thread_local LateDestroyer late_destroyer;

DWORD WINAPI destroyer(void *)
{
    early_reg = portreg_create(nullptr);
    if (early_reg == nullptr || !churn(early_reg))
        return 1;
    late_destroyer.armed = true;
    return 0;
}

DWORD WINAPI worker(void *)
{
    if (!resolves())
        return 1;
    late_caller.armed = true;
    return 0;
}

int fail(const char *what, int i)
{
    std::fprintf(stderr, "late_exit_call: FAILED: %s (thread %d)\n", what, i);
    std::fflush(stderr);
    /* Threads may be stuck in their exit: do not wait for them. */
    TerminateProcess(GetCurrentProcess(), 1);
    return 1;
}

} // namespace

int main()
{
    portreg_options_t opts;
    portreg_options_init(&opts);
    opts.alloc = count_alloc;
    opts.free = count_free;
    reg = portreg_create(&opts);
    reg2 = portreg_create(&opts);
    if (reg == nullptr || reg2 == nullptr || portreg_register(reg, "svc", 3, 8080, nullptr) != 0 ||
        portreg_register(reg2, "svc", 3, 9090, nullptr) != 0)
        return fail("create and register", -1);
    long held_early = 0;
    for (int i = 0; i < threads; i++) {
        if (i == 10)
            held_early = live_blocks;
        HANDLE t = CreateThread(nullptr, 0, worker, nullptr, 0, nullptr);
        if (t == nullptr)
            return fail("CreateThread", i);
        if (WaitForSingleObject(t, 20000) != WAIT_OBJECT_0)
            return fail("the thread did not finish exiting within 20 s", i);
        DWORD code = 1;
        GetExitCodeThread(t, &code);
        CloseHandle(t);
        if (code != 0)
            return fail("an early lookup missed", i);
    }
    if (late_calls != threads || late_answers != threads)
        return fail("a late call did not answer as an early one", late_answers);
    if (late_reclaims != threads / 20)
        return fail("portreg_reclaim() inside a late iteration did not refuse", late_reclaims);
    HANDLE d = CreateThread(nullptr, 0, destroyer, nullptr, 0, nullptr);
    if (d == nullptr)
        return fail("CreateThread", -1);
    if (WaitForSingleObject(d, 20000) != WAIT_OBJECT_0)
        return fail("portreg_destroy() from a thread_local destructor hung", late_destroys);
    CloseHandle(d);
    if (late_destroys != 2)
        return fail("a destroy from a thread_local destructor did not run", late_destroys);
    if (!HeapValidate(GetProcessHeap(), 0, nullptr))
        return fail("the process heap is corrupt", -1);
    for (int i = 0; i < 10000; i++)
        std::free(std::malloc(16 + i % 512));
    /* The records of late threads that have ended come back at the next
     * first call: what the registries hold stops growing. */
    long held = live_blocks;
    if (held > held_early + 10)
        return fail("late records are not recycled after their threads end", (int)held);
    portreg_destroy(reg);
    portreg_destroy(reg2);
    if (live_blocks != 0)
        return fail("destroy left blocks allocated", (int)live_blocks.load());
    std::printf("late_exit_call: ok: %d late calls answered; registry blocks held after 10 "
                "threads %ld, after %d %ld; all freed by destroy\n",
                threads, held_early, threads, held);
    return 0;
}
