/*
 * broker_ctl: sends one query to the broker's control socket and prints the
 * answer.
 *
 * usage: broker_ctl [--timeout-ms MS] CONTROL_SOCKET COMMAND [ARG]...
 *   status                        every tracked backend, sorted by id:
 *                                 "id status port version", one a line
 *   get ID                        one backend, same format (untracked too)
 *   lookup ID                     what the data plane sees: a port, or "miss"
 *   wait ID STATUS TIMEOUT_MS     blocks until ID is untracked|pending|bound
 *   stats                         counters, "name value" pairs on one line
 *   load N                        N simulated requests for the data plane
 * Ids are written with \xHH for bytes that are not printable ASCII.
 *
 * The whole exchange has one deadline: --timeout-ms (default 5000), plus
 * the TIMEOUT_MS of a wait. The broker answers "ok LEN\n" and LEN bytes, or
 * "error: ...\n"; an answer that ends early is an error, never a short
 * answer.
 *
 * Exit status: 0 with the answer on stdout; 1 when the broker answered
 * "error: ..." (printed on stderr); 2 when the broker could not be reached,
 * did not answer in time, or answered something cut short or malformed.
 */
#define _GNU_SOURCE
#include <errno.h>
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

/* The broker's limits: a line of 2047 bytes, answers of --reply-max bytes
 * (1 MiB by default). */
#define LINE_MAX_BYTES 2048
#define ANSWER_MAX     (64u << 20)

static int64_t now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        abort(); /* cannot fail with a valid clock and pointer */
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd has events, or the deadline passes (false, errno ETIMEDOUT). */
static bool wait_for(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return false;
        }
        struct pollfd pfd = {.fd = fd, .events = events};
        int r = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
        if (r > 0)
            return true;
        if (r < 0 && errno != EINTR)
            return false;
    }
}

static bool send_all(int fd, const char *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!wait_for(fd, POLLOUT, deadline))
                return false;
            continue;
        }
        if (w < 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Reads until end of stream. The answer is malloc'd into *out. */
static bool receive_all(int fd, char **out, size_t *len, int64_t deadline)
{
    size_t cap = 4096, have = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        if (have == cap) {
            char *bigger = cap >= ANSWER_MAX ? NULL : realloc(buf, cap * 2);
            if (bigger == NULL) {
                errno = EMSGSIZE;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + have, cap - have, MSG_DONTWAIT);
        if (r == 0) {
            *out = buf;
            *len = have;
            return true;
        }
        if (r > 0)
            have += (size_t)r;
        else if ((errno != EAGAIN && errno != EINTR) || !wait_for(fd, POLLIN, deadline))
            break;
    }
    free(buf);
    return false;
}

/* Checks the answer's framing and prints it. Returns the exit status. */
static int print_answer(const char *a, size_t len)
{
    if (len >= 6 && memcmp(a, "error:", 6) == 0) {
        fwrite(a, 1, len, stderr);
        return 1;
    }
    const char *nl = memchr(a, '\n', len);
    char *end = NULL;
    unsigned long long want = len > 3 && memcmp(a, "ok ", 3) == 0 ? strtoull(a + 3, &end, 10) : 0;
    if (nl == NULL || want > len || end != nl ||
        (size_t)(len - (size_t)(nl + 1 - a)) != (size_t)want) {
        fprintf(stderr, "broker_ctl: the answer was cut short or malformed (%zu bytes)\n", len);
        return 2;
    }
    size_t body = (size_t)want;
    if (fwrite(nl + 1, 1, body, stdout) != body || fflush(stdout) != 0) {
        perror("broker_ctl: stdout");
        return 2;
    }
    return 0;
}

/* The command line as one line; false if too long. */
static bool build_line(char **args, int n, char *line, size_t *len)
{
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        int w = snprintf(line + off, LINE_MAX_BYTES - off, "%s%s", args[i], i + 1 < n ? " " : "\n");
        if (w < 0 || (size_t)w >= LINE_MAX_BYTES - off)
            return false;
        off += (size_t)w;
    }
    *len = off;
    return true;
}

int main(int argc, char **argv)
{
    long long timeout_ms = 5000;
    int a = 1;
    if (argc > 2 && strcmp(argv[1], "--timeout-ms") == 0) {
        char *end;
        timeout_ms = strtoll(argv[2], &end, 10);
        if (*end != '\0' || timeout_ms <= 0) {
            fprintf(stderr, "broker_ctl: bad --timeout-ms\n");
            return 2;
        }
        a = 3;
    }
    if (argc - a < 2) {
        fprintf(stderr, "usage: broker_ctl [--timeout-ms MS] CONTROL_SOCKET COMMAND [ARG]...\n");
        return 2;
    }
    /* A wait is allowed its own timeout on top. */
    if (argc - a == 5 && strcmp(argv[a + 1], "wait") == 0)
        timeout_ms += strtoll(argv[a + 4], NULL, 10) > 0 ? strtoll(argv[a + 4], NULL, 10) : 0;
    const int64_t deadline = now_ms() + timeout_ms;

    char line[LINE_MAX_BYTES];
    size_t n;
    if (!build_line(argv + a + 1, argc - a - 1, line, &n)) {
        fprintf(stderr, "broker_ctl: the command is longer than %d bytes\n", LINE_MAX_BYTES - 1);
        return 2;
    }
    int fd = unix_connect(argv[a]);
    if (fd < 0) {
        fprintf(stderr, "broker_ctl: %s: %s\n", argv[a], strerror(errno));
        return 2;
    }
    char *answer;
    size_t len;
    /* One query per connection: half-closing tells the broker we are done.
     * A broker that refuses us answers and closes before reading: a send
     * that fails with EPIPE still leaves its answer to read. */
    bool sent = send_all(fd, line, n, deadline) && shutdown(fd, SHUT_WR) == 0;
    if ((!sent && errno != EPIPE) || !receive_all(fd, &answer, &len, deadline)) {
        fprintf(stderr, "broker_ctl: %s: %s\n", argv[a],
                errno == ETIMEDOUT ? "no answer in time" : strerror(errno));
        close(fd);
        return 2;
    }
    if (close(fd) != 0)
        perror("broker_ctl: close"); /* the answer is complete: not fatal */
    int rc = print_answer(answer, len);
    free(answer);
    return rc;
}
