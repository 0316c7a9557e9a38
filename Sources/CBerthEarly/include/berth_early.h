#ifndef BERTH_EARLY_H
#define BERTH_EARLY_H
// The process's own argc/argv, as the loader passed them.
int berth_argc(void);
char **berth_argv(void);
#endif
