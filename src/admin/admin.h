/* The admin HTTP server (docs/http-api.md): health checks, Prometheus
 * metrics, the JSON API and the status page, on a net_server of its own
 * with one worker thread, so no request ever runs on a broker worker.
 * HTTPS and mutual TLS come from the same tls_server as the MQTT
 * listeners.
 *
 * Endpoints are routes: a method, a path (a path ending in '/' takes every
 * path below it) and the scope a caller needs. Handlers run on the admin
 * worker; they may take the broker lock briefly (through the broker's
 * inspection functions, src/broker/inspect.h) and must answer long lists
 * in pages. */
#ifndef WARD_ADMIN_ADMIN_H
#define WARD_ADMIN_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/result.h"
#include "http/http.h"

struct admin;
struct tls_server;

enum admin_scope {
    ADMIN_SCOPE_OPEN,  /* no key needed (health; /metrics when opened by the listener setting) */
    ADMIN_SCOPE_READ,  /* a read or admin key, or a certificate with read_ou or admin_ou */
    ADMIN_SCOPE_ADMIN, /* an admin key, or a certificate with admin_ou */
};

struct admin_reply {
    int status;               /* 200 unless set */
    const char *content_type; /* "application/json" unless set */
    struct buf body;
    char extra[512]; /* more header lines, each "Name: value\r\n" */
};

/* A handler. `who` names the caller for logs ("key NAME", "cert CN=..."). */
typedef void (*admin_fn)(void *ctx, const struct http_request *rq, const char *who,
                         struct admin_reply *rep);

/* Adds a route; call before admin_start(). Returns 0, or -1 (too many
 * routes, or the same method and path twice). */
WARD_WUR int admin_route(struct admin *a, const char *method, const char *path,
                         enum admin_scope need, admin_fn fn, void *ctx);

/* Sets a JSON error answer: {"code": status, "message": msg}. */
void admin_reply_error(struct admin_reply *rep, int status, const char *msg);

#endif
