/*
 * The exchange check's logs, shared by its workload (check_exchange.c) and
 * its per-round verification (exchange_verify.c).
 */
#ifndef PORTREG_STRESS_EXCHANGE_H
#define PORTREG_STRESS_EXCHANGE_H

#include "stress.h"

enum wkind { W_REG, W_UNBIND, W_UNTRACK, W_TRACK, W_OBS };

/* One writer call; prev is what it returned. */
struct wentry {
    uint32_t id;
    uint32_t pversion;
    uint16_t port; /* written, W_REG */
    uint16_t pport;
    uint16_t writer;
    uint8_t kind;
    uint8_t pstatus;
    uint8_t applied; /* it changed the state */
};

/* H_HGET, H_HLOOKUP, H_HWAIT: the same reads through a handle. */
enum how { H_GET, H_LOOKUP, H_ITER, H_SNAP, H_WAIT, H_HGET, H_HLOOKUP, H_HWAIT };

/* One reader observation, logged when it differs from the thread's last
 * one for that id. A lookup has no version (0) and is bound. */
struct obs {
    uint32_t id;
    uint32_t version;
    uint16_t port;
    uint16_t reader;
    uint8_t status;
    uint8_t how;
};

struct xid {
    char b[ID_BUF];
    size_t len;
};

struct xrun;

struct xthread {
    struct xrun *x;
    unsigned index;
    bool writer;
    pthread_t tid;
    struct rng rng;
    /* this round's log: struct wentry (writers) or struct obs (readers) */
    void *log;
    size_t n, cap;
    /* per id: last version seen, whether a newer one must come next (we
     * changed it since), our writes so far; per id and writer: the last
     * port sequence seen */
    uint32_t *last_version;
    uint8_t *strict;
    uint16_t *seq;
    int32_t *last_seq;
    uint64_t *last_logged;  /* readers: the last state logged per id */
    portreg_handle_t **own; /* handles mode, readers: per id, or NULL */
    uint64_t ops, logged, conflicts;
    uint64_t handle_reads, opens; /* handles mode */
};

/* Scratch space the verification reuses from round to round. */
struct verify {
    struct wentry *w;
    struct obs *o;
    size_t wcap, ocap;
    size_t *wstart, *ostart; /* per id: where its entries begin */
    portreg_state_t *final;
    void *scratch;
    size_t scratch_cap;
};

struct xrun {
    const struct cfg *cfg;
    portreg_t *reg;
    const char *name;          /* "exchange" or "handles" */
    bool handles;              /* readers also read through handles */
    portreg_handle_t **shared; /* handles mode: per id, opened for each round */
    unsigned nw, nr, nids, k;
    uint32_t round;
    bool done;
    struct xid *ids;
    pthread_barrier_t start, end;
    _Atomic unsigned writers_left;
    struct xthread *th;
    /* figures, written by the main thread only */
    uint64_t changes, replaced, observations, max_chain, incarnations;
};

/* "hot3@round7" */
const char *xid_name(const struct xrun *x, uint32_t id, char *buf, size_t cap);
const char *status_name(unsigned status);

/* After a round: every log complete, no thread running. */
void verify_round(struct xrun *x, struct verify *v);
void verify_free(struct verify *v);

#endif
