/*
 * Socket files and accepting connections.
 *
 * The broker's two Unix sockets live in a directory only its owner can
 * enter (0700) and are themselves 0600, whatever the umask: file modes
 * are the first gate, SO_PEERCRED (checked by the callers) the second.
 * The directory must be ours, and so must every directory above it be
 * root's or ours, writable by others only with the sticky bit (as /tmp):
 * otherwise someone could rename it away after the check and put their
 * own in its place. For the same reason every symlink on the way must be
 * root's or ours: its owner could repoint it.
 * A socket file left behind by a broker that was killed is replaced; one
 * that still answers belongs to a live broker and is left alone.
 */
#include "broker.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* How long accepting stays paused when even the reserved descriptor
 * cannot be had back (the whole system is out of file descriptors). */
#define ACCEPT_PAUSE_NS (200 * 1000 * 1000)

void close_fd(int fd, const char *what)
{
    /* Linux releases the descriptor even when close() reports an error
     * (EINTR, EIO): never retry, only say so. */
    if (fd >= 0 && close(fd) != 0)
        log_line(LOG_ALWAYS, "%s: close: %s", what, strerror(errno));
}

/* Whether a directory that leads to the socket directory is safe: owned
 * by root or us, writable by others only with the sticky bit. 0, or -1
 * (said on stderr). */
static int directory_ok(const char *path, const struct stat *st, const char *dir)
{
    bool owner_ok = st->st_uid == 0 || st->st_uid == geteuid();
    bool others_write = (st->st_mode & 022) != 0 && (st->st_mode & S_ISVTX) == 0;
    if (owner_ok && !others_write)
        return 0;
    fprintf(stderr,
            "broker: %s (above the socket directory %s) is %s: the socket directory "
            "could be swapped for another; use a path whose every parent is owned by "
            "root or uid %u and writable by others only with the sticky bit\n",
            path, dir,
            !owner_ok ? "owned by another user" : "writable by others without the sticky bit",
            (unsigned)geteuid());
    return -1;
}

/* Every directory on the way to dir's parent, as the kernel would walk
 * it: each symlink met must be owned by root or us (its owner can point it
 * elsewhere at any time, whatever its target's owner), and every
 * directory passed through, and every one above the place the walk ends,
 * must pass directory_ok(). 0, or -1 (said on stderr). */
static int ancestors_check(const char *dir)
{
    char parent[PATH_MAX], rest[2 * PATH_MAX], resolved[PATH_MAX], link[PATH_MAX];
    const char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(parent, sizeof parent, ".");
    else
        snprintf(parent, sizeof parent, "%.*s", slash == dir ? 1 : (int)(slash - dir), dir);
    if (parent[0] == '/') {
        snprintf(resolved, sizeof resolved, "/");
    } else if (getcwd(resolved, sizeof resolved) == NULL) {
        fprintf(stderr, "broker: getcwd: %s\n", strerror(errno));
        return -1;
    }
    snprintf(rest, sizeof rest, "%s", parent);
    for (int links = 0; rest[0] != '\0';) {
        /* Take the next component off rest. */
        char *p = rest;
        while (*p == '/')
            p++;
        size_t len = strcspn(p, "/");
        char comp[NAME_MAX + 1];
        if (len > NAME_MAX) {
            fprintf(stderr, "broker: %s: %s\n", parent, strerror(ENAMETOOLONG));
            return -1;
        }
        memcpy(comp, p, len);
        comp[len] = '\0';
        memmove(rest, p + len, strlen(p + len) + 1);
        if (len == 0 || strcmp(comp, ".") == 0)
            continue;
        if (strcmp(comp, "..") == 0) {
            char *up = strrchr(resolved, '/');
            up[up == resolved ? 1 : 0] = '\0';
            continue;
        }
        char next[PATH_MAX];
        if (snprintf(next, sizeof next, "%s%s%s", resolved, strcmp(resolved, "/") == 0 ? "" : "/",
                     comp) >= (int)sizeof next) {
            fprintf(stderr, "broker: %s: %s\n", parent, strerror(ENAMETOOLONG));
            return -1;
        }
        struct stat st;
        if (lstat(next, &st) != 0) {
            fprintf(stderr, "broker: %s: %s\n", next, strerror(errno));
            return -1;
        }
        if (S_ISLNK(st.st_mode)) {
            if (st.st_uid != 0 && st.st_uid != geteuid()) {
                fprintf(stderr,
                        "broker: %s (on the way to the socket directory %s) is a symlink owned "
                        "by uid %u, who can point it elsewhere at any time; use a path without "
                        "it, or whose symlinks are owned by root or uid %u\n",
                        next, dir, (unsigned)st.st_uid, (unsigned)geteuid());
                return -1;
            }
            ssize_t n = readlink(next, link, sizeof link - 1);
            if (n < 0 || ++links > 40) {
                fprintf(stderr, "broker: %s: %s\n", next,
                        n < 0 ? strerror(errno) : strerror(ELOOP));
                return -1;
            }
            link[n] = '\0';
            char joined[2 * PATH_MAX];
            if (snprintf(joined, sizeof joined, "%s/%s", link, rest) >= (int)sizeof rest) {
                fprintf(stderr, "broker: %s: %s\n", parent, strerror(ENAMETOOLONG));
                return -1;
            }
            snprintf(rest, sizeof rest, "%s", joined);
            if (link[0] == '/')
                snprintf(resolved, sizeof resolved, "/");
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            fprintf(stderr, "broker: %s: %s\n", next, strerror(ENOTDIR));
            return -1;
        }
        if (directory_ok(next, &st, dir) != 0)
            return -1;
        snprintf(resolved, sizeof resolved, "%s", next);
    }
    /* Where the walk ended, and everything above it. */
    for (;;) {
        struct stat st;
        if (stat(resolved, &st) != 0) {
            fprintf(stderr, "broker: %s: %s\n", resolved, strerror(errno));
            return -1;
        }
        if (directory_ok(resolved, &st, dir) != 0)
            return -1;
        char *up = strrchr(resolved, '/');
        if (up == NULL || up == resolved) {
            if (resolved[1] == '\0')
                return 0; /* "/" done */
            resolved[1] = '\0';
        } else {
            *up = '\0';
        }
    }
}

int socket_dir_prepare(const char *socket_path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(socket_path, '/');
    size_t n = slash == NULL ? 1 : (size_t)(slash - socket_path);
    if (slash == socket_path)
        n = 1; /* "/x": the root directory */
    if (n >= sizeof dir) {
        fprintf(stderr, "broker: socket path too long: %s\n", socket_path);
        return -1;
    }
    memcpy(dir, slash == NULL ? "." : socket_path, n);
    dir[n] = '\0';
    if (ancestors_check(dir) != 0)
        return -1;

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "broker: mkdir %s: %s\n", dir, strerror(errno));
        return -1;
    }
    struct stat st;
    if (lstat(dir, &st) != 0) {
        fprintf(stderr, "broker: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
        fprintf(stderr,
                "broker: %s must be a directory owned by uid %u with mode 0700 (it is %s, "
                "uid %u, mode %04o): other users could reach or replace the sockets; remove it "
                "and let the broker create it, or choose another --socket path\n",
                dir, (unsigned)geteuid(), S_ISDIR(st.st_mode) ? "a directory" : "not a directory",
                (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
        return -1;
    }
    return 0;
}

/* 0: path is free (or was a stale socket, now removed); -1: it is not. */
static int clear_stale(const char *path, const struct sockaddr_un *addr)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : (perror(path), -1);
    if (!S_ISSOCK(st.st_mode)) {
        fprintf(stderr, "broker: %s exists and is not a socket; not touching it\n", path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("broker: socket");
        return -1;
    }
    int rc = connect(fd, (const struct sockaddr *)addr, sizeof *addr);
    int err = errno;
    close_fd(fd, "broker: probing the old socket");
    if (rc == 0) {
        fprintf(stderr, "broker: %s: another broker is listening there\n", path);
        return -1;
    }
    if (err != ECONNREFUSED) {
        fprintf(stderr, "broker: %s: %s\n", path, strerror(err));
        return -1;
    }
    /* Nobody listens: a broker died without cleaning up. */
    if (unlink(path) != 0 && errno != ENOENT) {
        fprintf(stderr, "broker: removing stale %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(stderr, "broker: replaced the stale socket %s\n", path);
    return 0;
}

/* Describes the socket file just bound at path in f. 0, or -1 (errno). */
static int socket_file_note(const char *path, struct socket_file *f)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    const char *name = slash == NULL ? path : slash + 1;
    size_t n = slash == NULL ? 0 : (size_t)(slash - path);
    if (strlen(name) >= sizeof f->name || n >= sizeof dir) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", n == 0 ? 1 : (int)n, path);
    snprintf(f->name, sizeof f->name, "%s", name);
    struct stat st;
    f->dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (f->dir_fd < 0 || fstatat(f->dir_fd, f->name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return -1;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    return 0;
}

int listen_unix(const char *path, struct socket_file *f)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    *f = (struct socket_file){.dir_fd = -1};
    if (strlen(path) >= sizeof addr.sun_path) {
        fprintf(stderr, "broker: socket path too long: %s\n", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    if (clear_stale(path, &addr) != 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("broker: socket");
        return -1;
    }
    /* bind() creates the file with the umask applied: make it 0600 from
     * the start (called before any thread exists, so the process-wide
     * umask is ours to change), then say so explicitly. */
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&addr, sizeof addr);
    int err = errno;
    umask(old);
    if (rc != 0) {
        fprintf(stderr, "broker: bind %s: %s\n", path, strerror(err));
        close_fd(fd, "broker");
        return -1;
    }
    if (chmod(path, 0600) != 0 || listen(fd, 128) != 0 || socket_file_note(path, f) != 0) {
        fprintf(stderr, "broker: %s: %s\n", path, strerror(errno));
        if (unlink(path) != 0)
            perror("broker: unlink");
        close_fd(f->dir_fd, "broker");
        close_fd(fd, "broker");
        return -1;
    }
    return fd;
}

int socket_file_remove(struct socket_file *f)
{
    struct stat st;
    int rc = -1;
    if (f->dir_fd < 0) {
        errno = EBADF;
        return -1;
    }
    if (fstatat(f->dir_fd, f->name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        rc = errno == ENOENT ? 0 : -1; /* already gone: nothing to do */
    else if (st.st_dev != f->dev || st.st_ino != f->ino)
        rc = 0; /* someone else's file now: not ours to remove */
    else
        rc = unlinkat(f->dir_fd, f->name, 0);
    int err = errno;
    close_fd(f->dir_fd, "broker");
    f->dir_fd = -1;
    errno = err;
    return rc;
}

bool peer_credentials(int fd, pid_t *pid, uid_t *uid)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred)
        return false;
    *pid = cred.pid;
    *uid = cred.uid;
    return true;
}

static int open_reserve(void)
{
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

int acceptor_init(struct acceptor *a, int listen_fd, const char *what, int ep, uint64_t tag)
{
    *a = (struct acceptor){.listen_fd = listen_fd, .what = what, .ep = ep, .tag = tag};
    a->reserve_fd = open_reserve();
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
    if (a->reserve_fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &ev) != 0) {
        log_line(LOG_ALWAYS, "%s: cannot watch the socket: %s", what, strerror(errno));
        acceptor_fini(a);
        return -1;
    }
    return 0;
}

/* Level-triggered epoll would report a paused socket again at once: while
 * paused it is watched for nothing. */
static void watch_listener(struct acceptor *a, bool on)
{
    struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.u64 = a->tag};
    if (epoll_ctl(a->ep, EPOLL_CTL_MOD, a->listen_fd, &ev) != 0)
        log_line(LOG_ALWAYS, "%s: epoll_ctl: %s", a->what, strerror(errno));
}

int64_t acceptor_tick(struct acceptor *a, int64_t now)
{
    if (a->paused_until != 0 && a->paused_until <= now) {
        a->paused_until = 0;
        watch_listener(a, true);
    }
    return a->paused_until;
}

void acceptor_fini(struct acceptor *a)
{
    close_fd(a->reserve_fd, a->what);
    a->reserve_fd = -1;
}

/*
 * Out of descriptors, the listening socket stays readable: a loop that
 * just retries spins a core. Instead, give the reserved descriptor back,
 * accept the connection and close it at once (the peer sees a hang-up
 * instead of waiting in the backlog), and take the reserve again. If even
 * that fails, stop accepting for a moment. The episode is logged once.
 */
static bool accept_exhausted(struct acceptor *a, int err, int64_t now)
{
    if (!a->exhausted)
        log_line(LOG_ALWAYS, "%s: accept: %s; refusing connections until descriptors free up",
                 a->what, strerror(err));
    a->exhausted = true;
    if (a->reserve_fd >= 0) {
        close_fd(a->reserve_fd, a->what);
        int fd = accept4(a->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        /* Best effort: a new socket's buffer has room for one line. */
        if (fd >= 0 && a->refusal != NULL &&
            send(fd, a->refusal, strlen(a->refusal), MSG_NOSIGNAL) < 0)
            log_line(LOG_EVENT, "%s: refusal not sent: %s", a->what, strerror(errno));
        close_fd(fd, a->what);
        a->reserve_fd = open_reserve();
    }
    if (a->reserve_fd >= 0)
        return false;
    a->paused_until = now + ACCEPT_PAUSE_NS;
    watch_listener(a, false);
    return true;
}

int acceptor_take(struct acceptor *a, int64_t now)
{
    if (acceptor_tick(a, now) != 0) {
        errno = EAGAIN;
        return -1;
    }
    if (a->reserve_fd < 0)
        a->reserve_fd = open_reserve();
    for (int tries = 0; tries < 64; tries++) {
        int fd = accept4(a->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            if (a->exhausted)
                log_line(LOG_ALWAYS, "%s: accepting connections again", a->what);
            a->exhausted = false;
            return fd;
        }
        switch (errno) {
        case EINTR:
        case ECONNABORTED: /* the peer gave up while queued */
        case EPROTO:
            continue;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            if (!accept_exhausted(a, errno, now))
                continue;
            errno = EAGAIN;
            return -1;
        case EAGAIN:
            return -1;
        default:
            log_line(LOG_EVENT, "%s: accept: %s", a->what, strerror(errno));
            errno = EAGAIN;
            return -1;
        }
    }
    errno = EAGAIN; /* enough for one turn; epoll says if there is more */
    return -1;
}

void event_loop(int ep, const char *what, const struct loop_ops *ops, void *plane)
{
    for (int64_t now = now_ns();;) {
        int64_t next = ops->tick(plane, now);
        struct epoll_event evs[32];
        int n = epoll_wait(ep, evs, 32, poll_timeout_ms(now, next));
        if (n < 0 && errno != EINTR) {
            log_line(LOG_ALWAYS, "%s: epoll_wait: %s", what, strerror(errno));
            return;
        }
        now = now_ns();
        for (int i = 0; i < n; i++) {
            int64_t tag = (int64_t)evs[i].data.u64;
            if (tag == LOOP_TAG_STOP)
                return;
            ops->event(plane, tag, evs[i].events, now);
        }
    }
}
