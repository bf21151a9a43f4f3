/*
 * The data plane: request handlers that resolve a backend's port for every
 * request, as a real broker's would before forwarding it.
 *
 * There is no real traffic in this example, so requests are simulated:
 * `broker_ctl load N` queues N of them, spread over the --route ids, and
 * the threads take them in batches. With nothing queued the threads sleep
 * on a condition variable; they never spin.
 *
 * Each route is resolved once, at start, into a handle
 * (portreg_handle_open()); a request then costs one atomic load
 * (portreg_handle_lookup(): no hash, no probe, no epoch section), and it
 * is wait-free: nothing the daemon plane does, however many daemons come
 * and go, makes a request handler wait. The handle follows its id through
 * every state, untracked included, and keeps the id's slot in the table
 * while it is open (it counts against --max-ids).
 */
#include "broker.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 1024
/* Requests queued at most: a few seconds of work, whoever asks. */
#define QUEUE_MAX (100 * 1000 * 1000)

struct data_thread {
    /* Statistics, each on its own cache line so that threads do not slow
     * each other down. relaxed: only summed for display; the final sum is
     * read after pthread_join(), which orders it. */
    _Alignas(64) _Atomic uint64_t lookups;
    _Atomic uint64_t hits;
    pthread_t tid;
    struct data_plane *dp;
    unsigned index;
};

struct data_plane {
    struct broker *b;
    pthread_mutex_t lock;
    pthread_cond_t work;                  /* signalled when requests are queued or at stop */
    uint64_t queued;                      /* under lock */
    bool stopping;                        /* under lock */
    portreg_handle_t *routes[MAX_ROUTES]; /* one per --route, shared by all */
    unsigned nthreads;
    struct data_thread threads[];
};

/* Takes up to BATCH requests; 0 at shutdown. Sleeps while there are none. */
static uint64_t take_batch(struct data_plane *dp)
{
    pthread_mutex_lock(&dp->lock);
    while (dp->queued == 0 && !dp->stopping)
        pthread_cond_wait(&dp->work, &dp->lock);
    uint64_t n = dp->stopping ? 0 : dp->queued < BATCH ? dp->queued : BATCH;
    dp->queued -= n;
    pthread_mutex_unlock(&dp->lock);
    return n;
}

static void *handler(void *arg)
{
    struct data_thread *t = arg;
    struct data_plane *dp = t->dp;
    const struct broker_config *cfg = &dp->b->cfg; /* nroutes > 0: main sees to it */
    uint64_t lookups = 0, hits = 0;
    size_t next = t->index; /* threads start on different routes */

    if (portreg_thread_attach(dp->b->reg) != 0) {
        log_line(LOG_ALWAYS, "data plane %u: out of memory", t->index);
        return NULL;
    }
    for (uint64_t n; (n = take_batch(dp)) > 0;) {
        for (uint64_t i = 0; i < n; i++) {
            uint16_t port;
            /* A real handler would now connect to DATA_PLANE_ADDR:port, where
             * the daemon plane verified the daemon listens. */
            hits += portreg_handle_lookup(dp->routes[next++ % cfg->nroutes], &port);
            lookups++;
        }
        atomic_store_explicit(&t->lookups, lookups, memory_order_relaxed);
        atomic_store_explicit(&t->hits, hits, memory_order_relaxed);
    }
    return NULL;
}

struct data_plane *data_plane_start(struct broker *b, unsigned threads, int *err)
{
    struct data_plane *dp = calloc(1, sizeof *dp + threads * sizeof dp->threads[0]);
    if (dp == NULL) {
        *err = ENOMEM;
        return NULL;
    }
    dp->b = b;
    if ((*err = pthread_mutex_init(&dp->lock, NULL)) != 0 ||
        (*err = pthread_cond_init(&dp->work, NULL)) != 0) {
        free(dp);
        return NULL;
    }
    for (size_t i = 0; i < b->cfg.nroutes; i++) {
        int rc =
            portreg_handle_open(b->reg, b->cfg.routes[i].id, b->cfg.routes[i].len, &dp->routes[i]);
        if (rc != 0) {
            *err = rc == PORTREG_ENOMEM ? ENOMEM : EINVAL;
            data_plane_stop(dp);
            return NULL;
        }
    }
    for (; dp->nthreads < threads; dp->nthreads++) {
        struct data_thread *t = &dp->threads[dp->nthreads];
        t->dp = dp;
        t->index = dp->nthreads;
        if ((*err = pthread_create(&t->tid, NULL, handler, t)) != 0) {
            data_plane_stop(dp);
            return NULL;
        }
    }
    return dp;
}

int data_plane_submit(struct data_plane *dp, uint64_t n, uint64_t *queued)
{
    if (dp->nthreads == 0 || dp->b->cfg.nroutes == 0)
        return -1;
    pthread_mutex_lock(&dp->lock);
    bool room = n <= QUEUE_MAX - dp->queued;
    if (room) {
        dp->queued += n;
        pthread_cond_broadcast(&dp->work);
    }
    *queued = dp->queued;
    pthread_mutex_unlock(&dp->lock);
    return room ? 0 : -2;
}

void data_plane_totals(struct data_plane *dp, uint64_t *lookups, uint64_t *hits)
{
    *lookups = *hits = 0;
    for (unsigned i = 0; i < dp->nthreads; i++) {
        *lookups += atomic_load_explicit(&dp->threads[i].lookups, memory_order_relaxed);
        *hits += atomic_load_explicit(&dp->threads[i].hits, memory_order_relaxed);
    }
}

/* Stops and joins the threads and closes the handles (before the
 * registry is destroyed); queued requests are dropped. The totals stay
 * readable until the process ends (the struct is not freed). */
void data_plane_stop(struct data_plane *dp)
{
    pthread_mutex_lock(&dp->lock);
    dp->stopping = true;
    pthread_cond_broadcast(&dp->work);
    pthread_mutex_unlock(&dp->lock);
    for (unsigned i = 0; i < dp->nthreads; i++)
        pthread_join(dp->threads[i].tid, NULL);
    for (size_t i = 0; i < MAX_ROUTES; i++) {
        portreg_handle_close(dp->routes[i]); /* NULL is a no-op */
        dp->routes[i] = NULL;
    }
}
