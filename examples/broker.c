/*
 * broker: the registry in its natural habitat.
 *
 * Threads, and what each one does with the registry:
 *
 *   control plane   accepts backend daemons on a Unix socket and reads their
 *                   frames with the frame reader (see README.md):
 *                     hello frame, body = backend id  ->  portreg_track()
 *                     BackendHttpReady frame          ->  portreg_decode_and_register()
 *                     connection dropped              ->  portreg_unbind()
 *   data plane      N threads resolving ports with portreg_lookup() in a
 *                   loop, as request handlers would. Wait-free: nothing the
 *                   control plane does ever makes them wait.
 *   control server  answers one-line text queries on a second socket
 *                   (broker_ctl is the client): status, get, lookup, stats,
 *                   and wait, which blocks in portreg_wait() until a backend
 *                   reaches a status, so scripts never poll or sleep.
 *   main            prints a status line every second (lookups/s and the
 *                   registry sorted by id) and stops on SIGINT or SIGTERM.
 *
 * usage: broker --socket PATH [--control PATH] [--readers N] [--route ID]...
 *               [--ready-fd FD] [--interval-ms MS]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "portreg.h"

#define MAX_DAEMONS  64
#define MAX_READERS  64
#define MAX_ROUTES   16
#define LOOKUP_BATCH 1024
/* A daemon sends a hello (an id) and BackendHttpReady frames (6 bytes at
 * most); anything longer is refused before the reader allocates for it. */
#define DAEMON_MAX_BODY  1024
#define CONTROL_LINE_MAX 1024
/* An id as text: every byte may become \xHH. */
#define ID_TEXT_MAX (4 * PORTREG_ID_MAX + 1)
/* portreg_wait() sleeps until the backend changes; the slice only bounds
 * how long a pending `wait` query can hold up shutdown. */
#define WAIT_SLICE_NS (100 * 1000 * 1000)

struct route {
    char id[PORTREG_ID_MAX];
    size_t len;
};

struct data_thread {
    /* Statistics, each on its own cache line so that readers do not slow
     * each other down. relaxed: only summed for display; the final sum is
     * read after pthread_join(), which orders it. */
    _Alignas(64) _Atomic uint64_t lookups;
    _Atomic uint64_t hits;
    pthread_t tid;
    struct broker *b;
    unsigned index;
};

struct daemon_conn {
    int fd; /* -1: free slot */
    portreg_frame_reader_t frames;
    char id[PORTREG_ID_MAX];
    size_t id_len; /* 0 until the hello frame arrives */
};

struct broker {
    portreg_t *reg;
    int daemon_fd;  /* listening socket for daemons */
    int control_fd; /* listening socket for queries */
    int stop_fd;    /* eventfd, readable once shutdown begins */
    /* relaxed: a flag polled by loops; thread joins order everything else */
    atomic_bool stop;
    struct route routes[MAX_ROUTES];
    size_t nroutes;
    unsigned nreaders;
    struct data_thread readers[MAX_READERS];
    struct daemon_conn conns[MAX_DAEMONS]; /* control-plane thread only */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const char *status_name(portreg_status_t s)
{
    switch (s) {
    case PORTREG_UNTRACKED:
        return "untracked";
    case PORTREG_PENDING:
        return "pending";
    case PORTREG_BOUND:
        return "bound";
    }
    return "?";
}

/* Ids are arbitrary bytes; as text, anything but printable ASCII (and the
 * backslash itself) becomes \xHH so that one id is always one token. */
static const char *id_text(const char *id, size_t len, char out[ID_TEXT_MAX])
{
    char *p = out;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c > ' ' && c < 0x7f && c != '\\')
            *p++ = (char)c;
        else
            p += sprintf(p, "\\x%02x", c);
    }
    *p = '\0';
    return out;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The inverse of id_text(). False if tok is not a valid id. */
static bool id_parse(const char *tok, char out[PORTREG_ID_MAX], size_t *len)
{
    size_t n = 0;
    while (*tok != '\0') {
        if (n == PORTREG_ID_MAX)
            return false;
        if (tok[0] == '\\') {
            int hi = tok[1] == 'x' ? hex_digit(tok[2]) : -1;
            int lo = hi >= 0 ? hex_digit(tok[3]) : -1;
            if (lo < 0)
                return false;
            out[n++] = (char)(hi << 4 | lo);
            tok += 4;
        } else {
            out[n++] = *tok++;
        }
    }
    *len = n;
    return n > 0;
}

/* Data plane ------------------------------------------------------------ */

static void *data_plane(void *arg)
{
    struct data_thread *t = arg;
    struct broker *b = t->b;
    uint64_t lookups = 0, hits = 0;
    size_t next = t->index; /* threads start on different routes */

    if (portreg_thread_attach(b->reg) != 0) {
        fprintf(stderr, "broker: data plane %u: out of memory\n", t->index);
        return NULL;
    }
    /* At least one batch, so even an instant shutdown shows lookups. */
    do {
        for (int i = 0; i < LOOKUP_BATCH; i++) {
            const struct route *r = &b->routes[next++ % b->nroutes];
            uint16_t port;
            /* A real handler would now connect to 127.0.0.1:port. */
            hits += portreg_lookup(b->reg, r->id, r->len, &port);
            lookups++;
        }
        atomic_store_explicit(&t->lookups, lookups, memory_order_relaxed);
        atomic_store_explicit(&t->hits, hits, memory_order_relaxed);
    } while (!atomic_load_explicit(&b->stop, memory_order_relaxed));
    return NULL;
}

static void sum_lookups(struct broker *b, uint64_t *lookups, uint64_t *hits)
{
    *lookups = *hits = 0;
    for (unsigned i = 0; i < b->nreaders; i++) {
        *lookups += atomic_load_explicit(&b->readers[i].lookups, memory_order_relaxed);
        *hits += atomic_load_explicit(&b->readers[i].hits, memory_order_relaxed);
    }
}

/* Control plane: daemons ------------------------------------------------ */

static void daemon_log(const struct daemon_conn *c, const char *what, portreg_t *reg)
{
    char text[ID_TEXT_MAX];
    portreg_state_t st = {0};
    /* Only this thread changes states, so this is the state just made. */
    portreg_get(reg, c->id, c->id_len, &st);
    if (st.status == PORTREG_BOUND)
        printf("control: %-10s %-26s -> bound:%u v%" PRIu32 "\n", id_text(c->id, c->id_len, text),
               what, st.port, st.version);
    else
        printf("control: %-10s %-26s -> %s v%" PRIu32 "\n", id_text(c->id, c->id_len, text), what,
               status_name(st.status), st.version);
}

static bool id_connected(const struct broker *b, const uint8_t *id, size_t len)
{
    for (size_t i = 0; i < MAX_DAEMONS; i++) {
        const struct daemon_conn *c = &b->conns[i];
        if (c->fd >= 0 && c->id_len == len && memcmp(c->id, id, len) == 0)
            return true;
    }
    return false;
}

/* One complete frame from c. False: drop the connection. */
static bool daemon_frame(struct broker *b, struct daemon_conn *c, const uint8_t *body, size_t len)
{
    char text[ID_TEXT_MAX];
    int rc;

    if (c->id_len == 0) {
        if (len == 0 || len > PORTREG_ID_MAX) {
            printf("control: hello with a %zu-byte id; dropping the connection\n", len);
            return false;
        }
        /* Two live daemons under one id would unbind each other. */
        if (id_connected(b, body, len)) {
            printf("control: %s is already connected; dropping the newcomer\n",
                   id_text((const char *)body, len, text));
            return false;
        }
        memcpy(c->id, body, len);
        c->id_len = len;
        if ((rc = portreg_track(b->reg, c->id, c->id_len)) != 0) {
            printf("control: track %s: %s\n", id_text(c->id, c->id_len, text),
                   portreg_strerror(rc));
            c->id_len = 0; /* nothing to unbind */
            return false;
        }
        daemon_log(c, "connected", b->reg);
        return true;
    }
    uint16_t port;
    rc = portreg_decode_and_register(b->reg, c->id, c->id_len, body, len, &port);
    if (rc != 0) {
        printf("control: %s sent a bad BackendHttpReady: %s (%s)\n",
               id_text(c->id, c->id_len, text), portreg_err_name(rc), portreg_strerror(rc));
        return false;
    }
    char what[32];
    snprintf(what, sizeof what, "reported port %u", port);
    daemon_log(c, what, b->reg);
    return true;
}

/* Reads what c has sent. False: drop the connection. */
static bool daemon_readable(struct broker *b, struct daemon_conn *c)
{
    uint8_t buf[4096];
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR;
    if (n == 0) {
        int rc = portreg_frame_finish(&c->frames);
        if (rc != 0)
            printf("control: stream ended badly: %s\n", portreg_err_name(rc));
        return false;
    }
    /* feed() stops after each frame, so loop until the bytes are used. */
    size_t off = 0;
    while (off < (size_t)n) {
        size_t used;
        const uint8_t *body;
        size_t body_len;
        int rc =
            portreg_frame_feed(&c->frames, buf + off, (size_t)n - off, &used, &body, &body_len);
        off += used;
        if (rc < 0) {
            printf("control: bad frame: %s (%s)\n", portreg_err_name(rc), portreg_strerror(rc));
            return false;
        }
        if (rc == 1 && !daemon_frame(b, c, body, body_len))
            return false;
    }
    return true;
}

static void daemon_accept(struct broker *b, int ep)
{
    int fd = accept4(b->daemon_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return; /* EAGAIN, or the peer gave up already */
    for (size_t i = 0; i < MAX_DAEMONS; i++) {
        struct daemon_conn *c = &b->conns[i];
        if (c->fd >= 0)
            continue;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
            break;
        c->fd = fd;
        c->id_len = 0;
        portreg_frame_reader_init(&c->frames, DAEMON_MAX_BODY);
        return;
    }
    printf("control: cannot take another daemon; dropping the connection\n");
    close(fd);
}

/* A dropped connection means the daemon's HTTP server is gone too, but the
 * backend is still one we know: unbind, do not untrack. At shutdown the
 * broker goes away, not the backends, so the registry is left alone. */
static void daemon_close(struct broker *b, struct daemon_conn *c, bool unbind)
{
    if (unbind && c->id_len > 0) {
        portreg_state_t prev;
        portreg_unbind(b->reg, c->id, c->id_len, &prev);
        daemon_log(c, "disconnected", b->reg);
    }
    close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
    c->id_len = 0;
    portreg_frame_reader_fini(&c->frames);
}

enum { TAG_LISTEN = MAX_DAEMONS, TAG_STOP };

static void *control_plane(void *arg)
{
    struct broker *b = arg;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event listen_ev = {.events = EPOLLIN, .data.u64 = TAG_LISTEN};
    struct epoll_event stop_ev = {.events = EPOLLIN, .data.u64 = TAG_STOP};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, b->daemon_fd, &listen_ev) != 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, b->stop_fd, &stop_ev) != 0) {
        perror("broker: control plane: epoll");
        if (ep >= 0)
            close(ep);
        return NULL;
    }
    for (bool running = true; running;) {
        struct epoll_event evs[16];
        int n = epoll_wait(ep, evs, 16, -1);
        if (n < 0 && errno != EINTR) {
            perror("broker: control plane: epoll_wait");
            break;
        }
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == TAG_STOP)
                running = false;
            else if (tag == TAG_LISTEN)
                daemon_accept(b, ep);
            else if (b->conns[tag].fd >= 0 && !daemon_readable(b, &b->conns[tag]))
                daemon_close(b, &b->conns[tag], true);
        }
    }
    for (size_t i = 0; i < MAX_DAEMONS; i++)
        if (b->conns[i].fd >= 0)
            daemon_close(b, &b->conns[i], false);
    close(ep);
    return NULL;
}

/* Control server: text queries ----------------------------------------- */

static void reply_state(int fd, const char *prefix, const char *id, size_t len,
                        const portreg_state_t *st)
{
    char text[ID_TEXT_MAX];
    dprintf(fd, "%s%s %s %u %" PRIu32 "\n", prefix, id_text(id, len, text), status_name(st->status),
            st->port, st->version);
}

static void control_status(struct broker *b, int fd)
{
    portreg_snapshot_t snap;
    int rc = portreg_snapshot(b->reg, &snap);
    if (rc != 0) {
        dprintf(fd, "error: %s\n", portreg_strerror(rc));
        return;
    }
    for (size_t i = 0; i < snap.count; i++)
        reply_state(fd, "", snap.entries[i].id, snap.entries[i].id_len, &snap.entries[i].state);
    portreg_snapshot_free(&snap);
}

/* Blocks until the backend has status want, or timeout_ms passes. Every
 * change bumps the version, so waiting for "a version other than the one
 * just seen" and re-checking cannot miss the transition. */
static void control_wait(struct broker *b, int fd, const char *id, size_t len,
                         portreg_status_t want, int64_t timeout_ms)
{
    const int64_t deadline = now_ns() + timeout_ms * 1000000;
    portreg_state_t st;
    int rc = portreg_get(b->reg, id, len, &st);
    for (;;) {
        if (rc != 0 && rc != PORTREG_ETIMEDOUT) {
            dprintf(fd, "error: %s\n", portreg_strerror(rc));
            return;
        }
        if (st.status == want) {
            reply_state(fd, "", id, len, &st);
            return;
        }
        int64_t left = deadline - now_ns();
        if (left <= 0) {
            reply_state(fd, "error: timed out at ", id, len, &st);
            return;
        }
        if (atomic_load_explicit(&b->stop, memory_order_relaxed)) {
            dprintf(fd, "error: the broker is stopping\n");
            return;
        }
        rc = portreg_wait(b->reg, id, len, st.version, left < WAIT_SLICE_NS ? left : WAIT_SLICE_NS,
                          &st);
    }
}

static bool parse_status(const char *s, portreg_status_t *out)
{
    for (int i = PORTREG_UNTRACKED; i <= PORTREG_BOUND; i++) {
        if (strcmp(s, status_name((portreg_status_t)i)) == 0) {
            *out = (portreg_status_t)i;
            return true;
        }
    }
    return false;
}

static void control_command(struct broker *b, int fd, char *line)
{
    char *save, *argv[5] = {0};
    int argc = 0;
    for (char *tok = strtok_r(line, " \t\r\n", &save); tok != NULL && argc < 5;
         tok = strtok_r(NULL, " \t\r\n", &save))
        argv[argc++] = tok;

    char id[PORTREG_ID_MAX];
    size_t len = 0;
    if (argc >= 2 && !id_parse(argv[1], id, &len)) {
        dprintf(fd, "error: bad id\n");
        return;
    }
    portreg_state_t st;
    uint16_t port;
    portreg_status_t want;
    char *end;
    if (argc == 1 && strcmp(argv[0], "status") == 0) {
        control_status(b, fd);
    } else if (argc == 1 && strcmp(argv[0], "stats") == 0) {
        uint64_t lookups, hits;
        sum_lookups(b, &lookups, &hits);
        dprintf(fd, "lookups %" PRIu64 " hits %" PRIu64 " changes %" PRIu64 " tracked %zu\n",
                lookups, hits, portreg_changes(b->reg), portreg_count(b->reg));
    } else if (argc == 2 && strcmp(argv[0], "get") == 0) {
        portreg_get(b->reg, id, len, &st);
        reply_state(fd, "", id, len, &st);
    } else if (argc == 2 && strcmp(argv[0], "lookup") == 0) {
        if (portreg_lookup(b->reg, id, len, &port))
            dprintf(fd, "%u\n", port);
        else
            dprintf(fd, "miss\n");
    } else if (argc == 4 && strcmp(argv[0], "wait") == 0 && parse_status(argv[2], &want)) {
        long long ms = strtoll(argv[3], &end, 10);
        if (*end != '\0' || ms < 0 || ms > 3600 * 1000)
            dprintf(fd, "error: bad timeout\n");
        else
            control_wait(b, fd, id, len, want, ms);
    } else {
        dprintf(fd, "error: commands: status | stats | get ID | lookup ID | "
                    "wait ID untracked|pending|bound TIMEOUT_MS\n");
    }
}

/* One query per connection, one at a time: this is a debugging port, not
 * part of the data path. */
static void *control_server(void *arg)
{
    struct broker *b = arg;
    struct pollfd pfd[2] = {{.fd = b->control_fd, .events = POLLIN},
                            {.fd = b->stop_fd, .events = POLLIN}};
    for (;;) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("broker: control server: poll");
            break;
        }
        if (pfd[1].revents != 0)
            break;
        if (pfd[0].revents == 0)
            continue;
        int fd = accept4(b->control_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        /* A client that connects and says nothing must not wedge us. */
        struct timeval tv = {.tv_sec = 2};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char line[CONTROL_LINE_MAX];
        size_t n = 0;
        ssize_t r;
        while (n < sizeof line - 1 && (r = read(fd, line + n, sizeof line - 1 - n)) > 0) {
            n += (size_t)r;
            if (memchr(line + n - (size_t)r, '\n', (size_t)r) != NULL)
                break;
        }
        line[n] = '\0';
        control_command(b, fd, line);
        close(fd);
    }
    return NULL;
}

/* Main: setup, status line, shutdown ----------------------------------- */

static int listen_unix(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path) {
        fprintf(stderr, "broker: socket path too long: %s\n", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 64) != 0) {
        fprintf(stderr, "broker: %s: %s%s\n", path, strerror(errno),
                errno == EADDRINUSE ? " (another broker? remove the file if it is stale)" : "");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* One line: head, then every tracked backend, sorted by id. */
static void print_status(struct broker *b, const char *head)
{
    char line[4096], text[ID_TEXT_MAX];
    size_t n = (size_t)snprintf(line, sizeof line, "%s", head);

    portreg_snapshot_t snap = {0};
    if (portreg_snapshot(b->reg, &snap) != 0)
        n += (size_t)snprintf(line + n, sizeof line - n, " | snapshot: out of memory");
    else if (snap.count == 0)
        n += (size_t)snprintf(line + n, sizeof line - n, " | no backends");
    for (size_t i = 0; i < snap.count && n < sizeof line; i++) {
        const portreg_entry_t *e = &snap.entries[i];
        const char *id = id_text(e->id, e->id_len, text);
        if (e->state.status == PORTREG_BOUND)
            n += (size_t)snprintf(line + n, sizeof line - n, " | %s bound:%u v%" PRIu32, id,
                                  e->state.port, e->state.version);
        else
            n += (size_t)snprintf(line + n, sizeof line - n, " | %s %s v%" PRIu32, id,
                                  status_name(e->state.status), e->state.version);
    }
    portreg_snapshot_free(&snap);
    printf("%s\n", line); /* snprintf() truncated it if it had to */
}

static double percent(uint64_t part, uint64_t whole)
{
    return whole > 0 ? 100.0 * (double)part / (double)whole : 0.0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: broker --socket PATH [--control PATH] [--readers N] [--route ID]...\n"
            "              [--ready-fd FD] [--interval-ms MS]\n"
            "  --socket PATH     Unix socket daemons connect to\n"
            "  --control PATH    Unix socket for broker_ctl queries (default PATH.ctl)\n"
            "  --readers N       data-plane threads (default 2; 0..%d)\n"
            "  --route ID        an id the data plane resolves; repeat for more (%d at most)\n"
            "  --ready-fd FD     write \"ready\\n\" to FD and close it once listening\n"
            "  --interval-ms MS  status line period (default 1000)\n",
            MAX_READERS, MAX_ROUTES);
}

static bool parse_ulong(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

/* Static: it holds the data-plane counters and every connection's state. */
static struct broker broker;

int main(int argc, char **argv)
{
    struct broker *b = &broker;
    const char *socket_path = NULL, *control_path = NULL;
    unsigned long readers = 2, ready_fd = (unsigned long)-1, interval_ms = 1000;
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},   {"control", required_argument, NULL, 'c'},
        {"readers", required_argument, NULL, 'r'},  {"route", required_argument, NULL, 'R'},
        {"ready-fd", required_argument, NULL, 'f'}, {"interval-ms", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    for (int o; (o = getopt_long(argc, argv, "s:c:r:R:f:i:h", opts, NULL)) != -1;) {
        bool ok = true;
        switch (o) {
        case 's':
            socket_path = optarg;
            break;
        case 'c':
            control_path = optarg;
            break;
        case 'r':
            ok = parse_ulong(optarg, MAX_READERS, &readers);
            break;
        case 'R':
            ok = b->nroutes < MAX_ROUTES &&
                 id_parse(optarg, b->routes[b->nroutes].id, &b->routes[b->nroutes].len);
            b->nroutes += ok;
            break;
        case 'f':
            ok = parse_ulong(optarg, 1024 * 1024, &ready_fd);
            break;
        case 'i':
            ok = parse_ulong(optarg, 3600 * 1000, &interval_ms) && interval_ms > 0;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            ok = false;
        }
        if (!ok) {
            if (o != '?')
                fprintf(stderr, "broker: bad value for -%c: %s\n", o, optarg);
            usage(stderr);
            return 2;
        }
    }
    if (socket_path == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    char default_control[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
    if (control_path == NULL) {
        snprintf(default_control, sizeof default_control, "%s.ctl", socket_path);
        control_path = default_control;
    }
    if (b->nroutes == 0 && readers > 0) {
        printf("broker: no --route given; the data plane stays idle\n");
        readers = 0;
    }

    /* Status lines and control-plane logs come from several threads: one
     * printf() is one line, and a pipe sees each line as it happens. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    /* Blocked in every thread (they inherit the mask), taken only by
     * main's sigtimedwait(): no async handler, no EINTR anywhere else. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    for (size_t i = 0; i < MAX_DAEMONS; i++)
        b->conns[i].fd = -1;
    b->reg = portreg_create(NULL);
    if (b->reg == NULL) {
        perror("broker: portreg_create");
        return 1;
    }
    b->stop_fd = eventfd(0, EFD_CLOEXEC);
    b->daemon_fd = listen_unix(socket_path);
    b->control_fd = b->daemon_fd >= 0 ? listen_unix(control_path) : -1;
    if (b->stop_fd < 0 || b->daemon_fd < 0 || b->control_fd < 0) {
        if (b->daemon_fd >= 0)
            unlink(socket_path);
        portreg_destroy(b->reg);
        return 1;
    }

    pthread_t control_plane_tid, control_server_tid;
    b->nreaders = (unsigned)readers;
    int err = pthread_create(&control_plane_tid, NULL, control_plane, b);
    if (err == 0)
        err = pthread_create(&control_server_tid, NULL, control_server, b);
    for (unsigned i = 0; err == 0 && i < b->nreaders; i++) {
        b->readers[i].b = b;
        b->readers[i].index = i;
        err = pthread_create(&b->readers[i].tid, NULL, data_plane, &b->readers[i]);
    }
    if (err != 0) {
        /* Not worth unwinding in an example: the OS reclaims it all. */
        fprintf(stderr, "broker: pthread_create: %s\n", strerror(err));
        unlink(socket_path);
        unlink(control_path);
        _exit(1);
    }

    printf("broker: daemons connect to %s; queries go to %s; %u data-plane threads\n", socket_path,
           control_path, b->nreaders);
    if (ready_fd != (unsigned long)-1) {
        ssize_t w = write((int)ready_fd, "ready\n", 6);
        (void)w; /* a reader that went away is its own problem */
        close((int)ready_fd);
    }

    const int64_t t0 = now_ns(), period = (int64_t)interval_ms * 1000000;
    int64_t next = t0 + period, last_t = t0;
    uint64_t last_lookups = 0, last_hits = 0;
    for (;;) {
        int64_t left = next - now_ns();
        struct timespec ts = {.tv_sec = left > 0 ? left / 1000000000 : 0,
                              .tv_nsec = left > 0 ? left % 1000000000 : 0};
        int sig = sigtimedwait(&stop_signals, NULL, &ts);
        if (sig > 0)
            break;
        if (errno != EAGAIN)
            continue;
        int64_t t = now_ns();
        uint64_t lookups, hits;
        sum_lookups(b, &lookups, &hits);
        double per_s = (double)(lookups - last_lookups) * 1e9 / (double)(t - last_t);
        char head[128];
        snprintf(head, sizeof head, "[%4llds] %.2fM lookups/s, %.0f%% hits",
                 (long long)((t - t0) / 1000000000), per_s / 1e6,
                 percent(hits - last_hits, lookups - last_lookups));
        print_status(b, head);
        last_t = t, last_lookups = lookups, last_hits = hits;
        next += period;
        if (next < t)
            next = t + period; /* we were stopped (SIGSTOP, a debugger): do not catch up */
    }

    printf("broker: stopping\n");
    atomic_store_explicit(&b->stop, true, memory_order_relaxed);
    uint64_t one = 1;
    if (write(b->stop_fd, &one, sizeof one) != sizeof one)
        perror("broker: eventfd write");
    pthread_join(control_plane_tid, NULL);
    pthread_join(control_server_tid, NULL);
    for (unsigned i = 0; i < b->nreaders; i++)
        pthread_join(b->readers[i].tid, NULL);

    uint64_t lookups, hits;
    sum_lookups(b, &lookups, &hits);
    print_status(b, "broker: final registry");
    printf("broker: stopped: %" PRIu64 " lookups, %" PRIu64 " hits, %" PRIu64 " changes\n", lookups,
           hits, portreg_changes(b->reg));
    close(b->daemon_fd);
    close(b->control_fd);
    close(b->stop_fd);
    unlink(socket_path);
    unlink(control_path);
    portreg_destroy(b->reg);
    return 0;
}
