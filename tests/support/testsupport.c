/* The counting allocator of testsupport.h. */
#include <stdlib.h>
#include <string.h>

#include "testsupport.h"

struct block {
    size_t size;
    uint64_t tag;
};
_Static_assert(sizeof(struct block) == 16, "keeps malloc's 16-byte alignment");
#define TAG_LIVE        UINT64_C(0x706f72747265676c)
#define TAG_DEAD        UINT64_C(0x6465616464656164)
#define QUARANTINE_BYTE 0xdb

static void *counting_alloc(void *ctx, size_t size)
{
    struct counting *c = ctx;
    /* relaxed: the countdown is set before the call under test starts (on
     * this thread or before its thread was created); the decrement is one
     * atomic step, so exactly one allocation sees it reach zero. */
    if (atomic_load_explicit(&c->fail_countdown, memory_order_relaxed) > 0 &&
        atomic_fetch_sub_explicit(&c->fail_countdown, 1, memory_order_relaxed) == 1) {
        atomic_fetch_add_explicit(&c->failures, 1, memory_order_relaxed);
        return NULL;
    }
    if (c->max_block != 0 && size > c->max_block) {
        atomic_fetch_add_explicit(&c->refused, 1, memory_order_relaxed);
        return NULL;
    }
    if (size >= (size_t)64 << 10)
        atomic_fetch_add_explicit(&c->large_allocs, 1, memory_order_relaxed);
    struct block *b = malloc(sizeof *b + size);
    if (b == NULL)
        return NULL;
    b->size = size;
    b->tag = TAG_LIVE;
    atomic_fetch_add_explicit(&c->live_bytes, (int64_t)size, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->live_blocks, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->total_allocs, 1, memory_order_relaxed);
    return b + 1;
}

static void counting_free(void *ctx, void *ptr, size_t size)
{
    struct counting *c = ctx;
    if (ptr == NULL)
        return;
    struct block *b = (struct block *)ptr - 1;
    if (b->tag != TAG_LIVE || b->size != size) {
        atomic_fetch_add_explicit(&c->bad_frees, 1, memory_order_relaxed);
        return; /* leave it: freeing a block we cannot trust could corrupt */
    }
    b->tag = TAG_DEAD;
    atomic_fetch_sub_explicit(&c->live_bytes, (int64_t)size, memory_order_relaxed);
    atomic_fetch_sub_explicit(&c->live_blocks, 1, memory_order_relaxed);
    if (!c->quarantine) {
        free(b);
        return;
    }
    /* Kept: the pattern shows a later write; the tag links the list (and
     * is no longer TAG_LIVE, so a second free counts as bad). */
    memset(b + 1, QUARANTINE_BYTE, size);
    void *head = atomic_load_explicit(&c->quarantined, memory_order_relaxed);
    do
        b->tag = (uint64_t)(uintptr_t)head;
    while (!atomic_compare_exchange_weak_explicit(&c->quarantined, &head, b, memory_order_release,
                                                  memory_order_relaxed));
}

bool counting_quarantine_intact(struct counting *c)
{
    bool intact = true;
    /* acquire: pairs with the release push; the blocks' bytes are ours. */
    struct block *b = atomic_exchange_explicit(&c->quarantined, NULL, memory_order_acquire);
    while (b != NULL) {
        struct block *next = (struct block *)(uintptr_t)b->tag;
        const unsigned char *p = (const unsigned char *)(b + 1);
        for (size_t i = 0; i < b->size; i++)
            intact &= p[i] == QUARANTINE_BYTE;
        free(b);
        b = next;
    }
    return intact;
}

void counting_install(struct counting *c, portreg_options_t *opts)
{
    opts->alloc = counting_alloc;
    opts->free = counting_free;
    opts->alloc_ctx = c;
}

void counting_options(struct counting *c, portreg_options_t *opts)
{
    memset(c, 0, sizeof *c);
    portreg_options_init(opts);
    counting_install(c, opts);
}

bool counting_is_empty(struct counting *c)
{
    return atomic_load_explicit(&c->live_bytes, memory_order_relaxed) == 0 &&
           atomic_load_explicit(&c->live_blocks, memory_order_relaxed) == 0 &&
           atomic_load_explicit(&c->bad_frees, memory_order_relaxed) == 0;
}
