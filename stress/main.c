/*
 * portreg_stress: runs the checks, prints what each one proved.
 *
 *   portreg_stress [--check NAME[,NAME...]] [--size ci|long|smoke]
 *                  [--seed N] [--threads N] [--scale X] [--rss-bound yes|no]
 *
 * Checks: exchange (chain, monotonic and version checks), iter, reclaim,
 * churn, iterinsert (iterations that insert and wait beside
 * portreg_reclaim(), under a watchdog), waiters (wait placeholders under
 * churn), eventfd (its creation racing with writers), handles (the
 * exchange check read through handles), exits (threads exiting beside and
 * after portreg_destroy()); "all" (the default) runs them in that order. The seed is printed
 * and chooses every thread's operations; pass it back to repeat a run's
 * operation sequences (the interleaving is the scheduler's). Exit status:
 * 0 all checks passed, 1 a check failed, 2 a usage or setup error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(_WIN32)
#include <windows.h>
#else
#include <sys/random.h>
#include <unistd.h>
#endif

#include "stress.h"

static const struct {
    const char *name;
    unsigned (*run)(const struct cfg *);
} checks[] = {
    {"exchange", check_exchange},     {"iter", check_iter},
    {"reclaim", check_reclaim},       {"churn", check_churn},
    {"iterinsert", check_iterinsert}, {"waiters", check_waiters},
    {"eventfd", check_eventfd},       {"handles", check_handles},
    {"exits", check_exits},
};
#define NCHECKS (sizeof checks / sizeof checks[0])

static unsigned at_least(double v, unsigned min)
{
    return v < min ? min : v > 4e9 ? 4000000000u : (unsigned)v;
}

/* CI sizes per build, measured on 2 cores to take about two minutes each
 * (the three builds' stress runs share a 30-minute CI budget with the unit
 * tests and fuzzing); "long" multiplies them, most for the release build. */
struct size {
    const char *build;
    unsigned x_rounds, i_ops, r_cycles, c_threads;
    unsigned n_passes, w_waits, e_rounds, h_rounds, q_rounds;
    unsigned long_factor;
};
static const struct size sizes[] = {
    {"plain", 3000, 4000000, 4000000, 80000, 3000, 20000, 2000, 400, 10000, 4},
    {"debug", 800, 1000000, 1000000, 20000, 1000, 8000, 500, 100, 3000, 4},
    {"tsan", 500, 600000, 700000, 16000, 500, 6000, 1000, 60, 1000, 2},
    {"asan", 1500, 4000000, 1500000, 40000, 1500, 10000, 1000, 200, 3000, 2},
};

static void set_size(struct cfg *c, const char *size)
{
    const char *build = STRESS_BUILD;
#if !defined(__OPTIMIZE__)
    if (strcmp(build, "plain") == 0)
        build = "debug";
#endif
    const struct size *z = &sizes[0];
    while (strcmp(z->build, build) != 0)
        z++;
    double f = 1.0;
    if (strcmp(size, "smoke") == 0)
        f = 0.01;
    else if (strcmp(size, "long") == 0)
        f = z->long_factor;
    else if (strcmp(size, "ci") != 0)
        die("unknown --size %s (ci, long or smoke)", size);

    c->size = size;
    c->build = build;
    c->x_writers = 8, c->x_readers = 8, c->x_hot = 4, c->x_cold = 256;
    c->x_ops_per_round = 2000;
    c->i_churners = 8, c->i_iterators = 6, c->i_stable = 200, c->i_churn_ids = 1024;
    c->r_cyclers = 6, c->r_readers = 4, c->r_window = 32;
    c->c_alive = 8, c->c_readers = 2;
    /* The RSS bounds compare resident memory between phases of a check,
     * with glibc's malloc_trim() in between (util.c); other C libraries'
     * allocators keep freed memory as they see fit (musl's RSS varies by
     * 2x from run to run), so there the bound would measure them, not
     * portreg; the registry's own bytes are bounded on every C library. */
#if defined(__GLIBC__)
    c->r_enforce_rss = strcmp(build, "asan") != 0;
#else
    c->r_enforce_rss = false;
#endif
    c->x_rounds = at_least(z->x_rounds * f, 1);
    c->i_ops = at_least(z->i_ops * f, 1);
    c->r_cycles = at_least(z->r_cycles * f, 1);
    c->c_threads = at_least(z->c_threads * f, 1);
    c->n_iterators = 3, c->n_reclaimers = 2, c->n_growers = 2, c->n_stall_s = 30;
    c->n_passes = at_least(z->n_passes * f, 1);
    c->w_owners = 2, c->w_waiters = 4, c->w_sleepers = 72;
    c->w_waits = at_least(z->w_waits * f, 1);
    c->e_creators = 3, c->e_writers = 2;
    c->e_rounds = at_least(z->e_rounds * f, 1);
    c->h_extra = 2;
    c->h_rounds = at_least(z->h_rounds * f, 1);
    c->q_threads = 8;
    c->q_rounds = at_least(z->q_rounds * f, 1);
}

/* Scaled, but never below what each check needs to prove anything. */
static void scale(struct cfg *c, double x)
{
    c->x_rounds = at_least(c->x_rounds * x, 1);
    c->i_ops = at_least(c->i_ops * x, 4000);
    c->r_cycles = at_least(c->r_cycles * x, 4096);
    c->c_threads = at_least(c->c_threads * x, 2 * 16 * c->c_alive);
    c->n_passes = at_least(c->n_passes * x, 200);
    /* Enough never-tracked waits to outgrow any fixed slot bound. */
    c->w_waits = at_least(c->w_waits * x, 2000);
    c->e_rounds = at_least(c->e_rounds * x, 20);
    c->h_rounds = at_least(c->h_rounds * x, 20);
    c->q_rounds = at_least(c->q_rounds * x, 20);
}

/* Oversubscribe: n threads split between the roles of each check. */
static void set_threads(struct cfg *c, unsigned n)
{
    if (n < 4 || n > 256)
        die("--threads must be 4..256");
    c->x_writers = n / 2, c->x_readers = n - n / 2;
    /* Each writer's ports for an id must not wrap within a round. */
    unsigned k = 65535u / c->x_writers - 1;
    c->x_ops_per_round = k < 2000 ? k : 2000;
    c->i_churners = n / 2, c->i_iterators = n - n / 2;
    c->r_cyclers = n - n / 3, c->r_readers = n / 3;
    c->c_alive = n;
    c->n_iterators = n - n / 2, c->n_reclaimers = (n / 2 + 1) / 2, c->n_growers = n / 4;
    c->w_waiters = n;
    c->e_creators = n - n / 2, c->e_writers = n / 2;
    c->q_threads = n;
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--check "
            "exchange,iter,reclaim,churn,iterinsert,waiters,eventfd,handles,exits|all]\n"
            "          [--size ci|long|smoke]\n"
            "          [--seed N] [--threads N] [--scale X] [--rss-bound yes|no]\n",
            argv0);
    exit(2);
}

static long online_cpus(void)
{
#if defined(_WIN32)
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    return (long)si.dwNumberOfProcessors;
#else
    return sysconf(_SC_NPROCESSORS_ONLN);
#endif
}

static uint64_t fresh_seed(void)
{
    uint64_t s = 0;
#if defined(_WIN32)
    LARGE_INTEGER t;
    QueryPerformanceCounter(&t);
    s = (uint64_t)t.QuadPart ^ (uint64_t)GetCurrentProcessId() << 32;
#else
    if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s)
        s = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
#endif
    return s % 1000000000000u; /* short enough to copy from a log */
}

int main(int argc, char **argv)
{
    struct cfg cfg = {0};
    const char *size = "ci", *which = "all";
    unsigned threads = 0;
    double x = 1.0;
    bool seeded = false;
    int rss_bound = -1; /* -1: the build decides (set_size()) */

    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            usage(argv[0]);
        if (v == NULL)
            usage(argv[0]);
        char *end;
        errno = 0;
        if (strcmp(a, "--seed") == 0) {
            cfg.seed = strtoull(v, &end, 0);
            seeded = true;
        } else if (strcmp(a, "--threads") == 0) {
            threads = (unsigned)strtoul(v, &end, 0);
        } else if (strcmp(a, "--scale") == 0) {
            x = strtod(v, &end);
        } else if (strcmp(a, "--size") == 0) {
            size = v;
            end = (char *)v + strlen(v);
        } else if (strcmp(a, "--rss-bound") == 0) {
            /* "no" under an emulator, whose own memory (code translated
             * per thread) is in the process's RSS */
            rss_bound = strcmp(v, "yes") == 0 ? 1 : strcmp(v, "no") == 0 ? 0 : -2;
            if (rss_bound == -2)
                usage(argv[0]);
            end = (char *)v + strlen(v);
        } else if (strcmp(a, "--check") == 0) {
            which = v;
            end = (char *)v + strlen(v);
        } else {
            usage(argv[0]);
        }
        if (errno != 0 || *end != '\0' || end == v)
            usage(argv[0]);
    }
    set_size(&cfg, size);
    if (rss_bound >= 0)
        cfg.r_enforce_rss = rss_bound;
    if (threads != 0)
        set_threads(&cfg, threads);
    if (x <= 0 || x > 1000)
        die("--scale must be in (0, 1000]");
    scale(&cfg, x);
    if (!seeded)
        cfg.seed = fresh_seed();

    bool run[NCHECKS] = {false};
    char list[256];
    snprintf(list, sizeof list, "%s", which);
    for (char *save, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t k;
        for (k = 0; k < NCHECKS; k++)
            if (strcmp(tok, "all") == 0 || strcmp(tok, checks[k].name) == 0)
                run[k] = true;
        if (strcmp(tok, "all") != 0) {
            for (k = 0; k < NCHECKS && strcmp(tok, checks[k].name) != 0; k++)
                ;
            if (k == NCHECKS)
                die("unknown check '%s'", tok);
        }
    }

    printf("portreg_stress: seed=%llu build=%s size=%s scale=%g cpus=%ld library=%s\n",
           (unsigned long long)cfg.seed, cfg.build, cfg.size, x, online_cpus(),
           portreg_version_string());
    fflush(stdout);
    unsigned failed = 0, ran = 0;
    double t0 = now_s();
    for (size_t k = 0; k < NCHECKS && !stopping(); k++) {
        if (!run[k])
            continue;
        failed += checks[k].run(&cfg) != 0;
        ran++;
        fflush(stdout);
    }
    struct mem m = mem_now();
    printf("portreg_stress: %s: %u of %u checks failed, seed=%llu, %.1f s, peak_rss=%zu KiB\n",
           failed ? "FAIL" : "PASS", failed, ran, (unsigned long long)cfg.seed, now_s() - t0,
           m.hwm_kib);
    if (failed) {
        char t[32] = "";
        if (threads != 0)
            snprintf(t, sizeof t, " --threads %u", threads);
        printf("portreg_stress: repeat with: %s --seed %llu --size %s --scale %g%s --check %s\n",
               argv[0], (unsigned long long)cfg.seed, cfg.size, x, t, which);
    }
    return failed ? 1 : 0;
}
