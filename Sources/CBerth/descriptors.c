#define _GNU_SOURCE
#include "berth_sys.h"

#include <fcntl.h>
#include <unistd.h>

int berth_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int berth_open_current_directory(void) {
    // O_PATH: works for a directory we may search but not read.
    return open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
}
