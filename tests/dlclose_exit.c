/*
 * unit.dlclose_exit: a plugin opens libportreg with dlopen(), a worker
 * thread of the plugin uses a registry, the plugin destroys it and closes
 * the library, and then the worker exits. Its exit runs the library's
 * exit handler (a pthread key destructor that outlives every registry), so
 * dlclose() must leave the library mapped: without -z nodelete this
 * process dies of SIGSEGV when the worker exits.
 *
 *   dlclose_exit PATH-TO-libportreg.so
 *
 * Exit status 0: the worker exited and was joined; 1: a call failed.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "portreg.h"

static pthread_barrier_t used, closed;
static portreg_t *reg;
static int (*attach)(portreg_t *);
static int attach_rc = -1;

static void *worker(void *arg)
{
    (void)arg;
    attach_rc = attach(reg);
    pthread_barrier_wait(&used);
    pthread_barrier_wait(&closed);
    return NULL; /* the exit runs the library's handler */
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH-TO-libportreg.so\n", argv[0]);
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    portreg_t *(*create)(const portreg_options_t *) =
        (portreg_t * (*)(const portreg_options_t *)) dlsym(lib, "portreg_create");
    void (*destroy)(portreg_t *) = (void (*)(portreg_t *))dlsym(lib, "portreg_destroy");
    attach = (int (*)(portreg_t *))dlsym(lib, "portreg_thread_attach");
    if (create == NULL || destroy == NULL || attach == NULL) {
        fprintf(stderr, "dlsym: %s\n", dlerror());
        return 1;
    }
    reg = create(NULL);
    if (reg == NULL) {
        perror("portreg_create");
        return 1;
    }
    pthread_barrier_init(&used, NULL, 2);
    pthread_barrier_init(&closed, NULL, 2);
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0) {
        fputs("pthread_create failed\n", stderr);
        return 1;
    }
    pthread_barrier_wait(&used);
    destroy(reg);
    if (dlclose(lib) != 0) {
        fprintf(stderr, "dlclose: %s\n", dlerror());
        return 1;
    }
    pthread_barrier_wait(&closed);
    pthread_join(t, NULL);
    if (attach_rc != 0) {
        fprintf(stderr, "portreg_thread_attach: %d\n", attach_rc);
        return 1;
    }
    puts("dlclose_exit: the worker exited after dlclose() and was joined");
    return 0;
}
