/* Threads, windows and the clock. */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "driver.h"
#include "loops.h"

/* The CPUs this process may run on, in order; window threads are pinned
 * round-robin so that which threads share a CPU is the same in every
 * window, for every impl (left to the scheduler, a reader sometimes shares a
 * CPU with the writer and sometimes with the other reader). */
static int cpus[CPU_SETSIZE];
static int n_cpus;

double bench_tsc_per_ns = 1.0;
uint64_t bench_timer_overhead;
uint64_t bench_tsc_step;

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void bench_calibrate(void)
{
    cpu_set_t set;
    n_cpus = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        for (int c = 0; c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &set))
                cpus[n_cpus++] = c;

    uint64_t n0 = bench_now_ns(), t0 = __rdtsc();
    struct timespec d = {0, 20 * 1000 * 1000};
    nanosleep(&d, NULL);
    uint64_t n1 = bench_now_ns(), t1 = __rdtsc();
    bench_tsc_per_ns = (double)(t1 - t0) / (double)(n1 - n0);

    enum { N = 10001 };
    static uint64_t v[N];
    for (int i = 0; i < N; i++) {
        uint64_t a = bench_tsc_begin();
        uint64_t b = bench_tsc_end();
        v[i] = b - a;
    }
    qsort(v, N, sizeof v[0], cmp_u64);
    bench_timer_overhead = v[N / 2];

    /* Virtual machines may advance the TSC in steps: latencies are
     * multiples of the step, whatever the clock rate says. */
    bench_tsc_step = UINT64_MAX;
    uint64_t prev = __rdtsc();
    for (int i = 0; i < 1000; i++) {
        uint64_t now = __rdtsc();
        if (now - prev > 1 && now - prev < bench_tsc_step)
            bench_tsc_step = now - prev;
        prev = now;
    }
}

double bench_ticks_to_ns(uint64_t ticks)
{
    /* Samples include the timer's own cost; take its median off. */
    uint64_t t = ticks > bench_timer_overhead ? ticks - bench_timer_overhead : 0;
    return (double)t / bench_tsc_per_ns;
}

void lat_merge(struct lat_hist *into, const struct lat_hist *from)
{
    for (unsigned i = 0; i < LAT_BUCKETS; i++)
        into->b[i] += from->b[i];
    into->n += from->n;
    if (from->max > into->max)
        into->max = from->max;
}

uint64_t lat_quantile(const struct lat_hist *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)h->n), seen = 0;
    for (unsigned i = 0; i < LAT_BUCKETS; i++) {
        seen += h->b[i];
        if (seen > want) {
            if (i < (1u << LAT_SUB_BITS))
                return i;
            unsigned e = i / (1u << LAT_SUB_BITS) + LAT_SUB_BITS - 1;
            uint64_t sub = i % (1u << LAT_SUB_BITS);
            uint64_t lo = (UINT64_C(1) << e) + (sub << (e - LAT_SUB_BITS));
            uint64_t mid = lo + (UINT64_C(1) << (e - LAT_SUB_BITS)) / 2;
            return mid < h->max ? mid : h->max;
        }
    }
    return h->max;
}

/* CPU time all processes spent (seconds), from /proc/stat; -1 if unknown. */
static double machine_busy_s(void)
{
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return -1;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n != 8)
        return -1;
    /* user nice system [idle iowait] irq softirq steal */
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

struct worker {
    pthread_t th;
    const struct bench_impl *impl;
    pthread_barrier_t *start;
    bool writer;
    struct bench_thread t;
};

static void *worker_main(void *p)
{
    struct worker *w = p;
    const struct bench_impl *impl = w->impl;
    w->t.tls = impl->thread_enter(w->t.inst);
    if (!w->writer && impl->reader_prepare != NULL)
        impl->reader_prepare(&w->t);
    /* qsbr: a registered thread that blocks must be offline, or it would
     * hold up every grace period while it waits */
    if (impl->thread_offline != NULL)
        impl->thread_offline(w->t.tls);
    pthread_barrier_wait(w->start);
    if (impl->thread_online != NULL)
        impl->thread_online(w->t.tls);
    if (w->writer)
        impl->write_loop(&w->t);
    else
        impl->read_loop(&w->t);
    impl->thread_leave(w->t.inst, w->t.tls);
    return NULL;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec d = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&d, &d) != 0)
        ;
}

void bench_run_window(const struct run_spec *spec, struct lat_hist *hist, struct run_result *res)
{
    struct bench_cell *c = spec->cell;
    bool writer = bench_workload_has_writer(c->wl);
    unsigned n = spec->readers + (writer ? 1 : 0);
    struct worker *w = calloc(n, sizeof *w);
    struct lat_hist *h = calloc(n, sizeof *h);
    pthread_barrier_t start;
    if (w == NULL || h == NULL)
        abort();
    pthread_barrier_init(&start, NULL, n + 1);
    atomic_store_explicit(&c->stop, false, memory_order_relaxed);
    atomic_store_explicit(&c->writer_done, false, memory_order_relaxed);

    uint64_t seed = spec->seed;
    for (unsigned i = 0; i < n; i++) {
        w[i].impl = spec->impl;
        w[i].start = &start;
        w[i].writer = writer && i == spec->readers;
        w[i].t.cell = c;
        w[i].t.inst = spec->inst;
        w[i].t.rng = bench_rng(&seed);
        w[i].t.reader = i;
        w[i].t.hist = &h[i];
        /* readers 0, 1, ... then the writer, round-robin over the CPUs */
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        if (n_cpus > 0) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpus[i % (unsigned)n_cpus], &one);
            pthread_attr_setaffinity_np(&attr, sizeof one, &one);
        }
        if (pthread_create(&w[i].th, &attr, worker_main, &w[i]) != 0)
            abort();
        pthread_attr_destroy(&attr);
    }

    double busy0 = machine_busy_s(), self0 = self_cpu_s();
    pthread_barrier_wait(&start);
    uint64_t t0 = bench_now_ns();
    if (c->wl == WL_INSERT) {
        /* The window ends early when the writer has used up its new ids. */
        while (bench_now_ns() - t0 < spec->window_ns &&
               !atomic_load_explicit(&c->writer_done, memory_order_acquire))
            sleep_ns(200 * 1000);
    } else {
        sleep_ns(spec->window_ns);
    }
    atomic_store_explicit(&c->stop, true, memory_order_relaxed);
    uint64_t t1 = bench_now_ns();
    for (unsigned i = 0; i < n; i++)
        pthread_join(w[i].th, NULL);
    double busy1 = machine_busy_s(), self1 = self_cpu_s();
    pthread_barrier_destroy(&start);

    memset(res, 0, sizeof *res);
    res->window_s = (double)(t1 - t0) / 1e9;
    if (busy0 >= 0 && busy1 >= 0) {
        double other = (busy1 - busy0) - (self1 - self0);
        /* Even on a CPU our threads leave idle, another process competes
         * for the shared cache and memory bandwidth: count it all. */
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        res->other_load = other > 0 ? other / (res->window_s * (double)(ncpu > 0 ? ncpu : 1)) : 0;
    }
    for (unsigned i = 0; i < n; i++) {
        if (w[i].writer) {
            res->writes = w[i].t.ops;
            res->writes_per_s = (double)w[i].t.ops / res->window_s;
            res->churn_end = w[i].t.churn_end;
            continue;
        }
        double rate = (double)w[i].t.ops / res->window_s;
        res->lookups += w[i].t.ops;
        res->hits += w[i].t.hits;
        if (i == 0 || rate < res->thread_min_per_s)
            res->thread_min_per_s = rate;
        if (rate > res->thread_max_per_s)
            res->thread_max_per_s = rate;
        lat_merge(hist, &h[i]);
    }
    res->lookups_per_s = (double)res->lookups / res->window_s;
    free(w);
    free(h);
}

void bench_fill_task(const struct bench_impl *impl, void *inst, void *tls, void *arg)
{
    const struct bench_id_range *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        if (impl->insert(inst, tls, a->ids[i].p, a->ids[i].len, bench_port(a->port_base + i)) !=
            0) {
            fprintf(stderr, "portreg-bench: %s: insert failed while filling\n", impl->name);
            exit(1);
        }
    }
}

void bench_prepare_reader(const struct bench_impl *impl, void *inst, void *tls,
                          const bench_id_t *present, const bench_id_t *absent, size_t n)
{
    if (impl->reader_prepare == NULL)
        return;
    struct bench_cell cell = {.wl = WL_RO_MISS,
                              .present = present,
                              .n_present = n,
                              .absent = absent,
                              .n_absent = n,
                              .miss_per_1024 = 1024};
    struct bench_thread t = {.cell = &cell, .inst = inst, .tls = tls, .reader = 0};
    impl->reader_prepare(&t);
}

struct task {
    const struct bench_impl *impl;
    void *inst;
    bench_task_fn *fn;
    void *arg;
};

static void *task_main(void *p)
{
    struct task *t = p;
    void *tls = t->impl->thread_enter(t->inst);
    t->fn(t->impl, t->inst, tls, t->arg);
    t->impl->thread_leave(t->inst, tls);
    return NULL;
}

void bench_run_task(const struct bench_impl *impl, void *inst, bench_task_fn *fn, void *arg)
{
    struct task t = {impl, inst, fn, arg};
    pthread_t th;
    if (pthread_create(&th, NULL, task_main, &t) != 0)
        abort();
    pthread_join(th, NULL);
}
