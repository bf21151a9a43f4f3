/*
 * The epoch protocol: begin, end, defer, poll and reclaim. epoch.c opens
 * with the argument for why it is safe (grace periods), reclaim_thread.c,
 * epoch_records.c and epoch_fork.c with theirs (the reclaim thread,
 * per-thread records and exits, fork()); this header holds the two inline
 * functions the lookup path needs and the interface the writers use.
 */
#ifndef PORTREG_EPOCH_H
#define PORTREG_EPOCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ck_epoch.h>
#include <ck_pr.h>

#include "os/os.h"
#include "portreg.h"

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer)
/* libck is not instrumented, so ThreadSanitizer cannot see the
 * happens-before edges inside ck_ht and ck_epoch; these restate them
 * (doc/tsan-and-libck.md explains each one). */
#include <sanitizer/tsan_interface.h>
#define TSAN_RELEASE(addr) __tsan_release((void *)(addr))
#define TSAN_ACQUIRE(addr) __tsan_acquire((void *)(addr))
#else
#define TSAN_RELEASE(addr) ((void)(addr))
#define TSAN_ACQUIRE(addr) ((void)(addr))
#endif

#define LIKELY(x)   __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

struct portreg;

/* A thread's epoch record for one registry. */
struct epoch_record {
    ck_epoch_record_t rec; /* first: the records list hands us &rec back */
    void *raw;             /* what the allocator returned, for free */
    size_t raw_size;
};

/* The part of a registry that a thread's exit may touch: it lives (in
 * malloc's memory, not the registry's allocator) until the registry and
 * every thread tied to it have let go. epoch_records.c explains the hand-back. */
struct epoch_anchor {
    _Atomic size_t refs;              /* the registry's, plus one per link */
    _Atomic unsigned exiting;         /* threads handing a record back right now */
    _Atomic bool dead;                /* portreg_destroy() has begun */
    size_t slot;                      /* the registry's index in each thread's links */
    struct epoch_anchor *prev, *next; /* live registries, for fork (epoch_fork.c) */
    struct epoch_domain *dom;         /* while on that list: for the fork handlers */
};

/* A thread's tie to one registry, in the thread's own array of links by
 * slot number: malloc'd, touched only by that thread (and its exit). */
struct epoch_link {
    struct epoch_anchor *anchor;
    struct epoch_record *r; /* the registry's memory: valid while !anchor->dead */
};

/* Something to free once no reader can hold it. Embedded in the object. */
struct epoch_entry {
    struct epoch_entry *next;
    void (*free)(struct epoch_entry *e);
    size_t bytes;   /* for the backlog bound and statistics */
    unsigned epoch; /* the global epoch when it was deferred */
    uint64_t seq;   /* its place in the registry's order of defers */
};

/* A thread freeing a batch of entries past their grace period, one at a
 * time with no lock held (epoch.c). Lives on that thread's stack. */
struct epoch_freer {
    struct epoch_entry *rest; /* not begun yet, in defer order */
    bool busy;                /* inside the free of the entry below */
    uint64_t current_seq;     /* ... whose memory may be gone: its number */
    size_t current_bytes;     /* and its size are kept here */
    struct epoch_freer *next; /* the domain's freers */
    const struct epoch_domain *dom;
    struct epoch_freer *outer; /* this thread's enclosing free (a hook's) */
};

/* The registry's part of the protocol. Readers touch only ck.epoch (and
 * their own record); everything below `deferred` belongs to defer, poll
 * and reclaim, under `lock` unless atomic. */
struct epoch_domain {
    ck_epoch_t ck;
    bool membarrier;             /* readers enter with plain stores; see epoch.c */
    uint64_t gen;                /* unique per registry: guards the thread caches */
    struct epoch_anchor *anchor; /* what exiting threads may touch (epoch_records.c) */

    _Alignas(64) portreg_os_mutex lock;
    struct epoch_entry *head, **tail; /* FIFO: epochs never decrease */
    /* The threads freeing batches they took off that list (free_batch()
     * in epoch.c): linked here, from their stacks, while they run. */
    struct epoch_freer *freers;
    _Atomic size_t pending; /* entries deferred, not yet freed */
    _Atomic size_t pending_bytes;
    size_t bytes_since_poll;
    unsigned defers_since_poll;
    /* The reclaim thread (reclaim_thread.c): started on the first defer. */
    bool want_thread, thread_started, thread_stop;
    bool thread_starting; /* a defer is creating it, with no lock held */
    uint64_t defers;      /* entries deferred so far: the next one's seq */
    portreg_os_thread thread;
    portreg_os_cond wake;
};

/* The one-entry cache of the calling thread's record. PORTREG_TLS_FAST
 * (initial-exec where the C library allows it, os/tls.h): a plain
 * thread-pointer-relative load on the lookup path. */
struct epoch_cache {
    const struct epoch_domain *dom;
    uint64_t gen;
    struct epoch_record *r;
};
extern _Thread_local struct epoch_cache portreg__epoch_tls PORTREG_HIDDEN PORTREG_TLS_FAST;

PORTREG_HIDDEN struct epoch_record *portreg__epoch_record_slow(struct portreg *reg);
/* Hands back the links of late threads (epoch_records.c) that have
 * ended. Takes portreg__registries_lock. */
PORTREG_HIDDEN void portreg__epoch_reap_late(void);

/* The calling thread's record, or NULL if it cannot be allocated. */
static inline struct epoch_record *epoch_record(struct portreg *reg, struct epoch_domain *dom)
{
    struct epoch_cache *c = &portreg__epoch_tls;
    if (LIKELY(c->dom == dom && c->gen == dom->gen))
        return c->r;
    return portreg__epoch_record_slow(reg);
}

/* Enters a read section. Without membarrier(2), ck_epoch_begin() orders
 * the record's stores before the section's loads with an atomic exchange.
 * With it, plain stores suffice: the reclaimer makes every running thread
 * execute a full barrier before it scans the records (epoch.c, point 2).
 * Nested sections only count. */
static inline void epoch_begin(struct epoch_domain *dom, struct epoch_record *r)
{
    ck_epoch_record_t *rec = &r->rec;

    if (UNLIKELY(!dom->membarrier)) {
        ck_epoch_begin(rec, NULL);
        return;
    }
    unsigned active = ck_pr_load_uint(&rec->active);
    if (active == 0) {
        ck_pr_store_uint(&rec->active, 1);
        ck_pr_store_uint(&rec->epoch, ck_pr_load_uint(&dom->ck.epoch));
        /* compiler barrier: the section's loads stay after these stores
         * in program order; membarrier() supplies the CPU ordering. */
        atomic_signal_fence(memory_order_seq_cst);
    } else {
        ck_pr_store_uint(&rec->active, active + 1);
    }
}

static inline void epoch_end(struct epoch_domain *dom, struct epoch_record *r)
{
    /* TSan: release before the section ends; every deferred free
     * acquires it (epoch.c, portreg__epoch_free_batch()). */
    TSAN_RELEASE(dom);
    ck_epoch_end(&r->rec, NULL);
}

/* epoch.c: grace periods (points 1 to 3). */
PORTREG_HIDDEN int portreg__epoch_init(struct portreg *reg, bool membarrier, bool thread);
/* Destroy: no thread is in a section; frees every deferred entry, stops
 * the reclaim thread and frees every record. */
PORTREG_HIDDEN void portreg__epoch_fini(struct portreg *reg);
/* e becomes unreachable for readers that start from now on; free(e) runs
 * once every reader that might still hold it has left its section. */
PORTREG_HIDDEN void portreg__epoch_defer(struct portreg *reg, struct epoch_entry *e,
                                         void (*free_fn)(struct epoch_entry *), size_t bytes);
/* Non-blocking: frees what is safe now, if the backlog is due a poll. */
PORTREG_HIDDEN void portreg__epoch_poll_if_due(struct portreg *reg);
/* Blocking: waits for every reader in a section now to leave it, then
 * frees everything deferred before the call. Holds no lock while waiting.
 * PORTREG_EINVAL from inside a read section (it would wait for itself). */
PORTREG_HIDDEN int portreg__epoch_reclaim(struct portreg *reg);
/* One non-blocking step of points 1 and 3; caller holds dom->lock. The
 * entries that are safe to free, detached. */
PORTREG_HIDDEN struct epoch_entry *portreg__epoch_poll_locked(struct epoch_domain *dom);
/* Caller holds dom->lock; returns without it. Frees a batch taken off the
 * list (past its grace period), oldest first, one entry at a time with no
 * lock held. */
PORTREG_HIDDEN void portreg__epoch_free_batch(struct epoch_domain *dom, struct epoch_entry *list);
/* The innermost batch the calling thread is freeing, or NULL. */
PORTREG_HIDDEN struct epoch_freer *portreg__epoch_freeing(void);

/* reclaim_thread.c: the reclaim thread (point 4). */
/* The condition variable it sleeps on (also re-made in a forked child). */
PORTREG_HIDDEN int portreg__reclaim_wake_init(struct epoch_domain *dom);
/* Caller holds dom->lock. On failure the registry goes on without it. */
PORTREG_HIDDEN void portreg__reclaim_thread_start(struct epoch_domain *dom);
PORTREG_HIDDEN void portreg__reclaim_thread_stop(struct epoch_domain *dom);

/* epoch_records.c: per-thread records and the threads' exits (point 5). */
/* Process-wide: every live registry's anchor, under the lock; the fork
 * handlers (epoch_fork.c) hold the lock across fork(). */
PORTREG_HIDDEN extern portreg_os_mutex portreg__registries_lock;
PORTREG_HIDDEN extern struct epoch_anchor *portreg__live_anchors;
/* A new registry joins the process-wide state (a slot number, the list of
 * anchors); 0 or an errno value. Leave undoes it. */
PORTREG_HIDDEN int portreg__epoch_registry_join(struct epoch_anchor *a);
PORTREG_HIDDEN void portreg__epoch_registry_leave(struct epoch_anchor *a);
/* Drops a reference to a; the last one frees it. */
PORTREG_HIDDEN void portreg__epoch_anchor_put(struct epoch_anchor *a);
PORTREG_HIDDEN struct epoch_record *portreg__epoch_record_new(struct portreg *reg);
/* What runs at the calling thread's exit (the process-wide key's
 * destructor): hands each of its records back to its registry, or drops it
 * if the registry is gone. Exposed for the white-box tests, which run it
 * where a thread's exit would. */
PORTREG_HIDDEN void portreg__epoch_thread_exit(void *unused);
/* The calling thread's tie to dom (its record is inside), or NULL. For
 * the white-box tests. */
PORTREG_HIDDEN struct epoch_link *portreg__epoch_link_of(const struct epoch_domain *dom);

/* epoch_fork.c: registers the fork handlers if loading the library could
 * not (out of memory then); 0 or ENOMEM. */
PORTREG_HIDDEN int portreg__epoch_fork_hook_retry(void);

#endif
