#ifndef CTEST_SUPPORT_H
#define CTEST_SUPPORT_H
// Opens a pty pair (primary and replica, both close-on-exec); 0 on success.
int ctest_open_pty(int *primary, int *replica);
#endif
