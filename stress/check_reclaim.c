/*
 * reclaim: millions of track/untrack cycles of distinct ids, with readers
 * probing the ids being dropped and iterating over them.
 *
 * Every id is used once: each cycler tracks (or registers) id k and
 * untracks id k - window, so the table keeps inserting, growing and
 * compacting, and every dropped slot must be freed after its grace period.
 * The registry allocates through a counting allocator: its live bytes must
 * stay flat after warm-up, every free must name the size it was given, and
 * nothing may be left after portreg_destroy(). Resident memory must stay
 * flat too (not enforced under ASan, whose quarantine holds freed memory on
 * purpose). Readers make an early free visible to ASan.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stress.h"

#define CHECK   "reclaim"
#define SAMPLES 32

/* Every 1/SAMPLES of cycler 0's run. */
struct sample {
    size_t rss_kib;
    int64_t live_bytes; /* including frees still waiting for a grace period */
};

/* At 1/4, 2/4 and 3/4 of the run every cycler stops, and with no change
 * in flight the grace periods are waited out: what is left is what the
 * registry retains. */
#define QUARTERS 3

struct rrun {
    const struct cfg *cfg;
    portreg_t *reg;
    struct counting mem;
    _Atomic unsigned cyclers_left;
    _Atomic uint32_t *head; /* per cycler: how many ids it has tracked */
    struct sample samples[SAMPLES];
    unsigned nsamples;
    pthread_barrier_t pause, resume;
    int64_t retained[QUARTERS];
};

struct rthread {
    struct rrun *r;
    unsigned index;
    pthread_t tid;
    struct rng rng;
    uint64_t ops, hits, iterations;
};

/* q if cycle k ends quarter q (1..QUARTERS) of the run, else 0. */
static unsigned quarter_done(const struct cfg *c, uint32_t k)
{
    for (unsigned q = 1; q <= QUARTERS; q++)
        if ((uint64_t)k + 1 == (uint64_t)c->r_cycles * q / (QUARTERS + 1))
            return q;
    return 0;
}

static void *cycler_main(void *arg)
{
    struct rthread *t = arg;
    struct rrun *r = t->r;
    const struct cfg *c = r->cfg;
    char b[ID_BUF];
    unsigned every = c->r_cycles / SAMPLES;

    /* No early stop: the others would wait at the pause forever. */
    for (uint32_t k = 0; k < c->r_cycles; k++) {
        size_t len = id_make(b, 'r', t->index, k);
        int rc = k % 2 ? portreg_track(r->reg, b, len)
                       : portreg_register(r->reg, b, len, (uint16_t)(1 + k % 60000), NULL);
        if (rc != 0)
            die("track/register: %s", portreg_strerror(rc));
        /* release: the id is tracked before readers pick it. */
        atomic_store_explicit(&r->head[t->index], k + 1, memory_order_release);
        if (k >= c->r_window) {
            portreg_state_t prev;
            len = id_make(b, 'r', t->index, k - c->r_window);
            if (portreg_untrack(r->reg, b, len, &prev) != 0 || prev.status == PORTREG_UNTRACKED)
                fail(CHECK, "cycler %u: untrack of its id %u found it %s", t->index,
                     k - c->r_window, prev.status == PORTREG_UNTRACKED ? "untracked" : "broken");
        }
        t->ops += 2;
        if (t->index == 0 && every != 0 && k % every == every - 1 && r->nsamples < SAMPLES) {
            struct sample *sm = &r->samples[r->nsamples++];
            sm->rss_kib = mem_now().rss_kib;
            sm->live_bytes = atomic_load_explicit(&r->mem.live_bytes, memory_order_relaxed);
        }
        unsigned q = quarter_done(c, k);
        if (q != 0) {
            pthread_barrier_wait(&r->pause);
            if (t->index == 0) {
                portreg_reclaim(r->reg);
                r->retained[q - 1] = atomic_load(&r->mem.live_bytes);
            }
            pthread_barrier_wait(&r->resume);
        }
    }
    /* release: pairs with the readers' acquire; only says when to stop. */
    atomic_fetch_sub_explicit(&r->cyclers_left, 1, memory_order_release);
    return NULL;
}

static void reader_iterate(struct rthread *t)
{
    portreg_iter_t it;
    portreg_entry_t e;
    char tag;
    uint32_t group, index;

    portreg_iter_init(&it, t->r->reg);
    while (portreg_iter_next(&it, &e))
        if (!id_parse(e.id, e.id_len, &tag, &group, &index) || tag != 'r' ||
            group >= t->r->cfg->r_cyclers || e.state.version == 0)
            fail(CHECK, "reader %u: iteration returned a foreign or broken entry", t->index);
    portreg_iter_fini(&it);
    t->iterations++;
}

static void *reader_main(void *arg)
{
    struct rthread *t = arg;
    struct rrun *r = t->r;
    const struct cfg *c = r->cfg;
    char b[ID_BUF];
    portreg_state_t s;
    uint16_t port;

    while (atomic_load_explicit(&r->cyclers_left, memory_order_acquire) > 0 && !stopping()) {
        unsigned cy = rng_below(&t->rng, c->r_cyclers);
        /* Around the edge of the window: tracked, just untracked, and
         * dropped by a compaction that may still be in its grace period. */
        uint32_t head = atomic_load_explicit(&r->head[cy], memory_order_acquire);
        uint32_t back = rng_below(&t->rng, 2 * c->r_window + 64);
        if (back >= head)
            continue;
        uint32_t id = head - 1 - back;
        size_t len = id_make(b, 'r', cy, id);
        unsigned dice = rng_below(&t->rng, 128);
        t->ops++;
        if (dice == 0) {
            reader_iterate(t);
        } else if (dice < 64) {
            if (portreg_get(r->reg, b, len, &s) != 0)
                die("portreg_get failed");
            t->hits += s.status != PORTREG_UNTRACKED;
            /* The cycler counts id + window + 1 before it untracks id: if
             * the count is still below that after our read, the untrack
             * had not begun, so the id must have read as tracked. */
            uint32_t after = atomic_load_explicit(&r->head[cy], memory_order_acquire);
            if (s.status == PORTREG_UNTRACKED && after <= id + c->r_window)
                fail(CHECK,
                     "reader %u: id %u of cycler %u read as untracked while still in "
                     "the window (head %u) (seed %llu)",
                     t->index, id, cy, after, (unsigned long long)c->seed);
        } else if (dice < 96) {
            t->hits += portreg_lookup(r->reg, b, len, &port);
        } else {
            /* The batched path on the same edge: id and the three before
             * it, some of them dropped, some in their grace period. */
            char more[3][ID_BUF];
            portreg_id_t req[4] = {{b, len}};
            uint16_t ports[4];
            size_t n = 1;
            for (uint32_t k = 1; k <= 3 && k <= id; k++, n++)
                req[n] = (portreg_id_t){more[k - 1], id_make(more[k - 1], 'r', cy, id - k)};
            ptrdiff_t bound = portreg_lookup_many(r->reg, req, n, ports);
            if (bound < 0)
                die("portreg_lookup_many failed");
            ptrdiff_t seen = 0;
            for (size_t k = 0; k < n; k++)
                seen += ports[k] != 0;
            if (seen != bound)
                fail(CHECK, "reader %u: lookup_many returned %td bound ids, its ports show %td",
                     t->index, bound, seen);
            t->hits += (uint64_t)bound;
        }
    }
    return NULL;
}

struct flat {
    size_t rss_warm, rss_max;
    int64_t pending_max;
};

/* Flat: after warm-up (the first quarter), what the registry retains once
 * grace periods are over must not grow, nor resident memory; frees waiting
 * for a grace period come and go with preempted readers, so they only have
 * to stay bounded. */
static struct flat check_flat(struct rrun *r)
{
    struct flat f = {0};

    if (getenv("STRESS_DEBUG"))
        for (unsigned i = 0; i < r->nsamples; i++)
            fprintf(stderr, "reclaim sample %u: rss %zu KiB, live %lld\n", i, r->samples[i].rss_kib,
                    (long long)r->samples[i].live_bytes);
    for (unsigned i = 0; i < r->nsamples; i++) {
        const struct sample *sm = &r->samples[i];
        if (sm->live_bytes > f.pending_max)
            f.pending_max = sm->live_bytes;
        size_t *rss = i < SAMPLES / 4 ? &f.rss_warm : &f.rss_max;
        *rss = sm->rss_kib > *rss ? sm->rss_kib : *rss;
    }
    /* Leaking one slot per cycle would retain megabytes more each quarter. */
    int64_t retained_limit = 2 * r->retained[0] + 256 * 1024;
    for (unsigned q = 1; q < QUARTERS; q++)
        if (r->retained[q] > retained_limit)
            fail(CHECK,
                 "registry memory grew: %lld bytes retained at 1/4 of the run, %lld at "
                 "%u/4 (limit %lld) (seed %llu)",
                 (long long)r->retained[0], (long long)r->retained[q], q + 1,
                 (long long)retained_limit, (unsigned long long)r->cfg->seed);
    int64_t pending_limit = (int64_t)256 << 20;
    if (f.pending_max > pending_limit)
        fail(CHECK, "%lld bytes were waiting for a grace period (limit %lld)",
             (long long)f.pending_max, (long long)pending_limit);
    size_t rss_limit = f.rss_warm + f.rss_warm / 2 + 16 * 1024;
    if (r->cfg->r_enforce_rss && f.rss_max > rss_limit)
        fail(CHECK, "resident memory grew: %zu KiB after warm-up, %zu KiB later (limit %zu)",
             f.rss_warm, f.rss_max, rss_limit);
    return f;
}

unsigned check_reclaim(const struct cfg *cfg)
{
    struct rrun r = {.cfg = cfg};
    unsigned before = atomic_load(&stress_failures);
    unsigned nc = cfg->r_cyclers, n = nc + cfg->r_readers;
    portreg_options_t opts;
    double t0 = now_s();

    if (nc == 0 || cfg->r_readers == 0 || cfg->r_window == 0 || cfg->r_cycles < 4 * SAMPLES)
        die("reclaim: needs cyclers, readers, a window and at least %u cycles", 4 * SAMPLES);
    mem_reset_peak();
    counting_options(&r.mem, &opts);
    r.reg = portreg_create(&opts);
    if (r.reg == NULL)
        die("portreg_create failed");
    r.head = xcalloc(nc, sizeof *r.head);
    pthread_barrier_init(&r.pause, NULL, nc);
    pthread_barrier_init(&r.resume, NULL, nc);
    /* relaxed: pthread_create() publishes it. */
    atomic_store_explicit(&r.cyclers_left, nc, memory_order_relaxed);
    struct rthread *th = xcalloc(n, sizeof *th);
    for (unsigned i = 0; i < n; i++) {
        th[i].r = &r;
        th[i].index = i < nc ? i : i - nc;
        th[i].rng = rng_for(cfg->seed, 300 + i);
        start_thread(&th[i].tid, i < nc ? cycler_main : reader_main, &th[i]);
    }
    uint64_t cycles = 0, reads = 0, hits = 0, iters = 0;
    for (unsigned i = 0; i < n; i++) {
        join_thread(th[i].tid);
        if (i < nc) {
            cycles += th[i].ops / 2;
        } else {
            reads += th[i].ops;
            hits += th[i].hits;
            iters += th[i].iterations;
        }
    }
    free(th);

    /* Untrack what is left, wait out every grace period: nothing tracked,
     * fewer untracked slots than compaction's threshold. */
    char b[ID_BUF];
    for (unsigned c = 0; c < nc; c++) {
        uint32_t head = atomic_load_explicit(&r.head[c], memory_order_relaxed); /* joined */
        for (uint32_t k = head > cfg->r_window ? head - cfg->r_window : 0; k < head; k++)
            portreg_untrack(r.reg, b, id_make(b, 'r', c, k), NULL);
    }
    portreg_reclaim(r.reg);
    portreg_stats_t st;
    portreg_stats(r.reg, &st);
    int64_t live_end = atomic_load(&r.mem.live_bytes);
    if (st.tracked != 0 || st.slots >= 64)
        fail(CHECK, "after untracking everything: %zu tracked, %zu slots (expected 0, < 64)",
             st.tracked, st.slots);

    struct flat f = {0};
    if (r.nsamples == SAMPLES)
        f = check_flat(&r);
    else if (!stopping())
        fail(CHECK, "only %u memory samples", r.nsamples);

    bool empty = destroy_and_check_empty(CHECK, r.reg, &r.mem);
    free(r.head);
    pthread_barrier_destroy(&r.pause);
    pthread_barrier_destroy(&r.resume);

    double secs = now_s() - t0;
    unsigned found = atomic_load(&stress_failures) - before;
    printf("reclaim: %s seed=%llu threads=%u (%u cyclers, %u readers) cycles=%llu "
           "(track+untrack of distinct ids, window %u) reads=%llu (%llu found tracked, "
           "%llu iterations)\n",
           found ? "FAIL" : "PASS", (unsigned long long)cfg->seed, n, nc, cfg->r_readers,
           (unsigned long long)cycles, cfg->r_window, (unsigned long long)reads,
           (unsigned long long)hits, (unsigned long long)iters);
    printf("reclaim:   registry bytes retained after grace periods: %lld / %lld / %lld at "
           "1/4 / 2/4 / 3/4, %lld at end (%zu slots, %llu compactions), 0 after destroy: %s; "
           "peak including frees awaiting a grace period: %lld; %lld allocations\n",
           (long long)r.retained[0], (long long)r.retained[1], (long long)r.retained[2],
           (long long)live_end, st.slots, (unsigned long long)st.compactions, empty ? "yes" : "NO",
           (long long)f.pending_max, (long long)atomic_load(&r.mem.total_allocs));
    printf("reclaim:   rss: %zu KiB max during warm-up, %zu KiB max later (%s); %.1f s, "
           "%.0f cycles/s, peak_rss=%zu KiB\n",
           f.rss_warm, f.rss_max, cfg->r_enforce_rss ? "bound enforced" : "not enforced", secs,
           (double)cycles / secs, mem_now().hwm_kib);
    return found;
}
