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

static const struct {
    int code;
    const char *name;
    const char *msg;
} errors[] = {
    {0, "PORTREG_OK", "success"},
    {PORTREG_EINVAL, "PORTREG_EINVAL", "invalid argument"},
    {PORTREG_ENOMEM, "PORTREG_ENOMEM", "out of memory; nothing changed"},
    {PORTREG_EDECODE, "PORTREG_EDECODE", "frame body is not a valid BackendHttpReady"},
    {PORTREG_ERANGE, "PORTREG_ERANGE", "port out of range (must be 1..65535)"},
    {PORTREG_ECONFLICT, "PORTREG_ECONFLICT", "version did not match; nothing changed"},
    {PORTREG_ETIMEDOUT, "PORTREG_ETIMEDOUT", "timed out waiting for a change"},
    {PORTREG_EVERSION, "PORTREG_EVERSION", "unsupported framing version"},
    {PORTREG_ETOOLARGE, "PORTREG_ETOOLARGE", "frame body larger than the limit"},
    {PORTREG_ETRUNCATED, "PORTREG_ETRUNCATED", "stream ended inside a frame"},
    {PORTREG_ESYSTEM, "PORTREG_ESYSTEM", "system call failed (see portreg_last_errno())"},
    {PORTREG_EFULL, "PORTREG_EFULL", "the registry holds max_ids ids; nothing changed"},
};

const char *portreg_strerror(int code)
{
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        if (errors[i].code == code)
            return errors[i].msg;
    return "unknown error code";
}

const char *portreg_err_name(int code)
{
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        if (errors[i].code == code)
            return errors[i].name;
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
