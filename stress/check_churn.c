/*
 * churn: thousands of short-lived threads, a few alive at a time, while
 * long-lived readers keep their epoch sections busy.
 *
 * Each short-lived thread does nothing with the registry, or only attaches,
 * or works on an id of its own (track, register, read back, iterate a
 * little, untrack) and checks what it reads: nobody else touches that id.
 * Its epoch record must be recycled when it exits: between waves (all of a
 * wave joined, every grace period waited out) the registry's live bytes
 * and blocks, counted by its allocator, must not grow after warm-up, nor
 * resident memory; after portreg_destroy() nothing may be left.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stress.h"

#define CHECK       "churn"
#define CHECKPOINTS 16

struct crun {
    const struct cfg *cfg;
    portreg_t *reg;
    struct counting mem;
    _Atomic bool done;
    _Atomic uint32_t spawned; /* readers probe ids of threads up to here */
};

struct cthread {
    struct crun *r;
    uint32_t index;
    pthread_t tid;
    struct rng rng;
    uint64_t ops;
};

static void expect(bool ok, const struct cthread *t, const char *what)
{
    if (!ok)
        fail(CHECK, "thread %u: %s (seed %llu)", t->index, what,
             (unsigned long long)t->r->cfg->seed);
}

static void *short_main(void *arg)
{
    struct cthread *t = arg;
    portreg_t *reg = t->r->reg;
    char b[ID_BUF];
    size_t len = id_make(b, 'w', 0, t->index);
    unsigned dice = rng_below(&t->rng, 8);
    portreg_state_t s, prev;
    uint16_t port = (uint16_t)(1 + t->index % 65535), got = 0;

    if (dice == 0)
        return NULL; /* never touches the registry: no record */
    if (dice == 1) {
        expect(portreg_thread_attach(reg) == 0, t, "attach failed");
        return NULL;
    }
    expect(portreg_track(reg, b, len) == 0, t, "track failed");
    expect(portreg_get(reg, b, len, &s) == 0 && s.status == PORTREG_PENDING && s.version != 0, t,
           "own id not pending after track");
    uint32_t v = s.version;
    expect(portreg_register(reg, b, len, port, &prev) == 0 && prev.status == PORTREG_PENDING &&
               prev.version == v,
           t, "register did not replace the pending state");
    expect(portreg_lookup(reg, b, len, &got) && got == port, t, "lookup missed its own port");
    expect(portreg_get(reg, b, len, &s) == 0 && s.status == PORTREG_BOUND && s.port == port &&
               s.version > v,
           t, "own id not bound to its port");
    if (dice == 2) {
        portreg_iter_t it;
        portreg_entry_t e;
        unsigned n = 0;
        portreg_iter_init(&it, reg);
        while (n++ < 8 && portreg_iter_next(&it, &e))
            expect(e.state.version != 0, t, "iteration returned version 0");
        portreg_iter_fini(&it);
    }
    uint32_t bound = s.version;
    expect(portreg_untrack(reg, b, len, &prev) == 0 && prev.status == PORTREG_BOUND &&
               prev.version == bound,
           t, "untrack did not replace the bound state");
    expect(!portreg_lookup(reg, b, len, NULL), t, "lookup found its id after untrack");
    t->ops += 7;
    return NULL;
}

static void *reader_main(void *arg)
{
    struct cthread *t = arg;
    struct crun *r = t->r;
    char b[ID_BUF];
    portreg_state_t s;

    /* relaxed: done only says when to stop, and spawned which ids are
     * worth probing; any id may be probed, nothing is read through them. */
    while (!atomic_load_explicit(&r->done, memory_order_relaxed) && !stopping()) {
        uint32_t top = atomic_load_explicit(&r->spawned, memory_order_relaxed);
        uint32_t k = top > 0 ? top - 1 - rng_below(&t->rng, top < 64 ? top : 64) : 0;
        size_t len = id_make(b, 'w', 0, k);
        if (rng_below(&t->rng, 64) == 0) {
            portreg_iter_t it;
            portreg_entry_t e;
            portreg_iter_init(&it, r->reg);
            while (portreg_iter_next(&it, &e))
                ;
            portreg_iter_fini(&it);
        } else if (portreg_get(r->reg, b, len, &s) != 0) {
            die("portreg_get failed");
        }
        t->ops++;
    }
    return NULL;
}

struct point {
    int64_t live_bytes, live_blocks;
    size_t rss_kib, slots;
};

static struct point checkpoint(struct crun *r)
{
    portreg_stats_t st;
    portreg_reclaim(r->reg); /* the grace periods of everything dropped so far */
    portreg_stats(r->reg, &st);
    return (struct point){atomic_load(&r->mem.live_bytes), atomic_load(&r->mem.live_blocks),
                          mem_now().rss_kib, st.slots};
}

unsigned check_churn(const struct cfg *cfg)
{
    struct crun r = {.cfg = cfg};
    unsigned before = atomic_load(&stress_failures);
    unsigned alive = cfg->c_alive, waves = cfg->c_threads / (alive ? alive : 1);
    portreg_options_t opts;
    double t0 = now_s();

    if (alive == 0 || waves < 2 * CHECKPOINTS || cfg->c_readers == 0)
        die("churn: needs readers and at least %u waves of threads", 2 * CHECKPOINTS);
    mem_reset_peak();
    counting_options(&r.mem, &opts);
    r.reg = portreg_create(&opts);
    if (r.reg == NULL)
        die("portreg_create failed");
    struct cthread *readers = xcalloc(cfg->c_readers, sizeof *readers);
    for (unsigned i = 0; i < cfg->c_readers; i++) {
        readers[i] = (struct cthread){.r = &r, .index = i, .rng = rng_for(cfg->seed, 400 + i)};
        start_thread(&readers[i].tid, reader_main, &readers[i]);
    }

    struct cthread *wave = xcalloc(alive, sizeof *wave);
    struct point warm = {0}, worst = {0}, p;
    uint64_t ops = 0;
    uint32_t made = 0;
    for (unsigned w = 0; w < waves && !stopping(); w++) {
        for (unsigned j = 0; j < alive; j++) {
            wave[j] = (struct cthread){
                .r = &r, .index = made, .rng = rng_for(cfg->seed, 1000000 + (uint64_t)made)};
            made++;
            start_thread(&wave[j].tid, short_main, &wave[j]);
        }
        atomic_store_explicit(&r.spawned, made, memory_order_relaxed);
        for (unsigned j = 0; j < alive; j++) {
            join_thread(wave[j].tid);
            ops += wave[j].ops;
        }
        if ((w + 1) % (waves / CHECKPOINTS) != 0)
            continue;
        p = checkpoint(&r);
        if ((w + 1) / (waves / CHECKPOINTS) == CHECKPOINTS / 4) {
            warm = worst = p; /* a quarter in: records and caches are warm */
        } else if (warm.live_blocks != 0) {
            worst.live_bytes = p.live_bytes > worst.live_bytes ? p.live_bytes : worst.live_bytes;
            worst.live_blocks =
                p.live_blocks > worst.live_blocks ? p.live_blocks : worst.live_blocks;
            worst.rss_kib = p.rss_kib > worst.rss_kib ? p.rss_kib : worst.rss_kib;
            worst.slots = p.slots > worst.slots ? p.slots : worst.slots;
        }
    }
    atomic_store_explicit(&r.done, true, memory_order_relaxed);
    uint64_t reads = 0;
    for (unsigned i = 0; i < cfg->c_readers; i++) {
        join_thread(readers[i].tid);
        reads += readers[i].ops;
    }
    p = checkpoint(&r);

    /* A record is a few hundred bytes: leaking one per thread is ~1 MiB
     * per few thousand threads; the slack covers dead slots below the
     * compaction threshold and table sizes. */
    int64_t slack = 64 * 1024;
    if (warm.live_blocks != 0 &&
        (worst.live_bytes > warm.live_bytes + slack || worst.live_blocks > warm.live_blocks + 128))
        fail(CHECK,
             "registry memory grew with threads: %lld bytes in %lld blocks after "
             "warm-up, up to %lld bytes in %lld blocks later",
             (long long)warm.live_bytes, (long long)warm.live_blocks, (long long)worst.live_bytes,
             (long long)worst.live_blocks);
    size_t rss_limit = warm.rss_kib + warm.rss_kib / 2 + 16 * 1024;
    if (cfg->r_enforce_rss && worst.rss_kib > rss_limit)
        fail(CHECK,
             "resident memory grew with threads: %zu KiB after warm-up, %zu KiB later "
             "(limit %zu)",
             warm.rss_kib, worst.rss_kib, rss_limit);
    bool empty = destroy_and_check_empty(CHECK, r.reg, &r.mem);
    free(wave);
    free(readers);

    double secs = now_s() - t0;
    unsigned found = atomic_load(&stress_failures) - before;
    printf("churn: %s seed=%llu threads=%u short-lived (at most %u alive) + %u readers, "
           "ops=%llu, reads=%llu\n",
           found ? "FAIL" : "PASS", (unsigned long long)cfg->seed, made, alive, cfg->c_readers,
           (unsigned long long)ops, (unsigned long long)reads);
    printf("churn:   registry live: %lld bytes / %lld blocks after warm-up, max %lld / %lld "
           "later, %lld / %lld at end, 0 after destroy: %s\n",
           (long long)warm.live_bytes, (long long)warm.live_blocks, (long long)worst.live_bytes,
           (long long)worst.live_blocks, (long long)p.live_bytes, (long long)p.live_blocks,
           empty ? "yes" : "NO");
    printf("churn:   rss: %zu KiB after warm-up, max %zu KiB later (%s); %.1f s, "
           "%.0f threads/s, peak_rss=%zu KiB\n",
           warm.rss_kib, worst.rss_kib, cfg->r_enforce_rss ? "bound enforced" : "not enforced",
           secs, (double)made / secs, mem_now().hwm_kib);
    return found;
}
