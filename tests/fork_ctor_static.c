/*
 * unit.fork_ctor_static: a program linked with libportreg.a registers a
 * fork child handler from its own constructor, and the handler replaces a
 * registry (destroy, then create). The library's fork handlers must be
 * registered before the program's, or the child's handler would run while
 * the library's lock is still held and wait for it forever: the library's
 * constructor has priority 101, ahead of the program's default ones.
 *
 * Exit status 0: the child replaced the registry and used the new one;
 * 1: it failed or did not return within 10 s.
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "portreg.h"

static portreg_t *reg;
static bool armed;

static void child_replaces_the_registry(void)
{
    if (!armed)
        return;
    portreg_destroy(reg);
    reg = portreg_create(NULL);
}

__attribute__((constructor)) static void register_fork_handler(void)
{
    if (pthread_atfork(NULL, NULL, child_replaces_the_registry) != 0)
        _exit(2);
}

int main(void)
{
    reg = portreg_create(NULL);
    if (reg == NULL || portreg_register(reg, "svc", 3, 8080, NULL) != 0) {
        fputs("fork_ctor_static: setup failed\n", stderr);
        return 1;
    }
    armed = true;
    pid_t pid = fork();
    if (pid == -1) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        uint16_t port = 0;
        bool ok = reg != NULL && !portreg_lookup(reg, "svc", 3, NULL) &&
                  portreg_register(reg, "svc", 3, 9090, NULL) == 0 &&
                  portreg_lookup(reg, "svc", 3, &port) && port == 9090;
        _exit(ok ? 0 : 1);
    }
    /* A child stuck in its fork handler cannot time itself out: poll for
     * its exit until a deadline, then kill it. */
    int status = 0;
    for (int ms = 0; ms < 10000; ms += 10) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                puts("fork_ctor_static: the child's handler replaced the registry");
                portreg_destroy(reg);
                return 0;
            }
            fprintf(stderr, "fork_ctor_static: the child failed (status %#x)\n", status);
            return 1;
        }
        struct timespec ten_ms = {0, 10 * 1000 * 1000};
        nanosleep(&ten_ms, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    fputs("fork_ctor_static: the child's fork handler did not return\n", stderr);
    return 1;
}
