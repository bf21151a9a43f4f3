/*
 * iterinsert: iterations that insert and wait, beside portreg_reclaim().
 *
 * Calls on the registry are allowed between portreg_iter_init() and
 * portreg_iter_fini(), and an open iteration may delay the reclamation of
 * memory but never a reader or writer. So iterators, while their
 * iteration is open, track ids the table has never held (each one an
 * insert), wait with short timeouts on ids nobody tracks (each one may
 * insert a placeholder) and untrack what they tracked; reclaimers call
 * portreg_reclaim() in a loop; growers track and untrack waves of ids so
 * the table grows and compacts under all of them.
 *
 * A call that waits for readers while holding the lock inserts need would
 * deadlock here: the iterator holds its read section and waits for the
 * lock, the reclaimer holds the lock and waits for the section to end. A
 * watchdog fails the check, with the names of the threads that stopped,
 * when any thread makes no progress for cfg->n_stall_s seconds, and ends
 * the process (a deadlocked thread cannot be joined).
 *
 * Meanwhile every pass must keep the iterator's promise: every stable id
 * exactly once, no id twice, only tracked states, only ids the harness
 * made. Every wait on an id nobody tracks must time out, no earlier than
 * asked, with the untracked state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stress.h"

#define CHECK "iterinsert"

#define STABLE     100  /* tracked before the threads start, never untracked */
#define RING       64   /* ids each iterator tracks inside its iterations */
#define GROWER_IDS 2048 /* ids each grower tracks and untracks in waves */
#define WAIT_NS    20000

enum role { R_ITER, R_RECLAIM, R_GROW };
static const char *const role_name[] = {"iterator", "reclaimer", "grower"};

struct nrun {
    const struct cfg *cfg;
    portreg_t *reg;
    _Atomic unsigned iterators_left;
};

struct nthread {
    struct nrun *r;
    enum role role;
    unsigned index;
    pthread_t tid;
    struct rng rng;
    /* Bumped after every call that returned: the watchdog reads it. */
    _Atomic uint64_t progress;
    /* iterators: per id slot, the pass that saw it last */
    uint32_t *stamp;
    uint32_t pass, ring_tracked, waited_on;
    uint64_t passes, entries, inserts, waits, reclaims, waves, over_compaction;
};

static void bump(struct nthread *t)
{
    /* relaxed: the watchdog only asks whether it moved. */
    atomic_fetch_add_explicit(&t->progress, 1, memory_order_relaxed);
}

/* Ids: stable s/0/i; iterator i's ring n/i/k; grower i's g/i/k; waits on
 * ids nobody tracks w/i/counter (never in an iteration). */
static size_t nid_slot(const struct cfg *c, char tag, uint32_t group, uint32_t index)
{
    size_t base = STABLE;
    if (tag == 's' && group == 0 && index < STABLE)
        return index;
    if (tag == 'n' && group < c->n_iterators && index < RING)
        return base + (size_t)group * RING + index;
    base += (size_t)c->n_iterators * RING;
    if (tag == 'g' && group < c->n_growers && index < GROWER_IDS)
        return base + (size_t)group * GROWER_IDS + index;
    return SIZE_MAX;
}

static size_t nid_count(const struct cfg *c)
{
    return STABLE + (size_t)c->n_iterators * RING + (size_t)c->n_growers * GROWER_IDS;
}

/* A wait on an id nobody tracks: must time out, not early, untracked. */
static void wait_untracked(struct nthread *t, const char *b, size_t len)
{
    portreg_state_t st = {PORTREG_BOUND, 1, 1};
    int64_t t0 = mono_ns();
    int rc = portreg_wait(t->r->reg, b, len, 0, WAIT_NS, &st);
    int64_t took = mono_ns() - t0;
    if (rc != PORTREG_ETIMEDOUT || st.status != PORTREG_UNTRACKED || st.version != 0 ||
        st.port != 0)
        fail(CHECK,
             "iterator %u: wait inside an iteration on an id nobody tracks returned %s with "
             "status %d v%u port %u, expected a timeout, untracked (seed %llu)",
             t->index, portreg_err_name(rc), (int)st.status, st.version, st.port,
             (unsigned long long)t->r->cfg->seed);
    else if (took < WAIT_NS)
        fail(CHECK, "iterator %u: a wait of %d ns timed out after %lld ns", t->index, WAIT_NS,
             (long long)took);
    t->waits++;
    bump(t);
}

/* What an iterator does with its iteration open. */
static void inside(struct nthread *t)
{
    portreg_t *reg = t->r->reg;
    char b[ID_BUF];
    size_t len;
    unsigned dice = rng_below(&t->rng, 4);

    if (dice <= 1 && t->ring_tracked < RING) {
        /* Untracked (and likely compacted away) since the last pass. */
        len = id_make(b, 'n', t->index, t->ring_tracked++);
        int rc = portreg_track(reg, b, len);
        if (rc != 0)
            die("track inside an iteration: %s", portreg_strerror(rc));
        t->inserts++;
        bump(t);
    } else if (dice == 2) {
        len = id_make(b, 'w', t->index, t->waited_on++);
        wait_untracked(t, b, len);
    } else if (t->ring_tracked < RING) {
        /* A ring id this pass has not tracked yet: untracked. */
        len = id_make(b, 'n', t->index, RING - 1);
        wait_untracked(t, b, len);
    } else {
        len = id_make(b, 's', 0, rng_below(&t->rng, STABLE));
        if (portreg_register(reg, b, len, (uint16_t)(1 + t->index), NULL) != 0)
            die("register failed");
        bump(t);
    }
}

static void check_entry(struct nthread *t, const portreg_entry_t *e, unsigned *stable)
{
    const struct cfg *c = t->r->cfg;
    char tag;
    uint32_t group, index;
    size_t slot = SIZE_MAX;

    if (id_parse(e->id, e->id_len, &tag, &group, &index))
        slot = nid_slot(c, tag, group, index);
    if (slot == SIZE_MAX) {
        fail(CHECK, "iterator %u: an iteration returned an id the harness never tracked", t->index);
        return;
    }
    if (t->stamp[slot] == t->pass)
        fail(CHECK, "iterator %u: an iteration returned %c%u/%u twice (seed %llu)", t->index, tag,
             group, index, (unsigned long long)c->seed);
    t->stamp[slot] = t->pass;
    bool sane = (e->state.status == PORTREG_PENDING && e->state.port == 0) ||
                (e->state.status == PORTREG_BOUND && e->state.port != 0);
    if (!sane || e->state.version == 0)
        fail(CHECK, "iterator %u: an iteration returned %c%u/%u in state %d port %u v%u", t->index,
             tag, group, index, (int)e->state.status, e->state.port, e->state.version);
    *stable += tag == 's';
}

static void iterate(struct nthread *t)
{
    portreg_t *reg = t->r->reg;
    portreg_iter_t it;
    portreg_entry_t e;
    portreg_stats_t before, after;
    unsigned stable = 0, n = 0;
    char b[ID_BUF];

    t->pass++;
    t->ring_tracked = 0;
    portreg_iter_init(&it, reg);
    portreg_stats(reg, &before);
    inside(t);
    while (portreg_iter_next(&it, &e)) {
        check_entry(t, &e, &stable);
        if (++n % 16 == 0)
            inside(t);
    }
    /* Untrack what this pass tracked, still inside the iteration. */
    for (unsigned k = 0; k < t->ring_tracked; k++) {
        size_t len = id_make(b, 'n', t->index, k);
        if (portreg_untrack(reg, b, len, NULL) != 0)
            die("untrack failed");
    }
    portreg_stats(reg, &after);
    portreg_iter_fini(&it);
    t->entries += n;
    t->passes++;
    t->over_compaction += after.compactions != before.compactions;
    bump(t);
    if (stable != STABLE)
        fail(CHECK, "iterator %u: an iteration returned %u of %u stable ids (seed %llu)", t->index,
             stable, STABLE, (unsigned long long)t->r->cfg->seed);
}

static bool iterators_running(struct nrun *r)
{
    /* acquire: pairs with the iterators' release; only says when to stop. */
    return atomic_load_explicit(&r->iterators_left, memory_order_acquire) > 0 && !stopping();
}

static void *nthread_main(void *arg)
{
    struct nthread *t = arg;
    struct nrun *r = t->r;
    char b[ID_BUF];

    switch (t->role) {
    case R_ITER:
        for (unsigned p = 0; p < r->cfg->n_passes && !stopping(); p++)
            iterate(t);
        /* release: pairs with the acquire in iterators_running(). */
        atomic_fetch_sub_explicit(&r->iterators_left, 1, memory_order_release);
        break;
    case R_RECLAIM:
        while (iterators_running(r)) {
            int rc = portreg_reclaim(r->reg);
            if (rc != 0)
                fail(CHECK, "reclaimer %u: portreg_reclaim returned %s", t->index,
                     portreg_err_name(rc));
            t->reclaims++;
            bump(t);
        }
        break;
    case R_GROW:
        while (iterators_running(r)) {
            unsigned n = 64 + rng_below(&t->rng, GROWER_IDS - 64);
            for (unsigned k = 0; k < n; k++) {
                size_t len = id_make(b, 'g', t->index, k);
                if (portreg_track(r->reg, b, len) != 0)
                    die("track failed");
                if (k % 64 == 0)
                    bump(t);
            }
            for (unsigned k = 0; k < n; k++) {
                size_t len = id_make(b, 'g', t->index, k);
                if (portreg_untrack(r->reg, b, len, NULL) != 0)
                    die("untrack failed");
            }
            t->waves++;
            bump(t);
        }
        break;
    }
    return NULL;
}

/* Watches every thread's progress until the iterators are done; a thread
 * stuck for n_stall_s seconds ends the process with the check failed. */
static void watchdog(struct nrun *r, struct nthread *th, unsigned n)
{
    uint64_t *last = xcalloc(n, sizeof *last);
    int64_t *since = xcalloc(n, sizeof *since);
    int64_t limit = (int64_t)r->cfg->n_stall_s * 1000000000;

    for (unsigned i = 0; i < n; i++)
        since[i] = mono_ns();
    while (iterators_running(r)) {
        nap_ns(20 * 1000 * 1000);
        int64_t now = mono_ns();
        bool stuck = false;
        for (unsigned i = 0; i < n; i++) {
            uint64_t p = atomic_load_explicit(&th[i].progress, memory_order_relaxed);
            if (p != last[i]) {
                last[i] = p;
                since[i] = now;
            }
            stuck |= now - since[i] >= limit;
        }
        if (stuck) {
            /* Every thread idle for a second or more: the deadlock's parties. */
            for (unsigned i = 0; i < n; i++)
                if (now - since[i] >= 1000000000)
                    fail(CHECK, "%s %u made no progress for %.1f s: deadlock (seed %llu)",
                         role_name[th[i].role], th[i].index, (double)(now - since[i]) / 1e9,
                         (unsigned long long)r->cfg->seed);
            printf("iterinsert: FAIL seed=%llu: threads stopped making progress; giving up "
                   "on them\n",
                   (unsigned long long)r->cfg->seed);
            fflush(stdout);
            fflush(stderr);
            _exit(1);
        }
    }
    free(last);
    free(since);
}

unsigned check_iterinsert(const struct cfg *cfg)
{
    struct nrun r = {.cfg = cfg};
    unsigned before = atomic_load(&stress_failures);
    unsigned ni = cfg->n_iterators, nr = cfg->n_reclaimers, ng = cfg->n_growers;
    unsigned n = ni + nr + ng;
    char b[ID_BUF];
    double t0 = now_s();

    if (ni == 0 || nr == 0 || ng == 0 || cfg->n_stall_s == 0)
        die("iterinsert: needs iterators, reclaimers, growers and a stall limit");
    mem_reset_peak();
    r.reg = portreg_create(NULL);
    if (r.reg == NULL)
        die("portreg_create failed");
    for (unsigned i = 0; i < STABLE; i++) {
        size_t len = id_make(b, 's', 0, i);
        if (portreg_register(r.reg, b, len, (uint16_t)(1 + i), NULL) != 0)
            die("stable id");
    }
    portreg_stats_t st0;
    portreg_stats(r.reg, &st0);

    struct nthread *th = xcalloc(n, sizeof *th);
    /* relaxed: pthread_create() publishes it. */
    atomic_store_explicit(&r.iterators_left, ni, memory_order_relaxed);
    for (unsigned i = 0; i < n; i++) {
        struct nthread *t = &th[i];
        t->r = &r;
        t->role = i < ni ? R_ITER : i < ni + nr ? R_RECLAIM : R_GROW;
        t->index = i < ni ? i : i < ni + nr ? i - ni : i - ni - nr;
        t->rng = rng_for(cfg->seed, 700 + i);
        if (t->role == R_ITER)
            t->stamp = xcalloc(nid_count(cfg), sizeof *t->stamp);
        start_thread(&t->tid, nthread_main, t);
    }
    watchdog(&r, th, n);

    uint64_t passes = 0, entries = 0, inserts = 0, waits = 0, reclaims = 0, waves = 0, over = 0;
    for (unsigned i = 0; i < n; i++) {
        join_thread(th[i].tid);
        passes += th[i].passes;
        entries += th[i].entries;
        inserts += th[i].inserts;
        waits += th[i].waits;
        reclaims += th[i].reclaims;
        waves += th[i].waves;
        over += th[i].over_compaction;
        free(th[i].stamp);
    }
    free(th);
    portreg_stats_t st;
    portreg_stats(r.reg, &st);
    portreg_destroy(r.reg);

    if (!stopping() && (passes == 0 || reclaims == 0 || inserts == 0 || waits == 0 ||
                        st.compactions == st0.compactions))
        fail(CHECK,
             "proved too little: %llu passes, %llu inserts and %llu waits inside them, "
             "%llu reclaims, %llu compactions",
             (unsigned long long)passes, (unsigned long long)inserts, (unsigned long long)waits,
             (unsigned long long)reclaims, (unsigned long long)(st.compactions - st0.compactions));
    double secs = now_s() - t0;
    unsigned found = atomic_load(&stress_failures) - before;
    printf("iterinsert: %s seed=%llu threads=%u (%u iterators, %u reclaimers, %u growers)\n",
           found ? "FAIL" : "PASS", (unsigned long long)cfg->seed, n, ni, nr, ng);
    printf("iterinsert:   %llu passes, %llu entries checked; inside them %llu inserting tracks "
           "and %llu timed-out waits on untracked ids; %llu passes overlapped a compaction\n",
           (unsigned long long)passes, (unsigned long long)entries, (unsigned long long)inserts,
           (unsigned long long)waits, (unsigned long long)over);
    printf("iterinsert:   %llu portreg_reclaim() calls, %llu grower waves, %llu compactions, "
           "no thread stalled %u s; %.1f s, peak_rss=%zu KiB\n",
           (unsigned long long)reclaims, (unsigned long long)waves,
           (unsigned long long)(st.compactions - st0.compactions), cfg->n_stall_s, secs,
           mem_now().hwm_kib);
    return found;
}
