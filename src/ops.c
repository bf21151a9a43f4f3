/*
 * Every operation on a backend's state, and where each one takes effect.
 *
 * Linearization points:
 * - lookup, get: the acquire load of the slot's state word, or, for an id
 *   the table does not hold, the probe of ck_ht_get_spmc() that missed.
 * - track, register, unbind, untrack (and the _if forms) on an id the
 *   table holds: the successful compare-and-swap in slot_apply(); a no-op
 *   or a conflict: the load that decided it.
 * - track, register on an id the table does not hold: ck_ht_put_spmc()
 *   publishing the new slot, under the writer lock.
 *
 * op_transition() is the whole state machine; everything else finds the
 * slot and retries.
 */
#include <sched.h>

#include "internal.h"

enum op_kind { OP_TRACK, OP_REGISTER, OP_UNTRACK, OP_UNBIND };

struct op {
    enum op_kind kind;
    uint16_t port;
    bool conditional;
    uint32_t expected; /* public version, when conditional */
};

/* A slot the table does not hold reads like this (untracked, no waiters). */
#define UNTRACKED_WORD st_pack(PORTREG_UNTRACKED, 0, 0)

/* Results of slot_apply() besides 0 and negative codes. */
#define APPLY_RETIRED 1 /* the slot was dropped: retry against the new table */
#define APPLY_MISSING 2 /* the table does not hold the id */

/* Decides what op does to a backend in state old. Returns 1 with *next set
 * when it changes the state, 0 when it succeeds without a change, or
 * PORTREG_ECONFLICT. The waiter count is carried over untouched. */
static int op_transition(const struct op *op, uint64_t old, uint64_t *next)
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

static void account(struct portreg *reg, struct slot *s, uint64_t old, uint64_t next)
{
    if (!st_tracked(old) && st_tracked(next)) {
        atomic_fetch_add_explicit(&reg->tracked, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&reg->dead, 1, memory_order_relaxed);
    } else if (st_tracked(old) && !st_tracked(next)) {
        atomic_fetch_sub_explicit(&reg->tracked, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&reg->dead, 1, memory_order_relaxed);
    }
    notify_change(reg, s, old);
}

/* Applies op to a slot the caller reached inside an epoch section (or
 * under the writer lock). Lock-free: the loop repeats only when another
 * writer's CAS (or a waiter's count update) succeeded in between. */
static int slot_apply(struct portreg *reg, struct slot *s, const struct op *op,
                      portreg_state_t *prev)
{
    /* acquire: pairs with the release half of other writers' CAS. */
    uint64_t old = atomic_load_explicit(&s->state, memory_order_acquire);
    uint64_t next = 0;
    int r;

    for (;;) {
        if (st_status(old) == ST_RETIRED)
            return APPLY_RETIRED;
        r = op_transition(op, old, &next);
        if (r <= 0)
            break;
#if defined(PORTREG_PLANT_LOST_UPDATE)
        /* Planted bug: a read-modify-write that is not atomic. */
        sched_yield();
        atomic_store_explicit(&s->state, next, memory_order_release);
        break;
#else
        /* acq_rel: release publishes what the caller wrote before this
         * change to whoever reads the new word; acquire orders us after
         * the writer we replace. On failure old is reloaded (acquire). */
        if (atomic_compare_exchange_weak_explicit(&s->state, &old, next, memory_order_acq_rel,
                                                  memory_order_acquire))
            break;
#endif
    }
#if defined(PORTREG_PLANT_RACE)
    /* Planted bug: a plain write to the published word. */
    if (r == 1)
        *(uint64_t *)(void *)&s->state = next;
#endif
    if (prev != NULL)
        *prev = st_public(old);
    if (r == 1)
        account(reg, s, old, next);
    return r == 1 ? 0 : r;
}

/* Slow path: the id is not in the table we looked at (or its slot was
 * retired). Under the writer lock the current table is the truth. */
static int apply_locked(struct portreg *reg, const char *id, size_t id_len, const struct op *op,
                        portreg_state_t *prev)
{
    int rc;

    writer_lock(reg);
    ck_ht_t *ht = atomic_load_explicit(&reg->table, memory_order_relaxed); /* ours: lock */
    struct slot *s = table_find(ht, id, id_len);
    if (s != NULL) {
        rc = slot_apply(reg, s, op, prev); /* never RETIRED: not in ht */
    } else {
        uint64_t next = 0;
        /* A new slot continues above every version a dropped one had. */
        uint64_t old = st_pack(PORTREG_UNTRACKED, 0, reg->version_floor);
        rc = op_transition(op, old, &next);
        if (rc == 1) {
            rc = table_insert(reg, id, id_len, next, &s);
            if (rc == 0)
                notify_change(reg, s, old);
        }
        if (rc >= 0 && prev != NULL)
            *prev = st_public(UNTRACKED_WORD);
    }
    writer_unlock(reg);
    return rc;
}

static int apply(struct portreg *reg, const char *id, size_t id_len, const struct op *op,
                 portreg_state_t *prev)
{
    struct reader *r = reader_get(reg);
    if (r == NULL)
        return PORTREG_ENOMEM;

    reader_begin(reg, r);
    struct slot *s = table_find(table_current(reg), id, id_len);
    int rc = s != NULL ? slot_apply(reg, s, op, prev) : APPLY_MISSING;
    reader_end(reg, r);

    if (rc == APPLY_MISSING) {
        /* Untracked: ops that do not insert are decided right here. */
        uint64_t next;
        rc = op_transition(op, UNTRACKED_WORD, &next);
        if (rc <= 0) {
            if (prev != NULL)
                *prev = st_public(UNTRACKED_WORD);
            return rc;
        }
        rc = APPLY_RETIRED;
    }
    if (rc == APPLY_RETIRED)
        rc = apply_locked(reg, id, id_len, op, prev);
    if (rc == 0 && op->kind == OP_UNTRACK)
        compact_if_due(reg);
    return rc;
}

/* Argument checks shared by every writer entry point. */
static int apply_checked(struct portreg *reg, const char *id, size_t id_len, struct op op,
                         portreg_state_t *prev)
{
    if (reg == NULL || !id_valid(id, id_len))
        return PORTREG_EINVAL;
    if (op.kind == OP_REGISTER && op.port == 0)
        return PORTREG_ERANGE;
    return apply(reg, id, id_len, &op, prev);
}

int portreg_track(portreg_t *reg, const char *id, size_t id_len)
{
    return apply_checked(reg, id, id_len, (struct op){.kind = OP_TRACK}, NULL);
}

int portreg_register(portreg_t *reg, const char *id, size_t id_len, uint16_t port,
                     portreg_state_t *prev)
{
    return apply_checked(reg, id, id_len, (struct op){.kind = OP_REGISTER, .port = port}, prev);
}

int portreg_register_if(portreg_t *reg, const char *id, size_t id_len, uint16_t port,
                        uint32_t expected_version, portreg_state_t *prev)
{
    struct op op = {
        .kind = OP_REGISTER, .port = port, .conditional = true, .expected = expected_version};
    return apply_checked(reg, id, id_len, op, prev);
}

int portreg_untrack(portreg_t *reg, const char *id, size_t id_len, portreg_state_t *prev)
{
    return apply_checked(reg, id, id_len, (struct op){.kind = OP_UNTRACK}, prev);
}

int portreg_untrack_if(portreg_t *reg, const char *id, size_t id_len, uint32_t expected_version,
                       portreg_state_t *prev)
{
    struct op op = {.kind = OP_UNTRACK, .conditional = true, .expected = expected_version};
    return apply_checked(reg, id, id_len, op, prev);
}

int portreg_unbind(portreg_t *reg, const char *id, size_t id_len, portreg_state_t *prev)
{
    return apply_checked(reg, id, id_len, (struct op){.kind = OP_UNBIND}, prev);
}

/* The state word for id, read in one epoch section. Wait-free: one probe
 * sequence of bounded length (no tombstones, so no restart) and one load. */
static inline bool read_state(struct portreg *reg, const char *id, size_t id_len, uint64_t *word)
{
    struct reader *r = reader_get(reg);
    if (UNLIKELY(r == NULL))
        return false;

    reader_begin(reg, r);
    struct slot *s = table_find(table_current(reg), id, id_len);
    /* acquire: pairs with the release CAS in slot_apply(), so what the
     * registering thread wrote before it is visible to our caller. */
    *word = s != NULL ? atomic_load_explicit(&s->state, memory_order_acquire) : UNTRACKED_WORD;
    reader_end(reg, r);
    return true;
}

bool portreg_lookup(portreg_t *reg, const char *id, size_t id_len, uint16_t *port)
{
    uint64_t w;

    if (UNLIKELY(reg == NULL || !id_valid(id, id_len)) || !read_state(reg, id, id_len, &w))
        return false;
    if (st_status(w) != PORTREG_BOUND)
        return false;
    if (port != NULL)
        *port = st_port(w);
    return true;
}

int portreg_get(portreg_t *reg, const char *id, size_t id_len, portreg_state_t *state)
{
    uint64_t w;

    if (reg == NULL || state == NULL || !id_valid(id, id_len))
        return PORTREG_EINVAL;
    if (!read_state(reg, id, id_len, &w))
        return PORTREG_ENOMEM;
    *state = st_public(w);
    return 0;
}
