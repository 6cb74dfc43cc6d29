/* The status page (docs/status-page.md): GET / serves one self-contained
 * HTML page (src/admin/status.html, built into the binary), and GET
 * /api/status the JSON it reads every few seconds: version, uptime,
 * connections, listeners with their protocol, transport, TLS state and
 * certificate expiry, bridges, the rates of the last 15 minutes
 * (admin/history.h) and the latest refusals (core/recent.h).
 *
 * The page itself holds no data, so GET / is open; /api/status needs the
 * read scope, and the page asks for a key when the server says 401. */
#ifndef WARD_ADMIN_PAGE_H
#define WARD_ADMIN_PAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/result.h"

struct admin;
struct broker;
struct net_server;
struct tls_server;
struct bridge;
struct recent;

#define ADMIN_PAGE_MAX_LISTENERS 64 /* net's listener indexes */
#define ADMIN_PAGE_MAX_BRIDGES   32
#define ADMIN_PAGE_REFUSALS      20 /* latest refusals in /api/status */

/* One listener, at its net listener index. The strings must outlive the
 * page. */
struct admin_page_listener {
    const char *url;        /* as configured: "tls://0.0.0.0:8883" */
    const char *protocol;   /* "mqtt" or "nats" */
    const char *transport;  /* "tcp", "tls", "ws" or "wss" */
    struct tls_server *tls; /* NULL on plain listeners */
};

/* What the page shows; copied by admin_page_new. Every pointer must
 * outlive the page; NULLs leave their part empty. */
struct admin_page_sources {
    struct broker *broker;
    struct net_server *net;
    struct admin_page_listener listeners[ADMIN_PAGE_MAX_LISTENERS];
    unsigned nlisteners;
    struct bridge *bridges[ADMIN_PAGE_MAX_BRIDGES];
    unsigned nbridges;
    struct recent *recent; /* NULL: the process's ring, recent_process() */
};

struct admin_page;

/* NULL: out of memory. Nothing runs until admin_page_start. */
WARD_WUR struct admin_page *admin_page_new(const struct admin_page_sources *src);
/* Adds GET / (open) and GET /api/status (read scope) to the server; call
 * before admin_start(). Returns 0 or -1 (admin_route refused). */
WARD_WUR int admin_page_register(struct admin *a, struct admin_page *p);
/* Starts sampling the broker's counters for the rate history. 0 or -1. */
WARD_WUR int admin_page_start(struct admin_page *p);
/* Stops sampling and frees; NULL is a no-op. */
void admin_page_free(struct admin_page *p);

/* The JSON of GET /api/status into out (appended). Returns 0, or -1 (out
 * of memory or over out's limit). */
WARD_WUR int admin_page_status_json(struct admin_page *p, struct buf *out);
/* The page's bytes. */
const uint8_t *admin_page_html(size_t *len);
/* The header lines GET / is served with ("Name: value\r\n" each): a
 * Content-Security-Policy that runs only the page's own script (by its
 * SHA-256) and connects only to its server, no framing, no sniffing. */
const char *admin_page_headers(void);

#endif
