/*
 * Epoch-based reclamation: when memory that readers may hold is freed.
 * This file holds the grace periods (points 1 to 3); the reclaim thread is
 * in reclaim_thread.c (point 4), the per-thread records and the threads'
 * exits in epoch_records.c (point 5), what fork() does in epoch_fork.c.
 *
 * The protocol, and why it is safe
 * --------------------------------
 * Readers (lookups, iterations, wait set-up) run inside read sections. A
 * section stores `active` and the global epoch it saw into the thread's
 * record, then loads pointers. Writers unlink an object (swap the table
 * pointer, let ck_ht replace a map) and then defer it, tagged with the
 * global epoch read after the unlink (a full fence orders the two). The
 * global epoch moves from E to E+1 only when every record in a section has
 * seen E.
 *
 * 1. Two advances free an entry. A reader that holds an object tagged T
 *    began its section before the unlink, so it recorded an epoch <= T.
 *    The advance T -> T+1 may pass it (it may have seen T), but T+1 -> T+2
 *    cannot while it stays in that section. So once the global epoch is
 *    T+2 or more, no reader holds the entry: free it. And if a scan finds
 *    no record in a section at all, everything deferred before the scan
 *    can go at once.
 *
 * 2. Plain stores on the read side. ck_epoch_begin() orders the record's
 *    stores before the section's loads with an atomic exchange, about a
 *    third of a lookup. Where membarrier(2) offers private expedited
 *    barriers, readers use plain stores plus a compiler barrier instead,
 *    and every scan first makes each running thread of the process
 *    execute a full barrier. After it, a reader's begin stores are either
 *    visible to the scan (the record blocks the advance), or they come
 *    after the barrier, and then so do the reader's loads, which therefore
 *    see the unlink and cannot reach the object. This is the argument of
 *    liburcu's "memb" flavour. If the barrier call fails, the scan does
 *    not happen and nothing is freed.
 *
 * 3. Nobody waits for readers while holding a lock that others need.
 *    Deferred entries sit in one FIFO under the domain's own lock (tags
 *    never decrease along it). A poll (writers now and then, the reclaim
 *    thread, portreg_reclaim()) scans, advances the epoch by one compare-
 *    and-swap if every active record has seen it, and detaches the prefix
 *    that point 1 frees; it never waits. portreg_reclaim() notes how
 *    many entries were deferred before it, waits for the grace period
 *    with no lock held and nothing detached, then frees those: an
 *    iteration that inserts beside it cannot deadlock, and fork() (whose
 *    handlers wait for a detached batch to be freed, see before_fork() in epoch_fork.c)
 *    never waits for a grace period.
 *
 *
 * Points 4 and 5 and fork() are argued in the files that implement them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "internal.h"

#define POLL_DEFERS 32
#define POLL_BYTES  ((size_t)1 << 20)

/* Point 2: before every scan. False (errno set) if the barrier failed. */
static bool scan_barrier(struct epoch_domain *dom)
{
    if (!dom->membarrier) {
        atomic_thread_fence(memory_order_seq_cst);
        return true;
    }
    int err = portreg__os_heavy_barrier();
    if (err != 0)
        errno = err;
    return err == 0;
}

enum scan_result {
    SCAN_IDLE,    /* no record is in a section */
    SCAN_CURRENT, /* every record in a section has seen epoch e */
    SCAN_BLOCKED, /* some record in a section saw an older epoch */
};

static enum scan_result scan(struct epoch_domain *dom, unsigned e)
{
    ck_stack_entry_t *cursor;
    bool active = false;

    CK_STACK_FOREACH(&dom->ck.records, cursor)
    {
        /* record_next is the first member of ck_epoch_record_t. */
        ck_epoch_record_t *rec = (ck_epoch_record_t *)(void *)cursor;
        /* TSan: the record was published by ck_stack_push_upmc() inside
         * libck; pairs with the release in portreg__epoch_record_new(). */
        TSAN_ACQUIRE(rec);
        if (ck_pr_load_uint(&rec->active) == 0)
            continue;
        active = true;
        if (ck_pr_load_uint(&rec->epoch) != e)
            return SCAN_BLOCKED;
    }
    return active ? SCAN_CURRENT : SCAN_IDLE;
}

/* The innermost batch this thread is freeing (a free hook may free
 * another registry's memory, or call back into this one): refused calls
 * and the fork handlers walk the chain through outer. */
static _Thread_local struct epoch_freer *freeing;

struct epoch_freer *portreg__epoch_freeing(void)
{
    return freeing;
}

void portreg__epoch_free_batch(struct epoch_domain *dom, struct epoch_entry *list)
{
    if (list == NULL) {
        portreg__os_mutex_unlock(&dom->lock);
        return;
    }
    /* Each thread frees what it took off the list (writers too, so the
     * backlog stays bounded when the hooks are slow). The entries stay
     * visible in dom->freers until they are freed: portreg_reclaim() can
     * wait for them, and a child of fork() takes back those not begun. */
    struct epoch_freer f = {.rest = list, .dom = dom, .outer = freeing, .next = dom->freers};
    dom->freers = &f;
    for (struct epoch_entry *e; (e = f.rest) != NULL;) {
        f.rest = e->next;
        f.current_seq = e->seq;
        f.current_bytes = e->bytes;
        f.busy = true;
        portreg__os_mutex_unlock(&dom->lock);
        /* No lock held: the allocator's hook may take any lock, one a
         * fork handler takes or this registry's own (a call back). */
        freeing = &f;
        TSAN_ACQUIRE(dom); /* pairs with epoch_end() */
        e->free(e);
        freeing = f.outer;
        portreg__os_mutex_lock(&dom->lock);
        f.busy = false;
        atomic_fetch_sub_explicit(&dom->pending, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&dom->pending_bytes, f.current_bytes, memory_order_relaxed);
    }
    struct epoch_freer **p = &dom->freers;
    while (*p != &f)
        p = &(*p)->next;
    *p = f.next;
    portreg__os_mutex_unlock(&dom->lock);
}

/* Takes entries off the front of the list up to (not including) stop. */
static struct epoch_entry *detach_until(struct epoch_domain *dom, struct epoch_entry *stop)
{
    struct epoch_entry *first = dom->head, *e;

    if (first == stop)
        return NULL;
    for (e = first; e->next != stop; e = e->next)
        ;
    e->next = NULL;
    dom->head = stop;
    if (stop == NULL)
        dom->tail = &dom->head;
    return first; /* pending until portreg__epoch_free_batch() frees it */
}

/* Points 1 and 3: one non-blocking step. Caller holds dom->lock. Returns
 * the entries that are safe to free, detached. */
struct epoch_entry *portreg__epoch_poll_locked(struct epoch_domain *dom)
{
    dom->defers_since_poll = 0;
    dom->bytes_since_poll = 0;
    if (dom->head == NULL || !scan_barrier(dom))
        return NULL;
    unsigned e = ck_pr_load_uint(&dom->ck.epoch);
    enum scan_result s = scan(dom, e);
    if (s == SCAN_IDLE)
        return detach_until(dom, NULL);
    /* Advance if we can; a failed CAS means someone else advanced. */
    if (s == SCAN_CURRENT && ck_pr_cas_uint(&dom->ck.epoch, e, e + 1))
        e++;
    else
        e = ck_pr_load_uint(&dom->ck.epoch);
    struct epoch_entry *stop = dom->head;
    while (stop != NULL && e - stop->epoch >= 2)
        stop = stop->next;
    return detach_until(dom, stop);
}

int portreg__epoch_init(struct portreg *reg, bool membarrier, bool thread)
{
    struct epoch_domain *dom = &reg->epoch;
    static _Atomic uint64_t generations = 1;

    ck_epoch_init(&dom->ck);
    dom->membarrier = membarrier && portreg__os_heavy_barrier_setup();
    dom->gen = atomic_fetch_add_explicit(&generations, 1, memory_order_relaxed);
    dom->head = NULL;
    dom->tail = &dom->head;
    dom->want_thread = thread;
    dom->anchor = malloc(sizeof *dom->anchor);
    if (dom->anchor == NULL)
        return ENOMEM;
    atomic_init(&dom->anchor->refs, 1);
    atomic_init(&dom->anchor->exiting, 0);
    atomic_init(&dom->anchor->dead, false);
    dom->anchor->dom = dom;
    int err = portreg__os_mutex_init(&dom->lock);
    if (err != 0)
        goto fail_mutex;
    err = portreg__reclaim_wake_init(dom);
    if (err != 0)
        goto fail_cond;
    err = portreg__epoch_registry_join(dom->anchor);
    if (err != 0)
        goto fail_join;
    return 0;

fail_join:
    portreg__os_cond_destroy(&dom->wake);
fail_cond:
    portreg__os_mutex_destroy(&dom->lock);
fail_mutex:
    free(dom->anchor);
    return err;
}

void portreg__epoch_fini(struct portreg *reg)
{
    struct epoch_domain *dom = &reg->epoch;
    struct epoch_anchor *a = dom->anchor;
    ck_stack_entry_t *cursor, *next;

    /* Late threads that have ended give their links back first (their
     * links to this registry included, which are still live). */
    portreg__epoch_reap_late();
    /* Point 5: from here on an exiting thread leaves its record alone; one
     * that got in before waits for nothing and takes a few stores. seq_cst:
     * pairs with hand_back(). */
    atomic_store_explicit(&a->dead, true, memory_order_seq_cst);
    while (atomic_load_explicit(&a->exiting, memory_order_seq_cst) != 0)
        portreg__os_yield();

    portreg__reclaim_thread_stop(dom);
    /* No thread is in a section: everything deferred can go. */
    portreg__os_mutex_lock(&dom->lock);
    portreg__epoch_free_batch(dom, detach_until(dom, NULL));

    CK_STACK_FOREACH_SAFE(&dom->ck.records, cursor, next)
    {
        struct epoch_record *r = (struct epoch_record *)(void *)cursor;
        portreg__mem_free(reg, r->raw, r->raw_size);
    }
    if (portreg__epoch_tls.dom == dom)
        portreg__epoch_tls = (struct epoch_cache){NULL, 0, NULL};
    /* Off the list before its locks go: the fork handlers take them. */
    portreg__epoch_registry_leave(a);
    portreg__os_cond_destroy(&dom->wake);
    portreg__os_mutex_destroy(&dom->lock);
    portreg__epoch_anchor_put(a);
}

void portreg__epoch_defer(struct portreg *reg, struct epoch_entry *e,
                          void (*free_fn)(struct epoch_entry *), size_t bytes)
{
    struct epoch_domain *dom = &reg->epoch;

    e->next = NULL;
    e->free = free_fn;
    e->bytes = bytes;
    /* The unlink (a store) before the tag (a load): see point 1. */
    atomic_thread_fence(memory_order_seq_cst);
    portreg__os_mutex_lock(&dom->lock);
    e->epoch = ck_pr_load_uint(&dom->ck.epoch);
    e->seq = dom->defers++;
    bool was_empty = dom->head == NULL;
    *dom->tail = e;
    dom->tail = &e->next;
    atomic_fetch_add_explicit(&dom->pending, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&dom->pending_bytes, bytes, memory_order_relaxed);
    dom->defers_since_poll++;
    dom->bytes_since_poll += bytes;
    /* The thread is created with no lock held: creating it may allocate,
     * and an allocator may take its own lock in a fork handler, which
     * runs before ours takes dom->lock. */
    bool start = dom->want_thread;
    dom->want_thread = false;
    dom->thread_starting |= start;
    if (was_empty && dom->thread_started)
        portreg__os_cond_signal(&dom->wake);
    portreg__os_mutex_unlock(&dom->lock);
    if (start)
        portreg__reclaim_thread_start(dom);
}

void portreg__epoch_poll_if_due(struct portreg *reg)
{
    struct epoch_domain *dom = &reg->epoch;

    if (atomic_load_explicit(&dom->pending, memory_order_relaxed) == 0)
        return;
    /* trylock: whoever holds the lock is deferring or polling already. */
    if (!portreg__os_mutex_trylock(&dom->lock))
        return;
    struct epoch_entry *ready = NULL;
    /* Without membarrier a poll is cheap (a fence and a scan): every
     * time. With it, each poll interrupts every core running our threads:
     * only once enough has piled up (the reclaim thread does the rest). */
    if (!dom->membarrier || dom->defers_since_poll >= POLL_DEFERS ||
        dom->bytes_since_poll >= POLL_BYTES)
        ready = portreg__epoch_poll_locked(dom);
    portreg__epoch_free_batch(dom, ready);
}

/* Backs off while a reader holds up the grace period: yields first, then
 * sleeps, so a long iteration does not cost a core. */
static void backoff(unsigned *round)
{
    if (++*round < 64) {
        portreg__os_yield();
        return;
    }
    portreg__os_sleep_us(*round < 1024 ? *round : 1000);
}

/* True if the calling thread is inside a read section of dom (found by its
 * link: the one-entry cache may name another registry). */
static bool in_section(const struct epoch_domain *dom)
{
    const struct epoch_link *l = portreg__epoch_link_of(dom);
    return l != NULL && ck_pr_load_uint(&l->r->rec.active) != 0;
}

int portreg__epoch_reclaim(struct portreg *reg)
{
    struct epoch_domain *dom = &reg->epoch;
    unsigned round = 0;

    /* Inside a read section, it would wait for itself. Inside an allocator
     * hook that frees (any registry's memory), it could wait for a thread
     * that waits for the caller's own batch. */
    if (in_section(dom) || freeing != NULL)
        return PORTREG_EINVAL;
    atomic_thread_fence(memory_order_seq_cst);
    portreg__os_mutex_lock(&dom->lock);
    unsigned target = ck_pr_load_uint(&dom->ck.epoch);
    uint64_t before = dom->defers; /* what was deferred before this call */
    bool none = dom->head == NULL && dom->freers == NULL;
    portreg__os_mutex_unlock(&dom->lock);
    if (none)
        return 0;

    /* Point 3: wait with no lock held. */
    for (;;) {
        if (!scan_barrier(dom))
            return portreg__system_error(errno);
        unsigned e = ck_pr_load_uint(&dom->ck.epoch);
        if (e - target >= 2)
            break;
        enum scan_result s = scan(dom, e);
        if (s == SCAN_IDLE)
            break;
        if (s == SCAN_CURRENT)
            ck_pr_cas_uint(&dom->ck.epoch, e, e + 1);
        else
            backoff(&round);
    }
    /* Everything deferred before the call may go now: tagged target or
     * earlier, or deferred before a scan that found no reader. Free what
     * is still on the list; then wait for any of it other threads are
     * freeing (each batch is in defer order: its first entry tells). */
    portreg__os_mutex_lock(&dom->lock);
    struct epoch_entry *stop = dom->head;
    while (stop != NULL && stop->seq < before)
        stop = stop->next;
    portreg__epoch_free_batch(dom, detach_until(dom, stop));
    for (round = 0;; backoff(&round)) {
        bool owed = false;
        portreg__os_mutex_lock(&dom->lock);
        for (struct epoch_freer *f = dom->freers; f != NULL && !owed; f = f->next)
            owed =
                (f->busy && f->current_seq < before) || (f->rest != NULL && f->rest->seq < before);
        portreg__os_mutex_unlock(&dom->lock);
        if (!owed)
            return 0;
    }
}
