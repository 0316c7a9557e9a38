#include "berth_sys.h"

// Runs before Swift's main and before any thread can exist, so no signal can
// slip past the signalfd loop and the inherited mask is recorded untouched.
// glibc hands .init_array functions argc and argv too: keep them, because
// Swift's CommandLine reads /proc/self/cmdline, and /proc may not be mounted
// (a bare chroot, an early boot).
static int saved_argc;
static char **saved_argv;

__attribute__((constructor(101)))
static void berth_early_start(int argc, char **argv, char **envp) {
    (void)envp;
    saved_argc = argc;
    saved_argv = argv;
    berth_capture_and_block_signals();
}

int berth_argc(void) { return saved_argc; }
char **berth_argv(void) { return saved_argv; }
