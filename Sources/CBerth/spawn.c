#define _GNU_SOURCE
#include "berth_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char **environ;

// Everything below until the parent part runs in the forked child: only
// async-signal-safe calls, no allocation, no Swift.

struct spawn_failure {
    int error;
    int step;
};

static void write_all(int fd, const void *buffer, size_t length) {
    const char *bytes = buffer;
    while (length > 0) {
        ssize_t written = write(fd, bytes, length);
        if (written < 0) {
            if (errno == EINTR) continue;
            return;
        }
        bytes += written;
        length -= (size_t)written;
    }
}

static int exit_status_for(int error, int configured) {
    if (configured != 0) return configured;
    // The shell's convention: 127 when there is nothing to run, 126 when it
    // exists but cannot be executed.
    return (error == ENOENT || error == ENOTDIR) ? 127 : 126;
}

__attribute__((noreturn))
static void child_fail(int report_fd, int step, const struct berth_spawn_request *request) {
    struct spawn_failure failure = { errno, step };
    write_all(report_fd, &failure, sizeof failure);
    _exit(exit_status_for(failure.error, request->exec_failure_status));
}

static int move_fd(int from, int to) {
    if (from < 0 || from == to) return 0;
    // dup2 clears FD_CLOEXEC on the target, which is what we want here.
    return dup2(from, to) < 0 ? -1 : 0;
}

__attribute__((noreturn))
static void run_child(const struct berth_spawn_request *request, int report_fd) {
    if (move_fd(request->stdin_fd, STDIN_FILENO) < 0 ||
        move_fd(request->stdout_fd, STDOUT_FILENO) < 0 ||
        move_fd(request->stderr_fd, STDERR_FILENO) < 0) {
        child_fail(report_fd, BERTH_STEP_STDIO, request);
    }
    // After the streams move: the terminal to take is the child's stdin.
    if (request->isolation == BERTH_NEW_SESSION) {
        if (setsid() < 0) child_fail(report_fd, BERTH_STEP_ISOLATE, request);
        // Becomes the controlling terminal only if nobody else holds it.
        if (request->take_terminal) ioctl(STDIN_FILENO, TIOCSCTTY, 0);
    } else if (request->isolation == BERTH_NEW_PROCESS_GROUP) {
        if (setpgid(0, 0) < 0) child_fail(report_fd, BERTH_STEP_ISOLATE, request);
        // Done here rather than in the parent so the child never runs in the
        // background of its own terminal; SIGTTOU is still blocked here.
        if (request->take_terminal) tcsetpgrp(STDIN_FILENO, getpid());
    }
    if (request->child_note != NULL) {
        write_all(STDERR_FILENO, request->child_note, strlen(request->child_note));
    }

    // No descriptor of berth's (signalfd, epoll, pipes, sockets) leaks past exec.
    // report_fd is already close-on-exec and must stay open until exec.
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        for (int fd = 3; fd < 1024; fd++) {
            if (fd != report_fd) fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
    }

    if (request->cwd_fd >= 0 && fchdir(request->cwd_fd) < 0) {
        child_fail(report_fd, BERTH_STEP_CHDIR, request);
    }
    if (request->cwd != NULL && chdir(request->cwd) < 0) {
        child_fail(report_fd, BERTH_STEP_CHDIR, request);
    }
    if (request->set_ids) {
        if (setgroups(request->group_count, request->groups) < 0 ||
            setgid(request->gid) < 0 ||
            setuid(request->uid) < 0) {
            child_fail(report_fd, BERTH_STEP_IDENTITY, request);
        }
    }
    if (request->parent_death_signal != 0) {
        prctl(PR_SET_PDEATHSIG, request->parent_death_signal, 0, 0, 0);
    }

    berth_restore_inherited_dispositions();
    sigprocmask(SIG_SETMASK, berth_inherited_sigmask(), NULL);

    execvpe(request->file, request->argv, request->envp != NULL ? request->envp : environ);
    child_fail(report_fd, BERTH_STEP_EXEC, request);
}

int berth_spawn(const struct berth_spawn_request *request, struct berth_spawn_result *result) {
    result->pid = -1;
    result->error = 0;
    result->failed_step = BERTH_STEP_NONE;

    // The child reports a failed step through this pipe; a successful exec
    // closes it (O_CLOEXEC), so EOF means the command is running.
    int report[2];
    if (pipe2(report, O_CLOEXEC) < 0) {
        result->error = errno;
        result->failed_step = BERTH_STEP_FORK;
        return -1;
    }

    pid_t pid = fork();
    if (pid < 0) {
        result->error = errno;
        result->failed_step = BERTH_STEP_FORK;
        close(report[0]);
        close(report[1]);
        return -1;
    }
    if (pid == 0) {
        close(report[0]);
        run_child(request, report[1]);
    }

    close(report[1]);
    result->pid = pid;
    struct spawn_failure failure;
    size_t have = 0;
    while (have < sizeof failure) {
        ssize_t got = read(report[0], (char *)&failure + have, sizeof failure - have);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        have += (size_t)got;
    }
    close(report[0]);
    if (have == sizeof failure) {
        result->error = failure.error;
        result->failed_step = failure.step;
        return -1;
    }
    return 0;
}
