/*
 * exchange: writers against readers on a small hot id set and a larger
 * cold one, in rounds of fresh ids. Proves, from results alone:
 *
 * chain      Every applied change reports the state it replaced (register,
 *            unbind and untrack return prev), so per id the replaced states
 *            plus the final state must be every state the id had, each
 *            replaced at most once: no two changes report the same version;
 *            every written port is returned as "previous" at most once and
 *            exactly one written port (the final one, if bound) never is;
 *            and the untracked and pending states add up per incarnation.
 *            A lost update breaks all of these.
 * monotonic  Each writer writes ports of its own, in sequence; no reader
 *            (or writer) sees a writer's older port after a newer one.
 * version    Every state anyone observed (get, lookup, iteration, snapshot,
 *            wait, a no-op's or a conflict's prev) is one the id really had,
 *            and each thread's observed versions never go backwards.
 *
 * Ports: writer w writes 1 + w*K + seq, seq counting its writes to that id
 * in this round; a round has fewer than K ops per writer, so every written
 * port of an id is distinct and names its writer and order.
 *
 * This file is the workload and the checks made as it runs; the checks
 * made after each round are in exchange_verify.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exchange.h"

/* Field by field: the struct has padding. */
static bool same_state(portreg_state_t a, portreg_state_t b)
{
    return a.status == b.status && a.port == b.port && a.version == b.version;
}

static uint16_t port_of(const struct xrun *x, unsigned writer, unsigned seq)
{
    return (uint16_t)(1 + writer * x->k + seq);
}

const char *xid_name(const struct xrun *x, uint32_t id, char *buf, size_t cap)
{
    bool hot = id < x->cfg->x_hot;
    snprintf(buf, cap, "%s%u@round%u", hot ? "hot" : "cold", hot ? id : id - x->cfg->x_hot,
             x->round);
    return buf;
}

const char *status_name(unsigned s)
{
    return s == PORTREG_BOUND ? "bound" : s == PORTREG_PENDING ? "pending" : "untracked";
}

static const char *role(const struct xthread *t)
{
    return t->writer ? "writer" : "reader";
}

static void *log_slot(struct xthread *t, size_t elem)
{
    if (t->n == t->cap) {
        t->cap = t->cap != 0 ? t->cap * 2 : 4096;
        t->log = xrealloc(t->log, t->cap, elem);
    }
    return (char *)t->log + t->n++ * elem;
}

/* A port observed for id: the writer's sequence in it never goes back. */
static void observe_port(struct xthread *t, uint32_t id, uint16_t port)
{
    struct xrun *x = t->x;
    unsigned w = (port - 1u) / x->k, seq = (port - 1u) % x->k;
    char nb[48];

    if (port == 0 || w >= x->nw) {
        fail("version", "%s %u, id %s: port %u, which no writer writes (seed %llu)", role(t),
             t->index, xid_name(x, id, nb, sizeof nb), port, (unsigned long long)x->cfg->seed);
        return;
    }
    int32_t *last = &t->last_seq[(size_t)id * x->nw + w];
    if ((int32_t)seq < *last)
        fail("monotonic",
             "%s %u, id %s: writer %u's write #%u seen after its write #%d "
             "(seed %llu)",
             role(t), t->index, xid_name(x, id, nb, sizeof nb), w, seq, *last,
             (unsigned long long)x->cfg->seed);
    *last = (int32_t)seq;
}

/* A state observed for id. applied: this thread's call changed it, so the
 * next version it sees must be newer than any it saw so far. */
static void observe(struct xthread *t, uint32_t id, portreg_state_t s, bool applied)
{
    struct xrun *x = t->x;
    char nb[48];

    if (s.status != PORTREG_UNTRACKED) {
        uint32_t last = t->last_version[id];
        if (s.version == 0 || s.version < last || (t->strict[id] && s.version == last))
            fail("version", "%s %u, id %s: saw v%u after v%u%s (seed %llu)", role(t), t->index,
                 xid_name(x, id, nb, sizeof nb), s.version, last,
                 t->strict[id] ? " and a change of its own" : "", (unsigned long long)x->cfg->seed);
        t->last_version[id] = s.version;
        t->strict[id] = 0;
    } else if (s.version != 0 || s.port != 0) {
        fail("version", "%s %u, id %s: untracked with v%u port %u", role(t), t->index,
             xid_name(x, id, nb, sizeof nb), s.version, s.port);
    }
    if (applied)
        t->strict[id] = 1;
    if (s.status == PORTREG_BOUND)
        observe_port(t, id, s.port);
    else if (s.port != 0)
        fail("version", "%s %u, id %s: %s with port %u", role(t), t->index,
             xid_name(x, id, nb, sizeof nb), status_name(s.status), s.port);
}

static uint32_t pick_id(struct xthread *t)
{
    const struct cfg *c = t->x->cfg;
    if (rng_below(&t->rng, 4) != 0)
        return rng_below(&t->rng, c->x_hot);
    return c->x_hot + rng_below(&t->rng, c->x_cold);
}

static void wlog(struct xthread *t, uint32_t id, enum wkind kind, uint16_t port,
                 portreg_state_t prev, bool applied)
{
    struct wentry *e = log_slot(t, sizeof *e);
    *e = (struct wentry){.id = id,
                         .pversion = prev.version,
                         .port = port,
                         .pport = prev.port,
                         .writer = (uint16_t)t->index,
                         .kind = (uint8_t)kind,
                         .pstatus = (uint8_t)prev.status,
                         .applied = applied};
    if (kind != W_TRACK)
        observe(t, id, prev, applied);
}

static void expect_rc(struct xthread *t, const char *op, int rc, int want)
{
    if (rc != want)
        fail("chain", "writer %u: %s returned %s, expected %s", t->index, op, portreg_err_name(rc),
             portreg_err_name(want));
}

static void writer_round(struct xthread *t)
{
    struct xrun *x = t->x;
    portreg_t *reg = x->reg;
    portreg_state_t prev = {0}, cur = {0};
    const portreg_state_t none = {PORTREG_UNTRACKED, 0, 0};
    int rc;

    for (unsigned i = 0; i < x->cfg->x_ops_per_round && !stopping(); i++) {
        uint32_t id = pick_id(t);
        const char *b = x->ids[id].b;
        size_t len = x->ids[id].len;
        unsigned dice = rng_below(&t->rng, 100);
        t->ops++;
        if (dice < 55) {
            uint16_t port = port_of(x, t->index, t->seq[id]++);
            expect_rc(t, "register", portreg_register(reg, b, len, port, &prev), 0);
            wlog(t, id, W_REG, port, prev, true);
        } else if (dice < 65) {
            /* Read, then write only if nobody changed it in between. */
            expect_rc(t, "get", portreg_get(reg, b, len, &cur), 0);
            wlog(t, id, W_OBS, 0, cur, false);
            uint16_t port = port_of(x, t->index, t->seq[id]++);
            rc = portreg_register_if(reg, b, len, port, cur.version, &prev);
            if (rc == 0 && prev.version == cur.version) {
                wlog(t, id, W_REG, port, prev, true);
            } else if (rc == PORTREG_ECONFLICT && prev.version != cur.version) {
                t->conflicts++;
                wlog(t, id, W_OBS, 0, prev, false);
            } else {
                fail("chain", "writer %u: register_if(v%u) returned %s with prev v%u", t->index,
                     cur.version, portreg_err_name(rc), prev.version);
            }
        } else if (dice < 73) {
            expect_rc(t, "unbind", portreg_unbind(reg, b, len, &prev), 0);
            wlog(t, id, W_UNBIND, 0, prev, prev.status == PORTREG_BOUND);
        } else if (dice < 80) {
            expect_rc(t, "untrack", portreg_untrack(reg, b, len, &prev), 0);
            wlog(t, id, W_UNTRACK, 0, prev, prev.status != PORTREG_UNTRACKED);
        } else if (dice < 85) {
            expect_rc(t, "get", portreg_get(reg, b, len, &cur), 0);
            wlog(t, id, W_OBS, 0, cur, false);
            rc = portreg_untrack_if(reg, b, len, cur.version, &prev);
            if (rc == 0 && prev.version == cur.version) {
                wlog(t, id, W_UNTRACK, 0, prev, prev.status != PORTREG_UNTRACKED);
            } else if (rc == PORTREG_ECONFLICT && prev.version != cur.version) {
                t->conflicts++;
                wlog(t, id, W_OBS, 0, prev, false);
            } else {
                fail("chain", "writer %u: untrack_if(v%u) returned %s with prev v%u", t->index,
                     cur.version, portreg_err_name(rc), prev.version);
            }
        } else if (dice < 95) {
            expect_rc(t, "track", portreg_track(reg, b, len), 0);
            wlog(t, id, W_TRACK, 0, none, false);
        } else {
            expect_rc(t, "get", portreg_get(reg, b, len, &cur), 0);
            wlog(t, id, W_OBS, 0, cur, false);
        }
    }
}

/* Logs what a reader saw, unless it saw just that last time: a reader
 * polls far more often than writers change anything. */
static void rlog(struct xthread *t, uint32_t id, portreg_state_t s, enum how how)
{
    uint64_t key =
        UINT64_C(1) << 63 | (uint64_t)s.version << 24 | (uint64_t)s.status << 16 | s.port;
    if (t->last_logged[id] == key)
        return;
    t->last_logged[id] = key;
    struct obs *o = log_slot(t, sizeof *o);
    *o = (struct obs){.id = id,
                      .version = s.version,
                      .port = s.port,
                      .reader = (uint16_t)t->index,
                      .status = (uint8_t)s.status,
                      .how = (uint8_t)how};
    t->logged++;
}

/* An entry of an iteration or snapshot: one of this round's ids. */
static void reader_entry(struct xthread *t, const portreg_entry_t *e, enum how how)
{
    struct xrun *x = t->x;
    char tag;
    uint32_t round, id;

    bool parsed = id_parse(e->id, e->id_len, &tag, &round, &id);
    if (parsed && x->handles && tag == 'e' && round < x->cfg->h_extra)
        return; /* an extra id, churned to make the table grow and compact */
    bool ours =
        parsed && ((tag == 'h' && id < x->cfg->x_hot) || (tag == 'c' && id < x->cfg->x_cold));
    if (tag == 'c')
        id += x->cfg->x_hot;
    if (!ours) {
        fail("version", "reader %u: an iteration returned an id the harness never made", t->index);
    } else if (round != x->round) {
        /* The main thread untracked it before this round began. */
        fail("version",
             "reader %u: an iteration returned an id of round %u in round %u, "
             "untracked before this round began",
             t->index, round, x->round);
    } else {
        observe(t, id, e->state, false);
        rlog(t, id, e->state, how);
    }
}

/* A wait's result: 0 with another version (any change, when waiting on
 * 0), or a timeout with the same one. */
static void check_wait(struct xthread *t, const char *what, uint32_t seen, int rc,
                       portreg_state_t s)
{
    if ((rc == 0 && s.version == seen && seen != 0) ||
        (rc == PORTREG_ETIMEDOUT && s.version != seen) || (rc != 0 && rc != PORTREG_ETIMEDOUT))
        fail("version", "reader %u: %s(v%u) returned %s with v%u", t->index, what, seen,
             portreg_err_name(rc), s.version);
}

/* Handles mode: one read through a handle, this reader's own one if it
 * has one open for id, else the round's shared one; or an open or close
 * of its own. */
static void handle_op(struct xthread *t, uint32_t id, unsigned dice)
{
    struct xrun *x = t->x;
    portreg_handle_t *h = t->own[id] != NULL ? t->own[id] : x->shared[id];
    portreg_state_t s = {0};
    uint16_t port;

    t->handle_reads++;
    if (dice < 2) {
        if (t->own[id] != NULL) {
            portreg_handle_close(t->own[id]);
            t->own[id] = NULL;
        } else {
            int rc = portreg_handle_open(x->reg, x->ids[id].b, x->ids[id].len, &t->own[id]);
            if (rc != 0)
                die("portreg_handle_open: %s", portreg_strerror(rc));
            t->opens++;
        }
    } else if (dice < 16 && t->index == 1) {
        uint32_t seen = t->last_version[id];
        int rc = portreg_handle_wait(h, seen, 100 * 1000, &s);
        check_wait(t, "handle_wait", seen, rc, s);
        observe(t, id, s, false);
        rlog(t, id, s, H_HWAIT);
    } else if (dice < 80) {
        if (portreg_handle_get(h, &s) != 0)
            die("portreg_handle_get failed");
        observe(t, id, s, false);
        rlog(t, id, s, H_HGET);
    } else if (portreg_handle_lookup(h, &port)) {
        observe_port(t, id, port);
        rlog(t, id, (portreg_state_t){PORTREG_BOUND, port, 0}, H_HLOOKUP);
    }
}

/* Handles mode, once the writers are done with the round (readers only
 * read, the extra ids are others): every handle reads what the id does. */
static void check_handles_at_rest(struct xthread *t)
{
    struct xrun *x = t->x;
    char nb[48];

    for (uint32_t id = 0; id < x->nids; id++) {
        portreg_handle_t *h = t->own[id] != NULL ? t->own[id] : x->shared[id];
        portreg_state_t viah, viaid;
        size_t hlen = 0;
        const char *hid = portreg_handle_id(h, &hlen);
        if (hid == NULL || hlen != x->ids[id].len || memcmp(hid, x->ids[id].b, hlen) != 0)
            fail("handle", "reader %u, id %s: portreg_handle_id returned other bytes", t->index,
                 xid_name(x, id, nb, sizeof nb));
        if (portreg_handle_get(h, &viah) != 0 ||
            portreg_get(x->reg, x->ids[id].b, x->ids[id].len, &viaid) != 0)
            die("get failed");
        if (!same_state(viah, viaid))
            fail("handle",
                 "reader %u, id %s, with no writer running: its %s handle reads %s port %u v%u, "
                 "the id reads %s port %u v%u (seed %llu)",
                 t->index, xid_name(x, id, nb, sizeof nb), t->own[id] != NULL ? "own" : "shared",
                 status_name(viah.status), viah.port, viah.version, status_name(viaid.status),
                 viaid.port, viaid.version, (unsigned long long)x->cfg->seed);
        if (t->own[id] != NULL) {
            portreg_handle_close(t->own[id]);
            t->own[id] = NULL;
        }
    }
}

/* portreg_lookup_many() on id and up to seven more distinct ids: every
 * port it returns is checked and logged as a lookup of that id. */
static void lookup_many_op(struct xthread *t, uint32_t id)
{
    struct xrun *x = t->x;
    uint32_t pick[8];
    portreg_id_t req[8];
    uint16_t ports[8];
    size_t n = 0;
    for (unsigned k = 0; k < 8; k++) {
        uint32_t p = k == 0 ? id : pick_id(t);
        bool dup = false;
        for (size_t j = 0; j < n; j++)
            dup |= pick[j] == p;
        if (dup)
            continue;
        pick[n] = p;
        req[n] = (portreg_id_t){x->ids[p].b, x->ids[p].len};
        n++;
    }
    ptrdiff_t bound = portreg_lookup_many(x->reg, req, n, ports);
    if (bound < 0)
        die("portreg_lookup_many failed");
    ptrdiff_t seen = 0;
    for (size_t j = 0; j < n; j++) {
        if (ports[j] == 0)
            continue;
        seen++;
        observe_port(t, pick[j], ports[j]);
        rlog(t, pick[j], (portreg_state_t){PORTREG_BOUND, ports[j], 0}, H_LOOKUP);
    }
    if (seen != bound)
        fail("exchange", "reader %u: lookup_many returned %td bound ids, its ports show %td",
             t->index, bound, seen);
}

static void reader_round(struct xthread *t)
{
    struct xrun *x = t->x;
    portreg_state_t s = {0};
    uint16_t port;

    /* acquire: pairs with the writers' release decrement; it only says
     * when to stop, the logs are handed over by the end barrier. */
    while (atomic_load_explicit(&x->writers_left, memory_order_acquire) > 0 && !stopping()) {
        uint32_t id = pick_id(t);
        const char *b = x->ids[id].b;
        size_t len = x->ids[id].len;
        unsigned dice = rng_below(&t->rng, 256);
        t->ops++;
        if (dice == 0) {
            portreg_iter_t it;
            portreg_entry_t e;
            portreg_iter_init(&it, x->reg);
            while (portreg_iter_next(&it, &e))
                reader_entry(t, &e, H_ITER);
            portreg_iter_fini(&it);
        } else if (dice == 1 && t->index % 4 == 1) {
            portreg_snapshot_t snap;
            if (portreg_snapshot(x->reg, &snap) != 0)
                die("portreg_snapshot failed");
            for (size_t i = 0; i < snap.count; i++)
                reader_entry(t, &snap.entries[i], H_SNAP);
            portreg_snapshot_free(&snap);
        } else if (dice < 32 && t->index == 0) {
            /* The timeout bounds the wait; it synchronizes nothing. A wait
             * on 0 returns on any change at all, so it may come back
             * untracked again (a track and an untrack in between). */
            uint32_t seen = t->last_version[id];
            int rc = portreg_wait(x->reg, b, len, seen, 100 * 1000, &s);
            check_wait(t, "wait", seen, rc, s);
            observe(t, id, s, false);
            rlog(t, id, s, H_WAIT);
        } else if (x->handles && dice >= 144 && t->index % 4 != 3) {
            /* Three readers in four mix handle reads with id reads. */
            handle_op(t, id, dice - 144);
        } else if (dice < 144) {
            if (portreg_get(x->reg, b, len, &s) != 0)
                die("portreg_get failed");
            observe(t, id, s, false);
            rlog(t, id, s, H_GET);
        } else if (dice >= 200) {
            lookup_many_op(t, id);
        } else if (portreg_lookup(x->reg, b, len, &port)) {
            observe_port(t, id, port);
            rlog(t, id, (portreg_state_t){PORTREG_BOUND, port, 0}, H_LOOKUP);
        }
    }
}

static void *xthread_main(void *arg)
{
    struct xthread *t = arg;
    struct xrun *x = t->x;

    for (;;) {
        pthread_barrier_wait(&x->start);
        if (x->done)
            break;
        t->n = 0;
        memset(t->last_version, 0, x->nids * sizeof *t->last_version);
        memset(t->strict, 0, x->nids * sizeof *t->strict);
        memset(t->seq, 0, x->nids * sizeof *t->seq);
        memset(t->last_logged, 0, x->nids * sizeof *t->last_logged);
        for (size_t i = 0; i < (size_t)x->nids * x->nw; i++)
            t->last_seq[i] = -1;
        if (t->writer) {
            writer_round(t);
            /* release: pairs with the readers' acquire load. */
            atomic_fetch_sub_explicit(&x->writers_left, 1, memory_order_release);
        } else {
            reader_round(t);
            if (x->handles)
                check_handles_at_rest(t);
        }
        pthread_barrier_wait(&x->end);
    }
    return NULL;
}

static void start_threads(struct xrun *x)
{
    unsigned nthreads = x->nw + x->nr;
    x->th = xcalloc(nthreads, sizeof *x->th);
    pthread_barrier_init(&x->start, NULL, nthreads + 1);
    pthread_barrier_init(&x->end, NULL, nthreads + 1);
    for (unsigned i = 0; i < nthreads; i++) {
        struct xthread *t = &x->th[i];
        t->x = x;
        t->writer = i < x->nw;
        t->index = t->writer ? i : i - x->nw;
        t->rng = rng_for(x->cfg->seed, 100 + i);
        t->last_version = xcalloc(x->nids, sizeof *t->last_version);
        t->strict = xcalloc(x->nids, 1);
        t->seq = xcalloc(x->nids, sizeof *t->seq);
        t->last_seq = xcalloc((size_t)x->nids * x->nw, sizeof *t->last_seq);
        t->last_logged = xcalloc(x->nids, sizeof *t->last_logged);
        t->own = xcalloc(x->nids, sizeof *t->own);
        start_thread(&t->tid, xthread_main, t);
    }
}

/* Handles mode: extra ids tracked and untracked in waves, so the table
 * grows and compacts under the handles all through each round. */
struct extra {
    struct xrun *x;
    unsigned index;
    pthread_t tid;
    struct rng rng;
    _Atomic bool *stop;
    uint64_t ops, grows, compactions;
};

static void *extra_main(void *arg)
{
    struct extra *e = arg;
    portreg_t *reg = e->x->reg;
    char b[ID_BUF];
    portreg_stats_t st0, st1;

    /* relaxed: says when to stop; the join orders the rest. */
    while (!atomic_load_explicit(e->stop, memory_order_relaxed) && !stopping()) {
        unsigned n = 64 + rng_below(&e->rng, 960);
        portreg_stats(reg, &st0);
        for (unsigned k = 0; k < n; k++) {
            size_t len = id_make(b, 'e', e->index, k);
            if (portreg_track(reg, b, len) != 0)
                die("track failed");
        }
        portreg_stats(reg, &st1);
        e->grows += st1.table_capacity > st0.table_capacity;
        for (unsigned k = 0; k < n; k++) {
            size_t len = id_make(b, 'e', e->index, k);
            if (portreg_untrack(reg, b, len, NULL) != 0)
                die("untrack failed");
        }
        portreg_stats(reg, &st0);
        e->compactions += st0.compactions != st1.compactions;
        e->ops += 2 * n;
    }
    return NULL;
}

/* The shared handles of this round's ids, one per id. */
static void open_shared(struct xrun *x)
{
    for (uint32_t i = 0; i < x->nids; i++) {
        int rc = portreg_handle_open(x->reg, x->ids[i].b, x->ids[i].len, &x->shared[i]);
        if (rc != 0)
            die("portreg_handle_open: %s", portreg_strerror(rc));
    }
}

/* After a round's verification: the shared handles read the final states,
 * then they are closed. */
static void close_shared(struct xrun *x, const struct verify *v)
{
    char nb[48];
    for (uint32_t i = 0; i < x->nids; i++) {
        portreg_state_t s;
        if (portreg_handle_get(x->shared[i], &s) != 0)
            die("portreg_handle_get failed");
        if (!same_state(s, v->final[i]))
            fail("handle",
                 "id %s, at the end of the round: the shared handle reads %s port %u v%u, "
                 "the id reads %s port %u v%u (seed %llu)",
                 xid_name(x, i, nb, sizeof nb), status_name(s.status), s.port, s.version,
                 status_name(v->final[i].status), v->final[i].port, v->final[i].version,
                 (unsigned long long)x->cfg->seed);
        portreg_handle_close(x->shared[i]);
        x->shared[i] = NULL;
    }
}

static unsigned run_exchange(const struct cfg *cfg, bool handles)
{
    struct xrun x = {.cfg = cfg,
                     .nw = cfg->x_writers,
                     .nr = cfg->x_readers,
                     .handles = handles,
                     .name = handles ? "handles" : "exchange"};
    unsigned before = atomic_load(&stress_failures);
    unsigned nrounds = handles ? cfg->h_rounds : cfg->x_rounds;
    unsigned ne = handles ? cfg->h_extra : 0;
    double t0 = now_s();

    x.nids = cfg->x_hot + cfg->x_cold;
    x.k = 65535u / x.nw;
    if (x.nw == 0 || x.nw > 256 || x.nr == 0 || cfg->x_hot == 0 || cfg->x_cold == 0)
        die("%s: needs 1..256 writers, readers, hot and cold ids", x.name);
    if (cfg->x_ops_per_round >= x.k)
        die("%s: %u ops per round would repeat ports with %u writers (limit %u)", x.name,
            cfg->x_ops_per_round, x.nw, x.k - 1);
    mem_reset_peak();
    x.reg = portreg_create(NULL);
    if (x.reg == NULL)
        die("portreg_create failed");
    x.ids = xcalloc(x.nids, sizeof *x.ids);
    x.shared = xcalloc(x.nids, sizeof *x.shared);
    start_threads(&x);
    portreg_stats_t st0;
    portreg_stats(x.reg, &st0);
    _Atomic bool stop_extra = false;
    struct extra *ex = xcalloc(ne ? ne : 1, sizeof *ex);
    for (unsigned i = 0; i < ne; i++) {
        ex[i] = (struct extra){.x = &x, .index = i, .rng = rng_for(cfg->seed, 600 + i)};
        ex[i].stop = &stop_extra;
        start_thread(&ex[i].tid, extra_main, &ex[i]);
    }

    struct verify v = {0};
    unsigned rounds = 0;
    for (uint32_t r = 0; r < nrounds && !stopping(); r++) {
        x.round = r;
        for (uint32_t i = 0; i < x.nids; i++)
            x.ids[i].len = id_make(x.ids[i].b, i < cfg->x_hot ? 'h' : 'c', r,
                                   i < cfg->x_hot ? i : i - cfg->x_hot);
        if (handles)
            open_shared(&x);
        /* relaxed: the start barrier publishes it. */
        atomic_store_explicit(&x.writers_left, x.nw, memory_order_relaxed);
        pthread_barrier_wait(&x.start); /* the ids and the counter are ready */
        pthread_barrier_wait(&x.end);   /* every log is complete */
        verify_round(&x, &v);
        if (handles)
            close_shared(&x, &v);
        /* Clear the round away: later iterations must not show it, and its
         * dead slots drive compaction. */
        for (uint32_t i = 0; i < x.nids; i++)
            portreg_untrack(x.reg, x.ids[i].b, x.ids[i].len, NULL);
        rounds++;
    }
    x.done = true;
    pthread_barrier_wait(&x.start);
    atomic_store_explicit(&stop_extra, true, memory_order_relaxed);
    uint64_t eops = 0, egrows = 0, ecompactions = 0;
    for (unsigned i = 0; i < ne; i++) {
        join_thread(ex[i].tid);
        eops += ex[i].ops;
        egrows += ex[i].grows;
        ecompactions += ex[i].compactions;
    }
    free(ex);

    uint64_t wops = 0, rops = 0, rlogged = 0, conflicts = 0, hreads = 0, opens = 0;
    for (unsigned i = 0; i < x.nw + x.nr; i++) {
        struct xthread *t = &x.th[i];
        join_thread(t->tid);
        *(t->writer ? &wops : &rops) += t->ops;
        rlogged += t->logged;
        conflicts += t->conflicts;
        hreads += t->handle_reads;
        opens += t->opens;
        for (uint32_t id = 0; id < x.nids; id++)
            portreg_handle_close(t->own[id]); /* only after a failure */
        free(t->own);
        free(t->log);
        free(t->last_version);
        free(t->strict);
        free(t->seq);
        free(t->last_seq);
        free(t->last_logged);
    }
    for (uint32_t id = 0; id < x.nids; id++)
        portreg_handle_close(x.shared[id]); /* only after a failure */
    portreg_stats_t st;
    portreg_stats(x.reg, &st);
    portreg_destroy(x.reg);
    verify_free(&v);
    pthread_barrier_destroy(&x.start);
    pthread_barrier_destroy(&x.end);
    free(x.th);
    free(x.ids);
    free(x.shared);

    double secs = now_s() - t0;
    struct mem m = mem_now();
    if (x.changes == 0 || x.observations == 0)
        fail("chain", "nothing was checked (%llu changes, %llu observations)",
             (unsigned long long)x.changes, (unsigned long long)x.observations);
    if (handles && !stopping() && (hreads == 0 || opens == 0 || ecompactions == 0 || egrows == 0))
        fail("handle",
             "proved too little: %llu handle reads, %llu opens, %llu extra waves "
             "overlapping a compaction and %llu a grow",
             (unsigned long long)hreads, (unsigned long long)opens,
             (unsigned long long)ecompactions, (unsigned long long)egrows);
    unsigned found = atomic_load(&stress_failures) - before;
    const char *n = x.name;
    char extra[48] = "";
    if (handles)
        snprintf(extra, sizeof extra, ", %u extra-id churners", ne);
    printf("%s: %s seed=%llu threads=%u (%u writers, %u readers%s) rounds=%u ids=%u "
           "(%u hot, %u cold) writer_ops=%llu reader_ops=%llu\n",
           n, found ? "FAIL" : "PASS", (unsigned long long)cfg->seed, x.nw + x.nr + ne, x.nw, x.nr,
           extra, rounds, x.nids, cfg->x_hot, cfg->x_cold, (unsigned long long)wops,
           (unsigned long long)rops);
    printf("%s:   chain: %llu applied changes, %llu replaced states, longest chain %llu, "
           "%llu incarnations, %llu conditional conflicts\n",
           n, (unsigned long long)x.changes, (unsigned long long)x.replaced,
           (unsigned long long)x.max_chain, (unsigned long long)x.incarnations,
           (unsigned long long)conflicts);
    printf("%s:   version/monotonic: %llu logged observations checked against the chains "
           "(%llu by readers)\n",
           n, (unsigned long long)x.observations, (unsigned long long)rlogged);
    if (handles)
        printf("%s:   %llu reads through handles (mixed with id reads), %llu opens besides "
               "%u shared per round, every handle equal to its id at rest; %llu extra-id "
               "ops, %llu waves overlapping a compaction, %llu a grow\n",
               n, (unsigned long long)hreads, (unsigned long long)opens, x.nids,
               (unsigned long long)eops, (unsigned long long)ecompactions,
               (unsigned long long)egrows);
    printf("%s:   registry at end: %zu slots, %llu compactions, %llu changes; %.1f s, "
           "%.0f ops/s, peak_rss=%zu KiB\n",
           n, st.slots, (unsigned long long)(st.compactions - st0.compactions),
           (unsigned long long)st.changes, secs, (double)(wops + rops) / secs, m.hwm_kib);
    return found;
}

unsigned check_exchange(const struct cfg *cfg)
{
    return run_exchange(cfg, false);
}

/* The exchange check with readers through handles, which must read
 * exactly what the id does: three readers in four mix handle reads
 * (get, lookup, wait) with id reads, against the same chains; each round
 * opens a handle on every id, readers open and close handles of their
 * own, writers untrack and re-track the ids, and extra threads churn
 * other ids so the table grows and compacts all the while. At rest, every
 * handle must read what its id does. */
unsigned check_handles(const struct cfg *cfg)
{
    return run_exchange(cfg, true);
}
