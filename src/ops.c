/*
 * Every operation on a backend's state, and where each one takes effect.
 *
 * Linearization points:
 * - lookup, get: the acquire load of the slot's state word, or, for an id
 *   the table does not hold, the probe of ck_ht_get_spmc() that missed.
 * - track, register, unbind, untrack (and the _if forms) on an id the
 *   table holds: the successful compare-and-swap in slot_apply(); a no-op
 *   or a conflict: the load that decided it.
 * - an op that does not insert, on an id the table does not hold or whose
 *   slot reads RETIRED: the probe that missed; for RETIRED, the instant the
 *   compaction retired the slot (the id was untracked then, and no new
 *   slot for it can appear before that compaction publishes its table,
 *   which happened after we loaded the old table) or, if that was before
 *   our call, the call's start.
 * - track, register on an id the table does not hold: ck_ht_put_spmc()
 *   publishing the new slot, under the writer lock.
 * - handle reads: the acquire load of the pinned slot's word (handle.c).
 *
 * op_transition() (state.h) is the whole state machine; everything here
 * finds the slot and retries.
 */

#include "internal.h"

/* A slot the table does not hold reads like this (untracked, no waiters). */
#define UNTRACKED_WORD st_pack(PORTREG_UNTRACKED, 0, 0)

/* Result of slot_apply() besides 0 and negative codes: the slot was
 * dropped by a compaction, so the id is untracked in the current table. */
#define APPLY_RETIRED 1

/* Planted bugs (stress/run-planted.sh builds them): a read-modify-write
 * that is not atomic, and a plain write to the published word. */
#if defined(PORTREG_PLANT_LOST_UPDATE)
#define PLANT_LOST_UPDATE 1
#else
#define PLANT_LOST_UPDATE 0
#endif
#if defined(PORTREG_PLANT_RACE)
#define PLANT_RACE 1
#else
#define PLANT_RACE 0
#endif

static void account(struct portreg *reg, struct slot *s, uint64_t old, uint64_t next)
{
    books_transition(reg, old, next);
    if (!st_tracked(old) && st_tracked(next)) {
        portreg__slot_released(reg, s); /* tracked: not a kept dead slot */
    } else if (st_tracked(old) && !st_tracked(next) &&
               (st_waiters(next) != 0 || atomic_load_explicit(&s->pins, memory_order_relaxed))) {
        /* Untracked but held by a waiter or a handle: not droppable. */
        portreg__slot_held(reg, s);
    }
    portreg__notify_change(reg, s, old);
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
        if (PLANT_LOST_UPDATE) {
            portreg__os_yield();
            atomic_store_explicit(&s->state, next, memory_order_release);
            break;
        }
        /* acq_rel: release publishes what the caller wrote before this
         * change to whoever reads the new word; acquire orders us after
         * the writer we replace. On failure old is reloaded (acquire). */
        if (atomic_compare_exchange_weak_explicit(&s->state, &old, next, memory_order_acq_rel,
                                                  memory_order_acquire))
            break;
    }
    if (PLANT_RACE && r == 1)
        *(uint64_t *)(void *)&s->state = next;
    if (prev != NULL)
        *prev = st_public(old);
    if (r == 1)
        account(reg, s, old, next);
    return r == 1 ? 0 : r;
}

/* Slow path of an inserting op: the id is not in the table we looked at
 * (or its slot was retired). Under the writer lock the current table is
 * the truth. */
static int apply_locked(struct portreg *reg, const char *id, size_t id_len, const struct op *op,
                        portreg_state_t *prev)
{
    int rc;

    portreg__writer_lock(reg);
    struct table *t = atomic_load_explicit(&reg->table, memory_order_relaxed); /* ours: lock */
    struct slot *s = table_find(t, id, id_len);
    if (s != NULL) {
        rc = slot_apply(reg, s, op, prev); /* never RETIRED: it is in t */
    } else {
        uint64_t next;
        rc = op_transition(op, UNTRACKED_WORD, &next);
        if (rc == 1) {
            rc = portreg__table_insert(reg, id, id_len, op, false, &s, &next);
            if (rc == 0) /* the insert kept the books */
                portreg__notify_change(reg, s, UNTRACKED_WORD);
        }
        /* Every outcome but a failed insert read the id as untracked. */
        if (prev != NULL && (rc >= 0 || rc == PORTREG_ECONFLICT))
            *prev = st_public(UNTRACKED_WORD);
    }
    portreg__writer_unlock(reg);
    return rc;
}

static int apply(struct portreg *reg, const char *id, size_t id_len, const struct op *op,
                 portreg_state_t *prev)
{
    struct epoch_record *r = epoch_record(reg, &reg->epoch);
    if (r == NULL)
        return PORTREG_ENOMEM;

    epoch_begin(&reg->epoch, r);
    struct slot *s = table_find(table_current(reg), id, id_len);
    int rc = s != NULL ? slot_apply(reg, s, op, prev) : APPLY_RETIRED;
    epoch_end(&reg->epoch, r);

    if (rc == APPLY_RETIRED) {
        /* The current table lacks the id (a retired slot was dropped from
         * it before we read RETIRED), so the id was untracked at some
         * instant of this call: an op that would not insert is decided
         * right here, without the lock. */
        uint64_t next;
        rc = op_transition(op, UNTRACKED_WORD, &next);
        if (rc <= 0) {
            if (prev != NULL)
                *prev = st_public(UNTRACKED_WORD);
            return rc;
        }
        rc = apply_locked(reg, id, id_len, op, prev);
    }
    if (rc == 0 && op->kind == OP_UNTRACK)
        portreg__table_compact_if_due(reg);
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
static PROBE_INLINE bool read_state(struct portreg *reg, const char *id, size_t id_len,
                                    uint64_t *word)
{
    struct epoch_record *r = epoch_record(reg, &reg->epoch);
    if (UNLIKELY(r == NULL))
        return false;

    epoch_begin(&reg->epoch, r);
    struct slot *s = table_find(table_current(reg), id, id_len);
    /* acquire: pairs with the release CAS in slot_apply(), so what the
     * registering thread wrote before it is visible to our caller. */
    *word = s != NULL ? atomic_load_explicit(&s->state, memory_order_acquire) : UNTRACKED_WORD;
    epoch_end(&reg->epoch, r);
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
