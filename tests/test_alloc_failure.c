/* Allocation failure at every allocation point: the call reports
 * PORTREG_ENOMEM and the registry is exactly as before, or the call
 * succeeds in full. Nothing leaks either way. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portreg.h"
#include "testsupport.h"

/* Every registry here allocates through this one allocator: its countdown
 * picks the allocation that fails, its counters catch leaks. */
static struct counting fa;

static portreg_t *create(size_t capacity)
{
    portreg_options_t o;
    portreg_options_init(&o);
    counting_install(&fa, &o);
    o.initial_capacity = capacity;
    o.hash_seed = 7;
    return portreg_create(&o);
}

/* Everything observable about a registry, for before/after comparison. */
struct picture {
    portreg_snapshot_t snap;
    size_t count;
    uint64_t changes;
};

static struct picture picture(portreg_t *reg)
{
    struct picture p;
    cr_assert_eq(portreg_snapshot(reg, &p.snap), 0);
    p.count = portreg_count(reg);
    p.changes = portreg_changes(reg);
    return p;
}

static void assert_same(struct picture *a, struct picture *b)
{
    cr_assert_eq(a->count, b->count);
    cr_assert_eq(a->changes, b->changes);
    cr_assert_eq(a->snap.count, b->snap.count);
    for (size_t i = 0; i < a->snap.count; i++) {
        portreg_entry_t *x = &a->snap.entries[i], *y = &b->snap.entries[i];
        cr_assert_eq(x->id_len, y->id_len);
        cr_assert_eq(memcmp(x->id, y->id, x->id_len), 0);
        cr_assert_eq(memcmp(&x->state, &y->state, sizeof x->state), 0);
    }
}

struct scenario {
    const char *name;
    size_t capacity;
    void (*prepare)(portreg_t *reg);
    int (*op)(portreg_t *reg);
    void (*check_applied)(portreg_t *reg);
    bool on_new_thread; /* run op where the registry has no record yet */
};

struct op_call {
    const struct scenario *sc;
    portreg_t *reg;
    int rc;
};

static void *op_thread(void *arg)
{
    struct op_call *c = arg;
    c->rc = c->sc->op(c->reg);
    return NULL;
}

static int run_op(const struct scenario *sc, portreg_t *reg)
{
    if (!sc->on_new_thread)
        return sc->op(reg);
    struct op_call c = {sc, reg, 0};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, op_thread, &c), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    return c.rc;
}

/* Fails the 1st, 2nd, ... allocation the operation makes until it runs
 * without failing; returns how many failure points it walked. */
static int walk(const struct scenario *sc)
{
    for (long k = 1; k < 1000; k++) {
        atomic_store(&fa.fail_countdown, 0);
        portreg_t *reg = create(sc->capacity);
        cr_assert_not_null(reg);
        if (sc->prepare)
            sc->prepare(reg);
        struct picture before = picture(reg);

        atomic_store(&fa.failures, 0);
        atomic_store(&fa.fail_countdown, k);
        int rc = run_op(sc, reg);
        atomic_store(&fa.fail_countdown, 0);
        bool failed = atomic_load(&fa.failures) > 0;

        if (rc == PORTREG_ENOMEM) {
            cr_assert(failed, "%s: ENOMEM without a failed allocation", sc->name);
            struct picture after = picture(reg);
            assert_same(&before, &after);
            portreg_snapshot_free(&after.snap);
        } else {
            cr_assert_eq(rc, 0, "%s: failure point %ld gave %s", sc->name, k, portreg_err_name(rc));
            sc->check_applied(reg);
        }
        portreg_snapshot_free(&before.snap);
        /* The registry still works after the failure. */
        cr_assert_eq(portreg_register(reg, ID("after"), 1, NULL), 0);
        portreg_destroy(reg);
        cr_assert(counting_is_empty(&fa), "%s: leak or bad free at point %ld (%lld blocks left)",
                  sc->name, k, (long long)atomic_load(&fa.live_blocks));
        if (!failed)
            return (int)k - 1;
    }
    cr_assert_fail("%s: never succeeded", sc->name);
    return -1;
}

static void prepare_some(portreg_t *reg)
{
    cr_assert_eq(portreg_register(reg, ID("fbuild"), 8002, NULL), 0);
    cr_assert_eq(portreg_track(reg, ID("zccache")), 0);
}

static int op_track_new(portreg_t *reg)
{
    return portreg_track(reg, ID("newcomer"));
}

static void applied_track_new(portreg_t *reg)
{
    portreg_state_t s;
    cr_assert_eq(portreg_get(reg, ID("newcomer"), &s), 0);
    cr_assert_eq(s.status, PORTREG_PENDING);
}

static int op_register_new(portreg_t *reg)
{
    portreg_state_t prev;
    int rc = portreg_register(reg, ID("newcomer"), 4000, &prev);
    if (rc == 0)
        cr_assert_eq(prev.status, PORTREG_UNTRACKED);
    return rc;
}

static void applied_register_new(portreg_t *reg)
{
    uint16_t port = 0;
    cr_assert(portreg_lookup(reg, ID("newcomer"), &port));
    cr_assert_eq(port, 4000);
}

Test(alloc_failure, first_call_on_a_thread_fails_cleanly)
{
    /* No prepare: the thread's epoch record is the first allocation. */
    struct scenario sc = {"first call", 0, NULL, op_register_new, applied_register_new, true};
    cr_assert_geq(walk(&sc), 2, "record + slot at least");
}

Test(alloc_failure, track_of_a_new_id_fails_cleanly)
{
    struct scenario sc = {"track", 0, prepare_some, op_track_new, applied_track_new, false};
    cr_assert_geq(walk(&sc), 1);
}

Test(alloc_failure, register_of_a_new_id_fails_cleanly)
{
    struct scenario sc = {"register",           0,    prepare_some, op_register_new,
                          applied_register_new, false};
    cr_assert_geq(walk(&sc), 1);
}

/* 64 ids fit before the first grow at the default capacity. */
static void prepare_full(portreg_t *reg)
{
    char id[16];
    portreg_stats_t st;
    cr_assert_eq(portreg_stats(reg, &st), 0);
    size_t cap = st.table_capacity;
    for (size_t i = 0; i < cap / 2; i++) {
        int n = snprintf(id, sizeof id, "full-%zu", i);
        cr_assert_eq(portreg_track(reg, id, (size_t)n), 0);
    }
    cr_assert_eq(portreg_stats(reg, &st), 0);
    cr_assert_eq(st.table_capacity, cap, "not grown yet");
}

static void applied_register_grown(portreg_t *reg)
{
    applied_register_new(reg);
    cr_assert_eq(portreg_count(reg), 65);
}

Test(alloc_failure, register_that_grows_the_table_fails_cleanly)
{
    struct scenario sc = {"grow", 0, prepare_full, op_register_new, applied_register_grown, false};
    cr_assert_geq(walk(&sc), 2, "slot + new map");
}

/* Untracked ids pile up until the next untrack compacts them. */
static void prepare_compaction(portreg_t *reg)
{
    char id[16];
    for (int i = 0; i < 200; i++) {
        int n = snprintf(id, sizeof id, "dead-%d", i);
        cr_assert_eq(portreg_track(reg, id, (size_t)n), 0);
    }
    cr_assert_eq(portreg_register(reg, ID("survivor"), 7, NULL), 0);
    /* Leave compaction to the op: untrack all but one with allocations
     * failing from the start would be too coarse, so untrack here with a
     * good allocator and hold the last one back. */
    for (int i = 0; i < 199; i++) {
        int n = snprintf(id, sizeof id, "dead-%d", i);
        cr_assert_eq(portreg_untrack(reg, id, (size_t)n, NULL), 0);
    }
}

static int op_untrack_compacting(portreg_t *reg)
{
    portreg_stats_t before, after;
    cr_assert_eq(portreg_stats(reg, &before), 0);
    int rc = portreg_untrack(reg, ID("dead-199"), NULL);
    cr_assert_eq(portreg_stats(reg, &after), 0);
    /* untrack itself cannot fail; a failed compaction only leaves the
     * untracked slots in place until the next attempt. */
    cr_assert_eq(rc, 0);
    if (atomic_load(&fa.failures) > 0)
        cr_assert_eq(after.compactions, before.compactions);
    return rc;
}

static void applied_untrack(portreg_t *reg)
{
    portreg_state_t s;
    cr_assert_eq(portreg_get(reg, ID("dead-199"), &s), 0);
    cr_assert_eq(s.status, PORTREG_UNTRACKED);
    uint16_t port = 0;
    cr_assert(portreg_lookup(reg, ID("survivor"), &port));
    cr_assert_eq(port, 7);
    cr_assert_eq(portreg_count(reg), 1);
}

Test(alloc_failure, compaction_that_runs_out_of_memory_keeps_everything)
{
    /* Capacity small enough that compaction has not yet run in prepare. */
    struct scenario sc = {"compaction",    0,    prepare_compaction, op_untrack_compacting,
                          applied_untrack, false};
    walk(&sc);
    /* Prove the scenario reached compaction: it compacts with a good
     * allocator. */
    portreg_t *reg = create(0);
    prepare_compaction(reg);
    portreg_stats_t st;
    cr_assert_eq(portreg_untrack(reg, ID("dead-199"), NULL), 0);
    cr_assert_eq(portreg_stats(reg, &st), 0);
    cr_assert_gt(st.compactions, 0);
    portreg_destroy(reg);
}

Test(alloc_failure, create_fails_cleanly_at_every_point)
{
    int points = 0;
    for (long k = 1; k < 100; k++) {
        atomic_store(&fa.failures, 0);
        atomic_store(&fa.fail_countdown, k);
        portreg_t *reg = create(0);
        atomic_store(&fa.fail_countdown, 0);
        if (reg == NULL) {
            cr_assert_gt(atomic_load(&fa.failures), 0);
            cr_assert(counting_is_empty(&fa), "create leaked at point %ld", k);
            points++;
            continue;
        }
        portreg_destroy(reg);
        cr_assert(counting_is_empty(&fa));
        break;
    }
    cr_assert_geq(points, 3, "registry, writer record, table header and map");
}
