/*
 * portreg_lookup_many(): many lookups in one call, their memory accesses
 * overlapped.
 *
 * A lookup in a large table waits on two cache misses in a row: the map's
 * row, whose address comes from the hash, and then the slot, whose
 * address comes from that row. One lookup at a time, the processor can
 * rarely start the next lookup's misses while it waits. Here ids go in
 * groups of MANY_GROUP, each group in three passes, every pass over the
 * whole group before the next begins:
 *
 *   1. hash each id and prefetch its first row;
 *   2. read each first row (probe_first_row()) and prefetch the slot of
 *      the entry whose length and full hash match, or the next row when
 *      the first is full of other ids;
 *   3. compare each candidate's bytes and load its state word.
 *
 * So each pass finds in cache what the pass before requested a group's
 * worth of work earlier. An id the first row does not decide (a row full
 * of other ids, a hash collision), and every id of a table that does not
 * read inline (probe.c), goes through table_find() instead, at its place
 * in pass 3.
 *
 * Per id this is portreg_lookup() exactly: the same probe under the same
 * protocol (probe.h), one acquire load of the slot's state word, the same
 * result. What differs is the timing: a group shares one read section,
 * one table and one map pointer, loaded when the group starts, so an id's
 * probe may run a little later than its map load. That is a lookup that
 * was slow to run: its result is a state the id had at some instant
 * between the call's start and its return, for the reasons ops.c gives
 * for one lookup (a map or table replaced since is freed only after the
 * section). Ids are not read at one instant together.
 */
#include "internal.h"

#define MANY_GROUP 32

/* Where an id stands between the passes. */
enum many_step { MANY_INVALID, MANY_MISS, MANY_CANDIDATE, MANY_SLOW };

struct many_item {
    uint64_t h;
    struct probe_start ps;
    uintptr_t key_at, value;
    enum many_step step;
};

static PROBE_INLINE void prefetch_read(const void *p)
{
    __builtin_prefetch(p, 0, 3);
}

/* The state word of ids[i], read as read_state() in ops.c does. */
static PROBE_INLINE uint64_t many_word(const struct slot *s)
{
    /* acquire: pairs with the release CAS in slot_apply() (ops.c). */
    return s != NULL ? atomic_load_explicit(&s->state, memory_order_acquire)
                     : st_pack(PORTREG_UNTRACKED, 0, 0);
}

/* ids[0..n), n <= MANY_GROUP, inside one read section on table t.
 * Returns how many are bound. */
static size_t many_group(struct table *t, const portreg_id_t *ids, size_t n, uint16_t *ports)
{
    struct many_item it[MANY_GROUP];
    bool inline_read = PORTREG_INLINE_PROBE && t->inline_read;
    const struct probe_map *m = inline_read ? probe_map_of(&t->ht) : NULL;
    size_t bound = 0;

    for (size_t i = 0; i < n; i++) {
        if (UNLIKELY(!id_valid(ids[i].id, ids[i].id_len))) {
            it[i].step = MANY_INVALID;
            continue;
        }
        it[i].step = MANY_SLOW;
        if (!inline_read)
            continue;
        it[i].h = id_hash(ids[i].id, ids[i].id_len, &t->key);
        prefetch_read(probe_row(m, (size_t)(it[i].h & m->mask)));
    }
    if (inline_read) {
        for (size_t i = 0; i < n; i++) {
            if (it[i].step == MANY_INVALID)
                continue;
            it[i].ps = probe_begin(m, it[i].h);
            enum probe_result r =
                probe_first_row(m, it[i].ps, it[i].h, ids[i].id_len, &it[i].key_at, &it[i].value);
            if (r == PROBE_HIT) {
                it[i].step = MANY_CANDIDATE;
                prefetch_read((const void *)it[i].value);
                prefetch_read((const char *)it[i].key_at + ids[i].id_len - 1);
            } else if (r == PROBE_MISS) {
                it[i].step = MANY_MISS;
            } else {
                /* A full first row: the probe goes on at the next row,
                 * which table_find() will read in pass 3. */
                it[i].step = MANY_SLOW;
                size_t offset = (size_t)(it[i].h & m->mask);
                prefetch_read(probe_row(m, probe_next_offset(m, offset, it[i].h, PROBE_ROW)));
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        const struct slot *s = NULL;
        switch (it[i].step) {
        case MANY_INVALID:
            ports[i] = 0;
            continue;
        case MANY_CANDIDATE:
            if (LIKELY(probe_confirm(m, it[i].ps, it[i].key_at, it[i].value, ids[i].id,
                                     ids[i].id_len) == PROBE_HIT &&
                       PROBE_LOAD(&m->deletions) == it[i].ps.d)) {
                s = (const struct slot *)it[i].value;
                break;
            }
            /* a counter that moved or a hash collision: probe again */
            s = table_find(t, ids[i].id, ids[i].id_len);
            break;
        case MANY_MISS:
            /* ck_ht_get_spmc()'s last sample; table_find() if it moved. */
            if (UNLIKELY(PROBE_LOAD(&m->deletions) != it[i].ps.d))
                s = table_find(t, ids[i].id, ids[i].id_len);
            break;
        case MANY_SLOW:
            s = table_find(t, ids[i].id, ids[i].id_len);
            break;
        }
        uint64_t w = many_word(s);
        bool is_bound = st_status(w) == PORTREG_BOUND;
        ports[i] = is_bound ? st_port(w) : 0;
        bound += is_bound;
    }
    return bound;
}

ptrdiff_t portreg_lookup_many(portreg_t *reg, const portreg_id_t *ids, size_t n, uint16_t *ports)
{
    if (reg == NULL || (n > 0 && (ids == NULL || ports == NULL)) || n > PTRDIFF_MAX)
        return PORTREG_EINVAL;
    struct epoch_record *r = epoch_record(reg, &reg->epoch);
    if (UNLIKELY(r == NULL))
        return PORTREG_ENOMEM;

    size_t bound = 0;
    for (size_t i = 0; i < n && i < MANY_GROUP; i++)
        prefetch_read(ids[i].id);
    for (size_t done = 0; done < n; done += MANY_GROUP) {
        size_t k = n - done < MANY_GROUP ? n - done : MANY_GROUP;
        /* The next group's ids, while this group works. */
        for (size_t i = done + k; i < n && i < done + k + MANY_GROUP; i++)
            prefetch_read(ids[i].id);
        /* One section per group: a long array never holds back
         * reclamation for long, and each group reads the current table. */
        epoch_begin(&reg->epoch, r);
        bound += many_group(table_current(reg), ids + done, k, ports + done);
        epoch_end(&reg->epoch, r);
    }
    return (ptrdiff_t)bound;
}
