/* Medians, ratios, target checks: markdown tables on stdout, CSV files. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "driver.h"
#include "loops.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
    qsort(v, n, sizeof v[0], cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

bool bench_cell_stats(const struct bench_results *r, int wl, unsigned si, unsigned ri, unsigned ii,
                      struct cell_stats *out)
{
    double tot[MAX_REPS], thr[MAX_REPS], wr[MAX_REPS];
    uint64_t hits = 0, lookups = 0;
    unsigned n = 0;
    memset(out, 0, sizeof *out);
    for (unsigned rep = 0; rep < r->reps; rep++) {
        const struct run_result *x = &r->run[wl][si][ri][ii][rep];
        if (x->window_s <= 0)
            continue;
        tot[n] = x->lookups_per_s;
        thr[n] = x->lookups_per_s / r->readers[ri];
        wr[n] = x->writes_per_s;
        if (n == 0 || x->thread_min_per_s < out->thread_min)
            out->thread_min = x->thread_min_per_s;
        if (x->thread_max_per_s > out->thread_max)
            out->thread_max = x->thread_max_per_s;
        hits += x->hits;
        lookups += x->lookups;
        n++;
    }
    if (n == 0)
        return false;
    out->n = n;
    out->med = median(tot, n);
    out->min = tot[0];
    out->max = tot[n - 1];
    out->thread_med = median(thr, n);
    out->wmed = median(wr, n);
    out->wmin = wr[0];
    out->wmax = wr[n - 1];
    out->hit_rate = lookups ? (double)hits / (double)lookups : 0;
    return true;
}

/* Per-repetition ratio a/b of lookups/s (or writes/s): min, median, max. */
static bool rep_ratios(const struct bench_results *r, int wl, unsigned si, unsigned ri, unsigned a,
                       unsigned b, bool writes, double *lo, double *med, double *hi)
{
    double v[MAX_REPS];
    unsigned n = 0;
    for (unsigned rep = 0; rep < r->reps; rep++) {
        const struct run_result *x = &r->run[wl][si][ri][a][rep], *y = &r->run[wl][si][ri][b][rep];
        double xv = writes ? x->writes_per_s : x->lookups_per_s;
        double yv = writes ? y->writes_per_s : y->lookups_per_s;
        if (x->window_s <= 0 || y->window_s <= 0 || yv <= 0)
            continue;
        v[n++] = xv / yv;
    }
    if (n == 0)
        return false;
    *med = median(v, n);
    *lo = v[0];
    *hi = v[n - 1];
    return true;
}

/* The median of the per-repetition ratios: each repetition runs every impl
 * within a second or so, so slow drifts of the machine (other tenants of
 * the host's caches) cancel out, which they do not in a ratio of medians
 * taken from different repetitions. This is what tables and targets use. */
static bool med_ratio(const struct bench_results *r, int wl, unsigned si, unsigned ri, unsigned a,
                      unsigned b, bool writes, double *out)
{
    double lo, hi;
    return rep_ratios(r, wl, si, ri, a, b, writes, &lo, out, &hi);
}

static const char *fmt_rate(char *buf, size_t cap, double per_s)
{
    double m = per_s / 1e6;
    snprintf(buf, cap, m >= 100 ? "%.0f" : m >= 10 ? "%.1f" : m >= 1 ? "%.2f" : "%.3f", m);
    return buf;
}

static double spread_pct(double med, double lo, double hi)
{
    if (med <= 0)
        return 0;
    double d = fmax(hi - med, med - lo);
    return 100 * d / med;
}

static const char *fmt_keys(char *buf, size_t cap, size_t k)
{
    if (k >= 1000000 && k % 1000000 == 0)
        snprintf(buf, cap, "%zuM", k / 1000000);
    else if (k >= 1000 && k % 1000 == 0)
        snprintf(buf, cap, "%zuk", k / 1000);
    else
        snprintf(buf, cap, "%zu", k);
    return buf;
}

static const char *fmt_ns(char *buf, size_t cap, double ns)
{
    if (ns >= 1e6)
        snprintf(buf, cap, "%.1fms", ns / 1e6);
    else if (ns >= 1e4)
        snprintf(buf, cap, "%.0fus", ns / 1e3);
    else
        snprintf(buf, cap, "%.0f", ns);
    return buf;
}

static int find_impl(const struct bench_results *r, const char *name)
{
    for (unsigned i = 0; i < r->n_impls; i++)
        if (strcmp(r->impls[i]->name, name) == 0)
            return (int)i;
    return -1;
}

static int find_readers(const struct bench_results *r, unsigned readers)
{
    for (unsigned i = 0; i < r->n_readers; i++)
        if (r->readers[i] == readers)
            return (int)i;
    return -1;
}

static bool runs(const struct bench_results *r, unsigned ii, int wl)
{
    return (r->workloads & (1u << wl)) && (r->impls[ii]->workloads & (1u << wl));
}

static void table_head(FILE *out, const struct bench_results *r, int wl, const char *first)
{
    fprintf(out, "| %s |", first);
    for (unsigned i = 0; i < r->n_impls; i++)
        if (wl < 0 || runs(r, i, wl))
            fprintf(out, " %s |", r->impls[i]->name);
    fprintf(out, "\n|---|");
    for (unsigned i = 0; i < r->n_impls; i++)
        if (wl < 0 || runs(r, i, wl))
            fprintf(out, "---:|");
    fprintf(out, "\n");
}

enum col { COL_TOTAL, COL_THREAD, COL_WRITES, COL_LAT };

static void print_cells(FILE *out, const struct bench_results *r, int wl, enum col col)
{
    char b1[32], b2[32], b3[32], kb[24];
    table_head(out, r, wl, "keys, readers");
    for (unsigned si = 0; si < r->n_sizes; si++) {
        for (unsigned ri = 0; ri < r->n_readers; ri++) {
            fprintf(out, "| %s, %u |", fmt_keys(kb, sizeof kb, r->sizes[si]), r->readers[ri]);
            for (unsigned ii = 0; ii < r->n_impls; ii++) {
                if (!runs(r, ii, wl))
                    continue;
                struct cell_stats s;
                if (!bench_cell_stats(r, wl, si, ri, ii, &s)) {
                    fprintf(out, " - |");
                    continue;
                }
                const struct lat_hist *h = &r->lat[wl][si][ri][ii];
                switch (col) {
                case COL_TOTAL:
                    fprintf(out, " %s ±%.0f%% |", fmt_rate(b1, sizeof b1, s.med),
                            spread_pct(s.med, s.min, s.max));
                    break;
                case COL_THREAD:
                    fprintf(out, " %s (%s–%s) |", fmt_rate(b1, sizeof b1, s.thread_med),
                            fmt_rate(b2, sizeof b2, s.thread_min),
                            fmt_rate(b3, sizeof b3, s.thread_max));
                    break;
                case COL_WRITES:
                    fprintf(out, " %s ±%.0f%% |", fmt_rate(b1, sizeof b1, s.wmed),
                            spread_pct(s.wmed, s.wmin, s.wmax));
                    break;
                case COL_LAT:
                    fprintf(out, " %s / %s / %s |",
                            fmt_ns(b1, sizeof b1, bench_ticks_to_ns(lat_quantile(h, 0.5))),
                            fmt_ns(b2, sizeof b2, bench_ticks_to_ns(lat_quantile(h, 0.99))),
                            fmt_ns(b3, sizeof b3, bench_ticks_to_ns(h->max)));
                    break;
                }
            }
            fprintf(out, "\n");
        }
    }
    fprintf(out, "\n");
}

static void print_ratios(FILE *out, const struct bench_results *r, int pr)
{
    char kb[24];
    fprintf(out, "| workload | keys, readers |");
    for (unsigned i = 0; i < r->n_impls; i++)
        if ((int)i != pr)
            fprintf(out, " ÷ %s |", r->impls[i]->name);
    fprintf(out, "\n|---|---|");
    for (unsigned i = 0; i < r->n_impls; i++)
        if ((int)i != pr)
            fprintf(out, "---:|");
    fprintf(out, "\n");
    for (int wl = 0; wl < WL_COUNT; wl++) {
        if (!(r->workloads & (1u << wl)))
            continue;
        for (unsigned si = 0; si < r->n_sizes; si++) {
            for (unsigned ri = 0; ri < r->n_readers; ri++) {
                fprintf(out, "| %s | %s, %u |", bench_workload_names[wl],
                        fmt_keys(kb, sizeof kb, r->sizes[si]), r->readers[ri]);
                for (unsigned ii = 0; ii < r->n_impls; ii++) {
                    if ((int)ii == pr)
                        continue;
                    double lo, med, hi;
                    if (!runs(r, ii, wl) ||
                        !rep_ratios(r, wl, si, ri, (unsigned)pr, ii, false, &lo, &med, &hi))
                        fprintf(out, " |");
                    else
                        fprintf(out, " %.2f (%.2f–%.2f) |", med, lo, hi);
                }
                fprintf(out, "\n");
            }
        }
    }
    fprintf(out, "\n");
}

/* One target: impl pr over a peer (median per-repetition ratio), in every
 * cell it covers (only_keys 0: every key count). */
static void check_ratio_target(FILE *out, const struct bench_results *r, int pr, const char *peer,
                               unsigned wl_mask, int only_ri, size_t only_keys, bool writes,
                               double want, const char *what)
{
    int pe = find_impl(r, peer);
    char kb[24];
    fprintf(out, "- **%s**: ", what);
    if (pr < 0 || pe < 0) {
        fprintf(out, "not measured (impl not in this run)\n");
        return;
    }
    unsigned cells = 0, met = 0;
    double worst = INFINITY;
    char worst_at[96] = "", misses[1024] = "";
    for (int wl = 0; wl < WL_COUNT; wl++) {
        if (!(wl_mask & (1u << wl)) || !runs(r, (unsigned)pe, wl) || !runs(r, (unsigned)pr, wl))
            continue;
        for (unsigned si = 0; si < r->n_sizes; si++) {
            for (unsigned ri = 0; ri < r->n_readers; ri++) {
                double q;
                if ((only_ri >= 0 && (int)ri != only_ri) ||
                    (only_keys != 0 && r->sizes[si] != only_keys) ||
                    !med_ratio(r, wl, si, ri, (unsigned)pr, (unsigned)pe, writes, &q))
                    continue;
                char at[96];
                snprintf(at, sizeof at, "%s %s/%u", bench_workload_names[wl],
                         fmt_keys(kb, sizeof kb, r->sizes[si]), r->readers[ri]);
                cells++;
                if (q >= want) {
                    met++;
                } else if (strlen(misses) + strlen(at) + 16 < sizeof misses) {
                    size_t l = strlen(misses);
                    snprintf(misses + l, sizeof misses - l, "%s%s %.2f", l ? ", " : "", at, q);
                }
                if (q < worst) {
                    worst = q;
                    snprintf(worst_at, sizeof worst_at, "%s", at);
                }
            }
        }
    }
    if (cells == 0)
        fprintf(out, "not measured (no matching cells)\n");
    else if (met == cells)
        fprintf(out, "MET in %u/%u cells (lowest %.2f×, %s)\n", met, cells, worst, worst_at);
    else
        fprintf(out, "MISSED in %u/%u cells: %s\n", cells - met, cells, misses);
}

static void print_targets(FILE *out, const struct bench_results *r)
{
    int pr = find_impl(r, "portreg");
    int r2 = find_readers(r, 2);
    unsigned all = (1u << WL_COUNT) - 1;
    unsigned writers = (1u << WL_READ_MOSTLY) | (1u << WL_CHURN) | (1u << WL_INSERT);
    fprintf(out, "### Targets\n\n");
    if (r2 < 0) {
        fprintf(out, "- the lookup targets need a 2-reader run (--readers 2)\n");
    } else {
        check_ratio_target(out, r, pr, "ck-raw", all, r2, 0, false, 1.0,
                           "lookups ≥ 1.0× ck-raw, every workload, 2 readers");
        check_ratio_target(out, r, pr, "urcu-memb", all, r2, 0, false, 1.5,
                           "lookups ≥ 1.5× urcu-memb, every workload, 2 readers");
        int pm = find_impl(r, "portreg-many");
        check_ratio_target(out, r, pm, "urcu-memb", all, r2, 1000000, false, 3.0,
                           "portreg_lookup_many ≥ 3× urcu-memb per id, 1M ids, every workload, "
                           "2 readers");
        check_ratio_target(out, r, pr, "mutex", writers, r2, 0, false, 7.0,
                           "lookups ≥ 7× mutex, 2 readers with a concurrent writer");
        int ph = find_impl(r, "portreg-handle");
        check_ratio_target(out, r, ph, "portreg", writers, r2, 1000, false, 10.0,
                           "handle lookups ≥ 10× portreg_lookup, 1k ids, 2 readers and a writer");
        check_ratio_target(out, r, ph, "urcu-memb", writers, r2, 1000, false, 10.0,
                           "handle lookups ≥ 10× urcu-memb, 1k ids, 2 readers and a writer");
        check_ratio_target(out, r, ph, "portreg", all, r2, 1000000, false, 2.0,
                           "handle lookups ≥ 2× portreg_lookup, 1M ids, every workload, 2 readers");
    }
    check_ratio_target(out, r, pr, "urcu-repl", 1u << WL_READ_MOSTLY, -1, 0, true, 1.0,
                       "register (existing id) writes/s ≥ urcu replace, read-mostly, all cells");

    fprintf(out, "- **≤ 96 bytes per entry plus the id's bytes at 1,000,000 ids**: ");
    bool done = false;
    for (unsigned si = 0; si < r->n_sizes && pr >= 0; si++) {
        if (r->sizes[si] != 1000000)
            continue;
        for (unsigned s = 0; s < r->n_stores; s++) {
            const struct mem_result *m = &r->mem[si][s];
            if (r->stores[s] != r->impls[pr]->store || !m->valid)
                continue;
            double own = m->struct_per_entry - m->mean_id_len;
            double mal = m->malloc_per_entry - m->mean_id_len;
            fprintf(out,
                    "%s: %.1f + %.1f id bytes per entry (portreg_stats), %.1f + %.1f with "
                    "allocator overhead (mallinfo2)\n",
                    own <= 96 ? "MET" : "MISSED", own, m->mean_id_len, mal, m->mean_id_len);
            done = true;
        }
    }
    if (!done)
        fprintf(out, "not measured (needs --keys with 1000000)\n");
    fprintf(out, "\n");
}

static void print_memory(FILE *out, const struct bench_results *r)
{
    char kb[24];
    fprintf(out, "### Bytes per entry (after filling; table + slot/node + id)\n\n");
    fprintf(out, "| structure (impls) | keys | mean id bytes | counted | mallinfo2 |\n");
    fprintf(out, "|---|---|---:|---:|---:|\n");
    for (unsigned s = 0; s < r->n_stores; s++) {
        char users[128] = "";
        for (unsigned i = 0; i < r->n_impls; i++) {
            if (r->impls[i]->store != r->stores[s])
                continue;
            size_t l = strlen(users);
            snprintf(users + l, sizeof users - l, "%s%s", l ? ", " : "", r->impls[i]->name);
        }
        for (unsigned si = 0; si < r->n_sizes; si++) {
            const struct mem_result *m = &r->mem[si][s];
            if (!m->valid)
                continue;
            fprintf(out, "| %s (%s) | %s | %.1f | ", r->stores[s]->name, users,
                    fmt_keys(kb, sizeof kb, m->keys), m->mean_id_len);
            if (m->struct_per_entry > 0)
                fprintf(out, "%.1f |", m->struct_per_entry);
            else
                fprintf(out, "- |");
            fprintf(out, " %.1f |\n", m->malloc_per_entry);
        }
    }
    fprintf(out, "\n*counted*: portreg_stats().bytes for portreg; the bytes ck_ht asked its "
                 "allocator for plus slots for the ck_ht peers; nodes and ids only for urcu "
                 "(its bucket table is internal). *mallinfo2*: growth of in-use heap "
                 "(uordblks + hblkhd) over create + fill, allocator overhead included.\n\n");
}

static void print_handle_open(FILE *out, const struct bench_results *r)
{
    static const char *const kinds[HANDLE_OPEN_KINDS] = {
        "tracked id", "untracked id, first handle (inserts a slot)",
        "untracked id, slot already held by another reader's handle"};
    char kb[24];
    bool any = false;
    for (unsigned si = 0; si < r->n_sizes; si++)
        for (int k = 0; k < HANDLE_OPEN_KINDS; k++)
            any |= r->handle_open[si].opens[k] > 0;
    if (!any)
        return;
    fprintf(out, "### portreg_handle_open: ns per open (untimed setup of portreg-handle's "
                 "readers, one thread opening at a time)\n\n");
    fprintf(out, "| keys | id state | opens | ns per open |\n|---|---|---:|---:|\n");
    for (unsigned si = 0; si < r->n_sizes; si++)
        for (int k = 0; k < HANDLE_OPEN_KINDS; k++) {
            const struct bench_open_cost *c = &r->handle_open[si];
            if (c->opens[k] == 0)
                continue;
            fprintf(out, "| %s | %s | %llu | %.0f |\n", fmt_keys(kb, sizeof kb, r->sizes[si]),
                    kinds[k], (unsigned long long)c->opens[k],
                    (double)c->ns[k] / (double)c->opens[k]);
        }
    fprintf(out, "\n");
}

static void print_instr(FILE *out, const struct bench_results *r)
{
    fprintf(out, "### Instructions per lookup (callgrind, 1k keys, 1 thread)\n\n");
    if (!r->have_instr) {
        fprintf(out, "not measured (valgrind missing, or run without bench/run)\n\n");
        return;
    }
    fprintf(out, "| impl | hit | miss | hit − loop | miss − loop |\n|---|---:|---:|---:|---:|\n");
    for (unsigned i = 0; i < r->n_impls; i++) {
        const struct instr_result *x = &r->instr[i];
        if (!x->valid)
            continue;
        fprintf(out, "| %s | %.1f | %.1f | %.1f | %.1f |\n", r->impls[i]->name, x->hit, x->miss,
                x->hit - r->instr_loop.hit, x->miss - r->instr_loop.miss);
    }
    fprintf(out,
            "\n*loop*: the same loop (id choice, indirect call) with a lookup that does "
            "nothing: %.1f instructions.\n\n",
            r->instr_loop.hit);
}

void bench_report(FILE *out, const struct bench_results *r)
{
    int pr = find_impl(r, "portreg");
    fprintf(out, "## portreg-bench\n\n");
    fprintf(out,
            "Window %u ms, %u interleaved repetitions per cell (medians; ±: largest "
            "distance of a repetition from the median). Ids: %.1f bytes on average. "
            "Lookups: uniform over the table's ids (read-only hit), over ids never "
            "inserted (read-only miss), 10%% absent otherwise, drawn before the run. "
            "Latency: every %dth lookup "
            "timed with rdtsc (%.2f GHz, advancing in steps of %.0f ns), %.0f ns timer cost "
            "subtracted. Run took %.1f s.\n\n",
            r->window_ms, r->reps, r->mean_id_len, BENCH_BATCH, bench_tsc_per_ns,
            (double)bench_tsc_step / bench_tsc_per_ns,
            (double)bench_timer_overhead / bench_tsc_per_ns, r->elapsed_s);
    fprintf(out,
            "This process used %.1f s of CPU in %.1f s (%.2f cores on average); "
            "/proc/loadavg at start: %s, at end: %s.\n\n",
            r->cpu_s, r->elapsed_s, r->elapsed_s > 0 ? r->cpu_s / r->elapsed_s : 0, r->loadavg[0],
            r->loadavg[1]);
    fprintf(out,
            "Windows during which other processes used more than %.0f%% of the machine's "
            "CPU time: %u of %u (after re-running %u).\n\n",
            100 * BENCH_MAX_OTHER_LOAD, r->disturbed, r->windows, r->retried);
    print_targets(out, r);
    if (pr >= 0) {
        fprintf(out, "### portreg lookups/s ÷ peer's: median over repetitions of the ratio "
                     "within one repetition (min–max)\n\n");
        print_ratios(out, r, pr);
    }
    for (int wl = 0; wl < WL_COUNT; wl++) {
        if (!(r->workloads & (1u << wl)))
            continue;
        fprintf(out, "### %s: lookups/s, all readers (millions)\n\n", bench_workload_names[wl]);
        print_cells(out, r, wl, COL_TOTAL);
    }
    for (int wl = 0; wl < WL_COUNT; wl++) {
        if (!(r->workloads & (1u << wl)))
            continue;
        fprintf(out, "### %s: lookups/s per reader thread (millions; slowest–fastest thread)\n\n",
                bench_workload_names[wl]);
        print_cells(out, r, wl, COL_THREAD);
    }
    for (int wl = WL_READ_MOSTLY; wl < WL_COUNT; wl++) {
        if (!(r->workloads & (1u << wl)))
            continue;
        fprintf(out, "### %s: writes/s of the one writer thread (millions)\n\n",
                bench_workload_names[wl]);
        print_cells(out, r, wl, COL_WRITES);
    }
    for (int wl = 0; wl < WL_COUNT; wl++) {
        if (!(r->workloads & (1u << wl)))
            continue;
        fprintf(out, "### %s: lookup latency p50 / p99 / max (ns)\n\n", bench_workload_names[wl]);
        print_cells(out, r, wl, COL_LAT);
    }
    print_memory(out, r);
    print_handle_open(out, r);
    print_instr(out, r);
}

static FILE *open_in(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return fopen(path, "w");
}

int bench_write_csv(const char *dir, const struct bench_results *r)
{
    mkdir(dir, 0777);
    FILE *w = open_in(dir, "windows.csv"), *c = open_in(dir, "cells.csv"),
         *m = open_in(dir, "memory.csv"), *p = open_in(dir, "plot.dat");
    if (w == NULL || c == NULL || m == NULL || p == NULL)
        return -1;
    fprintf(w, "workload,keys,readers,impl,rep,window_s,lookups,lookups_per_s,thread_min_per_s,"
               "thread_max_per_s,writes,writes_per_s,hit_rate,other_load\n");
    fprintf(c, "workload,keys,readers,impl,reps,lookups_per_s,min,max,per_thread,writes_per_s,"
               "writes_min,writes_max,p50_ns,p99_ns,max_ns,samples\n");
    for (int wl = 0; wl < WL_COUNT; wl++) {
        for (unsigned si = 0; si < r->n_sizes; si++) {
            for (unsigned ri = 0; ri < r->n_readers; ri++) {
                for (unsigned ii = 0; ii < r->n_impls; ii++) {
                    const char *name = r->impls[ii]->name;
                    for (unsigned rep = 0; rep < r->reps; rep++) {
                        const struct run_result *x = &r->run[wl][si][ri][ii][rep];
                        if (x->window_s <= 0)
                            continue;
                        fprintf(w, "%s,%zu,%u,%s,%u,%.4f,%llu,%.0f,%.0f,%.0f,%llu,%.0f,%.4f,%.3f\n",
                                bench_workload_names[wl], r->sizes[si], r->readers[ri], name, rep,
                                x->window_s, (unsigned long long)x->lookups, x->lookups_per_s,
                                x->thread_min_per_s, x->thread_max_per_s,
                                (unsigned long long)x->writes, x->writes_per_s,
                                x->lookups ? (double)x->hits / (double)x->lookups : 0,
                                x->other_load);
                    }
                    struct cell_stats s;
                    if (!bench_cell_stats(r, wl, si, ri, ii, &s))
                        continue;
                    const struct lat_hist *h = &r->lat[wl][si][ri][ii];
                    fprintf(
                        c,
                        "%s,%zu,%u,%s,%u,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.1f,%.1f,%.1f,%llu\n",
                        bench_workload_names[wl], r->sizes[si], r->readers[ri], name, s.n, s.med,
                        s.min, s.max, s.thread_med, s.wmed, s.wmin, s.wmax,
                        bench_ticks_to_ns(lat_quantile(h, 0.5)),
                        bench_ticks_to_ns(lat_quantile(h, 0.99)), bench_ticks_to_ns(h->max),
                        (unsigned long long)h->n);
                }
            }
        }
    }
    fprintf(m, "structure,keys,mean_id_len,counted_per_entry,mallinfo_per_entry\n");
    for (unsigned s = 0; s < r->n_stores; s++)
        for (unsigned si = 0; si < r->n_sizes; si++)
            if (r->mem[si][s].valid)
                fprintf(m, "%s,%zu,%.2f,%.2f,%.2f\n", r->stores[s]->name, r->mem[si][s].keys,
                        r->mem[si][s].mean_id_len, r->mem[si][s].struct_per_entry,
                        r->mem[si][s].malloc_per_entry);

    /* gnuplot: one block per workload (lookups/s, millions, with 2 readers
     * or the first reader count), then writes/s of read-mostly */
    int ri = find_readers(r, 2);
    if (ri < 0)
        ri = 0;
    for (int blk = 0; blk <= WL_COUNT; blk++) {
        int wl = blk < WL_COUNT ? blk : WL_READ_MOSTLY;
        bool writes = blk == WL_COUNT;
        fprintf(p, "# %s%s, %u readers\nkeys", bench_workload_names[wl], writes ? " writes" : "",
                r->readers[ri]);
        for (unsigned ii = 0; ii < r->n_impls; ii++)
            fprintf(p, " %s", r->impls[ii]->name);
        fprintf(p, "\n");
        for (unsigned si = 0; si < r->n_sizes; si++) {
            fprintf(p, "%zu", r->sizes[si]);
            for (unsigned ii = 0; ii < r->n_impls; ii++) {
                struct cell_stats s;
                if ((r->workloads & (1u << wl)) &&
                    bench_cell_stats(r, wl, si, (unsigned)ri, ii, &s))
                    fprintf(p, " %.4f", (writes ? s.wmed : s.med) / 1e6);
                else
                    fprintf(p, " NaN");
            }
            fprintf(p, "\n");
        }
        fprintf(p, "\n\n");
    }
    fclose(w);
    fclose(c);
    fclose(m);
    fclose(p);
    return 0;
}
