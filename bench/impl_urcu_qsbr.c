/* cds_lfht with the urcu-qsbr flavour: read-side sections cost nothing,
 * readers announce quiescent states instead (every batch of lookups). */
#define _LGPL_SOURCE /* inline read-side fast paths, as applications use them */
#include <urcu/urcu-qsbr.h>

#define URCU_FL(x) urcu_qsbr_##x
#define URCU_QSBR  1
#include "impl_urcu.h"

static const struct bench_store qsbr_store = {"urcu-qsbr", ur_create, ur_destroy, ur_bytes};

const struct bench_impl bench_impl_urcu_qsbr = {
    .name = "urcu-qsbr",
    .store = &qsbr_store,
    .workloads = WL_ALL,
    .thread_enter = ur_enter,
    .thread_leave = ur_leave,
    .thread_offline = ur_offline,
    .thread_online = ur_online,
    .read_loop = ur_read,
    .write_loop = ur_write,
    .lookup = ur_lookup,
    .insert = ur_insert,
    .remove = ur_remove,
};
