/*
 * broker_ctl: sends one query to the broker's control socket and prints the
 * answer.
 *
 * usage: broker_ctl CONTROL_SOCKET COMMAND [ARG]...
 *   status                        every tracked backend, sorted by id:
 *                                 "id status port version", one a line
 *   get ID                        one backend, same format (untracked too)
 *   lookup ID                     what the data plane sees: a port, or "miss"
 *   wait ID STATUS TIMEOUT_MS     blocks until ID is untracked|pending|bound
 *   stats                         lookups, hits, changes, tracked
 * Ids are written with \xHH for bytes that are not printable ASCII.
 *
 * Exit status: 0 with the answer on stdout; 1 when the broker answered
 * "error: ..." (a timed-out wait, a bad command), printed on stderr; 2 when
 * the broker could not be reached.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static bool write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: broker_ctl CONTROL_SOCKET COMMAND [ARG]...\n");
        return 2;
    }
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(argv[1]) >= sizeof addr.sun_path) {
        fprintf(stderr, "broker_ctl: socket path too long\n");
        return 2;
    }
    strcpy(addr.sun_path, argv[1]);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        fprintf(stderr, "broker_ctl: %s: %s\n", argv[1], strerror(errno));
        return 2;
    }

    char line[1024];
    size_t n = 0;
    for (int i = 2; i < argc; i++) {
        int w = snprintf(line + n, sizeof line - n, "%s%s", argv[i], i + 1 < argc ? " " : "\n");
        if (w < 0 || (size_t)w >= sizeof line - n) {
            fprintf(stderr, "broker_ctl: command too long\n");
            return 2;
        }
        n += (size_t)w;
    }
    /* One query per connection: half-closing tells the broker we are done. */
    if (!write_all(fd, line, n) || shutdown(fd, SHUT_WR) != 0) {
        fprintf(stderr, "broker_ctl: send: %s\n", strerror(errno));
        return 2;
    }

    /* The answer is short; keep it whole to decide where it goes. */
    char answer[64 * 1024];
    size_t have = 0;
    ssize_t r;
    while (have < sizeof answer && (r = read(fd, answer + have, sizeof answer - have)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fprintf(stderr, "broker_ctl: receive: %s\n", strerror(errno));
            return 2;
        }
        have += (size_t)r;
    }
    close(fd);
    bool error = have >= 6 && memcmp(answer, "error:", 6) == 0;
    fwrite(answer, 1, have, error ? stderr : stdout);
    return error ? 1 : 0;
}
