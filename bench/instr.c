/*
 * Instructions per lookup. `portreg-bench --instr N`, run under
 * `valgrind --tool=callgrind --collect-atstart=no` by bench/run, fills a
 * 1,000-id table per structure and, for each impl, counts N lookups of
 * present ids and N of absent ones between callgrind client requests,
 * dumping each count under the name "instr:<impl>:<hit|miss>:<N>".
 * "loop" is the same loop with a lookup that does nothing.
 */
#include <stdio.h>
#include <string.h>

#ifdef BENCH_HAVE_CALLGRIND
#include <valgrind/callgrind.h>
#endif

#include "driver.h"
#include "loops.h"

static bool null_lookup(void *inst, void *tls, const char *id, size_t len, uint16_t *port)
{
    (void)inst;
    (void)tls;
    *port = (uint16_t)len;
    return id[0] == 0;
}

__attribute__((noinline)) static uint64_t instr_loop(bench_lookup_fn fn, void *inst, void *tls,
                                                     const bench_id_t *ids, size_t n, size_t count)
{
    uint64_t rng = 1, hits = 0;
    for (size_t i = 0; i < count; i++) {
        const bench_id_t *id = &ids[bench_pick(bench_rng(&rng), n)];
        uint16_t port;
        hits += fn(inst, tls, id->p, id->len, &port);
    }
    return hits;
}

struct instr_arg {
    const bench_id_t *present, *absent;
    size_t n, count;
    bench_lookup_fn fn;
    const char *name;
};

static void instr_one(struct instr_arg *a, void *inst, void *tls, const bench_id_t *ids,
                      const char *kind)
{
    char label[128];
    snprintf(label, sizeof label, "instr:%s:%s:%zu", a->name, kind, a->count);
    instr_loop(a->fn, inst, tls, ids, a->n, a->count / 10); /* warm caches */
#ifdef BENCH_HAVE_CALLGRIND
    CALLGRIND_ZERO_STATS;
    CALLGRIND_TOGGLE_COLLECT;
#endif
    uint64_t hits = instr_loop(a->fn, inst, tls, ids, a->n, a->count);
#ifdef BENCH_HAVE_CALLGRIND
    CALLGRIND_TOGGLE_COLLECT;
    CALLGRIND_DUMP_STATS_AT(label);
#endif
    fprintf(stderr, "%s: %llu hits\n", label, (unsigned long long)hits);
}

static void instr_task(const struct bench_impl *impl, void *inst, void *tls, void *arg)
{
    struct instr_arg *a = arg;
    bench_prepare_reader(impl, inst, tls, a->present, a->absent, a->n);
    instr_one(a, inst, tls, a->present, "hit");
    instr_one(a, inst, tls, a->absent, "miss");
}

int bench_instr_mode(const struct bench_impl *const *impls, size_t n_impls, size_t count)
{
#ifndef BENCH_HAVE_CALLGRIND
    fprintf(stderr, "portreg-bench: built without valgrind/callgrind.h\n");
#endif
    const size_t n = 1000;
    bench_idset_t set;
    if (bench_ids_generate(&set, 2 * n, BENCH_SEED) != 0)
        return 1;
    struct instr_arg a = {set.ids, set.ids + n, n, count, null_lookup, "loop"};
    bench_run_task(&bench_impl_ck_nosync, NULL, instr_task, &a);

    void *inst[MAX_IMPLS] = {0};
    if (n_impls > MAX_IMPLS)
        n_impls = MAX_IMPLS;
    for (size_t i = 0; i < n_impls; i++) {
        const struct bench_impl *impl = impls[i];
        bool dup = false;
        for (size_t j = 0; j < i; j++) {
            if (impls[j]->store == impl->store)
                inst[i] = inst[j];
            dup |= impls[j]->lookup == impl->lookup;
        }
        if (inst[i] == NULL) {
            inst[i] = impl->store->create(n);
            if (inst[i] == NULL)
                return 1;
            struct bench_id_range f = {set.ids, n, 0};
            bench_run_task(impl, inst[i], bench_fill_task, &f);
        }
        if (dup)
            continue; /* same lookup as an impl already measured */
        a.fn = impl->lookup;
        a.name = impl->name;
        bench_run_task(impl, inst[i], instr_task, &a);
    }
    for (size_t i = 0; i < n_impls; i++) {
        bool owner = inst[i] != NULL;
        for (size_t j = 0; j < i; j++)
            owner &= inst[j] != inst[i];
        if (owner)
            impls[i]->store->destroy(inst[i]);
    }
    bench_ids_free(&set);
    return 0;
}

/* Reads "impl,kind,count,instructions" lines written by bench/run. */
void bench_read_instr_csv(struct bench_results *r, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char line[256];
    while (fgets(line, sizeof line, f) != NULL) {
        char name[64], kind[16];
        double count, ir;
        if (sscanf(line, "%63[^,],%15[^,],%lf,%lf", name, kind, &count, &ir) != 4 || count <= 0)
            continue;
        struct instr_result *res = strcmp(name, "loop") == 0 ? &r->instr_loop : NULL;
        for (unsigned i = 0; i < r->n_impls && res == NULL; i++)
            if (strcmp(name, r->impls[i]->name) == 0)
                res = &r->instr[i];
        if (res == NULL)
            continue;
        res->valid = true;
        *(strcmp(kind, "hit") == 0 ? &res->hit : &res->miss) = ir / count;
        r->have_instr = true;
    }
    fclose(f);
    /* Impls that share a lookup with a measured one (urcu-repl) share its count. */
    for (unsigned i = 0; i < r->n_impls; i++)
        for (unsigned j = 0; j < r->n_impls && !r->instr[i].valid; j++)
            if (r->impls[j]->lookup == r->impls[i]->lookup && r->instr[j].valid)
                r->instr[i] = r->instr[j];
}
