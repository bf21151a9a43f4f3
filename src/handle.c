/*
 * Handles: an id resolved once, read with one atomic load.
 *
 * A handle is the id's slot itself, pinned. Why a read through it needs no
 * hash, no probe and no read section, and still returns exactly what
 * portreg_lookup() would:
 *
 * - A pinned slot stays in the current table. Pins rise only under the
 *   writer lock (portreg_handle_open()), and every rebuild (compaction,
 *   reseeding) runs under that lock and carries over any slot whose pin
 *   count it reads as non-zero (slot_droppable() in table.c); growth moves
 *   ck_ht entries, never slots. So while the handle is open the slot is
 *   never RETIRED, never unlinked and never freed.
 * - It is the id's only slot. A new slot is inserted only for an id the
 *   current table lacks, and the pinned slot never leaves it.
 * - So the slot's word is the id's state: every change of the id is a CAS
 *   on this word, and a read is one acquire load of it, linearizable at
 *   that load, across untrack, re-track, compaction, growth and reseeding.
 *
 * Many handles on one id share the slot and raise one 64-bit count, which
 * cannot overflow in practice (2^64 opens). Closing the last handle leaves
 * an untracked slot to the next compaction, like any other.
 */
#include "internal.h"

/* portreg_handle_t stays incomplete: a handle is a struct slot. */
static struct slot *slot_of(const portreg_handle_t *h)
{
    return (struct slot *)(uintptr_t)h;
}

int portreg_handle_open(portreg_t *reg, const char *id, size_t id_len, portreg_handle_t **out)
{
    struct slot *s;
    uint64_t born;

    if (reg == NULL || out == NULL || !id_valid(id, id_len))
        return PORTREG_EINVAL;
    portreg__writer_lock(reg);
    int rc = portreg__table_hold(reg, id, id_len, false, &s, &born);
    if (rc == 0) {
        /* Under the lock: see slot_droppable() in table.c. relaxed: the
         * lock orders it before any rebuild that reads it. */
        atomic_fetch_add_explicit(&s->pins, 1, memory_order_relaxed);
        *out = (portreg_handle_t *)(void *)s;
    }
    portreg__writer_unlock(reg);
    return rc;
}

bool portreg_handle_lookup(const portreg_handle_t *h, uint16_t *port)
{
    if (UNLIKELY(h == NULL))
        return false;
    /* acquire: pairs with the release CAS of the change we read. */
    uint64_t w = atomic_load_explicit(&slot_of(h)->state, memory_order_acquire);
    if (st_status(w) != PORTREG_BOUND)
        return false;
    if (port != NULL)
        *port = st_port(w);
    return true;
}

int portreg_handle_get(const portreg_handle_t *h, portreg_state_t *state)
{
    if (h == NULL || state == NULL)
        return PORTREG_EINVAL;
    /* acquire: as in portreg_handle_lookup(). */
    *state = st_public(atomic_load_explicit(&slot_of(h)->state, memory_order_acquire));
    return 0;
}

int portreg_handle_wait(const portreg_handle_t *h, uint32_t seen_version, int64_t timeout_ns,
                        portreg_state_t *state)
{
    if (h == NULL)
        return PORTREG_EINVAL;
    return portreg__slot_wait(slot_of(h), seen_version, timeout_ns, state);
}

const char *portreg_handle_id(const portreg_handle_t *h, size_t *id_len)
{
    if (h == NULL)
        return NULL;
    if (id_len != NULL)
        *id_len = slot_of(h)->id_len;
    return slot_of(h)->id;
}

void portreg_handle_close(portreg_handle_t *h)
{
    if (h == NULL)
        return;
    /* release: our reads of the slot come before a compaction that sees
     * the count at zero and drops it (acquire in slot_droppable()). */
    atomic_fetch_sub_explicit(&slot_of(h)->pins, 1, memory_order_release);
}
