/*
 * The reclaim thread of a registry (point 4 of epoch.c's argument).
 *
 * Without help, the last batch a writer defers would wait for the next
 * writer. So the first defer starts one reclaim thread per registry (unless
 * portreg_options_t.no_reclaim_thread), which sleeps on a condition
 * variable while nothing is deferred and polls every RECLAIM_TICK_MS while
 * something is (backing off while a reader holds the grace period): memory
 * is freed a few ticks after its readers leave, also when all writers have
 * stopped. Writers poll as well once POLL_DEFERS entries or POLL_BYTES
 * bytes have been deferred since the last poll, which bounds the backlog
 * under heavy churn (by count and by bytes) when readers keep up.
 *
 * The thread starts on the first defer (so a registry that never frees
 * never has one), blocks every signal, and sleeps on the domain's condition
 * variable with deadlines of the OS layer's monotonic clock (os.h). A
 * forked child has no reclaim thread: its fork handler (epoch_fork.c) asks
 * the next defer to start one.
 */
#include "internal.h"

/* The reclaim thread polls every RECLAIM_TICK_MS while memory is deferred,
 * doubling the interval up to RECLAIM_TICK_MAX_MS while a reader holds the
 * grace period back (an open iteration), so it does not interrupt every
 * core 100 times a second for nothing. */
#define RECLAIM_TICK_MS     10
#define RECLAIM_TICK_MAX_MS 160

static void *reclaim_main(void *arg)
{
    struct epoch_domain *dom = arg;
    long tick_ms = RECLAIM_TICK_MS;

    portreg__os_mutex_lock(&dom->lock);
    while (!dom->thread_stop) {
        if (dom->head == NULL) {
            tick_ms = RECLAIM_TICK_MS;
            portreg__os_cond_wait_until(&dom->wake, &dom->lock, -1);
        } else {
            portreg__os_cond_wait_until(&dom->wake, &dom->lock,
                                        portreg__os_now_ns() + tick_ms * 1000000L);
        }
        if (dom->thread_stop)
            break;
        unsigned before = ck_pr_load_uint(&dom->ck.epoch);
        struct epoch_entry *ready = portreg__epoch_poll_locked(dom);
        bool progress = ready != NULL || ck_pr_load_uint(&dom->ck.epoch) != before;
        tick_ms = progress
                      ? RECLAIM_TICK_MS
                      : (tick_ms * 2 > RECLAIM_TICK_MAX_MS ? RECLAIM_TICK_MAX_MS : tick_ms * 2);
        portreg__epoch_free_batch(dom, ready);
        portreg__os_mutex_lock(&dom->lock);
    }
    portreg__os_mutex_unlock(&dom->lock);
    return NULL;
}

/* Called with no lock held, by the defer that set thread_starting (so
 * only one). The thread blocks every signal: a library thread must not
 * take the application's signals. On failure the registry goes on without
 * it (writers and portreg_reclaim() still free). */
void portreg__reclaim_thread_start(struct epoch_domain *dom)
{
    portreg_os_thread t;
    bool ok = portreg__os_thread_start(&t, reclaim_main, dom) == 0;
    portreg__os_mutex_lock(&dom->lock);
    dom->thread = t;
    dom->thread_started = ok;
    dom->thread_starting = false;
    if (ok && dom->head != NULL)
        portreg__os_cond_signal(&dom->wake);
    portreg__os_mutex_unlock(&dom->lock);
}

/* The reclaim thread's condition variable, for deadlines of
 * portreg__os_now_ns(). */
int portreg__reclaim_wake_init(struct epoch_domain *dom)
{
    return portreg__os_cond_init(&dom->wake);
}

/* Destroy: stops the thread, if it runs, and waits for it. */
void portreg__reclaim_thread_stop(struct epoch_domain *dom)
{
    if (!dom->thread_started) /* destroy runs alone: no defer is starting it */
        return;
    portreg__os_mutex_lock(&dom->lock);
    dom->thread_stop = true;
    portreg__os_cond_signal(&dom->wake);
    portreg__os_mutex_unlock(&dom->lock);
    portreg__os_thread_join(dom->thread);
}
