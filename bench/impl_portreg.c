/*
 * portreg itself, through its public API only:
 *
 *   portreg         portreg_lookup() on the id
 *   portreg-many    portreg_lookup_many() on the next 64 requests of the
 *                   stream at a time (the ids of the batch after it
 *                   prefetched, as the one-at-a-time loop prefetches
 *                   ids); its latency samples are a batch's time / 64.
 *   portreg-handle  portreg_handle_lookup() on a handle: each reader opens
 *                   one handle per id before its first window (untimed,
 *                   kept for the later windows of the same table) and looks
 *                   up through the handle of the id the loop picked, the
 *                   way a connection bound to one backend holds its handle.
 *                   Its own registry, so that the slots its handles keep
 *                   for absent ids do not change portreg's table.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portreg.h"

#include "loops.h"

static void *pr_create(size_t capacity)
{
    portreg_options_t o;
    portreg_options_init(&o);
    o.initial_capacity = capacity;
    o.hash_seed = BENCH_SEED; /* the same table layout in every run */
    return portreg_create(&o);
}

static void pr_destroy(void *inst)
{
    portreg_destroy(inst);
}

static size_t pr_bytes(void *inst)
{
    portreg_stats_t st;
    return portreg_stats(inst, &st) == 0 ? st.bytes : 0;
}

static void *pr_enter(void *inst)
{
    /* The per-thread record is allocated here, outside the timed window. */
    int rc = portreg_thread_attach(inst);
    if (rc != 0) {
        fprintf(stderr, "portreg_thread_attach: %s\n", portreg_strerror(rc));
        abort();
    }
    return NULL;
}

static void pr_leave(void *inst, void *tls)
{
    (void)inst;
    (void)tls;
}

static inline bool pr_lookup(void *inst, void *tls, const char *id, size_t len, uint16_t *port)
{
    (void)tls;
    return portreg_lookup(inst, id, len, port);
}

static inline void pr_change(void *inst, void *tls, const char *id, size_t len, enum bst_op op,
                             uint16_t port)
{
    (void)tls;
    int rc = 0;
    switch (op) {
    case BST_REGISTER:
        rc = portreg_register(inst, id, len, port, NULL);
        break;
    case BST_TRACK:
        rc = portreg_track(inst, id, len);
        break;
    case BST_UNTRACK:
        rc = portreg_untrack(inst, id, len, NULL);
        break;
    }
    if (rc != 0) {
        fprintf(stderr, "portreg: %s\n", portreg_strerror(rc));
        abort();
    }
}

static int pr_insert(void *inst, void *tls, const char *id, size_t len, uint16_t port)
{
    (void)tls;
    return portreg_register(inst, id, len, port, NULL);
}

static void pr_remove(void *inst, void *tls, const char *id, size_t len)
{
    (void)tls;
    portreg_untrack(inst, id, len, NULL);
}

static void pr_read(struct bench_thread *t)
{
    bench_read_loop(t, pr_lookup, bench_no_quiesce);
}

static void pr_write(struct bench_thread *t)
{
    bench_write_loop(t, pr_change, bench_no_quiesce);
}

static const struct bench_store pr_store = {"portreg", pr_create, pr_destroy, pr_bytes};

/* ---- portreg-many ---- */

#define PM_BATCH 64

static void pm_read(struct bench_thread *t)
{
    const struct bench_cell *c = t->cell;
    portreg_t *reg = t->inst;
    uint64_t ops = 0, hits = 0;
    size_t pos = (size_t)t->rng;
    portreg_id_t ids[PM_BATCH];
    uint16_t ports[PM_BATCH];

    for (unsigned i = 0; i < PM_BATCH; i++)
        __builtin_prefetch(bench_request(c, pos + i));
    while (!bench_stopped(c)) {
        for (unsigned b = 0; b < BENCH_BATCH / PM_BATCH; b++, pos += PM_BATCH) {
            for (unsigned i = 0; i < PM_BATCH; i++) {
                const bench_id_t *id = bench_request(c, pos + i);
                ids[i].id = id->p;
                ids[i].id_len = id->len;
                __builtin_prefetch(bench_request(c, pos + PM_BATCH + i));
            }
            uint64_t t0 = b == 0 ? bench_tsc_begin() : 0;
            ptrdiff_t bound = portreg_lookup_many(reg, ids, PM_BATCH, ports);
            if (b == 0)
                lat_add(t->hist, (bench_tsc_end() - t0) / PM_BATCH);
            if (bound < 0) {
                fprintf(stderr, "portreg_lookup_many: %s\n", portreg_strerror((int)bound));
                abort();
            }
            hits += (uint64_t)bound;
        }
        ops += BENCH_BATCH;
    }
    t->ops = ops;
    t->hits = hits;
}

/* ---- portreg-handle ---- */

#define PH_MAX_READERS 64

/* One reader's handles on ids[0 .. 2n): h[k] stands for ids[k]; the
 * handles on the absent ids [n, 2n) are opened only for cells that ask for
 * them. */
struct ph_set {
    const bench_id_t *ids;
    size_t n;
    bool absent_open;
    portreg_handle_t **h;
};

struct ph_store {
    portreg_t *reg;
    pthread_mutex_t lock;               /* sets, and one reader opening at a time */
    struct ph_set sets[PH_MAX_READERS]; /* by reader */
    struct bench_open_cost cost;        /* under lock */
};

/* A reader's view of its set. */
struct ph_reader {
    struct ph_store *st;
    uintptr_t ids; /* address of the cell's id array */
    portreg_handle_t *const *h;
};

static void *ph_create(size_t capacity)
{
    struct ph_store *st = calloc(1, sizeof *st);
    if (st == NULL)
        return NULL;
    st->reg = pr_create(capacity);
    if (st->reg == NULL) {
        free(st);
        return NULL;
    }
    pthread_mutex_init(&st->lock, NULL);
    return st;
}

static void ph_set_close(struct ph_set *set)
{
    for (size_t i = 0; i < 2 * set->n; i++)
        portreg_handle_close(set->h[i]);
    free(set->h);
    memset(set, 0, sizeof *set);
}

static void ph_destroy(void *inst)
{
    struct ph_store *st = inst;
    for (unsigned r = 0; r < PH_MAX_READERS; r++)
        ph_set_close(&st->sets[r]);
    pthread_mutex_destroy(&st->lock);
    portreg_destroy(st->reg);
    free(st);
}

static size_t ph_bytes(void *inst)
{
    return pr_bytes(((struct ph_store *)inst)->reg);
}

void bench_handle_open_cost(void *inst, struct bench_open_cost *out)
{
    struct ph_store *st = inst;
    pthread_mutex_lock(&st->lock);
    *out = st->cost;
    pthread_mutex_unlock(&st->lock);
}

static void *ph_enter(void *inst)
{
    struct ph_store *st = inst;
    pr_enter(st->reg);
    struct ph_reader *r = calloc(1, sizeof *r);
    if (r == NULL)
        abort();
    r->st = st;
    return r;
}

static void ph_leave(void *inst, void *tls)
{
    (void)inst;
    free(tls);
}

/* Opens handles on ids[from, to) into set->h[from, to); the caller holds
 * st->lock. */
static void ph_open_range(struct ph_store *st, struct ph_set *set, size_t from, size_t to, int kind)
{
    uint64_t t0 = bench_now_ns();
    for (size_t i = from; i < to; i++) {
        int rc = portreg_handle_open(st->reg, set->ids[i].p, set->ids[i].len, &set->h[i]);
        if (rc != 0) {
            fprintf(stderr, "portreg_handle_open: %s\n", portreg_strerror(rc));
            abort();
        }
    }
    st->cost.ns[kind] += bench_now_ns() - t0;
    st->cost.opens[kind] += to - from;
}

static void ph_prepare(struct bench_thread *t)
{
    struct ph_reader *r = t->tls;
    struct ph_store *st = r->st;
    const struct bench_cell *c = t->cell;
    size_t n = c->n_present;
    if (t->reader >= PH_MAX_READERS) {
        fputs("portreg-handle: too many readers\n", stderr);
        abort();
    }
    if (c->absent != c->present + n || c->n_absent != n)
        abort(); /* the layout struct bench_cell promises */
    struct ph_set *mine = &st->sets[t->reader];
    pthread_mutex_lock(&st->lock);
    /* Handles are kept for the table's later windows. */
    if (mine->ids != c->present || mine->n != n) {
        ph_set_close(mine);
        mine->h = calloc(2 * n, sizeof *mine->h);
        if (mine->h == NULL)
            abort();
        mine->ids = c->present;
        mine->n = n;
        ph_open_range(st, mine, 0, n, HANDLE_OPEN_TRACKED);
    }
    if (c->miss_per_1024 > 0 && !mine->absent_open) {
        bool held = false; /* does another reader's handle keep these slots? */
        for (unsigned i = 0; i < PH_MAX_READERS; i++)
            held |= st->sets[i].ids == c->present && st->sets[i].n == n && st->sets[i].absent_open;
        ph_open_range(st, mine, n, 2 * n, held ? HANDLE_OPEN_HELD : HANDLE_OPEN_NEW_SLOT);
        mine->absent_open = true;
    }
    pthread_mutex_unlock(&st->lock);
    r->ids = (uintptr_t)c->present;
    r->h = mine->h;
}

/* The handle that stands for the cell's id at id (present or absent). */
static inline portreg_handle_t *const *ph_handle_of(const struct ph_reader *r, const bench_id_t *id)
{
    return &r->h[((uintptr_t)id - r->ids) / sizeof *id];
}

static inline void ph_prefetch(void *tls, const bench_id_t *id)
{
    __builtin_prefetch(ph_handle_of(tls, id));
}

static inline bool ph_lookup(void *inst, void *tls, const char *id, size_t len, uint16_t *port)
{
    (void)inst;
    (void)len;
    const bench_id_t *e = (const bench_id_t *)(const void *)(id - offsetof(bench_id_t, p));
    return portreg_handle_lookup(*ph_handle_of(tls, e), port);
}

static void *ph_writer_reg(void *inst)
{
    return ((struct ph_store *)inst)->reg;
}

static inline void ph_change(void *inst, void *tls, const char *id, size_t len, enum bst_op op,
                             uint16_t port)
{
    pr_change(ph_writer_reg(inst), tls, id, len, op, port);
}

static int ph_insert(void *inst, void *tls, const char *id, size_t len, uint16_t port)
{
    return pr_insert(ph_writer_reg(inst), tls, id, len, port);
}

static void ph_remove(void *inst, void *tls, const char *id, size_t len)
{
    pr_remove(ph_writer_reg(inst), tls, id, len);
}

static void ph_read(struct bench_thread *t)
{
    bench_read_loop_prefetch(t, ph_lookup, bench_no_quiesce, ph_prefetch);
}

static void ph_write(struct bench_thread *t)
{
    bench_write_loop(t, ph_change, bench_no_quiesce);
}

static const struct bench_store ph_store = {"portreg (handles)", ph_create, ph_destroy, ph_bytes};

const struct bench_impl bench_impl_portreg_handle = {
    .name = "portreg-handle",
    .store = &ph_store,
    .workloads = WL_ALL,
    .thread_enter = ph_enter,
    .thread_leave = ph_leave,
    .reader_prepare = ph_prepare,
    .read_loop = ph_read,
    .write_loop = ph_write,
    .lookup = ph_lookup,
    .insert = ph_insert,
    .remove = ph_remove,
};

/* The same registry type as portreg; only the read loop differs. For the
 * instruction counts and the table check it looks up one id at a time. */
const struct bench_impl bench_impl_portreg_many = {
    .name = "portreg-many",
    .store = &pr_store,
    .workloads = WL_ALL,
    .thread_enter = pr_enter,
    .thread_leave = pr_leave,
    .read_loop = pm_read,
    .write_loop = pr_write,
    .lookup = pr_lookup,
    .insert = pr_insert,
    .remove = pr_remove,
};

const struct bench_impl bench_impl_portreg = {
    .name = "portreg",
    .store = &pr_store,
    .workloads = WL_ALL,
    .thread_enter = pr_enter,
    .thread_leave = pr_leave,
    .read_loop = pr_read,
    .write_loop = pr_write,
    .lookup = pr_lookup,
    .insert = pr_insert,
    .remove = pr_remove,
};
