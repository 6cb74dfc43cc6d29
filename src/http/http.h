/* A small HTTP/1.1 request parser and response writer, sans-I/O, shared by
 * the WebSocket upgrade (src/net/ws.c) and the admin API (src/admin/).
 *
 * Bounded: the request line and headers together at most max_head bytes,
 * at most max_headers header fields, a body at most max_body bytes
 * (Content-Length only: "Transfer-Encoding: chunked" is refused with 501,
 * a request with both is refused with 400). The parser keeps no state of
 * its own: it is handed everything received so far each time and answers
 * "complete", "need more" or "refused with this status". Every pointer in
 * the parsed request points into the caller's bytes, valid while they are.
 * Header names compare case-insensitively (RFC 9110). */
#ifndef WARD_HTTP_HTTP_H
#define WARD_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/result.h"

#define HTTP_MAX_HEADERS 64 /* the hard ceiling of http_limits.max_headers */

struct http_limits {
    size_t max_head;      /* request line + headers + the blank line; default 8192 */
    unsigned max_headers; /* default 32, at most HTTP_MAX_HEADERS */
    size_t max_body;      /* default 0: a request with a body is refused (413) */
};
/* Fills the defaults. */
void http_limits_defaults(struct http_limits *l);

struct http_slice {
    const char *p; /* into the caller's bytes, not NUL-terminated */
    size_t len;
};

struct http_header {
    struct http_slice name, value; /* value without surrounding spaces */
};

struct http_request {
    struct http_slice method; /* "GET", "POST" ... (tokens only) */
    struct http_slice target; /* as sent: "/api/v4/clients?_page=2" */
    struct http_slice path;   /* the target before '?', not decoded */
    struct http_slice query;  /* after '?', without it; len 0 if none */
    int minor;                /* HTTP/1.<minor>: 0 or 1 */
    struct http_header headers[HTTP_MAX_HEADERS];
    unsigned nheaders;
    const uint8_t *body; /* Content-Length bytes after the head */
    size_t body_len;
    bool keep_alive; /* HTTP/1.1 unless "Connection: close"; 1.0 only with keep-alive */
    size_t consumed; /* bytes of this whole request (head and body): the next one starts here */
};

enum http_parse_status {
    HTTP_PARSE_DONE,  /* a whole request: rq is filled */
    HTTP_PARSE_AGAIN, /* not complete yet, and within the limits */
    HTTP_PARSE_ERROR, /* refused: *status and *why say how to answer */
};

/* Parses the request at the start of data[0..len). On HTTP_PARSE_ERROR,
 * *status is the code to answer with (400 malformed, 405 never, 413 body
 * too large, 414 target too long, 431 head too large or too many
 * headers, 501 chunked or an unknown transfer coding, 505 not HTTP/1.x)
 * and *why a short static reason for the response body and the log. */
enum http_parse_status http_parse(const uint8_t *data, size_t len, const struct http_limits *lim,
                                  struct http_request *rq, int *status, const char **why);

/* The first header with this name (case-insensitive), NULL if none. */
const struct http_header *http_header(const struct http_request *rq, const char *name);
/* Whether any header `name` holds `token` in its comma-separated list
 * (case-insensitive): "Connection: keep-alive, Upgrade" has "upgrade". */
bool http_header_has_token(const struct http_request *rq, const char *name, const char *token);
/* Whether the slice equals the NUL-terminated string (case-sensitive). */
bool http_slice_eq(struct http_slice s, const char *str);
/* The value of `key` in an application/x-www-form-urlencoded string (a
 * query or a form body), percent- and '+'-decoded into out (NUL-terminated).
 * Returns false if absent, malformed (bad %XX, NUL) or longer than cap-1. */
bool http_form_get(struct http_slice form, const char *key, char *out, size_t cap);
/* Percent-decodes a path segment or value into out; false if malformed or
 * too long (a decoded NUL is malformed). */
bool http_percent_decode(struct http_slice in, char *out, size_t cap);

/* "OK", "Not Found" ...; "Unknown" for codes it does not know. */
const char *http_reason(int status);
/* Appends a response head: status line, Content-Type (omitted if NULL),
 * Content-Length, "Connection: close" unless keep_alive, the extra lines
 * (each "Name: value\r\n", or NULL), then the blank line. The caller
 * appends exactly content_length body bytes after it. */
WARD_WUR struct ward_result http_response_head(struct buf *out, int status,
                                               const char *content_type, size_t content_length,
                                               const char *extra, bool keep_alive);
/* A whole short response with a text/plain body: the reason phrase, or
 * `why` when given, and a newline. */
WARD_WUR struct ward_result http_response_text(struct buf *out, int status, const char *why,
                                               bool keep_alive);

/* The WebSocket opening handshake, server side (RFC 6455 section 4.2). */
struct ws_upgrade_rules {
    const char *path; /* the one path served; NULL or "" takes any */
    /* Subprotocols this listener speaks, in its order of preference (the
     * first one offered by the client in this list wins); NULL: none are
     * negotiated and any offer is ignored (NATS). */
    const char *const *protocols;
    size_t nprotocols;
    /* With protocols: a client that offers none of them is refused (MQTT
     * over WebSocket requires the subprotocol). */
    bool protocol_required;
    /* Origin allow-list (exact, case-insensitive "scheme://host[:port]");
     * NULL: any Origin, or none, is accepted. */
    const char *const *origins;
    size_t norigins;
};

struct ws_upgrade {
    int status; /* 101, or the refusal: 400, 403 (Origin), 404 (path), 405 (not GET), 426 (version)
                 */
    const char *why;      /* static, for the refusal body and the log */
    char accept[29];      /* Sec-WebSocket-Accept, base64 of SHA-1, NUL-terminated */
    const char *protocol; /* the chosen subprotocol (a rules->protocols entry), NULL if none */
    /* With the 400 for no supported subprotocol: "offered: a, b" (or
     * "offered: none"), the client's offer reduced to [A-Za-z0-9._-] and
     * cut to fit, for the answer's body and the log; "" otherwise. (Also
     * possible in status: 500 when SHA-1 is unavailable.) */
    char detail[128];
};

/* Checks an upgrade request (GET, HTTP/1.1, Upgrade: websocket, Connection
 * has upgrade, Sec-WebSocket-Version 13, a Sec-WebSocket-Key of 16 bytes
 * in base64, the path, the subprotocol, the Origin). Fills u; returns
 * true when u->status is 101. */
bool ws_upgrade_check(const struct http_request *rq, const struct ws_upgrade_rules *r,
                      struct ws_upgrade *u);
/* Appends the answer: the 101 with Sec-WebSocket-Accept and the chosen
 * Sec-WebSocket-Protocol, or the refusal (text/plain reason, closing). */
WARD_WUR struct ward_result ws_upgrade_response(struct buf *out, const struct ws_upgrade *u);

#endif
