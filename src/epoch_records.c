/*
 * Per-thread records and the threads' exits (point 5 of epoch.c's
 * argument).
 *
 * A thread's first call allocates a record and registers it; the thread's
 * exit gives it back and the next new thread recycles it, so thousands of
 * short-lived threads share a handful of records. All records are freed at
 * destroy, including those of threads that are still running. A thread
 * finds its records through links of its own (struct epoch_link, malloc'd;
 * in an array indexed by the registry's slot number, so that a thread using
 * many registries finds each in one step), and one process-wide thread-exit
 * key (os.h), made once and never deleted, runs hand_back() on each link
 * at its exit. (That destructor is the library's code, which dlclose() must not
 * unmap while threads that used it live: the shared library is linked with
 * -z nodelete, and the static one asks for it in what links it.) Exit and
 * destroy may overlap, and neither waits for the other except for the few
 * stores of one hand-back:
 * - The link names the registry's anchor (struct epoch_anchor), which
 *   is malloc'd and reference-counted, never the registry itself: an
 *   exiting thread can always look at the anchor.
 * - hand_back() raises anchor->exiting, then reads anchor->dead; destroy
 *   sets dead, then waits for exiting to be 0 before it frees anything.
 *   All four are sequentially consistent, so one of the two sees the
 *   other: either the thread sees dead and leaves the record (freed, or
 *   about to be) alone, or destroy sees the thread and waits while it
 *   unregisters the record, which is then still the registry's.
 * - A thread that outlives a registry keeps its link and a reference
 *   to the anchor (a few dozen bytes) until it exits or its next first
 *   call on some registry, which drops links to dead anchors.
 * - fork(): a thread that was inside hand_back() in the parent does not
 *   exist in the child; the child's fork handler clears every live
 *   anchor's exiting count, or destroy would wait for it forever, and
 *   sets up each registry's reclaim state for the child (it is the
 *   child's only thread then: no first call races another).
 * - A thread that calls in after its exit function ran (Windows only: from
 *   a later exit hook; os.h) is late: its links are handed back for it
 *   once it has ended (late_threads below).
 * A per-registry key would be simpler, but destroy would have to delete
 * it, and a thread whose exit had already fetched its record from the
 * key could then run the destructor on memory destroy just freed.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "internal.h"

/* Process-wide state (point 5), under portreg__registries_lock: the exit key, the
 * live registries' anchors (so that a forked child can forget hand-backs
 * that threads it does not have were making) and the registries' slot
 * numbers (the index of a registry's link in each thread's array). fork()
 * takes the lock around itself, so the child finds the list whole. */
portreg_os_mutex portreg__registries_lock = PORTREG_OS_MUTEX_INITIALIZER;
static portreg_os_key exit_key;
static bool exit_key_made;
struct epoch_anchor *portreg__live_anchors;
static uint64_t *slots_used; /* bitmap of slot numbers */
static size_t slots_words;
_Thread_local struct epoch_cache portreg__epoch_tls;

/* The calling thread's links (point 5), by their registry's slot number,
 * so that a lookup does not walk. Every link is here: a slot number is
 * reused only after its registry's destroy, and the link to that one is
 * dropped (prune_links()) before the new link takes the slot. */
static _Thread_local struct epoch_link **thread_slots PORTREG_TLS_FAST;
static _Thread_local size_t thread_nslots PORTREG_TLS_FAST;

/* A new registry joins the process-wide state: the exit key (made by the
 * first registry, never deleted), a slot number, the list of anchors. */
int portreg__epoch_registry_join(struct epoch_anchor *a)
{
    int err = portreg__epoch_fork_hook_retry();
    if (err != 0)
        return err;
    uint64_t *spare = NULL, *old = NULL;
    size_t spare_words = 0;
    portreg__os_mutex_lock(&portreg__registries_lock);
    if (!exit_key_made) {
        err = portreg__os_key_create(&exit_key, portreg__epoch_thread_exit);
        if (err != 0)
            goto out;
        exit_key_made = true;
    }
    size_t w;
    for (;;) {
        w = 0;
        while (w < slots_words && slots_used[w] == UINT64_MAX)
            w++;
        if (w < slots_words)
            break;
        if (spare_words > slots_words) { /* grown meanwhile by no one: ours */
            if (slots_words != 0)        /* memcpy() from NULL is undefined */
                memcpy(spare, slots_used, slots_words * sizeof *spare);
            memset(spare + slots_words, 0, (spare_words - slots_words) * sizeof *spare);
            old = slots_used;
            slots_used = spare;
            slots_words = spare_words;
            spare = NULL;
            continue;
        }
        /* Allocate with the lock released: an allocator may take its own
         * lock in a fork handler, which runs before ours takes this one. */
        spare_words = slots_words != 0 ? 2 * slots_words : 1;
        portreg__os_mutex_unlock(&portreg__registries_lock);
        free(spare);
        spare = malloc(spare_words * sizeof *spare);
        portreg__os_mutex_lock(&portreg__registries_lock);
        if (spare == NULL) {
            err = ENOMEM;
            goto out;
        }
    }
    unsigned bit = (unsigned)__builtin_ctzll(~slots_used[w]);
    slots_used[w] |= UINT64_C(1) << bit;
    a->slot = w * 64 + bit;
    a->prev = NULL;
    a->next = portreg__live_anchors;
    if (portreg__live_anchors != NULL)
        portreg__live_anchors->prev = a;
    portreg__live_anchors = a;
out:
    portreg__os_mutex_unlock(&portreg__registries_lock);
    free(spare);
    free(old);
    return err;
}

/* The registry leaves it; its slot number is free for the next one. */
void portreg__epoch_registry_leave(struct epoch_anchor *a)
{
    portreg__os_mutex_lock(&portreg__registries_lock);
    slots_used[a->slot / 64] &= ~(UINT64_C(1) << (a->slot % 64));
    if (a->prev != NULL)
        a->prev->next = a->next;
    else
        portreg__live_anchors = a->next;
    if (a->next != NULL)
        a->next->prev = a->prev;
    portreg__os_mutex_unlock(&portreg__registries_lock);
}

void portreg__epoch_anchor_put(struct epoch_anchor *a)
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
    portreg__epoch_anchor_put(a);
    free(l);
}

/* A thread's exit (its own, or one a late thread's end stands for): every
 * link it holds goes back, then its array. */
static void hand_back_all(struct epoch_link **slots, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (slots[i] != NULL)
            hand_back(slots[i]);
    free(slots);
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
            portreg__epoch_anchor_put(l->anchor);
            free(l);
        }
    }
}

/* Late threads (os.h): a thread whose exit function has already run, and
 * that calls in again (from a later thread-exit hook), links records as
 * any thread does, but no exit function will give them back. So it puts
 * itself on late_threads with a hold on itself and its array of links
 * (kept current whenever it moves), and once the thread has ended, the
 * next first call of any thread on any registry, or a destroy, hands its
 * links back for it. The hold's signal (the thread has ended) orders the
 * thread's last stores to its links before that hand-back, which follows
 * point 5's protocol like an exit's. */
struct late_thread {
    struct late_thread *next;
    uintptr_t hold;
    struct epoch_link **slots;
    size_t nslots;
};
static struct late_thread *late_threads; /* under portreg__registries_lock */
static _Atomic size_t late_count;        /* its length, read without the lock */
static _Thread_local struct late_thread *late_self;

/* The calling (late) thread joins late_threads, once. */
static bool late_enlist(void)
{
    if (late_self != NULL)
        return true;
    struct late_thread *t = malloc(sizeof *t);
    if (t == NULL)
        return false;
    t->hold = portreg__os_thread_hold();
    if (t->hold == 0) {
        free(t);
        return false;
    }
    t->slots = thread_slots;
    t->nslots = thread_nslots;
    portreg__os_mutex_lock(&portreg__registries_lock);
    t->next = late_threads;
    late_threads = t;
    atomic_fetch_add_explicit(&late_count, 1, memory_order_relaxed);
    portreg__os_mutex_unlock(&portreg__registries_lock);
    late_self = t;
    return true;
}

/* The calling late thread's array of links moved. */
static void late_moved(void)
{
    portreg__os_mutex_lock(&portreg__registries_lock);
    late_self->slots = thread_slots;
    late_self->nslots = thread_nslots;
    portreg__os_mutex_unlock(&portreg__registries_lock);
}

void portreg__epoch_reap_late(void)
{
    if (atomic_load_explicit(&late_count, memory_order_relaxed) == 0)
        return;
    struct late_thread *ended = NULL;
    portreg__os_mutex_lock(&portreg__registries_lock);
    for (struct late_thread **p = &late_threads; *p != NULL;) {
        struct late_thread *t = *p;
        if (!portreg__os_thread_ended(t->hold)) {
            p = &t->next;
            continue;
        }
        *p = t->next;
        atomic_fetch_sub_explicit(&late_count, 1, memory_order_relaxed);
        t->next = ended;
        ended = t;
    }
    portreg__os_mutex_unlock(&portreg__registries_lock);
    while (ended != NULL) {
        struct late_thread *next = ended->next;
        hand_back_all(ended->slots, ended->nslots);
        portreg__os_thread_release(ended->hold);
        free(ended);
        ended = next;
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
        if (UNLIKELY(portreg__os_exit_ran())) {
            if (!late_enlist())
                return NULL;
        } else if (portreg__os_key_get(exit_key) == NULL &&
                   portreg__os_key_set(exit_key, &thread_slots) != 0) {
            return NULL;
        }
        portreg__epoch_reap_late();
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
            if (UNLIKELY(late_self != NULL))
                late_moved();
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
    hand_back_all(slots, n);
}
