/*
 * Allocation through a registry's hooks (portreg_options_t.alloc and
 * .free), or malloc() and free() when it has none.
 */
#include <stdlib.h>

#include "alloc.h"
#include "internal.h"

void *portreg__mem_alloc(struct portreg *reg, size_t size)
{
    return reg->alloc != NULL ? reg->alloc(reg->alloc_ctx, size) : malloc(size);
}

void portreg__mem_free(struct portreg *reg, void *ptr, size_t size)
{
    if (reg->free != NULL)
        reg->free(reg->alloc_ctx, ptr, size);
    else
        free(ptr);
}
