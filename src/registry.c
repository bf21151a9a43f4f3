/*
 * Registry lifetime, allocation and statistics.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "internal.h"

#define DEFAULT_CAPACITY 64

void *mem_alloc(struct portreg *reg, size_t size)
{
    return reg->alloc != NULL ? reg->alloc(reg->alloc_ctx, size) : malloc(size);
}

void mem_free(struct portreg *reg, void *ptr, size_t size)
{
    if (reg->free != NULL)
        reg->free(reg->alloc_ctx, ptr, size);
    else
        free(ptr);
}

void portreg_options_init(portreg_options_t *opts)
{
    if (opts != NULL)
        memset(opts, 0, sizeof *opts);
}

static uint64_t random_seed(void)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
        seed = (uint64_t)(uintptr_t)&seed ^ (uint64_t)getpid() * UINT64_C(0x9e3779b97f4a7c15);
    return seed != 0 ? seed : 1;
}

portreg_t *portreg_create(const portreg_options_t *opts)
{
    portreg_options_t o;
    static _Atomic uint64_t generations = 1;

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
    void *raw = mem_alloc(&tmp, raw_size);
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
    reg->seed = o.hash_seed != 0 ? o.hash_seed : random_seed();
    reg->gen = atomic_fetch_add_explicit(&generations, 1, memory_order_relaxed);
    reg->membarrier = !o.no_membarrier && membarrier_setup();
    atomic_init(&reg->efd, -1);
    ck_epoch_init(&reg->epoch);

    int err = pthread_key_create(&reg->key, reader_release);
    if (err != 0)
        goto fail_key;
    err = ENOMEM;
    if (pthread_mutex_init(&reg->writer, NULL) != 0)
        goto fail_mutex;
    reg->writer_rec = reader_new(reg);
    if (reg->writer_rec == NULL)
        goto fail_table;

    writer_lock(reg);
    ck_ht_t *ht = table_new(reg, o.initial_capacity != 0 ? o.initial_capacity : DEFAULT_CAPACITY);
    writer_unlock(reg);
    if (ht == NULL)
        goto fail_table;
    /* Nobody else can see reg yet; the store still publishes the table. */
    atomic_store_explicit(&reg->table, ht, memory_order_release);
    return reg;

fail_table:
    readers_free_all(reg);
    pthread_mutex_destroy(&reg->writer);
fail_mutex:
    pthread_key_delete(reg->key);
fail_key:
    mem_free(&tmp, raw, raw_size);
    errno = err;
    return NULL;
}

void portreg_destroy(portreg_t *reg)
{
    if (reg == NULL)
        return;

    /* No thread runs a section now: everything deferred can go at once. */
    ck_epoch_reclaim(&reg->writer_rec->rec);

    ck_ht_t *ht = atomic_load_explicit(&reg->table, memory_order_acquire);
    ck_ht_iterator_t it = CK_HT_ITERATOR_INITIALIZER;
    ck_ht_entry_t *e;
    while (ck_ht_next(ht, &it, &e))
        slot_free(reg, ck_ht_entry_value(e));
    table_free_now(reg, ht);

    pthread_key_delete(reg->key);
    readers_free_all(reg);
    pthread_mutex_destroy(&reg->writer);
    int fd = atomic_load_explicit(&reg->efd, memory_order_relaxed);
    if (fd >= 0)
        close(fd);
    mem_free(reg, reg->raw, reg->raw_size);
}

size_t portreg_count(portreg_t *reg)
{
    if (reg == NULL)
        return 0;
    return counter_read(&reg->tracked);
}

uint64_t portreg_changes(portreg_t *reg)
{
    if (reg == NULL)
        return 0;
    /* acquire: pairs with the release increment in notify_change(), so a
     * caller that sees the count also sees the states behind it. */
    return atomic_load_explicit(&reg->changes, memory_order_acquire);
}

int portreg_stats(portreg_t *reg, portreg_stats_t *stats)
{
    if (reg == NULL || stats == NULL)
        return PORTREG_EINVAL;
    stats->tracked = counter_read(&reg->tracked);
    stats->slots = counter_read(&reg->slots);
    stats->table_capacity = atomic_load_explicit(&reg->table_capacity, memory_order_relaxed);
    stats->bytes = atomic_load_explicit(&reg->table_bytes, memory_order_relaxed) +
                   atomic_load_explicit(&reg->slot_bytes, memory_order_relaxed);
    stats->compactions = atomic_load_explicit(&reg->compactions, memory_order_relaxed);
    stats->changes = atomic_load_explicit(&reg->changes, memory_order_relaxed);
    return 0;
}

int portreg_reclaim(portreg_t *reg)
{
    if (reg == NULL)
        return PORTREG_EINVAL;
    writer_lock(reg);
    epoch_scan_barrier(reg);
    ck_epoch_barrier(&reg->writer_rec->rec);
    writer_unlock(reg);
    return 0;
}
