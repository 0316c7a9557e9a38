#define _GNU_SOURCE
#include "berth_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int captured;
static sigset_t inherited_mask;
// Dispositions berth changed, with what they were before, for the child.
static struct sigaction inherited_actions[_NSIG];
static sigset_t changed_dispositions;

void berth_capture_and_block_signals(void) {
    if (captured) return;
    captured = 1;
    sigset_t all;
    sigfillset(&all);
    // SIG_BLOCK hands back the previous mask: that is what the child gets.
    sigprocmask(SIG_BLOCK, &all, &inherited_mask);
    sigemptyset(&changed_dispositions);
}

void berth_reset_dispositions_for_exec(void) {
    for (int signo = 1; signo < _NSIG; signo++) {
        if (signo == SIGKILL || signo == SIGSTOP) continue;
        if (sigismember(&changed_dispositions, signo) == 1) {
            sigaction(signo, &inherited_actions[signo], NULL);
            continue;
        }
        // A handler of berth's (the Swift runtime installs some) must not run
        // in the child before exec: it would run on berth's memory.
        struct sigaction current;
        if (sigaction(signo, NULL, &current) != 0) continue;
        if (current.sa_handler != SIG_DFL && current.sa_handler != SIG_IGN) {
            struct sigaction reset;
            memset(&reset, 0, sizeof reset);
            reset.sa_handler = SIG_DFL;
            sigaction(signo, &reset, NULL);
        }
    }
}

void berth_capture_signals_without_blocking(void) {
    if (captured) return;
    captured = 1;
    sigprocmask(SIG_BLOCK, NULL, &inherited_mask);
    sigemptyset(&changed_dispositions);
}

const sigset_t *berth_inherited_sigmask(void) {
    return &inherited_mask;
}

int berth_ignore_terminal_stop_signals(void) {
    struct sigaction ignore;
    memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    berth_capture_and_block_signals();
    const int stop_signals[] = {SIGTTIN, SIGTTOU};
    for (size_t i = 0; i < sizeof stop_signals / sizeof stop_signals[0]; i++) {
        int signo = stop_signals[i];
        struct sigaction previous;
        if (sigaction(signo, &ignore, &previous) != 0) return -1;
        if (sigismember(&changed_dispositions, signo) != 1) {
            inherited_actions[signo] = previous;
            sigaddset(&changed_dispositions, signo);
        }
    }
    return 0;
}

int berth_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int berth_pidfd_send_signal(int pidfd, int signo) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, signo, NULL, 0);
}

int berth_set_child_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

int berth_is_child_subreaper(void) {
    int value = 0;
    if (prctl(PR_GET_CHILD_SUBREAPER, &value, 0, 0, 0) != 0) return -1;
    return value;
}

int berth_set_parent_death_signal(int signo) {
    return prctl(PR_SET_PDEATHSIG, signo, 0, 0, 0);
}

int berth_detach_controlling_tty(int fd) {
    return ioctl(fd, TIOCNOTTY);
}

int berth_wait_for_signal(int *signo, int *code, pid_t *sender) {
    // The orphan-storm path (one call per SIGCHLD): the kernel's 64-bit
    // set, filled once, and rt_sigtimedwait straight, without glibc's
    // 128-byte sigset_t fill and cancellation wrapper on every wake-up.
    static unsigned long long all = ~0ULL;
    // One attempt: EventLoop.run waits again after an interrupted one.
    siginfo_t info;
    if (syscall(SYS_rt_sigtimedwait, &all, &info, NULL, sizeof all) < 0) return -1;
    *signo = info.si_signo;
    *code = info.si_code;
    *sender = info.si_pid;
    return 0;
}
