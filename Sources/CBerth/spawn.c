#define _GNU_SOURCE
#include "berth_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char **environ;

// The child is started with clone(CLONE_VM | CLONE_VFORK), as glibc's
// posix_spawn does: it borrows berth's memory until exec, so no page table is
// copied and no page is copied-on-write afterwards (fork made every start
// cost ~2 ms more). Until exec it runs on its own stack, touches berth's
// memory only to report a failure, and makes raw system calls (glibc's
// setuid and friends would try to signal berth's threads) except for
// sigaction/sigprocmask, whose wrappers only convert their arguments.

struct child_context {
    const struct berth_spawn_request *request;
    volatile int error;
    volatile int step;
};

static int exit_status_for(int error, int configured) {
    if (configured != 0) return configured;
    // The shell's convention: 127 when there is nothing to run, 126 when it
    // exists but cannot be executed.
    return (error == ENOENT || error == ENOTDIR) ? 127 : 126;
}

__attribute__((noreturn))
static void child_fail(struct child_context *context, int step, int error) {
    context->error = error;
    context->step = step;
    syscall(SYS_exit, exit_status_for(error, context->request->exec_failure_status));
    __builtin_unreachable();
}

static void write_all(int fd, const char *bytes, size_t length) {
    while (length > 0) {
        ssize_t written = syscall(SYS_write, fd, bytes, length);
        if (written < 0) {
            if (errno == EINTR) continue;
            return;
        }
        bytes += written;
        length -= (size_t)written;
    }
}

static int move_fd(int from, int to) {
    if (from < 0 || from == to) return 0;
    // dup2 clears FD_CLOEXEC on the target, which is what we want here.
    return syscall(SYS_dup2, from, to) < 0 ? -1 : 0;
}

// execve, or for a script without #! the shell, as execvp does.
static void exec_file(const char *path, char *const argv[], char *const envp[]) {
    syscall(SYS_execve, path, argv, envp);
    if (errno != ENOEXEC) return;
    size_t count = 0;
    while (argv[count] != NULL) count++;
    char *shell_argv[count + 2];
    shell_argv[0] = (char *)"/bin/sh";
    shell_argv[1] = (char *)path;
    for (size_t i = 1; i <= count; i++) shell_argv[i + 1] = argv[i];
    syscall(SYS_execve, "/bin/sh", shell_argv, envp);
    errno = ENOEXEC;
}

// PATH search with a buffer on the stack: no allocation in the child.
static int exec_searching_path(const char *file, char *const argv[], char *const envp[]) {
    if (strchr(file, '/') != NULL) {
        exec_file(file, argv, envp);
        return errno;
    }
    const char *path = getenv("PATH");
    if (path == NULL) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    size_t file_length = strlen(file);
    int saw_permission_error = 0;
    char candidate[4096];
    for (const char *start = path;; ) {
        const char *end = strchrnul(start, ':');
        size_t dir_length = (size_t)(end - start);
        if (dir_length + 1 + file_length + 1 <= sizeof candidate) {
            memcpy(candidate, start, dir_length);
            size_t at = dir_length;
            if (dir_length == 0) candidate[at++] = '.';  // empty entry: current directory
            candidate[at++] = '/';
            memcpy(candidate + at, file, file_length + 1);
            exec_file(candidate, argv, envp);
            switch (errno) {
                case EACCES: saw_permission_error = 1; break;
                case ENOENT: case ENOTDIR: case ESTALE: case ENODEV: case ETIMEDOUT: break;
                default: return errno;
            }
        }
        if (*end == '\0') break;
        start = end + 1;
    }
    return saw_permission_error ? EACCES : ENOENT;
}

// After setuid with PR_SET_KEEPCAPS the permitted set survives but the
// effective one is empty: narrow both to `mask`, make it inheritable and
// raise it as ambient, the only way capabilities outlive exec of a plain file.
static int keep_ambient(unsigned long long mask) {
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    for (int word = 0; word < 2; word++) {
        __u32 bits = (__u32)(mask >> (32 * word));
        data[word].effective = bits;
        data[word].permitted = bits;
        data[word].inheritable = bits;
    }
    if (syscall(SYS_capset, &header, data) < 0) return -1;
    for (int cap = 0; cap < 64; cap++) {
        if ((mask >> cap) & 1ULL) {
            if (syscall(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0) return -1;
        }
    }
    return 0;
}

unsigned long long berth_permitted_capabilities(void) {
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &header, data) < 0) return 0;
    return (unsigned long long)data[0].permitted | ((unsigned long long)data[1].permitted << 32);
}

static int run_child(void *argument) {
    struct child_context *context = argument;
    const struct berth_spawn_request *request = context->request;

    if (move_fd(request->stdin_fd, STDIN_FILENO) < 0 ||
        move_fd(request->stdout_fd, STDOUT_FILENO) < 0 ||
        move_fd(request->stderr_fd, STDERR_FILENO) < 0) {
        child_fail(context, BERTH_STEP_STDIO, errno);
    }
    // After the streams move: the terminal to take is the child's stdin.
    if (request->isolation == BERTH_NEW_SESSION) {
        if (syscall(SYS_setsid) < 0) child_fail(context, BERTH_STEP_ISOLATE, errno);
        // Becomes the controlling terminal only if nobody else holds it.
        if (request->take_terminal) syscall(SYS_ioctl, STDIN_FILENO, TIOCSCTTY, 0);
    } else if (request->isolation == BERTH_NEW_PROCESS_GROUP) {
        if (syscall(SYS_setpgid, 0, 0) < 0) child_fail(context, BERTH_STEP_ISOLATE, errno);
        // Done here rather than in the parent so the child never runs in the
        // background of its own terminal; SIGTTOU is still blocked here.
        if (request->take_terminal) {
            pid_t self = (pid_t)syscall(SYS_getpid);
            syscall(SYS_ioctl, STDIN_FILENO, TIOCSPGRP, &self);
        }
    }
    if (request->child_note != NULL) {
        write_all(STDERR_FILENO, request->child_note, strlen(request->child_note));
    }

    // No descriptor of berth's (signalfd, epoll, pipes, sockets) leaks past exec.
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        for (int fd = 3; fd < 1024; fd++) syscall(SYS_fcntl, fd, F_SETFD, FD_CLOEXEC);
    }

    if (request->cwd_fd >= 0 && syscall(SYS_fchdir, request->cwd_fd) < 0) {
        child_fail(context, BERTH_STEP_CHDIR, errno);
    }
    if (request->set_ids) {
        if (syscall(SYS_setgroups, request->group_count, request->groups) < 0 ||
            syscall(SYS_setgid, request->gid) < 0) {
            child_fail(context, BERTH_STEP_IDENTITY, errno);
        }
        if (request->ambient_capabilities != 0 &&
            syscall(SYS_prctl, PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) {
            child_fail(context, BERTH_STEP_IDENTITY, errno);
        }
        if (syscall(SYS_setuid, request->uid) < 0) child_fail(context, BERTH_STEP_IDENTITY, errno);
        if (request->ambient_capabilities != 0 && keep_ambient(request->ambient_capabilities) < 0) {
            child_fail(context, BERTH_STEP_IDENTITY, errno);
        }
    }
    // After the change of identity: a directory the new user may not enter
    // fails here as it would for them, and root never resolves their path.
    if (request->cwd != NULL && syscall(SYS_chdir, request->cwd) < 0) {
        child_fail(context, BERTH_STEP_CHDIR, errno);
    }
    if (request->no_new_privileges && syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        child_fail(context, BERTH_STEP_IDENTITY, errno);
    }
    if (request->parent_death_signal != 0) {
        syscall(SYS_prctl, PR_SET_PDEATHSIG, request->parent_death_signal, 0, 0, 0);
    }

    berth_reset_dispositions_for_exec();
    // glibc's wrappers for these two only translate and make the call.
    sigprocmask(SIG_SETMASK, berth_inherited_sigmask(), NULL);

    char *const *envp = request->envp != NULL ? request->envp : environ;
    int error = exec_searching_path(request->file, request->argv, envp);
    child_fail(context, BERTH_STEP_EXEC, error);
}

// The child's stack. CLONE_VFORK suspends berth until the child has exec'd
// or exited, so one stack serves every spawn.
#define CHILD_STACK_SIZE (128 * 1024)
static char *child_stack;

int berth_spawn(const struct berth_spawn_request *request, struct berth_spawn_result *result) {
    result->pid = -1;
    result->error = 0;
    result->failed_step = BERTH_STEP_NONE;
    // The child must find the inherited mask recorded, not record it.
    berth_capture_signals_without_blocking();

    if (child_stack == NULL) {
        void *stack = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (stack == MAP_FAILED) {
            result->error = errno;
            result->failed_step = BERTH_STEP_FORK;
            return -1;
        }
        child_stack = stack;
    }

    struct child_context context = { request, 0, BERTH_STEP_NONE };
    pid_t pid = clone(run_child, child_stack + CHILD_STACK_SIZE,
                      CLONE_VM | CLONE_VFORK | SIGCHLD, &context);
    if (pid < 0) {
        result->error = errno;
        result->failed_step = BERTH_STEP_FORK;
        return -1;
    }
    result->pid = pid;
    if (context.step != BERTH_STEP_NONE) {
        result->error = context.error;
        result->failed_step = context.step;
        return -1;
    }
    return 0;
}
