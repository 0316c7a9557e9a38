#include "berth_sys.h"
#include <stdlib.h>

// Runs before Swift's main and before any thread can exist, so no signal can
// slip past the signalfd loop and the inherited mask is recorded untouched.
// glibc hands .init_array functions argc and argv too: keep them, because
// Swift's CommandLine reads /proc/self/cmdline, and /proc may not be mounted
// (a bare chroot, an early boot).
static int saved_argc;
static char **saved_argv;
static int backtrace_default_added;

__attribute__((constructor(101)))
static void berth_early_start(int argc, char **argv, char **envp) {
    (void)envp;
    saved_argc = argc;
    saved_argv = argv;
    berth_capture_and_block_signals();
    // The Swift runtime's backtracer needs swift-backtrace installed beside
    // the runtime (for this static binary: beside berth), which no image
    // has; looking for it (dladdr over every symbol, then seven paths) cost
    // ~130,000 instructions at every start, as much as all of tini's
    // start-up, unless a path is given. Its constructor runs after this one,
    // so default it off (with a path, so nothing is looked for)
    // here; an explicit SWIFT_BACKTRACE still decides. main takes it out
    // of the environment again (berth_forget_backtrace_default) before
    // anything reads or passes on the environment.
    if (getenv("SWIFT_BACKTRACE") == NULL && setenv("SWIFT_BACKTRACE", "enable=no,swift-backtrace=/nonexistent", 0) == 0) {
        backtrace_default_added = 1;
    }
}

void berth_forget_backtrace_default(void) {
    if (backtrace_default_added) {
        unsetenv("SWIFT_BACKTRACE");
        backtrace_default_added = 0;
    }
}

// Swift's CommandLine gets argv from these two; defined here, the
// runtime's own CommandLine.cpp stays out of the static link, and with it
// a constructor that reads /proc/self/maps line by line with sscanf to find
// argv on the stack (~110,000 instructions at every start, and no argv at
// all when /proc is not mounted). CommandLine.arguments is then the argv
// saved above. Hidden: a dynamically linked Swift keeps its own.
__attribute__((swiftcall, visibility("hidden")))
char **_swift_stdlib_getUnsafeArgvArgc(int *outArgLen) {
    *outArgLen = saved_argc;
    return saved_argv;
}

__attribute__((swiftcall, visibility("hidden")))
void _swift_stdlib_overrideUnsafeArgvArgc(char **argv, int argc) {
    saved_argv = argv;
    saved_argc = argc;
}

int berth_argc(void) { return saved_argc; }
char **berth_argv(void) { return saved_argv; }
