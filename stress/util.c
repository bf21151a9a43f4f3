/*
 * What the checks share: ids, failure reporting, memory figures, the
 * leak check after destroy, threads.
 */
#include <errno.h>
#include <fcntl.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(_WIN32)
#include <windows.h>
#include <psapi.h>
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stress.h"

_Atomic unsigned stress_failures;
_Atomic bool stress_stop;

#define FAIL_PRINT_MAX 25

size_t id_make(char *buf, char tag, uint32_t group, uint32_t index)
{
    size_t pad = (index * 7u + group) % 23u;
    buf[0] = tag;
    memcpy(buf + 1, &group, 4);
    memcpy(buf + 5, &index, 4);
    memset(buf + 9, 'x', pad);
    return 9 + pad;
}

bool id_parse(const char *id, size_t len, char *tag, uint32_t *group, uint32_t *index)
{
    char check[ID_BUF];
    if (len < 9 || len > 9 + 22)
        return false;
    memcpy(group, id + 1, 4);
    memcpy(index, id + 5, 4);
    *tag = id[0];
    /* Re-make it: an id that differs in any byte is not one of ours. */
    return id_make(check, *tag, *group, *index) == len && memcmp(check, id, len) == 0;
}

void fail(const char *check, const char *fmt, ...)
{
    unsigned n = atomic_fetch_add_explicit(&stress_failures, 1, memory_order_relaxed);
    atomic_store_explicit(&stress_stop, true, memory_order_relaxed);
    if (n >= FAIL_PRINT_MAX) {
        if (n == FAIL_PRINT_MAX)
            fprintf(stderr, "%s check: further failures not printed\n", check);
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* One fprintf per line, so lines from several threads do not mix. */
    fprintf(stderr, "%s check FAILED: %s\n", check, msg);
}

void die(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "stress: setup error: %s\n", msg);
    exit(2);
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n != 0 ? n : 1, size != 0 ? size : 1);
    if (p == NULL)
        die("out of memory (%zu x %zu bytes)", n, size);
    return p;
}

void *xrealloc(void *p, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        die("allocation overflow");
    void *q = realloc(p, n * size != 0 ? n * size : 1);
    if (q == NULL)
        die("out of memory (%zu x %zu bytes)", n, size);
    return q;
}

#if defined(_WIN32)
/* Windows: the working set and its peak (which no call resets: the peak
 * is then a looser bound). */
struct mem mem_now(void)
{
    struct mem m = {0, 0};
    PROCESS_MEMORY_COUNTERS pmc;
    if (GetProcessMemoryInfo(GetCurrentProcess(), &pmc, sizeof pmc)) {
        m.rss_kib = pmc.WorkingSetSize / 1024;
        m.hwm_kib = pmc.PeakWorkingSetSize / 1024;
    }
    return m;
}

void mem_reset_peak(void) {}
#else
struct mem mem_now(void)
{
    struct mem m = {0, 0};
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return m;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return m;
    buf[n] = '\0';
    const char *p = strstr(buf, "VmHWM:");
    if (p != NULL)
        m.hwm_kib = strtoul(p + 6, NULL, 10);
    p = strstr(buf, "VmRSS:");
    if (p != NULL)
        m.rss_kib = strtoul(p + 6, NULL, 10);
    return m;
}

void mem_reset_peak(void)
{
#if defined(__GLIBC__)
    /* glibc keeps freed memory in its arenas; other C libraries have no
     * such call (the peak is then a looser bound). */
    malloc_trim(0);
#endif
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = write(fd, "5", 1);
    (void)n; /* an older kernel keeps the process-wide peak: still a bound */
    close(fd);
}
#endif

bool destroy_and_check_empty(const char *check, portreg_t *reg, struct counting *c)
{
    portreg_destroy(reg);
    int64_t left = atomic_load(&c->live_bytes), blocks = atomic_load(&c->live_blocks);
    unsigned bad = atomic_load(&c->bad_frees);
    if (!counting_is_empty(c))
        fail(check,
             "after portreg_destroy: %lld bytes in %lld blocks still allocated, "
             "%u frees with a wrong size or pointer",
             (long long)left, (long long)blocks, bad);
    return left == 0 && blocks == 0;
}

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
    int err = pthread_create(t, NULL, fn, arg);
    if (err != 0)
        die("pthread_create: %s", strerror(err));
}

void join_thread(pthread_t t)
{
    int err = pthread_join(t, NULL);
    if (err != 0)
        die("pthread_join: %s", strerror(err));
}
