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
 * The kernel says which socket would receive that connection, and as
 * which uid, through netlink sock_diag: one request WITHOUT NLM_F_DUMP
 * naming the connection (local 127.0.0.1:port, remote 127.0.0.1:0, on lo,
 * no cookie) makes the kernel do the lookup an incoming SYN does, and
 * answer with that one socket or ENOENT. It is a hash lookup: its cost
 * does not grow with the host's connections or listeners. A dump, even
 * filtered on the port, walks every TCP listener of every network
 * namespace, and any user can create hundreds of thousands of those in a
 * namespace of its own: that made every check slow.
 *
 * The socket found is what the data plane's connection would reach:
 * a listener on 127.0.0.1 or 0.0.0.0, or on :: without IPV6_V6ONLY, and
 * the one the kernel picks within a SO_REUSEPORT group (whose members
 * share one uid: the kernel allows no other). The port is accepted when
 * that socket listens and belongs to the daemon's uid.
 *
 * The answer holds when it is given; the daemon plane asks again every
 * --recheck-ms for every bound port (ports_tally(): one lookup per port)
 * and unbinds a port that no longer passes.
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

/* The answer to one lookup is read within this, or the query fails. */
#define DIAG_TIMEOUT_MS 1000

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

/* Looks up the socket that would receive a connection to
 * DATA_PLANE_ADDR:c->port and counts it in c. 0, or -1 with the reason in
 * why. */
static int lookup_one(struct ports *p, struct port_claim *c, char *why, size_t why_len)
{
    struct {
        struct nlmsghdr nh;
        struct inet_diag_req_v2 req;
    } msg = {
        .nh = {.nlmsg_len = sizeof msg,
               .nlmsg_type = SOCK_DIAG_BY_FAMILY,
               .nlmsg_flags = NLM_F_REQUEST, /* no NLM_F_DUMP: one lookup */
               .nlmsg_seq = ++p->seq},
        .req = {.sdiag_family = AF_INET,
                .sdiag_protocol = IPPROTO_TCP,
                .idiag_states = ~0u,
                .id = {.idiag_sport = htons(c->port),
                       .idiag_dport = 0,
                       .idiag_src = {htonl(INADDR_LOOPBACK)},
                       .idiag_dst = {htonl(INADDR_LOOPBACK)},
                       .idiag_if = p->lo_index,
                       .idiag_cookie = {INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE}}},
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
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);
                if (e->error == -ENOENT)
                    return 0; /* nobody would receive the connection */
                snprintf(why, why_len, "sock_diag: %s", strerror(-e->error));
                goto fail;
            }
            if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
                h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
                continue;
            const struct inet_diag_msg *m = NLMSG_DATA(h);
            if (m->idiag_state != TCP_LISTEN)
                return 0; /* not a listener: the connection would be refused */
            if ((uid_t)m->idiag_uid == c->uid) {
                c->mine++;
            } else {
                c->others++;
                c->other_uid = (uid_t)m->idiag_uid;
            }
            return 0;
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
    if (x->port != y->port)
        return (x->port > y->port) - (x->port < y->port);
    return (x->uid > y->uid) - (x->uid < y->uid);
}

int ports_tally(struct ports *p, struct port_claim *claims, size_t n, char *why, size_t why_len)
{
    for (size_t i = 0; i < n; i++)
        claims[i].mine = claims[i].others = 0;
    qsort(claims, n, sizeof *claims, claim_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && claims[i].port == claims[i - 1].port && claims[i].uid == claims[i - 1].uid) {
            claims[i].mine = claims[i - 1].mine;
            claims[i].others = claims[i - 1].others;
            claims[i].other_uid = claims[i - 1].other_uid;
            continue; /* the same question: the same answer */
        }
        if (lookup_one(p, &claims[i], why, why_len) != 0)
            return -1;
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
