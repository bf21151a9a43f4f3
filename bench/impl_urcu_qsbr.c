/* cds_lfht with the urcu-qsbr flavour: read-side sections cost nothing,
 * readers announce quiescent states instead (every batch of lookups). */
#define _LGPL_SOURCE /* inline read-side fast paths, as applications use them */
#include <urcu/urcu-qsbr.h>

#define URCU_FL(x) urcu_qsbr_##x
#define URCU_QSBR  1
#include "impl_urcu.h"

UR_DEFINE_IMPL(bench_impl_urcu_qsbr, "urcu-qsbr");
