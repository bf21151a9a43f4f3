/*
 * The lock-based peers on the ck-raw table:
 *
 *   mutex   one pthread_mutex_t around every operation
 *   rwlock  one pthread_rwlock_t (default attributes): shared for lookups,
 *           exclusive for writes
 *
 * Every access is under the lock, so plain (relaxed) accesses to the word
 * and immediate frees are enough. Both peers run the same code below; the
 * constant rw, inlined, picks the lock.
 */
#include <stdlib.h>

#include "ckmap.h"

static void *lk_enter(void *inst)
{
    (void)inst;
    return NULL;
}

static void lk_leave(void *inst, void *tls)
{
    (void)inst;
    (void)tls;
}

BENCH_INLINE void lk_lock(struct ckmap *m, bool rw, bool write)
{
    if (!rw)
        pthread_mutex_lock(&m->lock);
    else if (write)
        pthread_rwlock_wrlock(&m->rwlock);
    else
        pthread_rwlock_rdlock(&m->rwlock);
}

BENCH_INLINE void lk_unlock(struct ckmap *m, bool rw)
{
    if (rw)
        pthread_rwlock_unlock(&m->rwlock);
    else
        pthread_mutex_unlock(&m->lock);
}

BENCH_INLINE bool lk_lookup(void *inst, const char *id, size_t len, uint16_t *port, bool rw)
{
    struct ckmap *m = inst;
    lk_lock(m, rw, false);
    struct ck_slot *s = ckm_find(m, id, len);
    uint64_t w = s != NULL ? atomic_load_explicit(&s->state, memory_order_relaxed) : 0;
    lk_unlock(m, rw);
    return ckm_bound_port(w, port);
}

BENCH_INLINE void lk_change(void *inst, const char *id, size_t len, enum bst_op op, uint16_t port,
                            bool rw)
{
    struct ckmap *m = inst;
    lk_lock(m, rw, true);
    struct ck_slot *s = ckm_find(m, id, len);
    if (s != NULL) {
        uint64_t w = atomic_load_explicit(&s->state, memory_order_relaxed);
        atomic_store_explicit(&s->state, bst_apply(w, op, port), memory_order_relaxed);
    } else if (op == BST_REGISTER) {
        ckm_writer_context(m, NULL);
        ckm_insert_locked(m, id, len, port);
    }
    lk_unlock(m, rw);
}

static void lk_remove(void *inst, const char *id, size_t len, bool rw)
{
    struct ckmap *m = inst;
    lk_lock(m, rw, true);
    ckm_writer_context(m, NULL);
    free(ckm_remove_locked(m, id, len));
    lk_unlock(m, rw);
}

/* One peer: the functions above with rw fixed, each a plain function the
 * loops inline, and its impl table. */
#define LOCKED_PEER(var, label, rw)                                                                \
    static inline bool var##_lookup(void *inst, void *tls, const char *id, size_t len,             \
                                    uint16_t *port)                                                \
    {                                                                                              \
        (void)tls;                                                                                 \
        return lk_lookup(inst, id, len, port, rw);                                                 \
    }                                                                                              \
    static inline void var##_change(void *inst, void *tls, const char *id, size_t len,             \
                                    enum bst_op op, uint16_t port)                                 \
    {                                                                                              \
        (void)tls;                                                                                 \
        lk_change(inst, id, len, op, port, rw);                                                    \
    }                                                                                              \
    static int var##_insert(void *inst, void *tls, const char *id, size_t len, uint16_t port)      \
    {                                                                                              \
        var##_change(inst, tls, id, len, BST_REGISTER, port);                                      \
        return 0;                                                                                  \
    }                                                                                              \
    static void var##_remove(void *inst, void *tls, const char *id, size_t len)                    \
    {                                                                                              \
        (void)tls;                                                                                 \
        lk_remove(inst, id, len, rw);                                                              \
    }                                                                                              \
    static void var##_read(struct bench_thread *t)                                                 \
    {                                                                                              \
        bench_read_loop(t, var##_lookup, bench_no_quiesce);                                        \
    }                                                                                              \
    static void var##_write(struct bench_thread *t)                                                \
    {                                                                                              \
        bench_write_loop(t, var##_change, bench_no_quiesce);                                       \
    }                                                                                              \
    const struct bench_impl bench_impl_##var = {                                                   \
        .name = label,                                                                             \
        .store = &ckm_store,                                                                       \
        .workloads = WL_ALL,                                                                       \
        .thread_enter = lk_enter,                                                                  \
        .thread_leave = lk_leave,                                                                  \
        .read_loop = var##_read,                                                                   \
        .write_loop = var##_write,                                                                 \
        .lookup = var##_lookup,                                                                    \
        .insert = var##_insert,                                                                    \
        .remove = var##_remove,                                                                    \
    }

LOCKED_PEER(mutex, "mutex", false);
LOCKED_PEER(rwlock, "rwlock", true);
