/*
 * What the unit tests (tests/) and the stress harness (stress/) share: ids
 * written as string literals, and one allocator for portreg_options_t that
 * counts what the registry holds, checks every free and fails an
 * allocation on request.
 */
#ifndef PORTREG_TESTSUPPORT_H
#define PORTREG_TESTSUPPORT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portreg.h"

/* Tests of fork() compile where it exists; elsewhere each is replaced by a
 * test of the same name that skips itself and says why (SKIPPED_TEST). */
#if defined(_WIN32)
#define PORTREG_TEST_HAVE_FORK 0
#else
#define PORTREG_TEST_HAVE_FORK 1
#endif
#define SKIPPED_TEST(suite, name, why)                                                             \
    Test(suite, name)                                                                              \
    {                                                                                              \
        cr_skip_test(why);                                                                         \
    }

#if defined(_WIN32)
/* The C library of Windows has no rand_r(): the same contract, a
 * generator of the caller's own (a 32-bit xorshift). */
static inline int rand_r(unsigned *seed)
{
    unsigned x = *seed != 0 ? *seed : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *seed = x;
    return (int)(x & 0x7fffffff);
}
#endif

/* A string literal as (bytes, length), without its NUL. */
#define ID(s) (s), (sizeof(s) - 1)

/* The allocator's score. Every block carries its size and a tag, so a free
 * with the wrong size, a double free or a foreign pointer counts as a bad
 * free (and the block is left alone) instead of corrupting the heap.
 * Counters are relaxed atomics: tests read them after the calls that
 * changed them have returned or their threads were joined. */
struct counting {
    _Atomic int64_t live_bytes, live_blocks;
    _Atomic int64_t total_allocs;
    _Atomic unsigned bad_frees;
    /* n > 0: the n-th allocation from now fails (then counting resumes
     * with no more failures); 0: none fails. */
    _Atomic long fail_countdown;
    _Atomic long failures; /* allocations failed on purpose */
    /* Non-zero: allocations of more bytes fail, as from an allocator with
     * no blocks that large (counted in refused, not in failures). */
    size_t max_block;
    _Atomic long refused;
    _Atomic long large_allocs; /* of at least 64 KiB (hash maps, in practice) */
    /* true: freed blocks are not given back but filled with a pattern and
     * kept, so that counting_quarantine_intact() can tell whether anything
     * wrote to them after the free, also code ASan does not instrument
     * (libck). */
    bool quarantine;
    _Atomic(void *) quarantined; /* the kept blocks, a list */
};

/* Field by field: portreg_state_t has padding bytes, which hold whatever
 * the code generator left there, so memcmp() cannot compare two. */
static inline bool state_eq(portreg_state_t a, portreg_state_t b)
{
    return a.status == b.status && a.port == b.port && a.version == b.version;
}

/* Zeroes the score and points opts (initialised to the defaults) at c. */
void counting_options(struct counting *c, portreg_options_t *opts);

/* Points opts' allocator at c, keeping c's score and opts' other fields. */
void counting_install(struct counting *c, portreg_options_t *opts);

/* Nothing allocated is left and every free named its block and size. */
bool counting_is_empty(struct counting *c);

/* True if no quarantined block was written since its free; then gives
 * them all back. Call once no thread can touch them any more. */
bool counting_quarantine_intact(struct counting *c);

#endif
