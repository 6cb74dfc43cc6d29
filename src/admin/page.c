/* see page.h */
#include "admin/page.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "admin/admin.h"
#include "admin/history.h"
#include "bridge/bridge.h"
#include "broker/inspect.h"
#include "core/base64.h"
#include "core/clock.h"
#include "core/recent.h"
#include "http/jsonw.h"
#include "net/net.h"
#include "tls/tls.h"

/* Generated from status.html at build time (embed.cmake). */
extern const unsigned char admin_status_html[];
extern const size_t admin_status_html_len;

/* The page runs only its own inline script (named by its SHA-256, so no
 * other script runs even if markup slipped into the page), talks only to
 * the server that served it, and is never framed. Inline style stays
 * allowed: it cannot run code. */
#define PAGE_CSP                                                                                   \
    "Content-Security-Policy: default-src 'none'; script-src 'sha256-%s'; "                        \
    "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; "              \
    "form-action 'none'; frame-ancestors 'none'\r\n"
#define PAGE_HEADERS                                                                               \
    "X-Content-Type-Options: nosniff\r\n"                                                          \
    "X-Frame-Options: DENY\r\n"                                                                    \
    "Referrer-Policy: no-referrer\r\n"                                                             \
    "Cache-Control: no-cache\r\n"
#define STATUS_HEADERS                                                                             \
    "Cache-Control: no-store\r\n"                                                                  \
    "X-Content-Type-Options: nosniff\r\n"

struct admin_page {
    struct admin_page_sources src;
    struct history *history;
    uint64_t started_ms;
};

const uint8_t *admin_page_html(size_t *len)
{
    *len = admin_status_html_len;
    return admin_status_html;
}

/* The page's headers, its script's hash in the CSP: worked out once, from
 * the bytes served, so an edit of status.html can never leave a stale
 * hash behind. Empty if the page has no single script (its test says so). */
static char page_headers[512];
static pthread_once_t page_headers_once = PTHREAD_ONCE_INIT;

static void page_headers_build(void)
{
    const char *html = (const char *)admin_status_html;
    const char *open = strstr(html, "<script>");
    const char *start = open ? open + strlen("<script>") : NULL;
    const char *end = start ? strstr(start, "</script>") : NULL;
    uint8_t md[32];
    unsigned mdlen = 0;
    if (!end || !EVP_Digest(start, (size_t)(end - start), md, &mdlen, EVP_sha256(), NULL) ||
        mdlen != sizeof(md))
        return;
    char b64[BASE64_LEN(sizeof(md)) + 1];
    base64_encode(md, sizeof(md), b64);
    snprintf(page_headers, sizeof(page_headers), PAGE_CSP PAGE_HEADERS, b64);
}

const char *admin_page_headers(void)
{
    pthread_once(&page_headers_once, page_headers_build);
    return page_headers;
}

static uint64_t sum3(const uint64_t v[3])
{
    return v[0] + v[1] + v[2];
}

static uint64_t dropped_total(const struct broker_counters *c)
{
    return c->dropped_queue_full + c->dropped_offline_full + c->dropped_output_full +
           c->dropped_too_large + c->dropped_other;
}

/* history_source_fn: the broker's counters, the lock held only to copy. */
static bool read_counters(void *ctx, struct history_counters *out)
{
    struct admin_page *p = ctx;
    if (!p->src.broker)
        return false;
    struct broker_counters c;
    broker_inspect_counters(p->src.broker, &c);
    *out = (struct history_counters){
        .connections = c.clients_connected,
        .msgs_in = sum3(c.msgs_in),
        .msgs_out = sum3(c.msgs_out),
        .bytes_in = c.bytes_in,
        .bytes_out = c.bytes_out,
        .dropped = dropped_total(&c),
    };
    return true;
}

struct admin_page *admin_page_new(const struct admin_page_sources *src)
{
    struct admin_page *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->src = *src;
    if (p->src.nlisteners > ADMIN_PAGE_MAX_LISTENERS)
        p->src.nlisteners = ADMIN_PAGE_MAX_LISTENERS;
    if (p->src.nbridges > ADMIN_PAGE_MAX_BRIDGES)
        p->src.nbridges = ADMIN_PAGE_MAX_BRIDGES;
    if (!p->src.recent)
        p->src.recent = recent_process();
    p->started_ms = clock_mono_ms();
    p->history = history_new(read_counters, p);
    if (!p->history) {
        free(p);
        return NULL;
    }
    return p;
}

int admin_page_start(struct admin_page *p)
{
    return history_start(p->history);
}

void admin_page_free(struct admin_page *p)
{
    if (!p)
        return;
    history_free(p->history);
    free(p);
}

/* ---- GET /api/status ---------------------------------------------------- */

static void history_json(struct history *h, struct jsonw *w)
{
    static __thread struct history_point pts[HISTORY_SAMPLES];
    unsigned n = history_points(h, pts, HISTORY_SAMPLES);
    jsonw_object_begin(w);
    jsonw_kv_u64(w, "interval_s", HISTORY_INTERVAL_MS / 1000);
    jsonw_kv_u64(w, "span_s", HISTORY_SPAN_MS / 1000);
    jsonw_key(w, "points");
    jsonw_array_begin(w);
    for (unsigned i = 0; i < n; i++) {
        jsonw_object_begin(w);
        jsonw_kv_u64(w, "t", pts[i].wall_ms);
        jsonw_kv_u64(w, "connections", pts[i].connections);
        jsonw_key(w, "msgs_in");
        jsonw_double(w, pts[i].msgs_in);
        jsonw_key(w, "msgs_out");
        jsonw_double(w, pts[i].msgs_out);
        jsonw_key(w, "bytes_in");
        jsonw_double(w, pts[i].bytes_in);
        jsonw_key(w, "bytes_out");
        jsonw_double(w, pts[i].bytes_out);
        jsonw_kv_u64(w, "dropped", pts[i].dropped);
        jsonw_object_end(w);
    }
    jsonw_array_end(w);
    jsonw_object_end(w);
}

static const char *verify_name(enum tls_verify v)
{
    switch (v) {
    case TLS_VERIFY_REQUIRED:
        return "required";
    case TLS_VERIFY_OPTIONAL:
        return "optional";
    case TLS_VERIFY_NONE:
    default:
        return "none";
    }
}

#define PAGE_MAX_EXPIRIES 16

static void tls_json(struct tls_server *t, struct jsonw *w)
{
    jsonw_object_begin(w);
    jsonw_kv_string(w, "verify", verify_name(tls_server_config(t)->verify));
    jsonw_key(w, "days_left");
    jsonw_i64(w, tls_server_days_left(t));
    uint64_t causes[TLS_NCAUSES], failures = 0;
    tls_server_counters(t, causes);
    for (unsigned i = 0; i < TLS_NCAUSES; i++)
        failures += causes[i];
    jsonw_kv_u64(w, "handshake_failures", failures);
    struct tls_expiry ex[PAGE_MAX_EXPIRIES];
    int n = tls_server_expiries(t, ex, PAGE_MAX_EXPIRIES);
    jsonw_key(w, "expiries");
    jsonw_array_begin(w);
    for (int i = 0; i < n; i++) {
        jsonw_object_begin(w);
        jsonw_kv_string(w, "what", ex[i].what);
        jsonw_key(w, "days");
        jsonw_i64(w, ex[i].days);
        jsonw_object_end(w);
    }
    jsonw_array_end(w);
    jsonw_object_end(w);
}

static void listeners_json(struct admin_page *p, const struct broker_counters *c, struct jsonw *w)
{
    jsonw_key(w, "listeners");
    jsonw_array_begin(w);
    for (unsigned i = 0; i < p->src.nlisteners; i++) {
        const struct admin_page_listener *l = &p->src.listeners[i];
        jsonw_object_begin(w);
        jsonw_kv_u64(w, "index", i);
        jsonw_kv_string(w, "url", l->url ? l->url : "");
        jsonw_kv_u64(w, "port", p->src.net ? net_server_port(p->src.net, i) : 0);
        jsonw_kv_string(w, "protocol", l->protocol ? l->protocol : "mqtt");
        jsonw_kv_string(w, "transport", l->transport ? l->transport : "tcp");
        jsonw_kv_u64(w, "connections", i < BROKER_INSPECT_LISTENERS ? c->listener_conns[i] : 0);
        jsonw_key(w, "tls");
        if (l->tls)
            tls_json(l->tls, w);
        else
            jsonw_null(w);
        jsonw_object_end(w);
    }
    jsonw_array_end(w);
}

static void bridges_json(struct admin_page *p, struct jsonw *w)
{
    jsonw_key(w, "bridges");
    jsonw_array_begin(w);
    for (unsigned i = 0; i < p->src.nbridges; i++) {
        struct bridge_status st;
        bridge_status(p->src.bridges[i], &st);
        jsonw_object_begin(w);
        jsonw_kv_string(w, "name", st.name);
        jsonw_kv_string(w, "server", st.server);
        jsonw_kv_bool(w, "connected", st.connected);
        jsonw_kv_u64(w, "since", st.since);
        jsonw_kv_u64(w, "queued", st.queued);
        jsonw_kv_u64(w, "sent", st.sent);
        jsonw_kv_u64(w, "received", st.received);
        jsonw_kv_u64(w, "dropped", st.dropped);
        jsonw_kv_u64(w, "connects", st.connects);
        jsonw_kv_string(w, "last_error", st.last_error);
        jsonw_object_end(w);
    }
    jsonw_array_end(w);
}

/* A refusal's listener as the operator configured it. */
static void listener_name(struct admin_page *p, unsigned i, char *out, size_t cap)
{
    if (i < p->src.nlisteners && p->src.listeners[i].url)
        snprintf(out, cap, "%s", p->src.listeners[i].url);
    else if (i == NET_LISTENER_INTERNAL)
        snprintf(out, cap, "internal");
    else if (i == RECENT_LISTENER_NONE)
        snprintf(out, cap, "?");
    else
        snprintf(out, cap, "#%u", i);
}

static void refusals_json(struct admin_page *p, struct jsonw *w)
{
    struct recent_entry e[ADMIN_PAGE_REFUSALS];
    unsigned n = recent_copy(p->src.recent, e, ADMIN_PAGE_REFUSALS);
    jsonw_key(w, "refusals");
    jsonw_object_begin(w);
    jsonw_kv_u64(w, "total", recent_total(p->src.recent));
    jsonw_key(w, "latest");
    jsonw_array_begin(w);
    for (unsigned i = 0; i < n; i++) {
        char name[320];
        listener_name(p, e[i].listener, name, sizeof(name));
        jsonw_object_begin(w);
        jsonw_kv_u64(w, "t", e[i].wall_ms);
        jsonw_kv_string(w, "listener", name);
        jsonw_kv_string(w, "peer", e[i].peer);
        jsonw_kv_string(w, "cause", e[i].cause);
        jsonw_object_end(w);
    }
    jsonw_array_end(w);
    jsonw_object_end(w);
}

static void totals_json(const struct broker_counters *c, struct jsonw *w)
{
    jsonw_key(w, "totals");
    jsonw_object_begin(w);
    jsonw_kv_u64(w, "msgs_in", sum3(c->msgs_in));
    jsonw_kv_u64(w, "msgs_out", sum3(c->msgs_out));
    jsonw_kv_u64(w, "bytes_in", c->bytes_in);
    jsonw_kv_u64(w, "bytes_out", c->bytes_out);
    jsonw_kv_u64(w, "dropped", dropped_total(c));
    jsonw_kv_u64(w, "auth_failures", c->auth_failures);
    jsonw_kv_u64(w, "connects", c->connects);
    jsonw_object_end(w);
}

int admin_page_status_json(struct admin_page *p, struct buf *out)
{
    struct broker_counters c = {0};
    if (p->src.broker)
        broker_inspect_counters(p->src.broker, &c);
    else
        c.uptime_ms = clock_mono_ms() - p->started_ms;
    struct jsonw w;
    jsonw_init(&w, out);
    jsonw_object_begin(&w);
    jsonw_kv_string(&w, "version", WARD_VERSION);
    jsonw_kv_u64(&w, "now", clock_wall_ms());
    jsonw_kv_u64(&w, "uptime_s", c.uptime_ms / 1000);
    jsonw_kv_u64(&w, "connections", c.clients_connected);
    jsonw_kv_u64(&w, "connections_max", c.clients_max);
    jsonw_kv_u64(&w, "sessions", c.sessions);
    jsonw_kv_u64(&w, "subscriptions", c.subscriptions);
    jsonw_kv_u64(&w, "retained", c.retained);
    totals_json(&c, &w);
    listeners_json(p, &c, &w);
    bridges_json(p, &w);
    jsonw_key(&w, "history");
    history_json(p->history, &w);
    refusals_json(p, &w);
    jsonw_object_end(&w);
    return jsonw_done(&w) ? 0 : -1;
}

static void get_status(void *ctx, const struct http_request *rq, const char *who,
                       struct admin_reply *rep)
{
    struct admin_page *p = ctx;
    if (admin_page_status_json(p, &rep->body) < 0) {
        buf_reset(&rep->body);
        admin_reply_error(rep, 500, "out of memory");
        return;
    }
    snprintf(rep->extra, sizeof(rep->extra), "%s", STATUS_HEADERS);
}

static void get_page(void *ctx, const struct http_request *rq, const char *who,
                     struct admin_reply *rep)
{
    if (!ward_ok(buf_append(&rep->body, admin_status_html, admin_status_html_len))) {
        admin_reply_error(rep, 500, "out of memory");
        return;
    }
    rep->content_type = "text/html; charset=utf-8";
    snprintf(rep->extra, sizeof(rep->extra), "%s", admin_page_headers());
}

int admin_page_register(struct admin *a, struct admin_page *p)
{
    if (admin_route(a, "GET", "/", ADMIN_SCOPE_OPEN, get_page, p) < 0 ||
        admin_route(a, "GET", "/api/status", ADMIN_SCOPE_READ, get_status, p) < 0)
        return -1;
    return 0;
}
