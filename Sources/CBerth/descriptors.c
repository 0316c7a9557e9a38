#define _GNU_SOURCE
#include "berth_sys.h"

#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
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

// See berth_sys.h. Reads /proc/self/smaps: a mapping qualifies when it is
// r-xp, backed by a file (inode != 0) and holds no anonymous (written,
// copy-on-write) page, so dropping its page-table entries loses nothing.
int berth_drop_code_pages(void) {
    FILE *smaps = fopen("/proc/self/smaps", "re");
    if (!smaps) return -1;
    char line[512];
    unsigned long start = 0, end = 0, inode = 0;
    char perms[8] = "";
    int dropped = 0;
    while (fgets(line, sizeof line, smaps)) {
        unsigned long a, b, offset, anonymous;
        char p[8];
        unsigned int major, minor;
        if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &a, &b, p, &offset, &major, &minor, &inode) == 7) {
            start = a;
            end = b;
            memcpy(perms, p, sizeof perms);
            continue;
        }
        if (sscanf(line, "Anonymous: %lu kB", &anonymous) == 1) {
            if (strcmp(perms, "r-xp") == 0 && inode != 0 && anonymous == 0 && end > start) {
                if (madvise((void *)start, end - start, MADV_DONTNEED) == 0) dropped++;
            }
        }
    }
    fclose(smaps);
    malloc_trim(0);
    return dropped;
}

void *berth_memmem(const void *haystack, size_t haystack_length, const void *needle, size_t needle_length) {
    return memmem(haystack, haystack_length, needle, needle_length);
}
