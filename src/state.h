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
 * reads as UNTRACKED and no writer may change it: an operation that does
 * not insert decides as for an untracked id, one that inserts retries
 * under the writer lock against the current table.
 *
 * The waiter count saturates: once it reaches ST_WAITERS_MAX it stays
 * there for the slot's lifetime (later waiters sleep without counting,
 * leaving waiters do not count down). Writers then always wake, and the
 * slot is never retired, so no uncounted sleeper can miss a wake-up or
 * outlive its slot; only a backend that once had 16,383 sleepers at once
 * pays for that.
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

/* Operations on a backend's state (ops.c applies them). */
enum op_kind { OP_TRACK, OP_REGISTER, OP_UNTRACK, OP_UNBIND };

struct op {
    enum op_kind kind;
    uint16_t port;
    bool conditional;
    uint32_t expected; /* public version, when conditional */
};

/* Decides what op does to a backend in state old. Returns 1 with *next set
 * when it changes the state, 0 when it succeeds without a change, or
 * PORTREG_ECONFLICT. The waiter count is carried over untouched. This is
 * the whole state machine. */
static inline int op_transition(const struct op *op, uint64_t old, uint64_t *next)
{
    uint64_t waiters = old & ST_WAITERS_MASK;
    uint32_t v = st_next_version(old);

    if (op->conditional && st_public_version(old) != op->expected)
        return PORTREG_ECONFLICT;
    switch (op->kind) {
    case OP_TRACK:
        if (st_tracked(old))
            return 0;
        *next = st_pack(PORTREG_PENDING, 0, v) | waiters;
        return 1;
    case OP_REGISTER:
        *next = st_pack(PORTREG_BOUND, op->port, v) | waiters;
        return 1;
    case OP_UNTRACK:
        if (!st_tracked(old))
            return 0;
        *next = st_pack(PORTREG_UNTRACKED, 0, v) | waiters;
        return 1;
    case OP_UNBIND:
        if (st_status(old) != PORTREG_BOUND)
            return 0;
        *next = st_pack(PORTREG_PENDING, 0, v) | waiters;
        return 1;
    }
    return PORTREG_EINVAL;
}

#endif
