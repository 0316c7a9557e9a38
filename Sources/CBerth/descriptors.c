#define _GNU_SOURCE
#include "berth_sys.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

int berth_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int berth_open_current_directory(void) {
    // O_PATH: works for a directory we may search but not read.
    return open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
}

int berth_accept_nonblocking(int fd) {
    return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int berth_peer_uid(int fd, uid_t *uid) {
    struct ucred credentials;
    socklen_t length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -1;
    *uid = credentials.uid;
    return 0;
}
