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

/* ---- the server (admin.c) ---- */

/* Defaults of struct admin_config's limits (docs/http-api.md). */
#define ADMIN_MAX_CONNECTIONS_DEFAULT 64u
#define ADMIN_MAX_BODY_DEFAULT        (1u << 20) /* POST /api/v4/mqtt/publish */
#define ADMIN_IDLE_TIMEOUT_DEFAULT    30000u     /* ms between keep-alive requests */
#define ADMIN_REQUEST_TIMEOUT_DEFAULT 10000u     /* ms from a request's first byte to its end */
#define ADMIN_MAX_OUTPUT_DEFAULT      (4u << 20) /* queued answer bytes per connection */
#define ADMIN_MAX_ROUTES              96

struct admin_config {
    const char *bind;            /* "HOST:PORT" or "tcp://HOST:PORT"; port 0 picks one */
    struct tls_server *tls;      /* HTTPS (mutual with its verify mode); NULL: plain HTTP.
                                    Must outlive the admin server. */
    uint32_t max_connections;    /* 0: ADMIN_MAX_CONNECTIONS_DEFAULT */
    struct http_limits limits;   /* zeros: 8 KiB head, 32 headers, ADMIN_MAX_BODY_DEFAULT */
    uint32_t idle_timeout_ms;    /* 0: default */
    uint32_t request_timeout_ms; /* 0: default; also bounds a new connection's first request */
    size_t max_output;           /* 0: default */
    /* Paths served without a key: /metrics and /api/v4/prometheus when
     * open_metrics, /healthz and /readyz when open_health. */
    bool open_metrics, open_health;
    const char *api_keys_file; /* hashed API keys (apikey.h); NULL: none */
    /* mTLS: a verified client certificate whose OU is one of these gets
     * that scope. NULL: certificates give no scope. */
    const char *admin_ou, *read_ou;
    /* A directory where admin_start() writes admin.key (0600): a fresh admin
     * key and this server's URL, for `ward status` on the same machine.
     * NULL: none is written. */
    const char *local_key_dir;
    /* NanoMQ's http_server username/password: one more admin credential for
     * HTTP Basic (hashed when loaded). NULL: none. */
    const char *basic_user, *basic_password;
};

/* Counters, for /metrics. */
struct admin_stats {
    uint64_t requests;     /* answered (404 and 405 too; not 401, 403 or refused) */
    uint64_t unauthorized; /* 401: no or wrong credentials */
    uint64_t forbidden;    /* 403: a credential without the scope */
    uint64_t refused;      /* malformed or over a limit (4xx/5xx from the parser) */
    uint64_t timeouts;     /* 408: a request not complete within request_timeout */
    uint32_t connections;  /* open now */
};

/* Builds the server and binds its listener (so admin_port() is known).
 * NULL with the cause in err (bad address, port in use, key file). */
WARD_WUR struct admin *admin_new(const struct admin_config *cfg, char *err, size_t errlen);
/* Starts its worker thread (and writes local_key_dir/admin.key). 0 or -1
 * with the cause in err. */
WARD_WUR int admin_start(struct admin *a, char *err, size_t errlen);
/* Closes the listener and every connection and waits for the thread.
 * Idempotent; admin_free() calls it. */
void admin_stop(struct admin *a);
void admin_free(struct admin *a);
/* The bound port. */
uint16_t admin_port(const struct admin *a);
/* "http://127.0.0.1:8081" or "https://..." */
const char *admin_url(const struct admin *a);
/* GET /readyz answers 200 only while ready: set once listeners listen and
 * stored state is loaded, cleared when shutdown begins. Thread-safe. */
void admin_set_ready(struct admin *a, bool ready);
bool admin_ready(const struct admin *a);
/* SIGHUP: reads the API key file again; a file that fails to load keeps
 * the keys in use (0 or -1 with the cause in err). */
WARD_WUR int admin_reload_keys(struct admin *a, char *err, size_t errlen);
void admin_get_stats(const struct admin *a, struct admin_stats *out);

/* Sets a JSON error answer: {"code": status, "message": msg}. */
void admin_reply_error(struct admin_reply *rep, int status, const char *msg);

#endif
