// The small C layer under berth: the code that runs between clone and exec,
// the inherited signal state, and the macros and variadic syscalls Swift
// cannot call directly.
#ifndef BERTH_SYS_H
#define BERTH_SYS_H

#include <signal.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

// Blocks every signal and records the mask and dispositions berth inherited,
// so a child can get them back. Idempotent; the berth executable calls it
// from a constructor, before any thread can exist.
void berth_capture_and_block_signals(void);
// For processes that only spawn (tests): record the mask, change nothing.
void berth_capture_signals_without_blocking(void);
const sigset_t *berth_inherited_sigmask(void);
// Ignores SIGTTIN/SIGTTOU so berth is never stopped by the terminal after it
// hands the foreground to its child. Children get the inherited ones back.
int berth_ignore_terminal_stop_signals(void);
// Child side, before exec: puts back every disposition berth changed and
// resets berth's handlers to the default.
void berth_reset_dispositions_for_exec(void);

enum berth_isolation {
    BERTH_SAME_GROUP = 0,
    BERTH_NEW_PROCESS_GROUP = 1,
    BERTH_NEW_SESSION = 2,
};

struct berth_spawn_request {
    const char *file;           // searched in PATH when it has no slash
    char *const *argv;
    char *const *envp;          // NULL: berth's own environment
    const char *cwd;            // NULL: berth's current directory
    int cwd_fd;                 // >= 0: fchdir here first (a directory berth has left)
    int isolation;              // enum berth_isolation
    int take_terminal;          // make the child the foreground of the tty on fd 0
    int stdin_fd, stdout_fd, stderr_fd;  // -1: inherit berth's
    int set_ids;                // drop to uid/gid/groups below
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    size_t group_count;
    // With set_ids: capabilities (bit N = capability N) kept across the
    // change of uid and raised as ambient, so they survive exec. Only ones
    // berth itself holds (berth_permitted_capabilities) can be kept.
    unsigned long long ambient_capabilities;
    int no_new_privileges;      // PR_SET_NO_NEW_PRIVS: no setuid/file-capability gains after exec
    int parent_death_signal;    // 0: none
    int exec_failure_status;    // 0: 127 for not found, 126 for not executable
    const char *child_note;     // written to stderr after isolation (dumb-init's debug line)
};

enum berth_spawn_step {
    BERTH_STEP_NONE = 0,
    BERTH_STEP_FORK,
    BERTH_STEP_ISOLATE,
    BERTH_STEP_STDIO,
    BERTH_STEP_CHDIR,
    BERTH_STEP_IDENTITY,
    BERTH_STEP_EXEC,
};

struct berth_spawn_result {
    pid_t pid;          // > 0 when a child exists (it must be reaped even if error != 0)
    int error;          // errno of the failed step, 0 when exec succeeded
    int failed_step;    // enum berth_spawn_step
};

// clone(CLONE_VM|CLONE_VFORK) + exec with nothing but raw system calls in
// the child. Returns 0
// when exec succeeded, -1 otherwise (details in result).
int berth_spawn(const struct berth_spawn_request *request, struct berth_spawn_result *result);

static inline int berth_wifexited(int status) { return WIFEXITED(status); }
static inline int berth_wexitstatus(int status) { return WEXITSTATUS(status); }
static inline int berth_wifsignaled(int status) { return WIFSIGNALED(status); }
static inline int berth_wtermsig(int status) { return WTERMSIG(status); }
static inline int berth_wcoredump(int status) { return WCOREDUMP(status); }
static inline int berth_wifstopped(int status) { return WIFSTOPPED(status); }
static inline int berth_wstopsig(int status) { return WSTOPSIG(status); }
static inline int berth_wifcontinued(int status) { return WIFCONTINUED(status); }
static inline int berth_sigrtmax(void) { return SIGRTMAX; }
static inline int berth_sigrtmin(void) { return SIGRTMIN; }

// sigwaitinfo over every signal: the next one, with its code and sender;
// -1 and errno on failure (EINTR included: the caller waits again).
int berth_wait_for_signal(int *signo, int *code, pid_t *sender);

int berth_pidfd_open(pid_t pid);
/* glibc's memmem (a GNU extension Swift's Glibc module does not show):
   the first `needle` in `haystack`, or NULL. */
void *berth_memmem(const void *haystack, size_t haystack_length, const void *needle, size_t needle_length);
int berth_pidfd_send_signal(int pidfd, int signo);
int berth_set_child_subreaper(void);
// berth's permitted capabilities as a bit mask (bit N = capability N).
unsigned long long berth_permitted_capabilities(void);
int berth_is_child_subreaper(void);
int berth_set_parent_death_signal(int signo);
int berth_detach_controlling_tty(int fd);
// pipe2(O_CLOEXEC): glibc declares it only under _GNU_SOURCE.
int berth_pipe_cloexec(int fds[2]);
// The current directory as an O_PATH descriptor (close-on-exec), or -1.
int berth_open_current_directory(void);
// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC (a GNU extension Swift cannot see).
int berth_accept_nonblocking(int fd);
// The uid of a UNIX socket peer (SO_PEERCRED).
int berth_peer_uid(int fd, uid_t *uid);
// Once start-up is over: drops the page-table entries of the code mappings
// (berth's and its libraries', read-only and never written) and trims the
// heap, so code only start-up ran stops counting as resident. Code needed
// again comes back as a minor fault from the page cache. Returns how many
// mappings it dropped, -1 without /proc.
int berth_drop_code_pages(void);

// getopt_long for the compatibility faces, which must parse and complain
// exactly like tini and dumb-init (glibc's getopt.h is not in Swift's Glibc).
struct berth_long_option {
    const char *name;
    int takes_argument;
    int short_name;
};
int berth_getopt_long(int argc, char **argv, const char *optstring,
                      const struct berth_long_option *longs, size_t count,
                      const char **argument);
void berth_getopt_reset(void);
int berth_getopt_index(void);

#endif
