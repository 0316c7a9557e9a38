// libcurl is loaded with dlopen on first use: linking it would make every
// start of berth map libcurl and its ~30 dependencies (measured: +4.6 ms per
// exec on the build machine), a cost a plain `berth -- cmd` never needs.
#define _GNU_SOURCE
#include "berth_http.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

static struct {
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    void (*easy_cleanup)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
} curl;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[256];

static void load_curl(void) {
    void *library = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        snprintf(load_error, sizeof load_error, "libcurl is not installed (libcurl.so.4: %s)", dlerror());
        return;
    }
#define BIND(field, symbol)                                                                     \
    if (!(*(void **)&curl.field = dlsym(library, symbol))) {                                    \
        snprintf(load_error, sizeof load_error, "libcurl.so.4 lacks %s", symbol);               \
        return;                                                                                 \
    }
    BIND(global_init, "curl_global_init")
    BIND(easy_init, "curl_easy_init")
    BIND(easy_setopt, "curl_easy_setopt")
    BIND(easy_perform, "curl_easy_perform")
    BIND(easy_getinfo, "curl_easy_getinfo")
    BIND(easy_cleanup, "curl_easy_cleanup")
    BIND(easy_strerror, "curl_easy_strerror")
    BIND(slist_append, "curl_slist_append")
    BIND(slist_free_all, "curl_slist_free_all")
#undef BIND
    // Not thread-safe before 7.84: done once here, before any worker exists.
    if (curl.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(load_error, sizeof load_error, "curl_global_init failed");
    }
}

struct berth_http_exchange {
    atomic_int references;   // the caller and the worker
    atomic_int cancelled;
    int fd;
    char *url;
    char *body;
    char *method;
    char *upload_path;
    char *aws_sigv4;
    char *credentials;
    struct curl_slist *headers;
    long timeout_ms;
    size_t body_limit;
    // Written by the worker before it signals fd; read by the caller after.
    long status;
    unsigned char *response;
    size_t response_length;
    int truncated;
    char error[CURL_ERROR_SIZE + 64];
};

static void release(struct berth_http_exchange *exchange) {
    if (atomic_fetch_sub(&exchange->references, 1) != 1) return;
    close(exchange->fd);
    free(exchange->url);
    free(exchange->body);
    free(exchange->method);
    free(exchange->upload_path);
    free(exchange->aws_sigv4);
    if (exchange->credentials) explicit_bzero(exchange->credentials, strlen(exchange->credentials));
    free(exchange->credentials);
    free(exchange->response);
    // The Authorization header holds a token: wipe it before free.
    for (struct curl_slist *item = exchange->headers; item; item = item->next) {
        explicit_bzero(item->data, strlen(item->data));
    }
    if (exchange->headers) curl.slist_free_all(exchange->headers);
    free(exchange);
}

static size_t collect(char *data, size_t size, size_t count, void *context) {
    struct berth_http_exchange *exchange = context;
    size_t length = size * count;
    if (exchange->response_length + length > exchange->body_limit) {
        exchange->truncated = 1;
        return 0;  // aborts the transfer: an answer this large is not what we asked for
    }
    unsigned char *grown = realloc(exchange->response, exchange->response_length + length + 1);
    if (!grown) return 0;
    memcpy(grown + exchange->response_length, data, length);
    exchange->response = grown;
    exchange->response_length += length;
    grown[exchange->response_length] = 0;
    return length;
}

static int keep_going(void *context, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d) {
    (void)a, (void)b, (void)c, (void)d;
    struct berth_http_exchange *exchange = context;
    return atomic_load(&exchange->cancelled) ? 1 : 0;
}

static void *perform(void *context) {
    struct berth_http_exchange *exchange = context;
    CURL *handle = curl.easy_init();
    if (!handle) {
        snprintf(exchange->error, sizeof exchange->error, "curl_easy_init failed");
    } else {
        char detail[CURL_ERROR_SIZE] = "";
        curl.easy_setopt(handle, CURLOPT_URL, exchange->url);
        curl.easy_setopt(handle, CURLOPT_HTTPHEADER, exchange->headers);
        curl.easy_setopt(handle, CURLOPT_USERAGENT, "berth");
        // Threads and signals: curl must not use SIGALRM for timeouts.
        curl.easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
        curl.easy_setopt(handle, CURLOPT_TIMEOUT_MS, exchange->timeout_ms);
        curl.easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, exchange->timeout_ms);
        // A bearer token must never follow a redirect to another host.
        curl.easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 0L);
        curl.easy_setopt(handle, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
        curl.easy_setopt(handle, CURLOPT_WRITEFUNCTION, collect);
        curl.easy_setopt(handle, CURLOPT_WRITEDATA, exchange);
        curl.easy_setopt(handle, CURLOPT_NOPROGRESS, 0L);
        curl.easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, keep_going);
        curl.easy_setopt(handle, CURLOPT_XFERINFODATA, exchange);
        curl.easy_setopt(handle, CURLOPT_ERRORBUFFER, detail);
        if (exchange->body) curl.easy_setopt(handle, CURLOPT_POSTFIELDS, exchange->body);
        FILE *upload = NULL;
        if (exchange->upload_path) {
            upload = fopen(exchange->upload_path, "rbe");
            struct stat info;
            if (upload && fstat(fileno(upload), &info) == 0) {
                curl.easy_setopt(handle, CURLOPT_UPLOAD, 1L);
                curl.easy_setopt(handle, CURLOPT_READDATA, upload);
                curl.easy_setopt(handle, CURLOPT_INFILESIZE_LARGE, (curl_off_t)info.st_size);
            }
        }
        if (exchange->method) curl.easy_setopt(handle, CURLOPT_CUSTOMREQUEST, exchange->method);
        if (exchange->aws_sigv4) {
            curl.easy_setopt(handle, CURLOPT_AWS_SIGV4, exchange->aws_sigv4);
            curl.easy_setopt(handle, CURLOPT_USERPWD, exchange->credentials ? exchange->credentials : "");
        }
        CURLcode code = (exchange->upload_path && !upload) ? CURLE_READ_ERROR : curl.easy_perform(handle);
        if (upload) fclose(upload);
        if (exchange->upload_path && !upload) snprintf(detail, sizeof detail, "cannot read %s: %s", exchange->upload_path, strerror(errno));
        if (code == CURLE_OK) {
            curl.easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &exchange->status);
        } else if (exchange->truncated) {
            snprintf(exchange->error, sizeof exchange->error, "answer larger than %zu bytes", exchange->body_limit);
        } else {
            snprintf(exchange->error, sizeof exchange->error, "%s", detail[0] ? detail : curl.easy_strerror(code));
        }
        curl.easy_cleanup(handle);
    }
    uint64_t one = 1;
    while (write(exchange->fd, &one, sizeof one) < 0 && errno == EINTR) {}
    release(exchange);
    return NULL;
}

struct berth_http_exchange *berth_http_start(const char *url, const char *const *headers, size_t header_count,
                                             const char *body, const struct berth_http_extras *extras,
                                             long timeout_ms, size_t body_limit, char *error, size_t error_size) {
    pthread_once(&load_once, load_curl);
    if (load_error[0]) {
        snprintf(error, error_size, "%s", load_error);
        return NULL;
    }
    struct berth_http_exchange *exchange = calloc(1, sizeof *exchange);
    if (!exchange) {
        snprintf(error, error_size, "out of memory");
        return NULL;
    }
    atomic_init(&exchange->references, 2);
    atomic_init(&exchange->cancelled, 0);
    exchange->timeout_ms = timeout_ms;
    exchange->body_limit = body_limit;
    exchange->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    exchange->url = strdup(url);
    exchange->body = body ? strdup(body) : NULL;
    int ok = exchange->fd >= 0 && exchange->url && (!body || exchange->body);
#define COPY(field)                                                \
    if (extras && extras->field) {                                 \
        exchange->field = strdup(extras->field);                   \
        if (!exchange->field) ok = 0;                              \
    }
    COPY(method)
    COPY(upload_path)
    COPY(aws_sigv4)
    COPY(credentials)
#undef COPY
    for (size_t index = 0; ok && index < header_count; index++) {
        struct curl_slist *grown = curl.slist_append(exchange->headers, headers[index]);
        if (!grown) ok = 0;
        else exchange->headers = grown;
    }
    pthread_attr_t attributes;
    pthread_t thread;
    if (ok) {
        // The worker inherits berth's mask (every signal blocked), so it
        // never takes a signal meant for the loop's signalfd.
        pthread_attr_init(&attributes);
        pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attributes, 512 * 1024);
        int failure = pthread_create(&thread, &attributes, perform, exchange);
        pthread_attr_destroy(&attributes);
        if (failure) {
            snprintf(error, error_size, "cannot start a worker thread: %s", strerror(failure));
            atomic_store(&exchange->references, 1);
            release(exchange);
            return NULL;
        }
        return exchange;
    }
    snprintf(error, error_size, "cannot prepare the request: %s", strerror(errno ? errno : ENOMEM));
    atomic_store(&exchange->references, 1);
    release(exchange);
    return NULL;
}

int berth_http_fd(const struct berth_http_exchange *exchange) { return exchange->fd; }
long berth_http_status(const struct berth_http_exchange *exchange) { return exchange->status; }
const char *berth_http_error(const struct berth_http_exchange *exchange) { return exchange->error; }
int berth_http_truncated(const struct berth_http_exchange *exchange) { return exchange->truncated; }

const unsigned char *berth_http_body(const struct berth_http_exchange *exchange, size_t *length) {
    *length = exchange->response_length;
    return exchange->response;
}

void berth_http_release(struct berth_http_exchange *exchange) {
    atomic_store(&exchange->cancelled, 1);
    release(exchange);
}
