/*
 * libFuzzer target: every registry operation, checked against a plain model.
 *
 * Each input builds a fresh registry (small initial capacity, and often a
 * max_ids limit, both chosen by the input), up to 100 ids of 0..300
 * arbitrary bytes (ops_format.h says how), and runs a sequence of
 * operations on both the registry and a model that is just an array of
 * states. After every operation the two must agree on:
 *  - the return code, and *prev / *port / *state where one is returned;
 *  - every id's state through get, lookup, lookup_many (all ids in one
 *    call) and open handles; the count, the
 *    change counter and the statistics;
 *  - iteration and snapshot: exactly the tracked set, each once, with its
 *    state (the snapshot also sorted). An iteration may also run while the
 *    same thread changes ids (inserts, growth and compaction included):
 *    then every id tracked throughout must come once, and every entry must
 *    be an id that was tracked, in a state it had during the iteration.
 * Invalid ids (empty, longer than PORTREG_ID_MAX, NULL) give PORTREG_EINVAL
 * and change nothing.
 *
 * The registry allocates through a checking allocator (every free must
 * name the size it allocated) that the input can tell to fail: then only
 * operations that may allocate may return PORTREG_ENOMEM, only when an
 * allocation did fail, and they must change nothing. Operations that do
 * not insert (unbind, untrack, get, lookup, iteration) never fail for
 * lack of memory once the thread is attached; untrack's compaction is
 * optional and must fail silently.
 *
 * Versions are checked as the header promises them, not as numbers: a
 * change gives the id a version above every version the model ever saw
 * for it, untracked reads as 0, tracked never does, and a prev or a no-op
 * returns exactly the version last seen.
 *
 * max_ids: the table holds tracked ids, ids held by handles and untracked
 * ids not yet compacted away. The model knows the first two exactly and
 * keeps, per id, whether the table may still hold it (after an EFULL on
 * it, it cannot). So an insert must succeed while even the ids the table
 * may hold are fewer than max_ids, must fail with EFULL when the ids it
 * must hold already fill it, and may go either way in between (whether it
 * compacts first is the library's choice); an EFULL always finds the table
 * full. The statistics' slot count stays between the two bounds.
 *
 * Handles and max_ids are 0.3 features; FUZZ_OPS_HANDLES=0 and
 * FUZZ_OPS_MAX_IDS=0 build the target without them (handle operations
 * become no-ops, no limit is set).
 */
#include "portreg.h"

#include "ops_format.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_OPS_HANDLES
#define FUZZ_OPS_HANDLES 1
#endif
#ifndef FUZZ_OPS_MAX_IDS
#define FUZZ_OPS_MAX_IDS 1
#endif

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_ops: %s:%d: %s (op %zu)\n", __FILE__, __LINE__, #cond, op_no);   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Enough operations to grow, compact and fill a table; few enough that an
 * input runs in milliseconds. */
#define MAX_OPS 1000
/* Each operation checks the id it used; all ids are checked this often. */
#define FULL_CHECK_EVERY 16

struct input {
    const uint8_t *p;
    size_t n;
};

static uint8_t take(struct input *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

static uint16_t take16(struct input *in)
{
    uint16_t lo = take(in);
    return (uint16_t)(lo | take(in) << 8);
}

static uint32_t take32(struct input *in)
{
    uint32_t lo = take16(in);
    return lo | (uint32_t)take16(in) << 16;
}

struct id {
    char *bytes; /* exactly len bytes (ASan sees any over-read); NULL if passed as NULL */
    size_t len;
    bool valid;   /* what the library must accept */
    size_t canon; /* first valid id with the same bytes: where its state lives */
};

struct model {
    portreg_state_t st;
    uint32_t max_version; /* highest version ever seen for this id */
    bool maybe_held;      /* the table may hold a slot for it */
    unsigned pins;        /* handles open on it */
};

static size_t op_no;
static portreg_t *reg;
static size_t nids;
static struct id ids[OPS_MAX_NIDS];
static struct model model[OPS_MAX_NIDS];
static size_t tracked;
static uint64_t changes;
static size_t max_ids;
#if FUZZ_OPS_HANDLES
static portreg_handle_t *handle[OPS_HANDLES];
static size_t handle_id[OPS_HANDLES];
#endif

/* The registry's allocator. Blocks carry their size and a tag; fail_in
 * counts down to an allocation that fails (0: none). Atomic because the
 * reclaim thread frees too. */
struct block {
    size_t size;
    uint64_t tag;
    _Alignas(16) unsigned char data[];
};
#define BLOCK_TAG UINT64_C(0x6f70735f626c6b21)

static _Atomic long fail_in;
static _Atomic long failed; /* allocations failed on purpose so far */

static void *checked_alloc(void *ctx, size_t size)
{
    (void)ctx;
    long n = atomic_load(&fail_in);
    while (n > 0 && !atomic_compare_exchange_weak(&fail_in, &n, n - 1))
        ;
    if (n == 1) {
        atomic_fetch_add(&failed, 1);
        return NULL;
    }
    struct block *b = malloc(sizeof *b + size);
    CHECK(b != NULL);
    b->size = size;
    b->tag = BLOCK_TAG;
    return b->data;
}

static void checked_free(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    if (ptr == NULL)
        return;
    struct block *b = (struct block *)(void *)((unsigned char *)ptr - offsetof(struct block, data));
    CHECK(b->tag == BLOCK_TAG);
    CHECK(b->size == size);
    b->tag = 0;
    free(b);
}

/* Whether an allocation failed on purpose during the current operation. */
static long failed_before;

static bool alloc_failed(void)
{
    return atomic_load(&failed) != failed_before;
}

static bool same_state(portreg_state_t a, portreg_state_t b)
{
    return a.status == b.status && a.port == b.port && a.version == b.version;
}

static bool is_tracked(const struct model *m)
{
    return m->st.status != PORTREG_UNTRACKED;
}

/* A state out-pointer the library must overwrite: every field is junk. */
static portreg_state_t poisoned(void)
{
    portreg_state_t s;
    memset(&s, 0xa5, sizeof s);
    return s;
}

/* Ids the table must hold (tracked, or held by a handle), and ids it may
 * hold besides (untracked, no handle, not known to be gone). */
static void table_bounds(size_t *must, size_t *may)
{
    *must = *may = 0;
    for (size_t i = 0; i < nids; i++) {
        if (!ids[i].valid || ids[i].canon != i)
            continue;
        if (is_tracked(&model[i]) || model[i].pins > 0)
            ++*must;
        else if (model[i].maybe_held)
            ++*may;
    }
}

enum insert_outcome { MUST_SUCCEED, EITHER, MUST_BE_FULL };

/* What an operation that needs a slot for id c may return. Exact while
 * the model knows what the table holds; once untracked ids may still be
 * there, whether compaction runs before EFULL is the library's choice. */
static enum insert_outcome insert_outcome(size_t c)
{
    const struct model *m = &model[c];
    if (max_ids == 0 || is_tracked(m) || m->pins > 0)
        return MUST_SUCCEED;
    size_t must, may;
    table_bounds(&must, &may);
    if (must + may < max_ids)
        return MUST_SUCCEED;
    return may == 0 ? MUST_BE_FULL : EITHER;
}

/* Checks an insert's result against the outcome allowed before it; on
 * EFULL the table is full and does not hold the id. True if it went in. */
static bool insert_result(size_t c, enum insert_outcome allowed, int rc)
{
    if (rc == PORTREG_ENOMEM) {
        CHECK(alloc_failed());
        return false;
    }
    if (rc == PORTREG_EFULL) {
        /* A compaction that failed for lack of memory leaves no room. */
        CHECK(allowed != MUST_SUCCEED || (max_ids != 0 && alloc_failed()));
        portreg_stats_t st;
        CHECK(portreg_stats(reg, &st) == 0);
        CHECK(st.slots >= max_ids);
        model[c].maybe_held = false;
        return false;
    }
    CHECK(allowed != MUST_BE_FULL);
    CHECK(rc == 0);
    model[c].maybe_held = true;
    return true;
}

static void check_id(size_t c)
{
    const struct id *id = &ids[c];
    portreg_state_t got = poisoned();
    uint16_t port = 0;

    CHECK(portreg_get(reg, id->bytes, id->len, &got) == 0);
    CHECK(same_state(got, model[c].st));
    const bool bound = portreg_lookup(reg, id->bytes, id->len, &port);
    CHECK(bound == (model[c].st.status == PORTREG_BOUND));
    CHECK(!bound || port == model[c].st.port);
}

/* While an interleaved iteration runs: each id's states since it began
 * (the first at init, then one per change), and whether it was untracked
 * meanwhile. A nested step changes at most one id once. */
static bool iterating;
static size_t history_len[OPS_MAX_NIDS];
static portreg_state_t history[OPS_MAX_NIDS][OPS_ITER_STEPS + 1];
static bool untracked_meanwhile[OPS_MAX_NIDS];

/* The state of c changed: read the new one and hold it to the promise. */
static void changed(size_t c, portreg_status_t status, uint16_t port)
{
    struct model *m = &model[c];
    portreg_state_t got = poisoned();

    CHECK(portreg_get(reg, ids[c].bytes, ids[c].len, &got) == 0);
    CHECK(got.status == status);
    CHECK(got.port == port);
    if (status == PORTREG_UNTRACKED) {
        CHECK(got.version == 0);
    } else {
        CHECK(got.version > m->max_version);
        m->max_version = got.version;
    }
    if (is_tracked(m) != (status != PORTREG_UNTRACKED))
        tracked = status != PORTREG_UNTRACKED ? tracked + 1 : tracked - 1;
    m->st = got;
    changes++;
    if (iterating) {
        history[c][history_len[c]++] = got;
        untracked_meanwhile[c] = untracked_meanwhile[c] || status == PORTREG_UNTRACKED;
    }
}

static void check_handles(void)
{
#if FUZZ_OPS_HANDLES
    for (size_t h = 0; h < OPS_HANDLES; h++) {
        if (handle[h] == NULL)
            continue;
        const struct model *m = &model[handle_id[h]];
        portreg_state_t got = poisoned();
        uint16_t port = 0;
        CHECK(portreg_handle_get(handle[h], &got) == 0);
        CHECK(same_state(got, m->st));
        const bool bound = portreg_handle_lookup(handle[h], &port);
        CHECK(bound == (m->st.status == PORTREG_BOUND));
        CHECK(!bound || port == m->st.port);
    }
#endif
}

/* Handles, counters and statistics: after every operation. */
static void check_counters(void)
{
    check_handles();
    CHECK(portreg_count(reg) == tracked);
    CHECK(portreg_changes(reg) == changes);

    portreg_stats_t st;
    memset(&st, 0xa5, sizeof st);
    CHECK(portreg_stats(reg, &st) == 0);
    CHECK(st.tracked == tracked);
    CHECK(st.changes == changes);
    CHECK(st.table_capacity >= st.slots);
    CHECK(max_ids == 0 || st.slots <= max_ids);
    for (size_t i = 0; i < sizeof st.reserved / sizeof st.reserved[0]; i++)
        CHECK(st.reserved[i] == 0);
}

static void check_slots(void)
{
    portreg_stats_t st;
    size_t must, may;
    CHECK(portreg_stats(reg, &st) == 0);
    table_bounds(&must, &may);
    CHECK(st.slots >= must);
    CHECK(st.slots <= must + may);
}

/* Every id too: every few operations and at the end. */
/* portreg_lookup_many() on every id at once, invalid and repeated ones
 * included: each port as the model says (0 unless bound), nothing written
 * past the last. */
static void check_lookup_many(void)
{
    portreg_id_t req[OPS_MAX_NIDS];
    uint16_t ports[OPS_MAX_NIDS + 1];
    ptrdiff_t want = 0;
    for (size_t i = 0; i < nids; i++) {
        req[i] = (portreg_id_t){ids[i].bytes, ids[i].len};
        ports[i] = 0xa5a5;
        want += ids[i].valid && model[ids[i].canon].st.status == PORTREG_BOUND;
    }
    ports[nids] = 0x5a5a;
    CHECK(portreg_lookup_many(reg, req, nids, ports) == want);
    for (size_t i = 0; i < nids; i++) {
        const portreg_state_t *st = ids[i].valid ? &model[ids[i].canon].st : NULL;
        CHECK(ports[i] == (st != NULL && st->status == PORTREG_BOUND ? st->port : 0));
    }
    CHECK(ports[nids] == 0x5a5a);
}

static void check_all(void)
{
    for (size_t i = 0; i < nids; i++)
        if (ids[i].valid && ids[i].canon == i)
            check_id(i);
    check_lookup_many();
    check_counters();
    check_slots();
}

/* The model id with these bytes, or nids if none. */
static size_t find_id(const char *bytes, size_t len)
{
    for (size_t i = 0; i < nids; i++)
        if (ids[i].valid && ids[i].canon == i && ids[i].len == len &&
            memcmp(ids[i].bytes, bytes, len) == 0)
            return i;
    return nids;
}

/* The model id of an entry, checked to be one and to come only once. */
static size_t entry_id_once(const portreg_entry_t *e, bool *seen)
{
    CHECK(e->id != NULL);
    size_t c = find_id(e->id, e->id_len);
    CHECK(c < nids);
    CHECK(!seen[c]);
    seen[c] = true;
    return c;
}

/* An iteration or snapshot entry: a tracked model id, seen once. */
static void check_entry(const portreg_entry_t *e, bool *seen)
{
    size_t c = entry_id_once(e, seen);
    CHECK(is_tracked(&model[c]));
    CHECK(same_state(e->state, model[c].st));
}

static void do_iterate(void)
{
    bool seen[OPS_MAX_NIDS] = {false};
    size_t n = 0;
    portreg_iter_t it;
    portreg_entry_t e;

    portreg_iter_init(&it, reg);
    while (portreg_iter_next(&it, &e)) {
        check_entry(&e, seen);
        n++;
    }
    portreg_iter_fini(&it);
    CHECK(n == tracked);
}

static int entry_order(const portreg_entry_t *a, const portreg_entry_t *b)
{
    size_t n = a->id_len < b->id_len ? a->id_len : b->id_len;
    int c = memcmp(a->id, b->id, n);
    if (c != 0)
        return c;
    return (a->id_len > b->id_len) - (a->id_len < b->id_len);
}

static void do_snapshot(void)
{
    bool seen[OPS_MAX_NIDS] = {false};
    portreg_snapshot_t snap;

    CHECK(portreg_snapshot(reg, &snap) == 0);
    CHECK(snap.count == tracked);
    for (size_t i = 0; i < snap.count; i++) {
        check_entry(&snap.entries[i], seen);
        CHECK(i == 0 || entry_order(&snap.entries[i - 1], &snap.entries[i]) < 0);
    }
    portreg_snapshot_free(&snap);
}

static uint32_t expected_version(struct input *in, size_t c)
{
    uint8_t e = take(in);
    uint32_t current = c < nids ? model[c].st.version : 0;
    switch (e % 4) {
    case OPS_EXPECT_CURRENT:
        return current;
    case OPS_EXPECT_ZERO:
        return 0;
    case OPS_EXPECT_ABOVE:
        return current + 1 + (e >> 2);
    default:
        return take32(in);
    }
}

static void do_track(const struct id *id)
{
    int rc = portreg_track(reg, id->bytes, id->len);
    if (!id->valid) {
        CHECK(rc == PORTREG_EINVAL);
        return;
    }
    const size_t c = id->canon;
    if (is_tracked(&model[c])) {
        CHECK(rc == 0);
        return;
    }
    if (insert_result(c, insert_outcome(c), rc))
        changed(c, PORTREG_PENDING, 0);
}

/* register and register_if; conditional says whether expect applies. */
static void do_register(const struct id *id, bool want_prev, uint16_t port, bool conditional,
                        uint32_t expect)
{
    portreg_state_t prev = poisoned();
    portreg_state_t *pp = want_prev ? &prev : NULL;
    const size_t c = id->canon;
    const enum insert_outcome allowed = id->valid ? insert_outcome(c) : MUST_SUCCEED;
    int rc = conditional ? portreg_register_if(reg, id->bytes, id->len, port, expect, pp)
                         : portreg_register(reg, id->bytes, id->len, port, pp);
    if (!id->valid) {
        CHECK(rc == PORTREG_EINVAL);
        return;
    }
    if (port == 0) {
        CHECK(rc == PORTREG_ERANGE);
        return;
    }
    const portreg_state_t old = model[c].st;
    if (conditional && old.version != expect) {
        CHECK(rc == PORTREG_ECONFLICT);
        CHECK(!want_prev || same_state(prev, old));
        return;
    }
    if (!is_tracked(&model[c]) && !insert_result(c, allowed, rc))
        return;
    CHECK(rc == 0);
    CHECK(!want_prev || same_state(prev, old));
    changed(c, PORTREG_BOUND, port);
}

static void do_unbind(const struct id *id, bool want_prev)
{
    portreg_state_t prev = poisoned();
    int rc = portreg_unbind(reg, id->bytes, id->len, want_prev ? &prev : NULL);
    if (!id->valid) {
        CHECK(rc == PORTREG_EINVAL);
        return;
    }
    const size_t c = id->canon;
    const portreg_state_t old = model[c].st;
    CHECK(rc == 0);
    CHECK(!want_prev || same_state(prev, old));
    if (old.status == PORTREG_BOUND)
        changed(c, PORTREG_PENDING, 0);
}

static void do_untrack(const struct id *id, bool want_prev, bool conditional, uint32_t expect)
{
    portreg_state_t prev = poisoned();
    portreg_state_t *pp = want_prev ? &prev : NULL;
    int rc = conditional ? portreg_untrack_if(reg, id->bytes, id->len, expect, pp)
                         : portreg_untrack(reg, id->bytes, id->len, pp);
    if (!id->valid) {
        CHECK(rc == PORTREG_EINVAL);
        return;
    }
    const size_t c = id->canon;
    const portreg_state_t old = model[c].st;
    if (conditional && old.version != expect) {
        CHECK(rc == PORTREG_ECONFLICT);
        CHECK(!want_prev || same_state(prev, old));
        return;
    }
    CHECK(rc == 0);
    CHECK(!want_prev || same_state(prev, old));
    if (is_tracked(&model[c]))
        changed(c, PORTREG_UNTRACKED, 0);
}

static void do_get(const struct id *id, bool null_state)
{
    portreg_state_t got = poisoned();
    int rc = portreg_get(reg, id->bytes, id->len, null_state ? NULL : &got);
    if (!id->valid || null_state) {
        CHECK(rc == PORTREG_EINVAL);
        return;
    }
    CHECK(rc == 0);
    CHECK(same_state(got, model[id->canon].st));
}

static void do_lookup(const struct id *id, bool null_port)
{
    uint16_t port = 0xa5a5;
    bool bound = portreg_lookup(reg, id->bytes, id->len, null_port ? NULL : &port);
    if (!id->valid) {
        CHECK(!bound);
        CHECK(port == 0xa5a5);
        return;
    }
    const portreg_state_t *st = &model[id->canon].st;
    CHECK(bound == (st->status == PORTREG_BOUND));
    CHECK(null_port || port == (bound ? st->port : 0xa5a5));
}

static void do_decode_and_register(const struct id *id, uint8_t who, struct input *in)
{
    uint8_t body[255];
    const uint8_t *arg = body;
    size_t len = take(in);
    if (len == 0xff) {
        arg = NULL;
        len = (who >> 6) & 1;
    } else {
        for (size_t i = 0; i < len; i++)
            body[i] = take(in);
    }
    uint16_t want = 0, port = 0xa5a5;
    const int decoded =
        arg == NULL && len > 0 ? PORTREG_EINVAL : portreg_decode_port(arg, len, &want);
    const size_t c = id->canon;
    const enum insert_outcome allowed = id->valid ? insert_outcome(c) : MUST_SUCCEED;

    int rc =
        portreg_decode_and_register(reg, id->bytes, id->len, arg, len, (who & 0x80) ? NULL : &port);
    if (!id->valid) {
        CHECK(rc == PORTREG_EINVAL);
        return;
    }
    if (decoded != 0) {
        CHECK(rc == decoded);
        return;
    }
    if (!is_tracked(&model[c]) && !insert_result(c, allowed, rc))
        return;
    CHECK(rc == 0);
    CHECK((who & 0x80) || port == want);
    changed(c, PORTREG_BOUND, want);
}

#if FUZZ_OPS_HANDLES
static void handle_drop(size_t h)
{
    portreg_handle_close(handle[h]);
    model[handle_id[h]].pins--;
    handle[h] = NULL;
}

static void do_handle_open(size_t h, const struct id *id)
{
    if (handle[h] != NULL)
        handle_drop(h);
    portreg_handle_t *out = NULL;
    const size_t c = id->canon;
    const enum insert_outcome allowed = id->valid ? insert_outcome(c) : MUST_SUCCEED;
    int rc = portreg_handle_open(reg, id->bytes, id->len, &out);
    if (!id->valid) {
        CHECK(rc == PORTREG_EINVAL);
        return;
    }
    if (!insert_result(c, allowed, rc))
        return;
    CHECK(out != NULL);
    handle[h] = out;
    handle_id[h] = c;
    model[c].pins++;
    size_t len = 0;
    const char *bytes = portreg_handle_id(out, &len);
    CHECK(bytes != NULL && len == ids[c].len && memcmp(bytes, ids[c].bytes, len) == 0);
}

static void do_handle_read(size_t h, bool get, bool null_out)
{
    const portreg_handle_t *hd = handle[h];
    if (get) {
        portreg_state_t got = poisoned();
        int rc = portreg_handle_get(hd, null_out ? NULL : &got);
        if (hd == NULL || null_out) {
            CHECK(rc == PORTREG_EINVAL);
            return;
        }
        CHECK(rc == 0);
        CHECK(same_state(got, model[handle_id[h]].st));
        return;
    }
    uint16_t port = 0xa5a5;
    bool bound = portreg_handle_lookup(hd, null_out ? NULL : &port);
    if (hd == NULL) {
        CHECK(!bound);
        return;
    }
    const portreg_state_t *st = &model[handle_id[h]].st;
    CHECK(bound == (st->status == PORTREG_BOUND));
    CHECK(null_out || port == (bound ? st->port : 0xa5a5));
}

static void do_handle_close(size_t h)
{
    if (handle[h] != NULL)
        handle_drop(h);
    else
        portreg_handle_close(NULL);
}
#endif

/* An entry of an iteration that runs beside changes (see the top). */
static void check_entry_meanwhile(const portreg_entry_t *e, bool *seen)
{
    size_t c = entry_id_once(e, seen);
    CHECK(e->state.status != PORTREG_UNTRACKED);
    bool had = false;
    for (size_t k = 0; k < history_len[c]; k++)
        had = had || same_state(history[c][k], e->state);
    CHECK(had);
}

static void do_iterate_meanwhile(struct input *in)
{
    bool seen[OPS_MAX_NIDS] = {false}, tracked_at_init[OPS_MAX_NIDS];
    portreg_iter_t it;
    portreg_entry_t e;

    for (size_t i = 0; i < nids; i++) {
        history[i][0] = model[i].st;
        history_len[i] = 1;
        untracked_meanwhile[i] = false;
        tracked_at_init[i] = ids[i].valid && ids[i].canon == i && is_tracked(&model[i]);
    }
    iterating = true;
    portreg_iter_init(&it, reg);
    bool more = true;
    for (int step = 0; more && step < OPS_ITER_STEPS; step++) {
        const uint8_t b = take(in);
        if (b & 1) {
            more = portreg_iter_next(&it, &e);
            if (more)
                check_entry_meanwhile(&e, seen);
            continue;
        }
        const struct id *id = &ids[take(in) % nids];
        switch ((b >> 1) % 4) {
        case 0:
            do_track(id);
            break;
        case 1:
            do_register(id, true, (uint16_t)(1 + b), false, 0);
            break;
        case 2:
            do_unbind(id, true);
            break;
        default:
            do_untrack(id, true, false, 0);
            break;
        }
    }
    while (more && (more = portreg_iter_next(&it, &e)))
        check_entry_meanwhile(&e, seen);
    portreg_iter_fini(&it);
    iterating = false;
    for (size_t i = 0; i < nids; i++)
        CHECK(!tracked_at_init[i] || untracked_meanwhile[i] || seen[i]);
}

static void make_id(struct input *in, size_t i)
{
    char buf[OPS_ID_LEN_LIMIT];
    size_t len = 0;
    const uint8_t mode = take(in);
    int kind = mode & 3;
    const struct id *from = NULL;

    if (i == 0 && (kind == OPS_ID_FLIP || kind == OPS_ID_RESIZE))
        kind = OPS_ID_LITERAL;
    if (kind == OPS_ID_FLIP || kind == OPS_ID_RESIZE) {
        from = &ids[take(in) % i];
        len = from->len;
        if (from->bytes != NULL)
            memcpy(buf, from->bytes, len);
        else
            memset(buf, 0, len);
    }
    switch (kind) {
    case OPS_ID_LITERAL:
        len = take(in);
        for (size_t k = 0; k < len; k++)
            buf[k] = (char)take(in);
        break;
    case OPS_ID_RUN:
        len = take16(in) % (OPS_ID_LEN_LIMIT + 1);
        memset(buf, take(in), len);
        break;
    case OPS_ID_FLIP: {
        const uint8_t pos = take(in), x = take(in);
        if (len > 0)
            buf[pos % len] ^= (char)x;
        break;
    }
    default: {
        size_t to = take16(in) % (OPS_ID_LEN_LIMIT + 1);
        const uint8_t fill = take(in);
        if (to > len)
            memset(buf + len, fill, to - len);
        len = to;
        break;
    }
    }

    struct id *id = &ids[i];
    id->len = len;
    id->bytes = NULL;
    if (mode < OPS_NULL_ID_MODE) {
        id->bytes = malloc(len > 0 ? len : 1);
        CHECK(id->bytes != NULL);
        memcpy(id->bytes, buf, len);
    }
    id->valid = id->bytes != NULL && len >= 1 && len <= PORTREG_ID_MAX;
    id->canon = i;
    if (id->valid) {
        size_t j = find_id(id->bytes, len);
        if (j < i)
            id->canon = j;
    }
}

static void setup(struct input *in)
{
    const uint8_t flags = take(in), max = take(in);
    const uint16_t seed = take16(in);
    portreg_options_t opts;

    portreg_options_init(&opts);
    atomic_store(&fail_in, 0);
    opts.alloc = checked_alloc;
    opts.free = checked_free;
    opts.initial_capacity = flags & 31;
    opts.no_membarrier = (flags >> 5) & 1;
    opts.no_reclaim_thread = !((flags >> 6) & 1);
    opts.hash_seed = 1 + (uint64_t)seed; /* never 0: runs must be reproducible */
    max_ids = 0;
#if FUZZ_OPS_MAX_IDS
    if (flags & 0x80)
        max_ids = 1 + max % OPS_MAX_IDS_RANGE;
    opts.max_ids = max_ids;
#else
    (void)max;
#endif
    reg = portreg_create(&opts);
    CHECK(reg != NULL);
    CHECK(portreg_thread_attach(reg) == 0);

    nids = 1 + take(in) % OPS_MAX_NIDS;
    memset(model, 0, sizeof model);
    for (size_t i = 0; i < nids; i++)
        make_id(in, i);
    tracked = 0;
    changes = 0;
#if FUZZ_OPS_HANDLES
    memset(handle, 0, sizeof handle);
#endif
}

static void teardown(void)
{
#if FUZZ_OPS_HANDLES
    for (size_t h = 0; h < OPS_HANDLES; h++)
        if (handle[h] != NULL)
            handle_drop(h);
#endif
    atomic_store(&fail_in, 0);
    portreg_destroy(reg);
    reg = NULL;
    for (size_t i = 0; i < nids; i++)
        free(ids[i].bytes);
}

/* Runs one operation; returns the model id it used, or nids if none. */
static size_t run_op(struct input *in)
{
    const uint8_t op = take(in) % OPS_COUNT, who = take(in);
    const struct id *id = &ids[(who & 0x7f) % nids];
    const bool null_out = who & 0x80;
    uint16_t port;
    uint32_t expect;

    switch (op) {
    case OPS_TRACK:
        do_track(id);
        break;
    case OPS_REGISTER:
        port = take16(in);
        do_register(id, !null_out, port, false, 0);
        break;
    case OPS_REGISTER_IF:
        port = take16(in);
        expect = expected_version(in, id->valid ? id->canon : nids);
        do_register(id, !null_out, port, true, expect);
        break;
    case OPS_UNBIND:
        do_unbind(id, !null_out);
        break;
    case OPS_UNTRACK:
        do_untrack(id, !null_out, false, 0);
        break;
    case OPS_UNTRACK_IF:
        expect = expected_version(in, id->valid ? id->canon : nids);
        do_untrack(id, !null_out, true, expect);
        break;
    case OPS_GET:
        do_get(id, null_out);
        break;
    case OPS_LOOKUP:
        do_lookup(id, null_out);
        break;
    case OPS_DECODE_AND_REGISTER:
        do_decode_and_register(id, who, in);
        break;
    case OPS_ITERATE:
        if (null_out)
            do_iterate_meanwhile(in);
        else
            do_iterate();
        break;
    case OPS_SNAPSHOT:
        do_snapshot();
        break;
#if FUZZ_OPS_HANDLES
    case OPS_HANDLE_OPEN:
        id = &ids[take(in) % nids];
        do_handle_open(who % OPS_HANDLES, id);
        break;
    case OPS_HANDLE_LOOKUP:
    case OPS_HANDLE_GET:
        do_handle_read(who % OPS_HANDLES, op == OPS_HANDLE_GET, (who >> 6) & 1);
        break;
    case OPS_HANDLE_CLOSE:
        do_handle_close(who % OPS_HANDLES);
        break;
#else
    case OPS_HANDLE_OPEN:
        take(in);
        break;
#endif
    case OPS_RECLAIM:
        CHECK(portreg_reclaim(reg) == 0);
        break;
    case OPS_FAIL_ALLOC:
        atomic_store(&fail_in, 1 + take(in) % 8);
        break;
    default:
        check_all(); /* OPS_STATS */
        break;
    }
    return id->valid ? id->canon : nids;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = {data, size};

    op_no = 0;
    setup(&in);
    check_all();
    while (in.n > 0 && op_no < MAX_OPS) {
        op_no++;
        failed_before = atomic_load(&failed);
        const size_t c = run_op(&in);
        if (c < nids)
            check_id(c);
        check_counters();
        if (op_no % FULL_CHECK_EVERY == 0 || alloc_failed())
            check_all();
    }
    check_all();
    do_iterate();
    do_snapshot();
    teardown();
    return 0;
}
