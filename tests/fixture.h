/* What most test files share: one fresh registry per test. */
#ifndef PORTREG_TEST_FIXTURE_H
#define PORTREG_TEST_FIXTURE_H

#include <criterion/criterion.h>

#include "portreg.h"
#include "testsupport.h"

static portreg_t *reg;

static inline void registry_setup(void)
{
    reg = portreg_create(NULL);
    cr_assert_not_null(reg);
}

static inline void registry_teardown(void)
{
    portreg_destroy(reg);
}

/* The state of id, asserting that get succeeds. */
static inline portreg_state_t state_of(const char *id, size_t len)
{
    portreg_state_t s;
    cr_assert_eq(portreg_get(reg, id, len, &s), 0);
    return s;
}

/* The registry's statistics now, asserting that stats succeeds. */
static inline portreg_stats_t stats_now(void)
{
    portreg_stats_t st;
    cr_assert_eq(portreg_stats(reg, &st), 0);
    return st;
}

#endif
