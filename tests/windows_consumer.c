/*
 * A Windows program that uses portreg as an application would: through the
 * DLL's import library (portreg.lib, the name MSVC and Rust's msvc target
 * look for), or linked with the static library (PORTREG_STATIC_DEFINE).
 * It waits on the change notification as an event loop would.
 * Exit status 0 when every step behaved.
 */
#include <stdio.h>
#include <string.h>
#include <windows.h>

#include "portreg.h"

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "windows_consumer: FAILED: %s\n", what);
        failures++;
    }
}

static DWORD WINAPI change_later(void *arg)
{
    Sleep(20); /* not needed for correctness: the wait below is likelier asleep */
    check(portreg_register(arg, "late", 4, 9090, NULL) == 0, "register on another thread");
    return 0;
}

int main(void)
{
    check(portreg_version() == PORTREG_VERSION_HEX, "header and library versions agree");
    portreg_t *reg = portreg_create(NULL);
    check(reg != NULL, "create");
    if (reg == NULL)
        return 1;
    check(portreg_register(reg, "api", 3, 8080, NULL) == 0, "register");
    uint16_t port = 0;
    check(portreg_lookup(reg, "api", 3, &port) && port == 8080, "lookup");

    int fd = portreg_eventfd(reg);
    check(fd > 0, "the notification exists");
    HANDLE ev = (HANDLE)(intptr_t)fd;
    check(WaitForSingleObject(ev, 0) == WAIT_TIMEOUT, "not set before a change");
    uint64_t seen = portreg_changes(reg);
    HANDLE t = CreateThread(NULL, 0, change_later, reg, 0, NULL);
    check(t != NULL, "thread");
    check(WaitForSingleObject(ev, 10000) == WAIT_OBJECT_0, "set by the other thread's change");
    check(portreg_changes(reg) > seen, "the change is counted");
    check(portreg_lookup(reg, "late", 4, &port) && port == 9090, "the change is visible");
    WaitForSingleObject(t, INFINITE);
    CloseHandle(t);
    check(WaitForSingleObject(ev, 0) == WAIT_TIMEOUT, "one wait re-armed it");
    check(strcmp(portreg_err_name(PORTREG_EINVAL), "PORTREG_EINVAL") == 0, "error names");
    portreg_destroy(reg);
    if (failures == 0)
        printf("windows_consumer: ok\n");
    return failures != 0;
}
