#define _GNU_SOURCE /* pthread_timedjoin_np() */
/*
 * White-box regression tests: situations the public API reaches only by
 * rare timing (a slot caught RETIRED mid-compaction, 16,383 sleepers on
 * one backend, ids built to collide under the table's own keys), set up
 * here directly through the library's internals. Linked against the
 * library's objects, not its exported interface.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(_WIN32)
#include <windows.h>
#else
#include <sys/wait.h>
#include <unistd.h>
#endif

/* Before fixture.h, whose global `reg` the internal headers' parameters
 * would shadow. */
#include "internal.h"

#include "fixture.h"

TestSuite(internals, .init = registry_setup, .fini = registry_teardown, .timeout = 60);

static struct slot *slot_of_id(const char *id, size_t len)
{
    struct slot *s = table_find(table_current(reg), id, len);
    cr_assert_not_null(s);
    return s;
}

/* Runs fn(arg) on a thread while this thread holds the writer lock, as a
 * writer stalled inside it would; true if fn returned within secs. */
static bool runs_while_writer_lock_held(void *(*fn)(void *), void *arg, int secs)
{
    portreg__os_lock(&reg->writer);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, fn, arg), 0);
#if defined(_WIN32)
    /* winpthreads has no timed join: wait on the thread's handle. */
    int joined = WaitForSingleObject(pthread_gethandle(t), (DWORD)secs * 1000) == WAIT_OBJECT_0
                     ? 0
                     : ETIMEDOUT;
#else
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += secs;
    int joined = pthread_timedjoin_np(t, NULL, &deadline);
#endif
    portreg__os_unlock(&reg->writer);
    if (joined != 0)
        pthread_join(t, NULL);
    return joined == 0;
}

struct retired_ops {
    uint32_t version;
    int rc[6];
    portreg_state_t prev[4];
    bool lookup;
    portreg_state_t got;
};

static void *ops_on_retired(void *arg)
{
    struct retired_ops *o = arg;
    for (int i = 0; i < 4; i++)
        o->prev[i] = (portreg_state_t){PORTREG_BOUND, 7, 77}; /* must be overwritten */
    o->rc[0] = portreg_unbind(reg, ID("gone"), &o->prev[0]);
    o->rc[1] = portreg_untrack(reg, ID("gone"), &o->prev[1]);
    o->rc[2] = portreg_untrack_if(reg, ID("gone"), o->version, &o->prev[2]);
    o->rc[3] = portreg_register_if(reg, ID("gone"), 80, o->version, &o->prev[3]);
    o->rc[4] = portreg_untrack_if(reg, ID("gone"), 0, NULL);
    o->lookup = portreg_lookup(reg, ID("gone"), NULL);
    o->rc[5] = portreg_get(reg, ID("gone"), &o->got);
    return NULL;
}

/* 0.2.0: every writer that found a RETIRED slot took the writer lock, so
 * with a compaction stalled (here: the lock simply held) unbind, untrack
 * and conflicting conditional calls on an untracked id all blocked; and
 * the conflicts left *prev unwritten. */
Test(internals, retired_slot_reads_as_untracked_without_the_writer_lock)
{
    cr_assert_eq(portreg_track(reg, ID("gone")), 0);
    portreg_state_t s;
    cr_assert_eq(portreg_untrack(reg, ID("gone"), &s), 0);
    struct slot *slot = slot_of_id(ID("gone"));
    uint64_t untracked = atomic_load(&slot->state);
    atomic_store(&slot->state, st_pack(ST_RETIRED, 0, st_version(untracked)));

    struct retired_ops o = {.version = s.version};
    cr_assert(runs_while_writer_lock_held(ops_on_retired, &o, 10),
              "operations on a retired slot waited for the writer lock");

    cr_assert_eq(o.rc[0], 0);
    cr_assert_eq(o.rc[1], 0);
    cr_assert_eq(o.rc[2], PORTREG_ECONFLICT);
    cr_assert_eq(o.rc[3], PORTREG_ECONFLICT);
    cr_assert_eq(o.rc[4], 0);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(o.prev[i].status, PORTREG_UNTRACKED, "prev[%d] not filled", i);
        cr_assert_eq(o.prev[i].version, 0);
    }
    cr_assert_not(o.lookup);
    cr_assert_eq(o.rc[5], 0);
    cr_assert_eq(o.got.status, PORTREG_UNTRACKED);
    atomic_store(&slot->state, untracked);
}

/* 0.2.0: ck_ht takes an entry whose key pointer equals the probe's as a
 * match before comparing lengths, so the address of "svc-N"'s id (from the
 * iterator) passed with length 3 hit "svc-N" itself when the prefix's
 * probe passed its bucket. Here the prefix's probe starts on it. */
Test(internals, an_alias_into_a_slot_with_another_length_is_another_id)
{
    struct table *t = table_current(reg);
    size_t mask = atomic_load(&reg->books.table_capacity) - 1;
    char x[32];
    int n = 0;
    for (unsigned i = 0;; i++) {
        n = snprintf(x, sizeof x, "svc-%u", i);
        if ((id_hash(x, 3, &t->key) & mask) == (id_hash(x, (size_t)n, &t->key) & mask))
            break;
    }
    cr_assert_eq(portreg_register(reg, x, (size_t)n, 5555, NULL), 0);
    portreg_iter_t it;
    portreg_entry_t e;
    portreg_iter_init(&it, reg);
    cr_assert(portreg_iter_next(&it, &e));
    cr_assert_eq(e.id_len, (size_t)n);
    portreg_state_t prev;
    cr_assert_eq(portreg_register(reg, e.id, 3, 9999, &prev), 0);
    cr_assert_eq(prev.status, PORTREG_UNTRACKED);
    portreg_iter_fini(&it);
    uint16_t port = 0;
    cr_assert(portreg_lookup(reg, x, (size_t)n, &port));
    cr_assert_eq(port, 5555);
    cr_assert(portreg_lookup(reg, x, 3, &port));
    cr_assert_eq(port, 9999);
}

/* 0.2.0: the waiter past the count's capacity looped on sched_yield(),
 * a full core for the whole timeout. */
Test(internals, waiter_past_the_count_capacity_sleeps)
{
    cr_assert_eq(portreg_track(reg, ID("crowd")), 0);
    struct slot *slot = slot_of_id(ID("crowd"));
    /* As if 16,383 threads slept on it. */
    atomic_fetch_or(&slot->state, ST_WAITERS_MASK);
    uint32_t v = state_of(ID("crowd")).version;

    struct bg_wait w = {.id = "crowd", .len = 5, .seen = v, .timeout = 300 * 1000000LL};
    pthread_join(bg_wait_start(&w), NULL);
    cr_assert_eq(w.rc, PORTREG_ETIMEDOUT);
    cr_assert_lt(w.cpu_ms, 100.0, "the waiter burned %.1f ms of CPU in a 300 ms wait", w.cpu_ms);

    /* Saturated, it still wakes on a change ... */
    struct bg_wait forever = {.id = "crowd", .len = 5, .seen = v, .timeout = -1};
    pthread_t t = bg_wait_start(&forever);
    cr_assert_eq(portreg_register(reg, ID("crowd"), 81, NULL), 0);
    pthread_join(t, NULL);
    cr_assert_eq(forever.rc, 0);
    cr_assert_eq(forever.state.port, 81);
    cr_assert_eq(st_waiters(atomic_load(&slot->state)), ST_WAITERS_MAX);

    /* ... and is never dropped, as uncounted sleepers may be on it. */
    cr_assert_eq(portreg_untrack(reg, ID("crowd"), NULL), 0);
    char id[32];
    for (unsigned i = 0; i < 500; i++) {
        int n = snprintf(id, sizeof id, "filler-%u", i);
        cr_assert_eq(portreg_track(reg, id, (size_t)n), 0);
        cr_assert_eq(portreg_untrack(reg, id, (size_t)n, NULL), 0);
    }
    portreg_stats_t st;
    cr_assert_eq(portreg_stats(reg, &st), 0);
    cr_assert_gt(st.compactions, 0);
    cr_assert_eq(table_find(table_current(reg), ID("crowd")), slot);
    atomic_fetch_and(&slot->state, ~ST_WAITERS_MASK); /* let destroy see a plain slot */
}

/* A reseed (what abnormal probing triggers: ids colliding under the
 * table's keys cannot be built without them, so the test forces one)
 * draws new keys and no backend may notice. */
Test(internals, a_reseed_changes_no_state_version_or_handle)
{
    char ids[300][24];
    size_t lens[300];
    portreg_state_t before[300];
    for (unsigned i = 0; i < 300; i++) {
        lens[i] = (size_t)snprintf(ids[i], sizeof ids[i], "backend-%u", i);
        if (i % 3 == 0)
            cr_assert_eq(portreg_track(reg, ids[i], lens[i]), 0);
        else
            cr_assert_eq(portreg_register(reg, ids[i], lens[i], (uint16_t)(1000 + i), NULL), 0);
        if (i % 7 == 0)
            cr_assert_eq(portreg_untrack(reg, ids[i], lens[i], NULL), 0);
        cr_assert_eq(portreg_get(reg, ids[i], lens[i], &before[i]), 0);
    }
    portreg_handle_t *hd;
    cr_assert_eq(portreg_handle_open(reg, ids[1], lens[1], &hd), 0);
    struct table *old = table_current(reg);
    struct hash_key old_key = old->key;

    portreg__table_reseed(reg);

    struct table *now_t = table_current(reg);
    cr_assert_neq(now_t, old);
    cr_assert_neq(memcmp(&now_t->key, &old_key, sizeof old_key), 0, "same keys after a reseed");
    portreg_stats_t st;
    cr_assert_eq(portreg_stats(reg, &st), 0);
    cr_assert_eq(st.reseeds, 1);
    for (unsigned i = 0; i < 300; i++) {
        portreg_state_t now;
        cr_assert_eq(portreg_get(reg, ids[i], lens[i], &now), 0);
        cr_assert_eq(now.status, before[i].status, "%s", ids[i]);
        cr_assert_eq(now.port, before[i].port);
        cr_assert_eq(now.version, before[i].version);
    }
    uint16_t port = 0;
    cr_assert(portreg_handle_lookup(hd, &port));
    cr_assert_eq(port, 1001);
    cr_assert_eq(portreg_register(reg, ids[1], lens[1], 2000, NULL), 0);
    cr_assert(portreg_handle_lookup(hd, &port));
    cr_assert_eq(port, 2000);
    portreg_handle_close(hd);
}

/* The reseed threshold sits well above what random ids produce: build a
 * large table of them and check no reseed happened and probe_max stays
 * under the threshold by a wide margin. */
Test(internals, random_ids_never_trigger_a_reseed)
{
    char id[32];
    for (unsigned i = 0; i < 200000; i++) {
        int n = snprintf(id, sizeof id, "%x-%u", i * 2654435761u, i);
        cr_assert_eq(portreg_track(reg, id, (size_t)n), 0);
    }
    portreg_stats_t st;
    cr_assert_eq(portreg_stats(reg, &st), 0);
    cr_assert_eq(st.reseeds, 0);
    unsigned log2 = 0;
    while (((size_t)1 << log2) < st.table_capacity)
        log2++;
    cr_assert_lt(st.probe_max * 2, 16 + 2 * log2, "probe_max %zu at %zu buckets", st.probe_max,
                 st.table_capacity);
}

/* Review of 0.3 (1): the insert of a handle's or a waiter's placeholder
 * could trigger a reseed that dropped that very placeholder, leaving the
 * handle on a freed slot (ASan: heap-use-after-free) and the waiter asleep
 * on a slot no writer would ever change. */
static void make_inserts_reseed(portreg_t *r)
{
    char id[32];
    for (unsigned i = 0; i < 300; i++) {
        int n = snprintf(id, sizeof id, "crowd-%u", i);
        cr_assert_eq(portreg_track(r, id, (size_t)n), 0);
    }
    r->reseed_limit_for_tests = 1; /* any probe longer than one entry */
    r->reseed_after = 0;
}

Test(internals, a_reseed_never_drops_the_placeholder_a_handle_is_opening)
{
    make_inserts_reseed(reg);
    portreg_stats_t before, after;
    cr_assert_eq(portreg_stats(reg, &before), 0);
    portreg_handle_t *h;
    cr_assert_eq(portreg_handle_open(reg, ID("victim"), &h), 0);
    cr_assert_eq(portreg_stats(reg, &after), 0);
    cr_assert_eq(after.reseeds, before.reseeds + 1, "the insert did not reseed");
    reg->reseed_limit_for_tests = 0;
    cr_assert_eq(portreg_track(reg, ID("victim")), 0);
    portreg_state_t by_id, by_handle;
    cr_assert_eq(portreg_get(reg, ID("victim"), &by_id), 0);
    cr_assert_eq(portreg_reclaim(reg), 0); /* frees whatever the reseed dropped */
    cr_assert_eq(portreg_handle_get(h, &by_handle), 0);
    cr_assert_eq(by_handle.status, PORTREG_PENDING);
    cr_assert_eq(by_handle.version, by_id.version);
    portreg_handle_close(h);
}

Test(internals, a_reseed_never_drops_the_placeholder_a_waiter_sleeps_on)
{
    make_inserts_reseed(reg);
    uint64_t reseeds = 0;
    portreg_stats_t st;
    cr_assert_eq(portreg_stats(reg, &st), 0);
    reseeds = st.reseeds;
    struct bg_wait w = {.id = "victim", .len = 6, .seen = 0, .timeout = 10 * 1000000000LL};
    pthread_t t = bg_wait_start(&w);
    /* The placeholder's insert reseeds; the waiter counts itself on the
     * placeholder in the same critical section. */
    do {
        sched_yield();
        cr_assert_eq(portreg_stats(reg, &st), 0);
    } while (st.reseeds == reseeds);
    reg->reseed_limit_for_tests = 0;
    cr_assert_eq(portreg_reclaim(reg), 0);
    cr_assert_eq(portreg_track(reg, ID("victim")), 0);
    pthread_join(t, NULL);
    cr_assert_eq(w.rc, 0, "the waiter missed the track: %s", portreg_err_name(w.rc));
    cr_assert_eq(w.state.status, PORTREG_PENDING);
}

/* Review of 0.3 (3): a wait on an unknown id took the writer lock with no
 * deadline, so a long rebuild or a slow allocation stretched its timeout. */
Test(internals, a_wait_keeps_its_deadline_while_the_writer_lock_is_held)
{
    struct bg_wait w = {.id = "nobody", .len = 6, .seen = 0, .timeout = 20 * 1000000LL};
    cr_assert(runs_while_writer_lock_held(bg_wait_run, &w, 5),
              "the wait outlived its 20 ms timeout by seconds");
    cr_assert_eq(w.rc, PORTREG_ETIMEDOUT);
    cr_assert_lt(w.ms, 1000.0);
}

/* Review of 0.3 (second round, 3): when the writer lock could not be had
 * before the deadline, the wait reported the state it had read before
 * queueing for the lock, though the id had changed meanwhile. */
Test(internals, a_wait_that_times_out_on_the_lock_reports_the_current_state)
{
    struct bg_wait w = {.id = "x", .len = 1, .seen = 0, .timeout = 300 * 1000000LL};
    portreg__os_lock(&reg->writer);
    pthread_t t = bg_wait_start(&w);
    /* As the lock's holder, insert x as a register would. */
    struct slot *s;
    uint64_t word;
    struct op op = {.kind = OP_REGISTER, .port = 4444};
    cr_assert_eq(portreg__table_insert(reg, ID("x"), &op, false, &s, &word), 0);
    portreg__notify_change(reg, s, st_pack(PORTREG_UNTRACKED, 0, 0));
    struct timespec half_second = {0, 500000000};
    nanosleep(&half_second, NULL); /* holding the lock past the wait's deadline */
    portreg__os_unlock(&reg->writer);
    pthread_join(t, NULL);
    cr_assert_eq(w.rc, 0, "%s with a stale state", portreg_err_name(w.rc));
    cr_assert_eq(w.state.status, PORTREG_BOUND);
    cr_assert_eq(w.state.port, 4444);
}

/* ---- threads that exit beside portreg_destroy() ---- */

TestSuite(thread_exit, .timeout = 60);

struct late_exiter {
    portreg_t *r;
    pthread_barrier_t *attached, *destroyed;
    int rc;
    bool linked;
};

static void *attach_and_exit_after_destroy(void *arg)
{
    struct late_exiter *x = arg;
    x->rc = portreg_thread_attach(x->r);
    x->linked = portreg__epoch_link_of(&x->r->epoch) != NULL;
    pthread_barrier_wait(x->attached);
    pthread_barrier_wait(x->destroyed);
    /* What this thread's exit runs, now that the registry is gone. */
    portreg__epoch_thread_exit(NULL);
    return NULL;
}

/* Review of 0.3 (third round): a registry's own pthread key gave an
 * exiting thread's record back, and destroy deleted the key and freed the
 * records; a thread whose exit had already fetched its record from the key
 * then unregistered freed memory (the old destructor called on the old
 * key's value after destroy: a use after free under ASan). Now the exit
 * goes through the thread's link and the registry's anchor, which outlive
 * the registry, and leaves the record alone. */
Test(thread_exit, an_exit_that_runs_after_destroy_leaves_the_registry_alone)
{
    struct counting c;
    portreg_t *r = counted_registry(&c);
    pthread_barrier_t attached, destroyed;
    pthread_barrier_init(&attached, NULL, 2);
    pthread_barrier_init(&destroyed, NULL, 2);
    struct late_exiter x = {r, &attached, &destroyed, -1, false};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, attach_and_exit_after_destroy, &x), 0);
    pthread_barrier_wait(&attached);
    struct epoch_anchor *a = r->epoch.anchor;
    atomic_fetch_add(&a->refs, 1); /* ours: the anchor stays readable */
    c.quarantine = true;           /* the freed record keeps its bytes */
    portreg_destroy(r);
    cr_assert(counting_is_empty(&c), "destroy left %lld blocks of the registry",
              (long long)atomic_load(&c.live_blocks));
    pthread_barrier_wait(&destroyed);
    pthread_join(t, NULL);
    cr_assert_eq(x.rc, 0);
    cr_assert(x.linked, "the thread's record was not on its list");
    cr_assert_eq(atomic_load(&c.bad_frees), 0u);
    cr_assert(counting_quarantine_intact(&c), "the exit wrote to the destroyed registry");
    /* The exit dropped the thread's link and its reference. */
    cr_assert_eq(atomic_load(&a->refs), 1, "%zu references left", atomic_load(&a->refs));
    free(a);
}

static void *destroy_on_a_thread(void *arg)
{
    portreg_destroy(arg);
    return NULL;
}

/* The other order: a thread's exit saw the registry alive and is handing
 * its record back when destroy begins; destroy must free nothing until the
 * hand-back is over (it unregisters the record, inside the registry). */
Test(thread_exit, destroy_waits_for_a_hand_back_in_progress)
{
    struct counting c;
    portreg_t *r = counted_registry(&c);
    cr_assert_eq(portreg_register(r, ID("svc"), 8080, NULL), 0);
    cr_assert_eq(portreg_thread_attach(r), 0);
    struct epoch_anchor *a = r->epoch.anchor;
    atomic_fetch_add(&a->refs, 1);
    /* A hand-back that has seen the registry alive (hand_back()'s first
     * step), held open by this test. */
    atomic_fetch_add(&a->exiting, 1);
    int64_t blocks = atomic_load(&c.live_blocks);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, destroy_on_a_thread, r), 0);
    while (!atomic_load(&a->dead))
        sched_yield();
    /* destroy has begun; with a hand-back open it frees nothing. */
    cr_assert_eq(atomic_load(&c.live_blocks), blocks, "destroy freed memory under a hand-back");
    atomic_fetch_sub(&a->exiting, 1);
    pthread_join(t, NULL);
    cr_assert(counting_is_empty(&c));
    /* Ours and this thread's link (it outlived the registry). */
    cr_assert_eq(atomic_load(&a->refs), 2);
    atomic_fetch_sub(&a->refs, 1);
}

/* A thread that outlives registries keeps a link to each until its next
 * first call on a registry, which drops the links to dead ones. */
Test(thread_exit, links_to_destroyed_registries_are_dropped_on_the_next_first_call)
{
    portreg_t *old = portreg_create(NULL);
    cr_assert_not_null(old);
    cr_assert_eq(portreg_thread_attach(old), 0);
    struct epoch_anchor *a = old->epoch.anchor;
    atomic_fetch_add(&a->refs, 1);
    portreg_destroy(old);
    cr_assert_eq(atomic_load(&a->refs), 2, "the thread's link went with the registry");
    portreg_t *r = portreg_create(NULL);
    cr_assert_not_null(r);
    cr_assert_eq(portreg_thread_attach(r), 0);
    cr_assert_eq(atomic_load(&a->refs), 1, "the link to the destroyed registry is still held");
    free(a);
    portreg_destroy(r);
}

#if PORTREG_TEST_HAVE_FORK
/* Review of 0.3 (third round, 2): a thread of the parent inside its exit's
 * hand-back at fork() left the child's anchor counting it, and the child's
 * destroy waited forever for a thread the child does not have. */
Test(thread_exit, a_child_destroys_though_a_parent_thread_was_handing_back)
{
    portreg_t *r = portreg_create(NULL);
    cr_assert_not_null(r);
    struct epoch_anchor *a = r->epoch.anchor;
    atomic_fetch_add(&a->exiting, 1); /* a parent thread inside hand_back() */
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        alarm(10); /* a destroy that waits forever dies of SIGALRM */
        portreg_destroy(r);
        _exit(0);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    atomic_fetch_sub(&a->exiting, 1);
    portreg_destroy(r);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the child's destroy did not return (status %#x)", status);
}
#else
SKIPPED_TEST(thread_exit, a_child_destroys_though_a_parent_thread_was_handing_back,
             "Windows has no fork()")
#endif

/* An allocator that, once armed, first looks an id up in the registry it
 * serves: a thread's first call nested inside its first call. */
static portreg_t *reentrant_reg;
static _Atomic bool reenter_armed;
static _Thread_local bool reentering;

static void *reentrant_alloc(void *ctx, size_t size)
{
    (void)ctx;
    if (atomic_load(&reenter_armed) && !reentering) {
        reentering = true;
        portreg_lookup(reentrant_reg, ID("svc"), NULL);
        reentering = false;
    }
    return malloc(size);
}

static void reentrant_free(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    (void)size;
    free(ptr);
}

static void *attach_through_the_hook(void *arg)
{
    *(int *)arg = portreg_thread_attach(reentrant_reg);
    return NULL;
}

/* Review of 0.3 (fifth round, 1): when the allocator hook that made a
 * thread's epoch record called into the same registry, the nested first
 * call linked a record of its own, and the outer call then overwrote that
 * link in the thread's array: it was never handed back, and its reference
 * kept the registry's anchor alive for good. */
Test(thread_exit, an_allocator_hook_that_calls_back_leaves_one_link)
{
    portreg_options_t o;
    portreg_options_init(&o);
    o.alloc = reentrant_alloc;
    o.free = reentrant_free;
    reentrant_reg = portreg_create(&o);
    cr_assert_not_null(reentrant_reg);
    cr_assert_eq(portreg_register(reentrant_reg, ID("svc"), 8080, NULL), 0);
    struct epoch_anchor *a = reentrant_reg->epoch.anchor;
    size_t refs = atomic_load(&a->refs); /* the registry's and this thread's link */
    atomic_store(&reenter_armed, true);
    int rc = -1;
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, attach_through_the_hook, &rc), 0);
    pthread_join(t, NULL);
    atomic_store(&reenter_armed, false);
    cr_assert_eq(rc, 0);
    /* The exit handed back every link the thread made. */
    cr_assert_eq(atomic_load(&a->refs), refs, "%zu references, not %zu: a link was lost",
                 atomic_load(&a->refs), refs);
    portreg_destroy(reentrant_reg);
}

/* Defect of 0.3.0: a waiter's placeholder was visible to lock-free track
 * and untrack before the waiter counted itself on it; a track and an
 * untrack in that window left a word whose public version was 0 again,
 * which the waiter took as its baseline and slept through both. The
 * allocator below runs them in the window, on the waiter's own thread:
 * the placeholder's insert reseeds, and the reseed allocates. */
static struct {
    portreg_t *reg;
    atomic_bool armed;
    int track_rc, untrack_rc;
} in_window;

static void *alloc_tracking_in_window(void *ctx, size_t size)
{
    (void)ctx;
    if (atomic_load(&in_window.armed) &&
        table_find(table_current(in_window.reg), ID("victim")) != NULL &&
        atomic_exchange(&in_window.armed, false)) {
        in_window.track_rc = portreg_track(in_window.reg, ID("victim"));
        in_window.untrack_rc = portreg_untrack(in_window.reg, ID("victim"), NULL);
    }
    return malloc(size);
}

static void free_plain(void *ctx, void *p, size_t size)
{
    (void)ctx;
    (void)size;
    free(p);
}

Test(internals, a_waiter_sees_a_track_and_untrack_of_the_placeholder_it_inserts)
{
    portreg_options_t o;
    portreg_options_init(&o);
    o.alloc = alloc_tracking_in_window;
    o.free = free_plain;
    portreg_destroy(reg);
    reg = in_window.reg = portreg_create(&o);
    cr_assert_not_null(reg);
    make_inserts_reseed(reg);
    atomic_store(&in_window.armed, true);
    struct bg_wait w = {.id = "victim", .len = 6, .seen = 0, .timeout = 5 * 1000000000LL};
    pthread_join(bg_wait_start(&w), NULL);
    cr_assert(!atomic_load(&in_window.armed), "the window was not reached");
    cr_assert_eq(in_window.track_rc, 0);
    cr_assert_eq(in_window.untrack_rc, 0);
    cr_assert_eq(w.rc, 0, "the waiter slept through a track and an untrack: %s",
                 portreg_err_name(w.rc));
    cr_assert_eq(w.state.status, PORTREG_UNTRACKED);
}

/* Two waiters leaving an untracked slot at once each read the other's
 * count before either decremented it, so neither saw itself as the last
 * one, and the slot stayed counted as kept (books.stuck) though nothing
 * held it. Now the word each one's CAS replaced decides, and the books
 * are exact after every round. */
Test(internals, the_last_of_waiters_leaving_at_once_releases_the_slot)
{
    enum { ROUNDS = 500, WAITERS = 8 };
    struct slot *s = NULL;
    for (int round = 0; round < ROUNDS; round++) {
        cr_assert_eq(portreg_track(reg, ID("flapping")), 0);
        s = slot_of_id(ID("flapping"));
        struct bg_wait w[WAITERS];
        pthread_t t[WAITERS];
        for (int i = 0; i < WAITERS; i++) {
            w[i] = (struct bg_wait){.id = "flapping", .len = 8, .timeout = -1};
            w[i].seen = state_of(ID("flapping")).version;
            t[i] = bg_wait_start(&w[i]);
        }
        while (st_waiters(atomic_load(&s->state)) != WAITERS)
            sched_yield();
        /* The untrack finds them asleep: the slot is kept until they go,
         * and they all wake and leave at once. */
        cr_assert_eq(portreg_untrack(reg, ID("flapping"), NULL), 0);
        for (int i = 0; i < WAITERS; i++) {
            pthread_join(t[i], NULL);
            cr_assert_eq(w[i].rc, 0);
            cr_assert_eq(w[i].state.status, PORTREG_UNTRACKED);
        }
        cr_assert_eq(atomic_load(&reg->books.stuck), 0,
                     "round %d: a slot nobody holds counts as kept", round);
    }
}

/* The inline map read (probe.h) is on wherever the build compiles it: the
 * check at create found this process's libck laid out as it expects. */
Test(internals, the_inline_map_read_is_checked_and_on)
{
    cr_assert_eq(reg->inline_read, (bool)PORTREG_INLINE_PROBE);
    cr_assert_eq(table_current(reg)->inline_read, (bool)PORTREG_INLINE_PROBE);
}

/* Ids whose probes all start at one bucket of the current table and take
 * the same first strides (ck_ht's next row comes from the hash bits above
 * the bucket index), so that lookups walk long probe sequences. */
static size_t colliding_ids(char (*ids)[24], size_t *lens, size_t n)
{
    struct table *t = table_current(reg);
    size_t buckets = atomic_load(&reg->books.table_capacity);
    unsigned step = (unsigned)__builtin_ffsll((long long)buckets);
    uint64_t key_bits = (buckets - 1) | ((uint64_t)0xff << step);
    uint64_t want = id_hash("crowd-0", 7, &t->key) & key_bits;
    size_t found = 0;
    for (unsigned i = 0; found < n; i++) {
        int len = snprintf(ids[found], sizeof ids[found], "crowd-%u", i);
        if ((id_hash(ids[found], (size_t)len, &t->key) & key_bits) == want)
            lens[found++] = (size_t)len;
    }
    return found;
}

/* On probe sequences far longer than random ids make, the inline read
 * and ck_ht_get_spmc() find the same slot for every id, and miss alike. */
Test(internals, the_inline_read_agrees_with_ck_ht_on_long_probes)
{
    if (!PORTREG_INLINE_PROBE)
        cr_skip_test("built without the inline map read");
    /* A fixed seed: the crowd, and so its probe lengths, are the same in
     * every run. */
    portreg_destroy(reg);
    portreg_options_t o;
    portreg_options_init(&o);
    o.hash_seed = 0x5eed;
    reg = portreg_create(&o);
    cr_assert_not_null(reg);
    reg->reseed_limit_for_tests = 1000; /* keep the crowd in one table */
    char ids[48][24];
    size_t lens[48];
    colliding_ids(ids, lens, 48);
    for (unsigned i = 0; i < 32; i++)
        cr_assert_eq(portreg_register(reg, ids[i], lens[i], (uint16_t)(100 + i), NULL), 0);
    cr_assert_geq(stats_now().probe_max, 8, "the crowd made probes of %zu entries only",
                  stats_now().probe_max);
    struct table *t = table_current(reg);
    for (unsigned i = 0; i < 48; i++) {
        char copy[PORTREG_ID_MAX];
        memcpy(copy, ids[i], lens[i]);
        uint64_t h = id_hash(copy, lens[i], &t->key);
        struct slot *pub = portreg__table_find_ck(t, h, copy, lens[i]);
        struct slot *inl = (struct slot *)probe_get(&t->ht, h, copy, lens[i]);
        cr_assert_eq(inl, pub, "id %u", i);
        cr_assert_eq(pub != NULL, i < 32, "id %u", i);
    }
    portreg_id_t req[48];
    uint16_t ports[48];
    for (unsigned i = 0; i < 48; i++)
        req[i] = (portreg_id_t){ids[i], lens[i]};
    cr_assert_eq(portreg_lookup_many(reg, req, 48, ports), 32);
    for (unsigned i = 0; i < 48; i++)
        cr_assert_eq(ports[i], i < 32 ? 100 + i : 0, "id %u", i);
}

/* A libck whose map the inline read would misread: the registry reads
 * through ck_ht_get_spmc() instead, in every table it makes, and answers
 * the same; the next registry checks again. */
static void falls_back_to_the_public_read(int fault)
{
    if (!PORTREG_INLINE_PROBE)
        cr_skip_test("built without the inline map read");
    atomic_store(&portreg__probe_fault_for_tests, fault);
    portreg_t *r = portreg_create(NULL);
    atomic_store(&portreg__probe_fault_for_tests, 0);
    cr_assert_not_null(r);
    cr_assert_not(r->inline_read);
    cr_assert_not(table_current(r)->inline_read);
    char id[32];
    for (unsigned i = 0; i < 3000; i++) {
        int n = snprintf(id, sizeof id, "fallback-%u", i);
        cr_assert_eq(portreg_register(r, id, (size_t)n, (uint16_t)(1 + i), NULL), 0);
    }
    portreg__table_reseed(r);
    cr_assert_not(table_current(r)->inline_read, "a rebuilt table read inline");
    portreg_id_t req[2];
    uint16_t ports[2], port = 0;
    for (unsigned i = 0; i < 3000; i++) {
        int n = snprintf(id, sizeof id, "fallback-%u", i);
        cr_assert(portreg_lookup(r, id, (size_t)n, &port));
        cr_assert_eq(port, 1 + i);
        req[0] = (portreg_id_t){id, (size_t)n};
        req[1] = (portreg_id_t){"fallback-x", 10};
        cr_assert_eq(portreg_lookup_many(r, req, 2, ports), 1);
        cr_assert_eq(ports[0], 1 + i);
        cr_assert_eq(ports[1], 0);
    }
    portreg_destroy(r);
    r = portreg_create(NULL);
    cr_assert_not_null(r);
    cr_assert(r->inline_read, "one failed check turned the inline read off for good");
    portreg_destroy(r);
}

Test(internals, a_map_layout_that_differs_falls_back_to_the_public_read)
{
    falls_back_to_the_public_read(PORTREG_PROBE_FAULT_LAYOUT);
}

Test(internals, a_read_that_disagrees_falls_back_to_the_public_read)
{
    falls_back_to_the_public_read(PORTREG_PROBE_FAULT_RESULT);
}

/* An entry a put is filling: ck_ht_put_spmc() stores the length, hash and
 * value first and the key last, so a reader may find an entry whose key
 * still reads empty but whose other fields are the inserted id's. It must
 * read as empty: the probe ends there, a miss. (The inline read's first
 * version matched on length and hash alone there and then compared bytes
 * at key pointer 0.) The entry is set up by hand, as a writer stopped
 * between its stores would leave it, in both places of the first row. */
static void fill_like_a_put_in_progress(struct ck_ht_entry *e, uint64_t h, size_t len, void *value)
{
    e->key_length = len;
    e->hash = h;
    e->value = (uintptr_t)value;
}

static void assert_misses(const char *id, size_t len)
{
    uint16_t port = 0;
    cr_assert_not(portreg_lookup(reg, id, len, &port), "%.*s found", (int)len, id);
    portreg_id_t req[1] = {{id, len}};
    uint16_t ports[1] = {1};
    cr_assert_eq(portreg_lookup_many(reg, req, 1, ports), 0);
    cr_assert_eq(ports[0], 0);
}

Test(internals, an_entry_a_put_is_filling_reads_as_empty)
{
    struct table *t = table_current(reg);
    struct probe_map *m = (struct probe_map *)(uintptr_t)probe_map_of(&t->ht);
    cr_assert_eq(portreg_register(reg, ID("first"), 1111, NULL), 0);
    struct slot *real = slot_of_id(ID("first"));

    /* The first entry examined. */
    /* An id whose first entry is empty (not first's, whatever the keys). */
    char second[32];
    int len = 0;
    uint64_t h = 0;
    for (unsigned i = 0;; i++) {
        len = snprintf(second, sizeof second, "second-%u", i);
        h = id_hash(second, (size_t)len, &t->key);
        if (m->entries[h & m->mask].key == CK_HT_KEY_EMPTY)
            break;
    }
    struct ck_ht_entry *e0 = m->entries + (h & m->mask);
    fill_like_a_put_in_progress(e0, h, (size_t)len, real);
    assert_misses(second, (size_t)len);
    memset(e0, 0, sizeof *e0);

    /* The second entry of the row, after an entry of another id. */
    uint64_t hf = id_hash("first", 5, &t->key);
    size_t at = (size_t)(hf & m->mask);
    cr_assert_eq(m->entries[at].value, (uintptr_t)real, "first is not in its first entry");
    char id[32];
    int n = 0;
    for (unsigned i = 0;; i++) {
        n = snprintf(id, sizeof id, "neighbour-%u", i);
        h = id_hash(id, (size_t)n, &t->key);
        if ((h & m->mask) == at)
            break;
    }
    struct ck_ht_entry *e1 = m->entries + (at ^ 1);
    cr_assert_eq(e1->key, CK_HT_KEY_EMPTY);
    fill_like_a_put_in_progress(e1, h, (size_t)n, real);
    assert_misses(id, (size_t)n);
    memset(e1, 0, sizeof *e1);
}

/* Second review of the sparse floor (B): a reseed sized its new table's
 * floor by slots, untracked ones included: 300 tracked ids beside 250
 * untracked slots got a 512 KiB map. The floor counts tracked ids. */
Test(internals, a_reseed_sizes_the_floor_by_tracked_ids)
{
    char id[32];
    for (int i = 0; i < 550; i++) {
        int len = snprintf(id, sizeof id, "reseed-%d", i);
        cr_assert_eq(portreg_register(reg, id, (size_t)len, 80, NULL), 0);
    }
    for (int i = 300; i < 550; i++) {
        int len = snprintf(id, sizeof id, "reseed-%d", i);
        cr_assert_eq(portreg_untrack(reg, id, (size_t)len, NULL), 0);
    }
    portreg_stats_t st = stats_now();
    cr_assert_eq(st.slots, 550, "no compaction yet");
    portreg__table_reseed(reg);
    st = stats_now();
    cr_assert_eq(st.reseeds, 1);
    cr_assert_leq(st.table_capacity, 4096, "%zu buckets for 300 tracked ids", st.table_capacity);
    cr_assert_eq(portreg_count(reg), 300);
}
