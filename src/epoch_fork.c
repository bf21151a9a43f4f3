/*
 * fork(): what the library does so that a child may go on using its
 * registries (portreg.h, "fork()"). The handlers are the OS layer's
 * (portreg__os_atfork(); POSIX: pthread_atfork()); where a system has no
 * fork() they are never called.
 */
#include <errno.h>

#include "internal.h"

/* Serialises a late registration of the fork handlers; fork() never takes
 * it (see fork_hook_retry()). */
static portreg_os_mutex fork_hook_lock = PORTREG_OS_MUTEX_INITIALIZER;

/* fork() copies one thread. The prepare handler takes every registry's
 * lock (after portreg__registries_lock, which keeps the list still), so the child
 * never inherits a list some thread was changing. It never waits for a
 * free in progress: that runs the allocator's hook, which may take a lock
 * that a fork handler registered after ours holds already. The child's
 * handler, on its only thread, sets each registry up for the child before
 * any other thread can exist there: the reclaim thread is gone (the next
 * defer starts one), the condition variable may have had waiters that are
 * gone too, and so are threads that were freeing batches (the entries they
 * had not begun go back on the list; the one each was inside, the child
 * cannot tell how far it got, so it keeps it allocated). */
static void before_fork(void)
{
    portreg__os_mutex_lock(&portreg__registries_lock);
    for (struct epoch_anchor *a = portreg__live_anchors; a != NULL; a = a->next)
        portreg__os_mutex_lock(&a->dom->lock);
}

static void after_fork_in_parent(void)
{
    for (struct epoch_anchor *a = portreg__live_anchors; a != NULL; a = a->next)
        portreg__os_mutex_unlock(&a->dom->lock);
    portreg__os_mutex_unlock(&portreg__registries_lock);
}

/* Merges two lists in defer order. */
static struct epoch_entry *merge_by_seq(struct epoch_entry *a, struct epoch_entry *b)
{
    struct epoch_entry *head = NULL, **tail = &head;
    while (a != NULL && b != NULL) {
        struct epoch_entry **least = a->seq < b->seq ? &a : &b;
        *tail = *least;
        tail = &(*least)->next;
        *least = (*least)->next;
    }
    *tail = a != NULL ? a : b;
    return head;
}

/* The child's only thread: batches other threads were freeing have no one
 * to finish them. The entries they had not begun go back to the front of
 * the list (they came off its front, so they are older than what is on it
 * and stay in defer order); the one each was inside is lost to the child.
 * The forking thread's own batches (a free hook that forked) go on. */
static void take_back_batches(struct epoch_domain *dom)
{
    struct epoch_entry *back = NULL;
    struct epoch_freer **p = &dom->freers;
    while (*p != NULL) {
        struct epoch_freer *f = *p;
        bool ours = false;
        for (struct epoch_freer *c = portreg__epoch_freeing(); c != NULL && !ours; c = c->outer)
            ours = c == f;
        if (ours) {
            p = &f->next;
            continue;
        }
        if (f->busy) {
            atomic_fetch_sub_explicit(&dom->pending, 1, memory_order_relaxed);
            atomic_fetch_sub_explicit(&dom->pending_bytes, f->current_bytes, memory_order_relaxed);
        }
        back = merge_by_seq(back, f->rest);
        *p = f->next;
    }
    if (back == NULL)
        return;
    struct epoch_entry *last = back;
    while (last->next != NULL)
        last = last->next;
    last->next = dom->head;
    if (dom->head == NULL)
        dom->tail = &last->next;
    dom->head = back;
}

static void after_fork_in_child(void)
{
    for (struct epoch_anchor *a = portreg__live_anchors; a != NULL; a = a->next) {
        struct epoch_domain *dom = a->dom;
        /* Not inside a hand-back, so a count raised by a thread that was
         * exiting in the parent would make destroy wait forever. relaxed:
         * one thread. */
        atomic_store_explicit(&a->exiting, 0, memory_order_relaxed);
        /* Gone, unless it is the thread that forked (from a free hook):
         * that one goes on, and destroy stops it as before. */
        if (dom->thread_started && !portreg__os_thread_is_current(dom->thread)) {
            dom->thread_started = false;
            dom->want_thread = true;
        }
        if (dom->thread_starting) {
            dom->thread_starting = false;
            dom->want_thread = true;
        }
        take_back_batches(dom);
        portreg__reclaim_wake_init(dom);
        portreg__os_mutex_unlock(&dom->lock);
    }
    portreg__os_mutex_init(&portreg__registries_lock);
    portreg__os_mutex_init(&fork_hook_lock); /* in case a thread held it */
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
    bool ok = portreg__os_atfork(before_fork, after_fork_in_parent, after_fork_in_child) == 0;
    atomic_store_explicit(&fork_hook_installed, ok, memory_order_relaxed);
}

/* Out of memory at load time: registers the handlers now, late but better
 * than a child whose destroy may wait forever. Not under portreg__registries_lock:
 * fork() runs the prepare handler, which takes it, under glibc's own
 * lock, which pthread_atfork() takes too. */
int portreg__epoch_fork_hook_retry(void)
{
    if (LIKELY(atomic_load_explicit(&fork_hook_installed, memory_order_relaxed)))
        return 0;
    portreg__os_mutex_lock(&fork_hook_lock);
    if (!atomic_load_explicit(&fork_hook_installed, memory_order_relaxed) &&
        portreg__os_atfork(before_fork, after_fork_in_parent, after_fork_in_child) == 0)
        atomic_store_explicit(&fork_hook_installed, true, memory_order_relaxed);
    portreg__os_mutex_unlock(&fork_hook_lock);
    return atomic_load_explicit(&fork_hook_installed, memory_order_relaxed) ? 0 : ENOMEM;
}
