/*
 * waiters: portreg_wait() on ids being tracked and untracked, and on ids
 * nobody ever tracks, while churn makes compactions happen.
 *
 * Owners each change ids only they write (register, unbind, untrack,
 * track) and, after every call, log the id's new state, read back with
 * portreg_get(): with one writer per id, that log is the id's whole
 * history. Waiters wait on those ids with short timeouts, from the current
 * version or an older one, and on ids nobody tracks (every such wait needs
 * a placeholder slot). Sleepers keep more placeholders than the
 * compaction minimum occupied at all times, each asleep on an id of its
 * own.
 *
 * Proves:
 * - every wait that returns 0 returns a state the id really had (found in
 *   its owner's history) whose version differs from the one waited on;
 *   every timeout came no earlier than asked and returns the version
 *   waited on; a wait on an id nobody tracks times out, untracked;
 * - slots (portreg_stats_t.slots) stay bounded while thousands of waits
 *   leave abandoned placeholders behind, also in a second phase in which
 *   nothing is untracked at all (placeholders must be reclaimed without an
 *   unrelated untrack);
 * - compactions stay O(1) amortized per untrack and per abandoned
 *   placeholder, however many sleepers hold slots the compaction must keep.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stress.h"

#define CHECK "waiters"

#define OWNED      32 /* ids per owner */
#define SLEEP_NS   (20 * 1000 * 1000)
#define MAX_LATE_S 10 /* a timeout this late means a lost wake-up or worse */
/* Compactions per untrack or abandoned placeholder, at most: far above
 * what a compaction that waits for a batch of droppable slots costs, far
 * below the one compaction per untrack of a trigger that counts slots it
 * must keep. */
#define COMPACT_RATIO 8

enum role { R_OWNER, R_WAITER, R_SLEEPER };

/* One state an id had, or one a waiter saw. */
struct hstate {
    uint32_t version;
    uint16_t port;
    uint8_t status;
    uint8_t pad;
};

struct history {
    struct hstate *s;
    size_t n, cap;
};

struct seen {
    uint32_t id;
    struct hstate s;
};

struct wrun {
    const struct cfg *cfg;
    portreg_t *reg;
    unsigned nids;
    struct history *hist;                         /* per owned id, written by its owner only */
    _Atomic int phase;                            /* 1: owners churn; 2: no untracks; 3: done */
    _Atomic unsigned waiters_left, waiters_left2; /* phase 1, phase 2 */
    _Atomic uint64_t untracks;                    /* applied untracks */
};

struct wthread {
    struct wrun *r;
    enum role role;
    unsigned index;
    pthread_t tid;
    struct rng rng;
    struct seen *log;
    size_t n, cap;
    uint32_t counter; /* never-tracked ids used */
    uint64_t waits, changed, timeouts, immediate, unknown_waits, untracked_waits, ops;
    int64_t max_late_ns;
};

static int load_phase(struct wrun *r)
{
    /* acquire: pairs with the main thread's release; says when to move on. */
    return atomic_load_explicit(&r->phase, memory_order_acquire);
}

static uint32_t owned_id(unsigned owner, unsigned k)
{
    return owner * OWNED + k;
}

static size_t make_owned(char *b, uint32_t id)
{
    return id_make(b, 'o', id / OWNED, id % OWNED);
}

static void hist_add(struct history *h, portreg_state_t s)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 256;
        h->s = xrealloc(h->s, h->cap, sizeof *h->s);
    }
    h->s[h->n++] = (struct hstate){s.version, s.port, (uint8_t)s.status, 0};
}

static void owner_run(struct wthread *t)
{
    struct wrun *r = t->r;
    char b[ID_BUF];
    uint16_t seq[OWNED] = {0};

    while (load_phase(r) == 1 && !stopping()) {
        unsigned k = rng_below(&t->rng, OWNED);
        uint32_t id = owned_id(t->index, k);
        size_t len = make_owned(b, id);
        unsigned dice = rng_below(&t->rng, 8);
        portreg_state_t prev = {0}, now;
        int rc;
        if (dice < 3) {
            seq[k] = (uint16_t)(seq[k] % 65000 + 1);
            rc = portreg_register(r->reg, b, len, seq[k], &prev);
        } else if (dice < 4) {
            rc = portreg_unbind(r->reg, b, len, &prev);
        } else if (dice < 6) {
            rc = portreg_untrack(r->reg, b, len, &prev);
            if (rc == 0 && prev.status != PORTREG_UNTRACKED)
                atomic_fetch_add_explicit(&r->untracks, 1, memory_order_relaxed);
        } else {
            rc = portreg_track(r->reg, b, len);
        }
        if (rc != 0 || portreg_get(r->reg, b, len, &now) != 0)
            die("owner %u: a call failed: %s", t->index, portreg_strerror(rc));
        struct history *h = &r->hist[id];
        if (now.status != PORTREG_UNTRACKED && (h->n == 0 || h->s[h->n - 1].version != now.version))
            hist_add(h, now);
        t->ops++;
    }
}

static void log_seen(struct wthread *t, uint32_t id, portreg_state_t s)
{
    if (s.status == PORTREG_UNTRACKED)
        return;
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 4096;
        t->log = xrealloc(t->log, t->cap, sizeof *t->log);
    }
    t->log[t->n++] = (struct seen){id, {s.version, s.port, (uint8_t)s.status, 0}};
}

/* One wait; checks what can be checked at once. Returns its result. */
static int one_wait(struct wthread *t, const char *b, size_t len, uint32_t seen, int64_t ns,
                    portreg_state_t *st, const char *what)
{
    int64_t t0 = mono_ns();
    int rc = portreg_wait(t->r->reg, b, len, seen, ns, st);
    int64_t took = mono_ns() - t0;
    unsigned long long seed = (unsigned long long)t->r->cfg->seed;

    t->waits++;
    bool sane = (st->status == PORTREG_UNTRACKED && st->port == 0 && st->version == 0) ||
                (st->status == PORTREG_PENDING && st->port == 0 && st->version != 0) ||
                (st->status == PORTREG_BOUND && st->port != 0 && st->version != 0);
    if (!sane)
        fail(CHECK, "waiter %u: wait(v%u) on %s returned status %d port %u v%u (seed %llu)",
             t->index, seen, what, (int)st->status, st->port, st->version, seed);
    if (rc == 0) {
        /* A wait on 0 returns on any change at all: a track may have come
         * and gone. Any other wait returns a different version. */
        if (st->version == seen && seen != 0)
            fail(CHECK, "waiter %u: wait(v%u) on %s returned 0 with the same version (seed %llu)",
                 t->index, seen, what, seed);
        t->changed++;
    } else if (rc == PORTREG_ETIMEDOUT) {
        if (st->version != seen)
            fail(CHECK, "waiter %u: wait(v%u) on %s timed out with v%u (seed %llu)", t->index, seen,
                 what, st->version, seed);
        if (took < ns)
            fail(CHECK, "waiter %u: a wait of %lld ns on %s timed out after %lld ns", t->index,
                 (long long)ns, what, (long long)took);
        if (took - ns > t->max_late_ns)
            t->max_late_ns = took - ns;
        if (took - ns > (int64_t)MAX_LATE_S * 1000000000)
            fail(CHECK, "waiter %u: a wait of %lld ns on %s returned %lld ms late", t->index,
                 (long long)ns, what, (long long)((took - ns) / 1000000));
        t->timeouts++;
    } else {
        fail(CHECK, "waiter %u: wait(v%u) on %s returned %s (seed %llu)", t->index, seen, what,
             portreg_err_name(rc), seed);
    }
    return rc;
}

/* A wait on an id nobody ever tracks: a placeholder, then a timeout. */
static void wait_unknown(struct wthread *t, char tag, int64_t ns)
{
    char b[ID_BUF];
    portreg_state_t st;
    size_t len = id_make(b, tag, t->index, t->counter++);
    uint32_t seen = rng_below(&t->rng, 16) == 0 ? 1 + rng_below(&t->rng, 100) : 0;
    int rc = one_wait(t, b, len, seen, ns, &st, "an id nobody tracks");
    if (seen != 0 && rc != 0)
        fail(CHECK, "waiter %u: wait(v%u) on an id nobody tracks returned %s, not at once",
             t->index, seen, portreg_err_name(rc));
    else if (seen == 0 && rc != PORTREG_ETIMEDOUT)
        fail(CHECK, "waiter %u: wait(v0) on an id nobody tracks returned %s, not a timeout",
             t->index, portreg_err_name(rc));
    t->unknown_waits += seen == 0;
}

static void waiter_run(struct wthread *t)
{
    struct wrun *r = t->r;
    char b[ID_BUF];

    for (int phase = 1; phase <= 2 && !stopping(); phase++) {
        for (unsigned i = 0; i < r->cfg->w_waits && !stopping(); i++) {
            int64_t ns = 1000 * (int64_t)(5 + rng_below(&t->rng, 100));
            if (phase == 2 || rng_below(&t->rng, 2) == 0) {
                wait_unknown(t, 'z', ns);
                continue;
            }
            uint32_t id = rng_below(&t->rng, r->nids);
            size_t len = make_owned(b, id);
            portreg_state_t cur, st;
            if (portreg_get(r->reg, b, len, &cur) != 0)
                die("get failed");
            log_seen(t, id, cur);
            /* Now and then a stale version: must return at once. */
            uint32_t seen = cur.version;
            if (seen > 1 && rng_below(&t->rng, 8) == 0)
                seen = cur.version - 1 - rng_below(&t->rng, seen - 1);
            t->untracked_waits += cur.status == PORTREG_UNTRACKED;
            int rc = one_wait(t, b, len, seen, ns, &st, "an owned id");
            if (seen != cur.version && rc != 0)
                fail(CHECK, "waiter %u: wait(v%u) with the id past v%u returned %s (seed %llu)",
                     t->index, seen, cur.version, portreg_err_name(rc),
                     (unsigned long long)r->cfg->seed);
            t->immediate += seen != cur.version;
            log_seen(t, id, st);
        }
        /* release: pairs with the acquire in sample_slots(). */
        atomic_fetch_sub_explicit(phase == 1 ? &r->waiters_left : &r->waiters_left2, 1,
                                  memory_order_release);
        /* Phase 2 starts when every waiter is done with phase 1. The nap
         * paces the poll; the phase flag is what orders. */
        while (phase == 1 && load_phase(r) == 1 && !stopping())
            nap_ns(1000 * 1000);
    }
}

static void sleeper_run(struct wthread *t)
{
    char b[ID_BUF];
    size_t len = id_make(b, 'q', t->index, 0);
    portreg_state_t st;

    while (load_phase(t->r) < 3 && !stopping()) {
        if (one_wait(t, b, len, 0, SLEEP_NS, &st, "a sleeper's id") != PORTREG_ETIMEDOUT)
            fail(CHECK, "sleeper %u: a wait on an id nobody tracks did not time out", t->index);
    }
}

static void *wthread_main(void *arg)
{
    struct wthread *t = arg;
    if (t->role == R_OWNER)
        owner_run(t);
    else if (t->role == R_WAITER)
        waiter_run(t);
    else
        sleeper_run(t);
    return NULL;
}

static int cmp_hversion(const void *a, const void *b)
{
    uint32_t x = ((const struct hstate *)a)->version, y = ((const struct hstate *)b)->version;
    return (x > y) - (x < y);
}

/* Every state a waiter saw must be in its id's history. */
static void verify(struct wrun *r, struct wthread *th, unsigned n, uint64_t *checked)
{
    for (unsigned i = 0; i < n; i++) {
        for (size_t j = 0; j < th[i].n; j++) {
            const struct seen *s = &th[i].log[j];
            const struct history *h = &r->hist[s->id];
            const struct hstate *f = bsearch(&s->s, h->s, h->n, sizeof *h->s, cmp_hversion);
            (*checked)++;
            if (f == NULL || f->status != s->s.status || f->port != s->s.port)
                fail(CHECK,
                     "waiter %u: id o%u/%u seen %s port %u v%u, a state it never had "
                     "(seed %llu)",
                     th[i].index, s->id / OWNED, s->id % OWNED,
                     s->s.status == PORTREG_BOUND ? "bound" : "pending", s->s.port, s->s.version,
                     (unsigned long long)r->cfg->seed);
        }
    }
}

/* Samples slots until the phase's workers are done; returns the maximum. */
static size_t sample_slots(struct wrun *r, _Atomic unsigned *left, size_t bound, const char *when)
{
    size_t max = 0;
    portreg_stats_t st;
    while (atomic_load_explicit(left, memory_order_acquire) > 0 && !stopping()) {
        nap_ns(2 * 1000 * 1000);
        portreg_stats(r->reg, &st);
        if (st.slots > max)
            max = st.slots;
    }
    if (max > bound)
        fail(CHECK,
             "%s: the table held %zu slots, above the bound of %zu: abandoned wait "
             "placeholders are not reclaimed (seed %llu)",
             when, max, bound, (unsigned long long)r->cfg->seed);
    return max;
}

unsigned check_waiters(const struct cfg *cfg)
{
    struct wrun r = {.cfg = cfg};
    unsigned before = atomic_load(&stress_failures);
    unsigned no = cfg->w_owners, nw = cfg->w_waiters, ns = cfg->w_sleepers;
    unsigned n = no + nw + ns;
    double t0 = now_s();

    if (no == 0 || nw == 0 || ns == 0)
        die("waiters: needs owners, waiters and sleepers");
    mem_reset_peak();
    r.reg = portreg_create(NULL);
    if (r.reg == NULL)
        die("portreg_create failed");
    r.nids = no * OWNED;
    r.hist = xcalloc(r.nids, sizeof *r.hist);
    portreg_stats_t st0, st1, st2, st3;
    portreg_stats(r.reg, &st0);

    struct wthread *th = xcalloc(n, sizeof *th);
    /* relaxed: pthread_create() publishes them. */
    atomic_store_explicit(&r.phase, 1, memory_order_relaxed);
    atomic_store_explicit(&r.waiters_left, nw, memory_order_relaxed);
    atomic_store_explicit(&r.waiters_left2, nw, memory_order_relaxed);
    for (unsigned i = 0; i < n; i++) {
        struct wthread *t = &th[i];
        t->r = &r;
        t->role = i < no ? R_OWNER : i < no + nw ? R_WAITER : R_SLEEPER;
        t->index = i < no ? i : i < no + nw ? i - no : i - no - nw;
        t->rng = rng_for(cfg->seed, 900 + i);
        start_thread(&t->tid, wthread_main, t);
    }
    /* Every id that can need a slot at once (owned ids, one per waiter and
     * sleeper) twice over, plus a batch of abandoned placeholders. Without
     * reclamation of abandoned placeholders the table holds one slot per
     * timed-out wait: many thousands. */
    size_t bound = 4 * ((size_t)r.nids + nw + ns) + 256;

    /* Phase 1, with churn: until every waiter has done its waits. */
    size_t max1 = sample_slots(&r, &r.waiters_left, bound, "with churn");
    atomic_store_explicit(&r.phase, 2, memory_order_release);
    for (unsigned i = 0; i < no; i++)
        join_thread(th[i].tid);
    portreg_stats(r.reg, &st1);
    uint64_t untracks = atomic_load_explicit(&r.untracks, memory_order_relaxed);
    /* Phase 2: nothing is untracked; thousands of waits time out. */
    size_t max2 = sample_slots(&r, &r.waiters_left2, bound, "with no untrack");
    for (unsigned i = no; i < no + nw; i++)
        join_thread(th[i].tid);
    portreg_stats(r.reg, &st2);
    atomic_store_explicit(&r.phase, 3, memory_order_release);
    for (unsigned i = no + nw; i < n; i++)
        join_thread(th[i].tid);
    portreg_stats(r.reg, &st3);

    uint64_t checked = 0, waits = 0, changed = 0, timeouts = 0, unknown = 0, on_untracked = 0;
    uint64_t sleeper_waits = 0, owner_ops = 0, hist = 0, stale = 0;
    int64_t late = 0;
    verify(&r, th, n, &checked);
    for (unsigned i = 0; i < n; i++) {
        const struct wthread *t = &th[i];
        if (t->role == R_SLEEPER)
            sleeper_waits += t->waits;
        else
            waits += t->waits;
        changed += t->changed;
        timeouts += t->timeouts;
        unknown += t->unknown_waits;
        on_untracked += t->untracked_waits;
        stale += t->immediate;
        owner_ops += t->ops;
        if (t->max_late_ns > late)
            late = t->max_late_ns;
        free(t->log);
    }
    for (unsigned i = 0; i < r.nids; i++) {
        hist += r.hist[i].n;
        free(r.hist[i].s);
    }
    free(r.hist);
    free(th);
    portreg_destroy(r.reg);

    /* Each compaction must be paid for by slots that became droppable:
     * an untrack, or a wait that may have left a placeholder. */
    uint64_t compactions = st3.compactions - st0.compactions;
    uint64_t events = untracks + unknown + on_untracked + sleeper_waits;
    /* Valid after an earlier failure too: the counts are the run's. */
    if (compactions > events / COMPACT_RATIO + 2)
        fail(CHECK,
             "%llu compactions for %llu untracks and %llu waits that may leave a "
             "placeholder: more than one per %d (seed %llu)",
             (unsigned long long)compactions, (unsigned long long)untracks,
             (unsigned long long)(unknown + on_untracked + sleeper_waits), COMPACT_RATIO,
             (unsigned long long)cfg->seed);
    if (!stopping() && (untracks == 0 || unknown < 1000 || st1.compactions == st0.compactions ||
                        st3.compactions == st1.compactions || changed == 0 || checked == 0))
        fail(CHECK,
             "proved too little: %llu untracks, %llu waits on ids nobody tracks, %llu "
             "compactions with churn and %llu without, %llu waits woken by a change, "
             "%llu states checked",
             (unsigned long long)untracks, (unsigned long long)unknown,
             (unsigned long long)(st1.compactions - st0.compactions),
             (unsigned long long)(st3.compactions - st1.compactions), (unsigned long long)changed,
             (unsigned long long)checked);
    double secs = now_s() - t0;
    unsigned found = atomic_load(&stress_failures) - before;
    printf("waiters: %s seed=%llu threads=%u (%u owners of %u ids, %u waiters, %u sleepers)\n",
           found ? "FAIL" : "PASS", (unsigned long long)cfg->seed, n, no, r.nids, nw, ns);
    printf("waiters:   %llu waits (%llu returned a change, %llu of them on a stale version; "
           "%llu timed out, at most %.1f ms late), %llu on ids nobody tracks, %llu on untracked "
           "owned ids, %llu by sleepers; "
           "%llu owner calls, %llu states seen checked against %llu in the histories\n",
           (unsigned long long)waits, (unsigned long long)changed, (unsigned long long)stale,
           (unsigned long long)timeouts, (double)late / 1e6, (unsigned long long)unknown,
           (unsigned long long)on_untracked, (unsigned long long)sleeper_waits,
           (unsigned long long)owner_ops, (unsigned long long)checked, (unsigned long long)hist);
    printf("waiters:   slots at most %zu with churn, %zu with no untrack (bound %zu), %zu at end; "
           "%llu compactions (%llu without any untrack) for %llu untracks; %.1f s, "
           "peak_rss=%zu KiB\n",
           max1, max2, bound, st3.slots, (unsigned long long)compactions,
           (unsigned long long)(st2.compactions - st1.compactions), (unsigned long long)untracks,
           secs, mem_now().hwm_kib);
    return found;
}
