// One HTTP exchange performed by libcurl on a worker thread, so the event
// loop never waits on the network. The loop watches berth_http_fd() and
// reads the result once it becomes readable.
#ifndef BERTH_HTTP_H
#define BERTH_HTTP_H

#include <stddef.h>

struct berth_http_exchange;

// What few requests need beyond a GET or POST; every field may be NULL.
struct berth_http_extras {
    const char *method;        // e.g. "PUT", "DELETE"
    const char *upload_path;   // a file sent as the body (a PUT)
    const char *aws_sigv4;     // libcurl's SigV4 provider, "aws:amz:REGION:s3"
    const char *credentials;   // "KEY:SECRET" for SigV4 (wiped when freed)
};

// Starts a GET (or a POST when body != NULL). headers: "Name: value"
// strings. Returns NULL with a message in `error` when it cannot start
// (libcurl missing, no memory, no thread).
struct berth_http_exchange *berth_http_start(const char *url, const char *const *headers, size_t header_count,
                                             const char *body, const struct berth_http_extras *extras,
                                             long timeout_ms, size_t body_limit, char *error, size_t error_size);
// Becomes readable once the exchange is over.
int berth_http_fd(const struct berth_http_exchange *exchange);
// After the fd became readable: HTTP status (0 when no answer came), the
// body, and the transport error ("" when an answer came).
long berth_http_status(const struct berth_http_exchange *exchange);
const unsigned char *berth_http_body(const struct berth_http_exchange *exchange, size_t *length);
const char *berth_http_error(const struct berth_http_exchange *exchange);
int berth_http_truncated(const struct berth_http_exchange *exchange);
// Asks a running exchange to stop and drops the caller's reference; the
// worker frees everything when it ends. Also the way to free a finished one.
void berth_http_release(struct berth_http_exchange *exchange);

#endif
