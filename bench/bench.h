/*
 * portreg-bench: shared types of the benchmark driver and its peers.
 *
 * Every implementation ("impl") is a table from id to a packed state word
 * (status, port, version), filled with the same ids and driven by the same
 * reader and writer loops (loops.h), specialised per impl so that the only
 * call per lookup is the one into the library under test.
 */
#ifndef BENCH_H
#define BENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_SEED UINT64_C(0x5eed0f90c7e6b3a1)

/* One id in a cache line of its own: the loops prefetch the ids they will
 * look up next with one prefetch each, so that fetching an id (which a
 * broker has in its request buffer) costs the table under test nothing. */
typedef struct {
    uint8_t len;
    char p[63]; /* the id's bytes, not NUL-terminated */
} __attribute__((aligned(64))) bench_id_t;

/* Generated service names, 9..40 bytes, all distinct. */
typedef struct {
    bench_id_t *ids;
    size_t n;
} bench_idset_t;

int bench_ids_generate(bench_idset_t *set, size_t n, uint64_t seed);
/* Fills stream[0..len) with request indices: with probability
 * miss_per_1024 / 1024 an absent id (n_present + [0, n_present)), else a
 * present one ([0, n_present)), each uniform and independent. */
void bench_stream_fill(uint32_t *stream, size_t len, size_t n_present, uint32_t miss_per_1024,
                       uint64_t seed);
/* The stream length for a table of n ids: a power of two, at least 4n (a
 * window's requests are not a small repeating subset of the ids) and at
 * least 2^16 (the branch predictor cannot learn the hit/miss pattern). */
size_t bench_stream_len(size_t n);
void bench_ids_free(bench_idset_t *set);
double bench_ids_mean_len(const bench_id_t *ids, size_t n);

enum bench_workload {
    WL_RO_HIT,      /* readers only, every id present */
    WL_RO_MISS,     /* readers only, every id absent */
    WL_READ_MOSTLY, /* one writer re-registering ports of present ids */
    WL_CHURN,       /* one writer untracking, re-tracking and re-binding ids */
    WL_INSERT,      /* one writer registering ids the table never held */
    WL_COUNT
};

extern const char *const bench_workload_names[WL_COUNT];

static inline bool bench_workload_has_writer(enum bench_workload wl)
{
    return wl >= WL_READ_MOSTLY;
}

/* Latency histogram of sampled lookups, in TSC ticks: 32 linear buckets per
 * power of two (about 3% resolution), exact maximum. */
#define LAT_SUB_BITS 5
#define LAT_BUCKETS  ((64 - LAT_SUB_BITS) * (1 << LAT_SUB_BITS) + (1 << LAT_SUB_BITS))

struct lat_hist {
    uint64_t n;
    uint64_t max;
    uint32_t b[LAT_BUCKETS];
};

static inline unsigned lat_bucket(uint64_t v)
{
    if (v < (1u << LAT_SUB_BITS))
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    unsigned sub = (unsigned)(v >> (e - LAT_SUB_BITS)) & ((1u << LAT_SUB_BITS) - 1);
    return (e - LAT_SUB_BITS + 1) * (1u << LAT_SUB_BITS) + sub;
}

static inline void lat_add(struct lat_hist *h, uint64_t v)
{
    h->b[lat_bucket(v)]++;
    h->n++;
    if (v > h->max)
        h->max = v;
}

void lat_merge(struct lat_hist *into, const struct lat_hist *from);
/* The value at quantile q (0..1), as the middle of its bucket. */
uint64_t lat_quantile(const struct lat_hist *h, double q);

/* What the threads of one measurement window share. */
struct bench_cell {
    enum bench_workload wl;
    /* Ids in the table, then as many ids it never holds, one array:
     * absent == present + n_present and n_absent == n_present. */
    const bench_id_t *present;
    size_t n_present;
    const bench_id_t *absent;
    size_t n_absent;
    /* The readers' requests, drawn before the run with miss_per_1024
     * (bench_stream_fill()): indices into present[0 .. 2 n_present), a
     * power of two of them (stream_mask + 1), which each reader walks from
     * a random place of its own. */
    const uint32_t *stream;
    size_t stream_mask;
    const bench_id_t *fresh; /* insert-heavy: this window's new ids */
    size_t n_fresh;
    uint32_t miss_per_1024; /* share of lookups that ask for an absent id */
    size_t churn_gap;       /* churn: ids [cursor - gap, cursor) are in flux */
    size_t churn_cursor;    /* churn: where this window's writer starts */
    _Atomic bool stop;      /* relaxed: a flag polled once per batch */
    _Atomic bool writer_done;
};

/* One thread's part of a window. */
struct bench_thread {
    struct bench_cell *cell;
    void *inst;
    void *tls;
    uint64_t rng;
    uint64_t ops;     /* lookups (reader) or writes (writer) */
    uint64_t hits;    /* lookups that found a bound id */
    uint64_t busy_ns; /* writer: time from start to its last write */
    size_t churn_end; /* writer: churn cursor at the end */
    unsigned reader;  /* reader: 0, 1, ... within its window */
    struct lat_hist *hist;
};

/* An instance of a data structure that one or more impls drive. */
struct bench_store {
    const char *name;
    void *(*create)(size_t capacity);
    void (*destroy)(void *inst);
    /* Bytes the structure holds (table + slots + ids), excluding allocator
     * overhead, as counted by the structure or its allocator hooks. */
    size_t (*bytes)(void *inst);
};

/* One implementation under test. Thread hooks bracket everything a thread
 * does with an instance (register with RCU, take an epoch record). */
struct bench_impl {
    const char *name;
    const struct bench_store *store;
    unsigned workloads; /* bit mask of enum bench_workload it runs */
    void *(*thread_enter)(void *inst);
    void (*thread_leave)(void *inst, void *tls);
    void (*thread_offline)(void *tls); /* before blocking; NULL: nothing to do */
    void (*thread_online)(void *tls);
    /* A reader's setup for the cell, after thread_enter and before the
     * window starts (untimed); NULL: nothing to do. */
    void (*reader_prepare)(struct bench_thread *t);
    void (*read_loop)(struct bench_thread *t);
    void (*write_loop)(struct bench_thread *t); /* NULL: read-only peer */
    bool (*lookup)(void *inst, void *tls, const char *id, size_t len, uint16_t *port);
    int (*insert)(void *inst, void *tls, const char *id, size_t len, uint16_t port);
    void (*remove)(void *inst, void *tls, const char *id, size_t len);
};

#define WL_ALL       ((1u << WL_COUNT) - 1)
#define WL_READ_ONLY ((1u << WL_RO_HIT) | (1u << WL_RO_MISS))

extern const struct bench_impl bench_impl_portreg;
extern const struct bench_impl bench_impl_portreg_handle;
extern const struct bench_impl bench_impl_portreg_many;
extern const struct bench_impl bench_impl_ck_raw;
extern const struct bench_impl bench_impl_ck_nosync;
extern const struct bench_impl bench_impl_ck_hs;
extern const struct bench_impl bench_impl_urcu_memb;
extern const struct bench_impl bench_impl_urcu_memb_repl;
extern const struct bench_impl bench_impl_urcu_qsbr;
extern const struct bench_impl bench_impl_rwlock;
extern const struct bench_impl bench_impl_mutex;

/* The packed state word every peer keeps per id (portreg has its own):
 * bits 0..15 port, 16..17 status (portreg_status_t values), 32..63 version. */
#define BST_UNTRACKED 0u
#define BST_PENDING   1u
#define BST_BOUND     2u

static inline uint64_t bst_pack(unsigned status, uint16_t port, uint32_t version)
{
    return ((uint64_t)version << 32) | ((uint64_t)status << 16) | port;
}

static inline unsigned bst_status(uint64_t w)
{
    return (unsigned)(w >> 16) & 3u;
}

static inline uint32_t bst_version(uint64_t w)
{
    return (uint32_t)(w >> 32);
}

enum bst_op { BST_REGISTER, BST_TRACK, BST_UNTRACK };

/* The word after applying op to w; w itself when op changes nothing. */
static inline uint64_t bst_apply(uint64_t w, enum bst_op op, uint16_t port)
{
    uint32_t v = bst_version(w) + 1;
    switch (op) {
    case BST_REGISTER:
        return bst_pack(BST_BOUND, port, v);
    case BST_TRACK:
        return bst_status(w) == BST_UNTRACKED ? bst_pack(BST_PENDING, 0, v) : w;
    case BST_UNTRACK:
        return bst_status(w) != BST_UNTRACKED ? bst_pack(BST_UNTRACKED, 0, v) : w;
    }
    return w;
}

/* Lock-free state change of a word readers load concurrently. */
static inline void bst_cas_apply(_Atomic uint64_t *word, enum bst_op op, uint16_t port)
{
    /* relaxed: the CAS below re-validates; acq_rel on success publishes the
     * new state to readers' acquire loads */
    uint64_t w = atomic_load_explicit(word, memory_order_relaxed);
    uint64_t n;
    do {
        n = bst_apply(w, op, port);
        if (n == w)
            return;
    } while (!atomic_compare_exchange_weak_explicit(word, &w, n, memory_order_acq_rel,
                                                    memory_order_relaxed));
}

/* A string hash for peers that take one from the caller (urcu): 8 bytes per
 * round, then a splitmix64 finaliser so that low and high bits both mix. */
static inline uint64_t bench_hash(const char *p, size_t n, uint64_t seed)
{
    uint64_t h = seed ^ (n * UINT64_C(0x9e3779b97f4a7c15));
    while (n >= 8) {
        uint64_t w;
        __builtin_memcpy(&w, p, 8);
        h = (h ^ w) * UINT64_C(0xbf58476d1ce4e5b9);
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)(unsigned char)p[i] << (8 * i);
    h = (h ^ w) * UINT64_C(0x94d049bb133111eb);
    h ^= h >> 29;
    h *= UINT64_C(0xbf58476d1ce4e5b9);
    h ^= h >> 32;
    return h;
}

/* What portreg-handle's readers paid to open their handles, by the state
 * of the id: tracked; untracked and not yet held (the open inserts a
 * slot); untracked and already held by another reader's handle. */
enum { HANDLE_OPEN_TRACKED, HANDLE_OPEN_NEW_SLOT, HANDLE_OPEN_HELD, HANDLE_OPEN_KINDS };
struct bench_open_cost {
    uint64_t opens[HANDLE_OPEN_KINDS];
    uint64_t ns[HANDLE_OPEN_KINDS];
};
/* Of one portreg-handle instance (its store's create() result). */
void bench_handle_open_cost(void *inst, struct bench_open_cost *out);

/* Monotonic nanoseconds. */
uint64_t bench_now_ns(void);

#endif
