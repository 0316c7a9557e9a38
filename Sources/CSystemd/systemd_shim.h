// libsystemd's declarations only: berth loads the library with dlopen when
// it has something to tell systemd (see Sources/CBerthSystemd/systemd.c).
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
