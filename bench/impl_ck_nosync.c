/*
 * ck-nosync: the ck-raw table read with ck_ht_get_spmc alone, no epoch
 * section. It only ever runs with no writer: the floor of the read side.
 */
#include "ckmap.h"

static void *none_enter(void *inst)
{
    (void)inst;
    return NULL;
}

static void none_leave(void *inst, void *tls)
{
    (void)inst;
    (void)tls;
}

static inline bool nosync_lookup(void *inst, void *tls, const char *id, size_t len, uint16_t *port)
{
    (void)tls;
    struct ck_slot *s = ckm_find(inst, id, len);
    uint64_t w = s != NULL ? atomic_load_explicit(&s->state, memory_order_relaxed) : 0;
    return ckm_bound_port(w, port);
}

static void nosync_read(struct bench_thread *t)
{
    bench_read_loop(t, nosync_lookup, bench_no_quiesce);
}

const struct bench_impl bench_impl_ck_nosync = {
    .name = "ck-nosync",
    .store = &ckm_store,
    .workloads = WL_READ_ONLY,
    .thread_enter = none_enter,
    .thread_leave = none_leave,
    .read_loop = nosync_read,
    .lookup = nosync_lookup,
};
