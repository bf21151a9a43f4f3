/* portreg itself, through its public API only. */
#include <stdio.h>
#include <stdlib.h>

#include "portreg.h"

#include "loops.h"

static void *pr_create(size_t capacity)
{
    portreg_options_t o;
    portreg_options_init(&o);
    o.initial_capacity = capacity;
    o.hash_seed = BENCH_SEED; /* the same table layout in every run */
    return portreg_create(&o);
}

static void pr_destroy(void *inst)
{
    portreg_destroy(inst);
}

static size_t pr_bytes(void *inst)
{
    portreg_stats_t st;
    return portreg_stats(inst, &st) == 0 ? st.bytes : 0;
}

static void *pr_enter(void *inst)
{
    /* The per-thread record is allocated here, outside the timed window. */
    int rc = portreg_thread_attach(inst);
    if (rc != 0) {
        fprintf(stderr, "portreg_thread_attach: %s\n", portreg_strerror(rc));
        abort();
    }
    return NULL;
}

static void pr_leave(void *inst, void *tls)
{
    (void)inst;
    (void)tls;
}

static inline bool pr_lookup(void *inst, void *tls, const char *id, size_t len, uint16_t *port)
{
    (void)tls;
    return portreg_lookup(inst, id, len, port);
}

static inline void pr_change(void *inst, void *tls, const char *id, size_t len, enum bst_op op,
                             uint16_t port)
{
    (void)tls;
    int rc = 0;
    switch (op) {
    case BST_REGISTER:
        rc = portreg_register(inst, id, len, port, NULL);
        break;
    case BST_TRACK:
        rc = portreg_track(inst, id, len);
        break;
    case BST_UNTRACK:
        rc = portreg_untrack(inst, id, len, NULL);
        break;
    }
    if (rc != 0) {
        fprintf(stderr, "portreg: %s\n", portreg_strerror(rc));
        abort();
    }
}

static int pr_insert(void *inst, void *tls, const char *id, size_t len, uint16_t port)
{
    (void)tls;
    return portreg_register(inst, id, len, port, NULL);
}

static void pr_remove(void *inst, void *tls, const char *id, size_t len)
{
    (void)tls;
    portreg_untrack(inst, id, len, NULL);
}

static void pr_read(struct bench_thread *t)
{
    bench_read_loop(t, pr_lookup, bench_no_quiesce);
}

static void pr_write(struct bench_thread *t)
{
    bench_write_loop(t, pr_change, bench_no_quiesce);
}

static const struct bench_store pr_store = {"portreg", pr_create, pr_destroy, pr_bytes};

const struct bench_impl bench_impl_portreg = {
    .name = "portreg",
    .store = &pr_store,
    .workloads = WL_ALL,
    .thread_enter = pr_enter,
    .thread_leave = pr_leave,
    .read_loop = pr_read,
    .write_loop = pr_write,
    .lookup = pr_lookup,
    .insert = pr_insert,
    .remove = pr_remove,
};
