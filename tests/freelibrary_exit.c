/*
 * unit.freelibrary_exit (Windows): a plugin loads the portreg DLL with
 * LoadLibrary(), a worker thread uses a registry, the plugin destroys it
 * and frees the library, and then the worker exits. Its exit runs the
 * library's fiber-local storage callback, so FreeLibrary() must leave the
 * DLL mapped: the library pins itself at a thread's first call
 * (src/os/win32.c). Without the pin the DLL is unmapped at FreeLibrary()
 * and the worker's exit calls into unmapped memory.
 *
 *   freelibrary_exit PATH-TO-libportreg.dll
 *
 * Exit status 0: the DLL stayed mapped, the worker exited and was joined;
 * 1: a call failed.
 */
#include <stdio.h>
#include <windows.h>

#include "portreg.h"

static HANDLE used, closed;
static portreg_t *reg;
static int (*attach)(portreg_t *);
static int attach_rc = -1;

static DWORD WINAPI worker(void *arg)
{
    (void)arg;
    attach_rc = attach(reg);
    SetEvent(used);
    WaitForSingleObject(closed, INFINITE);
    return 0; /* the exit runs the library's callback */
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH-TO-libportreg.dll\n", argv[0]);
        return 2;
    }
    HMODULE lib = LoadLibraryA(argv[1]);
    if (lib == NULL) {
        fprintf(stderr, "LoadLibrary: error %lu\n", GetLastError());
        return 1;
    }
    portreg_t *(*create)(const portreg_options_t *) =
        (portreg_t * (*)(const portreg_options_t *))(void *)GetProcAddress(lib, "portreg_create");
    void (*destroy)(portreg_t *) =
        (void (*)(portreg_t *))(void *)GetProcAddress(lib, "portreg_destroy");
    attach = (int (*)(portreg_t *))(void *)GetProcAddress(lib, "portreg_thread_attach");
    if (create == NULL || destroy == NULL || attach == NULL) {
        fprintf(stderr, "GetProcAddress: error %lu\n", GetLastError());
        return 1;
    }
    reg = create(NULL);
    if (reg == NULL) {
        fputs("portreg_create failed\n", stderr);
        return 1;
    }
    used = CreateEventW(NULL, TRUE, FALSE, NULL);
    closed = CreateEventW(NULL, TRUE, FALSE, NULL);
    HANDLE t = CreateThread(NULL, 0, worker, NULL, 0, NULL);
    if (used == NULL || closed == NULL || t == NULL) {
        fputs("CreateEvent/CreateThread failed\n", stderr);
        return 1;
    }
    WaitForSingleObject(used, INFINITE);
    destroy(reg);
    if (!FreeLibrary(lib)) {
        fprintf(stderr, "FreeLibrary: error %lu\n", GetLastError());
        return 1;
    }
    /* The pin keeps the module loaded: its handle is still valid. */
    HMODULE still = NULL;
    if (!GetModuleHandleExA(GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT, argv[1], &still) ||
        still != lib) {
        fputs("freelibrary_exit: the DLL was unloaded by FreeLibrary()\n", stderr);
        return 1;
    }
    SetEvent(closed);
    WaitForSingleObject(t, INFINITE);
    CloseHandle(t);
    if (attach_rc != 0) {
        fprintf(stderr, "portreg_thread_attach: %d\n", attach_rc);
        return 1;
    }
    puts("freelibrary_exit: the worker exited after FreeLibrary() and was joined");
    return 0;
}
