/* Allocation through a registry's hooks (alloc.c). */
#ifndef PORTREG_ALLOC_H
#define PORTREG_ALLOC_H

#include <stddef.h>

#include "os/os.h" /* PORTREG_HIDDEN */

struct portreg;

/* NULL when out of memory. size must be the allocation's size at free. */
PORTREG_HIDDEN void *portreg__mem_alloc(struct portreg *reg, size_t size);
PORTREG_HIDDEN void portreg__mem_free(struct portreg *reg, void *ptr, size_t size);

#endif
