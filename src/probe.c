/*
 * Checks, once per process, that the inline map read (probe.h) reads the
 * libck this process runs with as ck_ht_get_spmc() does.
 *
 * The build compiles the inline read only against CK 0.7.1, but the
 * library found at run time may be another one (an upgraded package, a
 * static program linked against its own libck). So before a registry
 * uses the inline read, a probe table of our own is built with the
 * running libck and compared two ways:
 * - the layout: every field of struct probe_map the read relies on holds
 *   what the public interface (ck_ht_stat(), ck_ht_count(),
 *   ck_ht_next()) and 0.7.1's map construction say it must, and
 * - the results: for every key inserted and as many that are not, under a
 *   hash that makes long, colliding probe sequences, the inline read and
 *   ck_ht_get_spmc() return the same entry or both miss.
 * Any difference and registries call ck_ht_get_spmc() instead. A check
 * that could not allocate decides nothing; the next portreg_create()
 * tries again.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Keys of the probe table: enough to fill several probe rows per start
 * bucket and to make the map grow once. */
#define CHECK_KEYS 96

enum { CHECK_UNKNOWN, CHECK_AGREE, CHECK_DISAGREE };
static _Atomic int check_state = CHECK_UNKNOWN;

_Atomic int portreg__probe_fault_for_tests;

static void *check_malloc(size_t size)
{
    return malloc(size);
}

static void check_free(void *p, size_t size, bool defer)
{
    (void)size;
    (void)defer; /* nobody else reads the probe table */
    free(p);
}

static struct ck_malloc check_allocator = {.malloc = check_malloc, .free = check_free};

/* A deliberately poor hash: 8 start buckets and many equal values, so the
 * check walks long probe sequences, rows past the first, and entries whose
 * length and hash match but whose bytes differ. */
static uint64_t check_hash_of(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 0;
    for (size_t i = 0; i < len; i++)
        h = h * 31 + p[i];
    return (h & 7) | ((h % 5) << 40);
}

static void check_hash(ck_ht_hash_t *h, const void *key, size_t len, uint64_t seed)
{
    (void)seed;
    h->value = check_hash_of(key, len);
}

/* The i-th key (i < 256, all distinct): lengths 1..24, so every branch
 * of the key compare runs; the first byte is i. */
static size_t check_key(char *buf, unsigned i)
{
    size_t len = 1 + i % 24;
    buf[0] = (char)i;
    for (size_t j = 1; j < len; j++)
        buf[j] = (char)('a' + (i * 7 + j * 3) % 26);
    return len;
}

/* The layout the inline read relies on, against what is public. */
static bool check_layout(ck_ht_t *ht)
{
    const struct probe_map *m = probe_map_of(ht);
    struct ck_ht_stat st;
    ck_ht_stat(ht, &st);
    CK_HT_TYPE cap = m->capacity;
    if (m->mode != CK_HT_MODE_BYTESTRING || m->deletions != 0 || m->probe_bound != NULL ||
        m->n_entries != ck_ht_count(ht) || m->n_entries != st.n_entries ||
        m->probe_maximum != st.probe_maximum || cap < PROBE_ROW || (cap & (cap - 1)) != 0 ||
        m->mask != cap - 1 || m->step != (CK_HT_TYPE)__builtin_ffsll((long long)cap) ||
        m->probe_limit < 64 || ((uintptr_t)m->entries & (CK_MD_CACHELINE - 1)) != 0 ||
        (const char *)m->entries < (const char *)(m + 1) ||
        (const char *)(m->entries + cap) > (const char *)m + m->size)
        return false;
    /* Every entry the public iterator returns lies in our entries array
     * and holds what we read there. */
    ck_ht_iterator_t it = CK_HT_ITERATOR_INITIALIZER;
    ck_ht_entry_t *e;
    size_t n = 0;
    while (ck_ht_next(ht, &it, &e)) {
        if (e < m->entries || e >= m->entries + cap)
            return false;
        n++;
    }
    return n == m->n_entries;
}

/* The inline read, perturbed on request (tests of the fallback). */
static uintptr_t check_inline_get(ck_ht_t *ht, uint64_t h, const char *key, size_t len)
{
    uintptr_t v = probe_get(ht, h, key, len);
    int fault = atomic_load_explicit(&portreg__probe_fault_for_tests, memory_order_relaxed);
    if (fault == PORTREG_PROBE_FAULT_RESULT && len == 5)
        v = v != 0 ? 0 : 1;
    return v;
}

/* The same answer from both reads for key, whose value (0: absent) we
 * know. */
static bool check_agree(ck_ht_t *ht, const char *key, size_t len, uintptr_t expect)
{
    ck_ht_entry_t e;
    ck_ht_hash_t h;
    h.value = check_hash_of(key, len);
    ck_ht_entry_key_set(&e, key, (uint16_t)len);
    uintptr_t pub = ck_ht_get_spmc(ht, h, &e) ? (uintptr_t)ck_ht_entry_value(&e) : 0;
    return pub == expect && check_inline_get(ht, h.value, key, len) == expect;
}

/* 1: agree; 0: disagree; -1: out of memory. */
static int check_run(void)
{
    ck_ht_t ht;
    char(*keys)[32] = malloc(2 * CHECK_KEYS * sizeof *keys);
    if (keys == NULL ||
        !ck_ht_init(&ht, CK_HT_MODE_BYTESTRING, check_hash, &check_allocator, CHECK_KEYS / 2, 0)) {
        free(keys);
        return -1;
    }
    int rc = 1;
    size_t lens[2 * CHECK_KEYS];
    for (unsigned i = 0; i < 2 * CHECK_KEYS; i++)
        lens[i] = check_key(keys[i], i);
    for (unsigned i = 0; i < CHECK_KEYS && rc == 1; i++) {
        ck_ht_entry_t e;
        ck_ht_hash_t h;
        h.value = check_hash_of(keys[i], lens[i]);
        ck_ht_entry_set(&e, h, keys[i], (uint16_t)lens[i], (void *)(uintptr_t)(i + 1));
        if (!ck_ht_put_spmc(&ht, h, &e))
            rc = -1;
    }
    if (atomic_load_explicit(&portreg__probe_fault_for_tests, memory_order_relaxed) ==
        PORTREG_PROBE_FAULT_LAYOUT)
        ((struct probe_map *)(uintptr_t)probe_map_of(&ht))->step++;
    if (rc == 1 && !check_layout(&ht))
        rc = 0;
    /* Copies of the keys: no key pointer of the table equals the probe's. */
    char copy[32];
    for (unsigned i = 0; i < 2 * CHECK_KEYS && rc == 1; i++) {
        memcpy(copy, keys[i], lens[i]);
        if (!check_agree(&ht, copy, lens[i], i < CHECK_KEYS ? i + 1 : 0))
            rc = 0;
    }
    ck_ht_destroy(&ht);
    free(keys);
    return rc;
}

uintptr_t portreg__probe_rest(const struct probe_map *m, struct probe_start ps, size_t offset,
                              CK_HT_TYPE probes, CK_HT_TYPE rows, uint64_t h, const char *key,
                              size_t key_len)
{
    return probe_finish(m, ps, PROBE_MORE, offset, probes, rows, h, key, key_len, 0);
}

struct slot *portreg__table_find_ck(struct table *t, uint64_t h, const char *id, size_t id_len)
{
    ck_ht_entry_t e;
    ck_ht_hash_t hh;

    hh.value = h;
    ck_ht_entry_key_set(&e, id, (uint16_t)id_len);
    if (!ck_ht_get_spmc(&t->ht, hh, &e))
        return NULL;
    struct slot *s = ck_ht_entry_value(&e);
    TSAN_ACQUIRE(s); /* pairs with TSAN_RELEASE in portreg__table_insert() */
    /* ck_ht takes an entry whose key pointer equals ours as a match before
     * it compares lengths: a caller passing the address of a slot's id
     * (from the iterator) with another length lands on that slot. Its
     * length tells; then probe again with a key no entry can point to. */
    if (UNLIKELY(s->id_len != id_len)) {
        char copy[PORTREG_ID_MAX];
        memcpy(copy, id, id_len);
        return portreg__table_find_ck(t, h, copy, id_len);
    }
    return s;
}

bool portreg__probe_inline_ok(void)
{
    if (!PORTREG_INLINE_PROBE)
        return false;
    int fault = atomic_load_explicit(&portreg__probe_fault_for_tests, memory_order_relaxed);
    /* acquire: pairs with the release below; the answer is all we read. */
    int state = atomic_load_explicit(&check_state, memory_order_acquire);
    if (state != CHECK_UNKNOWN && fault == 0)
        return state == CHECK_AGREE;
    int rc = check_run();
    if (rc < 0)
        return false;
    if (fault == 0)
        atomic_store_explicit(&check_state, rc == 1 ? CHECK_AGREE : CHECK_DISAGREE,
                              memory_order_release);
    return rc == 1;
}
