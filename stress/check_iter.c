/*
 * iter: the iterator's guarantee while the table churns under it.
 *
 * Stable ids are tracked before any iteration starts and never untracked
 * (churners do re-register and unbind them, so their states move). Churn
 * ids are tracked and untracked in waves big enough to make the table grow
 * and compact over and over. Every iteration, nested iteration and
 * snapshot must return every stable id exactly once, in a tracked state,
 * no id twice, and nothing the harness never made; a snapshot must also be
 * sorted. Iterations that overlapped a compaction or a grow are counted,
 * and the check insists that some did: otherwise it proved nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stress.h"

#define CHECK "iterator"

struct irun {
    const struct cfg *cfg;
    portreg_t *reg;
    _Atomic unsigned churners_left;
};

struct ithread {
    struct irun *r;
    unsigned index;
    pthread_t tid;
    struct rng rng;
    /* iterator: per id, the pass that saw it last, one array per depth */
    uint32_t *stamp[2];
    uint32_t pass[2];
    uint64_t ops, iterations, entries, over_compaction, over_grow, snapshots, nested;
};

static size_t id_slot(const struct irun *r, char tag, uint32_t group, uint32_t index)
{
    if (tag == 's' && group == 0 && index < r->cfg->i_stable)
        return index;
    if (tag == 'c' && group < r->cfg->i_churners && index < r->cfg->i_churn_ids)
        return r->cfg->i_stable + (size_t)group * r->cfg->i_churn_ids + index;
    return SIZE_MAX;
}

/* One entry of a pass at depth d; returns 1 for a stable id. */
static unsigned check_entry(struct ithread *t, int d, const portreg_entry_t *e, const char *what)
{
    struct irun *r = t->r;
    char tag;
    uint32_t group, index;
    size_t slot = SIZE_MAX;

    if (id_parse(e->id, e->id_len, &tag, &group, &index))
        slot = id_slot(r, tag, group, index);
    if (slot == SIZE_MAX) {
        fail(CHECK, "iterator %u: %s returned an id the harness never made (%zu bytes)", t->index,
             what, e->id_len);
        return 0;
    }
    if (t->stamp[d][slot] == t->pass[d])
        fail(CHECK, "iterator %u: %s returned %c%u/%u twice (seed %llu)", t->index, what, tag,
             group, index, (unsigned long long)r->cfg->seed);
    t->stamp[d][slot] = t->pass[d];
    bool sane = (e->state.status == PORTREG_PENDING && e->state.port == 0) ||
                (e->state.status == PORTREG_BOUND && e->state.port != 0);
    if (!sane || e->state.version == 0)
        fail(CHECK, "iterator %u: %s returned %c%u/%u in state %d port %u v%u", t->index, what, tag,
             group, index, (int)e->state.status, e->state.port, e->state.version);
    return tag == 's';
}

static void check_stable(struct ithread *t, int d, unsigned stable, const char *what)
{
    const struct cfg *c = t->r->cfg;
    if (stable == c->i_stable)
        return;
    unsigned missing = 0, first = 0;
    for (unsigned i = 0; i < c->i_stable; i++)
        if (t->stamp[d][i] != t->pass[d] && missing++ == 0)
            first = i;
    fail(CHECK,
         "iterator %u: %s returned %u of %u stable ids; %u missing, e.g. s%u "
         "(seed %llu)",
         t->index, what, stable, c->i_stable, missing, first, (unsigned long long)c->seed);
}

static void iterate(struct ithread *t, int d, bool nest)
{
    portreg_iter_t it;
    portreg_entry_t e;
    portreg_stats_t before, after;
    unsigned stable = 0;
    bool first = true;
    const char *what = d == 0 ? "an iteration" : "a nested iteration";

    t->pass[d]++;
    portreg_iter_init(&it, t->r->reg);
    /* Read inside the iteration: a change between the two reads happened
     * while it was running. */
    portreg_stats(t->r->reg, &before);
    while (portreg_iter_next(&it, &e)) {
        stable += check_entry(t, d, &e, what);
        t->entries++;
        if (nest && first) {
            t->nested++;
            iterate(t, 1, false);
        }
        first = false;
    }
    portreg_stats(t->r->reg, &after);
    portreg_iter_fini(&it);
    check_stable(t, d, stable, what);
    t->iterations++;
    t->over_compaction += after.compactions != before.compactions;
    t->over_grow += after.table_capacity > before.table_capacity;
}

static int entry_order(const portreg_entry_t *a, const portreg_entry_t *b)
{
    size_t n = a->id_len < b->id_len ? a->id_len : b->id_len;
    int c = memcmp(a->id, b->id, n);
    return c != 0 ? c : (a->id_len > b->id_len) - (a->id_len < b->id_len);
}

static void snapshot(struct ithread *t)
{
    portreg_snapshot_t s;
    unsigned stable = 0;

    if (portreg_snapshot(t->r->reg, &s) != 0)
        die("portreg_snapshot failed");
    t->pass[0]++;
    for (size_t i = 0; i < s.count; i++) {
        stable += check_entry(t, 0, &s.entries[i], "a snapshot");
        if (i > 0 && entry_order(&s.entries[i - 1], &s.entries[i]) >= 0)
            fail(CHECK, "iterator %u: snapshot not sorted at entry %zu", t->index, i);
    }
    check_stable(t, 0, stable, "a snapshot");
    portreg_snapshot_free(&s);
    t->snapshots++;
}

static void *iterator_main(void *arg)
{
    struct ithread *t = arg;
    /* acquire: pairs with the churners' release; only says when to stop. */
    while (atomic_load_explicit(&t->r->churners_left, memory_order_acquire) > 0 && !stopping()) {
        unsigned dice = rng_below(&t->rng, 16);
        if (dice == 0)
            snapshot(t);
        else
            iterate(t, 0, dice == 1);
    }
    return NULL;
}

static void churn_wave(struct ithread *t, portreg_t *reg)
{
    const struct cfg *c = t->r->cfg;
    char b[ID_BUF];
    unsigned n = 16 + rng_below(&t->rng, 240), start = rng_below(&t->rng, c->i_churn_ids);

    if (n > c->i_churn_ids)
        n = c->i_churn_ids;
    for (unsigned j = 0; j < n; j++) {
        size_t len = id_make(b, 'c', t->index, (start + j) % c->i_churn_ids);
        int rc = rng_below(&t->rng, 2) == 0
                     ? portreg_track(reg, b, len)
                     : portreg_register(reg, b, len, (uint16_t)(1 + j), NULL);
        if (rc != 0)
            die("track/register: %s", portreg_strerror(rc));
        /* Now and then move a stable id's state; never untrack it. */
        if (rng_below(&t->rng, 8) == 0) {
            len = id_make(b, 's', 0, rng_below(&t->rng, c->i_stable));
            if (rng_below(&t->rng, 2) == 0)
                rc = portreg_register(reg, b, len, (uint16_t)(1 + t->index), NULL);
            else
                rc = portreg_unbind(reg, b, len, NULL);
            if (rc != 0)
                die("register/unbind: %s", portreg_strerror(rc));
            t->ops++;
        }
    }
    for (unsigned j = 0; j < n; j++) {
        size_t len = id_make(b, 'c', t->index, (start + j) % c->i_churn_ids);
        if (portreg_untrack(reg, b, len, NULL) != 0)
            die("untrack failed");
    }
    t->ops += 2 * n;
}

static void *churner_main(void *arg)
{
    struct ithread *t = arg;
    while (t->ops < t->r->cfg->i_ops && !stopping())
        churn_wave(t, t->r->reg);
    /* release: pairs with the iterators' acquire. */
    atomic_fetch_sub_explicit(&t->r->churners_left, 1, memory_order_release);
    return NULL;
}

unsigned check_iter(const struct cfg *cfg)
{
    struct irun r = {.cfg = cfg};
    unsigned before = atomic_load(&stress_failures);
    unsigned nc = cfg->i_churners, ni = cfg->i_iterators, n = nc + ni;
    size_t nids = cfg->i_stable + (size_t)nc * cfg->i_churn_ids;
    char b[ID_BUF];
    double t0 = now_s();

    if (nc == 0 || ni == 0 || cfg->i_stable == 0 || cfg->i_churn_ids == 0)
        die("iter: needs churners, iterators, stable and churn ids");
    mem_reset_peak();
    r.reg = portreg_create(NULL);
    if (r.reg == NULL)
        die("portreg_create failed");
    for (unsigned i = 0; i < cfg->i_stable; i++) {
        size_t len = id_make(b, 's', 0, i);
        int rc = i % 2 ? portreg_track(r.reg, b, len)
                       : portreg_register(r.reg, b, len, (uint16_t)(1 + i), NULL);
        if (rc != 0)
            die("stable id: %s", portreg_strerror(rc));
    }
    portreg_stats_t st0;
    portreg_stats(r.reg, &st0);

    struct ithread *th = xcalloc(n, sizeof *th);
    /* relaxed: pthread_create() publishes it. */
    atomic_store_explicit(&r.churners_left, nc, memory_order_relaxed);
    for (unsigned i = 0; i < n; i++) {
        th[i].r = &r;
        th[i].index = i < nc ? i : i - nc;
        th[i].rng = rng_for(cfg->seed, 200 + i);
        if (i >= nc) {
            th[i].stamp[0] = xcalloc(nids, sizeof(uint32_t));
            th[i].stamp[1] = xcalloc(nids, sizeof(uint32_t));
        }
        start_thread(&th[i].tid, i < nc ? churner_main : iterator_main, &th[i]);
    }
    uint64_t ops = 0, iters = 0, entries = 0, over_c = 0, over_g = 0, snaps = 0, nested = 0;
    for (unsigned i = 0; i < n; i++) {
        join_thread(th[i].tid);
        ops += th[i].ops;
        iters += th[i].iterations;
        entries += th[i].entries;
        over_c += th[i].over_compaction;
        over_g += th[i].over_grow;
        snaps += th[i].snapshots;
        nested += th[i].nested;
        free(th[i].stamp[0]);
        free(th[i].stamp[1]);
    }
    free(th);
    portreg_stats_t st;
    portreg_stats(r.reg, &st);
    portreg_destroy(r.reg);

    if (iters == 0 || over_c == 0 || st.compactions == st0.compactions)
        fail(CHECK,
             "proved too little: %llu iterations, %llu of them during a compaction, "
             "%llu compactions; raise --scale",
             (unsigned long long)iters, (unsigned long long)over_c,
             (unsigned long long)(st.compactions - st0.compactions));
    double secs = now_s() - t0;
    unsigned found = atomic_load(&stress_failures) - before;
    printf("iter: %s seed=%llu threads=%u (%u churners, %u iterators) churn_ops=%llu "
           "stable_ids=%u churn_ids=%llu\n",
           found ? "FAIL" : "PASS", (unsigned long long)cfg->seed, n, nc, ni,
           (unsigned long long)ops, cfg->i_stable, (unsigned long long)nc * cfg->i_churn_ids);
    printf("iter:   %llu passes (%llu nested, %llu snapshots), %llu entries checked; "
           "%llu passes overlapped a compaction, %llu a grow\n",
           (unsigned long long)(iters + snaps), (unsigned long long)nested,
           (unsigned long long)snaps, (unsigned long long)entries, (unsigned long long)over_c,
           (unsigned long long)over_g);
    printf("iter:   registry: %llu compactions, table capacity %zu at end; %.1f s, "
           "peak_rss=%zu KiB\n",
           (unsigned long long)(st.compactions - st0.compactions), st.table_capacity, secs,
           mem_now().hwm_kib);
    return found;
}
