/* Allocation through a registry's hooks (alloc.c). */
#ifndef PORTREG_ALLOC_H
#define PORTREG_ALLOC_H

#include <stddef.h>

struct portreg;

/* NULL when out of memory. size must be the allocation's size at free. */
__attribute__((visibility("hidden"))) void *portreg__mem_alloc(struct portreg *reg, size_t size);
__attribute__((visibility("hidden"))) void portreg__mem_free(struct portreg *reg, void *ptr,
                                                             size_t size);

#endif
