/* Small helpers shared by the broker's parts: time, ids as text, parsers. */
#include "broker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t now_ns(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail with a valid pointer; checked anyway. */
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        abort();
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t earliest(int64_t a, int64_t b)
{
    return a == 0 ? b : b == 0 ? a : a < b ? a : b;
}

int poll_timeout_ms(int64_t now, int64_t deadline)
{
    const int64_t ms = 1000000;
    if (deadline == 0)
        return -1;
    if (deadline <= now)
        return 0;
    int64_t left = (deadline - now + ms - 1) / ms;
    return left > 3600 * 1000 ? 3600 * 1000 : (int)left;
}

const char *status_name(portreg_status_t s)
{
    switch (s) {
    case PORTREG_UNTRACKED:
        return "untracked";
    case PORTREG_PENDING:
        return "pending";
    case PORTREG_BOUND:
        return "bound";
    }
    return "?";
}

bool parse_status(const char *s, portreg_status_t *out)
{
    for (int i = PORTREG_UNTRACKED; i <= PORTREG_BOUND; i++) {
        if (strcmp(s, status_name((portreg_status_t)i)) == 0) {
            *out = (portreg_status_t)i;
            return true;
        }
    }
    return false;
}

/* Ids are arbitrary bytes; as text, anything but printable ASCII (and the
 * backslash itself) becomes \xHH so that one id is always one token. */
/* Appends byte c as text: itself, or \xHH; returns the new end. */
static char *put_id_byte(char *p, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    if (c > ' ' && c < 0x7f && c != '\\') {
        *p++ = (char)c;
    } else {
        *p++ = '\\';
        *p++ = 'x';
        *p++ = hex[c >> 4];
        *p++ = hex[c & 15];
    }
    return p;
}

const char *id_text(const char *id, size_t len, char out[ID_TEXT_MAX])
{
    char *p = out;
    for (size_t i = 0; i < len && i < PORTREG_ID_MAX; i++)
        p = put_id_byte(p, (unsigned char)id[i]);
    *p = '\0';
    return out;
}

const char *id_log_text(const char *id, size_t len, char out[ID_LOG_MAX])
{
    char *p = out;
    size_t i = 0;
    for (; i < len && i < PORTREG_ID_MAX; i++) {
        unsigned char c = (unsigned char)id[i];
        size_t need = c > ' ' && c < 0x7f && c != '\\' ? 1 : 4;
        if ((size_t)(p - out) + need > ID_LOG_KEEP)
            break;
        p = put_id_byte(p, c);
    }
    if (i < len)
        snprintf(p, ID_LOG_MAX - (size_t)(p - out), "...(%zu bytes)", len);
    else
        *p = '\0';
    return out;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The inverse of id_text(). False if tok is not a valid id. */
bool id_parse(const char *tok, char out[PORTREG_ID_MAX], size_t *len)
{
    size_t n = 0;
    while (*tok != '\0') {
        if (n == PORTREG_ID_MAX)
            return false;
        if (tok[0] == '\\') {
            int hi = tok[1] == 'x' ? hex_digit(tok[2]) : -1;
            int lo = hi >= 0 ? hex_digit(tok[3]) : -1;
            if (lo < 0)
                return false;
            out[n++] = (char)(hi << 4 | lo);
            tok += 4;
        } else {
            out[n++] = *tok++;
        }
    }
    *len = n;
    return n > 0;
}

bool parse_ulong(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || *s == '-' || v > max)
        return false;
    *out = v;
    return true;
}

bool uid_allowed(const struct broker_config *cfg, uid_t uid)
{
    for (size_t i = 0; i < cfg->nallowed; i++)
        if (cfg->allowed_uids[i] == uid)
            return true;
    return false;
}

const struct route *route_of(const struct broker_config *cfg, const void *id, size_t len)
{
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (cfg->routes[i].len == len && memcmp(cfg->routes[i].id, id, len) == 0)
            return &cfg->routes[i];
    return NULL;
}
