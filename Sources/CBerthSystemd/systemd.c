// Linking libsystemd would load it and its dependencies (lz4, zstd, lzma,
// gcrypt, capabilities) at every start of berth, for a feature that only
// matters under systemd or podman's --sdnotify; so it is loaded on demand.
#define _GNU_SOURCE
#include "berth_systemd.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int (*notify)(int, const char *);
static int (*journal_sendv)(const struct iovec *, int);

static void load(void) {
    void *library = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!library) return;
    *(void **)&notify = dlsym(library, "sd_notify");
    *(void **)&journal_sendv = dlsym(library, "sd_journal_sendv");
}

int berth_systemd_available(void) {
    pthread_once(&once, load);
    return notify && journal_sendv;
}

int berth_sd_notify(const char *state) {
    if (!berth_systemd_available()) return -ENOSYS;
    return notify(0, state);
}

int berth_journal_send(const char *identifier, int priority, const char *message, const char *const *fields, int field_count) {
    if (!berth_systemd_available()) return -ENOSYS;
    if (field_count < 0 || field_count > 16) return -EINVAL;
    char priority_field[32];
    snprintf(priority_field, sizeof priority_field, "PRIORITY=%d", priority);
    size_t identifier_length = strlen(identifier) + sizeof "SYSLOG_IDENTIFIER=";
    size_t message_length = strlen(message) + sizeof "MESSAGE=";
    char *identifier_field = malloc(identifier_length);
    char *message_field = malloc(message_length);
    if (!identifier_field || !message_field) {
        free(identifier_field);
        free(message_field);
        return -ENOMEM;
    }
    snprintf(identifier_field, identifier_length, "SYSLOG_IDENTIFIER=%s", identifier);
    snprintf(message_field, message_length, "MESSAGE=%s", message);
    struct iovec vector[19];
    int count = 0;
    vector[count++] = (struct iovec){message_field, strlen(message_field)};
    vector[count++] = (struct iovec){priority_field, strlen(priority_field)};
    vector[count++] = (struct iovec){identifier_field, strlen(identifier_field)};
    for (int index = 0; index < field_count; index++) {
        vector[count++] = (struct iovec){(void *)fields[index], strlen(fields[index])};
    }
    int result = journal_sendv(vector, count);
    free(identifier_field);
    free(message_field);
    return result;
}
