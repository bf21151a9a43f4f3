/* The driver's view: measurement windows, tasks, results and reports. */
#ifndef BENCH_DRIVER_H
#define BENCH_DRIVER_H

#include <stdio.h>

#include "bench.h"

/* ---- run.c: threads and windows ---- */

struct run_spec {
    const struct bench_impl *impl;
    void *inst;
    struct bench_cell *cell;
    unsigned readers;
    uint64_t window_ns;
    uint64_t seed;
};

struct run_result {
    double window_s;
    uint64_t lookups, hits, writes;
    double lookups_per_s; /* all readers together */
    double thread_min_per_s, thread_max_per_s;
    double writes_per_s; /* the one writer */
    size_t churn_end;    /* churn: the writer's cursor at the end */
    double other_load;   /* share of all CPUs other processes used meanwhile */
};

/* Runs readers (and a writer if the workload has one) for one window;
 * sampled lookup latencies are added to hist. */
void bench_run_window(const struct run_spec *spec, struct lat_hist *hist, struct run_result *res);

typedef void bench_task_fn(const struct bench_impl *impl, void *inst, void *tls, void *arg);

/* ids[0..n) registered with ports bench_port(port_base + i). */
struct bench_id_range {
    const bench_id_t *ids;
    size_t n;
    uint64_t port_base;
};
/* A task that inserts a struct bench_id_range; exits on failure. */
bench_task_fn bench_fill_task;
/* Runs impl's reader_prepare (if any) for reader 0 of a read-only cell over
 * present[0..n) and absent[0..n), so that lookups outside a window (the
 * checks, the instruction counts) work for every impl. */
void bench_prepare_reader(const struct bench_impl *impl, void *inst, void *tls,
                          const bench_id_t *present, const bench_id_t *absent, size_t n);
/* A window counts as disturbed when other processes used more than this
 * share of the machine's CPUs during it; such windows are run again while
 * the retry budget lasts. */
#define BENCH_MAX_OTHER_LOAD 0.15

/* Runs fn on a new thread set up for impl (thread_enter/leave around it). */
void bench_run_task(const struct bench_impl *impl, void *inst, bench_task_fn *fn, void *arg);

/* TSC ticks per nanosecond and the median cost of an empty timed region,
 * both measured at start-up. */
extern double bench_tsc_per_ns;
extern uint64_t bench_timer_overhead;
extern uint64_t bench_tsc_step; /* smallest advance of the TSC seen (>1) */
void bench_calibrate(void);
double bench_ticks_to_ns(uint64_t ticks);

/* ---- main.c / report.c: results ---- */

#define MAX_IMPLS   12
#define MAX_SIZES   4
#define MAX_READERS 4
#define MAX_REPS    15
#define MAX_STORES  6

struct mem_result {
    bool valid;
    size_t keys;
    double mean_id_len;
    double malloc_per_entry; /* mallinfo2() in-use delta over the fill / keys */
    double struct_per_entry; /* store->bytes() / keys; 0 if unknown */
};

struct instr_result {
    bool valid;
    double hit, miss; /* instructions per lookup, loop included */
};

struct bench_results {
    const struct bench_impl *impls[MAX_IMPLS];
    unsigned n_impls;
    const struct bench_store *stores[MAX_STORES];
    unsigned n_stores;
    size_t sizes[MAX_SIZES];
    unsigned n_sizes;
    unsigned readers[MAX_READERS];
    unsigned n_readers;
    unsigned workloads; /* mask */
    unsigned reps;
    unsigned window_ms;
    double retry_budget_s;
    double mean_id_len;
    /* [wl][size][readers][impl][rep]; window_s 0: not run */
    struct run_result run[WL_COUNT][MAX_SIZES][MAX_READERS][MAX_IMPLS][MAX_REPS];
    struct lat_hist lat[WL_COUNT][MAX_SIZES][MAX_READERS][MAX_IMPLS];
    struct mem_result mem[MAX_SIZES][MAX_STORES];
    struct instr_result instr[MAX_IMPLS];
    struct instr_result instr_loop;                /* the loop with a lookup that does nothing */
    struct bench_open_cost handle_open[MAX_SIZES]; /* portreg-handle's setup */
    bool have_instr;
    double elapsed_s;
    double cpu_s;                         /* user + system time of this process */
    unsigned windows, disturbed, retried; /* windows kept / of them disturbed / re-run */
    char loadavg[2][64];                  /* /proc/loadavg at start and end: other load */
};

/* Summary of one cell over its repetitions. */
struct cell_stats {
    unsigned n;
    double med, min, max;          /* lookups/s, all readers */
    double thread_med;             /* lookups/s per reader thread */
    double thread_min, thread_max; /* slowest / fastest thread seen */
    double wmed, wmin, wmax;       /* writes/s */
    double hit_rate;
};

/* ---- instr.c ---- */
int bench_instr_mode(const struct bench_impl *const *impls, size_t n_impls, size_t count);
void bench_read_instr_csv(struct bench_results *r, const char *path);

bool bench_cell_stats(const struct bench_results *r, int wl, unsigned si, unsigned ri, unsigned ii,
                      struct cell_stats *out);
void bench_report(FILE *out, const struct bench_results *r);
int bench_write_csv(const char *dir, const struct bench_results *r);

#endif
