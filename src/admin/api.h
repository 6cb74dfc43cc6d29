/* The admin server's endpoints beyond the server itself: Prometheus
 * metrics (metrics.c), the JSON API on NanoMQ's /api/v4 paths (api.c) and
 * nats-server's monitoring formats (natsmon.c). docs/http-api.md lists
 * them.
 *
 * Every handler reads the broker through src/broker/inspect.h (a brief
 * hold of the broker lock each), answers lists a page at a time and writes
 * every peer-chosen string (client ids, user names, topics) through jsonw,
 * which escapes it. */
#ifndef WARD_ADMIN_API_H
#define WARD_ADMIN_API_H

#include <stddef.h>
#include <stdint.h>

#include "admin/admin.h"
#include "core/result.h"

struct broker;
struct net_server;
struct store;
struct bridge;
struct tls_server;

/* One listener as the metrics and /api/v4/tls name it. */
struct admin_listener {
    const char *name;       /* its config block name, or its port */
    unsigned index;         /* net's listener index */
    const char *protocol;   /* "mqtt" or "nats" */
    const char *transport;  /* "tcp", "tls", "ws" or "wss" */
    struct tls_server *tls; /* NULL on plain listeners */
};

/* What the endpoints read. The caller keeps it (and everything it points
 * to) alive as long as the admin server runs. */
struct admin_sources {
    struct broker *broker;         /* required */
    struct admin *admin;           /* its own request counters in /metrics; NULL: none */
    struct net_server *net;        /* NULL: no per-listener net counters */
    struct store *store;           /* NULL: no persistence */
    struct bridge *const *bridges; /* set before admin_start() */
    size_t nbridges;
    const struct admin_listener *listeners;
    size_t nlisteners;
    uint64_t start_time_ms; /* unix time the broker started */
    const char *node_name;  /* /api/v4/brokers "node"; NULL: "ward@HOSTNAME" */
    /* POST /api/v4/reload: what SIGHUP does. Returns 0, or -1 with a reason
     * in err. NULL: the endpoint answers 501. */
    int (*reload)(void *ctx, char *err, size_t errlen);
    void *reload_ctx;
};

#define ADMIN_API_MAX_BRIDGES 64u /* listed and measured at most */

/* Pages: ?_page=N (from 1) and ?_limit=M (1..ADMIN_API_MAX_LIMIT, default
 * ADMIN_API_DEFAULT_LIMIT), as NanoMQ and EMQX take them. */
#define ADMIN_API_DEFAULT_LIMIT 100u
#define ADMIN_API_MAX_LIMIT     10000u

/* Adds every route of this file's endpoints (metrics, /api/v4, nats-server
 * monitoring). Returns 0, or -1 if a route could not be added. */
WARD_WUR int admin_api_register(struct admin *a, const struct admin_sources *src);

/* The handlers, for the tests (ctx is the struct admin_sources). */
void admin_api_clients(void *ctx, const struct http_request *rq, const char *who,
                       struct admin_reply *rep);
void admin_api_client_one(void *ctx, const struct http_request *rq, const char *who,
                          struct admin_reply *rep); /* GET and DELETE /api/v4/clients/ID */
void admin_api_subscriptions(void *ctx, const struct http_request *rq, const char *who,
                             struct admin_reply *rep);
void admin_api_publish(void *ctx, const struct http_request *rq, const char *who,
                       struct admin_reply *rep);
void admin_api_retained(void *ctx, const struct http_request *rq, const char *who,
                        struct admin_reply *rep);
void admin_api_retained_one(void *ctx, const struct http_request *rq, const char *who,
                            struct admin_reply *rep); /* GET and DELETE /api/v4/retained/TOPIC */
void admin_api_sessions(void *ctx, const struct http_request *rq, const char *who,
                        struct admin_reply *rep);
void admin_api_session_one(void *ctx, const struct http_request *rq, const char *who,
                           struct admin_reply *rep); /* GET and DELETE /api/v4/sessions/ID */
void admin_api_bridges(void *ctx, const struct http_request *rq, const char *who,
                       struct admin_reply *rep);
void admin_api_tls(void *ctx, const struct http_request *rq, const char *who,
                   struct admin_reply *rep);
void admin_api_reload(void *ctx, const struct http_request *rq, const char *who,
                      struct admin_reply *rep);
void admin_api_brokers(void *ctx, const struct http_request *rq, const char *who,
                       struct admin_reply *rep);

/* metrics.c: GET /metrics and /api/v4/prometheus. */
void admin_metrics(void *ctx, const struct http_request *rq, const char *who,
                   struct admin_reply *rep);
/* Writes the whole exposition (text format 0.0.4) into out. */
WARD_WUR struct ward_result admin_metrics_write(const struct admin_sources *src, struct buf *out);

/* A TLS failure cause (enum tls_cause) as a label value and JSON key:
 * "no_cert", "unknown_ca", "expired" ... */
const char *admin_tls_cause_slug(int cause);

/* natsmon.c: nats-server's /varz, /connz (?limit=&offset=&subs=1|detail)
 * and /subsz. (/healthz is the admin server's own, in the same format.) */
void admin_natsmon_varz(void *ctx, const struct http_request *rq, const char *who,
                        struct admin_reply *rep);
void admin_natsmon_connz(void *ctx, const struct http_request *rq, const char *who,
                         struct admin_reply *rep);
void admin_natsmon_subsz(void *ctx, const struct http_request *rq, const char *who,
                         struct admin_reply *rep);

#endif
