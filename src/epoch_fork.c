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
 * gone too, and so is a thread that was freeing entries (the ones it had
 * not begun are still on the ready list; the one it was inside, the child
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

static void after_fork_in_child(void)
{
    for (struct epoch_anchor *a = portreg__live_anchors; a != NULL; a = a->next) {
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
        dom->freeing = false;
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
