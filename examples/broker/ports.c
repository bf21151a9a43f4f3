/*
 * Does this port really belong to the daemon that reports it, where the
 * data plane will send its requests?
 *
 * A daemon's word is not enough: any process allowed to connect could
 * report port 22 and have the data plane send requests to sshd. The data
 * plane dials 127.0.0.1:port (DATA_PLANE_ADDR), and that is the one
 * address checked: a daemon listening on [::1]:port only is refused,
 * since any user could bind 127.0.0.1:port and receive its traffic.
 *
 * The kernel says who listens, and as which uid, through netlink
 * sock_diag: a dump of TCP sockets in state LISTEN, filtered on the port
 * (inet_diag_req_v2.id.idiag_sport), once for AF_INET and once for
 * AF_INET6. A dump of listeners never walks the established connections,
 * so its cost does not grow with the host's connections (reading
 * /proc/net/tcp did: every line, every time).
 *
 * A listener receives a connection to 127.0.0.1:port when it is bound to
 * that port and to 127.0.0.1 or 0.0.0.0 (AF_INET), or to :: without
 * IPV6_V6ONLY or ::ffff:127.0.0.1 (AF_INET6), on no device or on lo. The
 * port is accepted when at least one such listener belongs to the
 * daemon's uid and none belongs to another uid (two listeners share a
 * port only through SO_REUSEPORT, which the kernel allows within one uid
 * only, so "none of another uid" is a defence in depth).
 *
 * The answer holds when it is given; the daemon plane asks again every
 * --recheck-ms for every bound port (ports_tally(): a filtered dump per
 * port for a few ports, one dump of all listeners for many) and unbinds a
 * port that no longer passes.
 */
#include "broker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* The answer to one dump is read within this, or the query fails. */
#define DIAG_TIMEOUT_MS 1000
/* Up to this many ports are checked with a dump each, filtered on the
 * port; more with one dump of every listener. */
#define FILTERED_MAX 16

struct ports {
    int nl; /* NETLINK_SOCK_DIAG, or -1 until needed */
    uint32_t seq;
    unsigned lo_index; /* the loopback device */
    uint8_t buf[32 * 1024];
};

struct ports *ports_open(void)
{
    struct ports *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->nl = -1;
    p->lo_index = if_nametoindex("lo");
    return p;
}

void ports_close(struct ports *p)
{
    if (p == NULL)
        return;
    close_fd(p->nl, "ports");
    free(p);
}

static int diag_socket(struct ports *p)
{
    if (p->nl >= 0)
        return 0;
    p->nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    struct timeval tv = {.tv_sec = DIAG_TIMEOUT_MS / 1000,
                         .tv_usec = (DIAG_TIMEOUT_MS % 1000) * 1000};
    if (p->nl < 0 || setsockopt(p->nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
        close_fd(p->nl, "ports");
        p->nl = -1;
        return -1;
    }
    return 0;
}

/* Whether l receives connections to DATA_PLANE_ADDR:its port. */
static bool receives_dialled(const struct ports *p, const struct inet_diag_msg *m, bool v6only)
{
    if (m->id.idiag_if != 0 && m->id.idiag_if != p->lo_index)
        return false;
    const uint32_t *a = m->id.idiag_src; /* network byte order */
    if (m->idiag_family == AF_INET)
        return a[0] == htonl(INADDR_LOOPBACK) || a[0] == htonl(INADDR_ANY);
    bool zero64 = a[0] == 0 && a[1] == 0;
    return (zero64 && a[2] == 0 && a[3] == 0 && !v6only) ||
           (zero64 && a[2] == htonl(0xffff) && a[3] == htonl(INADDR_LOOPBACK));
}

/* Adds one listener to the claims on its port (sorted by port). */
static void tally_one(const struct ports *p, const struct inet_diag_msg *m, bool v6only,
                      struct port_claim *claims, size_t n)
{
    uint16_t port = ntohs(m->id.idiag_sport);
    if (!receives_dialled(p, m, v6only))
        return;
    size_t lo = 0, hi = n; /* the first claim with claim.port >= port */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (claims[mid].port < port)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < n && claims[i].port == port; i++) {
        if ((uid_t)m->idiag_uid == claims[i].uid) {
            claims[i].mine++;
        } else {
            claims[i].others++;
            claims[i].other_uid = (uid_t)m->idiag_uid;
        }
    }
}

/* One dump of one family's TCP listeners (on port, or all: 0), tallied
 * into claims. 0, or -1 with the reason in why. */
static int dump_family(struct ports *p, int family, uint16_t port, struct port_claim *claims,
                       size_t n, char *why, size_t why_len)
{
    struct {
        struct nlmsghdr nh;
        struct inet_diag_req_v2 req;
    } msg = {
        .nh = {.nlmsg_len = sizeof msg,
               .nlmsg_type = SOCK_DIAG_BY_FAMILY,
               .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
               .nlmsg_seq = ++p->seq},
        .req = {.sdiag_family = (uint8_t)family,
                .sdiag_protocol = IPPROTO_TCP,
                .idiag_states = 1u << TCP_LISTEN,
                .id.idiag_sport = htons(port)},
    };
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (diag_socket(p) != 0 || sendto(p->nl, &msg, sizeof msg, 0, (struct sockaddr *)&kernel,
                                      sizeof kernel) != (ssize_t)sizeof msg) {
        snprintf(why, why_len, "sock_diag: %s", strerror(errno));
        goto fail;
    }
    for (;;) {
        ssize_t len = recv(p->nl, p->buf, sizeof p->buf, 0);
        if (len < 0 && errno == EINTR)
            continue;
        if (len <= 0) {
            snprintf(why, why_len, "sock_diag: %s", len < 0 ? strerror(errno) : "no answer");
            goto fail;
        }
        for (struct nlmsghdr *h = (struct nlmsghdr *)p->buf; NLMSG_OK(h, len);
             h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_seq != p->seq)
                continue; /* left over from a query that failed */
            if (h->nlmsg_type == NLMSG_DONE)
                return 0;
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);
                /* No IPv6 in this kernel: nothing listens there. */
                if (family == AF_INET6 && (e->error == -ENOENT || e->error == -EAFNOSUPPORT))
                    return 0;
                snprintf(why, why_len, "sock_diag: %s", strerror(-e->error));
                goto fail;
            }
            if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
                h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
                continue;
            const struct inet_diag_msg *m = NLMSG_DATA(h);
            bool v6only = false;
            int alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof *m));
            for (const struct rtattr *at = (const struct rtattr *)(m + 1); RTA_OK(at, alen);
                 at = RTA_NEXT(at, alen))
                if (at->rta_type == INET_DIAG_SKV6ONLY && RTA_PAYLOAD(at) >= 1)
                    v6only = *(const uint8_t *)RTA_DATA(at) != 0;
            if (m->idiag_state == TCP_LISTEN && (port == 0 || ntohs(m->id.idiag_sport) == port))
                tally_one(p, m, v6only, claims, n);
        }
    }
fail:
    /* A half-read answer would confuse the next query: start afresh. */
    close_fd(p->nl, "ports");
    p->nl = -1;
    return -1;
}

static int claim_cmp(const void *a, const void *b)
{
    const struct port_claim *x = a, *y = b;
    return (x->port > y->port) - (x->port < y->port);
}

int ports_tally(struct ports *p, struct port_claim *claims, size_t n, char *why, size_t why_len)
{
    for (size_t i = 0; i < n; i++)
        claims[i].mine = claims[i].others = 0;
    qsort(claims, n, sizeof *claims, claim_cmp);
    /* A few ports: one filtered dump each, in which the kernel skips the
     * other listeners without describing them; more: one dump of all. */
    bool each = n <= FILTERED_MAX;
    for (size_t i = 0; i < n; i++) {
        if (each && i > 0 && claims[i].port == claims[i - 1].port)
            continue;
        uint16_t port = each ? claims[i].port : 0;
        if (dump_family(p, AF_INET, port, claims, n, why, why_len) != 0 ||
            dump_family(p, AF_INET6, port, claims, n, why, why_len) != 0)
            return -1;
        if (!each)
            break;
    }
    return 0;
}

int claim_verdict(const struct port_claim *c, char *why, size_t why_len)
{
    if (c->others > 0) {
        snprintf(why, why_len, "port %u listens as uid %u, not %u", c->port, (unsigned)c->other_uid,
                 (unsigned)c->uid);
        return -1;
    }
    if (c->mine == 0) {
        snprintf(why, why_len, "nothing listens on %s:%u", DATA_PLANE_ADDR, c->port);
        return -1;
    }
    return 0;
}

int port_owned_by(struct ports *p, uint16_t port, uid_t uid, char *why, size_t why_len)
{
    struct port_claim c = {.port = port, .uid = uid};
    if (ports_tally(p, &c, 1, why, why_len) != 0)
        return -1;
    return claim_verdict(&c, why, why_len);
}
