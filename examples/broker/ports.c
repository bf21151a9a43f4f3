/*
 * Does this port really belong to the daemon that reports it?
 *
 * A daemon's word is not enough: any process allowed to connect could
 * report port 22 and have the data plane send requests to sshd. Linux
 * lists every TCP socket of the broker's network namespace in
 * /proc/net/tcp and /proc/net/tcp6, one line each:
 *
 *   sl local_address rem_address st ... uid ...
 *    0: 0100007F:1F90 00000000:0000 0A ... 1000 ...
 *
 * local_address is the address as the kernel stores it (network byte
 * order) printed as native 32-bit hex words, then ':' and the port in hex;
 * st 0A is LISTEN. A port is accepted when at least one listening socket
 * that receives connections to 127.0.0.1:port or [::1]:port (bound there
 * or to the wildcard address) belongs to the daemon's uid and none belongs
 * to another uid, so a request to 127.0.0.1:port reaches the daemon's
 * user and nobody else.
 */
#include "broker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define TCP_LISTEN 0x0A

struct listeners {
    uint16_t port;
    uid_t uid;
    unsigned mine, others;
    uid_t other_uid;
};

/* True if the kernel's hex words describe an address that 127.0.0.1 (or
 * ::1) traffic reaches: loopback itself, the wildcard, or (IPv6) the
 * v4-mapped loopback. */
static bool reaches_loopback(const char *hex, size_t words)
{
    uint32_t w[4];
    for (size_t i = 0; i < words; i++)
        if (sscanf(hex + 8 * i, "%8" SCNx32, &w[i]) != 1)
            return false;
    if (words == 1)
        return w[0] == htonl(INADDR_LOOPBACK) || w[0] == htonl(INADDR_ANY);
    bool zero64 = w[0] == 0 && w[1] == 0;
    return (zero64 && w[2] == 0 && (w[3] == 0 || w[3] == htonl(1))) ||
           (zero64 && w[2] == htonl(0xffff) && w[3] == htonl(INADDR_LOOPBACK));
}

/* Counts the listeners on l->port in one /proc/net file. */
static int scan(const char *path, size_t words, struct listeners *l, char *why, size_t why_len)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        /* No IPv6 in this kernel: nothing can listen there. */
        if (errno == ENOENT && words == 4)
            return 0;
        snprintf(why, why_len, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    char line[512];
    if (fgets(line, sizeof line, f) == NULL) /* the header */
        line[0] = '\0';
    while (fgets(line, sizeof line, f) != NULL) {
        char addr[33];
        unsigned port, state;
        unsigned long uid;
        /* sl local rem st tx:rx tr:when retrnsmt uid */
        if (sscanf(line, " %*s %32[0-9A-Fa-f]:%x %*s %x %*s %*s %*s %lu", addr, &port, &state,
                   &uid) != 4)
            continue;
        if (state != TCP_LISTEN || port != l->port || strlen(addr) != 8 * words ||
            !reaches_loopback(addr, words))
            continue;
        if ((uid_t)uid == l->uid) {
            l->mine++;
        } else {
            l->others++;
            l->other_uid = (uid_t)uid;
        }
    }
    bool failed = ferror(f) != 0;
    failed |= fclose(f) != 0;
    if (failed) {
        snprintf(why, why_len, "error reading %s", path);
        return -1;
    }
    return 0;
}

int port_owned_by(uint16_t port, uid_t uid, char *why, size_t why_len)
{
    struct listeners l = {.port = port, .uid = uid};
    if (scan("/proc/net/tcp", 1, &l, why, why_len) != 0 ||
        scan("/proc/net/tcp6", 4, &l, why, why_len) != 0)
        return -1;
    if (l.others > 0) {
        snprintf(why, why_len, "port %u listens as uid %u, not %u", port, (unsigned)l.other_uid,
                 (unsigned)uid);
        return -1;
    }
    if (l.mine == 0) {
        snprintf(why, why_len, "nothing listens on 127.0.0.1:%u or [::1]:%u", port, port);
        return -1;
    }
    return 0;
}
