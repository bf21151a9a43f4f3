/*
 * portreg-peer-cost: ns per lookup on one thread, in thread CPU time,
 * for portreg_lookup(), portreg_lookup_many() (per id, batches of 64) and
 * liburcu's cds_lfht (urcu-memb flavour, as the urcu-memb peer of
 * portreg-bench: node {lfht node, state word, id}, bench_hash()), at 1k
 * and 1M keys, hits and misses.
 *
 * Each figure is the fastest of REPS runs, the three taking turns within
 * each repetition. Thread CPU time leaves out the time other processes
 * hold the CPU, so on a shared machine these ratios hold far better than
 * portreg-bench's throughput windows (caches shared with other processes
 * still count). The loop walks a request stream drawn before the run and
 * prefetches each id 8 requests ahead, as portreg-bench's read loop does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <urcu/rculfhash.h>
#include <urcu/urcu-memb.h>

#include "portreg.h"

#include "loops.h"

#define REPS   11
#define STREAM (1u << 20)
#define BATCH  64
#define AHEAD  8

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- urcu-memb cds_lfht ---- */

struct un {
    struct cds_lfht_node lf;
    _Atomic uint64_t state;
    uint16_t len;
    char id[];
};

struct ukey {
    const char *p;
    size_t len;
};

static int u_match(struct cds_lfht_node *node, const void *key)
{
    const struct un *n = caa_container_of(node, struct un, lf);
    const struct ukey *k = key;
    return n->len == k->len && memcmp(n->id, k->p, k->len) == 0;
}

static struct cds_lfht *u_build(const bench_id_t *ids, size_t n)
{
    unsigned long buckets = 1;
    while (buckets < n)
        buckets <<= 1;
    struct cds_lfht *ht = cds_lfht_new_flavor(buckets, 1, 0, 0, &urcu_memb_flavor, NULL);
    if (ht == NULL)
        abort();
    urcu_memb_read_lock();
    for (size_t i = 0; i < n; i++) {
        struct un *node = malloc(sizeof *node + ids[i].len);
        if (node == NULL)
            abort();
        cds_lfht_node_init(&node->lf);
        node->len = ids[i].len;
        memcpy(node->id, ids[i].p, ids[i].len);
        atomic_store_explicit(&node->state, ((uint64_t)1 << 32) | (2u << 16) | bench_port(i),
                              memory_order_release);
        cds_lfht_add(ht, bench_hash(ids[i].p, ids[i].len, BENCH_SEED), &node->lf);
    }
    urcu_memb_read_unlock();
    return ht;
}

static inline bool u_lookup(struct cds_lfht *ht, const char *p, size_t len, uint16_t *port)
{
    struct ukey k = {p, len};
    struct cds_lfht_iter it;
    bool bound = false;
    urcu_memb_read_lock();
    cds_lfht_lookup(ht, bench_hash(p, len, BENCH_SEED), u_match, &k, &it);
    struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
    if (node != NULL) {
        uint64_t w = atomic_load_explicit(&caa_container_of(node, struct un, lf)->state,
                                          memory_order_acquire);
        bound = ((w >> 16) & 3) == 2;
        *port = (uint16_t)w;
    }
    urcu_memb_read_unlock();
    return bound;
}

/* ---- the loops ---- */

struct setup {
    portreg_t *reg;
    struct cds_lfht *ht;
    const bench_id_t *ids; /* requests index this */
    const uint32_t *stream;
};

enum impl { I_PORTREG, I_MANY, I_URCU, I_LOOP, I_COUNT };
static const char *const impl_names[I_COUNT] = {"portreg_lookup", "portreg_lookup_many",
                                                "urcu-memb", "loop"};

__attribute__((noinline)) static uint64_t run(enum impl which, const struct setup *s)
{
    uint64_t hits = 0;
    uint16_t port;
    if (which == I_MANY) {
        portreg_id_t req[BATCH];
        uint16_t ports[BATCH];
        for (size_t pos = 0; pos < STREAM; pos += BATCH) {
            for (unsigned i = 0; i < BATCH; i++) {
                const bench_id_t *id = &s->ids[s->stream[pos + i]];
                req[i] = (portreg_id_t){id->p, id->len};
                __builtin_prefetch(&s->ids[s->stream[(pos + BATCH + i) & (STREAM - 1)]]);
            }
            hits += (uint64_t)portreg_lookup_many(s->reg, req, BATCH, ports);
        }
        return hits;
    }
    for (size_t pos = 0; pos < STREAM; pos++) {
        const bench_id_t *id = &s->ids[s->stream[pos]];
        __builtin_prefetch(&s->ids[s->stream[(pos + AHEAD) & (STREAM - 1)]]);
        switch (which) {
        case I_PORTREG:
            hits += portreg_lookup(s->reg, id->p, id->len, &port);
            break;
        case I_URCU:
            hits += u_lookup(s->ht, id->p, id->len, &port);
            break;
        default:
            hits += id->len == 0;
            break;
        }
    }
    return hits;
}

static void measure(size_t keys, const bench_idset_t *set)
{
    portreg_options_t o;
    portreg_options_init(&o);
    o.initial_capacity = keys;
    o.hash_seed = BENCH_SEED;
    portreg_t *reg = portreg_create(&o);
    if (reg == NULL || portreg_thread_attach(reg) != 0)
        abort();
    for (size_t i = 0; i < keys; i++)
        if (portreg_register(reg, set->ids[i].p, set->ids[i].len, bench_port(i), NULL) != 0)
            abort();
    struct cds_lfht *ht = u_build(set->ids, keys);
    uint32_t *stream = malloc(STREAM * sizeof *stream);
    if (stream == NULL)
        abort();
    for (int miss = 0; miss < 2; miss++) {
        bench_stream_fill(stream, STREAM, keys, miss ? 1024 : 0, BENCH_SEED + (uint64_t)miss);
        struct setup s = {reg, ht, set->ids, stream};
        double best[I_COUNT];
        uint64_t hits[I_COUNT];
        for (int i = 0; i < I_COUNT; i++)
            best[i] = 1e30;
        for (int r = 0; r < REPS; r++) {
            for (int k = 0; k < I_COUNT; k++) {
                enum impl i = (enum impl)((k + r) % I_COUNT);
                double t0 = cpu_seconds();
                hits[i] = run(i, &s);
                double ns = (cpu_seconds() - t0) * 1e9 / STREAM;
                if (ns < best[i])
                    best[i] = ns;
            }
        }
        if (hits[I_PORTREG] != hits[I_MANY] || hits[I_PORTREG] != hits[I_URCU] ||
            hits[I_PORTREG] != (miss ? 0 : STREAM)) {
            fprintf(stderr, "peer-cost: the implementations disagree on the hits\n");
            exit(1);
        }
        double loop = best[I_LOOP];
        printf("| %zu | %s | %.1f | %.1f | %.1f | %.2f× | %.2f× | %.1f |\n", keys,
               miss ? "miss" : "hit", best[I_PORTREG] - loop, best[I_MANY] - loop,
               best[I_URCU] - loop, (best[I_URCU] - loop) / (best[I_PORTREG] - loop),
               (best[I_URCU] - loop) / (best[I_MANY] - loop), loop);
        fflush(stdout);
    }
    free(stream);
    portreg_destroy(reg);
    /* The lfht and its nodes are left to the process's exit. */
}

int main(int argc, char **argv)
{
    size_t max_keys = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
    bench_idset_t set;
    if (bench_ids_generate(&set, 2 * max_keys, BENCH_SEED) != 0)
        return 1;
    urcu_memb_register_thread();
    printf("ns per lookup, one thread, thread CPU time, fastest of %d runs of %u requests, net "
           "of the loop (%s, %s, %s)\n\n",
           REPS, STREAM, impl_names[I_PORTREG], impl_names[I_MANY], impl_names[I_URCU]);
    printf("| keys | kind | portreg_lookup | portreg_lookup_many per id | urcu-memb | "
           "urcu ÷ lookup | urcu ÷ many | loop |\n|---|---|---:|---:|---:|---:|---:|---:|\n");
    for (size_t keys = 1000; keys <= max_keys; keys *= 1000)
        measure(keys, &set);
    urcu_memb_unregister_thread();
    bench_ids_free(&set);
    return 0;
}
