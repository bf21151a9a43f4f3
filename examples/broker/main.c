/*
 * broker: the registry in its natural habitat. This file holds the command
 * line, start-up, the status line and shutdown; broker.h lists the rest.
 *
 * Threads, and what each one does with the registry:
 *
 *   daemons         accepts backend daemons and reads their frames;
 *                   the only writer (daemons.c)
 *   control         answers broker_ctl queries (control.c)
 *   data plane ×N   resolves ports for simulated requests (data_plane.c)
 *   log             writes log lines to stdout (log.c)
 *   main            waits for SIGINT, SIGTERM or SIGHUP (all three stop the
 *                   broker cleanly) and prints a status line when something
 *                   changed
 */
#include "broker.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/un.h>
#include <unistd.h>

/* Backends named on one status line; the rest are counted. */
#define STATUS_SHOWN 8

static void usage(FILE *f)
{
    fprintf(f,
            "usage: broker --socket PATH [OPTION]...\n"
            "  --socket PATH             Unix socket daemons connect to; its directory is\n"
            "                            created 0700 if missing and must be 0700 and ours\n"
            "  --control PATH            socket for broker_ctl (default PATH.ctl)\n"
            "  --allow-uid UID|NAME      also accept daemons and queries of this user\n"
            "                            (repeatable; the broker's own uid always is)\n"
            "  --readers N               data-plane threads (default 2; 0..%d)\n"
            "  --route ID[@UID|@NAME]    an id the data plane resolves (repeatable, %d at most);\n"
            "                            only daemons of UID (default: the broker's) may claim it\n"
            "  --ready-fd FD             write \"ready\\n\" to FD and close it once listening\n"
            "  --interval-ms MS          at most one status line per MS (default 1000)\n"
            "  --hello-timeout-ms MS     connect to hello (default 2000)\n"
            "  --idle-timeout-ms MS      hello to port report (default 30000)\n"
            "  --grace-ms MS             disconnected to untracked (default 60000)\n"
            "  --max-conns N             daemon connections in all (default 256)\n"
            "  --max-conns-per-uid N     daemon connections of one uid (default 64, or\n"
            "                            --max-conns / allowed uids if less)\n"
            "  --max-ids N               backends kept (default 1024)\n"
            "  --max-ids-per-uid N       backends one uid may hold (default --max-ids /\n"
            "                            allowed uids)\n"
            "  --log-rate N              event log lines per second per uid (default 100)\n"
            "  --reply-max BYTES         longest control answer, 4096 at least (default\n"
            "                            1048576); status comes in pages of this size\n"
            "  --query-timeout-ms MS     one control query, wait time excluded (default 2000)\n"
            "  --recheck-ms MS           verify bound ports again this often (default 100)\n",
            MAX_READERS, MAX_ROUTES);
}

static bool parse_uid(const char *s, uid_t *uid)
{
    unsigned long v;
    if (parse_ulong(s, (uid_t)-2, &v)) {
        *uid = (uid_t)v;
        return true;
    }
    struct passwd *pw = getpwnam(s);
    if (pw == NULL)
        return false;
    *uid = pw->pw_uid;
    return true;
}

static bool parse_ms(const char *s, unsigned *out)
{
    unsigned long v;
    if (!parse_ulong(s, 24ul * 3600 * 1000, &v) || v == 0)
        return false;
    *out = (unsigned)v;
    return true;
}

static bool parse_count(const char *s, unsigned long max, unsigned *out)
{
    unsigned long v;
    if (!parse_ulong(s, max, &v) || v == 0)
        return false;
    *out = (unsigned)v;
    return true;
}

/* ID, or ID@UID / ID@NAME (split at the last '@'; write an '@' in an id
 * as \x40). */
static bool parse_route(const char *arg, struct route *r)
{
    char id[ID_TEXT_MAX + 1];
    const char *at = strrchr(arg, '@');
    size_t n = at == NULL ? strlen(arg) : (size_t)(at - arg);
    if (n >= sizeof id)
        return false;
    memcpy(id, arg, n);
    id[n] = '\0';
    r->owner = geteuid();
    return id_parse(id, r->id, &r->len) && (at == NULL || parse_uid(at + 1, &r->owner));
}

/* Each allowed uid gets its share of the connection and id limits, so
 * that no uid can fill what another needs. False: the shares given
 * overbook a limit (said on stderr). */
static bool share_limits(struct broker_config *cfg, bool conns_per_uid_given)
{
    size_t uids = 1;
    for (size_t i = 1; i < cfg->nallowed; i++) {
        bool seen = false;
        for (size_t j = 0; j < i; j++)
            seen |= cfg->allowed_uids[j] == cfg->allowed_uids[i];
        uids += !seen;
    }
    if (!conns_per_uid_given && cfg->max_conns_per_uid > cfg->max_conns / uids)
        cfg->max_conns_per_uid = (unsigned)(cfg->max_conns / uids);
    if (cfg->max_ids_per_uid == 0)
        cfg->max_ids_per_uid = cfg->max_ids / uids;
    if (cfg->max_conns_per_uid == 0 || cfg->max_ids_per_uid == 0 ||
        (size_t)cfg->max_conns_per_uid * uids > cfg->max_conns ||
        cfg->max_ids_per_uid * uids > cfg->max_ids) {
        fprintf(stderr,
                "broker: %zu uids with %u connections and %zu ids each overbook --max-conns %u "
                "or --max-ids %zu: one uid could take what another needs\n",
                uids, cfg->max_conns_per_uid, cfg->max_ids_per_uid, cfg->max_conns, cfg->max_ids);
        return false;
    }
    return true;
}

/* One option. False: a bad value. */
static bool apply_option(struct broker_config *cfg, int o, const char *arg)
{
    unsigned long v;
    unsigned u;
    switch (o) {
    case 's':
        cfg->socket_path = arg;
        return true;
    case 'c':
        cfg->control_path = arg;
        return true;
    case 'u':
        return cfg->nallowed < MAX_ALLOWED_UIDS &&
               parse_uid(arg, &cfg->allowed_uids[cfg->nallowed++]);
    case 'r':
        return parse_ulong(arg, MAX_READERS, &v) && (cfg->readers = (unsigned)v, true);
    case 'R':
        return cfg->nroutes < MAX_ROUTES && parse_route(arg, &cfg->routes[cfg->nroutes]) &&
               ++cfg->nroutes;
    case 'f':
        return parse_ulong(arg, 1 << 20, &v) && (cfg->ready_fd = (int)v, true);
    case 'i':
        return parse_ms(arg, &cfg->interval_ms);
    case 'H':
        return parse_ms(arg, &cfg->hello_timeout_ms);
    case 'I':
        return parse_ms(arg, &cfg->idle_timeout_ms);
    case 'g':
        return parse_ms(arg, &cfg->grace_ms);
    case 'q':
        return parse_ms(arg, &cfg->query_timeout_ms);
    case 'k':
        return parse_ms(arg, &cfg->recheck_ms);
    case 'm':
        return parse_count(arg, 1 << 16, &cfg->max_conns);
    case 'M':
        return parse_count(arg, 1 << 16, &cfg->max_conns_per_uid);
    case 'n':
        return parse_count(arg, 1 << 20, &u) && (cfg->max_ids = u, true);
    case 'N':
        return parse_count(arg, 1 << 20, &u) && (cfg->max_ids_per_uid = u, true);
    case 'L':
        return parse_count(arg, 1 << 20, &cfg->log_rate);
    case 'x':
        return parse_count(arg, 1 << 30, &u) && u >= 4096 && (cfg->reply_max = u, true);
    }
    return false;
}

/* 0: go on; 1: done (--help); 2: usage error. */
static int parse_options(struct broker_config *cfg, int argc, char **argv)
{
    static const struct option opts[] = {{"socket", 1, NULL, 's'},
                                         {"control", 1, NULL, 'c'},
                                         {"allow-uid", 1, NULL, 'u'},
                                         {"readers", 1, NULL, 'r'},
                                         {"route", 1, NULL, 'R'},
                                         {"ready-fd", 1, NULL, 'f'},
                                         {"interval-ms", 1, NULL, 'i'},
                                         {"hello-timeout-ms", 1, NULL, 'H'},
                                         {"idle-timeout-ms", 1, NULL, 'I'},
                                         {"grace-ms", 1, NULL, 'g'},
                                         {"max-conns", 1, NULL, 'm'},
                                         {"max-conns-per-uid", 1, NULL, 'M'},
                                         {"max-ids", 1, NULL, 'n'},
                                         {"max-ids-per-uid", 1, NULL, 'N'},
                                         {"log-rate", 1, NULL, 'L'},
                                         {"reply-max", 1, NULL, 'x'},
                                         {"query-timeout-ms", 1, NULL, 'q'},
                                         {"recheck-ms", 1, NULL, 'k'},
                                         {"help", 0, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    bool conns_per_uid_given = false;
    *cfg = (struct broker_config){.readers = 2,
                                  .ready_fd = -1,
                                  .interval_ms = 1000,
                                  .hello_timeout_ms = 2000,
                                  .idle_timeout_ms = 30000,
                                  .grace_ms = 60000,
                                  .max_conns = 256,
                                  .max_conns_per_uid = 64,
                                  .max_ids = 1024,
                                  .log_rate = 100,
                                  .reply_max = 1 << 20,
                                  .query_timeout_ms = 2000,
                                  .recheck_ms = 100,
                                  .allowed_uids = {geteuid()},
                                  .nallowed = 1};
    for (int o; (o = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        if (o == 'h') {
            usage(stdout);
            return 1;
        }
        conns_per_uid_given |= o == 'M';
        if (o == '?' || !apply_option(cfg, o, optarg)) {
            for (size_t i = 0; o != '?' && opts[i].name != NULL; i++)
                if (opts[i].val == o)
                    fprintf(stderr, "broker: bad value for --%s: %s\n", opts[i].name, optarg);
            usage(stderr);
            return 2;
        }
    }
    if (cfg->socket_path == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    return share_limits(cfg, conns_per_uid_given) ? 0 : 2;
}

/* One line: head, then the first STATUS_SHOWN backends sorted by id. */
static void print_status(struct broker *b, const char *head)
{
    char line[STATUS_SHOWN * (ID_LOG_MAX + 32) + 256], text[ID_LOG_MAX];
    size_t n = (size_t)snprintf(line, sizeof line, "%s", head);
    portreg_snapshot_t snap = {0};
    int rc = portreg_snapshot(b->reg, &snap);
    if (rc != 0)
        n += (size_t)snprintf(line + n, sizeof line - n, " | snapshot: %s", portreg_strerror(rc));
    else if (snap.count == 0)
        n += (size_t)snprintf(line + n, sizeof line - n, " | no backends");
    for (size_t i = 0; i < snap.count && i < STATUS_SHOWN; i++) {
        const portreg_entry_t *e = &snap.entries[i];
        const char *id = id_log_text(e->id, e->id_len, text);
        if (e->state.status == PORTREG_BOUND)
            n += (size_t)snprintf(line + n, sizeof line - n, " | %s bound:%u v%" PRIu32, id,
                                  e->state.port, e->state.version);
        else
            n += (size_t)snprintf(line + n, sizeof line - n, " | %s %s v%" PRIu32, id,
                                  status_name(e->state.status), e->state.version);
    }
    if (snap.count > STATUS_SHOWN)
        snprintf(line + n, sizeof line - n, " | (%zu more)", snap.count - STATUS_SHOWN);
    portreg_snapshot_free(&snap);
    log_line(LOG_ALWAYS, "%s", line);
}

/* Until a stop signal: a status line per interval in which the registry
 * changed or requests were served. Idle, this thread only sleeps. */
static void status_loop(struct broker *b, int sig_fd)
{
    const int64_t t0 = now_ns(), period = (int64_t)b->cfg.interval_ms * 1000000;
    int64_t last_t = t0;
    uint64_t last_lookups = 0, last_hits = 0, last_changes = 0;
    for (;;) {
        struct pollfd pfd = {.fd = sig_fd, .events = POLLIN};
        int rc = poll(&pfd, 1, (int)b->cfg.interval_ms);
        if (rc < 0 && errno != EINTR) {
            log_line(LOG_ALWAYS, "broker: poll: %s", strerror(errno));
            return;
        }
        struct signalfd_siginfo si;
        if (rc > 0 && read(sig_fd, &si, sizeof si) == sizeof si) {
            log_line(LOG_ALWAYS, "broker: %s: stopping", strsignal((int)si.ssi_signo));
            return;
        }
        int64_t t = now_ns();
        uint64_t lookups = 0, hits = 0, changes = portreg_changes(b->reg);
        if (b->data != NULL)
            data_plane_totals(b->data, &lookups, &hits);
        if (t - last_t < period || (lookups == last_lookups && changes == last_changes))
            continue;
        uint64_t dl = lookups - last_lookups, dh = hits - last_hits;
        char head[128];
        snprintf(head, sizeof head, "[%4llds] %.2fM lookups/s, %.0f%% hits",
                 (long long)((t - t0) / 1000000000), (double)dl * 1e3 / (double)(t - last_t),
                 dl > 0 ? 100.0 * (double)dh / (double)dl : 0.0);
        print_status(b, head);
        last_t = t, last_lookups = lookups, last_hits = hits, last_changes = changes;
    }
}

/* Signals are blocked in every thread (they inherit the mask) and taken
 * only through the signalfd that main polls: no async handler anywhere. */
static int block_signals(void)
{
    /* Every signal whose default would end the broker without removing
     * its sockets, but for the faults a program raises on itself. A
     * blocked signal is delivered even if ignored when we were started. */
    static const int stops[] = {SIGINT,    SIGTERM, SIGHUP,  SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM,
                                SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ, SIGIO,   SIGPWR,  SIGSTKFLT};
    sigset_t set;
    bool ok = signal(SIGPIPE, SIG_IGN) != SIG_ERR && sigemptyset(&set) == 0;
    for (size_t i = 0; ok && i < sizeof stops / sizeof stops[0]; i++)
        ok = sigaddset(&set, stops[i]) == 0;
    if (!ok || (errno = pthread_sigmask(SIG_BLOCK, &set, NULL)) != 0) {
        perror("broker: signals");
        return -1;
    }
    int fd = signalfd(-1, &set, SFD_CLOEXEC);
    if (fd < 0)
        perror("broker: signalfd");
    return fd;
}

static portreg_t *create_registry(const struct broker_config *cfg)
{
    portreg_options_t opts;
    portreg_options_init(&opts);
    /* The registry refuses ids beyond this (PORTREG_EFULL) on its own; the
     * daemon plane keeps --max-ids for its ownership records, and each
     * route's handle may hold a slot of its own (an untracked route). */
    opts.max_ids = cfg->max_ids + cfg->nroutes; /* a route's handle holds a slot of its own */
    portreg_t *reg = portreg_create(&opts);
    if (reg == NULL)
        perror("broker: portreg_create");
    return reg;
}

static void tell_ready(int fd)
{
    if (fd < 0)
        return;
    if (write(fd, "ready\n", 6) != 6)
        log_line(LOG_ALWAYS, "broker: --ready-fd %d: %s", fd, strerror(errno));
    if (close(fd) != 0)
        log_line(LOG_ALWAYS, "broker: close --ready-fd: %s", strerror(errno));
}

static struct broker broker;
static char default_control[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];

/* Sockets, registry and the stop eventfd. 0, or -1 (said on stderr). */
static int setup(struct broker *b)
{
    struct broker_config *cfg = &b->cfg;
    if (cfg->control_path == NULL) {
        snprintf(default_control, sizeof default_control, "%s.ctl", cfg->socket_path);
        cfg->control_path = default_control;
    }
    b->daemon_fd = b->control_fd = -1;
    if (socket_dir_prepare(cfg->socket_path) != 0 || socket_dir_prepare(cfg->control_path) != 0 ||
        (b->reg = create_registry(cfg)) == NULL)
        return -1;
    if ((b->stop_fd = eventfd(0, EFD_CLOEXEC)) < 0) {
        perror("broker: eventfd");
        return -1;
    }
    if ((b->daemon_fd = listen_unix(cfg->socket_path, &b->daemon_file)) < 0)
        return -1;
    if ((b->control_fd = listen_unix(cfg->control_path, &b->control_file)) < 0) {
        if (socket_file_remove(&b->daemon_file) != 0)
            perror("broker: removing the daemon socket");
        return -1;
    }
    return 0;
}

static int start_threads(struct broker *b, pthread_t *daemons, pthread_t *control)
{
    /* The data plane first: the control thread reads b->data, which
     * pthread_create() then publishes to it. */
    int err = log_start(b->cfg.log_rate, b->cfg.allowed_uids, b->cfg.nallowed);
    if (err == 0 && b->cfg.readers > 0)
        b->data = data_plane_start(b, b->cfg.readers, &err);
    if (err == 0)
        err = pthread_create(daemons, NULL, daemon_plane, b);
    if (err == 0)
        err = pthread_create(control, NULL, control_server, b);
    if (err != 0)
        fprintf(stderr, "broker: starting threads: %s\n", strerror(err));
    return err;
}

static void stop_threads(struct broker *b, pthread_t daemons, pthread_t control)
{
    uint64_t one = 1;
    atomic_store_explicit(&b->stop, true, memory_order_relaxed);
    if (write(b->stop_fd, &one, sizeof one) != sizeof one)
        log_line(LOG_ALWAYS, "broker: eventfd write: %s", strerror(errno));
    void *r1, *r2;
    pthread_join(daemons, &r1);
    pthread_join(control, &r2);
    if (r1 != NULL || r2 != NULL)
        log_line(LOG_ALWAYS, "broker: a plane failed to start or run; see above");
    if (b->data != NULL)
        data_plane_stop(b->data);
}

int main(int argc, char **argv)
{
    struct broker *b = &broker;
    int rc = parse_options(&b->cfg, argc, argv);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    if (b->cfg.nroutes == 0)
        b->cfg.readers = 0;
    int sig_fd = block_signals();
    if (sig_fd < 0 || setup(b) != 0)
        return 1;

    pthread_t daemons, control;
    if (start_threads(b, &daemons, &control) != 0) {
        /* Not worth unwinding in an example: the OS reclaims the rest. */
        if (socket_file_remove(&b->daemon_file) != 0 || socket_file_remove(&b->control_file) != 0)
            perror("broker: removing the sockets");
        _exit(1);
    }
    log_line(LOG_ALWAYS, "broker: daemons connect to %s; queries go to %s; %u data-plane threads",
             b->cfg.socket_path, b->cfg.control_path, b->cfg.readers);
    tell_ready(b->cfg.ready_fd);
    status_loop(b, sig_fd);
    stop_threads(b, daemons, control);

    uint64_t lookups = 0, hits = 0;
    if (b->data != NULL)
        data_plane_totals(b->data, &lookups, &hits);
    print_status(b, "broker: final registry");
    log_line(LOG_ALWAYS,
             "broker: stopped: %" PRIu64 " lookups, %" PRIu64 " hits, %" PRIu64 " changes", lookups,
             hits, portreg_changes(b->reg));
    if (socket_file_remove(&b->daemon_file) != 0 || socket_file_remove(&b->control_file) != 0)
        log_line(LOG_ALWAYS, "broker: removing the sockets: %s", strerror(errno));
    close_fd(b->daemon_fd, "broker");
    close_fd(b->control_fd, "broker");
    close_fd(b->stop_fd, "broker");
    close_fd(sig_fd, "broker");
    /* If stdout is stuck, give up on the last lines rather than hang: they
     * are the reader's loss, not a failed shutdown. */
    if (!log_stop(1000))
        fprintf(stderr, "broker: stdout is not being read; last log lines lost\n");
    portreg_destroy(b->reg);
    return 0;
}
