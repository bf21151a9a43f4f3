/*
 * The exchange check after each round: every thread's log, merged per id,
 * against the final state of the id.
 *
 * Each state an id has is replaced by exactly one applied change, or it is
 * the final state. Every applied change except a track returns the state
 * it replaced, and a track replaces only an untracked state. So, per id:
 * - tracked states (unique versions) are each returned as prev at most
 *   once, and the final one never;
 * - bound states: every written port is returned as prev at most once, and
 *   every written port but the final one exactly once;
 * - pending states come from tracks (T, unknown) and applied unbinds, and
 *   are replaced or final: T = #prev pending + [final pending] - #unbinds,
 *   and 0 <= T <= #track calls;
 * - untracked states: the first one plus one per applied untrack, each
 *   ended by one register or track, except a final untracked one:
 *   #registers from untracked + T = #untracks + 1 - [final untracked].
 * And every state anyone observed is among the replaced and final ones.
 */
#include <stdlib.h>
#include <string.h>

#include "exchange.h"

/* A tracked state some change replaced, and who did it. */
struct chg {
    uint32_t version;
    uint16_t port;
    uint16_t writer;
    uint8_t status;
    uint8_t kind;
};

static const char *const kind_name[] = {"register", "unbind", "untrack", "track", "read"};
static const char *const how_name[] = {"get",  "lookup",     "iteration",     "snapshot",
                                       "wait", "handle get", "handle lookup", "handle wait"};

static uint64_t state_key(unsigned status, uint16_t port, uint32_t version)
{
    return (uint64_t)version << 24 | (uint64_t)status << 16 | port;
}

static int cmp_chg(const void *a, const void *b)
{
    const struct chg *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

static int cmp_u16(const void *a, const void *b)
{
    uint16_t x = *(const uint16_t *)a, y = *(const uint16_t *)b;
    return (x > y) - (x < y);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static bool has_u64(const uint64_t *v, size_t n, uint64_t key)
{
    return bsearch(&key, v, n, sizeof *v, cmp_u64) != NULL;
}

/* The scratch arrays of one id, carved out of v->scratch. */
struct idwork {
    struct chg *chg;
    uint16_t *ports;
    uint8_t *returned;
    uint64_t *keys;
};

static struct idwork scratch(struct verify *v, size_t n)
{
    size_t per = sizeof(struct chg) + sizeof(uint16_t) + 1 + sizeof(uint64_t);
    if (v->scratch_cap < n) {
        v->scratch_cap = n * 2;
        v->scratch = xrealloc(v->scratch, v->scratch_cap, per);
    }
    struct idwork w;
    w.keys = v->scratch;
    w.chg = (struct chg *)(w.keys + v->scratch_cap);
    w.ports = (uint16_t *)(w.chg + v->scratch_cap);
    w.returned = (uint8_t *)(w.ports + v->scratch_cap);
    return w;
}

static void verify_id(struct xrun *x, struct verify *v, uint32_t id)
{
    const struct wentry *w = v->w + v->wstart[id];
    size_t nw = v->wstart[id + 1] - v->wstart[id];
    const struct obs *o = v->o + v->ostart[id];
    size_t no = v->ostart[id + 1] - v->ostart[id];
    portreg_state_t fin = v->final[id];
    struct idwork s = scratch(v, nw + 1);
    unsigned long long seed = (unsigned long long)x->cfg->seed;
    char nb[48];
    const char *name = xid_name(x, id, nb, sizeof nb);
    size_t nc = 0, np = 0, applied = 0;
    long tracks = 0, unbinds = 0, untracks = 0, from_untracked = 0, prev_pending = 0;

    for (size_t i = 0; i < nw; i++) {
        const struct wentry *e = &w[i];
        if (e->kind == W_REG)
            s.ports[np++] = e->port;
        if (e->kind == W_TRACK)
            tracks++;
        if (!e->applied)
            continue;
        applied++;
        unbinds += e->kind == W_UNBIND;
        untracks += e->kind == W_UNTRACK;
        if (e->pstatus == PORTREG_UNTRACKED) {
            if (e->kind != W_REG)
                fail("chain", "id %s: writer %u's %s changed an untracked state", name, e->writer,
                     kind_name[e->kind]);
            from_untracked++;
            continue;
        }
        prev_pending += e->pstatus == PORTREG_PENDING;
        s.chg[nc++] = (struct chg){e->pversion, e->pport, e->writer, e->pstatus, e->kind};
    }
    x->changes += applied;
    x->replaced += nc;
    if (applied > x->max_chain)
        x->max_chain = applied;
    x->incarnations += (uint64_t)untracks + 1;

    /* Each tracked state is replaced at most once, and the final one never. */
    qsort(s.chg, nc, sizeof *s.chg, cmp_chg);
    for (size_t i = 1; i < nc; i++) {
        const struct chg *a = &s.chg[i - 1], *b = &s.chg[i];
        if (a->version == b->version)
            fail("chain",
                 "id %s: state v%u (%s, port %u) was replaced twice: by writer %u's %s "
                 "and by writer %u's %s (seed %llu)",
                 name, a->version, status_name(a->status), a->port, a->writer, kind_name[a->kind],
                 b->writer, kind_name[b->kind], seed);
    }
    if (fin.status != PORTREG_UNTRACKED) {
        struct chg key = {.version = fin.version};
        const struct chg *c = bsearch(&key, s.chg, nc, sizeof *s.chg, cmp_chg);
        if (c != NULL)
            fail("chain",
                 "id %s: final state v%u was already replaced by writer %u's %s "
                 "(seed %llu)",
                 name, fin.version, c->writer, kind_name[c->kind], seed);
    }

    /* Bound states: every written port is returned once, but the final. */
    qsort(s.ports, np, sizeof *s.ports, cmp_u16);
    memset(s.returned, 0, np);
    for (size_t i = 1; i < np; i++)
        if (s.ports[i] == s.ports[i - 1])
            fail("chain", "harness bug: id %s: port %u written twice", name, s.ports[i]);
    for (size_t i = 0; i < nc; i++) {
        if (s.chg[i].status != PORTREG_BOUND)
            continue;
        const uint16_t *p = bsearch(&s.chg[i].port, s.ports, np, sizeof *s.ports, cmp_u16);
        if (p == NULL)
            fail("chain",
                 "id %s: writer %u's %s returned previous port %u, which nobody wrote "
                 "(seed %llu)",
                 name, s.chg[i].writer, kind_name[s.chg[i].kind], s.chg[i].port, seed);
        else if (s.returned[p - s.ports]++ != 0)
            fail("chain", "id %s: port %u was returned as previous twice (seed %llu)", name, *p,
                 seed);
    }
    size_t lost = 0, first = 0;
    bool final_found = false;
    for (size_t i = 0; i < np; i++) {
        if (s.returned[i] != 0)
            continue;
        if (fin.status == PORTREG_BOUND && s.ports[i] == fin.port) {
            final_found = true;
        } else if (lost++ == 0) {
            first = i;
        }
    }
    if (lost != 0)
        fail("chain",
             "id %s: lost update: %zu written port(s) neither replaced by a later "
             "change nor final, e.g. port %u (writer %u's write #%u); final state "
             "%s port %u v%u (seed %llu)",
             name, lost, s.ports[first], (s.ports[first] - 1u) / x->k, (s.ports[first] - 1u) % x->k,
             status_name(fin.status), fin.port, fin.version, seed);
    if (fin.status == PORTREG_BOUND && !final_found)
        fail("chain", "id %s: final port %u is not a written port nobody replaced (seed %llu)",
             name, fin.port, seed);

    /* Pending and untracked states add up, incarnation by incarnation. */
    long fin_pending = fin.status == PORTREG_PENDING;
    long fin_untracked = fin.status == PORTREG_UNTRACKED;
    long t = prev_pending + fin_pending - unbinds;
    if (t < 0 || t > tracks)
        fail("chain",
             "id %s: pending states do not add up: %ld replaced, %ld final, %ld made "
             "by unbind, so %ld by %ld track calls (seed %llu)",
             name, prev_pending, fin_pending, unbinds, t, tracks, seed);
    else if (from_untracked + t != untracks + 1 - fin_untracked)
        fail("chain",
             "id %s: incarnations do not add up: %ld registers and %ld tracks left the "
             "untracked state, which %ld untracks entered (plus the first, %s final) "
             "(seed %llu)",
             name, from_untracked, t, untracks, fin_untracked ? "and" : "not", seed);

    /* Every observation is a state the id had: replaced, or final. */
    size_t nk = 0;
    for (size_t i = 0; i < nc; i++)
        s.keys[nk++] = state_key(s.chg[i].status, s.chg[i].port, s.chg[i].version);
    if (fin.status != PORTREG_UNTRACKED)
        s.keys[nk++] = state_key(fin.status, fin.port, fin.version);
    qsort(s.keys, nk, sizeof *s.keys, cmp_u64);
    for (size_t i = 0; i < nw; i++) {
        const struct wentry *e = &w[i];
        if (e->applied || e->kind == W_TRACK || e->pstatus == PORTREG_UNTRACKED)
            continue;
        x->observations++;
        if (!has_u64(s.keys, nk, state_key(e->pstatus, e->pport, e->pversion)))
            fail("version",
                 "id %s: writer %u's %s saw %s port %u v%u, a state the id never "
                 "had (seed %llu)",
                 name, e->writer, kind_name[e->kind], status_name(e->pstatus), e->pport,
                 e->pversion, seed);
    }
    for (size_t i = 0; i < no; i++) {
        x->observations++;
        if (o[i].status == PORTREG_UNTRACKED)
            continue;
        bool ok;
        if (o[i].how == H_LOOKUP || o[i].how == H_HLOOKUP) {
            /* No version: the port must be one a bound state had. */
            const uint16_t *p = bsearch(&o[i].port, s.ports, np, sizeof *s.ports, cmp_u16);
            ok = p != NULL &&
                 (s.returned[p - s.ports] != 0 || (fin.status == PORTREG_BOUND && fin.port == *p));
        } else {
            ok = has_u64(s.keys, nk, state_key(o[i].status, o[i].port, o[i].version));
        }
        if (!ok)
            fail("version",
                 "id %s: reader %u's %s saw %s port %u v%u, a state the id never "
                 "had (seed %llu)",
                 name, o[i].reader, how_name[o[i].how], status_name(o[i].status), o[i].port,
                 o[i].version, seed);
    }
}

/* Groups n entries of size elem by their leading uint32_t id (counting
 * sort), into *dst, with start[id] the first of each id. */
static void group(const struct xrun *x, bool writers, void **dst, size_t *cap, size_t *start)
{
    size_t elem = writers ? sizeof(struct wentry) : sizeof(struct obs);
    size_t total = 0;

    memset(start, 0, (x->nids + 1) * sizeof *start);
    for (unsigned i = 0; i < x->nw + x->nr; i++) {
        const struct xthread *t = &x->th[i];
        if (t->writer != writers)
            continue;
        for (size_t j = 0; j < t->n; j++) {
            uint32_t id;
            memcpy(&id, (const char *)t->log + j * elem, sizeof id);
            start[id + 1]++;
        }
        total += t->n;
    }
    for (unsigned id = 0; id < x->nids; id++)
        start[id + 1] += start[id];
    if (*cap < total) {
        *cap = total;
        *dst = xrealloc(*dst, total, elem);
    }
    size_t *pos = xcalloc(x->nids, sizeof *pos);
    memcpy(pos, start, x->nids * sizeof *pos);
    for (unsigned i = 0; i < x->nw + x->nr; i++) {
        const struct xthread *t = &x->th[i];
        if (t->writer != writers)
            continue;
        for (size_t j = 0; j < t->n; j++) {
            const char *e = (const char *)t->log + j * elem;
            uint32_t id;
            memcpy(&id, e, sizeof id);
            memcpy((char *)*dst + pos[id]++ * elem, e, elem);
        }
    }
    free(pos);
}

void verify_round(struct xrun *x, struct verify *v)
{
    if (v->final == NULL) {
        v->final = xcalloc(x->nids, sizeof *v->final);
        v->wstart = xcalloc(x->nids + 1, sizeof *v->wstart);
        v->ostart = xcalloc(x->nids + 1, sizeof *v->ostart);
    }
    for (uint32_t id = 0; id < x->nids; id++)
        if (portreg_get(x->reg, x->ids[id].b, x->ids[id].len, &v->final[id]) != 0)
            die("portreg_get failed");
    group(x, true, (void **)&v->w, &v->wcap, v->wstart);
    group(x, false, (void **)&v->o, &v->ocap, v->ostart);
    for (uint32_t id = 0; id < x->nids; id++)
        verify_id(x, v, id);
}

void verify_free(struct verify *v)
{
    free(v->w);
    free(v->o);
    free(v->wstart);
    free(v->ostart);
    free(v->final);
    free(v->scratch);
    memset(v, 0, sizeof *v);
}
