/*
 * The registry's bookkeeping: every counter update, in one place.
 *
 * All counters are relaxed: they feed statistics and the compaction
 * trigger, never a correctness decision, with one exception named below
 * (changes, which pairs with portreg_changes() and portreg_eventfd()).
 */
#ifndef PORTREG_BOOKS_H
#define PORTREG_BOOKS_H

#include "internal.h"

#define BOOK_ADD(field, v) atomic_fetch_add_explicit(&(field), (v), memory_order_relaxed)
#define BOOK_SUB(field, v) atomic_fetch_sub_explicit(&(field), (v), memory_order_relaxed)

/* A counter as a size, clamping the transient dips. */
static inline size_t books_read(_Atomic intptr_t *c)
{
    intptr_t v = atomic_load_explicit(c, memory_order_relaxed);
    return v > 0 ? (size_t)v : 0;
}

/* A slot's word went from old to next. */
static inline void books_transition(struct portreg *reg, uint64_t old, uint64_t next)
{
    if (!st_tracked(old) && st_tracked(next)) {
        BOOK_ADD(reg->books.tracked, 1);
        BOOK_SUB(reg->books.dead, 1);
    } else if (st_tracked(old) && !st_tracked(next)) {
        BOOK_SUB(reg->books.tracked, 1);
        BOOK_ADD(reg->books.dead, 1);
    }
}

/* A slot of size bytes entered the table with the given word. */
static inline void books_slot_inserted(struct portreg *reg, uint64_t word, size_t bytes)
{
    BOOK_ADD(reg->books.slot_bytes, bytes);
    BOOK_ADD(reg->books.slots, 1);
    if (st_tracked(word))
        BOOK_ADD(reg->books.tracked, 1);
    else
        BOOK_ADD(reg->books.dead, 1);
}

/* A rebuild dropped n untracked slots and kept `stuck` it could not drop. */
static inline void books_rebuilt(struct portreg *reg, size_t n, size_t stuck, bool reseed)
{
    reg->full_refusals = 0;
    BOOK_SUB(reg->books.dead, (intptr_t)n);
    BOOK_SUB(reg->books.slots, (intptr_t)n);
    atomic_store_explicit(&reg->books.stuck, (intptr_t)stuck, memory_order_relaxed);
    atomic_store_explicit(&reg->books.slots_after_rebuild,
                          atomic_load_explicit(&reg->books.slots, memory_order_relaxed),
                          memory_order_relaxed);
    if (reseed)
        BOOK_ADD(reg->books.reseeds, 1);
    else
        BOOK_ADD(reg->books.compactions, 1);
}

/* The current table's probe maximum and bucket count, after a change. */
static inline void books_table(struct portreg *reg, size_t probe_max, size_t buckets)
{
    atomic_store_explicit(&reg->books.probe_max, probe_max, memory_order_relaxed);
    atomic_store_explicit(&reg->books.table_capacity, buckets, memory_order_relaxed);
}

/* A kept slot became droppable or tracked; an untracked slot became held. */
static inline void books_unkept(struct portreg *reg)
{
    BOOK_SUB(reg->books.stuck, 1);
}

static inline void books_kept(struct portreg *reg)
{
    BOOK_ADD(reg->books.stuck, 1);
}

static inline void books_slot_freed(struct portreg *reg, size_t bytes)
{
    BOOK_SUB(reg->books.slot_bytes, bytes);
}

/* ck_ht allocated or freed a map. */
static inline void books_map_allocated(struct portreg *reg, size_t bytes)
{
    BOOK_ADD(reg->books.table_bytes, bytes);
}

static inline void books_map_freed(struct portreg *reg, size_t bytes)
{
    BOOK_SUB(reg->books.table_bytes, bytes);
}

/* A change was applied. seq_cst, not relaxed: with the seq_cst load of
 * the eventfd in portreg__notify_change() and the seq_cst publication in
 * portreg_eventfd(), it forbids the store-buffering outcome where a change
 * is neither signalled on a new eventfd nor counted in the baseline its
 * creator reads next (see wait.c). */
static inline void books_changed(struct portreg *reg)
{
    atomic_fetch_add_explicit(&reg->books.changes, 1, memory_order_seq_cst);
}

/* Compaction is due when the untracked slots it could drop reach half of
 * all slots (and at least COMPACT_MIN_DEAD). A rebuild copies every slot,
 * so each one is paid for by that many untracks (or abandoned
 * placeholders): O(1) amortized per operation, whatever the estimate's
 * error, since it only drifts by one per such operation. Slots counted as
 * kept (waited on or held by a handle, books.stuck) are not droppable, so
 * they cannot make every untrack rebuild the table; they do count in the
 * total, so untracked garbage stays below the number of slots that must
 * stay.
 *
 * books.stuck can only overstate: portreg_handle_close() has no registry
 * to tell when it drops the last pin of an untracked slot, so that slot
 * stays counted as kept until a rebuild recounts. Were that the only
 * trigger, a broker that untracks and then closes handles on fresh ids
 * would never rebuild. So a rebuild is also due when half the slots are
 * untracked and the table has doubled (plus 2 * COMPACT_MIN_DEAD) since
 * the last one: paid for by the inserts that doubled it, so O(1) amortized
 * as well, and it drops whatever the handles left once they closed. */
#define COMPACT_MIN_DEAD 64
static inline bool books_compaction_due(struct portreg *reg)
{
    size_t dead = books_read(&reg->books.dead);
    size_t stuck = books_read(&reg->books.stuck);
    size_t slots = books_read(&reg->books.slots);
    size_t droppable = dead > stuck ? dead - stuck : 0;
    if (droppable >= COMPACT_MIN_DEAD && droppable * 2 >= slots)
        return true;
    size_t base = books_read(&reg->books.slots_after_rebuild);
    return dead >= COMPACT_MIN_DEAD && dead * 2 >= slots &&
           slots >= 2 * base + 2 * COMPACT_MIN_DEAD;
}

#endif
