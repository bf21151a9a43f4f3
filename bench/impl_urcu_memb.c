/* cds_lfht with the urcu-memb flavour (membarrier-based read side). */
#define _LGPL_SOURCE /* inline read-side fast paths, as applications use them */
#include <urcu/urcu-memb.h>

#define URCU_FL(x) urcu_memb_##x
#define URCU_QSBR  0
#include "impl_urcu.h"

static void ur_write_repl(struct bench_thread *t)
{
    bench_write_loop(t, ur_change_repl, ur_quiesce);
}

UR_DEFINE_IMPL(bench_impl_urcu_memb, "urcu-memb");

/* Same table and readers; the writer registers by cds_lfht_replace(). */
const struct bench_impl bench_impl_urcu_memb_repl = {
    .name = "urcu-repl",
    .store = &bench_impl_urcu_memb_store,
    .workloads = 1u << WL_READ_MOSTLY,
    .thread_enter = ur_enter,
    .thread_leave = ur_leave,
    .thread_offline = ur_offline,
    .thread_online = ur_online,
    .read_loop = ur_read,
    .write_loop = ur_write_repl,
    .lookup = ur_lookup,
    .insert = ur_insert,
    .remove = ur_remove,
};
