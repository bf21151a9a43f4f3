/*
 * Per-thread epoch records.
 *
 * Every thread that calls into a registry needs its own ck_epoch record.
 * It is found through a one-entry thread-local cache (the common case: one
 * registry per process) and otherwise through the registry's pthread key.
 * When the thread exits, the key's destructor unregisters the record, and
 * the next new thread recycles it: thousands of short-lived threads reuse a
 * handful of records instead of leaking one each. The registry owns every
 * record and frees them all in portreg_destroy().
 */
#include <errno.h>
#include <stdalign.h>
#include <string.h>

#include "internal.h"

_Thread_local struct reader_cache portreg_tls_reader;

/* Records are cache-line aligned (ck_epoch_record_t says so); the
 * allocator hooks promise only malloc's alignment, so over-allocate. */
struct reader *reader_new(struct portreg *reg)
{
    size_t align = alignof(struct reader);
    size_t raw_size = sizeof(struct reader) + align - 1;
    void *raw = mem_alloc(reg, raw_size);
    if (raw == NULL)
        return NULL;
    struct reader *r = (struct reader *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
    memset(r, 0, sizeof *r);
    r->raw = raw;
    r->raw_size = raw_size;
    ck_epoch_register(&reg->epoch, &r->rec, NULL);
    return r;
}

struct reader *reader_get_slow(struct portreg *reg)
{
    struct reader *r = pthread_getspecific(reg->key);

    if (r == NULL) {
        /* A record a finished thread gave back, else a new one. */
        ck_epoch_record_t *rec = ck_epoch_recycle(&reg->epoch, NULL);
        /* TSan: the handover from the exited owner happens inside libck;
         * pairs with the release in reader_release(). */
        if (rec != NULL)
            TSAN_ACQUIRE(rec);
        r = rec != NULL ? (struct reader *)rec : reader_new(reg);
        if (r == NULL)
            return NULL;
        if (pthread_setspecific(reg->key, r) != 0) {
            ck_epoch_unregister(&r->rec);
            return NULL;
        }
    }
    portreg_tls_reader = (struct reader_cache){reg, reg->gen, r};
    return r;
}

/* pthread key destructor: the thread is exiting. The record goes back to
 * the registry's pool; it is outside any epoch section (sections never
 * span a return to the caller except for iterators, and an iterator left
 * open at thread exit is a caller bug). */
void reader_release(void *p)
{
    struct reader *r = p;

    if (portreg_tls_reader.r == r)
        portreg_tls_reader = (struct reader_cache){NULL, 0, NULL};
    TSAN_RELEASE(&r->rec); /* acquired by the thread that recycles it */
    ck_epoch_unregister(&r->rec);
}

/* Destroy: no thread uses reg any more, so every record can go. */
void readers_free_all(struct portreg *reg)
{
    ck_stack_entry_t *cursor, *next;

    CK_STACK_FOREACH_SAFE(&reg->epoch.records, cursor, next)
    {
        /* record_next is the first member of ck_epoch_record_t, which is
         * the first member of struct reader. */
        struct reader *r = (struct reader *)(void *)cursor;
        mem_free(reg, r->raw, r->raw_size);
    }
    if (portreg_tls_reader.reg == reg)
        portreg_tls_reader = (struct reader_cache){NULL, 0, NULL};
}

int portreg_thread_attach(portreg_t *reg)
{
    if (reg == NULL)
        return PORTREG_EINVAL;
    return reader_get(reg) != NULL ? 0 : PORTREG_ENOMEM;
}
