/*
 * The control server: one-line text queries from broker_ctl.
 *
 * Nobody can stall it. Every socket is non-blocking and one epoll loop
 * serves every client at once, each with one deadline for its whole query
 * (accept to last byte sent, plus the wait time of a `wait`), so a client
 * that trickles its line, never sends it, or never reads the answer only
 * loses its own query. `wait` does not block a thread either: waiting
 * clients are looked at again whenever the registry's eventfd says
 * something changed.
 *
 * Nobody can lock it out either. A client's line is read, and a short
 * answer sent, as soon as it is accepted, so a query never waits for a
 * slot it does not hold. When every slot is taken, a newcomer pushes out
 * a client that is not waiting (reading first, then writing): the oldest
 * of the process that holds the most slots.
 * Waits are capped in number (per uid and in all, so that slots remain
 * for everyone else) and in length. Answers held for clients that do not
 * read them are capped in total (OUTPUT_BUDGET): a new answer that would
 * pass it pushes out the oldest writers.
 *
 * Protocol: the client sends one line (at most CTL_LINE_MAX bytes with its
 * newline, no NUL byte). The broker answers "ok LEN\n" and exactly LEN
 * bytes, or one line "error: ...\n", then closes. An answer that would be
 * longer than --reply-max is an error, never a cut-short answer.
 */
#include "broker.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* "wait " + a 255-byte id escaped to 1020 characters + a status and a
 * timeout fit, with room to spare. */
#define CTL_LINE_MAX    2048
#define CTL_MAX_CLIENTS 32
#define CTL_WAIT_MAX_MS (600 * 1000)
#define CTL_WAITS_MAX   (CTL_MAX_CLIENTS / 2) /* the other half always serves queries */
#define CTL_WAITS_UID   4                     /* waits of one uid */
#define ACCEPT_BATCH    8                     /* connections taken per turn of the loop */
#define HEADROOM        32                    /* in front of an answer, for "ok LEN\n" */
/* Answer bytes held for all clients together (at least two answers of
 * --reply-max). */
#define OUTPUT_BUDGET (4u << 20)
#define MS            INT64_C(1000000)

enum { TAG_CHANGES = LOOP_TAG_OWN };
enum phase { READING, WAITING, WRITING };

struct client {
    int fd; /* -1: free slot */
    pid_t pid;
    uid_t uid;
    enum phase phase;
    uint64_t seq; /* order of acceptance */
    int64_t deadline;
    char in[CTL_LINE_MAX];
    size_t in_len;
    char *mem, *out; /* the answer: out points into mem */
    size_t out_len, out_off;
    /* a `wait` in progress */
    char id[PORTREG_ID_MAX];
    size_t id_len;
    portreg_status_t want;
    int64_t wait_until;
};

struct server {
    struct broker *b;
    int ep;
    int changes_fd;
    struct acceptor acc;
    size_t out_total, out_budget; /* answer bytes held for clients, and their cap */
    uint64_t accepted;            /* clients so far */
    struct client clients[CTL_MAX_CLIENTS];
};

/* An answer under construction. Overflow is sticky and turns the answer
 * into an error when it is sent. */
struct answer {
    char *mem;
    size_t len, cap, max;
    bool overflow, nomem;
};

static void answer_add(struct answer *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void answer_add(struct answer *a, const char *fmt, ...)
{
    char line[ID_TEXT_MAX + 128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || a->overflow || a->nomem)
        return;
    if ((size_t)n >= sizeof line) /* no line of ours is this long; never read past it */
        n = (int)sizeof line - 1;
    if (a->len + (size_t)n > a->max) {
        a->overflow = true;
        return;
    }
    if (HEADROOM + a->len + (size_t)n > a->cap) {
        size_t cap = a->cap == 0 ? 4096 : a->cap;
        while (cap < HEADROOM + a->len + (size_t)n)
            cap *= 2;
        char *mem = realloc(a->mem, cap);
        if (mem == NULL) {
            a->nomem = true;
            return;
        }
        a->mem = mem;
        a->cap = cap;
    }
    memcpy(a->mem + HEADROOM + a->len, line, (size_t)n);
    a->len += (size_t)n;
}

static void add_state(struct answer *a, const char *id, size_t len, const portreg_state_t *st)
{
    char text[ID_TEXT_MAX];
    answer_add(a, "%s %s %u %" PRIu32 "\n", id_text(id, len, text), status_name(st->status),
               st->port, st->version);
}

static void client_close(struct server *s, struct client *c)
{
    close_fd(c->fd, "control");
    free(c->mem);
    s->out_total -= c->out_len;
    c->fd = -1;
    c->mem = c->out = NULL;
    c->out_len = c->out_off = 0;
}

static unsigned clients_of(const struct server *s, pid_t pid)
{
    unsigned n = 0;
    for (size_t i = 0; i < CTL_MAX_CLIENTS; i++)
        n += s->clients[i].fd >= 0 && s->clients[i].pid == pid;
    return n;
}

/* The client in phase (other than except) to push out: one of the process
 * holding the most slots, the oldest of those; NULL if none. A process
 * that hogs the table loses its own clients first. */
static struct client *victim_in(struct server *s, enum phase phase, const struct client *except)
{
    struct client *victim = NULL;
    unsigned victim_n = 0;
    for (size_t i = 0; i < CTL_MAX_CLIENTS; i++) {
        struct client *c = &s->clients[i];
        if (c->fd < 0 || c == except || c->phase != phase)
            continue;
        unsigned n = clients_of(s, c->pid);
        if (victim == NULL || n > victim_n || (n == victim_n && c->seq < victim->seq))
            victim = c, victim_n = n;
    }
    return victim;
}

static void client_push_out(struct server *s, struct client *c, const char *why)
{
    log_event(c->uid, "control: dropped a client (uid %u): %s", (unsigned)c->uid, why);
    client_close(s, c);
}

static void client_writable(struct server *s, struct client *c);

/* Hands the answer (or the error it turned into) to c for sending. */
static void client_answer(struct server *s, struct client *c, struct answer *a, const char *error)
{
    static char errbuf[160];
    if (error == NULL && a->nomem)
        error = "out of memory";
    if (error == NULL && a->overflow) {
        snprintf(errbuf, sizeof errbuf,
                 "the answer would be longer than %zu bytes (--reply-max); ask for less", a->max);
        error = errbuf;
    }
    if (error != NULL) {
        free(a->mem);
        *a = (struct answer){.max = SIZE_MAX}; /* errors are short; never refuse one */
        answer_add(a, "error: %s\n", error);
        c->out = a->mem != NULL ? a->mem + HEADROOM : NULL;
    } else {
        if (a->mem == NULL)
            answer_add(a, "%s", ""); /* an empty answer still needs its header */
        char head[HEADROOM];
        int n = snprintf(head, sizeof head, "ok %zu\n", a->len);
        if (a->mem != NULL) {
            c->out = a->mem + HEADROOM - n;
            memcpy(c->out, head, (size_t)n);
            a->len += (size_t)n;
        }
    }
    c->mem = a->mem;
    c->out_len = a->mem != NULL ? a->len : 0;
    c->out_off = 0;
    c->phase = WRITING;
    /* Answers nobody reads must not pile up: the oldest give way. */
    for (struct client *old;
         s->out_total + c->out_len > s->out_budget && (old = victim_in(s, WRITING, c)) != NULL;)
        client_push_out(s, old, "its answer was not read while others needed the room");
    s->out_total += c->out_len;
    struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)(c - s->clients)};
    if (epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
        log_line(LOG_ALWAYS, "control: epoll_ctl: %s", strerror(errno));
    client_writable(s, c); /* most answers fit the socket buffer: done at once */
}

/* Command handlers: each fills the answer and returns NULL, or returns an
 * error message. WAIT_STARTED: the client now waits, nothing to send yet. */
static const char WAIT_STARTED[] = "";

typedef const char *command_fn(struct server *s, struct client *c, char **argv, struct answer *a,
                               int64_t now);

/* The snapshot's order: bytewise, shorter first on a tie. */
static int id_cmp(const char *x, size_t xl, const char *y, size_t yl)
{
    int d = memcmp(x, y, xl < yl ? xl : yl);
    return d != 0 ? d : (xl > yl) - (xl < yl);
}

/* `status [AFTER]`: the backends sorted by id (after AFTER, if given), as
 * many as fit in --reply-max with room for a last line `more ID` that says
 * where the next page starts. No uid's ids can make it fail: a page always
 * has room for at least one line (--reply-max is 4096 at least). */
static const char *cmd_status(struct server *s, struct client *c, char **argv, struct answer *a,
                              int64_t now)
{
    (void)argv, (void)now;
    char text[ID_TEXT_MAX];
    portreg_snapshot_t snap;
    int rc = portreg_snapshot(s->b->reg, &snap);
    if (rc != 0)
        return portreg_strerror(rc);
    size_t i = 0, room = a->max - (ID_TEXT_MAX + 8); /* the `more` line */
    while (c->id_len > 0 && i < snap.count &&
           id_cmp(snap.entries[i].id, snap.entries[i].id_len, c->id, c->id_len) <= 0)
        i++;
    for (; i < snap.count; i++) {
        const portreg_entry_t *e = &snap.entries[i];
        struct answer line = {.max = SIZE_MAX};
        add_state(&line, e->id, e->id_len, &e->state);
        if (a->len + line.len > room) {
            answer_add(a, "more %s\n",
                       id_text(snap.entries[i - 1].id, snap.entries[i - 1].id_len, text));
            free(line.mem);
            break;
        }
        answer_add(a, "%.*s", (int)line.len, line.mem + HEADROOM);
        free(line.mem);
    }
    portreg_snapshot_free(&snap);
    return NULL;
}

static const char *cmd_stats(struct server *s, struct client *c, char **argv, struct answer *a,
                             int64_t now)
{
    (void)c, (void)argv, (void)now;
    uint64_t lookups = 0, hits = 0;
    if (s->b->data != NULL)
        data_plane_totals(s->b->data, &lookups, &hits);
    answer_add(a,
               "lookups %" PRIu64 " hits %" PRIu64 " changes %" PRIu64
               " tracked %zu backends %zu conns %u log_lost %" PRIu64 " port_checks %" PRIu64 "\n",
               lookups, hits, portreg_changes(s->b->reg), portreg_count(s->b->reg),
               atomic_load_explicit(&s->b->backends, memory_order_relaxed),
               atomic_load_explicit(&s->b->daemon_conns, memory_order_relaxed), log_lost(),
               atomic_load_explicit(&s->b->port_checks, memory_order_relaxed));
    return NULL;
}

static const char *cmd_get(struct server *s, struct client *c, char **argv, struct answer *a,
                           int64_t now)
{
    (void)argv, (void)now;
    portreg_state_t st;
    int rc = portreg_get(s->b->reg, c->id, c->id_len, &st);
    if (rc != 0)
        return portreg_strerror(rc);
    add_state(a, c->id, c->id_len, &st);
    return NULL;
}

static const char *cmd_lookup(struct server *s, struct client *c, char **argv, struct answer *a,
                              int64_t now)
{
    (void)argv, (void)now;
    uint16_t port;
    if (portreg_lookup(s->b->reg, c->id, c->id_len, &port))
        answer_add(a, "%u\n", port);
    else
        answer_add(a, "miss\n");
    return NULL;
}

/* Answers c's wait if its backend reached the wanted status or its time is
 * up; otherwise leaves it waiting. */
static void check_wait(struct server *s, struct client *c, int64_t now)
{
    struct answer a = {.max = s->b->cfg.reply_max};
    portreg_state_t st;
    char text[ID_TEXT_MAX];
    int rc = portreg_get(s->b->reg, c->id, c->id_len, &st);
    if (rc != 0) {
        client_answer(s, c, &a, portreg_strerror(rc));
    } else if (st.status == c->want) {
        add_state(&a, c->id, c->id_len, &st);
        client_answer(s, c, &a, NULL);
    } else if (now >= c->wait_until) {
        char why[ID_TEXT_MAX + 64];
        snprintf(why, sizeof why, "timed out at %s %s %u %" PRIu32, id_text(c->id, c->id_len, text),
                 status_name(st.status), st.port, st.version);
        client_answer(s, c, &a, why);
    }
}

static const char *cmd_wait(struct server *s, struct client *c, char **argv, struct answer *a,
                            int64_t now)
{
    (void)a;
    unsigned long ms;
    if (!parse_status(argv[2], &c->want))
        return "wait: the status is untracked, pending or bound";
    if (!parse_ulong(argv[3], CTL_WAIT_MAX_MS, &ms))
        return "wait: the timeout is 0..600000 ms";
    /* The broker's own uid keeps its share: other uids together get the
     * rest. */
    const uid_t own = s->b->cfg.allowed_uids[0];
    unsigned others = 0, mine = 0;
    for (size_t i = 0; i < CTL_MAX_CLIENTS; i++) {
        const struct client *w = &s->clients[i];
        if (w->fd >= 0 && w->phase == WAITING) {
            mine += w->uid == c->uid;
            others += w->uid != own;
        }
    }
    if (mine >= CTL_WAITS_UID)
        return "wait: this uid already has 4 waits; try again later";
    if (c->uid != own && others >= CTL_WAITS_MAX - CTL_WAITS_UID)
        return "wait: other uids already have 12 waits; try again later";
    /* Hang-ups only (always reported): broker_ctl half-closes its side
     * after sending, which must not count as leaving. */
    struct epoll_event ev = {.events = 0, .data.u64 = (uint64_t)(c - s->clients)};
    if (epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
        return strerror(errno);
    c->phase = WAITING;
    c->wait_until = now + (int64_t)ms * MS;
    c->deadline = c->wait_until + s->b->cfg.query_timeout_ms * MS;
    check_wait(s, c, now);
    return WAIT_STARTED;
}

static const char *cmd_load(struct server *s, struct client *c, char **argv, struct answer *a,
                            int64_t now)
{
    (void)now;
    static char why[96];
    unsigned long n;
    uint64_t queued = 0;
    /* It spends the data plane's CPU: for the broker's own uid only. */
    if (c->uid != s->b->cfg.allowed_uids[0]) {
        snprintf(why, sizeof why, "load: only uid %u may queue work",
                 (unsigned)s->b->cfg.allowed_uids[0]);
        return why;
    }
    if (!parse_ulong(argv[1], 100000000, &n) || n == 0)
        return "load: 1..100000000 requests";
    int rc = s->b->data == NULL ? -1 : data_plane_submit(s->b->data, n, &queued);
    if (rc == -1)
        return "load: no data plane (start the broker with --route and --readers)";
    if (rc == -2) {
        snprintf(why, sizeof why, "load: %" PRIu64 " requests queued already (100000000 at most)",
                 queued);
        return why;
    }
    answer_add(a, "queued %lu requests\n", n);
    return NULL;
}

static const struct {
    const char *name;
    int argc;
    bool takes_id;
    command_fn *fn;
} commands[] = {
    {"status", 1, false, cmd_status}, {"status", 2, true, cmd_status},
    {"stats", 1, false, cmd_stats},   {"get", 2, true, cmd_get},
    {"lookup", 2, true, cmd_lookup},  {"wait", 4, true, cmd_wait},
    {"load", 2, false, cmd_load},
};

/* Runs one command line; the answer goes to c (or c starts waiting). */
static void run_command(struct server *s, struct client *c, char *line, int64_t now)
{
    struct answer a = {.max = s->b->cfg.reply_max};
    char *save, *argv[5] = {0};
    int argc = 0;
    for (char *tok = strtok_r(line, " \t\r", &save); tok != NULL && argc < 5;
         tok = strtok_r(NULL, " \t\r", &save))
        argv[argc++] = tok;
    const char *error = "commands: status | stats | get ID | lookup ID | "
                        "wait ID untracked|pending|bound TIMEOUT_MS | load REQUESTS";
    for (size_t i = 0; argc > 0 && i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[0], commands[i].name) != 0 || argc != commands[i].argc)
            continue;
        if (commands[i].takes_id && !id_parse(argv[1], c->id, &c->id_len))
            error = "bad id (1..255 bytes, \\xHH for any byte)";
        else
            error = commands[i].fn(s, c, argv, &a, now);
        break;
    }
    if (error != WAIT_STARTED)
        client_answer(s, c, &a, error);
}

/* Reads what c sent. Returns false when c is done with (closed here). */
static bool client_readable(struct server *s, struct client *c, int64_t now)
{
    struct answer a = {.max = SIZE_MAX};
    ssize_t n = read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return true;
    if (n < 0 || (n == 0 && c->in_len == 0)) {
        client_close(s, c);
        return false;
    }
    char *nul = memchr(c->in + c->in_len, '\0', (size_t)n);
    char *nl = memchr(c->in + c->in_len, '\n', (size_t)n);
    c->in_len += (size_t)n;
    if (nul != NULL && (nl == NULL || nul < nl)) {
        client_answer(s, c, &a, "the command contains a NUL byte");
    } else if (nl != NULL || n == 0) {
        /* A line, or what came before the client shut its side down. */
        if (nl != NULL)
            *nl = '\0';
        else
            c->in[c->in_len < sizeof c->in ? c->in_len : sizeof c->in - 1] = '\0';
        run_command(s, c, c->in, now);
    } else if (c->in_len == sizeof c->in) {
        char why[64];
        snprintf(why, sizeof why, "the command is longer than %d bytes", CTL_LINE_MAX - 1);
        client_answer(s, c, &a, why);
    }
    return true;
}

static void client_writable(struct server *s, struct client *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w =
            send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return; /* EPOLLOUT tells us when there is room */
        if (w < 0)
            break; /* the client went away: its loss */
        c->out_off += (size_t)w;
    }
    client_close(s, c);
}

static void client_open(struct server *s, int fd, int64_t now)
{
    pid_t pid = 0;
    uid_t uid = 0;
    const char *refusal = NULL;
    struct client *c = NULL;
    for (size_t i = 0; i < CTL_MAX_CLIENTS && c == NULL; i++)
        if (s->clients[i].fd < 0)
            c = &s->clients[i];
    if (!peer_credentials(fd, &pid, &uid) || !uid_allowed(&s->b->cfg, uid)) {
        refusal = "error: not allowed\n";
    } else if (c == NULL) {
        /* Full: the oldest client not waiting makes room (waits are
         * capped to half the slots, so there always is one). */
        c = victim_in(s, READING, NULL);
        if (c == NULL)
            c = victim_in(s, WRITING, NULL);
        if (c != NULL)
            client_push_out(s, c, "pushed out by a newer client");
        else
            refusal = "error: busy, try again\n";
    }
    if (refusal == NULL) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)(c - s->clients)};
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) == 0) {
            *c = (struct client){
                .fd = fd, .pid = pid, .uid = uid, .phase = READING, .seq = ++s->accepted};
            c->deadline = now + s->b->cfg.query_timeout_ms * MS;
            /* broker_ctl sends its line right after connecting: answer it
             * now, before anyone else can take the slot. */
            client_readable(s, c, now);
            return;
        }
        log_line(LOG_ALWAYS, "control: epoll_ctl: %s", strerror(errno));
    } else {
        log_event(uid, "control: refused pid %d uid %u: %s", (int)pid, (unsigned)uid, refusal + 7);
        /* Best effort: the socket is new, its buffer empty. */
        if (send(fd, refusal, strlen(refusal), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            log_line(LOG_EVENT, "control: refusal not sent: %s", strerror(errno));
    }
    close_fd(fd, "control");
}

/* Wait timeouts and query deadlines; returns the next one (0: none). */
static int64_t client_deadlines(struct server *s, int64_t now)
{
    int64_t next = 0;
    for (size_t i = 0; i < CTL_MAX_CLIENTS; i++) {
        struct client *c = &s->clients[i];
        if (c->fd >= 0 && c->phase == WAITING)
            check_wait(s, c, now);
        if (c->fd >= 0 && c->deadline <= now) {
            log_event(c->uid,
                      "control: dropped a client (uid %u): its query took longer than %u ms",
                      (unsigned)c->uid, s->b->cfg.query_timeout_ms);
            client_close(s, c);
        }
        if (c->fd >= 0)
            next = earliest(next, c->phase == WAITING ? earliest(c->wait_until, c->deadline)
                                                      : c->deadline);
    }
    return next;
}

static void changes_seen(struct server *s, int64_t now)
{
    /* Re-arm first, then look: a change after the read makes the fd
     * readable again, so none is missed. */
    uint64_t n;
    if (read(s->changes_fd, &n, sizeof n) < 0 && errno != EAGAIN)
        log_line(LOG_ALWAYS, "control: eventfd: %s", strerror(errno));
    for (size_t i = 0; i < CTL_MAX_CLIENTS; i++)
        if (s->clients[i].fd >= 0 && s->clients[i].phase == WAITING)
            check_wait(s, &s->clients[i], now);
}

static int server_init(struct server *s, struct broker *b)
{
    *s = (struct server){.b = b, .ep = epoll_create1(EPOLL_CLOEXEC)};
    s->out_budget = b->cfg.reply_max * 2 > OUTPUT_BUDGET ? b->cfg.reply_max * 2 : OUTPUT_BUDGET;
    for (size_t i = 0; i < CTL_MAX_CLIENTS; i++)
        s->clients[i].fd = -1;
    s->changes_fd = portreg_eventfd(b->reg);
    struct epoll_event stop_ev = {.events = EPOLLIN, .data.u64 = (uint64_t)LOOP_TAG_STOP};
    struct epoll_event chg_ev = {.events = EPOLLIN, .data.u64 = (uint64_t)TAG_CHANGES};
    if (s->ep < 0 || s->changes_fd < 0 ||
        epoll_ctl(s->ep, EPOLL_CTL_ADD, b->stop_fd, &stop_ev) != 0 ||
        epoll_ctl(s->ep, EPOLL_CTL_ADD, s->changes_fd, &chg_ev) != 0) {
        log_line(LOG_ALWAYS, "control: setup: %s",
                 s->changes_fd < 0 ? portreg_strerror(s->changes_fd) : strerror(errno));
        return -1;
    }
    if (acceptor_init(&s->acc, b->control_fd, "control", s->ep, (uint64_t)LOOP_TAG_LISTEN) != 0)
        return -1;
    s->acc.refusal = "error: the broker is out of file descriptors; try again\n";
    return 0;
}

static void server_fini(struct server *s)
{
    for (size_t i = 0; i < CTL_MAX_CLIENTS; i++)
        if (s->clients[i].fd >= 0)
            client_close(s, &s->clients[i]);
    acceptor_fini(&s->acc);
    close_fd(s->ep, "control");
}

static int64_t server_tick(void *plane, int64_t now)
{
    struct server *s = plane;
    return earliest(client_deadlines(s, now), acceptor_tick(&s->acc, now));
}

static void server_event(void *plane, int64_t tag, uint32_t events, int64_t now)
{
    struct server *s = plane;
    if (tag == TAG_CHANGES) {
        changes_seen(s, now);
    } else if (tag == LOOP_TAG_LISTEN) {
        /* A few at a time: clients already taken are served between
         * batches, and a burst of newcomers cannot push them all out. */
        for (int k = 0, fd; k < ACCEPT_BATCH && (fd = acceptor_take(&s->acc, now)) >= 0; k++)
            client_open(s, fd, now);
    } else {
        struct client *c = &s->clients[tag];
        if (c->fd < 0)
            return;
        if (c->phase == READING)
            client_readable(s, c, now);
        else if (c->phase == WRITING)
            client_writable(s, c);
        else if (events & (EPOLLHUP | EPOLLERR))
            client_close(s, c); /* gave up waiting */
    }
}

void *control_server(void *arg)
{
    struct server *s = malloc(sizeof *s); /* 70 KiB: not on a thread's stack */
    if (s == NULL || server_init(s, arg) != 0) {
        if (s != NULL)
            server_fini(s);
        free(s);
        return (void *)1;
    }
    static const struct loop_ops ops = {server_tick, server_event};
    event_loop(s->ep, "control", &ops, s);
    server_fini(s);
    free(s);
    return NULL;
}
