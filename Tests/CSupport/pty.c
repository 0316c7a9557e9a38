#define _GNU_SOURCE
#include "ctest_support.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

int ctest_open_pty(int *primary, int *replica) {
    int fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return -1;
    if (grantpt(fd) != 0 || unlockpt(fd) != 0) { close(fd); return -1; }
    const char *name = ptsname(fd);
    int peer = name ? open(name, O_RDWR | O_NOCTTY | O_CLOEXEC) : -1;
    if (peer < 0) { close(fd); return -1; }
    *primary = fd;
    *replica = peer;
    return 0;
}
