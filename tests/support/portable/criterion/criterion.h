/* Criterion's header name, for builds with PORTREG_TEST_RUNNER=portable:
 * see ../../portable_criterion.h. */
#include "../../portable_criterion.h"
