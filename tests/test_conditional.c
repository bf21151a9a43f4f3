/* Conditional updates and unbind: stale daemons cannot clobber newer state. */
#include <criterion/criterion.h>

#include "fixture.h"

TestSuite(conditional, .init = registry_setup, .fini = registry_teardown);

Test(conditional, register_if_applies_when_version_matches)
{
    cr_assert_eq(portreg_track(reg, ID("d")), 0);
    portreg_state_t s = state_of(ID("d")), prev;
    cr_assert_eq(portreg_register_if(reg, ID("d"), 9000, s.version, &prev), 0);
    cr_assert_eq(prev.status, PORTREG_PENDING);
    cr_assert_eq(prev.version, s.version);
    cr_assert_eq(state_of(ID("d")).port, 9000);
}

Test(conditional, stale_register_if_conflicts_and_reports_current_state)
{
    cr_assert_eq(portreg_register(reg, ID("d"), 9000, NULL), 0);
    uint32_t stale = state_of(ID("d")).version;
    cr_assert_eq(portreg_register(reg, ID("d"), 9001, NULL), 0); /* the replacement daemon */
    portreg_state_t now = state_of(ID("d")), prev;
    uint64_t changes = portreg_changes(reg);
    cr_assert_eq(portreg_register_if(reg, ID("d"), 9000, stale, &prev), PORTREG_ECONFLICT);
    cr_assert(state_eq(prev, now));
    cr_assert(state_eq(now, state_of(ID("d"))));
    cr_assert_eq(portreg_changes(reg), changes);
}

Test(conditional, register_if_zero_inserts_only_untracked_ids)
{
    portreg_state_t prev;
    cr_assert_eq(portreg_register_if(reg, ID("fresh"), 100, 0, &prev), 0);
    cr_assert_eq(prev.status, PORTREG_UNTRACKED);
    cr_assert_eq(state_of(ID("fresh")).port, 100);
    cr_assert_eq(portreg_register_if(reg, ID("fresh"), 101, 0, &prev), PORTREG_ECONFLICT);
    cr_assert_eq(prev.port, 100);
    cr_assert_eq(state_of(ID("fresh")).port, 100);
}

Test(conditional, register_if_nonzero_on_unknown_id_conflicts_without_inserting)
{
    portreg_state_t prev = {PORTREG_BOUND, 1, 1};
    cr_assert_eq(portreg_register_if(reg, ID("nobody"), 100, 7, &prev), PORTREG_ECONFLICT);
    cr_assert_eq(prev.status, PORTREG_UNTRACKED);
    cr_assert_eq(prev.version, 0);
    cr_assert_eq(portreg_count(reg), 0);
    cr_assert_eq(portreg_register_if(reg, ID("nobody"), 0, 0, NULL), PORTREG_ERANGE);
}

Test(conditional, untrack_if_applies_only_to_the_expected_version)
{
    cr_assert_eq(portreg_register(reg, ID("d"), 9000, NULL), 0);
    uint32_t v = state_of(ID("d")).version;
    portreg_state_t prev;
    cr_assert_eq(portreg_untrack_if(reg, ID("d"), v + 1, &prev), PORTREG_ECONFLICT);
    cr_assert_eq(prev.version, v);
    cr_assert_eq(state_of(ID("d")).status, PORTREG_BOUND);
    cr_assert_eq(portreg_untrack_if(reg, ID("d"), v, &prev), 0);
    cr_assert_eq(prev.port, 9000);
    cr_assert_eq(state_of(ID("d")).status, PORTREG_UNTRACKED);
    cr_assert_eq(portreg_untrack_if(reg, ID("d"), 0, &prev), 0, "untracked matches version 0");
    cr_assert_eq(portreg_untrack_if(reg, ID("d"), v, &prev), PORTREG_ECONFLICT);
    cr_assert_eq(portreg_count(reg), 0);
}

Test(conditional, unbind_turns_bound_into_pending_with_a_new_version)
{
    cr_assert_eq(portreg_register(reg, ID("d"), 9000, NULL), 0);
    uint32_t v = state_of(ID("d")).version;
    portreg_state_t prev;
    cr_assert_eq(portreg_unbind(reg, ID("d"), &prev), 0);
    cr_assert_eq(prev.status, PORTREG_BOUND);
    cr_assert_eq(prev.port, 9000);
    portreg_state_t s = state_of(ID("d"));
    cr_assert_eq(s.status, PORTREG_PENDING);
    cr_assert_eq(s.port, 0);
    cr_assert_gt(s.version, v);
    cr_assert_not(portreg_lookup(reg, ID("d"), NULL));
    cr_assert_eq(portreg_count(reg), 1);
}

Test(conditional, unbind_leaves_pending_and_untracked_alone)
{
    portreg_state_t prev;
    cr_assert_eq(portreg_track(reg, ID("p")), 0);
    portreg_state_t before = state_of(ID("p"));
    uint64_t changes = portreg_changes(reg);
    cr_assert_eq(portreg_unbind(reg, ID("p"), &prev), 0);
    cr_assert_eq(prev.status, PORTREG_PENDING);
    cr_assert_eq(state_of(ID("p")).version, before.version);
    cr_assert_eq(portreg_unbind(reg, ID("ghost"), &prev), 0);
    cr_assert_eq(prev.status, PORTREG_UNTRACKED);
    cr_assert_eq(state_of(ID("ghost")).status, PORTREG_UNTRACKED);
    cr_assert_eq(portreg_changes(reg), changes);
    cr_assert_eq(portreg_count(reg), 1);
}
