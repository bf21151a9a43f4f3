/*
 * The example broker's parts, one file per concern:
 *
 *   main.c        command line, start-up, signals, the status line, shutdown
 *   daemons.c     the daemon protocol: who may connect, who owns which id,
 *                 deadlines, limits, the grace period before an id is dropped
 *   ports.c       does a TCP port listen where the data plane dials, as this
 *                 uid? (netlink sock_diag)
 *   control.c     the text protocol broker_ctl speaks; nobody can stall it
 *   data_plane.c  request handlers resolving ports, idle until given load
 *   log.c         logging that never blocks the thread that logs
 *   sockets.c     socket files, peer credentials, accept() without spinning
 *   text.c        ids as text and small parsers
 *
 * README.md has the protocols, the options and the trust model.
 */
#ifndef BROKER_H
#define BROKER_H

#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "portreg.h"

#define MAX_READERS      64
#define MAX_ROUTES       16
#define MAX_ALLOWED_UIDS 16
/* An id as text: every byte may become \xHH. */
#define ID_TEXT_MAX (4 * PORTREG_ID_MAX + 1)

struct route {
    char id[PORTREG_ID_MAX];
    size_t len;
    uid_t owner; /* the only uid whose daemons may claim the id */
};

/* A socket file the broker made: removed through the directory it was
 * made in, and only while it is still that file, so that shutdown
 * removes its own sockets even if the path has come to lead elsewhere. */
struct socket_file {
    int dir_fd; /* -1: none */
    char name[256];
    dev_t dev;
    ino_t ino;
};
struct broker_config {
    const char *socket_path;
    const char *control_path;
    unsigned readers;
    struct route routes[MAX_ROUTES];
    size_t nroutes;
    int ready_fd; /* -1: none */
    unsigned interval_ms;
    uid_t allowed_uids[MAX_ALLOWED_UIDS]; /* [0] is always the broker's own */
    size_t nallowed;
    unsigned hello_timeout_ms;  /* connect -> hello */
    unsigned idle_timeout_ms;   /* hello -> first port report */
    unsigned grace_ms;          /* disconnected -> untracked */
    unsigned max_conns;         /* daemon connections, all uids */
    unsigned max_conns_per_uid; /* daemon connections of one uid */
    size_t max_ids;             /* backends the broker keeps */
    size_t max_ids_per_uid;     /* backends one uid may hold */
    unsigned log_rate;          /* event lines per second */
    size_t reply_max;           /* bytes in one control answer */
    unsigned query_timeout_ms;  /* one control query, accept to last byte */
    unsigned recheck_ms;        /* how often bound ports are verified again */
};

/* Everything the threads share. Set up by main before any thread starts. */
struct broker {
    struct broker_config cfg;
    portreg_t *reg;
    int daemon_fd;  /* listening socket for daemons */
    int control_fd; /* listening socket for queries */
    struct socket_file daemon_file, control_file;
    int stop_fd; /* eventfd, readable once shutdown begins */
    /* relaxed: a flag read by loops; thread joins order everything else */
    atomic_bool stop;
    /* Gauges the control plane publishes for `stats`. relaxed: display only. */
    _Atomic unsigned daemon_conns;
    _Atomic size_t backends;
    /* Ports looked up with sock_diag, at report and at recheck: with the
     * broker's CPU time, the cost of one check. */
    _Atomic uint64_t port_checks;
    struct data_plane *data;
};

/* text.c */
int64_t now_ns(void); /* CLOCK_MONOTONIC */
/* The earlier of two deadlines, 0 meaning none. */
int64_t earliest(int64_t a, int64_t b);
/* A poll/epoll timeout in ms (rounded up) until deadline; -1 for none. */
int poll_timeout_ms(int64_t now, int64_t deadline);
const char *status_name(portreg_status_t s);
bool parse_status(const char *s, portreg_status_t *out);
const char *id_text(const char *id, size_t len, char out[ID_TEXT_MAX]);
/* An id as log text: id_text() cut after ID_LOG_KEEP characters, then
 * "...(N bytes)", so that long unprintable ids cannot bloat the log. */
#define ID_LOG_KEEP 32
#define ID_LOG_MAX  (ID_LOG_KEEP + 24)
const char *id_log_text(const char *id, size_t len, char out[ID_LOG_MAX]);
bool id_parse(const char *tok, char out[PORTREG_ID_MAX], size_t *len);
bool parse_ulong(const char *s, unsigned long max, unsigned long *out);
bool uid_allowed(const struct broker_config *cfg, uid_t uid);
/* The --route the id is, or NULL. */
const struct route *route_of(const struct broker_config *cfg, const void *id, size_t len);

/* log.c: lines go to stdout through a ring buffer and a writer thread, so
 * that a slow or stuck stdout costs lost lines, never a stalled caller.
 * LOG_EVENT lines (per connection, per query) are rate-limited per uid; LOG_ALWAYS
 * lines (start-up, shutdown, status) are not, but can still be dropped
 * when the ring is full. Every drop is counted and reported. */
enum log_class { LOG_EVENT, LOG_ALWAYS };
/* Each of uids (the allowed ones) gets event_lines_per_s of its own;
 * other lines share one more such allowance. */
int log_start(unsigned event_lines_per_s, const uid_t *uids, size_t nuids);
/* A LOG_EVENT line is charged to the shared allowance. */
void log_line(enum log_class cls, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An event line about uid, charged to uid's allowance. */
void log_event(uid_t uid, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t log_lost(void);
/* Gives the writer drain_ms to write what is queued; true if it finished. */
bool log_stop(unsigned drain_ms);

/* sockets.c */
struct acceptor {
    int listen_fd;
    int reserve_fd; /* held open so that EMFILE can be answered */
    const char *what;
    const char *refusal;  /* sent to a peer turned away for lack of fds, or NULL */
    bool exhausted;       /* inside an EMFILE/ENFILE episode (logged once) */
    int64_t paused_until; /* 0, or when to watch the socket again */
    int ep;               /* the epoll set watching listen_fd, and its tag */
    uint64_t tag;
};
/* close(), logging a failure; fd < 0 is ignored. */
void close_fd(int fd, const char *what);
int socket_dir_prepare(const char *socket_path);
/* A listening socket at path (its file described in *f), or -1 (said on
 * stderr). */
int listen_unix(const char *path, struct socket_file *f);
/* Removes f's file, if still there and still f's; 0, or -1 (errno). */
int socket_file_remove(struct socket_file *f);
/* Adds listen_fd to ep with tag. 0, or -1 (logged). */
int acceptor_init(struct acceptor *a, int listen_fd, const char *what, int ep, uint64_t tag);
/* Resumes a paused acceptor when its pause is over; returns when it will
 * resume (0: not paused), for the caller's epoll timeout. */
int64_t acceptor_tick(struct acceptor *a, int64_t now);
void acceptor_fini(struct acceptor *a);
/* A connection (non-blocking, close-on-exec) or -1: errno EAGAIN when
 * there is nothing more to take now, or when accepting is paused. */
int acceptor_take(struct acceptor *a, int64_t now);
bool peer_credentials(int fd, pid_t *pid, uid_t *uid);

/* The epoll loop of the daemon and control planes. An event's tag is a
 * connection's index (>= 0) or one of the negative tags below; a plane may
 * add its own from LOOP_TAG_OWN down. */
enum { LOOP_TAG_LISTEN = -1, LOOP_TAG_STOP = -2, LOOP_TAG_OWN = -3 };
struct loop_ops {
    /* Acts on what is due by now; returns the next deadline (0: none). */
    int64_t (*tick)(void *plane, int64_t now);
    /* One event, of any tag but LOOP_TAG_STOP. */
    void (*event)(void *plane, int64_t tag, uint32_t events, int64_t now);
};
/* Runs until the event tagged LOOP_TAG_STOP; epoll_wait failing ends it
 * too (logged as what's). */
void event_loop(int ep, const char *what, const struct loop_ops *ops, void *plane);

/* ports.c: who listens where the data plane dials. */
#define DATA_PLANE_ADDR "127.0.0.1" /* the address a backend's port is dialled on */
struct ports;                       /* a netlink sock_diag socket and its buffer */
struct ports *ports_open(void);     /* NULL: out of memory */
void ports_close(struct ports *p);  /* NULL is ignored */
/* A uid's claim to a port, and the listeners the kernel reports there. */
struct port_claim {
    uint16_t port;
    uid_t uid;
    unsigned mine, others; /* the listener receiving DATA_PLANE_ADDR:port: 0 or 1 */
    uid_t other_uid;
    size_t tag; /* the caller's */
};
/* Finds, for every claim (sorting claims by port), the socket that would
 * receive DATA_PLANE_ADDR:port: one exact sock_diag lookup per port, whose
 * cost does not grow with the host's sockets. 0, or -1 with the reason
 * in why. */
int ports_tally(struct ports *p, struct port_claim *claims, size_t n, char *why, size_t why_len);
/* 0 if a counted claim holds: a listener of its uid, none of another. */
int claim_verdict(const struct port_claim *c, char *why, size_t why_len);
/* 0 if the TCP socket that would receive DATA_PLANE_ADDR:port listens as
 * uid; otherwise -1 with the reason in why. */
int port_owned_by(struct ports *p, uint16_t port, uid_t uid, char *why, size_t why_len);

/* daemons.c and control.c: thread bodies. */
void *daemon_plane(void *broker);
void *control_server(void *broker);

/* data_plane.c */
struct data_plane *data_plane_start(struct broker *b, unsigned threads, int *err);
/* Queues n simulated requests: 0; -1 if there is no --route to serve; -2
 * if the queue (100,000,000 at most) has no room for them. *queued: what
 * the queue holds now. */
int data_plane_submit(struct data_plane *dp, uint64_t n, uint64_t *queued);
void data_plane_totals(struct data_plane *dp, uint64_t *lookups, uint64_t *hits);
void data_plane_stop(struct data_plane *dp);

#endif
