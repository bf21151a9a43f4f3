/*
 * Registry lifetime and statistics.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "internal.h"

#define DEFAULT_CAPACITY 64

void portreg_options_init(portreg_options_t *opts)
{
    if (opts != NULL)
        memset(opts, 0, sizeof *opts);
}

static uint64_t random_seed(void)
{
    uint64_t seed = 0;
    if (!portreg__os_random(&seed, sizeof seed))
        seed = (uint64_t)(uintptr_t)&seed ^ (uint64_t)getpid() * UINT64_C(0x9e3779b97f4a7c15);
    return seed != 0 ? seed : 1;
}

portreg_t *portreg_create(const portreg_options_t *opts)
{
    portreg_options_t o;

    portreg_options_init(&o);
    if (opts != NULL)
        o = *opts;
    bool reserved_clear = true;
    for (size_t i = 0; i < sizeof o.reserved / sizeof o.reserved[0]; i++)
        reserved_clear = reserved_clear && o.reserved[i] == 0;
    if ((o.alloc == NULL) != (o.free == NULL) || !reserved_clear) {
        errno = EINVAL;
        return NULL;
    }

    /* The registry embeds cache-aligned members: over-allocate and align. */
    struct portreg tmp = {.alloc = o.alloc, .free = o.free, .alloc_ctx = o.alloc_ctx};
    size_t align = alignof(struct portreg);
    size_t raw_size = sizeof(struct portreg) + align - 1;
    void *raw = portreg__mem_alloc(&tmp, raw_size);
    if (raw == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    struct portreg *reg =
        (struct portreg *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
    memset(reg, 0, sizeof *reg);
    reg->alloc = o.alloc;
    reg->free = o.free;
    reg->alloc_ctx = o.alloc_ctx;
    reg->raw = raw;
    reg->raw_size = raw_size;
    reg->seed_fixed = o.hash_seed != 0;
    reg->seed = reg->seed_fixed ? o.hash_seed : random_seed();
    reg->max_ids = o.max_ids;
    atomic_init(&reg->notifier, NOTIFIER_NONE);

    int err = portreg__epoch_init(reg, !o.no_membarrier, !o.no_reclaim_thread);
    if (err != 0)
        goto fail_epoch;
    err = portreg__os_lock_init(&reg->writer);
    if (err != 0)
        goto fail_mutex;
    err = ENOMEM;
    reg->inline_read = portreg__probe_inline_ok();
    uint64_t seed = reg->seed;
    struct table *t = portreg__table_new(
        reg, o.initial_capacity != 0 ? o.initial_capacity : DEFAULT_CAPACITY, seed);
    if (t == NULL)
        goto fail_table;
    portreg__table_install(reg, t);
    return reg;

fail_table:
    portreg__os_lock_destroy(&reg->writer);
fail_mutex:
    portreg__epoch_fini(reg);
fail_epoch:
    portreg__mem_free(&tmp, raw, raw_size);
    errno = err;
    return NULL;
}

void portreg_destroy(portreg_t *reg)
{
    if (reg == NULL)
        return;
    /* No thread runs a section now: the epoch frees everything deferred,
     * then the live table and its slots go. */
    portreg__epoch_fini(reg);
    portreg__table_destroy(reg);
    portreg__os_lock_destroy(&reg->writer);
    portreg__notifier_close(reg);
    portreg__mem_free(reg, reg->raw, reg->raw_size);
}

size_t portreg_count(portreg_t *reg)
{
    if (reg == NULL)
        return 0;
    return books_read(&reg->books.tracked);
}

uint64_t portreg_changes(portreg_t *reg)
{
    if (reg == NULL)
        return 0;
    /* seq_cst: acquire pairs with the increment in books_changed(), so a
     * caller that sees the count also sees the states behind it; seq_cst
     * closes the store-buffering pair with portreg_eventfd() (wait.c). */
    return atomic_load_explicit(&reg->books.changes, memory_order_seq_cst);
}

int portreg_stats(portreg_t *reg, portreg_stats_t *stats)
{
    if (reg == NULL || stats == NULL)
        return PORTREG_EINVAL;
    memset(stats, 0, sizeof *stats);
    stats->tracked = books_read(&reg->books.tracked);
    stats->slots = books_read(&reg->books.slots);
    stats->table_capacity = atomic_load_explicit(&reg->books.table_capacity, memory_order_relaxed);
    stats->bytes = atomic_load_explicit(&reg->books.table_bytes, memory_order_relaxed) +
                   atomic_load_explicit(&reg->books.slot_bytes, memory_order_relaxed);
    stats->compactions = atomic_load_explicit(&reg->books.compactions, memory_order_relaxed);
    stats->changes = atomic_load_explicit(&reg->books.changes, memory_order_relaxed);
    stats->probe_max = atomic_load_explicit(&reg->books.probe_max, memory_order_relaxed);
    stats->reseeds = atomic_load_explicit(&reg->books.reseeds, memory_order_relaxed);
    stats->deferred_bytes = atomic_load_explicit(&reg->epoch.pending_bytes, memory_order_relaxed);
    return 0;
}

int portreg_reclaim(portreg_t *reg)
{
    if (reg == NULL)
        return PORTREG_EINVAL;
    return portreg__epoch_reclaim(reg);
}

int portreg_thread_attach(portreg_t *reg)
{
    if (reg == NULL)
        return PORTREG_EINVAL;
    return epoch_record(reg, &reg->epoch) != NULL ? 0 : PORTREG_ENOMEM;
}
