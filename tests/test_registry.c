/* The registry's single-threaded contract: states, versions, edges. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "fixture.h"

TestSuite(registry, .init = registry_setup, .fini = registry_teardown);

Test(registry, unknown_id_is_untracked_and_lookup_fails)
{
    uint16_t port = 77;
    portreg_state_t s = state_of(ID("ghost"));
    cr_assert_eq(s.status, PORTREG_UNTRACKED);
    cr_assert_eq(s.port, 0);
    cr_assert_eq(s.version, 0);
    cr_assert_not(portreg_lookup(reg, ID("ghost"), &port));
    cr_assert_eq(port, 77, "lookup must not write the port on a miss");
    cr_assert_eq(portreg_count(reg), 0);
}

Test(registry, track_makes_id_pending_and_lookup_still_fails)
{
    cr_assert_eq(portreg_track(reg, ID("zccache")), 0);
    cr_assert_not(portreg_lookup(reg, ID("zccache"), NULL));
    portreg_state_t s = state_of(ID("zccache"));
    cr_assert_eq(s.status, PORTREG_PENDING);
    cr_assert_eq(s.port, 0);
    cr_assert_gt(s.version, 0);
    cr_assert_eq(portreg_count(reg), 1);
}

Test(registry, register_makes_port_available)
{
    uint16_t port = 0;
    cr_assert_eq(portreg_track(reg, ID("fbuild")), 0);
    cr_assert_eq(portreg_register(reg, ID("fbuild"), 8001, NULL), 0);
    cr_assert(portreg_lookup(reg, ID("fbuild"), &port));
    cr_assert_eq(port, 8001);
    portreg_state_t s = state_of(ID("fbuild"));
    cr_assert_eq(s.status, PORTREG_BOUND);
    cr_assert_eq(s.port, 8001);
}

Test(registry, register_returns_previous_port)
{
    portreg_state_t prev;
    cr_assert_eq(portreg_register(reg, ID("fbuild"), 8001, NULL), 0);
    uint32_t v1 = state_of(ID("fbuild")).version;
    cr_assert_eq(portreg_register(reg, ID("fbuild"), 8002, &prev), 0);
    cr_assert_eq(prev.status, PORTREG_BOUND);
    cr_assert_eq(prev.port, 8001);
    cr_assert_eq(prev.version, v1);
    uint16_t port = 0;
    cr_assert(portreg_lookup(reg, ID("fbuild"), &port));
    cr_assert_eq(port, 8002);
    cr_assert_gt(state_of(ID("fbuild")).version, v1);
}

Test(registry, register_on_pending_id_returns_prev_pending)
{
    portreg_state_t prev;
    cr_assert_eq(portreg_track(reg, ID("zccache")), 0);
    uint32_t v = state_of(ID("zccache")).version;
    cr_assert_eq(portreg_register(reg, ID("zccache"), 9000, &prev), 0);
    cr_assert_eq(prev.status, PORTREG_PENDING);
    cr_assert_eq(prev.port, 0);
    cr_assert_eq(prev.version, v);
}

Test(registry, register_on_unknown_id_inserts_it)
{
    portreg_state_t prev = {PORTREG_BOUND, 1, 1};
    cr_assert_eq(portreg_register(reg, ID("new"), 1234, &prev), 0);
    cr_assert_eq(prev.status, PORTREG_UNTRACKED);
    cr_assert_eq(prev.port, 0);
    cr_assert_eq(prev.version, 0);
    cr_assert_eq(portreg_count(reg), 1);
    cr_assert_eq(state_of(ID("new")).port, 1234);
}

Test(registry, track_on_bound_id_keeps_port_and_version)
{
    cr_assert_eq(portreg_register(reg, ID("fbuild"), 8002, NULL), 0);
    portreg_state_t before = state_of(ID("fbuild"));
    cr_assert_eq(portreg_track(reg, ID("fbuild")), 0);
    portreg_state_t after = state_of(ID("fbuild"));
    cr_assert_eq(after.status, PORTREG_BOUND);
    cr_assert_eq(after.port, 8002);
    cr_assert_eq(after.version, before.version);
    cr_assert_eq(portreg_count(reg), 1);
}

Test(registry, track_twice_changes_nothing)
{
    cr_assert_eq(portreg_track(reg, ID("a")), 0);
    uint32_t v = state_of(ID("a")).version;
    uint64_t changes = portreg_changes(reg);
    cr_assert_eq(portreg_track(reg, ID("a")), 0);
    cr_assert_eq(state_of(ID("a")).version, v);
    cr_assert_eq(portreg_changes(reg), changes);
}

Test(registry, untrack_returns_previous_state_and_forgets_port)
{
    portreg_state_t prev;
    cr_assert_eq(portreg_register(reg, ID("fbuild"), 8002, NULL), 0);
    uint32_t v = state_of(ID("fbuild")).version;
    cr_assert_eq(portreg_untrack(reg, ID("fbuild"), &prev), 0);
    cr_assert_eq(prev.status, PORTREG_BOUND);
    cr_assert_eq(prev.port, 8002);
    cr_assert_eq(prev.version, v);
    cr_assert_not(portreg_lookup(reg, ID("fbuild"), NULL));
    portreg_state_t s = state_of(ID("fbuild"));
    cr_assert_eq(s.status, PORTREG_UNTRACKED);
    cr_assert_eq(s.version, 0);
    cr_assert_eq(portreg_count(reg), 0);
}

Test(registry, untrack_of_untracked_id_is_idempotent)
{
    portreg_state_t prev = {PORTREG_BOUND, 5, 5};
    cr_assert_eq(portreg_untrack(reg, ID("never"), &prev), 0);
    cr_assert_eq(prev.status, PORTREG_UNTRACKED);
    cr_assert_eq(prev.version, 0);
    cr_assert_eq(portreg_track(reg, ID("once")), 0);
    cr_assert_eq(portreg_untrack(reg, ID("once"), NULL), 0);
    prev.status = PORTREG_BOUND;
    cr_assert_eq(portreg_untrack(reg, ID("once"), &prev), 0);
    cr_assert_eq(prev.status, PORTREG_UNTRACKED);
    cr_assert_eq(portreg_count(reg), 0);
}

Test(registry, versions_increase_across_untrack_and_retrack)
{
    uint32_t last = 0;
    for (int round = 0; round < 5; round++) {
        cr_assert_eq(portreg_track(reg, ID("cycle")), 0);
        uint32_t v = state_of(ID("cycle")).version;
        cr_assert_gt(v, last);
        cr_assert_eq(portreg_register(reg, ID("cycle"), (uint16_t)(100 + round), NULL), 0);
        cr_assert_gt(state_of(ID("cycle")).version, v);
        last = state_of(ID("cycle")).version;
        cr_assert_eq(portreg_untrack(reg, ID("cycle"), NULL), 0);
    }
}

Test(registry, versions_stay_increasing_after_compaction_drops_the_id)
{
    char id[32];
    cr_assert_eq(portreg_register(reg, ID("phoenix"), 1, NULL), 0);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(portreg_register(reg, ID("phoenix"), (uint16_t)(i + 2), NULL), 0);
    uint32_t last = state_of(ID("phoenix")).version;
    cr_assert_eq(portreg_untrack(reg, ID("phoenix"), NULL), 0);

    /* Enough untracked ids to make the registry compact "phoenix" away. */
    portreg_stats_t st;
    cr_assert_eq(portreg_stats(reg, &st), 0);
    uint64_t compactions = st.compactions;
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(id, sizeof id, "filler-%d", i);
        cr_assert_eq(portreg_track(reg, id, (size_t)n), 0);
        cr_assert_eq(portreg_untrack(reg, id, (size_t)n, NULL), 0);
    }
    cr_assert_eq(portreg_stats(reg, &st), 0);
    cr_assert_gt(st.compactions, compactions, "the churn must have compacted");
    cr_assert_lt(st.slots, 1000, "compaction must have dropped untracked slots");

    cr_assert_eq(portreg_track(reg, ID("phoenix")), 0);
    cr_assert_gt(state_of(ID("phoenix")).version, last);
}

Test(registry, ids_are_byte_strings_with_nul_bytes)
{
    const char a[] = {'x', '\0', 'y'};
    const char b[] = {'x', '\0', 'z'};
    uint16_t port = 0;
    cr_assert_eq(portreg_register(reg, a, sizeof a, 1000, NULL), 0);
    cr_assert_eq(portreg_register(reg, b, sizeof b, 2000, NULL), 0);
    cr_assert_eq(portreg_register(reg, "x", 1, 3000, NULL), 0);
    cr_assert(portreg_lookup(reg, a, sizeof a, &port));
    cr_assert_eq(port, 1000);
    cr_assert(portreg_lookup(reg, b, sizeof b, &port));
    cr_assert_eq(port, 2000);
    cr_assert(portreg_lookup(reg, "x", 1, &port));
    cr_assert_eq(port, 3000);
    cr_assert_eq(portreg_count(reg), 3);
}

Test(registry, longest_id_is_accepted_and_one_byte_more_is_rejected)
{
    char id[PORTREG_ID_MAX + 1];
    memset(id, 'k', sizeof id);
    cr_assert_eq(portreg_register(reg, id, PORTREG_ID_MAX, 4242, NULL), 0);
    uint16_t port = 0;
    cr_assert(portreg_lookup(reg, id, PORTREG_ID_MAX, &port));
    cr_assert_eq(port, 4242);
    cr_assert_eq(portreg_register(reg, id, PORTREG_ID_MAX + 1, 1, NULL), PORTREG_EINVAL);
    cr_assert_eq(portreg_count(reg), 1);
}

Test(registry, bad_arguments_return_einval_and_change_nothing)
{
    portreg_state_t s;
    cr_assert_eq(portreg_track(NULL, ID("a")), PORTREG_EINVAL);
    cr_assert_eq(portreg_track(reg, NULL, 1), PORTREG_EINVAL);
    cr_assert_eq(portreg_track(reg, "a", 0), PORTREG_EINVAL);
    cr_assert_eq(portreg_register(reg, NULL, 3, 80, NULL), PORTREG_EINVAL);
    cr_assert_eq(portreg_register(NULL, ID("a"), 80, NULL), PORTREG_EINVAL);
    cr_assert_eq(portreg_register(reg, "a", 0, 80, NULL), PORTREG_EINVAL);
    cr_assert_eq(portreg_untrack(reg, NULL, 1, NULL), PORTREG_EINVAL);
    cr_assert_eq(portreg_untrack(NULL, ID("a"), NULL), PORTREG_EINVAL);
    cr_assert_eq(portreg_unbind(reg, "a", 0, NULL), PORTREG_EINVAL);
    cr_assert_eq(portreg_get(reg, ID("a"), NULL), PORTREG_EINVAL);
    cr_assert_eq(portreg_get(NULL, ID("a"), &s), PORTREG_EINVAL);
    cr_assert_eq(portreg_get(reg, "a", 0, &s), PORTREG_EINVAL);
    cr_assert_not(portreg_lookup(NULL, ID("a"), NULL));
    cr_assert_not(portreg_lookup(reg, NULL, 1, NULL));
    cr_assert_not(portreg_lookup(reg, "a", 0, NULL));
    cr_assert_eq(portreg_count(NULL), 0);
    cr_assert_eq(portreg_stats(reg, NULL), PORTREG_EINVAL);
    cr_assert_eq(portreg_thread_attach(NULL), PORTREG_EINVAL);
    cr_assert_eq(portreg_count(reg), 0);
    cr_assert_eq(portreg_changes(reg), 0);
}

Test(registry, port_zero_is_erange_and_changes_nothing)
{
    cr_assert_eq(portreg_register(reg, ID("p"), 0, NULL), PORTREG_ERANGE);
    cr_assert_eq(state_of(ID("p")).status, PORTREG_UNTRACKED);
    cr_assert_eq(portreg_register(reg, ID("p"), 8080, NULL), 0);
    cr_assert_eq(portreg_register(reg, ID("p"), 0, NULL), PORTREG_ERANGE);
    cr_assert_eq(state_of(ID("p")).port, 8080);
    cr_assert_eq(portreg_register(reg, ID("p"), 65535, NULL), 0);
    cr_assert_eq(state_of(ID("p")).port, 65535);
}

Test(registry, every_applied_change_counts_once)
{
    cr_assert_eq(portreg_track(reg, ID("c")), 0);             /* 1 */
    cr_assert_eq(portreg_register(reg, ID("c"), 1, NULL), 0); /* 2 */
    cr_assert_eq(portreg_register(reg, ID("c"), 1, NULL), 0); /* 3: same port is a change */
    cr_assert_eq(portreg_track(reg, ID("c")), 0);             /* no change */
    cr_assert_eq(portreg_untrack(reg, ID("c"), NULL), 0);     /* 4 */
    cr_assert_eq(portreg_untrack(reg, ID("c"), NULL), 0);     /* no change */
    cr_assert_eq(portreg_changes(reg), 4);
}

Test(registry, strerror_and_names_cover_every_code)
{
    for (int code = -11; code <= 0; code++) {
        cr_assert_not_null(portreg_strerror(code));
        cr_assert_str_neq(portreg_strerror(code), "unknown error code");
        cr_assert_str_neq(portreg_err_name(code), "PORTREG_UNKNOWN");
    }
    cr_assert_str_eq(portreg_err_name(PORTREG_ERANGE), "PORTREG_ERANGE");
    cr_assert_str_eq(portreg_strerror(12345), "unknown error code");
    cr_assert_str_eq(portreg_strerror(-12), "unknown error code");
    cr_assert_str_eq(portreg_err_name(7), "PORTREG_UNKNOWN");
}

Test(registry, version_macros_match_the_runtime)
{
    cr_assert_eq(portreg_version(), (unsigned)PORTREG_VERSION_HEX);
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", PORTREG_VERSION_MAJOR, PORTREG_VERSION_MINOR,
             PORTREG_VERSION_PATCH);
    cr_assert_str_eq(portreg_version_string(), expect);
}

Test(registry, create_rejects_half_an_allocator)
{
    portreg_options_t o;
    portreg_options_init(&o);
    o.free = (portreg_free_fn)1;
    cr_assert_null(portreg_create(&o));
}

Test(registry, fixed_seed_and_capacity_are_honoured)
{
    portreg_options_t o;
    portreg_options_init(&o);
    o.hash_seed = 42;
    o.initial_capacity = 5000;
    portreg_t *r = portreg_create(&o);
    cr_assert_not_null(r);
    portreg_stats_t st;
    cr_assert_eq(portreg_stats(r, &st), 0);
    cr_assert_geq(st.table_capacity, 10000, "room for 5000 ids at load factor 1/2");
    cr_assert_eq(portreg_register(r, ID("x"), 1, NULL), 0);
    cr_assert(portreg_lookup(r, ID("x"), NULL));
    portreg_destroy(r);
}

Test(registry, destroy_of_null_is_a_no_op)
{
    portreg_destroy(NULL);
    cr_assert(true);
}

Test(registry, grows_to_a_million_ids, .timeout = 300)
{
    char id[48];
    const int n = 1000000;
    for (int i = 0; i < n; i++) {
        int len = snprintf(id, sizeof id, "backend-%07d.svc", i);
        cr_assert_eq(portreg_register(reg, id, (size_t)len, (uint16_t)(1 + i % 65535), NULL), 0);
    }
    cr_assert_eq(portreg_count(reg), (size_t)n);
    for (int i = 0; i < n; i++) {
        uint16_t port = 0;
        int len = snprintf(id, sizeof id, "backend-%07d.svc", i);
        cr_assert(portreg_lookup(reg, id, (size_t)len, &port), "id %d lost after growth", i);
        cr_assert_eq(port, 1 + i % 65535);
    }
    cr_assert_not(portreg_lookup(reg, ID("backend-1000000.svc"), NULL));
    portreg_stats_t st;
    cr_assert_eq(portreg_stats(reg, &st), 0);
    cr_assert_geq(st.table_capacity, 2u * (size_t)n);
    /* A weak hash would hit ck_ht's probe limit and force extra grows. */
    cr_assert_leq(st.table_capacity, 4u * (size_t)n, "table grew to %zu", st.table_capacity);
    cr_assert_eq(st.slots, (size_t)n);
}

/* The map's size rule (table.c, map_buckets_for()): at most half full;
 * beyond 2^10 buckets at least 2^14, and at most a quarter full below
 * 2^16. A registry created for n ids must already have the map that n
 * inserts grow a default one to: the expected size, and no grow while it
 * fills. */
static size_t capacity_of(portreg_t *r)
{
    portreg_stats_t st;
    cr_assert_eq(portreg_stats(r, &st), 0);
    return st.table_capacity;
}

/* Registers the ids "prefix-from" up to "prefix-(to - 1)". */
static void register_range(portreg_t *r, const char *prefix, size_t from, size_t to)
{
    char id[32];
    for (size_t i = from; i < to; i++) {
        int len = snprintf(id, sizeof id, "%s-%zu", prefix, i);
        cr_assert_eq(portreg_register(r, id, (size_t)len, 80, NULL), 0, "register %s", id);
    }
}

static void untrack_one(portreg_t *r, const char *prefix, size_t k)
{
    char id[32];
    int len = snprintf(id, sizeof id, "%s-%zu", prefix, k);
    cr_assert_eq(portreg_untrack(r, id, (size_t)len, NULL), 0, "untrack %s", id);
}

/* A registry of the test's own, through c, whose allocator has no block
 * larger than max_block. */
static portreg_t *capped_registry(struct counting *c, size_t max_block)
{
    portreg_options_t o;
    counting_options(c, &o);
    c->max_block = max_block;
    portreg_t *r = portreg_create(&o);
    cr_assert_not_null(r);
    return r;
}

Test(registry, map_size_follows_the_sparse_rule)
{
    /* From the default capacity (64) on, across every change of rule. */
    static const struct {
        size_t ids, buckets;
    } want[] = {
        {64, 128},     {300, 1024},    {512, 1024},     {513, 16384},
        {1000, 16384}, {4096, 16384},  {4097, 32768},   {8192, 32768},
        {8193, 65536}, {32768, 65536}, {32769, 131072}, {70000, 262144},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        size_t n = want[i].ids;
        portreg_options_t o;
        portreg_options_init(&o);
        o.hash_seed = 7;
        portreg_t *grown = portreg_create(&o);
        o.initial_capacity = n;
        portreg_t *made = portreg_create(&o);
        cr_assert(grown != NULL && made != NULL);
        cr_assert_eq(capacity_of(made), want[i].buckets, "made for %zu ids: %zu buckets", n,
                     capacity_of(made));
        register_range(grown, "spread", 0, n);
        register_range(made, "spread", 0, n);
        cr_assert_eq(capacity_of(grown), want[i].buckets, "%zu ids grew a map to %zu buckets", n,
                     capacity_of(grown));
        cr_assert_eq(capacity_of(made), want[i].buckets, "made for %zu ids, grew to %zu", n,
                     capacity_of(made));
        portreg_destroy(grown);
        portreg_destroy(made);
    }
}

/* Review of the sparse floor (1): a table of a few hundred live ids under
 * churn fills up with as many untracked slots between two compactions;
 * counting slots, the floor gave it a 512 KiB map every cycle, and that
 * much more memory waited for grace periods. The floor counts tracked ids. */
static void churn(portreg_t *r, size_t live, size_t cycles, size_t *max_capacity)
{
    for (size_t k = 0; k < cycles + live; k++) {
        register_range(r, "churn", k, k + 1);
        if (k >= live)
            untrack_one(r, "churn", k - live);
        size_t cap = capacity_of(r);
        if (cap > *max_capacity)
            *max_capacity = cap;
    }
}

Test(registry, churn_of_a_few_hundred_ids_keeps_a_small_map)
{
    struct counting c;
    portreg_t *r = counted_registry(&c);
    size_t max_capacity = 0;
    churn(r, 300, 20000, &max_capacity);
    portreg_stats_t st;
    cr_assert_eq(portreg_stats(r, &st), 0);
    cr_assert_gt(st.compactions, 10, "the churn must go through compactions");
    /* 300 live ids and up to as many untracked: a quarter full at most. */
    cr_assert_leq(max_capacity, 4096, "a map of %zu buckets for 300 live ids", max_capacity);
    portreg_destroy(r);
    cr_assert(counting_is_empty(&c));
}

/* Review of the sparse floor (2): the floor's 512 KiB map is an
 * optimization; with an allocator that has no block that large, tables
 * of more than 512 ids must still be made and rebuilt (compaction went
 * on failing, so untracked slots piled up and registers failed). */
Test(registry, tables_work_without_the_sparse_map)
{
    struct counting c;
    portreg_t *r = capped_registry(&c, (size_t)300 << 10);
    size_t max_capacity = 0;
    churn(r, 600, 20000, &max_capacity);
    portreg_stats_t st;
    cr_assert_eq(portreg_stats(r, &st), 0);
    cr_assert_gt(atomic_load(&c.refused), 0, "the sparse map was never asked for");
    cr_assert_gt(st.compactions, 10);
    cr_assert_leq(st.slots, 2 * 600 + 64, "untracked slots piled up: %zu", st.slots);
    cr_assert_eq(portreg_count(r), 600);
    portreg_destroy(r);
    cr_assert(counting_is_empty(&c));
}

/* Review of the sparse floor (3): the insert of the 513th id grew the map
 * twice, by ck_ht's rule inside the put and then to the floor, making
 * and deferring a map nobody used. */
Test(registry, a_map_grows_once_to_its_size)
{
    struct counting c;
    portreg_t *r = counted_registry(&c);
    char id[32];
    for (int i = 0; i < 513; i++) {
        long before = atomic_load(&c.large_allocs);
        int len = snprintf(id, sizeof id, "grow-%d", i);
        cr_assert_eq(portreg_register(r, id, (size_t)len, 80, NULL), 0);
        cr_assert_leq(atomic_load(&c.large_allocs) - before, 1, "insert %d made %ld maps", i,
                      atomic_load(&c.large_allocs) - before);
    }
    cr_assert_eq(capacity_of(r), 16384);
    portreg_destroy(r);
    cr_assert(counting_is_empty(&c));
}

/* Second review of the sparse floor (A, and a placeholder counted as
 * live): slots the registry keeps for handles on absent ids are not
 * tracked ids and must not earn the floor, neither in a compaction's new
 * table nor at the insert of the placeholder itself. */
Test(registry, held_placeholders_do_not_earn_the_floor)
{
    struct counting c;
    portreg_t *r = counted_registry(&c);
    char id[32];
    register_range(r, "churn", 0, 512);
    portreg_handle_t *h[20];
    for (int i = 0; i < 20; i++) {
        int len = snprintf(id, sizeof id, "absent-%d", i);
        cr_assert_eq(portreg_handle_open(r, id, (size_t)len, &h[i]), 0);
        cr_assert_eq(capacity_of(r), 4096, "placeholder %d: %zu buckets for 512 tracked ids", i,
                     capacity_of(r));
    }
    /* 500 tracked ids churning beside the 20 held placeholders: each step
     * registers one and untracks the oldest tracked one. */
    for (size_t i = 500; i < 512; i++)
        untrack_one(r, "churn", i);
    size_t max_capacity = 0;
    for (size_t k = 512; k < 20512; k++) {
        register_range(r, "churn", k, k + 1);
        untrack_one(r, "churn", k - 512 < 500 ? k - 512 : k - 500);
        size_t cap = capacity_of(r);
        max_capacity = cap > max_capacity ? cap : max_capacity;
    }
    cr_assert_eq(portreg_count(r), 500);
    cr_assert_leq(max_capacity, 8192, "a map of %zu buckets for 500 tracked ids", max_capacity);
    for (int i = 0; i < 20; i++)
        portreg_handle_close(h[i]);
    portreg_destroy(r);
    cr_assert(counting_is_empty(&c));
}

/* Second review of the sparse floor (C, D): with an allocator that has no
 * 512 KiB block, a compaction must make one map (it made a half-full one
 * and then grew it by the quarter rule during its own puts), and inserts
 * must not ask for the refused map again before the map grows (every
 * insert asked again). */
Test(registry, a_refused_floor_is_not_asked_for_again)
{
    struct counting c;
    portreg_t *r = capped_registry(&c, (size_t)300 << 10);
    register_range(r, "refused", 0, 1000);
    long refused = atomic_load(&c.refused);
    cr_assert_gt(refused, 0, "the floor was never asked for");
    register_range(r, "refused", 1000, 2000);
    /* Once more at most: when the map has grown past the refused size. */
    cr_assert_leq(atomic_load(&c.refused) - refused, 1,
                  "inserts asked for the refused map %ld times", atomic_load(&c.refused) - refused);
    /* Untrack until a compaction runs; it may ask for the floor once, and
     * must make one map. */
    portreg_stats_t st;
    cr_assert_eq(portreg_stats(r, &st), 0);
    uint64_t compactions = st.compactions;
    for (size_t i = 0; i < 2000 && st.compactions == compactions; i++) {
        long maps = atomic_load(&c.large_allocs);
        untrack_one(r, "refused", i);
        cr_assert_eq(portreg_stats(r, &st), 0);
        cr_assert_leq(atomic_load(&c.large_allocs) - maps, 1, "untrack %zu made %ld maps", i,
                      atomic_load(&c.large_allocs) - maps);
    }
    cr_assert_gt(st.compactions, compactions, "no compaction ran");
    portreg_destroy(r);
    cr_assert(counting_is_empty(&c));
}

/* Third review of the sparse floor: (1) a compaction at exactly 512
 * tracked ids made a quarter-full map that the next register (513) grew
 * to the floor, two maps per compaction; (2) one failed allocation of the
 * floor's map in a register that succeeded turned the floor off for good
 * in a registry that never compacts. */
Test(registry, churn_at_512_makes_one_map_per_compaction)
{
    struct counting c;
    portreg_t *r = counted_registry(&c);
    /* Register, then untrack: compactions run at 512 tracked ids. Filling
     * the first 512 makes no map of 64 KiB or more, nor a compaction. */
    size_t max_capacity = 0;
    churn(r, 512, 20000, &max_capacity);
    portreg_stats_t st;
    cr_assert_eq(portreg_stats(r, &st), 0);
    long made = atomic_load(&c.large_allocs);
    uint64_t runs = st.compactions;
    cr_assert_gt(runs, 10);
    cr_assert_leq((uint64_t)made, runs + 1, "%ld maps for %llu compactions", made,
                  (unsigned long long)runs);
    portreg_destroy(r);
    cr_assert(counting_is_empty(&c));
}

Test(registry, a_failed_floor_is_asked_for_again_when_the_map_grows)
{
    struct counting c;
    portreg_t *r = counted_registry(&c);
    register_range(r, "again", 0, 512);
    /* The 513th register: its slot, then the floor's map, which fails. */
    atomic_store(&c.fail_countdown, 2);
    register_range(r, "again", 512, 513);
    cr_assert_eq(atomic_load(&c.failures), 1, "the floor's map was not the one that failed");
    cr_assert_lt(capacity_of(r), 16384);
    register_range(r, "again", 513, 2000);
    cr_assert_geq(capacity_of(r), 16384, "the floor never came back: %zu buckets", capacity_of(r));
    portreg_destroy(r);
    cr_assert(counting_is_empty(&c));
}
