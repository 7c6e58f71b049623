/*
 * The service manager's notify protocol (systemd Type=notify), without libsystemd: one datagram
 * of newline-separated VAR=value assignments sent to the unix socket named by $NOTIFY_SOCKET
 * (a path, or "@name" for the abstract namespace). A message the receiver has no room for is
 * dropped (-EAGAIN), never waited for.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ops.h"

int cm_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || path[0] == '\0')
        return 1;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t plen = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || plen >= sizeof sa.sun_path)
        return -EINVAL;
    memcpy(sa.sun_path, path, plen);
    if (path[0] == '@')
        sa.sun_path[0] = '\0';
    socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* Never wait: a supervisor that stops reading must not stall the loop that sends this. */
    ssize_t rc =
        sendto(fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa, sl);
    int e = errno;
    close(fd);
    return rc < 0 ? -e : 0;
}
