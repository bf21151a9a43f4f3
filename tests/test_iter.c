/* The snapshot iterator and the copy-out snapshot. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

TestSuite(iter, .init = registry_setup, .fini = registry_teardown);

Test(iter, snapshot_returns_exactly_the_tracked_backends)
{
    cr_assert_eq(portreg_track(reg, ID("zccache")), 0);
    cr_assert_eq(portreg_register(reg, ID("fbuild"), 8001, NULL), 0);
    cr_assert_eq(portreg_register(reg, ID("fbuild"), 8002, NULL), 0);
    cr_assert_eq(portreg_track(reg, ID("gone")), 0);
    cr_assert_eq(portreg_untrack(reg, ID("gone"), NULL), 0);

    portreg_iter_t it;
    portreg_entry_t e;
    int seen_z = 0, seen_f = 0, other = 0;
    portreg_iter_init(&it, reg);
    while (portreg_iter_next(&it, &e)) {
        if (e.id_len == 7 && memcmp(e.id, "zccache", 7) == 0) {
            seen_z++;
            cr_assert_eq(e.state.status, PORTREG_PENDING);
        } else if (e.id_len == 6 && memcmp(e.id, "fbuild", 6) == 0) {
            seen_f++;
            cr_assert_eq(e.state.status, PORTREG_BOUND);
            cr_assert_eq(e.state.port, 8002);
        } else {
            other++;
        }
    }
    portreg_iter_fini(&it);
    cr_assert_eq(seen_z, 1);
    cr_assert_eq(seen_f, 1);
    cr_assert_eq(other, 0);

    portreg_snapshot_t snap;
    cr_assert_eq(portreg_snapshot(reg, &snap), 0);
    cr_assert_eq(snap.count, 2);
    cr_assert_eq(snap.entries[0].id_len, 6);
    cr_assert_eq(memcmp(snap.entries[0].id, "fbuild", 6), 0, "sorted by id");
    cr_assert_eq(snap.entries[0].state.port, 8002);
    cr_assert_eq(memcmp(snap.entries[1].id, "zccache", 7), 0);
    cr_assert_eq(snap.entries[1].state.status, PORTREG_PENDING);
    portreg_snapshot_free(&snap);
    cr_assert_eq(snap.count, 0);
}

Test(iter, empty_registry_iterates_nothing)
{
    portreg_iter_t it;
    portreg_entry_t e;
    portreg_iter_init(&it, reg);
    cr_assert_not(portreg_iter_next(&it, &e));
    cr_assert_not(portreg_iter_next(&it, &e), "stays done");
    portreg_iter_fini(&it);
    portreg_snapshot_t snap;
    cr_assert_eq(portreg_snapshot(reg, &snap), 0);
    cr_assert_eq(snap.count, 0);
    portreg_snapshot_free(&snap);
}

Test(iter, bad_arguments_are_harmless)
{
    portreg_iter_t it;
    portreg_entry_t e;
    portreg_iter_init(NULL, reg);
    portreg_iter_init(&it, NULL);
    cr_assert_not(portreg_iter_next(&it, &e));
    portreg_iter_fini(&it);
    portreg_iter_init(&it, reg);
    cr_assert_not(portreg_iter_next(&it, NULL));
    portreg_iter_fini(&it);
    portreg_iter_fini(NULL);
    cr_assert_eq(portreg_snapshot(NULL, NULL), PORTREG_EINVAL);
    portreg_snapshot_free(NULL);
}

Test(iter, sort_orders_prefixes_first_and_handles_nul_bytes)
{
    const char nul[] = {'a', '\0'};
    cr_assert_eq(portreg_track(reg, ID("ab")), 0);
    cr_assert_eq(portreg_track(reg, ID("a")), 0);
    cr_assert_eq(portreg_track(reg, nul, sizeof nul), 0);
    cr_assert_eq(portreg_track(reg, ID("b")), 0);
    portreg_snapshot_t snap;
    cr_assert_eq(portreg_snapshot(reg, &snap), 0);
    cr_assert_eq(snap.count, 4);
    cr_assert_eq(snap.entries[0].id_len, 1);
    cr_assert_eq(snap.entries[0].id[0], 'a');
    cr_assert_eq(snap.entries[1].id_len, 2);
    cr_assert_eq(snap.entries[1].id[1], '\0');
    cr_assert_eq(memcmp(snap.entries[2].id, "ab", 2), 0);
    cr_assert_eq(snap.entries[3].id[0], 'b');
    portreg_snapshot_free(&snap);
}

Test(iter, writers_may_change_the_registry_during_an_iteration)
{
    char id[32];
    for (int i = 0; i < 100; i++) {
        int n = snprintf(id, sizeof id, "stable-%d", i);
        cr_assert_eq(portreg_register(reg, id, (size_t)n, (uint16_t)(1000 + i), NULL), 0);
    }
    portreg_iter_t it;
    portreg_entry_t e;
    unsigned char seen[100] = {0};
    portreg_iter_init(&it, reg);
    int step = 0;
    while (portreg_iter_next(&it, &e)) {
        /* Grow the table and churn while the walk is half done. */
        for (int k = 0; k < 50; k++) {
            int n = snprintf(id, sizeof id, "churn-%d-%d", step, k);
            cr_assert_eq(portreg_track(reg, id, (size_t)n), 0);
            cr_assert_eq(portreg_untrack(reg, id, (size_t)n, NULL), 0);
        }
        step++;
        if (e.id_len > 7 && memcmp(e.id, "stable-", 7) == 0) {
            /* ids are not NUL-terminated: parse within id_len */
            int i = 0;
            for (size_t k = 7; k < e.id_len; k++)
                i = i * 10 + (e.id[k] - '0');
            cr_assert(i >= 0 && i < 100);
            cr_assert_eq(seen[i], 0, "stable-%d returned twice", i);
            seen[i] = 1;
            cr_assert_eq(e.state.port, 1000 + i);
        }
    }
    portreg_iter_fini(&it);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(seen[i], 1, "stable-%d missing", i);
    portreg_stats_t st;
    cr_assert_eq(portreg_stats(reg, &st), 0);
    cr_assert_gt(st.compactions, 0, "the churn must have compacted during the walk");
}

Test(iter, iterators_nest_on_one_thread)
{
    cr_assert_eq(portreg_track(reg, ID("x")), 0);
    cr_assert_eq(portreg_track(reg, ID("y")), 0);
    portreg_iter_t a, b;
    portreg_entry_t e;
    int pairs = 0;
    portreg_iter_init(&a, reg);
    while (portreg_iter_next(&a, &e)) {
        portreg_iter_init(&b, reg);
        while (portreg_iter_next(&b, &e))
            pairs++;
        portreg_iter_fini(&b);
    }
    portreg_iter_fini(&a);
    cr_assert_eq(pairs, 4);
}
