/*
 * exits: threads that used a registry exit while it is destroyed, and
 * after it, as a Rust program's threads do when one of them drops the last
 * Arc<Registry>.
 *
 * Each round makes a registry whose allocator quarantines what it frees
 * (fills it with a pattern and keeps it), and q_threads threads that each
 * make their first call on it (a lookup, a register of an id of their own,
 * a short iteration or a handle opened and closed) and check what they
 * read. Then one of them, or the main thread (rounds alternate), destroys
 * the registry: half of the threads exit as it starts (their exits hand
 * their epoch records back beside the destroy), the other half only once
 * it has returned (their exits find the registry gone and must leave it
 * alone). After the joins nothing of the registry may be left, and no
 * block it freed may have been written after its free: a hand-back into a
 * destroyed registry is caught even where libck, which no sanitizer
 * instruments, does the writing.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stress.h"

#define CHECK "exits"

struct qround {
    const struct cfg *cfg;
    portreg_t *reg;
    struct counting mem;
    unsigned index;
    pthread_barrier_t used;   /* every thread has used the registry */
    _Atomic bool destroyed;   /* the destroy has returned */
    _Atomic unsigned late;    /* late exiters still waiting for it */
    bool destroyer_is_thread; /* else the main thread destroys */
};

struct qthread {
    struct qround *q;
    unsigned index;
    pthread_t tid;
    struct rng rng;
};

static void expect(bool ok, const struct qthread *t, const char *what)
{
    if (!ok)
        fail(CHECK, "round %u, thread %u: %s (seed %llu)", t->q->index, t->index, what,
             (unsigned long long)t->q->cfg->seed);
}

/* The thread's first call, and a little more, checked. */
static void use(struct qthread *t)
{
    portreg_t *reg = t->q->reg;
    char b[ID_BUF];
    size_t len = id_make(b, 'q', t->q->index, t->index);
    uint16_t port = (uint16_t)(1 + t->index), got = 0;

    switch (rng_below(&t->rng, 4)) {
    case 0:
        expect(portreg_lookup(reg, ID("shared"), &got) && got == 8080, t, "shared id not bound");
        break;
    case 1:
        expect(portreg_register(reg, b, len, port, NULL) == 0, t, "register failed");
        expect(portreg_lookup(reg, b, len, &got) && got == port, t, "own id not bound");
        break;
    case 2: {
        portreg_iter_t it;
        portreg_entry_t e;
        bool seen = false;
        portreg_iter_init(&it, reg);
        while (portreg_iter_next(&it, &e))
            seen |= e.id_len == 6 && memcmp(e.id, "shared", 6) == 0;
        portreg_iter_fini(&it);
        expect(seen, t, "iteration missed the shared id");
        break;
    }
    default: {
        portreg_handle_t *h;
        expect(portreg_handle_open(reg, ID("shared"), &h) == 0, t, "handle open failed");
        expect(portreg_handle_lookup(h, &got) && got == 8080, t, "handle read not bound");
        portreg_handle_close(h);
        break;
    }
    }
}

static void *exiter_main(void *arg)
{
    struct qthread *t = arg;
    struct qround *q = t->q;
    use(t);
    bool late = t->index % 2 == 1;
    if (pthread_barrier_wait(&q->used) == PTHREAD_BARRIER_SERIAL_THREAD && q->destroyer_is_thread) {
        /* The last reference goes on this thread, as its peers exit. */
        portreg_destroy(q->reg);
        /* release: the late exiters' exits start after the destroy. */
        atomic_store_explicit(&q->destroyed, true, memory_order_release);
    }
    if (late) {
        /* acquire: pairs with the store above. Spinning, not sleeping:
         * this orders the exit after the destroy; the destroy cannot wait
         * for us (we have not begun to exit). */
        while (!atomic_load_explicit(&q->destroyed, memory_order_acquire))
            sched_yield();
    }
    return NULL; /* the exit hands the record back */
}

static void run_round(const struct cfg *cfg, unsigned index, struct qthread *th)
{
    struct qround q = {.cfg = cfg, .index = index, .destroyer_is_thread = index % 2 == 0};
    portreg_options_t opts;
    counting_options(&q.mem, &opts);
    q.mem.quarantine = true;
    q.reg = portreg_create(&opts);
    if (q.reg == NULL)
        die("portreg_create failed");
    if (portreg_register(q.reg, ID("shared"), 8080, NULL) != 0)
        die("portreg_register failed");
    unsigned n = cfg->q_threads;
    /* the main thread joins the barrier when it is the destroyer */
    pthread_barrier_init(&q.used, NULL, q.destroyer_is_thread ? n : n + 1);
    for (unsigned i = 0; i < n; i++) {
        th[i] = (struct qthread){
            .q = &q, .index = i, .rng = rng_for(cfg->seed, 7000000 + index * 64 + i)};
        start_thread(&th[i].tid, exiter_main, &th[i]);
    }
    if (!q.destroyer_is_thread) {
        pthread_barrier_wait(&q.used);
        portreg_destroy(q.reg);
        atomic_store_explicit(&q.destroyed, true, memory_order_release);
    }
    for (unsigned i = 0; i < n; i++)
        join_thread(th[i].tid);
    pthread_barrier_destroy(&q.used);
    if (!counting_is_empty(&q.mem))
        fail(CHECK, "round %u: %lld bytes of the registry left after destroy (seed %llu)", index,
             (long long)atomic_load(&q.mem.live_bytes), (unsigned long long)cfg->seed);
    if (!counting_quarantine_intact(&q.mem))
        fail(CHECK,
             "round %u: a thread's exit wrote to the destroyed registry (a freed block "
             "changed after its free; seed %llu)",
             index, (unsigned long long)cfg->seed);
}

unsigned check_exits(const struct cfg *cfg)
{
    unsigned before = atomic_load(&stress_failures);
    double t0 = now_s();
    if (cfg->q_threads < 2)
        die("exits: needs at least 2 threads per round");
    struct qthread *th = xcalloc(cfg->q_threads, sizeof *th);
    unsigned rounds = 0;
    for (; rounds < cfg->q_rounds && !stopping(); rounds++)
        run_round(cfg, rounds, th);
    free(th);
    unsigned failures = atomic_load(&stress_failures) - before;
    printf("exits: %u rounds of %u threads exiting beside and after destroy, %.1f s: %s\n", rounds,
           cfg->q_threads, now_s() - t0, failures ? "FAILED" : "ok");
    return failures;
}
