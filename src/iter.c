/*
 * The snapshot iterator and the copy-out snapshot.
 *
 * The iterator pins one ck_ht map at init and walks its buckets inside an
 * epoch section. Why that gives the documented guarantees:
 * - A bucket of a map, once filled, never changes: nothing is removed from
 *   a live table, and grow and compaction build new maps instead of
 *   editing the old one. So no id shows twice, and the walk never restarts.
 * - A backend tracked for the whole iteration was in the pinned map when
 *   init ran (its slot was published before) and stays reachable there: the
 *   epoch section keeps the old map and its slots alive after a grow or a
 *   compaction, and a tracked slot is never retired.
 * - Each entry's state is one acquire load of the slot's word, made during
 *   the iteration; untracked and retired slots are skipped.
 */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct iter {
    struct portreg *reg;
    struct epoch_record *r; /* NULL: empty iteration (setup failed) */
    ck_ht_t pinned;         /* a copy of the table's header, map fixed */
    ck_ht_iterator_t pos;
};

_Static_assert(sizeof(struct iter) <= sizeof(portreg_iter_t), "portreg_iter_t too small");
_Static_assert(alignof(struct iter) <= alignof(portreg_iter_t), "portreg_iter_t misaligned");

void portreg_iter_init(portreg_iter_t *it, portreg_t *reg)
{
    struct iter *i = (struct iter *)(void *)it;

    if (it == NULL)
        return;
    memset(i, 0, sizeof *i);
    if (reg == NULL)
        return;
    i->reg = reg;
    i->r = epoch_record(reg, &reg->epoch);
    if (i->r == NULL)
        return;
    epoch_begin(&reg->epoch, i->r);
    ck_ht_t *ht = &table_current(reg)->ht;
    /* ck_ht_next() reads table->map on every call, and a grow replaces it:
     * iterate over a private copy whose map cannot move. The other fields
     * never change after ck_ht_init(), so plain reads of them race with
     * nothing; the map pointer, which a concurrent grow stores, is read
     * atomically. ck_ht stores it after a store fence, so an acquire load
     * sees a complete map. */
    i->pinned.m = ht->m;
    i->pinned.mode = ht->mode;
    i->pinned.seed = ht->seed;
    i->pinned.h = ht->h;
    i->pinned.map = __atomic_load_n(&ht->map, __ATOMIC_ACQUIRE);
    TSAN_ACQUIRE(i->pinned.map); /* pairs with TSAN_RELEASE in ckm_malloc() */
    ck_ht_iterator_init(&i->pos);
}

bool portreg_iter_next(portreg_iter_t *it, portreg_entry_t *entry)
{
    struct iter *i = (struct iter *)(void *)it;
    ck_ht_entry_t *e;

    if (it == NULL || entry == NULL || i->r == NULL)
        return false;
    while (ck_ht_next(&i->pinned, &i->pos, &e)) {
        /* ck_ht stores the value before the key (with a store fence); the
         * key was non-empty, so order our read of the value after it. */
        atomic_thread_fence(memory_order_acquire);
        struct slot *s = ck_ht_entry_value(e);
        TSAN_ACQUIRE(s); /* pairs with TSAN_RELEASE in table_insert() */
        /* acquire: pairs with the release CAS of the writer of this state. */
        uint64_t w = atomic_load_explicit(&s->state, memory_order_acquire);
        if (!st_tracked(w))
            continue;
        entry->id = s->id;
        entry->id_len = s->id_len;
        entry->state = st_public(w);
        return true;
    }
    return false;
}

void portreg_iter_fini(portreg_iter_t *it)
{
    struct iter *i = (struct iter *)(void *)it;

    if (it == NULL || i->r == NULL)
        return;
    epoch_end(&i->reg->epoch, i->r);
    i->r = NULL;
}

static int entry_cmp(const void *a, const void *b)
{
    const portreg_entry_t *x = a, *y = b;
    size_t n = x->id_len < y->id_len ? x->id_len : y->id_len;
    int c = memcmp(x->id, y->id, n);
    if (c != 0)
        return c;
    return (x->id_len > y->id_len) - (x->id_len < y->id_len);
}

int portreg_snapshot(portreg_t *reg, portreg_snapshot_t *snap)
{
    if (reg == NULL || snap == NULL)
        return PORTREG_EINVAL;
    snap->count = 0;
    snap->entries = NULL;
    if (epoch_record(reg, &reg->epoch) == NULL)
        return PORTREG_ENOMEM;

    /* Entries and id bytes in one block of plain malloc: the snapshot
     * outlives the registry and its allocator. Grown geometrically. */
    size_t cap = 0, n = 0, idbytes = 0;
    portreg_entry_t *v = NULL;
    char *ids = NULL;
    size_t idcap = 0;
    int rc = 0;
    portreg_iter_t it;
    portreg_entry_t e;

    portreg_iter_init(&it, reg);
    while (portreg_iter_next(&it, &e)) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            portreg_entry_t *nv = realloc(v, ncap * sizeof *v);
            if (nv == NULL) {
                rc = PORTREG_ENOMEM;
                break;
            }
            v = nv;
            cap = ncap;
        }
        if (idbytes + e.id_len > idcap) {
            size_t ncap = idcap ? idcap * 2 : 4096;
            while (ncap < idbytes + e.id_len)
                ncap *= 2;
            char *nids = realloc(ids, ncap);
            if (nids == NULL) {
                rc = PORTREG_ENOMEM;
                break;
            }
            ids = nids;
            idcap = ncap;
        }
        memcpy(ids + idbytes, e.id, e.id_len);
        v[n] = e;
        v[n].id = (const char *)(uintptr_t)idbytes; /* offset until ids stops moving */
        idbytes += e.id_len;
        n++;
    }
    portreg_iter_fini(&it);
    if (rc != 0) {
        free(v);
        free(ids);
        return rc;
    }

    /* One allocation the caller frees: entries, then the id bytes. */
    portreg_entry_t *out = malloc(n * sizeof *out + idbytes + 1);
    if (out == NULL) {
        free(v);
        free(ids);
        return PORTREG_ENOMEM;
    }
    char *idout = (char *)(out + n);
    if (idbytes > 0)
        memcpy(idout, ids, idbytes);
    for (size_t k = 0; k < n; k++) {
        out[k] = v[k];
        out[k].id = idout + (uintptr_t)v[k].id;
    }
    free(v);
    free(ids);
    qsort(out, n, sizeof *out, entry_cmp);
    snap->count = n;
    snap->entries = out;
    return 0;
}

void portreg_snapshot_free(portreg_snapshot_t *snap)
{
    if (snap == NULL)
        return;
    free(snap->entries);
    snap->entries = NULL;
    snap->count = 0;
}
