/*
 * unit.exit_destroy (Windows): a registry whose reclaim thread runs is
 * destroyed from a DLL's DllMain at process exit (tests/exit_destroy_dll.c).
 * ExitProcess() has ended the reclaim thread before that DllMain runs, so
 * the thread never returns from its function: the destroy must not wait
 * for that (it hung before the join also watched the thread's end).
 * Passes when the DLL prints that destroy returned (ctest's time limit
 * catches a hang).
 */
#include <stdio.h>
#include <stdlib.h>
#include <windows.h>

#include "portreg.h"

__declspec(dllimport) void exit_destroy_hold(portreg_t *reg);

static DWORD main_thread;
static HANDLE reclaimer_seen; /* a free from another thread: the reclaim thread */

static void *plain_alloc(void *ctx, size_t size)
{
    (void)ctx;
    return malloc(size);
}

static void note_free(void *ctx, void *p, size_t size)
{
    (void)ctx;
    (void)size;
    if (GetCurrentThreadId() != main_thread)
        SetEvent(reclaimer_seen);
    free(p);
}

int main(void)
{
    main_thread = GetCurrentThreadId();
    reclaimer_seen = CreateEventW(NULL, TRUE, FALSE, NULL);
    portreg_options_t opts;
    portreg_options_init(&opts);
    opts.alloc = plain_alloc;
    opts.free = note_free;
    portreg_t *reg = portreg_create(&opts);
    if (reg == NULL || reclaimer_seen == NULL)
        return 1;
    /* Deferred frees start the reclaim thread; once it has freed something
     * it is inside its function, where the exit will end it. */
    char id[32];
    for (int round = 0; WaitForSingleObject(reclaimer_seen, 100) != WAIT_OBJECT_0; round++) {
        if (round == 100) {
            printf("exit_destroy: FAILED: the reclaim thread never freed anything\n");
            return 1;
        }
        for (int i = 0; i < 100; i++) {
            int n = snprintf(id, sizeof id, "churn-%d-%d", round, i);
            if (portreg_register(reg, id, (size_t)n, 1000, NULL) != 0 ||
                portreg_untrack(reg, id, (size_t)n, NULL) != 0)
                return 1;
        }
    }
    exit_destroy_hold(reg);
    printf("exit_destroy: main returns\n");
    fflush(stdout);
    return 0;
}
