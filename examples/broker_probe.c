/*
 * broker_probe: what attack-suite.sh throws at the broker. Each mode plays
 * one misbehaving peer and prints what it saw, one line, so that the
 * script can assert on it. It does not link libportreg (it writes its two
 * kinds of frame by hand), so a copy of the binary runs as another user.
 *
 *   listen                       listen on 127.0.0.1:0, print "port N", hold
 *                                until stdin closes
 *   report SOCK ID PORT WAIT_MS  hello ID, then (PORT > 0) BackendHttpReady
 *                                {PORT}; print "dropped" (exit 1) if the
 *                                broker hangs up within WAIT_MS, else "kept"
 *   silent SOCK N HOLD_MS        open N connections, say nothing, print
 *                                "connected K"; then "closed M" once the
 *                                broker closed all K, HOLD_MS passed, or
 *                                stdin closed
 *   churn SOCK N PREFIX MOD      N times: connect, hello PREFIX<i % MOD>,
 *                                close; print "churned N, F failed"
 *   ctl-raw CTL TEXT             send TEXT (\n, \0 and \xHH escapes) to the
 *                                control socket and print the raw answer
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

static int do_listen(void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        perror("broker_probe listen");
        return 2;
    }
    printf("port %u\n", ntohs(addr.sin_port));
    fflush(stdout);
    hold_until_stdin_closes();
    return 0;
}

static int do_report(const char *sock, const char *id, long port, int wait_ms)
{
    int fd = unix_connect(sock);
    if (fd < 0) {
        printf("connect failed: %s\n", strerror(errno));
        return 3;
    }
    uint8_t ready[8] = {0x08}; /* field 1, varint */
    size_t ready_len = 1;
    for (unsigned long v = (unsigned long)port; ready_len < sizeof ready; v >>= 7) {
        ready[ready_len++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        if (v <= 0x7f)
            break;
    }
    if (!send_frame(fd, id, strlen(id)) || (port > 0 && !send_frame(fd, ready, ready_len))) {
        printf("dropped\n"); /* hung up on before the frames were all sent */
        return 1;
    }
    bool dropped = hangup_within(fd, wait_ms);
    printf("%s\n", dropped ? "dropped" : "kept");
    return dropped ? 1 : 0;
}

static int do_silent(const char *sock, int n, int hold_ms)
{
    struct pollfd *pfd = calloc((size_t)n + 1, sizeof *pfd);
    int k = 0;
    if (pfd == NULL)
        return 2;
    for (int i = 0; i < n; i++)
        if ((pfd[k].fd = unix_connect(sock)) >= 0)
            pfd[k++].events = POLLRDHUP;
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
    fprintf(stderr, "usage: broker_probe listen | report SOCK ID PORT WAIT_MS | silent SOCK N "
                    "HOLD_MS | churn SOCK N PREFIX MOD | ctl-raw CTL TEXT | ctl-stall CTL "
                    "silent|trickle|noread\n");
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "listen") == 0 && argc == 2)
        return do_listen();
    if (strcmp(mode, "report") == 0 && argc == 6)
        return do_report(argv[2], argv[3], atol(argv[4]), atoi(argv[5]));
    if (strcmp(mode, "silent") == 0 && argc == 5)
        return do_silent(argv[2], atoi(argv[3]), atoi(argv[4]));
    if (strcmp(mode, "churn") == 0 && argc == 6 && atol(argv[5]) > 0)
        return do_churn(argv[2], atol(argv[3]), argv[4], atol(argv[5]));
    if (strcmp(mode, "ctl-raw") == 0 && argc == 4)
        return do_ctl_raw(argv[2], argv[3]);
    if (strcmp(mode, "ctl-stall") == 0 && argc == 4)
        return do_ctl_stall(argv[2], argv[3]);
    usage();
    return 2;
}
