/*
 * broker_probe: what attack-suite.sh throws at the broker. Each mode plays
 * one misbehaving peer and prints what it saw, one line, so that the
 * script can assert on it. It does not link libportreg (it writes its two
 * kinds of frame by hand), so a copy of the binary runs as another user.
 *
 *   listen [ADDR]                listen on ADDR (default 127.0.0.1; ::1 for
 *                                IPv6 only), port 0; print "port N", hold
 *                                until stdin closes
 *   farm N                       N listeners on 127.0.0.1 (port 0 each):
 *                                print "farm K" (K made), hold until stdin
 *                                closes. Run in a network namespace of its
 *                                own (unshare -rn), it is what any user can
 *                                add to the kernel's listener tables
 *   report SOCK ID PORT WAIT_MS  hello ID, then (PORT > 0) BackendHttpReady
 *                                {PORT}; print "dropped" (exit 1) if the
 *                                broker hangs up within WAIT_MS, else "kept"
 *   raw SOCK TEXT WAIT_MS        send TEXT (escapes as ctl-raw) to the daemon
 *                                socket; print "dropped" (exit 1) if the
 *                                broker hangs up within WAIT_MS, else "kept"
 *   silent SOCK N HOLD_MS [PREFIX]
 *                                open N connections, say nothing (with
 *                                PREFIX: only hello PREFIX<i>), print
 *                                "connected K"; then "closed M" once the
 *                                broker closed all K, HOLD_MS passed, or
 *                                stdin closed
 *   close-listener SOCK ID WAIT_MS
 *                                listen on 127.0.0.1:0, hello ID, report
 *                                that port; at the first line on stdin
 *                                close the listener (keeping the broker
 *                                connection) and print "dropped after T
 *                                ms" when the broker hangs up, or "kept"
 *                                after WAIT_MS
 *   flood SOCK N PREFIX HOLD_MS  listen on 127.0.0.1:0; N connections, each
 *                                hello PREFIX<i> then the same
 *                                BackendHttpReady {that port} as fast as
 *                                the broker takes them; print "flooding N"
 *                                once all have reported, then "sent F
 *                                frames, D dropped" after HOLD_MS or when
 *                                stdin closes
 *   switch SOCK N PREFIX HOLD_MS listen on two ports of 127.0.0.1; N
 *                                connections, each hello PREFIX<i> then
 *                                BackendHttpReady {the other port} every
 *                                16 ms; print "switching N" once all have
 *                                reported, then "sent F frames, D dropped"
 *                                after HOLD_MS or when stdin closes
 *   churn SOCK N PREFIX MOD      N times: connect, hello PREFIX<i % MOD>,
 *                                close; print "churned N, F failed"
 *   ctl-raw CTL TEXT             send TEXT (\n, \0 and \xHH escapes) to the
 *                                control socket and print the raw answer
 *   ctl-hog CTL N HOLD_MS [TEXT] keep N control connections open, each having
 *                                sent TEXT (escapes as ctl-raw; none: silent),
 *                                never reading; reopen each one the broker
 *                                closes. Print "holding K" after the first
 *                                round, then "reopened R, E refused" after
 *                                HOLD_MS or when stdin closes (refused: an
 *                                answer starting "error:" was waiting)
 *   ctl-stall CTL MODE           a control client that stalls: MODE silent
 *                                (sends nothing), trickle (a byte every
 *                                300 ms), noread (asks for status, never
 *                                reads). Prints "ready", then "closed after
 *                                T ms" when the broker hangs up (60 s at most)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "unix_connect.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool send_frame(int fd, const void *body, size_t len)
{
    uint8_t buf[512] = {1, (uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
                        (uint8_t)(len >> 24)};
    if (len > sizeof buf - 5)
        return false;
    memcpy(buf + 5, body, len);
    return send(fd, buf, len + 5, MSG_NOSIGNAL) == (ssize_t)(len + 5);
}

/* True once the peer has hung up, false if ms passed first. */
static bool hangup_within(int fd, int ms)
{
    int64_t deadline = now_ms() + ms;
    for (int64_t left; (left = deadline - now_ms()) > 0;) {
        struct pollfd pfd = {.fd = fd, .events = POLLRDHUP};
        int r = poll(&pfd, 1, (int)left);
        if (r > 0)
            return true;
        if (r < 0 && errno != EINTR)
            return true;
    }
    return false;
}

/* Blocks until stdin reaches end of file (or fails). */
static void hold_until_stdin_closes(void)
{
    char buf[64];
    ssize_t r;
    while ((r = read(STDIN_FILENO, buf, sizeof buf)) != 0)
        if (r < 0 && errno != EINTR)
            return;
}

/* A TCP listener on addr ("127.0.0.1", or "::1" IPv6 only), port 0; -1 on
 * failure (said on stderr). */
static int tcp_listen(const char *addr, unsigned *port)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    socklen_t len;
    int family, one = 1;
    if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
        family = in4->sin_family = AF_INET;
        len = sizeof *in4;
    } else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
        family = in6->sin6_family = AF_INET6;
        len = sizeof *in6;
    } else {
        fprintf(stderr, "broker_probe: bad address %s\n", addr);
        return -1;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 ||
        (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
        bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        perror("broker_probe listen");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(family == AF_INET ? in4->sin_port : in6->sin6_port);
    return fd;
}

static int do_listen(const char *addr)
{
    unsigned port;
    if (tcp_listen(addr, &port) < 0)
        return 2;
    printf("port %u\n", port);
    fflush(stdout);
    hold_until_stdin_closes();
    return 0;
}

static int do_farm(long n)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    long made = 0;
    for (unsigned port; made < n && tcp_listen("127.0.0.1", &port) >= 0; made++)
        ;
    printf("farm %ld\n", made);
    fflush(stdout);
    hold_until_stdin_closes();
    return made == n ? 0 : 1;
}

/* A BackendHttpReady {port} body, as portreg_encode_ready() writes it. */
static size_t ready_body(unsigned long port, uint8_t out[8])
{
    size_t len = 1;
    out[0] = 0x08; /* field 1, varint */
    for (unsigned long v = port; len < 8; v >>= 7) {
        out[len++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        if (v <= 0x7f)
            break;
    }
    return len;
}

static int do_report(const char *sock, const char *id, long port, int wait_ms)
{
    int fd = unix_connect(sock);
    if (fd < 0) {
        printf("connect failed: %s\n", strerror(errno));
        return 3;
    }
    uint8_t ready[8];
    size_t ready_len = ready_body((unsigned long)port, ready);
    if (!send_frame(fd, id, strlen(id)) || (port > 0 && !send_frame(fd, ready, ready_len))) {
        printf("dropped\n"); /* hung up on before the frames were all sent */
        return 1;
    }
    bool dropped = hangup_within(fd, wait_ms);
    printf("%s\n", dropped ? "dropped" : "kept");
    return dropped ? 1 : 0;
}

static int do_silent(const char *sock, int n, int hold_ms, const char *prefix)
{
    struct pollfd *pfd = calloc((size_t)n + 1, sizeof *pfd);
    int k = 0;
    char id[300];
    if (pfd == NULL)
        return 2;
    for (int i = 0; i < n; i++) {
        if ((pfd[k].fd = unix_connect(sock)) < 0)
            continue;
        int len = prefix == NULL ? 0 : snprintf(id, sizeof id, "%s%d", prefix, i);
        if (len > 0 && ((size_t)len >= sizeof id || !send_frame(pfd[k].fd, id, (size_t)len))) {
            close(pfd[k].fd);
            continue;
        }
        pfd[k++].events = POLLRDHUP;
    }
    printf("connected %d\n", k);
    fflush(stdout);
    pfd[k] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
    int closed = 0;
    for (int64_t deadline = now_ms() + hold_ms; closed < k && now_ms() < deadline;) {
        int r = poll(pfd, (nfds_t)k + 1, (int)(deadline - now_ms()));
        if (r < 0 && errno != EINTR)
            break;
        if (r > 0 && pfd[k].revents != 0)
            break;
        for (int i = 0; r > 0 && i < k; i++) {
            if (pfd[i].fd >= 0 && pfd[i].revents != 0) {
                close(pfd[i].fd);
                pfd[i].fd = -1; /* poll skips negative fds */
                closed++;
            }
        }
    }
    printf("closed %d\n", closed);
    free(pfd);
    return 0;
}

static int do_churn(const char *sock, long n, const char *prefix, long mod)
{
    long failed = 0;
    char id[300];
    for (long i = 0; i < n; i++) {
        int len = snprintf(id, sizeof id, "%s%ld", prefix, i % mod);
        int fd = unix_connect(sock);
        if (fd < 0 || len <= 0 || (size_t)len >= sizeof id || !send_frame(fd, id, (size_t)len))
            failed++;
        if (fd >= 0)
            close(fd);
    }
    printf("churned %ld, %ld failed\n", n, failed);
    return 0;
}

static int do_close_listener(const char *sock, const char *id, int wait_ms)
{
    unsigned port;
    uint8_t ready[8];
    int lfd = tcp_listen("127.0.0.1", &port), fd = unix_connect(sock);
    if (lfd < 0 || fd < 0) {
        printf("connect failed: %s\n", strerror(errno));
        return 3;
    }
    if (!send_frame(fd, id, strlen(id)) || !send_frame(fd, ready, ready_body(port, ready))) {
        printf("dropped before closing\n");
        return 1;
    }
    printf("reported port %u\n", port);
    fflush(stdout);
    char line[64];
    if (read(STDIN_FILENO, line, sizeof line) < 0)
        return 2;
    int64_t t0 = now_ms();
    close(lfd);
    if (!hangup_within(fd, wait_ms)) {
        printf("kept\n");
        return 1;
    }
    printf("dropped after %lld ms\n", (long long)(now_ms() - t0));
    return 0;
}

static int do_flood(const char *sock, int n, const char *prefix, int hold_ms)
{
    unsigned port;
    uint8_t ready[8], chunk[4096];
    struct pollfd *pfd = calloc((size_t)n + 1, sizeof *pfd);
    size_t *off = calloc((size_t)n + 1, sizeof *off);
    int lfd = tcp_listen("127.0.0.1", &port);
    if (pfd == NULL || off == NULL || lfd < 0)
        return 2;
    /* A chunk of identical BackendHttpReady frames, whole frames only. */
    size_t body = ready_body(port, ready), frame = 5 + body, per_chunk = sizeof chunk / frame;
    for (size_t i = 0; i < per_chunk; i++) {
        uint8_t *f = chunk + i * frame;
        f[0] = 1, f[1] = (uint8_t)body, f[2] = f[3] = f[4] = 0;
        memcpy(f + 5, ready, body);
    }
    int k = 0;
    for (int i = 0; i < n; i++) {
        char id[300];
        int len = snprintf(id, sizeof id, "%s%d", prefix, i);
        int fd = unix_connect(sock);
        if (fd < 0 || len <= 0 || (size_t)len >= sizeof id || !send_frame(fd, id, (size_t)len) ||
            !send_frame(fd, ready, body)) {
            if (fd >= 0)
                close(fd);
            continue;
        }
        pfd[k].fd = fd;
        pfd[k++].events = POLLOUT;
    }
    printf("flooding %d\n", k);
    fflush(stdout);
    pfd[k] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
    long long frames = 0;
    int dropped = 0;
    for (int64_t deadline = now_ms() + hold_ms; now_ms() < deadline;) {
        int r = poll(pfd, (nfds_t)k + 1, (int)(deadline - now_ms()));
        if (r < 0 && errno != EINTR)
            break;
        if (r > 0 && pfd[k].revents != 0)
            break;
        for (int i = 0; r > 0 && i < k; i++) {
            if (pfd[i].fd < 0 || pfd[i].revents == 0)
                continue;
            /* The chunk repeats one frame: resuming at the offset within
             * a frame keeps the stream framed. */
            ssize_t w = (pfd[i].revents & POLLOUT)
                            ? send(pfd[i].fd, chunk + off[i], per_chunk * frame - off[i],
                                   MSG_NOSIGNAL | MSG_DONTWAIT)
                            : -1;
            if (w > 0) {
                frames += (off[i] + (size_t)w) / frame;
                off[i] = (off[i] + (size_t)w) % frame;
            }
            if (w < 0 && errno != EAGAIN && errno != EINTR) {
                close(pfd[i].fd);
                pfd[i].fd = -1;
                dropped++;
            }
        }
    }
    printf("sent %lld frames, %d dropped\n", frames, dropped);
    free(pfd);
    free(off);
    close(lfd);
    return 0;
}

/* n connections changing port every 16 ms; with reconnect, each change
 * comes on a fresh connection (hello, then the new port), as a daemon
 * that wants a fresh budget each time would do. */
static int do_switch(const char *sock, int n, const char *prefix, int hold_ms, bool reconnect)
{
    unsigned ports[2];
    uint8_t ready[2][8];
    size_t body[2];
    int *fds = calloc((size_t)n, sizeof *fds);
    int l0 = tcp_listen("127.0.0.1", &ports[0]), l1 = tcp_listen("127.0.0.1", &ports[1]);
    if (fds == NULL || l0 < 0 || l1 < 0)
        return 2;
    for (int j = 0; j < 2; j++)
        body[j] = ready_body(ports[j], ready[j]);
    int k = 0;
    for (int i = 0; i < n; i++) {
        char id[300];
        int len = snprintf(id, sizeof id, "%s%d", prefix, i);
        int fd = unix_connect(sock);
        if (fd < 0 || len <= 0 || (size_t)len >= sizeof id || !send_frame(fd, id, (size_t)len) ||
            !send_frame(fd, ready[0], body[0])) {
            if (fd >= 0)
                close(fd);
            continue;
        }
        fds[k++] = fd;
    }
    printf("switching %d\n", k);
    fflush(stdout);
    struct pollfd in = {.fd = STDIN_FILENO, .events = POLLIN};
    long long frames = 0;
    int dropped = 0;
    for (int64_t deadline = now_ms() + hold_ms, turn = 1; now_ms() < deadline; turn++) {
        /* A daemon's pace, not a flood's: the frame budget is never hit,
         * so every frame arrives alone and names a new port. */
        if (poll(&in, 1, 16) > 0)
            break;
        for (int i = 0; i < k; i++) {
            if (reconnect) {
                char id[300];
                int len = snprintf(id, sizeof id, "%s%d", prefix, i);
                if (fds[i] >= 0)
                    close(fds[i]);
                fds[i] = unix_connect(sock);
                if (fds[i] >= 0 && !send_frame(fds[i], id, (size_t)len)) {
                    close(fds[i]);
                    fds[i] = -1;
                }
            }
            if (fds[i] < 0)
                continue;
            if (send_frame(fds[i], ready[turn % 2], body[turn % 2])) {
                frames++;
            } else {
                close(fds[i]);
                fds[i] = -1;
                dropped++;
            }
        }
    }
    printf("sent %lld frames, %d dropped\n", frames, dropped);
    free(fds);
    close(l0);
    close(l1);
    return 0;
}

/* \n, \0 and \xHH escapes; returns the length. */
static size_t unescape(const char *s, char *out)
{
    size_t n = 0;
    while (*s != '\0') {
        if (s[0] == '\\' && s[1] == 'n') {
            out[n++] = '\n', s += 2;
        } else if (s[0] == '\\' && s[1] == '0') {
            out[n++] = '\0', s += 2;
        } else if (s[0] == '\\' && s[1] == 'x' && s[2] != '\0' && s[3] != '\0') {
            char hex[3] = {s[2], s[3], 0};
            out[n++] = (char)strtoul(hex, NULL, 16), s += 4;
        } else {
            out[n++] = *s++;
        }
    }
    return n;
}

static int do_raw(const char *sock, const char *text, int wait_ms)
{
    char *buf = malloc(strlen(text) + 1);
    int fd = unix_connect(sock);
    if (buf == NULL || fd < 0) {
        printf("connect failed: %s\n", strerror(errno));
        free(buf);
        return 3;
    }
    size_t len = unescape(text, buf);
    bool sent = send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len;
    free(buf);
    bool dropped = !sent || hangup_within(fd, wait_ms);
    printf("%s\n", dropped ? "dropped" : "kept");
    return dropped ? 1 : 0;
}

static int do_ctl_raw(const char *ctl, const char *text)
{
    char *buf = malloc(strlen(text) + 1), answer[4096];
    int fd = unix_connect(ctl);
    if (buf == NULL || fd < 0) {
        printf("connect failed: %s\n", strerror(errno));
        free(buf);
        return 3;
    }
    size_t len = unescape(text, buf);
    ssize_t sent = send(fd, buf, len, MSG_NOSIGNAL);
    free(buf);
    if (sent != (ssize_t)len)
        fprintf(stderr, "send: %s\n", strerror(errno)); /* the answer may still come */
    size_t have = 0;
    for (int64_t deadline = now_ms() + 5000; have < sizeof answer;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(deadline - now_ms() > 0 ? deadline - now_ms() : 0)) <= 0) {
            printf("no answer in 5 s\n");
            return 2;
        }
        ssize_t r = read(fd, answer + have, sizeof answer - have);
        if (r <= 0)
            break;
        have += (size_t)r;
    }
    fwrite(answer, 1, have, stdout);
    return 0;
}

/* One hog connection: connected, TEXT sent, a small receive buffer so
 * that an answer cannot hide in it. -1 if the broker cannot be reached. */
static int hog_open(const char *ctl, const char *text, size_t len)
{
    int fd = unix_connect(ctl), small = 1024;
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) != 0 ||
        (len > 0 && send(fd, text, len, MSG_NOSIGNAL) != (ssize_t)len)) {
        close(fd);
        return -1;
    }
    return fd;
}

static int do_ctl_hog(const char *ctl, int n, int hold_ms, const char *raw)
{
    struct pollfd *pfd = calloc((size_t)n + 1, sizeof *pfd);
    char *text = malloc(strlen(raw) + 1);
    if (pfd == NULL || text == NULL)
        return 2;
    size_t len = unescape(raw, text);
    int k = 0;
    for (int i = 0; i < n; i++)
        if ((pfd[k].fd = hog_open(ctl, text, len)) >= 0)
            pfd[k++].events = POLLRDHUP;
    printf("holding %d\n", k);
    fflush(stdout);
    pfd[k] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
    long reopened = 0, refused = 0;
    for (int64_t deadline = now_ms() + hold_ms; now_ms() < deadline;) {
        int r = poll(pfd, (nfds_t)k + 1, (int)(deadline - now_ms()));
        if (r < 0 && errno != EINTR)
            break;
        if (r > 0 && pfd[k].revents != 0)
            break;
        for (int i = 0; r > 0 && i < k; i++) {
            if (pfd[i].revents == 0)
                continue;
            char head[6] = "";
            if (recv(pfd[i].fd, head, sizeof head, MSG_DONTWAIT) == (ssize_t)sizeof head &&
                memcmp(head, "error:", 6) == 0)
                refused++;
            close(pfd[i].fd);
            pfd[i].fd = hog_open(ctl, text, len);
            reopened++;
            if (pfd[i].fd < 0) {
                printf("reconnect failed: %s\n", strerror(errno));
                return 1;
            }
        }
    }
    printf("reopened %ld, %ld refused\n", reopened, refused);
    free(text);
    free(pfd);
    return 0;
}

static int do_ctl_stall(const char *ctl, const char *mode)
{
    int fd = unix_connect(ctl);
    if (fd < 0) {
        printf("connect failed: %s\n", strerror(errno));
        return 3;
    }
    if (strcmp(mode, "noread") == 0) {
        int small = 1024; /* the broker's answer cannot fit: it must not wait for us */
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) != 0 ||
            send(fd, "status\n", 7, MSG_NOSIGNAL) != 7)
            perror("broker_probe noread");
    }
    printf("ready\n");
    fflush(stdout);
    int64_t t0 = now_ms();
    bool trickle = strcmp(mode, "trickle") == 0;
    /* Longer than the deadline allows at one byte per 300 ms: only a
     * deadline per query, not per read, ends it. */
    const char *line = "stats                                        \n";
    for (size_t i = 0; now_ms() - t0 < 60000;) {
        if (hangup_within(fd, trickle ? 300 : 60000)) {
            printf("closed after %lld ms\n", (long long)(now_ms() - t0));
            return 0;
        }
        if (trickle && line[i] != '\0' && send(fd, &line[i++], 1, MSG_NOSIGNAL) != 1)
            break;
    }
    printf("held %lld ms\n", (long long)(now_ms() - t0));
    return 1;
}

static void usage(void)
{
    fprintf(
        stderr,
        "usage: broker_probe listen [ADDR] | farm N | switch[-reconnect] SOCK N PREFIX HOLD_MS | "
        "report SOCK ID PORT WAIT_MS | silent "
        "SOCK N HOLD_MS [PREFIX] | close-listener SOCK ID WAIT_MS | flood SOCK N "
        "PREFIX HOLD_MS | churn SOCK N PREFIX MOD | ctl-raw CTL TEXT | ctl-hog CTL N "
        "HOLD_MS [TEXT] | ctl-stall CTL "
        "silent|trickle|noread | raw SOCK TEXT WAIT_MS\n");
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "listen") == 0 && (argc == 2 || argc == 3))
        return do_listen(argc == 3 ? argv[2] : "127.0.0.1");
    if (strcmp(mode, "farm") == 0 && argc == 3 && atol(argv[2]) > 0)
        return do_farm(atol(argv[2]));
    if (strcmp(mode, "report") == 0 && argc == 6)
        return do_report(argv[2], argv[3], atol(argv[4]), atoi(argv[5]));
    if (strcmp(mode, "silent") == 0 && (argc == 5 || argc == 6))
        return do_silent(argv[2], atoi(argv[3]), atoi(argv[4]), argc == 6 ? argv[5] : NULL);
    if (strcmp(mode, "close-listener") == 0 && argc == 5)
        return do_close_listener(argv[2], argv[3], atoi(argv[4]));
    if (strcmp(mode, "flood") == 0 && argc == 6)
        return do_flood(argv[2], atoi(argv[3]), argv[4], atoi(argv[5]));
    if (strcmp(mode, "switch") == 0 && argc == 6)
        return do_switch(argv[2], atoi(argv[3]), argv[4], atoi(argv[5]), false);
    if (strcmp(mode, "switch-reconnect") == 0 && argc == 6)
        return do_switch(argv[2], atoi(argv[3]), argv[4], atoi(argv[5]), true);
    if (strcmp(mode, "churn") == 0 && argc == 6 && atol(argv[5]) > 0)
        return do_churn(argv[2], atol(argv[3]), argv[4], atol(argv[5]));
    if (strcmp(mode, "raw") == 0 && argc == 5)
        return do_raw(argv[2], argv[3], atoi(argv[4]));
    if (strcmp(mode, "ctl-raw") == 0 && argc == 4)
        return do_ctl_raw(argv[2], argv[3]);
    if (strcmp(mode, "ctl-hog") == 0 && (argc == 5 || argc == 6))
        return do_ctl_hog(argv[2], atoi(argv[3]), atoi(argv[4]), argc == 6 ? argv[5] : "");
    if (strcmp(mode, "ctl-stall") == 0 && argc == 4)
        return do_ctl_stall(argv[2], argv[3]);
    usage();
    return 2;
}
