/*
 * Epoch-based reclamation: when memory that readers may hold is freed.
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
 *    handlers wait for a detached batch to be freed, see before_fork())
 *    never waits for a grace period.
 *
 * 4. When memory is freed. Without help, the last batch a writer defers
 *    would wait for the next writer. So the first defer starts one reclaim
 *    thread per registry (unless portreg_options_t.no_reclaim_thread),
 *    which sleeps on a condition variable while nothing is deferred and
 *    polls every RECLAIM_TICK_MS while something is (backing off while a
 *    reader holds the grace period): memory is freed a few ticks after
 *    its readers leave, also when all writers have stopped.
 *    Writers poll as well once POLL_DEFERS entries or POLL_BYTES bytes
 *    have been deferred since the last poll, which bounds the backlog
 *    under heavy churn (by count and by bytes) when readers keep up.
 *
 * 5. Per-thread records, and threads that exit beside destroy. A thread's
 *    first call allocates a record and registers it; the thread's exit
 *    gives it back and the next new thread recycles it, so thousands of
 *    short-lived threads share a handful of records. All records are
 *    freed at destroy, including those of threads that are still running.
 *    A thread finds its records through links of its own (struct
 *    epoch_link, malloc'd; in an array indexed by the registry's slot
 *    number, so that a thread using many registries finds each in one
 *    step), and one process-wide pthread key, made once and never deleted,
 *    runs hand_back() on each link at its exit. (That destructor is the
 *    library's code, which dlclose() must not unmap while threads that
 *    used it live: the shared library is linked with -z nodelete, and the
 *    static one asks for it in what links it.)
 *    Exit and destroy may overlap, and neither waits for the other except
 *    for the few stores of one hand-back:
 *    - The link names the registry's anchor (struct epoch_anchor), which
 *      is malloc'd and reference-counted, never the registry itself: an
 *      exiting thread can always look at the anchor.
 *    - hand_back() raises anchor->exiting, then reads anchor->dead; destroy
 *      sets dead, then waits for exiting to be 0 before it frees anything.
 *      All four are sequentially consistent, so one of the two sees the
 *      other: either the thread sees dead and leaves the record (freed, or
 *      about to be) alone, or destroy sees the thread and waits while it
 *      unregisters the record, which is then still the registry's.
 *    - A thread that outlives a registry keeps its link and a reference
 *      to the anchor (a few dozen bytes) until it exits or its next first
 *      call on some registry, which drops links to dead anchors.
 *    - fork(): a thread that was inside hand_back() in the parent does not
 *      exist in the child; the child's fork handler clears every live
 *      anchor's exiting count, or destroy would wait for it forever, and
 *      sets up each registry's reclaim state for the child (it is the
 *      child's only thread then: no first call races another).
 *    A per-registry key would be simpler, but destroy would have to delete
 *    it, and a thread whose exit had already fetched its record from the
 *    key could then run the destructor on memory destroy just freed.
 */
#include <errno.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define POLL_DEFERS 32
#define POLL_BYTES  ((size_t)1 << 20)
/* The reclaim thread polls every RECLAIM_TICK_MS while memory is deferred,
 * doubling the interval up to RECLAIM_TICK_MAX_MS while a reader holds the
 * grace period back (an open iteration), so it does not interrupt every
 * core 100 times a second for nothing. */
#define RECLAIM_TICK_MS     10
#define RECLAIM_TICK_MAX_MS 160

/* Process-wide state (point 5), under registries_lock: the exit key, the
 * live registries' anchors (so that a forked child can forget hand-backs
 * that threads it does not have were making) and the registries' slot
 * numbers (the index of a registry's link in each thread's array). fork()
 * takes the lock around itself, so the child finds the list whole. */
static pthread_mutex_t registries_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t exit_key;
static bool exit_key_made;
static struct epoch_anchor *live_anchors;
static uint64_t *slots_used; /* bitmap of slot numbers */
static size_t slots_words;
/* Serialises a late registration of the fork handlers; fork() never takes
 * it (see fork_hook_retry()). */
static pthread_mutex_t fork_hook_lock = PTHREAD_MUTEX_INITIALIZER;

static int wake_init(struct epoch_domain *dom);

/* fork() copies one thread. The prepare handler takes every registry's
 * lock (after registries_lock, which keeps the list still), so the child
 * never inherits a list some thread was changing. It never waits for a
 * free in progress: that runs the allocator's hook, which may take a lock
 * that a fork handler registered after ours holds already. The child's
 * handler, on its only thread, sets each registry up for the child before
 * any other thread can exist there: the reclaim thread is gone (the next
 * defer starts one), the condition variable may have had waiters that are
 * gone too, and so is a thread that was freeing entries (the ones it had
 * not begun are still on the ready list; the one it was inside, the child
 * cannot tell how far it got, so it keeps it allocated). */
static void before_fork(void)
{
    pthread_mutex_lock(&registries_lock);
    for (struct epoch_anchor *a = live_anchors; a != NULL; a = a->next)
        pthread_mutex_lock(&a->dom->lock);
}

static void after_fork_in_parent(void)
{
    for (struct epoch_anchor *a = live_anchors; a != NULL; a = a->next)
        pthread_mutex_unlock(&a->dom->lock);
    pthread_mutex_unlock(&registries_lock);
}

static void after_fork_in_child(void)
{
    for (struct epoch_anchor *a = live_anchors; a != NULL; a = a->next) {
        struct epoch_domain *dom = a->dom;
        /* Not inside a hand-back, so a count raised by a thread that was
         * exiting in the parent would make destroy wait forever. relaxed:
         * one thread. */
        atomic_store_explicit(&a->exiting, 0, memory_order_relaxed);
        if (dom->thread_started) {
            dom->thread_started = false;
            dom->want_thread = true;
        }
        dom->running = false;
        dom->current = NULL;
        wake_init(dom);
        pthread_mutex_unlock(&dom->lock);
    }
    pthread_mutex_init(&registries_lock, NULL);
    pthread_mutex_init(&fork_hook_lock, NULL); /* in case a thread held it */
}

/* Registered when the library is loaded, before any fork handler the
 * program registers later: prepare handlers run in reverse order of
 * registration and the others in order, so ours takes the lock after the
 * program's prepare handlers have taken theirs (a thread holding one of
 * their locks may be creating a registry), and the child's is released
 * before the program's child handlers run (they may create or destroy).
 * Priority 101, the first one programs may use: linked statically, the
 * library's constructor still runs before the program's own default ones
 * (which may register fork handlers). */
static _Atomic bool fork_hook_installed;

__attribute__((constructor(101))) static void install_fork_hook(void)
{
    bool ok = pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child) == 0;
    atomic_store_explicit(&fork_hook_installed, ok, memory_order_relaxed);
}

/* Out of memory at load time: registers the handlers now, late but better
 * than a child whose destroy may wait forever. Not under registries_lock:
 * fork() runs the prepare handler, which takes it, under glibc's own
 * lock, which pthread_atfork() takes too. */
static int fork_hook_retry(void)
{
    if (LIKELY(atomic_load_explicit(&fork_hook_installed, memory_order_relaxed)))
        return 0;
    pthread_mutex_lock(&fork_hook_lock);
    if (!atomic_load_explicit(&fork_hook_installed, memory_order_relaxed) &&
        pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child) == 0)
        atomic_store_explicit(&fork_hook_installed, true, memory_order_relaxed);
    pthread_mutex_unlock(&fork_hook_lock);
    return atomic_load_explicit(&fork_hook_installed, memory_order_relaxed) ? 0 : ENOMEM;
}

_Thread_local struct epoch_cache portreg__epoch_tls;

/* The calling thread's links (point 5), by their registry's slot number,
 * so that a lookup does not walk. Every link is here: a slot number is
 * reused only after its registry's destroy, and the link to that one is
 * dropped (prune_links()) before the new link takes the slot. */
static _Thread_local struct epoch_link **thread_slots __attribute__((tls_model("initial-exec")));
static _Thread_local size_t thread_nslots __attribute__((tls_model("initial-exec")));

/* A new registry joins the process-wide state: the exit key (made by the
 * first registry, never deleted), a slot number, the list of anchors. */
static int registry_join(struct epoch_anchor *a)
{
    int err = fork_hook_retry();
    if (err != 0)
        return err;
    pthread_mutex_lock(&registries_lock);
    if (!exit_key_made) {
        err = pthread_key_create(&exit_key, portreg__epoch_thread_exit);
        if (err != 0)
            goto out;
        exit_key_made = true;
    }
    size_t w = 0;
    while (w < slots_words && slots_used[w] == UINT64_MAX)
        w++;
    if (w == slots_words) {
        size_t n = slots_words != 0 ? 2 * slots_words : 1;
        uint64_t *grown = realloc(slots_used, n * sizeof *grown);
        if (grown == NULL) {
            err = ENOMEM;
            goto out;
        }
        memset(grown + slots_words, 0, (n - slots_words) * sizeof *grown);
        slots_used = grown;
        slots_words = n;
    }
    unsigned bit = (unsigned)__builtin_ctzll(~slots_used[w]);
    slots_used[w] |= UINT64_C(1) << bit;
    a->slot = w * 64 + bit;
    a->prev = NULL;
    a->next = live_anchors;
    if (live_anchors != NULL)
        live_anchors->prev = a;
    live_anchors = a;
out:
    pthread_mutex_unlock(&registries_lock);
    return err;
}

/* The registry leaves it; its slot number is free for the next one. */
static void registry_leave(struct epoch_anchor *a)
{
    pthread_mutex_lock(&registries_lock);
    slots_used[a->slot / 64] &= ~(UINT64_C(1) << (a->slot % 64));
    if (a->prev != NULL)
        a->prev->next = a->next;
    else
        live_anchors = a->next;
    if (a->next != NULL)
        a->next->prev = a->prev;
    pthread_mutex_unlock(&registries_lock);
}

static void anchor_put(struct epoch_anchor *a)
{
    /* acq_rel: every holder's last use of the anchor comes before the
     * free by whoever drops the last reference. */
    if (atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) == 1)
        free(a);
}

/* The calling thread's exit, for one link: gives the record back to a live
 * registry, or leaves it to destroy (point 5), then drops the link. */
static void hand_back(struct epoch_link *l)
{
    struct epoch_anchor *a = l->anchor;

    /* seq_cst, both: the thread's half of point 5's pairing with the
     * store of dead and the load of exiting in portreg__epoch_fini(). */
    atomic_fetch_add_explicit(&a->exiting, 1, memory_order_seq_cst);
#if defined(PORTREG_PLANT_EXIT_AFTER_DESTROY)
    /* Planted bug (stress/run-planted.sh): the exit ignores destroy. */
    if (true) {
#else
    if (!atomic_load_explicit(&a->dead, memory_order_seq_cst)) {
#endif
        TSAN_RELEASE(&l->r->rec); /* acquired by the thread that recycles it */
        ck_epoch_unregister(&l->r->rec);
    }
    /* release: the unregister's stores come before destroy frees the
     * record (its wait loads exiting with acquire). */
    atomic_fetch_sub_explicit(&a->exiting, 1, memory_order_release);
    anchor_put(a);
    free(l);
}

/* Registers the process for expedited private membarriers, once; false
 * where the kernel (or a seccomp filter) does not offer them. */
static bool membarrier_setup(void)
{
    static _Atomic int state; /* 0 unknown, 1 available, -1 not */
    int s = atomic_load_explicit(&state, memory_order_acquire);
    if (s == 0) {
        long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
        bool ok = cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
                  syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
        s = ok ? 1 : -1;
        atomic_store_explicit(&state, s, memory_order_release);
    }
    return s > 0;
}

/* Point 2: before every scan. False (errno set) if the barrier failed. */
static bool scan_barrier(struct epoch_domain *dom)
{
    if (!dom->membarrier) {
        atomic_thread_fence(memory_order_seq_cst);
        return true;
    }
    return syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0;
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

/* The domain whose entries the calling thread is freeing (run_ready()):
 * a free hook that calls portreg_reclaim() on it is refused, not left to
 * wait for itself. */
static _Thread_local const struct epoch_domain *freeing_for;

/* Puts a detached list, which is past its grace period, on the ready list.
 * Caller holds dom->lock. */
static void ready_append(struct epoch_domain *dom, struct epoch_entry *list)
{
    if (list == NULL)
        return;
    *dom->ready_tail = list;
    while (list->next != NULL)
        list = list->next;
    dom->ready_tail = &list->next;
}

/* Caller holds dom->lock; returns without it. Frees the ready entries
 * oldest first, one at a time, each with no lock held: a free runs the
 * allocator's hook, which may take any lock (one a fork handler takes, or
 * this registry's own through a call back into it). One thread at a time
 * does it; others leave the entries to it. */
static void run_ready(struct epoch_domain *dom)
{
    if (dom->running) {
        pthread_mutex_unlock(&dom->lock);
        return;
    }
    dom->running = true;
    for (struct epoch_entry *e; (e = dom->ready) != NULL;) {
        dom->ready = e->next;
        if (dom->ready == NULL)
            dom->ready_tail = &dom->ready;
        dom->current = e;
        pthread_mutex_unlock(&dom->lock);
        freeing_for = dom;
        TSAN_ACQUIRE(dom); /* pairs with epoch_end() */
        e->free(e);
        freeing_for = NULL;
        pthread_mutex_lock(&dom->lock);
        dom->current = NULL;
    }
    dom->running = false;
    pthread_mutex_unlock(&dom->lock);
}

/* Takes entries off the front of the list up to (not including) stop. */
static struct epoch_entry *detach_until(struct epoch_domain *dom, struct epoch_entry *stop)
{
    struct epoch_entry *first = dom->head, *e;
    size_t n = 0, bytes = 0;

    if (first == stop)
        return NULL;
    for (e = first;; e = e->next) {
        n++;
        bytes += e->bytes;
        if (e->next == stop) {
            e->next = NULL;
            break;
        }
    }
    dom->head = stop;
    if (stop == NULL)
        dom->tail = &dom->head;
    atomic_fetch_sub_explicit(&dom->pending, n, memory_order_relaxed);
    atomic_fetch_sub_explicit(&dom->pending_bytes, bytes, memory_order_relaxed);
    return first;
}

/* Points 1 and 3: one non-blocking step. Caller holds dom->lock. Returns
 * the entries that are safe to free, detached. */
static struct epoch_entry *poll_locked(struct epoch_domain *dom)
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

static void *reclaim_main(void *arg)
{
    struct epoch_domain *dom = arg;
    long tick_ms = RECLAIM_TICK_MS;

    pthread_mutex_lock(&dom->lock);
    while (!dom->thread_stop) {
        if (dom->head == NULL) {
            tick_ms = RECLAIM_TICK_MS;
            pthread_cond_wait(&dom->wake, &dom->lock);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += tick_ms / 1000;
            ts.tv_nsec += (tick_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&dom->wake, &dom->lock, &ts);
        }
        if (dom->thread_stop)
            break;
        unsigned before = ck_pr_load_uint(&dom->ck.epoch);
        struct epoch_entry *ready = poll_locked(dom);
        bool progress = ready != NULL || ck_pr_load_uint(&dom->ck.epoch) != before;
        tick_ms = progress
                      ? RECLAIM_TICK_MS
                      : (tick_ms * 2 > RECLAIM_TICK_MAX_MS ? RECLAIM_TICK_MAX_MS : tick_ms * 2);
        ready_append(dom, ready);
        run_ready(dom);
        pthread_mutex_lock(&dom->lock);
    }
    pthread_mutex_unlock(&dom->lock);
    return NULL;
}

/* Caller holds dom->lock. The thread blocks every signal: a library
 * thread must not take the application's signals. On failure the
 * registry goes on without it (writers and portreg_reclaim() still free). */
static void start_thread(struct epoch_domain *dom)
{
    sigset_t all, old;

    dom->want_thread = false;
    sigfillset(&all);
    if (pthread_sigmask(SIG_SETMASK, &all, &old) != 0)
        return;
    dom->thread_started = pthread_create(&dom->thread, NULL, reclaim_main, dom) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* The reclaim thread's condition variable, on CLOCK_MONOTONIC. */
static int wake_init(struct epoch_domain *dom)
{
    pthread_condattr_t attr;
    int err = pthread_condattr_init(&attr);
    if (err != 0)
        return err;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    err = pthread_cond_init(&dom->wake, &attr);
    pthread_condattr_destroy(&attr);
    return err;
}

int portreg__epoch_init(struct portreg *reg, bool membarrier, bool thread)
{
    struct epoch_domain *dom = &reg->epoch;
    static _Atomic uint64_t generations = 1;

    ck_epoch_init(&dom->ck);
    dom->membarrier = membarrier && membarrier_setup();
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
    dom->ready = NULL;
    dom->ready_tail = &dom->ready;
    int err = pthread_mutex_init(&dom->lock, NULL);
    if (err != 0)
        goto fail_mutex;
    err = wake_init(dom);
    if (err != 0)
        goto fail_cond;
    err = registry_join(dom->anchor);
    if (err != 0)
        goto fail_join;
    return 0;

fail_join:
    pthread_cond_destroy(&dom->wake);
fail_cond:
    pthread_mutex_destroy(&dom->lock);
fail_mutex:
    free(dom->anchor);
    return err;
}

void portreg__epoch_fini(struct portreg *reg)
{
    struct epoch_domain *dom = &reg->epoch;
    struct epoch_anchor *a = dom->anchor;
    ck_stack_entry_t *cursor, *next;

    /* Point 5: from here on an exiting thread leaves its record alone; one
     * that got in before waits for nothing and takes a few stores. seq_cst:
     * pairs with hand_back(). */
    atomic_store_explicit(&a->dead, true, memory_order_seq_cst);
    while (atomic_load_explicit(&a->exiting, memory_order_seq_cst) != 0)
        sched_yield();

    if (dom->thread_started) {
        pthread_mutex_lock(&dom->lock);
        dom->thread_stop = true;
        pthread_cond_signal(&dom->wake);
        pthread_mutex_unlock(&dom->lock);
        pthread_join(dom->thread, NULL);
    }
    /* No thread is in a section: everything deferred can go. */
    pthread_mutex_lock(&dom->lock);
    ready_append(dom, detach_until(dom, NULL));
    run_ready(dom);

    CK_STACK_FOREACH_SAFE(&dom->ck.records, cursor, next)
    {
        struct epoch_record *r = (struct epoch_record *)(void *)cursor;
        portreg__mem_free(reg, r->raw, r->raw_size);
    }
    if (portreg__epoch_tls.dom == dom)
        portreg__epoch_tls = (struct epoch_cache){NULL, 0, NULL};
    /* Off the list before its locks go: the fork handlers take them. */
    registry_leave(a);
    pthread_cond_destroy(&dom->wake);
    pthread_mutex_destroy(&dom->lock);
    anchor_put(a);
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
    pthread_mutex_lock(&dom->lock);
    e->epoch = ck_pr_load_uint(&dom->ck.epoch);
    e->seq = dom->defers++;
    bool was_empty = dom->head == NULL;
    *dom->tail = e;
    dom->tail = &e->next;
    atomic_fetch_add_explicit(&dom->pending, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&dom->pending_bytes, bytes, memory_order_relaxed);
    dom->defers_since_poll++;
    dom->bytes_since_poll += bytes;
    if (dom->want_thread)
        start_thread(dom);
    if (was_empty && dom->thread_started)
        pthread_cond_signal(&dom->wake);
    pthread_mutex_unlock(&dom->lock);
}

void portreg__epoch_poll_if_due(struct portreg *reg)
{
    struct epoch_domain *dom = &reg->epoch;

    if (atomic_load_explicit(&dom->pending, memory_order_relaxed) == 0)
        return;
    /* trylock: whoever holds the lock is deferring or polling already. */
    if (pthread_mutex_trylock(&dom->lock) != 0)
        return;
    /* Without membarrier a poll is cheap (a fence and a scan): every
     * time. With it, each poll interrupts every core running our threads:
     * only once enough has piled up (the reclaim thread does the rest). */
    if (!dom->membarrier || dom->defers_since_poll >= POLL_DEFERS ||
        dom->bytes_since_poll >= POLL_BYTES)
        ready_append(dom, poll_locked(dom));
    run_ready(dom);
}

/* Backs off while a reader holds up the grace period: yields first, then
 * sleeps, so a long iteration does not cost a core. */
static void backoff(unsigned *round)
{
    if (++*round < 64) {
        sched_yield();
        return;
    }
    unsigned us = *round < 1024 ? *round : 1000;
    struct timespec ts = {0, (long)us * 1000};
    nanosleep(&ts, NULL);
}

struct epoch_link *portreg__epoch_link_of(const struct epoch_domain *dom)
{
    size_t i = dom->anchor->slot;
    /* A link in the slot may be to a destroyed registry whose number this
     * one reuses: its anchor is another (it lives while the link does). */
    if (i < thread_nslots && thread_slots[i] != NULL && thread_slots[i]->anchor == dom->anchor)
        return thread_slots[i];
    return NULL;
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

    /* Inside a read section, or inside a free of this registry (an
     * allocator hook calling back): what it waits for is the caller. */
    if (in_section(dom) || freeing_for == dom)
        return PORTREG_EINVAL;
    atomic_thread_fence(memory_order_seq_cst);
    pthread_mutex_lock(&dom->lock);
    unsigned target = ck_pr_load_uint(&dom->ck.epoch);
    uint64_t before = dom->defers; /* what was deferred before this call */
    bool none = dom->head == NULL && dom->ready == NULL && !dom->running;
    pthread_mutex_unlock(&dom->lock);
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
     * earlier, or deferred before a scan that found no reader. Others may
     * have freed some of it meanwhile, or be freeing it: then wait for
     * them to finish, which leaves nothing of it on any list. */
    for (round = 0;; backoff(&round)) {
        pthread_mutex_lock(&dom->lock);
        struct epoch_entry *stop = dom->head;
        while (stop != NULL && stop->seq < before)
            stop = stop->next;
        ready_append(dom, detach_until(dom, stop));
        if (!dom->running) {
            run_ready(dom);
            return 0;
        }
        bool owed = dom->current != NULL && dom->current->seq < before;
        for (struct epoch_entry *e = dom->ready; e != NULL && !owed; e = e->next)
            owed = e->seq < before;
        pthread_mutex_unlock(&dom->lock);
        if (!owed)
            return 0;
    }
}

/* Records are cache-line aligned (ck_epoch_record_t says so); the
 * allocator hooks promise only malloc's alignment, so over-allocate. */
struct epoch_record *portreg__epoch_record_new(struct portreg *reg)
{
    size_t align = alignof(struct epoch_record);
    size_t raw_size = sizeof(struct epoch_record) + align - 1;
    void *raw = portreg__mem_alloc(reg, raw_size);
    if (raw == NULL)
        return NULL;
    struct epoch_record *r =
        (struct epoch_record *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
    memset(r, 0, sizeof *r);
    r->raw = raw;
    r->raw_size = raw_size;
    TSAN_RELEASE(&r->rec); /* acquired by scan(); libck publishes it */
    ck_epoch_register(&reg->epoch.ck, &r->rec, NULL);
    return r;
}

/* Drops the calling thread's links to registries that are gone. */
static void prune_links(void)
{
    for (size_t i = 0; i < thread_nslots; i++) {
        struct epoch_link *l = thread_slots[i];
        /* acquire: pairs with destroy's store; the anchor is ours to read. */
        if (l != NULL && atomic_load_explicit(&l->anchor->dead, memory_order_acquire)) {
            thread_slots[i] = NULL;
            anchor_put(l->anchor);
            free(l);
        }
    }
}

struct epoch_record *portreg__epoch_record_slow(struct portreg *reg)
{
    struct epoch_domain *dom = &reg->epoch;
    struct epoch_link *l = portreg__epoch_link_of(dom);

    if (l == NULL) {
        /* First, so that the thread's exit frees whatever this call
         * allocates for it, also when a later step fails. glibc clears a
         * key's value before it runs the destructor: set it again if this
         * thread's exit has begun (another destructor called us), so that
         * its hand-backs run once more. */
        if (pthread_getspecific(exit_key) == NULL &&
            pthread_setspecific(exit_key, &thread_slots) != 0)
            return NULL;
        prune_links();
        size_t slot = dom->anchor->slot;
        if (slot >= thread_nslots) {
            size_t n = thread_nslots != 0 ? 2 * thread_nslots : 8;
            while (n <= slot)
                n *= 2;
            struct epoch_link **grown = realloc(thread_slots, n * sizeof *grown);
            if (grown == NULL)
                return NULL;
            memset(grown + thread_nslots, 0, (n - thread_nslots) * sizeof *grown);
            thread_slots = grown;
            thread_nslots = n;
        }
        l = malloc(sizeof *l);
        if (l == NULL)
            return NULL;
        /* A record a finished thread gave back, else a new one. */
        ck_epoch_record_t *rec = ck_epoch_recycle(&dom->ck, NULL);
        /* TSan: the handover from the exited owner happens inside libck;
         * pairs with the release in hand_back(). */
        if (rec != NULL)
            TSAN_ACQUIRE(rec);
        l->r = rec != NULL ? (struct epoch_record *)(void *)rec : portreg__epoch_record_new(reg);
        if (l->r == NULL) {
            free(l);
            return NULL;
        }
        /* The allocator hook that made the record may itself have called
         * into this registry on this thread, and that nested first call
         * has linked a record already (thread_slots may have moved, too):
         * keep that one, give this one back. */
        struct epoch_link *nested = portreg__epoch_link_of(dom);
        if (UNLIKELY(nested != NULL)) {
            TSAN_RELEASE(&l->r->rec); /* as in hand_back() */
            ck_epoch_unregister(&l->r->rec);
            free(l);
            l = nested;
        } else {
            /* relaxed: the registry's own reference keeps the anchor alive. */
            atomic_fetch_add_explicit(&dom->anchor->refs, 1, memory_order_relaxed);
            l->anchor = dom->anchor;
            thread_slots[slot] = l;
        }
    }
    portreg__epoch_tls = (struct epoch_cache){dom, dom->gen, l->r};
    return l->r;
}

/* The process-wide key's destructor: the thread is exiting. Its records
 * are outside any section (an iteration left open at thread exit is a
 * caller bug). */
void portreg__epoch_thread_exit(void *unused)
{
    (void)unused;
    struct epoch_link **slots = thread_slots;
    size_t n = thread_nslots;
    thread_slots = NULL;
    thread_nslots = 0;
    portreg__epoch_tls = (struct epoch_cache){NULL, 0, NULL};
    for (size_t i = 0; i < n; i++)
        if (slots[i] != NULL)
            hand_back(slots[i]);
    free(slots);
}
