/*
 * fake_daemon: a stand-in for a backend daemon, for the broker example.
 *
 * It does what a real one does, minus the real work:
 *   1. listens on 127.0.0.1:0 (its "HTTP status server") and prints
 *      "listening id=ID port=PORT";
 *   2. connects to the broker and sends a hello frame whose body is its id;
 *   3. with --step, waits for a line on stdin (so a script can observe the
 *      pending state), then sends BackendHttpReady{port} and prints
 *      "reported port=PORT";
 *   4. serves a one-line HTTP answer on its port, and runs until stdin
 *      reaches end of file (exit 0), the broker hangs up (exit 1), or a
 *      signal ends it.
 * Every line is printed before the step it announces, so whoever learns of
 * the step from the broker can already read the line.
 *
 * usage: fake_daemon --socket PATH --id ID [--step] [--frame-version N]
 *   --frame-version N  frame the hello with version N, to show the broker
 *                      dropping a daemon that speaks another protocol
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "unix_connect.h"

#include "portreg.h"

static bool send_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n > 0) {
        /* MSG_NOSIGNAL: a broker that went away is an error, not a kill. */
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* [u8 version][u32 little-endian length][body], as the frame reader wants. */
static bool send_frame(int fd, uint8_t version, const void *body, uint32_t len)
{
    uint8_t header[PORTREG_FRAME_HEADER_SIZE] = {version, (uint8_t)len, (uint8_t)(len >> 8),
                                                 (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
    return send_all(fd, header, sizeof header) && send_all(fd, body, len);
}

static int http_listen(uint16_t *port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        perror("fake_daemon: http listener");
        return -1;
    }
    *port = ntohs(addr.sin_port);
    return fd;
}

static int broker_connect(const char *path)
{
    int fd = unix_connect(path);
    if (fd < 0)
        fprintf(stderr, "fake_daemon: %s: %s\n", path, strerror(errno));
    return fd;
}

/* Answers one HTTP request, whatever it asked, so that a script can check
 * that the port the broker hands out really leads to this daemon. */
static void http_serve(int listen_fd, const char *id, uint16_t port)
{
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    /* A silent or slow client costs us a second at most. */
    struct timeval tv = {.tv_sec = 1};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
        perror("fake_daemon: SO_RCVTIMEO");
        close(fd);
        return;
    }
    /* Read up to the blank line that ends the request: closing with
     * unread bytes would make the kernel reset the connection, and the
     * client could lose our answer. */
    char req[2048];
    size_t have = 0;
    ssize_t r;
    while (have < sizeof req - 1 && (r = read(fd, req + have, sizeof req - 1 - have)) > 0) {
        have += (size_t)r;
        req[have] = '\0';
        if (strstr(req, "\r\n\r\n") != NULL || strstr(req, "\n\n") != NULL)
            break;
    }
    char resp[512];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
                     "%s is up on port %u\n",
                     id, port);
    /* Tell the client we are done, and let it close first. A client that
     * left early is its own problem: nothing to do but close. */
    if (send_all(fd, resp, (size_t)n) && shutdown(fd, SHUT_WR) == 0)
        while (read(fd, req, sizeof req) > 0)
            ;
    if (close(fd) != 0)
        perror("fake_daemon: close");
}

/* Blocks until a whole line (or end of file) arrives on stdin. */
static bool read_line(void)
{
    char c;
    ssize_t r;
    while ((r = read(STDIN_FILENO, &c, 1)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return false;
        if (c == '\n')
            return true;
    }
    return false;
}

/* Serves HTTP until stdin closes (0) or the broker hangs up (1). */
static int serve(int broker_fd, int http_fd, const char *id, uint16_t port)
{
    struct pollfd pfd[3] = {{.fd = STDIN_FILENO, .events = POLLIN},
                            {.fd = broker_fd, .events = POLLIN},
                            {.fd = http_fd, .events = POLLIN}};
    for (;;) {
        if (poll(pfd, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("fake_daemon: poll");
            return 1;
        }
        /* The broker sends nothing, so readable means it hung up. Checked
         * before stdin so that the exit status says which came first. */
        if (pfd[1].revents != 0) {
            printf("the broker closed the connection\n");
            return 1;
        }
        if (pfd[2].revents != 0)
            http_serve(http_fd, id, port);
        if (pfd[0].revents != 0) {
            char buf[256];
            ssize_t r = read(STDIN_FILENO, buf, sizeof buf);
            if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
                printf("stdin closed; exiting\n");
                return 0;
            }
        }
    }
}

int main(int argc, char **argv)
{
    const char *socket_path = NULL, *id = NULL;
    bool step = false;
    unsigned long frame_version = PORTREG_FRAME_VERSION;
    static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
                                         {"id", required_argument, NULL, 'i'},
                                         {"step", no_argument, NULL, 'S'},
                                         {"frame-version", required_argument, NULL, 'v'},
                                         {NULL, 0, NULL, 0}};
    for (int o; (o = getopt_long(argc, argv, "s:i:Sv:", opts, NULL)) != -1;) {
        switch (o) {
        case 's':
            socket_path = optarg;
            break;
        case 'i':
            id = optarg;
            break;
        case 'S':
            step = true;
            break;
        case 'v':
            frame_version = strtoul(optarg, NULL, 10);
            break;
        default:
            return 2;
        }
    }
    if (socket_path == NULL || id == NULL || *id == '\0' || strlen(id) > PORTREG_ID_MAX ||
        frame_version > 255 || optind != argc) {
        fprintf(stderr, "usage: fake_daemon --socket PATH --id ID [--step] [--frame-version N]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    uint16_t port;
    int http_fd = http_listen(&port);
    if (http_fd < 0)
        return 1;
    printf("listening id=%s port=%u\n", id, port);

    int broker_fd = broker_connect(socket_path);
    if (broker_fd < 0 || !send_frame(broker_fd, (uint8_t)frame_version, id, (uint32_t)strlen(id))) {
        fprintf(stderr, "fake_daemon %s: hello: %s\n", id, strerror(errno));
        return 1;
    }
    printf("hello sent id=%s\n", id);

    if (step && !read_line()) {
        printf("stdin closed before the port was reported\n");
        return 0;
    }
    uint8_t body[PORTREG_READY_MAX_SIZE];
    int len = portreg_encode_ready(port, body, sizeof body);
    if (len < 0) {
        fprintf(stderr, "fake_daemon: encode: %s\n", portreg_strerror(len));
        return 1;
    }
    printf("reported port=%u\n", port);
    /* A broker that dropped us already is noticed by poll() in serve(). */
    if (!send_frame(broker_fd, PORTREG_FRAME_VERSION, body, (uint32_t)len))
        fprintf(stderr, "fake_daemon %s: report: %s\n", id, strerror(errno));

    return serve(broker_fd, http_fd, id, port);
}
