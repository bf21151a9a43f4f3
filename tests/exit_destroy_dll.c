/*
 * The DLL half of unit.exit_destroy (Windows): a user's DLL that destroys
 * a registry from its DllMain at DLL_PROCESS_DETACH, as the header allows.
 * At process exit the system has ended every other thread by then, the
 * registry's reclaim thread included, without letting it return.
 */
#include <stdio.h>
#include <windows.h>

#include "portreg.h"

static portreg_t *held;

__declspec(dllexport) void exit_destroy_hold(portreg_t *reg)
{
    held = reg;
}

BOOL WINAPI DllMain(HINSTANCE self, DWORD why, LPVOID reserved)
{
    (void)self;
    (void)reserved;
    if (why == DLL_PROCESS_DETACH && held != NULL) {
        portreg_destroy(held);
        printf("exit_destroy: destroy returned at process exit\n");
        fflush(stdout);
    }
    return TRUE;
}
