/* Connecting to the broker's Unix sockets: shared by the example clients
 * (broker_ctl, fake_daemon, broker_probe). */
#ifndef PORTREG_EXAMPLE_UNIX_CONNECT_H
#define PORTREG_EXAMPLE_UNIX_CONNECT_H

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* A connected SOCK_STREAM socket to path, or -1 with errno set
 * (ENAMETOOLONG for a path that does not fit sockaddr_un). */
static inline int unix_connect(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

#endif
