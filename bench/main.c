/*
 * portreg-bench: portreg against its peers, every workload, key count and
 * reader count in one run, implementations interleaved within each
 * repetition. See bench/RESULTS.md for what the numbers mean.
 */
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "driver.h"
#include "loops.h"

const char *const bench_workload_names[WL_COUNT] = {"read-only hit", "read-only miss",
                                                    "read-mostly", "churn", "insert-heavy"};
static const char *const wl_keys[WL_COUNT] = {"ro-hit", "ro-miss", "read-mostly", "churn",
                                              "insert"};

static const struct bench_impl *const all_impls[] = {
    &bench_impl_portreg,   &bench_impl_portreg_handle, &bench_impl_ck_raw,
    &bench_impl_ck_nosync, &bench_impl_urcu_memb,      &bench_impl_urcu_memb_repl,
    &bench_impl_urcu_qsbr, &bench_impl_rwlock,         &bench_impl_mutex,
    &bench_impl_ck_hs,     &bench_impl_portreg_many,
};
#define N_ALL (sizeof all_impls / sizeof all_impls[0])

#define INSERT_QUOTA 60000u /* new ids per insert-heavy window */
#define WARMUP_MS    20u
#define CHECK_IDS    1000u

static struct bench_results R;

static void die(const char *msg)
{
    fprintf(stderr, "portreg-bench: %s\n", msg);
    exit(1);
}

/* ---- tasks run on a thread set up for the impl ---- */

static void remove_task(const struct bench_impl *impl, void *inst, void *tls, void *arg)
{
    const struct bench_id_range *a = arg;
    for (size_t i = 0; i < a->n; i++)
        impl->remove(inst, tls, a->ids[i].p, a->ids[i].len);
}

/* The gap ids before cursor end in a table of keys ids, bound again. */
struct ring_range {
    const bench_id_t *ids;
    size_t keys, end, gap;
};

static void rebind_task(const struct bench_impl *impl, void *inst, void *tls, void *arg)
{
    const struct ring_range *a = arg;
    for (size_t j = 0; j < a->gap; j++) {
        size_t i = (a->end + a->keys - a->gap + j) % a->keys;
        impl->insert(inst, tls, a->ids[i].p, a->ids[i].len, bench_port(i));
    }
}

struct check_arg {
    const bench_id_t *present, *absent;
    size_t n, keys;
};

/* Each impl must find the filled ids bound to their ports and no other. */
static void check_task(const struct bench_impl *impl, void *inst, void *tls, void *arg)
{
    const struct check_arg *a = arg;
    bench_prepare_reader(impl, inst, tls, a->present, a->absent, a->keys);
    for (size_t i = 0; i < a->n; i++) {
        uint16_t port = 0;
        if (!impl->lookup(inst, tls, a->present[i].p, a->present[i].len, &port) ||
            port != bench_port(i)) {
            fprintf(stderr, "%s: id %zu (%.*s) not bound to %u\n", impl->name, i,
                    (int)a->present[i].len, a->present[i].p, bench_port(i));
            exit(1);
        }
        if (impl->lookup(inst, tls, a->absent[i].p, a->absent[i].len, &port)) {
            fprintf(stderr, "%s: absent id %zu found\n", impl->name, i);
            exit(1);
        }
    }
}

static size_t malloc_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* Untimed clean-up after a window: churn binds the ids still in flux again,
 * insert-heavy drops the window's new ids; both move their cursors on. */
static void after_window(const struct bench_impl *impl, void *inst, const struct bench_cell *cell,
                         const struct run_result *res, size_t keys, size_t *churn_cursor,
                         size_t *fresh_cursor, size_t n_fresh)
{
    if (cell->wl == WL_CHURN) {
        struct ring_range rr = {cell->present, keys, res->churn_end, cell->churn_gap};
        bench_run_task(impl, inst, rebind_task, &rr);
        *churn_cursor = res->churn_end;
    } else if (cell->wl == WL_INSERT) {
        struct bench_id_range f = {cell->fresh, res->writes, 0};
        bench_run_task(impl, inst, remove_task, &f);
        *fresh_cursor += res->writes;
        if (*fresh_cursor + INSERT_QUOTA > n_fresh)
            *fresh_cursor = 0; /* reuse ids that were removed */
    }
}

/* ---- the benchmark ---- */

static unsigned parse_list(const char *s, size_t *out, unsigned max)
{
    unsigned n = 0;
    char *copy = strdup(s), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t != NULL && n < max;
         t = strtok_r(NULL, ",", &save)) {
        char *end;
        double v = strtod(t, &end);
        if (*end == 'k' || *end == 'K')
            v *= 1e3;
        else if (*end == 'm' || *end == 'M')
            v *= 1e6;
        if (v < 1)
            die("bad number in a list");
        out[n++] = (size_t)v;
    }
    free(copy);
    return n;
}

static void usage(void)
{
    fputs("usage: portreg-bench [options]\n"
          "  --window-ms N    length of one measurement window (60)\n"
          "  --reps N         interleaved repetitions per cell (5)\n"
          "  --keys LIST      key counts (1000,100000,1000000)\n"
          "  --readers LIST   reader thread counts (1,2,4)\n"
          "  --workloads LIST ro-hit,ro-miss,read-mostly,churn,insert (all)\n"
          "  --impls LIST     implementations by name (all)\n"
          "  --retry-budget-s N  seconds for re-running windows that other processes\n"
          "                   disturbed (30; 0: never re-run)\n"
          "  --csv-dir DIR    write windows.csv, cells.csv, memory.csv, plot.dat there\n"
          "  --instr-csv FILE instructions per lookup measured by bench/run\n"
          "  --instr N        instead: N lookups per impl for callgrind, then exit\n",
          stderr);
    exit(2);
}

static const struct bench_impl *find_impl(const char *name)
{
    for (size_t i = 0; i < N_ALL; i++)
        if (strcmp(all_impls[i]->name, name) == 0)
            return all_impls[i];
    fprintf(stderr, "portreg-bench: unknown impl %s\n", name);
    exit(2);
}

static void parse_args(int argc, char **argv, const char **csv_dir, const char **instr_csv,
                       size_t *instr)
{
    static const struct option opts[] = {
        {"window-ms", required_argument, 0, 'w'},      {"reps", required_argument, 0, 'r'},
        {"keys", required_argument, 0, 'k'},           {"readers", required_argument, 0, 't'},
        {"workloads", required_argument, 0, 'l'},      {"impls", required_argument, 0, 'i'},
        {"csv-dir", required_argument, 0, 'c'},        {"instr-csv", required_argument, 0, 'C'},
        {"instr", required_argument, 0, 'I'},          {"help", no_argument, 0, 'h'},
        {"retry-budget-s", required_argument, 0, 'b'}, {0, 0, 0, 0},
    };
    size_t tmp[MAX_READERS];
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'w':
            R.window_ms = (unsigned)atoi(optarg);
            break;
        case 'r':
            R.reps = (unsigned)atoi(optarg);
            if (R.reps < 1 || R.reps > MAX_REPS)
                die("--reps must be 1..15");
            break;
        case 'k':
            R.n_sizes = parse_list(optarg, R.sizes, MAX_SIZES);
            break;
        case 't':
            R.n_readers = parse_list(optarg, tmp, MAX_READERS);
            for (unsigned i = 0; i < R.n_readers; i++)
                R.readers[i] = (unsigned)tmp[i];
            break;
        case 'l': {
            R.workloads = 0;
            char *copy = strdup(optarg), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                int w = 0;
                while (w < WL_COUNT && strcmp(wl_keys[w], t) != 0)
                    w++;
                if (w == WL_COUNT)
                    die("unknown workload");
                R.workloads |= 1u << w;
            }
            free(copy);
            break;
        }
        case 'i': {
            R.n_impls = 0;
            char *copy = strdup(optarg), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t && R.n_impls < MAX_IMPLS;
                 t = strtok_r(NULL, ",", &save))
                R.impls[R.n_impls++] = find_impl(t);
            free(copy);
            break;
        }
        case 'c':
            *csv_dir = optarg;
            break;
        case 'C':
            *instr_csv = optarg;
            break;
        case 'I':
            *instr = (size_t)atol(optarg);
            break;
        case 'b':
            R.retry_budget_s = atof(optarg);
            break;
        default:
            usage();
        }
    }
}

static void read_loadavg(char *buf, size_t cap)
{
    FILE *f = fopen("/proc/loadavg", "r");
    buf[0] = 0;
    if (f != NULL) {
        if (fgets(buf, (int)cap, f) != NULL)
            buf[strcspn(buf, "\n")] = 0;
        fclose(f);
    }
}

static unsigned store_index(const struct bench_store *s)
{
    for (unsigned i = 0; i < R.n_stores; i++)
        if (R.stores[i] == s)
            return i;
    abort();
}

int main(int argc, char **argv)
{
    const char *csv_dir = NULL, *instr_csv = NULL;
    size_t instr = 0;
    R.window_ms = 60;
    R.reps = 5;
    R.retry_budget_s = 30;
    R.n_sizes = 3;
    R.sizes[0] = 1000, R.sizes[1] = 100000, R.sizes[2] = 1000000;
    R.n_readers = 3;
    R.readers[0] = 1, R.readers[1] = 2, R.readers[2] = 4;
    R.workloads = WL_ALL;
    R.n_impls = N_ALL;
    memcpy(R.impls, all_impls, sizeof all_impls);
    parse_args(argc, argv, &csv_dir, &instr_csv, &instr);
    if (instr > 0)
        return bench_instr_mode(all_impls, N_ALL, instr);

    for (unsigned i = 0; i < R.n_impls; i++) {
        bool seen = false;
        for (unsigned j = 0; j < R.n_stores; j++)
            seen |= R.stores[j] == R.impls[i]->store;
        if (!seen && R.n_stores == MAX_STORES)
            die("more structures than MAX_STORES");
        if (!seen)
            R.stores[R.n_stores++] = R.impls[i]->store;
    }
    if (instr_csv != NULL)
        bench_read_instr_csv(&R, instr_csv);

    uint64_t t_start = bench_now_ns();
    read_loadavg(R.loadavg[0], sizeof R.loadavg[0]);
    bench_calibrate();

    size_t max_keys = 0;
    for (unsigned i = 0; i < R.n_sizes; i++)
        if (R.sizes[i] > max_keys)
            max_keys = R.sizes[i];
    /* One id set for the whole run: [0, max_keys) are the tables' ids, then
     * as many ids that are never inserted, then new ids for insert-heavy
     * windows. A table of n ids holds [0, n) and is asked for [n, 2n) as
     * its absent ids, so that one index reaches both (struct bench_cell). */
    size_t n_fresh = (size_t)INSERT_QUOTA * R.reps * R.n_readers * 3 / 2; /* + retries */
    bench_idset_t set;
    if (bench_ids_generate(&set, 2 * max_keys + n_fresh, BENCH_SEED) != 0)
        die("out of memory generating ids");
    const bench_id_t *fresh = set.ids + 2 * max_keys;
    fprintf(stderr, "ids: %zu generated in %.2f s, %.1f bytes on average\n", set.n,
            (double)(bench_now_ns() - t_start) / 1e9, bench_ids_mean_len(set.ids, max_keys));

    uint64_t window_ns = (uint64_t)R.window_ms * 1000000u;
    uint64_t retry_ns_left = (uint64_t)(R.retry_budget_s * 1e9);
    uint64_t seed = BENCH_SEED;
    for (unsigned si = 0; si < R.n_sizes; si++) {
        size_t keys = R.sizes[si];
        const bench_id_t *absent = set.ids + keys;
        /* The readers' requests for each share of misses (none, all, 10%). */
        static const uint32_t miss_per_1024[WL_COUNT] = {[WL_RO_HIT] = 0,
                                                         [WL_RO_MISS] = 1024,
                                                         [WL_READ_MOSTLY] = 102,
                                                         [WL_CHURN] = 102,
                                                         [WL_INSERT] = 102};
        size_t stream_len = bench_stream_len(keys);
        uint32_t *streams[WL_COUNT] = {0};
        for (int wl = 0; wl < WL_COUNT; wl++) {
            for (int w = 0; w < wl && streams[wl] == NULL; w++)
                if (miss_per_1024[w] == miss_per_1024[wl])
                    streams[wl] = streams[w];
            if (streams[wl] != NULL)
                continue;
            streams[wl] = malloc(stream_len * sizeof *streams[wl]);
            if (streams[wl] == NULL)
                die("out of memory drawing requests");
            bench_stream_fill(streams[wl], stream_len, keys, miss_per_1024[wl], bench_rng(&seed));
        }
        void *inst[MAX_STORES] = {0};
        size_t churn_cursor[MAX_STORES] = {0}, fresh_cursor[MAX_STORES] = {0};
        uint64_t t0 = bench_now_ns();

        for (unsigned s = 0; s < R.n_stores; s++) {
            const struct bench_impl *filler = NULL;
            for (unsigned i = 0; i < R.n_impls && filler == NULL; i++)
                if (R.impls[i]->store == R.stores[s] && R.impls[i]->insert != NULL)
                    filler = R.impls[i];
            if (filler == NULL)
                die("a store has no impl that can insert (add ck-raw, mutex or rwlock)");
            size_t before = malloc_in_use();
            inst[s] = R.stores[s]->create(keys);
            if (inst[s] == NULL)
                die("create failed");
            struct bench_id_range f = {set.ids, keys, 0};
            bench_run_task(filler, inst[s], bench_fill_task, &f);
            size_t after = malloc_in_use();
            struct mem_result *m = &R.mem[si][s];
            m->valid = true;
            m->keys = keys;
            m->mean_id_len = bench_ids_mean_len(set.ids, keys);
            m->malloc_per_entry = after > before ? (double)(after - before) / (double)keys : 0;
            m->struct_per_entry = (double)R.stores[s]->bytes(inst[s]) / (double)keys;
        }
        for (unsigned i = 0; i < R.n_impls; i++) {
            const struct bench_impl *impl = R.impls[i];
            void *in = inst[store_index(impl->store)];
            struct check_arg ca = {set.ids, absent, keys < CHECK_IDS ? keys : CHECK_IDS, keys};
            bench_run_task(impl, in, check_task, &ca);
            struct bench_cell cell = {.wl = WL_RO_HIT,
                                      .present = set.ids,
                                      .n_present = keys,
                                      .absent = absent,
                                      .n_absent = keys,
                                      .stream = streams[WL_RO_HIT],
                                      .stream_mask = stream_len - 1};
            struct run_spec sp = {impl, in, &cell, 1, WARMUP_MS * 1000000u, seed};
            struct lat_hist *scratch = calloc(1, sizeof *scratch);
            struct run_result rr;
            bench_run_window(&sp, scratch, &rr);
            free(scratch);
        }
        fprintf(stderr, "%zu keys: built and checked in %.2f s\n", keys,
                (double)(bench_now_ns() - t0) / 1e9);

        for (int wl = 0; wl < WL_COUNT; wl++) {
            if (!(R.workloads & (1u << wl)))
                continue;
            uint64_t tw = bench_now_ns();
            for (unsigned rep = 0; rep < R.reps; rep++) {
                for (unsigned ri = 0; ri < R.n_readers; ri++) {
                    for (unsigned k = 0; k < R.n_impls; k++) {
                        /* rotate the order so no impl always runs first */
                        unsigned ii = (k + rep + ri) % R.n_impls;
                        const struct bench_impl *impl = R.impls[ii];
                        if (!(impl->workloads & (1u << wl)))
                            continue;
                        unsigned s = store_index(impl->store);
                        size_t gap = keys / 10 < 2 ? 2 : keys / 10 > 1024 ? 1024 : keys / 10;
                        struct bench_cell cell = {
                            .wl = (enum bench_workload)wl,
                            .present = set.ids,
                            .n_present = keys,
                            .absent = absent,
                            .n_absent = keys,
                            .n_fresh = INSERT_QUOTA,
                            .miss_per_1024 = miss_per_1024[wl],
                            .stream = streams[wl],
                            .stream_mask = stream_len - 1,
                            .churn_gap = gap,
                        };
                        struct run_result *res = &R.run[wl][si][ri][ii][rep];
                        struct lat_hist *h = calloc(1, sizeof *h);
                        if (h == NULL)
                            die("out of memory");
                        for (unsigned attempt = 0;; attempt++) {
                            cell.fresh = fresh + fresh_cursor[s];
                            cell.churn_cursor = churn_cursor[s];
                            struct run_spec sp = {impl,          inst[s],   &cell,
                                                  R.readers[ri], window_ns, bench_rng(&seed)};
                            memset(h, 0, sizeof *h);
                            uint64_t ta = bench_now_ns();
                            bench_run_window(&sp, h, res);
                            after_window(impl, inst[s], &cell, res, keys, &churn_cursor[s],
                                         &fresh_cursor[s], n_fresh);
                            /* Another process took CPU time from this window: run it
                             * again while the budget lasts (attempts and seconds). */
                            if (res->other_load <= BENCH_MAX_OTHER_LOAD || attempt >= 2 ||
                                retry_ns_left < bench_now_ns() - ta)
                                break;
                            retry_ns_left -= bench_now_ns() - ta;
                            R.retried++;
                        }
                        lat_merge(&R.lat[wl][si][ri][ii], h);
                        free(h);
                        R.windows++;
                        R.disturbed += res->other_load > BENCH_MAX_OTHER_LOAD;
                    }
                }
            }
            fprintf(stderr, "%zu keys: %s done in %.2f s\n", keys, bench_workload_names[wl],
                    (double)(bench_now_ns() - tw) / 1e9);
        }
        for (unsigned s = 0; s < R.n_stores; s++) {
            if (R.stores[s] == bench_impl_portreg_handle.store)
                bench_handle_open_cost(inst[s], &R.handle_open[si]);
            R.stores[s]->destroy(inst[s]);
        }
        for (int wl = 0; wl < WL_COUNT; wl++) {
            bool first = true; /* workloads with the same share of misses share one */
            for (int w = 0; w < wl; w++)
                first &= streams[w] != streams[wl];
            if (first)
                free(streams[wl]);
        }
    }
    R.mean_id_len = bench_ids_mean_len(set.ids, max_keys);
    bench_ids_free(&set);
    R.elapsed_s = (double)(bench_now_ns() - t_start) / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    R.cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
              (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    read_loadavg(R.loadavg[1], sizeof R.loadavg[1]);

    bench_report(stdout, &R);
    if (csv_dir != NULL && bench_write_csv(csv_dir, &R) != 0)
        die("writing CSV files failed");
    return 0;
}
