#ifndef BERTH_EARLY_H
#define BERTH_EARLY_H
// The process's own argc/argv, as the loader passed them.
int berth_argc(void);
char **berth_argv(void);
// Takes out the SWIFT_BACKTRACE berth added before the Swift
// runtime started (only if it was not set), so no child inherits it.
void berth_forget_backtrace_default(void);
#endif
