/*
 * The packed state word: one 64-bit atomic per backend.
 *
 *   bits  0..15  port (0 unless BOUND)
 *   bits 16..17  status: UNTRACKED, PENDING, BOUND or RETIRED
 *   bits 18..31  waiters: threads sleeping in portreg_wait() on this slot
 *   bits 32..63  version
 *
 * The version sits in the high 32-bit half, so portreg_wait() can sleep on
 * that half with a futex while the low half (waiters) changes freely.
 * RETIRED is internal: a slot compaction has dropped from the table. It
 * reads as UNTRACKED and no writer may change it; they retry under the
 * writer lock against the current table.
 */
#ifndef PORTREG_STATE_H
#define PORTREG_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "portreg.h"

#define ST_RETIRED 3u

#define ST_PORT_MASK     UINT64_C(0xffff)
#define ST_STATUS_SHIFT  16
#define ST_STATUS_MASK   (UINT64_C(3) << ST_STATUS_SHIFT)
#define ST_WAITERS_SHIFT 18
#define ST_WAITER_ONE    (UINT64_C(1) << ST_WAITERS_SHIFT)
#define ST_WAITERS_MASK  (UINT64_C(0x3fff) << ST_WAITERS_SHIFT)
#define ST_WAITERS_MAX   0x3fffu
#define ST_VERSION_SHIFT 32

static inline unsigned st_status(uint64_t w)
{
    return (unsigned)((w & ST_STATUS_MASK) >> ST_STATUS_SHIFT);
}

static inline uint16_t st_port(uint64_t w)
{
    return (uint16_t)(w & ST_PORT_MASK);
}

static inline uint32_t st_version(uint64_t w)
{
    return (uint32_t)(w >> ST_VERSION_SHIFT);
}

static inline unsigned st_waiters(uint64_t w)
{
    return (unsigned)((w & ST_WAITERS_MASK) >> ST_WAITERS_SHIFT);
}

static inline bool st_tracked(uint64_t w)
{
    unsigned s = st_status(w);
    return s == PORTREG_PENDING || s == PORTREG_BOUND;
}

/* A word with the given status, port and version and no waiters. */
static inline uint64_t st_pack(unsigned status, uint16_t port, uint32_t version)
{
    return ((uint64_t)version << ST_VERSION_SHIFT) | ((uint64_t)status << ST_STATUS_SHIFT) |
           (uint64_t)port;
}

/* The version after w's: one more, skipping 0, which means "untracked". */
static inline uint32_t st_next_version(uint64_t w)
{
    uint32_t v = st_version(w) + 1;
    return v == 0 ? 1 : v;
}

/* The public view: untracked (and retired) slots read as {UNTRACKED, 0, 0}. */
static inline portreg_state_t st_public(uint64_t w)
{
    portreg_state_t s = {PORTREG_UNTRACKED, 0, 0};
    if (st_tracked(w)) {
        s.status = (portreg_status_t)st_status(w);
        s.port = st_port(w);
        s.version = st_version(w);
    }
    return s;
}

/* The version callers compare against: 0 while untracked. */
static inline uint32_t st_public_version(uint64_t w)
{
    return st_tracked(w) ? st_version(w) : 0;
}

#endif
