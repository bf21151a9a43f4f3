/*
 * unit.first_call_malloc_failure: a thread's first call on a registry
 * allocates with malloc() as well as through the registry's allocator (its
 * link and its array of links, which may outlive the registry). Linked with
 * -Wl,--wrap=malloc,--wrap=realloc,--wrap=free, this program counts the
 * blocks the library holds and fails the n-th malloc or realloc of a new
 * thread's first call, for every n until the call succeeds. Whatever the
 * failure, once the thread has exited and the registry is destroyed the
 * library must hold what it held before: the array of links used to leak
 * when the link's own malloc failed after the array had grown.
 *
 * Exit status 0: no block left at any n; 1: a leak or a failed call.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "portreg.h"

void *__real_malloc(size_t size);
void *__real_realloc(void *p, size_t size);
void __real_free(void *p);

static _Atomic long live;          /* blocks the library holds */
static _Thread_local long fail_at; /* 0: none; n: the n-th call fails */
static _Thread_local long calls;

static bool fail_now(void)
{
    return fail_at != 0 && ++calls == fail_at;
}

void *__wrap_malloc(size_t size)
{
    if (fail_now())
        return NULL;
    void *p = __real_malloc(size);
    if (p != NULL)
        atomic_fetch_add(&live, 1);
    return p;
}

void *__wrap_realloc(void *old, size_t size)
{
    if (fail_now())
        return NULL;
    void *p = __real_realloc(old, size);
    if (p != NULL && old == NULL)
        atomic_fetch_add(&live, 1);
    return p;
}

void __wrap_free(void *p)
{
    if (p != NULL)
        atomic_fetch_sub(&live, 1);
    __real_free(p);
}

struct first_call {
    portreg_t *reg;
    long fail_at;
    int rc;
    long calls;
};

static void *first_call_main(void *arg)
{
    struct first_call *f = arg;
    fail_at = f->fail_at;
    f->rc = portreg_thread_attach(f->reg);
    f->calls = calls;
    fail_at = 0;
    return NULL; /* the exit hands back and frees what the call left */
}

int main(void)
{
    /* The first create makes what the process keeps (the slot bitmap). */
    portreg_destroy(portreg_create(NULL));
    for (long n = 1;; n++) {
        long before = atomic_load(&live);
        portreg_t *reg = portreg_create(NULL);
        if (reg == NULL) {
            perror("portreg_create");
            return 1;
        }
        struct first_call f = {reg, n, -1, 0};
        pthread_t t;
        if (pthread_create(&t, NULL, first_call_main, &f) != 0) {
            fputs("pthread_create failed\n", stderr);
            return 1;
        }
        pthread_join(t, NULL);
        portreg_destroy(reg);
        long left = atomic_load(&live) - before;
        if (left != 0) {
            fprintf(stderr, "failing allocation %ld of a first call (rc %d): %ld blocks left\n", n,
                    f.rc, left);
            return 1;
        }
        if (f.rc != 0 && f.rc != PORTREG_ENOMEM) {
            fprintf(stderr, "failing allocation %ld: %s\n", n, portreg_strerror(f.rc));
            return 1;
        }
        if (f.calls < n) { /* the call made fewer allocations: all were tried */
            if (f.rc != 0) {
                fprintf(stderr, "nothing failed, yet the call returned %d\n", f.rc);
                return 1;
            }
            printf("first_call_malloc_failure: %ld failure points, nothing left\n", n - 1);
            return 0;
        }
    }
}
