// sd_notify and the journal through libsystemd, loaded on first use.
#ifndef BERTH_SYSTEMD_H
#define BERTH_SYSTEMD_H

// 1 when libsystemd.so.0 could be loaded (the first call loads it).
int berth_systemd_available(void);
// sd_notify(0, state): > 0 sent, 0 no NOTIFY_SOCKET, < 0 -errno; -ENOSYS
// when libsystemd is missing.
int berth_sd_notify(const char *state);
// One journal entry: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER and the given
// extra "FIELD=value" strings. Same return convention.
int berth_journal_send(const char *identifier, int priority, const char *message, const char *const *fields, int field_count);

#endif
