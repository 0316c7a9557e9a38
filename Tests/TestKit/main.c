// berth-testkit: small, predictable processes for berth's integration tests
// and benchmarks. Every loop here is bounded in count and time.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile sig_atomic_t pending[65];

static void record_signal(int signo) { pending[signo] = 1; }

// Double-forks N orphans: the middle process exits at once, so each
// grandchild is re-parented to the init (or subreaper) and must be reaped.
static int orphans(int count) {
    // Every orphan holds the write end until it exits: the read below sees
    // end-of-file only once all of them are zombies, so an init that exits
    // with this process has them to reap (no race with their exit).
    int exited[2];
    if (pipe(exited) < 0) { perror("pipe"); return 1; }
    for (int i = 0; i < count; i++) {
        pid_t middle = fork();
        if (middle < 0) { perror("fork"); return 1; }
        if (middle == 0) {
            if (fork() == 0) _exit(0);
            _exit(0);
        }
        while (waitpid(middle, NULL, 0) < 0 && errno == EINTR) {}
    }
    close(exited[1]);
    char byte;
    while (read(exited[0], &byte, 1) < 0 && errno == EINTR) {}
    close(exited[0]);
    printf("spawned %d orphans\n", count);
    return 0;
}

// Counts zombies in /proc (waiting up to `seconds` for the count to reach 0).
static int count_zombies_once(void) {
    int zombies = 0;
    char path[64], buffer[512];
    for (int pid = 2; pid < 4194304; pid++) {
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        int fd = open(path, O_RDONLY);
        if (fd < 0) {
            if (pid > 70000) break;  // namespaces here stay small; /proc/sys/kernel/pid_max is far
            continue;
        }
        ssize_t got = read(fd, buffer, sizeof buffer - 1);
        close(fd);
        if (got <= 0) continue;
        buffer[got] = 0;
        char *close_paren = strrchr(buffer, ')');
        if (close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z') zombies++;
    }
    return zombies;
}

static int zombies(double seconds) {
    double deadline = now_seconds() + seconds;
    int count;
    while ((count = count_zombies_once()) > 0 && now_seconds() < deadline) usleep(20000);
    printf("zombies %d\n", count);
    return count == 0 ? 0 : 1;
}

// Prints "ready <pid>" then one line per signal received (the number), until
// it has seen `stop_signal` or `seconds` pass.
static int print_signals(int stop_signal, double seconds, int ignore_term) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = record_signal;
    for (int signo = 1; signo < 65; signo++) {
        if (signo == SIGKILL || signo == SIGSTOP || signo == SIGCHLD || signo == 32 || signo == 33) continue;
        sigaction(signo, &action, NULL);
    }
    if (ignore_term) signal(SIGTERM, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready %d\n", getpid());
    double deadline = now_seconds() + seconds;
    while (now_seconds() < deadline) {
        for (int signo = 1; signo < 65; signo++) {
            if (pending[signo]) {
                pending[signo] = 0;
                printf("%d\n", signo);
                if (signo == stop_signal) return 0;
            }
        }
        usleep(1000);
    }
    return 3;
}

// Leaves its parent's session and process group, ignores SIGTERM and lives
// for `seconds`: the straggler only SIGKILL can end.
static int stubborn_daemon(double seconds, const char *pid_file) {
    pid_t first = fork();
    if (first != 0) { waitpid(first, NULL, 0); return 0; }
    setsid();
    // Ignored before the fork: the daemon must not be able to die of the
    // SIGTERM berth sends once the caller has returned.
    signal(SIGTERM, SIG_IGN);
    if (fork() != 0) _exit(0);
    if (pid_file) {
        FILE *f = fopen(pid_file, "w");
        if (f) { fprintf(f, "%d\n", getpid()); fclose(f); }
    }
    double deadline = now_seconds() + seconds;
    while (now_seconds() < deadline) usleep(10000);
    _exit(0);
}

// Waits until `pid` is gone, then makes the kernel hand that very number to a
// new process (ns_last_pid) which prints the signals it gets: a stand-in for
// PID reuse. Ignores SIGTERM so berth's shutdown sweep does not end it early.
static int reuse_pid(pid_t pid, double seconds) {
    signal(SIGTERM, SIG_IGN);
    if (fork() != 0) return 0;  // the caller's shell may exit now
    setsid();
    double deadline = now_seconds() + seconds;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d", pid);
    struct stat st;
    while (stat(path, &st) == 0 && now_seconds() < deadline) usleep(2000);
    for (int attempt = 0; attempt < 50; attempt++) {
        int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY);
        if (fd < 0) { perror("ns_last_pid"); _exit(1); }
        char text[32];
        int length = snprintf(text, sizeof text, "%d", pid - 1);
        write(fd, text, (size_t)length);
        close(fd);
        pid_t child = fork();
        if (child == 0) {
            if (getpid() != pid) _exit(0);
            print_signals(0, seconds, 1);
            _exit(0);
        }
        if (child == pid) {
            waitpid(child, NULL, 0);
            _exit(0);
        }
        waitpid(child, NULL, 0);
    }
    _exit(1);
}

// Prints whether this process owns the foreground of its terminal.
static int foreground(void) {
    pid_t fg = tcgetpgrp(STDIN_FILENO);
    printf("%s\n", fg == getpgrp() ? "foreground" : "background");
    return 0;
}

// Runs argv with a signal state like a fussy parent would leave: some
// signals blocked, some ignored (berth must hand exactly this on).
static int with_signal_state(char **argv) {
    signal(SIGTTOU, SIG_IGN);
    signal(SIGSEGV, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTTIN);
    sigaddset(&set, SIGILL);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    execvp(argv[0], argv);
    perror("exec");
    return 127;
}

// Runs argv with an extra descriptor (fd 7, not close-on-exec) open.
static int with_open_fd(char **argv) {
    int fd = open("/dev/null", O_RDONLY);
    if (fd != 7) { dup2(fd, 7); close(fd); }
    execvp(argv[0], argv);
    perror("exec");
    return 127;
}

// Waits for one SIGUSR1 at a time and prints the CLOCK_MONOTONIC time it
// arrived (ns), `count` times: the far end of the forwarding-latency bench.
static int signal_clock(int count) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready %d\n", getpid());
    for (int i = 0; i < count; i++) {
        struct timespec timeout = { 30, 0 };
        if (sigtimedwait(&set, NULL, &timeout) < 0) return 1;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        printf("%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    }
    return 0;
}

// Sends SIGUSR1 to `pid` `count` times, `interval_ms` apart, and prints the
// CLOCK_MONOTONIC time (ns) right before each kill: the near end of
// signal-clock, on the same clock when both run in one container. The line
// is out before the signal, and nothing follows the last one: the signal
// may end the container (and this process with it) at once.
static int signal_sender(pid_t pid, int count, int interval_ms) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < count; i++) {
        if (i > 0) {
            struct timespec pause = { interval_ms / 1000, (long)(interval_ms % 1000) * 1000000L };
            while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {}
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        printf("%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
        if (kill(pid, SIGUSR1) != 0) { perror("kill"); return 1; }
    }
    return 0;
}

// A service flooding its supervisor: sends READY=1 to $NOTIFY_SOCKET, then
// for `seconds` writes 100-byte lines to stdout as fast as it can and sends
// a ~4 KB STATUS= datagram after each (non-blocking; a full queue is
// skipped). Prints what it sent to stderr when the time is up.
static int notify_flood(double seconds) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        fprintf(stderr, "notify-flood: no usable NOTIFY_SOCKET\n");
        return 1;
    }
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    memcpy(address.sun_path, path, strlen(path));
    if (address.sun_path[0] == '@') address.sun_path[0] = 0;  // abstract
    socklen_t length = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    int notify = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (notify < 0) { perror("notify-flood: socket"); return 1; }
    int sent_ready = 0;
    for (int attempt = 0; attempt < 100 && !sent_ready; attempt++) {
        if (sendto(notify, "READY=1", 7, 0, (struct sockaddr *)&address, length) == 7) sent_ready = 1;
        else if (errno == EAGAIN) usleep(10000);
        else { perror("notify-flood: READY=1"); return 1; }
    }
    if (!sent_ready) { fprintf(stderr, "notify-flood: READY=1 not sent\n"); return 1; }
    static char status[4096];
    int prefix = snprintf(status, sizeof status, "STATUS=flood ");
    memset(status + prefix, 's', sizeof status - (size_t)prefix);
    char line[100];
    memset(line, 'f', sizeof line);
    line[sizeof line - 1] = '\n';
    long long lines = 0, datagrams = 0;
    double deadline = now_seconds() + seconds;
    while (now_seconds() < deadline) {
        char number[32];
        int digits = snprintf(number, sizeof number, "flood-line %012lld ", lines);
        memcpy(line, number, (size_t)digits);
        if (write(STDOUT_FILENO, line, sizeof line) == (ssize_t)sizeof line) lines++;
        if (sendto(notify, status, sizeof status, 0, (struct sockaddr *)&address, length) == (ssize_t)sizeof status) datagrams++;
    }
    fprintf(stderr, "notify-flood: %lld lines, %lld datagrams in %.1f s\n", lines, datagrams, seconds);
    return 0;
}

// Prints the environment, one variable a line.
static int print_environment(void) {
    extern char **environ;
    for (char **entry = environ; *entry != NULL; entry++) printf("%s\n", *entry);
    return 0;
}

// Prints who it runs as: "uid=U gid=G groups=A,B".
static int print_identity(void) {
    gid_t groups[64];
    int count = getgroups(64, groups);
    printf("uid=%d gid=%d groups=", (int)getuid(), (int)getgid());
    for (int i = 0; i < count; i++) printf("%s%d", i ? "," : "", (int)groups[i]);
    printf("\n");
    return 0;
}

// A real, minimal HTTP server on 127.0.0.1:port: answers every request with
// 200 and "berth-testkit", for `seconds`. Prints "listening" once bound.
static int http_server(int port, double seconds) {
    int server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(server, (struct sockaddr *)&address, sizeof address) != 0 || listen(server, 16) != 0) {
        perror("http-server");
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("listening on %d\n", port);
    double deadline = now_seconds() + seconds;
    while (now_seconds() < deadline) {
        struct pollfd poller = { .fd = server, .events = POLLIN };
        if (poll(&poller, 1, 100) <= 0) continue;
        int client = accept(server, NULL, NULL);
        if (client < 0) continue;
        char request[4096];
        ssize_t got = read(client, request, sizeof request);
        (void)got;
        const char *answer = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\nberth-testkit";
        ssize_t sent = write(client, answer, strlen(answer));
        (void)sent;
        close(client);
    }
    return 0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: berth-testkit orphans N | zombies SECONDS | print-signals [STOP [SECONDS]]\n"
            "       | print-signals-ignoring-term SECONDS | stubborn-daemon SECONDS [PIDFILE]\n"
            "       | reuse-pid PID SECONDS | foreground | with-signal-state CMD...\n"
            "       | with-open-fd CMD... | signal-clock COUNT | env | ids\n"
            "       | http-server PORT SECONDS | signal-sender PID COUNT INTERVAL_MS\n"
            "       | notify-flood SECONDS\n");
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(); return 2; }
    const char *verb = argv[1];
    if (!strcmp(verb, "orphans") && argc == 3) return orphans(atoi(argv[2]));
    if (!strcmp(verb, "zombies") && argc == 3) return zombies(atof(argv[2]));
    if (!strcmp(verb, "print-signals")) {
        return print_signals(argc > 2 ? atoi(argv[2]) : 0, argc > 3 ? atof(argv[3]) : 30.0, 0);
    }
    if (!strcmp(verb, "print-signals-ignoring-term") && argc == 3) return print_signals(0, atof(argv[2]), 1);
    if (!strcmp(verb, "stubborn-daemon") && argc >= 3) return stubborn_daemon(atof(argv[2]), argc > 3 ? argv[3] : NULL);
    if (!strcmp(verb, "reuse-pid") && argc == 4) return reuse_pid(atoi(argv[2]), atof(argv[3]));
    if (!strcmp(verb, "foreground")) return foreground();
    if (!strcmp(verb, "with-signal-state") && argc > 2) return with_signal_state(argv + 2);
    if (!strcmp(verb, "with-open-fd") && argc > 2) return with_open_fd(argv + 2);
    if (!strcmp(verb, "signal-clock") && argc == 3) return signal_clock(atoi(argv[2]));
    if (!strcmp(verb, "env")) return print_environment();
    if (!strcmp(verb, "ids")) return print_identity();
    if (!strcmp(verb, "http-server") && argc == 4) return http_server(atoi(argv[2]), atof(argv[3]));
    if (!strcmp(verb, "signal-sender") && argc == 5) return signal_sender(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
    if (!strcmp(verb, "notify-flood") && argc == 3) return notify_flood(atof(argv[2]));
    usage();
    return 2;
}
