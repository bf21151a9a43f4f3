/*
 * ck-raw: the building blocks of portreg with no wrapper. A ck_epoch
 * section around ck_ht_get_spmc, state changes by CAS, inserts and
 * removals serialised by a mutex (ck_ht is single-writer), removed slots
 * and old tables freed through ck_epoch_call.
 */
#include <stdlib.h>

#include "ckmap.h"

static void *raw_enter(void *inst)
{
    struct ckmap *m = inst;
    return ck_records_enter(&m->records);
}

static void raw_leave(void *inst, void *tls)
{
    (void)inst;
    ck_epoch_record_t *rec = tls;
    /* Run this thread's deferred frees before its record is recycled. */
    if (rec->n_pending > 0)
        ck_epoch_barrier(rec);
    ck_epoch_unregister(rec);
}

static inline bool raw_lookup(void *inst, void *tls, const char *id, size_t len, uint16_t *port)
{
    ck_epoch_record_t *rec = tls;
    ck_epoch_begin(rec, NULL);
    struct ck_slot *s = ckm_find(inst, id, len);
    /* acquire: pairs with the release store / CAS that wrote the word */
    uint64_t w = s != NULL ? atomic_load_explicit(&s->state, memory_order_acquire) : 0;
    ck_epoch_end(rec, NULL);
    return ckm_bound_port(w, port);
}

static void raw_insert_slow(struct ckmap *m, ck_epoch_record_t *rec, const char *id, size_t len,
                            uint16_t port)
{
    pthread_mutex_lock(&m->writer_lock);
    ckm_writer_context(m, rec);
    struct ck_slot *s = ckm_insert_locked(m, id, len, port);
    if (s != NULL) /* another writer got there first */
        bst_cas_apply(&s->state, BST_REGISTER, port);
    pthread_mutex_unlock(&m->writer_lock);
    /* a grow deferred the old table: free it once readers have moved on */
    if (rec->n_pending > 0)
        ck_epoch_poll(rec);
}

static inline void raw_change(void *inst, void *tls, const char *id, size_t len, enum bst_op op,
                              uint16_t port)
{
    ck_epoch_record_t *rec = tls;
    ck_epoch_begin(rec, NULL);
    struct ck_slot *s = ckm_find(inst, id, len);
    if (s != NULL)
        bst_cas_apply(&s->state, op, port);
    ck_epoch_end(rec, NULL);
    if (s == NULL && op == BST_REGISTER)
        raw_insert_slow(inst, rec, id, len, port);
}

static int raw_insert(void *inst, void *tls, const char *id, size_t len, uint16_t port)
{
    raw_change(inst, tls, id, len, BST_REGISTER, port);
    return 0;
}

static void raw_slot_free(ck_epoch_entry_t *e)
{
    free((char *)e - offsetof(struct ck_slot, epoch_entry));
}

static void raw_remove(void *inst, void *tls, const char *id, size_t len)
{
    struct ckmap *m = inst;
    ck_epoch_record_t *rec = tls;
    pthread_mutex_lock(&m->writer_lock);
    ckm_writer_context(m, rec);
    struct ck_slot *s = ckm_remove_locked(m, id, len);
    pthread_mutex_unlock(&m->writer_lock);
    if (s != NULL)
        ck_epoch_call(rec, &s->epoch_entry, raw_slot_free);
    if (rec->n_pending >= 1024)
        ck_epoch_poll(rec);
}

static void raw_read(struct bench_thread *t)
{
    bench_read_loop(t, raw_lookup, bench_no_quiesce);
}

static void raw_write(struct bench_thread *t)
{
    bench_write_loop(t, raw_change, bench_no_quiesce);
}

const struct bench_impl bench_impl_ck_raw = {
    .name = "ck-raw",
    .store = &ckm_store,
    .workloads = WL_ALL,
    .thread_enter = raw_enter,
    .thread_leave = raw_leave,
    .read_loop = raw_read,
    .write_loop = raw_write,
    .lookup = raw_lookup,
    .insert = raw_insert,
    .remove = raw_remove,
};
