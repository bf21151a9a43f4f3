/* Error messages and version queries. */
#include "internal.h"

#define STR_(x) #x
#define STR(x)  STR_(x)

unsigned portreg_version(void)
{
    return PORTREG_VERSION_HEX;
}

const char *portreg_version_string(void)
{
    return STR(PORTREG_VERSION_MAJOR) "." STR(PORTREG_VERSION_MINOR) "." STR(PORTREG_VERSION_PATCH);
}

/* Both expand the header's one list of codes, so they cannot drift from
 * the constants; a duplicate value would be a duplicate case label. */
const char *portreg_strerror(int code)
{
    switch (code) {
#define XX(name, value, message)                                                                   \
    case name:                                                                                     \
        return message;
        PORTREG_ERRNO_MAP(XX)
#undef XX
    }
    return "unknown error code";
}

const char *portreg_err_name(int code)
{
    switch (code) {
#define XX(name, value, message)                                                                   \
    case name:                                                                                     \
        return #name;
        PORTREG_ERRNO_MAP(XX)
#undef XX
    }
    return "PORTREG_UNKNOWN";
}

static _Thread_local int last_errno;

int portreg_last_errno(void)
{
    return last_errno;
}

/* Records err for portreg_last_errno() and returns PORTREG_ESYSTEM. */
int portreg__system_error(int err)
{
    last_errno = err;
    return PORTREG_ESYSTEM;
}
