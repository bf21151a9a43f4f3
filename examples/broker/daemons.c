/*
 * The daemon protocol: one thread, one epoll loop, every socket
 * non-blocking.
 *
 *   accept      the peer's uid (SO_PEERCRED) must be on the allow-list;
 *               total and per-uid connection limits, a new connection
 *               pushing out the oldest one that has not said hello yet
 *   hello       frame body = backend id. The id must be free or owned by
 *               the same uid and not held by a live connection: an id
 *               belongs to the uid that claimed it until it is untracked.
 *               -> portreg_track()
 *   ready       a BackendHttpReady frame. Its port must listen where the
 *               data plane dials, as the daemon's uid (ports.c).
 *               -> portreg_register(). Frames are coalesced (of the Ready
 *               frames in one read only the last counts, and a port
 *               already accepted is not checked again) and rate-limited
 *               per connection (a connection over its budget is not read
 *               until it is back within it; its hang-up is still seen):
 *               64 frames, and 4 port changes, at once, then 64 frames
 *               and one change a second
 *   recheck     every --recheck-ms, sock_diag (ports_tally()) re-verifies every
 *               bound port; a daemon whose port fails is dropped, which
 *               unbinds it
 *   hang-up     -> portreg_unbind(): the backend stays known, pending
 *   grace       a backend whose daemon stays away for --grace-ms is
 *               untracked with portreg_untrack_if() (see expire_backends())
 *   deadlines   no hello within --hello-timeout-ms, or no port report
 *               within --idle-timeout-ms of the hello: dropped
 *   limits      a newcomer pushes out the oldest connection that has not
 *               completed its handshake (hello and an accepted port):
 *               a slot goes to the connection that completes it
 *
 * Only this thread changes the registry; everyone may read it.
 */
#include "broker.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* A hello carries an id, a BackendHttpReady at most 6 bytes: refuse any
 * longer body before the frame reader allocates for it. */
#define DAEMON_MAX_BODY PORTREG_ID_MAX
#define MS              INT64_C(1000000)
/* Frames a connection may send: FRAME_BURST at once, then one per
 * FRAME_INTERVAL. A daemon needs two (hello, ready) and one per change of
 * port; a flood is read no faster than this. */
#define FRAME_BURST    64
#define FRAME_INTERVAL (1000 * MS / 64)
/* Port changes an id may have: CHANGE_BURST at once, then one per
 * CHANGE_INTERVAL. Each costs a check; a daemon changes port when it
 * restarts its listener, not every few milliseconds. The budget belongs to
 * the id, not the connection, so reconnecting does not renew it (the id's
 * record outlives its connection for the grace period). A change past the
 * budget is held, unchecked, and the connection not read, until the id is
 * back within it; frames that wait meanwhile are coalesced: only the last
 * port counts. */
#define CHANGE_BURST    4
#define CHANGE_INTERVAL (1000 * MS)

struct backend {
    bool used;
    char id[PORTREG_ID_MAX];
    size_t id_len;
    uid_t owner;
    struct conn *conn; /* the live connection holding the id, or NULL */
    int64_t disconnected_at;
    uint32_t version_at_disconnect;
    int64_t change_at; /* the port-change budget (virtual time) */
};

struct conn {
    int fd; /* -1: free slot */
    pid_t pid;
    uid_t uid;
    portreg_frame_reader_t frames;
    struct backend *backend; /* NULL until the hello */
    bool reported;           /* has had a port accepted */
    uint16_t port;           /* the port accepted, re-verified by recheck_ports() */
    int64_t accepted_at, hello_at;
    /* The frame budget: when the sender will be within its rate again
     * (virtual time); while paused_until is set, its fd is watched for a
     * hang-up only. */
    int64_t budget_at, paused_until;
    uint16_t held_port; /* a change past the id's budget, checked on resume */
};

/* Connections and backends live in two flat arrays, searched linearly:
 * simple, allocation-free after start, and cheap for the hundreds of
 * daemons and thousands of backends one machine runs. */
struct plane {
    struct broker *b;
    const struct broker_config *cfg;
    int ep;
    struct acceptor acc;
    struct conn *conns; /* cfg->max_conns slots */
    unsigned nconns;
    struct backend *backends; /* cfg->max_ids slots */
    size_t nbackends;
    struct ports *ports;
    struct port_claim *claims; /* cfg->max_conns, for recheck_ports() */
    int64_t recheck_at;
};

static void publish_gauges(struct plane *p)
{
    atomic_store_explicit(&p->b->daemon_conns, p->nconns, memory_order_relaxed);
    atomic_store_explicit(&p->b->backends, p->nbackends, memory_order_relaxed);
}

static void count_checks(struct plane *p, size_t n)
{
    /* relaxed: a counter read for display */
    atomic_fetch_add_explicit(&p->b->port_checks, n, memory_order_relaxed);
}

/* "zccache (pid 12 uid 1000)", or "(pid 12 uid 1000)" before the hello. */
static const char *who(const struct conn *c, char out[ID_LOG_MAX + 48])
{
    char text[ID_LOG_MAX] = "";
    if (c->backend != NULL)
        id_log_text(c->backend->id, c->backend->id_len, text);
    snprintf(out, ID_LOG_MAX + 48, "%s%s(pid %d uid %u)", text, *text ? " " : "", (int)c->pid,
             (unsigned)c->uid);
    return out;
}

/* Logs a transition this thread just made, with the state it left. */
static void log_transition(struct plane *p, const struct backend *bk, const char *what)
{
    char text[ID_LOG_MAX];
    portreg_state_t st = {0};
    int rc = portreg_get(p->b->reg, bk->id, bk->id_len, &st);
    if (rc != 0)
        log_event(bk->owner, "daemons: %s %s; get: %s", id_log_text(bk->id, bk->id_len, text), what,
                  portreg_strerror(rc));
    else if (st.status == PORTREG_BOUND)
        log_event(bk->owner, "daemons: %-10s %-26s -> bound:%u v%" PRIu32,
                  id_log_text(bk->id, bk->id_len, text), what, st.port, st.version);
    else
        log_event(bk->owner, "daemons: %-10s %-26s -> %s v%" PRIu32,
                  id_log_text(bk->id, bk->id_len, text), what, status_name(st.status), st.version);
}

static struct backend *find_backend(struct plane *p, const void *id, size_t len)
{
    for (size_t i = 0; i < p->cfg->max_ids; i++) {
        struct backend *bk = &p->backends[i];
        if (bk->used && bk->id_len == len && memcmp(bk->id, id, len) == 0)
            return bk;
    }
    return NULL;
}

static size_t backends_of(const struct plane *p, uid_t uid)
{
    size_t n = 0;
    for (size_t i = 0; i < p->cfg->max_ids; i++)
        n += p->backends[i].used && p->backends[i].owner == uid;
    return n;
}

static void backend_free(struct plane *p, struct backend *bk)
{
    bk->used = false;
    p->nbackends--;
    publish_gauges(p);
}

/* The daemon holding bk went away: its HTTP server is gone too, but the
 * backend is still one we know. Unbind, and remember the version this
 * left, for expire_backends(). */
static void backend_disconnected(struct plane *p, struct backend *bk, int64_t now)
{
    char text[ID_LOG_MAX];
    portreg_state_t st;
    bk->conn = NULL;
    bk->disconnected_at = now;
    int rc = portreg_unbind(p->b->reg, bk->id, bk->id_len, NULL);
    if (rc == 0)
        rc = portreg_get(p->b->reg, bk->id, bk->id_len, &st);
    if (rc != 0) {
        /* Cannot happen with a valid id; if it did, do not guess. */
        log_line(LOG_ALWAYS, "daemons: unbind %s: %s", id_log_text(bk->id, bk->id_len, text),
                 portreg_strerror(rc));
        st.version = 0;
    }
    bk->version_at_disconnect = st.version;
    log_transition(p, bk, "disconnected");
}

/* Closes c, logging why (reason NULL: quietly). At shutdown the broker
 * goes away, not the backends: leave their states alone (now == 0). */
static void conn_close(struct plane *p, struct conn *c, const char *reason, int64_t now)
{
    char peer[ID_LOG_MAX + 48];
    struct backend *bk = c->backend;
    if (reason != NULL)
        log_event(c->uid, "daemons: dropped %s: %s", who(c, peer), reason);
    close_fd(c->fd, "daemons"); /* also leaves the epoll set */
    portreg_frame_reader_fini(&c->frames);
    *c = (struct conn){.fd = -1};
    p->nconns--;
    /* Counted before the registry changes, so that whoever sees the
     * change also sees the connection gone. */
    publish_gauges(p);
    if (bk != NULL && now != 0)
        backend_disconnected(p, bk, now);
}

/* Why c may not claim the id (body, len), or NULL if it may; *bk is the
 * broker's record of the id, NULL if it has none. A new id is tracked
 * here, so that a refusal leaves nothing behind. */
static const char *hello_refusal(struct plane *p, struct conn *c, const uint8_t *body, size_t len,
                                 struct backend **bk, char why[ID_LOG_MAX + 96])
{
    char text[ID_LOG_MAX];
    if (len == 0)
        return "hello with an empty id";
    id_log_text((const char *)body, len, text);
    *bk = find_backend(p, body, len);
    const struct route *route = route_of(p->cfg, body, len);
    if (route != NULL && route->owner != c->uid) {
        /* The data plane sends traffic there: only its configured uid. */
        snprintf(why, ID_LOG_MAX + 96, "%s is reserved for uid %u", text, (unsigned)route->owner);
    } else if (*bk != NULL && (*bk)->conn != NULL) {
        /* Two live daemons under one id would unbind each other. */
        snprintf(why, ID_LOG_MAX + 96, "%s is already connected (pid %d)", text,
                 (int)(*bk)->conn->pid);
    } else if (*bk != NULL && (*bk)->owner != c->uid) {
        snprintf(why, ID_LOG_MAX + 96, "%s belongs to uid %u until it is untracked", text,
                 (unsigned)(*bk)->owner);
    } else if (*bk != NULL) {
        return NULL; /* its owner, back within the grace period */
    } else if (p->nbackends == p->cfg->max_ids) {
        snprintf(why, ID_LOG_MAX + 96, "hello %s: the broker keeps %zu backends at most", text,
                 p->cfg->max_ids);
    } else if (backends_of(p, c->uid) >= p->cfg->max_ids_per_uid) {
        snprintf(why, ID_LOG_MAX + 96, "hello %s: uid %u keeps %zu backends at most", text,
                 (unsigned)c->uid, p->cfg->max_ids_per_uid);
    } else {
        int rc = portreg_track(p->b->reg, (const char *)body, len);
        if (rc == 0)
            return NULL;
        snprintf(why, ID_LOG_MAX + 96, "track %s: %s (%s)", text, portreg_err_name(rc),
                 portreg_strerror(rc));
    }
    return why;
}

/* The hello: c claims an id. False: drop c (logged here). */
static bool on_hello(struct plane *p, struct conn *c, const uint8_t *body, size_t len)
{
    char peer[ID_LOG_MAX + 48], why[ID_LOG_MAX + 96];
    struct backend *bk = NULL;
    const char *refusal = hello_refusal(p, c, body, len, &bk, why);
    if (refusal != NULL) {
        log_event(c->uid, "daemons: dropped %s: %s", who(c, peer), refusal);
        return false;
    }
    bool back = bk != NULL;
    for (size_t i = 0; bk == NULL; i++) /* a free record exists: nbackends < max_ids */
        if (!p->backends[i].used)
            bk = &p->backends[i];
    if (!back) {
        *bk = (struct backend){.used = true, .id_len = len, .owner = c->uid};
        memcpy(bk->id, body, len);
        p->nbackends++;
        publish_gauges(p);
    }
    bk->conn = c;
    c->backend = bk;
    c->hello_at = now_ns();
    log_transition(p, bk, back ? "reconnected" : "connected");
    return true;
}

/* The port c reported last (coalesced: of the frames of one read, only
 * the last counts). False: drop c (logged here); the registry is
 * unchanged unless the port was registered. */
static bool on_port(struct plane *p, struct conn *c, uint16_t port)
{
    char peer[ID_LOG_MAX + 48], why[128], what[40];
    struct backend *bk = c->backend;
    if (c->reported && port == c->port)
        return true; /* nothing new: recheck_ports() keeps verifying it */
    count_checks(p, 1);
    if (port_owned_by(p->ports, port, c->uid, why, sizeof why) != 0) {
        log_event(c->uid, "daemons: dropped %s: refused port %u: %s", who(c, peer), port, why);
        return false;
    }
    int rc = portreg_register(p->b->reg, bk->id, bk->id_len, port, NULL);
    if (rc != 0) {
        log_event(c->uid, "daemons: dropped %s: register port %u: %s", who(c, peer), port,
                  portreg_strerror(rc));
        return false;
    }
    c->reported = true;
    c->port = port;
    if (p->recheck_at == 0)
        p->recheck_at = now_ns() + (int64_t)p->cfg->recheck_ms * MS;
    snprintf(what, sizeof what, "reported port %u", port);
    log_transition(p, bk, what);
    return true;
}

/* Watches c for everything (on) or for its hang-up only. */
static void conn_watch(struct plane *p, struct conn *c, bool on)
{
    struct epoll_event ev = {.events = on ? EPOLLIN | EPOLLRDHUP : EPOLLRDHUP,
                             .data.u64 = (uint64_t)(c - p->conns)};
    if (epoll_ctl(p->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
        log_line(LOG_ALWAYS, "daemons: epoll_ctl: %s", strerror(errno));
}

/* Charges n units of interval to the budget whose virtual time is *at;
 * past burst units ahead of now, stops reading c until it is back. */
static void charge(struct plane *p, struct conn *c, int64_t *at, unsigned n, int64_t interval,
                   unsigned burst, int64_t now)
{
    if (*at < now)
        *at = now;
    *at += (int64_t)n * interval;
    int64_t ahead = *at - now - (int64_t)burst * interval;
    if (ahead <= 0)
        return;
    if (c->paused_until == 0)
        conn_watch(p, c, false);
    if (c->paused_until < now + ahead)
        c->paused_until = now + ahead;
}

static bool port_reported(struct plane *p, struct conn *c, uint16_t port, int64_t now);

/* Reads what c has sent. NULL: keep it; otherwise why to drop it. */
static const char *conn_readable(struct plane *p, struct conn *c, int64_t now)
{
    static char why[96];
    char peer[ID_LOG_MAX + 48];
    uint8_t buf[4096];
    unsigned frames = 0;
    uint16_t port = 0;
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? NULL : strerror(errno);
    if (n == 0) {
        int rc = portreg_frame_finish(&c->frames);
        if (rc == 0)
            return "";
        snprintf(why, sizeof why, "stream ended inside a frame: %s", portreg_err_name(rc));
        return why;
    }
    /* feed() stops after each frame, so loop until the bytes are used. */
    for (size_t off = 0; off < (size_t)n;) {
        size_t used, body_len;
        const uint8_t *body;
        int rc =
            portreg_frame_feed(&c->frames, buf + off, (size_t)n - off, &used, &body, &body_len);
        off += used;
        if (rc == PORTREG_ENOMEM)
            return "out of memory for its frame";
        if (rc < 0) {
            snprintf(why, sizeof why, "bad frame: %s (%s)", portreg_err_name(rc),
                     portreg_strerror(rc));
            return why;
        }
        if (rc != 1)
            continue;
        frames++;
        if (c->backend == NULL) {
            if (!on_hello(p, c, body, body_len))
                return ""; /* on_hello() logged why */
            continue;
        }
        rc = portreg_decode_port(body, body_len, &port);
        if (rc != 0) {
            log_event(c->uid, "daemons: dropped %s: bad BackendHttpReady: %s (%s)", who(c, peer),
                      portreg_err_name(rc), portreg_strerror(rc));
            return "";
        }
    }
    charge(p, c, &c->budget_at, frames, FRAME_INTERVAL, FRAME_BURST, now);
    return port_reported(p, c, port, now) ? NULL : "";
}

/* A port c reported (0: none). A change within the id's budget is checked
 * now; past it, it is held and the connection paused until the budget
 * allows it (enforce_deadlines() comes back to it). False: dropped. */
static bool port_reported(struct plane *p, struct conn *c, uint16_t port, int64_t now)
{
    if (port == 0)
        return true;
    bool change = !(c->reported && port == c->port);
    struct backend *bk = c->backend;
    int64_t at = bk->change_at > now ? bk->change_at : now;
    if (change && at + CHANGE_INTERVAL - now > CHANGE_BURST * CHANGE_INTERVAL) {
        c->held_port = port;
        if (c->paused_until == 0)
            conn_watch(p, c, false);
        int64_t until = at + CHANGE_INTERVAL - CHANGE_BURST * CHANGE_INTERVAL;
        if (c->paused_until < until)
            c->paused_until = until;
        return true;
    }
    c->held_port = 0;
    if (!on_port(p, c, port))
        return false; /* on_port() logged why */
    if (change)
        charge(p, c, &bk->change_at, 1, CHANGE_INTERVAL, CHANGE_BURST, now);
    return true;
}

static unsigned conns_of(const struct plane *p, uid_t uid)
{
    unsigned n = 0;
    for (unsigned i = 0; i < p->cfg->max_conns; i++)
        n += p->conns[i].fd >= 0 && p->conns[i].uid == uid;
    return n;
}

/* Frees a slot for a newcomer of uid, pushing out the oldest connection
 * (of that uid, when the uid is at its own limit) that has not completed
 * its handshake: first those that have not said hello, then those that
 * have not had a port accepted. Connections that stop halfway cannot lock
 * daemons out; they only shorten each other's wait. False: every slot is
 * held by a daemon with an accepted port. */
static bool make_room(struct plane *p, uid_t uid, int64_t now)
{
    bool uid_full = conns_of(p, uid) >= p->cfg->max_conns_per_uid;
    if (!uid_full && p->nconns < p->cfg->max_conns)
        return true;
    struct conn *oldest = NULL;
    for (unsigned i = 0; i < p->cfg->max_conns; i++) {
        struct conn *c = &p->conns[i];
        if (c->fd < 0 || c->reported || (uid_full && c->uid != uid))
            continue;
        bool earlier_stage = oldest != NULL && (c->backend == NULL) != (oldest->backend == NULL);
        if (oldest == NULL || (earlier_stage && c->backend == NULL) ||
            (!earlier_stage && c->accepted_at < oldest->accepted_at))
            oldest = c;
    }
    if (oldest == NULL)
        return false;
    conn_close(p, oldest,
               oldest->backend == NULL ? "pushed out by a newer connection before its hello"
                                       : "pushed out by a newer connection before its port report",
               now);
    return true;
}

/* Takes one accepted connection. */
static void conn_open(struct plane *p, int fd, int64_t now)
{
    pid_t pid = 0;
    uid_t uid = 0;
    if (!peer_credentials(fd, &pid, &uid)) {
        log_line(LOG_EVENT, "daemons: refused a connection: SO_PEERCRED: %s", strerror(errno));
    } else if (!uid_allowed(p->cfg, uid)) {
        log_event(uid, "daemons: refused pid %d uid %u: uid not allowed", (int)pid, (unsigned)uid);
    } else if (!make_room(p, uid, now)) {
        log_event(uid, "daemons: refused pid %d uid %u: %s", (int)pid, (unsigned)uid,
                  conns_of(p, uid) >= p->cfg->max_conns_per_uid ? "too many connections of this uid"
                                                                : "too many connections");
    } else {
        unsigned i = 0;
        while (p->conns[i].fd >= 0)
            i++;
        struct conn *c = &p->conns[i];
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = i};
        if (epoll_ctl(p->ep, EPOLL_CTL_ADD, fd, &ev) == 0) {
            *c = (struct conn){
                .fd = fd, .pid = pid, .uid = uid, .accepted_at = now, .budget_at = now};
            portreg_frame_reader_init(&c->frames, DAEMON_MAX_BODY);
            p->nconns++;
            publish_gauges(p);
            /* A daemon sends its hello right after connecting: read it now
             * rather than a turn of the loop later. */
            const char *why = conn_readable(p, c, now);
            if (why != NULL)
                conn_close(p, c, *why ? why : NULL, now);
            return;
        }
        log_line(LOG_ALWAYS, "daemons: epoll_ctl: %s", strerror(errno));
    }
    close_fd(fd, "daemons");
}

/* Drops connections past their deadline and resumes reading those back
 * within their frame budget; returns the next deadline (0: none). */
static int64_t enforce_deadlines(struct plane *p, int64_t now)
{
    const int64_t hello = p->cfg->hello_timeout_ms * MS, idle = p->cfg->idle_timeout_ms * MS;
    int64_t next = 0;
    for (unsigned i = 0; i < p->cfg->max_conns; i++) {
        struct conn *c = &p->conns[i];
        if (c->fd >= 0 && c->paused_until != 0 && c->paused_until <= now) {
            c->paused_until = 0;
            conn_watch(p, c, true);
            if (c->held_port != 0 && !port_reported(p, c, c->held_port, now)) {
                conn_close(p, c, NULL, now);
                continue;
            }
        }
        if (c->fd >= 0 && c->paused_until != 0)
            next = earliest(next, c->paused_until);
        if (c->fd < 0 || c->reported)
            continue; /* a reporting daemon may stay silent: its connection is its lease */
        int64_t due = c->backend == NULL ? c->accepted_at + hello : c->hello_at + idle;
        if (due <= now)
            conn_close(p, c, c->backend == NULL ? "no hello in time" : "no port report in time",
                       now);
        else if (next == 0 || due < next)
            next = due;
    }
    return next;
}

/*
 * Re-verifies every accepted port, every --recheck-ms, with one
 * ports_tally() for all of them: a daemon whose port no longer passes (it closed
 * its listener, or died and another process took the port) is dropped,
 * which unbinds its backend. A port lost is therefore routed for at most
 * one period plus one turn of the loop; no turn is long, since frames are
 * rate-limited and coalesced. A query that fails twice in a row is taken
 * as a failed check for every port: the broker does not route what it
 * cannot verify.
 */
static int64_t recheck_ports(struct plane *p, int64_t now)
{
    if (now < p->recheck_at)
        return p->recheck_at;
    size_t n = 0;
    for (unsigned i = 0; i < p->cfg->max_conns; i++)
        if (p->conns[i].fd >= 0 && p->conns[i].reported)
            p->claims[n++] =
                (struct port_claim){.port = p->conns[i].port, .uid = p->conns[i].uid, .tag = i};
    if (n == 0) {
        p->recheck_at = 0; /* on_port() starts it again: an idle broker sleeps */
        return 0;
    }
    p->recheck_at = now + (int64_t)p->cfg->recheck_ms * MS;
    char why[128], reason[160];
    count_checks(p, n);
    bool failed = ports_tally(p->ports, p->claims, n, why, sizeof why) != 0 &&
                  ports_tally(p->ports, p->claims, n, why, sizeof why) != 0;
    for (size_t k = 0; k < n; k++) {
        struct conn *c = &p->conns[p->claims[k].tag];
        if (failed) {
            snprintf(reason, sizeof reason, "cannot verify port %u: %s", c->port, why);
        } else if (claim_verdict(&p->claims[k], why, sizeof why) != 0) {
            snprintf(reason, sizeof reason, "lost port %u: %s", c->port, why);
        } else {
            continue;
        }
        conn_close(p, c, reason, now);
    }
    return p->recheck_at;
}

/*
 * Untracks backends whose daemon has stayed away for the grace period.
 *
 * Why portreg_untrack_if() and the version seen at disconnect: the
 * decision "this backend is abandoned" was made about one state, the one
 * the disconnect left (pending, version v). Every change the registry
 * applies gives the backend a new, higher version, so "the version is
 * still v" means "nothing happened to it since". If the daemon came back
 * and reported a port, or any other writer touched the backend, the
 * version moved on and the untrack fails with PORTREG_ECONFLICT: the
 * newer state wins, with no lock held between the decision and the act.
 * A daemon that came back and has only said hello has not changed the
 * registry (tracking a tracked id keeps its version), so that case is
 * told by bk->conn, which it set.
 */
static int64_t expire_backends(struct plane *p, int64_t now)
{
    const int64_t grace = p->cfg->grace_ms * MS;
    int64_t next = 0;
    char text[ID_LOG_MAX];
    for (size_t i = 0; i < p->cfg->max_ids; i++) {
        struct backend *bk = &p->backends[i];
        if (!bk->used || bk->conn != NULL)
            continue;
        int64_t due = bk->disconnected_at + grace;
        if (due > now) {
            next = next == 0 || due < next ? due : next;
            continue;
        }
        portreg_state_t cur;
        int rc = portreg_untrack_if(p->b->reg, bk->id, bk->id_len, bk->version_at_disconnect, &cur);
        id_log_text(bk->id, bk->id_len, text);
        if (rc == 0) {
            log_event(bk->owner, "daemons: %-10s %-26s -> untracked", text, "away past grace");
            backend_free(p, bk);
        } else if (rc == PORTREG_ECONFLICT) {
            /* Someone moved it on: start a fresh grace period from there. */
            log_event(bk->owner, "daemons: %s changed since (v%" PRIu32 " now v%" PRIu32 ")", text,
                      bk->version_at_disconnect, cur.version);
            bk->version_at_disconnect = cur.version;
            bk->disconnected_at = now;
        } else {
            log_line(LOG_ALWAYS, "daemons: untrack %s: %s", text, portreg_strerror(rc));
            bk->disconnected_at = now;
        }
    }
    return next;
}

static int plane_init(struct plane *p, struct broker *b)
{
    *p = (struct plane){.b = b, .cfg = &b->cfg, .ep = -1};
    p->conns = calloc(p->cfg->max_conns, sizeof *p->conns);
    p->backends = calloc(p->cfg->max_ids, sizeof *p->backends);
    p->claims = calloc(p->cfg->max_conns, sizeof *p->claims);
    p->ports = ports_open();
    if (p->conns == NULL || p->backends == NULL || p->claims == NULL || p->ports == NULL) {
        log_line(LOG_ALWAYS, "daemons: out of memory");
        return -1;
    }
    for (unsigned i = 0; i < p->cfg->max_conns; i++)
        p->conns[i].fd = -1;
    struct epoll_event stop_ev = {.events = EPOLLIN, .data.u64 = (uint64_t)LOOP_TAG_STOP};
    p->ep = epoll_create1(EPOLL_CLOEXEC);
    if (p->ep < 0 || epoll_ctl(p->ep, EPOLL_CTL_ADD, b->stop_fd, &stop_ev) != 0) {
        log_line(LOG_ALWAYS, "daemons: epoll: %s", strerror(errno));
        return -1;
    }
    return acceptor_init(&p->acc, b->daemon_fd, "daemons", p->ep, (uint64_t)LOOP_TAG_LISTEN);
}

static void plane_fini(struct plane *p)
{
    for (unsigned i = 0; p->conns != NULL && i < p->cfg->max_conns; i++)
        if (p->conns[i].fd >= 0)
            conn_close(p, &p->conns[i], NULL, 0);
    acceptor_fini(&p->acc);
    close_fd(p->ep, "daemons");
    free(p->conns);
    free(p->backends);
    free(p->claims);
    ports_close(p->ports);
}

static int64_t plane_tick(void *plane, int64_t now)
{
    struct plane *p = plane;
    int64_t next = earliest(enforce_deadlines(p, now), expire_backends(p, now));
    next = earliest(next, recheck_ports(p, now));
    return earliest(next, acceptor_tick(&p->acc, now));
}

static void plane_event(void *plane, int64_t tag, uint32_t events, int64_t now)
{
    struct plane *p = plane;
    if (tag == LOOP_TAG_LISTEN) {
        /* A few at a time, so that connections already accepted are read
         * between batches. */
        for (int k = 0, fd; k < 16 && (fd = acceptor_take(&p->acc, now)) >= 0; k++)
            conn_open(p, fd, now);
        return;
    }
    struct conn *c = &p->conns[tag];
    const char *why = NULL;
    if (c->fd >= 0 && c->paused_until != 0)
        why = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ? ""
                                                            : NULL; /* hung up: no more reading */
    else if (c->fd >= 0)
        why = conn_readable(p, c, now);
    if (why != NULL)
        conn_close(p, c, *why ? why : NULL, now);
}

void *daemon_plane(void *arg)
{
    struct plane p;
    if (plane_init(&p, arg) != 0) {
        plane_fini(&p);
        return (void *)1;
    }
    static const struct loop_ops ops = {plane_tick, plane_event};
    event_loop(p.ep, "daemons", &ops, &p);
    plane_fini(&p);
    return NULL;
}
