/*
 * Logging that cannot block the thread that logs.
 *
 * A caller formats its line on its own stack, then copies it into a ring
 * buffer under a mutex that is only ever held for that copy (never across
 * a system call). One writer thread empties the ring into stdout with
 * plain blocking write()s: if stdout is a pipe nobody reads, only the
 * writer thread waits. When the ring is full the line is dropped and
 * counted; event lines beyond the rate limit of their uid are suppressed
 * and counted. Both counts are reported by the writer, at most once a
 * second, once the ring has room again, and `broker_ctl stats` shows
 * their sum.
 */
#include "broker.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RING_SIZE (256 * 1024)
/* Lines name ids shortened (id_log_text()), so that a flood of long,
 * unprintable ids costs at most --log-rate short lines a second; a line
 * longer than this (none of the broker's is) is cut, marked "...". */
#define LINE_MAX_BYTES 512

/* One allowance of LOG_EVENT lines: up to `rate` lines in a burst,
 * refilled at `rate` per second. Each allowed uid has its own, so that one
 * uid's noise cannot crowd out another's lines; everything else (uids not
 * allowed, lines about no uid) shares the last one. */
struct bucket {
    uid_t uid;
    double tokens;
    int64_t refilled_at;
    uint64_t suppressed; /* since the last report */
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the writer sleeps on it */
    char ring[RING_SIZE];
    size_t head, len; /* bytes [head, head + len) mod RING_SIZE are queued */
    bool stopping;
    unsigned rate;
    struct bucket buckets[MAX_ALLOWED_UIDS + 1];
    size_t nbuckets;  /* the last one is the shared one */
    uint64_t dropped; /* since the last report */
    int64_t reported_at;
    _Atomic uint64_t lost_total; /* relaxed: display only */
    pthread_t tid;
} lg = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

/* Called with the lock held. */
static struct bucket *bucket_of(bool any_uid, uid_t uid)
{
    for (size_t i = 0; any_uid && i + 1 < lg.nbuckets; i++)
        if (lg.buckets[i].uid == uid)
            return &lg.buckets[i];
    return &lg.buckets[lg.nbuckets - 1];
}

/* Called with the lock held. */
static bool take_token(struct bucket *b, int64_t now)
{
    double add = (double)(now - b->refilled_at) * lg.rate / 1e9;
    b->refilled_at = now;
    b->tokens = b->tokens + add > lg.rate ? lg.rate : b->tokens + add;
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}

/* Called with the lock held. False: no room. */
static bool ring_put(const char *line, size_t n)
{
    if (RING_SIZE - lg.len < n)
        return false;
    size_t tail = (lg.head + lg.len) % RING_SIZE;
    size_t first = n < RING_SIZE - tail ? n : RING_SIZE - tail;
    memcpy(lg.ring + tail, line, first);
    memcpy(lg.ring, line + first, n - first);
    lg.len += n;
    return true;
}

/* event: a LOG_EVENT line, of uid if any_uid. */
static void put_line(bool event, bool any_uid, uid_t uid, const char *fmt, va_list ap)
{
    char line[LINE_MAX_BYTES];
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line - 1) {
        n = (int)sizeof line - 2;
        memcpy(line + n - 3, "...", 3);
    }
    line[n++] = '\n';

    int64_t now = now_ns();
    if (pthread_mutex_lock(&lg.lock) != 0)
        return;
    bool lost = true;
    struct bucket *b = event ? bucket_of(any_uid, uid) : NULL;
    if (b != NULL && !take_token(b, now))
        b->suppressed++;
    else if (!ring_put(line, (size_t)n))
        lg.dropped++;
    else
        lost = false;
    if (lost)
        atomic_fetch_add_explicit(&lg.lost_total, 1, memory_order_relaxed);
    else
        pthread_cond_signal(&lg.wake);
    pthread_mutex_unlock(&lg.lock);
}

void log_line(enum log_class cls, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    put_line(cls == LOG_EVENT, false, 0, fmt, ap);
    va_end(ap);
}

void log_event(uid_t uid, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    put_line(true, true, uid, fmt, ap);
    va_end(ap);
}

uint64_t log_lost(void)
{
    return atomic_load_explicit(&lg.lost_total, memory_order_relaxed);
}

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* stdout is gone (EPIPE, EBADF): nothing to tell it */
        p += w;
        n -= (size_t)w;
    }
}

/* Called with the lock held: queues the report of lost lines, if any, at
 * most once a second (or when stopping), one line for every uid. */
static void report_losses(int64_t now)
{
    if (!lg.stopping && now - lg.reported_at < 1000000000)
        return;
    char line[LINE_MAX_BYTES];
    size_t n = 0;
    for (size_t i = 0; i < lg.nbuckets; i++) {
        const struct bucket *b = &lg.buckets[i];
        if (b->suppressed == 0 || n >= sizeof line)
            continue;
        int k = i + 1 < lg.nbuckets ? snprintf(line + n, sizeof line - n, "%s uid %u %" PRIu64,
                                               n ? "," : "", (unsigned)b->uid, b->suppressed)
                                    : snprintf(line + n, sizeof line - n, "%s other %" PRIu64,
                                               n ? "," : "", b->suppressed);
        n += k > 0 ? (size_t)k : 0;
    }
    if (n == 0 && lg.dropped == 0)
        return;
    char text[LINE_MAX_BYTES + 96];
    int len = snprintf(
        text, sizeof text,
        "log: lines suppressed (over %u/s per uid):%.*s%s; %" PRIu64 " dropped (stdout too slow)\n",
        lg.rate, (int)(n < sizeof line ? n : sizeof line - 1), line, n ? "" : " none", lg.dropped);
    if (len > 0 && ring_put(text, (size_t)len < sizeof text ? (size_t)len : sizeof text - 1)) {
        lg.dropped = 0;
        for (size_t i = 0; i < lg.nbuckets; i++)
            lg.buckets[i].suppressed = 0;
        lg.reported_at = now;
    }
}

/* CLOCK_REALTIME (what pthread_cond_timedwait() and pthread_timedjoin_np()
 * measure against) ms from now. */
static struct timespec realtime_in(unsigned ms)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        abort(); /* cannot fail with a valid clock and pointer */
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

static void *log_writer(void *arg)
{
    (void)arg;
    static char chunk[64 * 1024];
    pthread_mutex_lock(&lg.lock);
    for (;;) {
        report_losses(now_ns());
        if (lg.len == 0) {
            if (lg.stopping)
                break;
            /* Wake at least once a second so suppressed lines are reported. */
            struct timespec ts = realtime_in(1000);
            pthread_cond_timedwait(&lg.wake, &lg.lock, &ts);
            continue;
        }
        size_t n = lg.len < sizeof chunk ? lg.len : sizeof chunk;
        size_t first = n < RING_SIZE - lg.head ? n : RING_SIZE - lg.head;
        memcpy(chunk, lg.ring + lg.head, first);
        memcpy(chunk + first, lg.ring, n - first);
        lg.head = (lg.head + n) % RING_SIZE;
        lg.len -= n;
        pthread_mutex_unlock(&lg.lock);
        write_all(chunk, n); /* the only place that may block */
        pthread_mutex_lock(&lg.lock);
    }
    pthread_mutex_unlock(&lg.lock);
    return NULL;
}

int log_start(unsigned event_lines_per_s, const uid_t *uids, size_t nuids)
{
    lg.rate = event_lines_per_s;
    int64_t now = now_ns();
    nuids = nuids < MAX_ALLOWED_UIDS ? nuids : MAX_ALLOWED_UIDS;
    for (size_t i = 0; i <= nuids; i++)
        lg.buckets[i] = (struct bucket){
            .uid = i < nuids ? uids[i] : 0, .tokens = event_lines_per_s, .refilled_at = now};
    lg.nbuckets = nuids + 1;
    lg.reported_at = now;
    return pthread_create(&lg.tid, NULL, log_writer, NULL);
}

bool log_stop(unsigned drain_ms)
{
    pthread_mutex_lock(&lg.lock);
    lg.stopping = true;
    pthread_cond_signal(&lg.wake);
    pthread_mutex_unlock(&lg.lock);

    struct timespec ts = realtime_in(drain_ms);
    /* A writer stuck on a stdout nobody reads is left behind: exit() ends
     * it, and the lines it held were lost anyway. */
    return pthread_timedjoin_np(lg.tid, NULL, &ts) == 0;
}
