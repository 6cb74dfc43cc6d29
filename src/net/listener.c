/* Listening sockets and their settings; accepting, with the limits on
 * connections (per listener, per server, and what the file-descriptor limit
 * allows) and the back-off when accept() itself fails; per-listener
 * counters and rate-limited log lines. Contracts in net.h. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "net/internal.h"
#include "tls/tls.h"

#define ACCEPTS_PER_TURN 64  /* then let connections run */
#define ACCEPT_PAUSE_MS  100 /* after accept() failed with no way to shed the connection */
#define LOG_EVERY_MS     1000
#define FD_HEADROOM      32 /* descriptors kept for files, bridges, reloads */

static const char *const stat_names[NET_NSTATS] = {
    [NET_ST_ACCEPTED] = "accepted",
    [NET_ST_REFUSED_LIMIT] = "refused/max_connections",
    [NET_ST_REFUSED_FDS] = "refused/fd_limit",
    [NET_ST_ACCEPT_ERRORS] = "accept_errors",
    [NET_ST_ACCEPT_PAUSES] = "accept_pauses",
    [NET_ST_HS_QUEUED] = "handshakes/queued",
    [NET_ST_HS_EVICTED] = "handshakes/evicted",
    [NET_ST_HS_REFUSED] = "handshakes/refused",
    [NET_ST_HS_IDLE_TIMEOUTS] = "handshakes/idle_timeouts",
    [NET_ST_HS_TIMEOUTS] = "handshakes/timeouts",
    [NET_ST_PROXY_ACCEPTED] = "proxy/accepted",
    [NET_ST_PROXY_REFUSED] = "proxy/refused",
    [NET_ST_GRACEFUL_CLOSES] = "graceful_closes",
    [NET_ST_SLOW_CONSUMERS] = "slow_consumers",
    [NET_ST_WS_UPGRADES] = "websocket/upgrades",
    [NET_ST_WS_REFUSED] = "websocket/refused",
};

const char *net_stat_name(enum net_stat st)
{
    return (unsigned)st < NET_NSTATS ? stat_names[st] : "?";
}

/* ---- counters and rate-limited lines ---- */

/* see internal.h */
void listener_note(struct listener *l, enum net_stat st, const char *peer, const char *fmt, ...)
{
    uint64_t total = atomic_fetch_add(&l->st[st], 1) + 1;
    struct ratelog *r = &l->rl[st];
    uint64_t now = clock_mono_ms(), last = atomic_load(&r->last_ms);
    if ((last && now - last < LOG_EVERY_MS) ||
        !atomic_compare_exchange_strong(&r->last_ms, &last, now)) {
        atomic_fetch_add(&r->held, 1);
        return;
    }
    uint64_t held = atomic_exchange(&r->held, 0);
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_warn("net: port %u: %s: %s [%s: %" PRIu64 " in total, %" PRIu64 " not logged]", l->port,
             peer, msg, stat_names[st], total, held);
}

/* see internal.h */
void listener_report_held(struct listener *l)
{
    uint64_t now = clock_mono_ms();
    for (unsigned st = 0; st < NET_NSTATS; st++) {
        struct ratelog *r = &l->rl[st];
        uint64_t last = atomic_load(&r->last_ms);
        if (!atomic_load(&r->held) || now - last < LOG_EVERY_MS ||
            !atomic_compare_exchange_strong(&r->last_ms, &last, now))
            continue;
        uint64_t held = atomic_exchange(&r->held, 0);
        log_warn("net: port %u: %" PRIu64 " more not logged [%s: %" PRIu64 " in total]", l->port,
                 held, stat_names[st], atomic_load(&l->st[st]));
    }
}

/* ---- settings from the URL query ---- */

static int parse_ms(const char *v, uint32_t *out)
{
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    unsigned long long mul = strcmp(end, "ms") == 0                  ? 1
                             : strcmp(end, "s") == 0 || *end == '\0' ? 1000
                             : strcmp(end, "m") == 0                 ? 60000
                             : strcmp(end, "h") == 0                 ? 3600000
                                                                     : 0;
    if (end == v || v[0] == '-' || !mul || n > UINT32_MAX / mul)
        return -1;
    *out = (uint32_t)(n * mul);
    return 0;
}

static int parse_u32(const char *v, uint32_t *out)
{
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (end == v || *end || v[0] == '-' || n > UINT32_MAX)
        return -1;
    *out = (uint32_t)n;
    return 0;
}

/* One "key=value" of the query into o; trusted_proxies is copied to tp. */
static int query_item(char *item, struct net_listen_opts *o, char *tp, size_t tplen)
{
    char *v = strchr(item, '=');
    if (!v)
        return -1;
    *v++ = '\0';
    if (strcmp(item, "max_connections") == 0)
        return parse_u32(v, &o->max_connections);
    if (strcmp(item, "max_handshakes") == 0)
        return parse_u32(v, &o->max_handshakes);
    if (strcmp(item, "slow_consumer_timeout") == 0)
        return parse_ms(v, &o->slow_consumer_timeout_ms);
    if (strcmp(item, "handshake_queue") == 0)
        return parse_u32(v, &o->handshake_queue);
    if (strcmp(item, "handshake_queue_timeout") == 0)
        return parse_ms(v, &o->handshake_queue_timeout_ms);
    if (strcmp(item, "handshake_timeout") == 0)
        return parse_ms(v, &o->handshake_timeout_ms);
    if (strcmp(item, "handshake_idle_timeout") == 0)
        return parse_ms(v, &o->handshake_idle_timeout_ms);
    if (strcmp(item, "proxy_protocol") == 0) {
        o->proxy_protocol = strcmp(v, "true") == 0 || strcmp(v, "1") == 0;
        return o->proxy_protocol || strcmp(v, "false") == 0 || strcmp(v, "0") == 0 ? 0 : -1;
    }
    if (strcmp(item, "trusted_proxies") == 0 && strlen(v) < tplen) {
        snprintf(tp, tplen, "%s", v);
        o->trusted_proxies = tp;
        return 0;
    }
    return -1;
}

static int parse_query(const char *url, const char *q, struct net_listen_opts *o, char *tp,
                       size_t tplen, char *err, size_t errlen)
{
    char copy[1024];
    if (strlen(q) >= sizeof(copy)) {
        snprintf(err, errlen, "%s: listener settings too long", url);
        return -1;
    }
    snprintf(copy, sizeof(copy), "%s", q);
    char *save = NULL;
    for (char *it = strtok_r(copy, "&", &save); it; it = strtok_r(NULL, "&", &save)) {
        char shown[128];
        snprintf(shown, sizeof(shown), "%s", it);
        if (query_item(it, o, tp, tplen) < 0) {
            snprintf(err, errlen, "%s: bad listener setting '%s'", url, shown);
            return -1;
        }
    }
    return 0;
}

/* "10.0.0.0/8,127.0.0.1" into l->trusted. */
static int parse_trusted(struct listener *l, const char *list, char *err, size_t errlen)
{
    char copy[1024], *save = NULL;
    snprintf(copy, sizeof(copy), "%s", list);
    size_t n = 1;
    for (const char *p = copy; *p; p++)
        n += *p == ',';
    l->trusted = calloc(n, sizeof(*l->trusted));
    if (!l->trusted)
        return snprintf(err, errlen, "out of memory"), -1;
    for (char *it = strtok_r(copy, ", ", &save); it; it = strtok_r(NULL, ", ", &save)) {
        if (proxy_cidr_parse(it, &l->trusted[l->ntrusted]) < 0) {
            snprintf(err, errlen, "trusted_proxies: '%s' is not an address or CIDR range", it);
            return -1;
        }
        l->ntrusted++;
    }
    if (!l->ntrusted)
        return snprintf(err, errlen, "proxy_protocol needs trusted_proxies"), -1;
    return 0;
}

/* ---- listening ---- */

static bool scheme_is(const char *scheme, const char *const *names)
{
    for (; *names; names++)
        if (strcmp(scheme, *names) == 0)
            return true;
    return false;
}

/* The upgrade's rules and the frame limits of a WebSocket listener. l->ws
 * and l->ws_path (the URL's, or NULL) are set; m has the merged settings. */
static int ws_settings(struct listener *l, const struct net_listen_opts *m, char *err,
                       size_t errlen)
{
    struct ws_settings *w = &l->wss;
    if (m->ws_path) {
        free(l->ws_path);
        l->ws_path = *m->ws_path ? strdup(m->ws_path) : NULL;
        if (*m->ws_path && !l->ws_path)
            return snprintf(err, errlen, "out of memory"), -1;
    }
    /* Compared with the request target as sent (not decoded). */
    bool bad = l->ws_path && l->ws_path[0] != '/';
    for (const char *p = l->ws_path; p && *p && !bad; p++)
        bad = (unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || *p == '#' || *p == '?';
    if (bad)
        return snprintf(err, errlen,
                        "WebSocket path '%s': '/' then printable ASCII without spaces, '?' or '#'",
                        l->ws_path),
               -1;
    w->rules.path = l->ws_path;
    if (m->ws_origins && *m->ws_origins) {
        size_t n = 1;
        for (const char *p = m->ws_origins; *p; p++)
            n += *p == ',';
        l->ws_origins = calloc(n + 1, sizeof(char *));
        if (!l->ws_origins)
            return snprintf(err, errlen, "out of memory"), -1;
        size_t k = 0;
        for (const char *p = m->ws_origins; *p;) {
            size_t len = strcspn(p, ",");
            const char *e = p + len;
            while (p < e && *p == ' ')
                p++;
            while (e > p && e[-1] == ' ')
                e--;
            if (e > p && !(l->ws_origins[k++] = strndup(p, (size_t)(e - p))))
                return snprintf(err, errlen, "out of memory"), -1;
            p += len + (p[len] == ',');
        }
        w->rules.origins = (const char *const *)l->ws_origins;
        w->rules.norigins = k;
    }
    w->same_origin = m->ws_same_origin;
    http_limits_defaults(&w->http);
    w->http.max_head = m->ws_max_header ? m->ws_max_header : WS_DEFAULT_MAX_HEADER;
    w->http.max_body = 0;
    w->max_message = m->ws_max_message ? m->ws_max_message : l->max_input;
    return 0;
}

static void listener_free_ws(struct listener *l)
{
    free(l->ws_path);
    l->ws_path = NULL;
    for (size_t i = 0; l->ws_origins && l->ws_origins[i]; i++)
        free(l->ws_origins[i]);
    free(l->ws_origins);
    l->ws_origins = NULL;
}

/* see internal.h */
void listener_free(struct listener *l)
{
    free(l->trusted);
    l->trusted = NULL;
    hsgate_free(&l->gate);
    listener_free_ws(l);
}

/* a if set, else b */
static uint32_t either(uint32_t a, uint32_t b)
{
    return a ? a : b;
}

/* Settings: the query's, then opts' non-zero values over them, then the
 * TLS server's and the defaults for what is still unset. */
static int apply_opts(struct listener *l, const char *url, const struct net_listen_opts *q,
                      const struct net_listen_opts *o, char *err, size_t errlen)
{
    struct net_listen_opts m = *q;
    if (o) {
        m.max_connections = either(o->max_connections, m.max_connections);
        m.proxy_protocol = o->proxy_protocol || m.proxy_protocol;
        m.trusted_proxies = o->trusted_proxies ? o->trusted_proxies : m.trusted_proxies;
        m.handshake_timeout_ms = either(o->handshake_timeout_ms, m.handshake_timeout_ms);
        m.max_handshakes = either(o->max_handshakes, m.max_handshakes);
        m.handshake_idle_timeout_ms =
            either(o->handshake_idle_timeout_ms, m.handshake_idle_timeout_ms);
        m.handshake_queue = either(o->handshake_queue, m.handshake_queue);
        m.handshake_queue_timeout_ms =
            either(o->handshake_queue_timeout_ms, m.handshake_queue_timeout_ms);
        m.max_output_bytes = o->max_output_bytes ? o->max_output_bytes : m.max_output_bytes;
        m.slow_consumer_timeout_ms =
            either(o->slow_consumer_timeout_ms, m.slow_consumer_timeout_ms);
        m.max_input = o->max_input ? o->max_input : m.max_input;
        m.greeting = o->greeting;
        m.tls_handshake_first = o->tls_handshake_first;
        m.ws_path = o->ws_path;
        m.ws_origins = o->ws_origins;
        m.ws_same_origin = o->ws_same_origin;
        m.ws_max_message = o->ws_max_message;
        m.ws_max_header = o->ws_max_header;
    }
    l->max_input = m.max_input;
    if (l->ws && ws_settings(l, &m, err, errlen) < 0) {
        char why[256];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errlen, "%s: %s", url, why);
        return -1;
    }
    l->greeting = l->tls && !l->ws && m.tls_handshake_first ? NULL : m.greeting;
    l->max_output = m.max_output_bytes;
    l->slow_consumer_ms = m.slow_consumer_timeout_ms;
    const struct tls_server_config *tc = l->tls ? tls_server_config(l->tls) : NULL;
    l->max_conns = m.max_connections;
    l->hs_timeout_ms =
        either(m.handshake_timeout_ms, either(tc ? tc->handshake_timeout_ms : 0, 10000));
    l->hs_idle_ms = either(m.handshake_idle_timeout_ms, l->hs_timeout_ms / 4);
    if (l->hs_idle_ms > l->hs_timeout_ms)
        l->hs_idle_ms = l->hs_timeout_ms;
    uint32_t cap = either(m.max_handshakes, either(tc ? tc->max_handshakes : 0, 1000));
    /* A waiting connection costs its socket and a net_conn, no TLS state:
     * the queue is deep by default, so a reconnect storm waits for slots
     * instead of being refused (each wait bounded by hs_queue_ms). */
    uint32_t qcap = m.handshake_queue       ? m.handshake_queue
                    : cap > UINT32_MAX / 16 ? UINT32_MAX
                                            : cap * 16;
    /* A slot's holder that has sent nothing for half the idle timeout
     * (1.25 s by default) may lose it to a fairer source: a slow-loris
     * soon does, a storm's client whose ClientHello is on its way does not. */
    hsgate_init(&l->gate, cap, qcap, l->hs_idle_ms / 2);
    l->hs_queue_ms = either(m.handshake_queue_timeout_ms, 60000);
    l->proxy = m.proxy_protocol;
    /* A WebSocket listener trusts its proxies' X-Forwarded-For as well. */
    bool trust = l->proxy || (l->ws && m.trusted_proxies);
    if (trust && parse_trusted(l, m.trusted_proxies ? m.trusted_proxies : "", err, errlen) < 0) {
        char why[256];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errlen, "%s: %s", url, why);
        return -1;
    }
    return 0;
}

/* see net.h */
int net_server_listen_opts(struct net_server *s, const char *url, struct tls_server *tls,
                           const struct net_listen_opts *opts, char *err, size_t errlen)
{
    static const char *const plain[] = {"tcp", "mqtt-tcp", "mqtt", "nats", "ws", "nats+ws", NULL};
    static const char *const secure[] = {"tls",          "ssl",      "mqtts",     "mtls",
                                         "tls+mqtt-tcp", "nats+tls", "nats+mtls", "wss",
                                         "nats+wss",     NULL};
    static const char *const websocket[] = {"ws", "wss", "nats+ws", "nats+wss", NULL};
    char scheme[32], host[256], base[512], tp[1024], path[256] = "";
    struct net_listen_opts q = {0};
    uint16_t port;
    if (s->nlisteners >= MAX_LISTENERS) {
        snprintf(err, errlen, "%s: at most %d listeners", url, MAX_LISTENERS);
        return -1;
    }
    const char *query = strchr(url, '?');
    snprintf(base, sizeof(base), "%.*s", query ? (int)(query - url) : (int)strlen(url), url);
    if (query && parse_query(url, query + 1, &q, tp, sizeof(tp), err, errlen) < 0)
        return -1;
    /* A WebSocket URL may end in the path it serves (NanoMQ's bind has it
     * too: "0.0.0.0:8083/mqtt"). */
    const char *sep = strstr(base, "://");
    char *slash = strchr(sep ? sep + 3 : base, '/');
    if (slash) {
        snprintf(path, sizeof(path), "%s", slash);
        *slash = '\0';
    }
    if (tcp_parse_url(base, scheme, sizeof(scheme), host, sizeof(host), &port, err, errlen) < 0)
        return -1;
    if (!scheme_is(scheme, tls ? secure : plain)) {
        snprintf(err, errlen, "%s: unsupported scheme '%s' (%s)", url, scheme,
                 tls ? "tls://, mtls://, ssl:// or wss://"
                     : "tcp://, ws://, or tls:// with certificates");
        return -1;
    }
    bool ws = scheme_is(scheme, websocket);
    if (*path && !ws) {
        snprintf(err, errlen, "%s: only WebSocket listeners serve a path", url);
        return -1;
    }
    struct listener *l = &s->listeners[s->nlisteners];
    memset(l, 0, sizeof(*l));
    l->tls = tls;
    l->ws = ws;
    if (ws) {
        bool nats = strncmp(scheme, "nats", 4) == 0;
        l->ws_path = strdup(*path ? path : nats ? "/" : "/mqtt");
        if (!l->ws_path) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        if (nats && !*path) { /* nats-server serves any path */
            free(l->ws_path);
            l->ws_path = NULL;
        }
        if (!nats) {
            l->wss.rules.protocols = ws_mqtt_protocols;
            l->wss.rules.nprotocols = WS_MQTT_NPROTOCOLS;
            l->wss.rules.protocol_required = true;
        }
    }
    if (apply_opts(l, url, &q, opts, err, errlen) < 0) {
        listener_free(l);
        return -1;
    }
    if (ws && !l->wss.max_message)
        l->wss.max_message = s->cfg.max_input;
    l->fd = -1;
    bool passed = false;
    for (unsigned i = 0; i < s->ninherited && l->fd < 0; i++) {
        int fd = s->inherited[i];
        if (fd < 0 || !tcp_listener_matches(fd, host, port))
            continue;
        if (tcp_adopt_listener(fd, &l->port, err, errlen) < 0) {
            listener_free(l);
            return -1;
        }
        l->fd = fd;
        s->inherited[i] = -1;
        passed = true;
    }
    if (l->fd < 0)
        l->fd = tcp_listen(host, port, &l->port, err, errlen);
    if (l->fd < 0) {
        listener_free(l);
        return -1;
    }
    pthread_mutex_init(&l->gate_lock, NULL);
    l->kind = SRC_LISTENER;
    l->index = s->nlisteners++;
    /* else "tcp", whatever was written */
    bool named = tls || ws || strcmp(scheme, "nats") == 0;
    log_notice("listening on %s://%s:%u%s%s%s", named ? scheme : "tcp", *host ? host : "*", l->port,
               ws ? (l->ws_path ? l->ws_path : " (any path)") : "",
               l->proxy ? " (PROXY protocol from trusted proxies)" : "",
               passed ? " (a socket systemd passed)" : "");
    return 0;
}

int net_server_listen(struct net_server *s, const char *url, char *err, size_t errlen)
{
    return net_server_listen_opts(s, url, NULL, NULL, err, errlen);
}

int net_server_listen_tls(struct net_server *s, const char *url, struct tls_server *tls, char *err,
                          size_t errlen)
{
    return net_server_listen_opts(s, url, tls, NULL, err, errlen);
}

uint16_t net_server_port(const struct net_server *s, unsigned i)
{
    return i < s->nlisteners ? s->listeners[i].port : 0;
}

/* ---- accepting ---- */

static void format_peer(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        snprintf(out, len, "[%s]:%u", host, ntohs(a->sin6_port));
        return;
    }
    const struct sockaddr_in *a = (const void *)ss;
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
    snprintf(out, len, "%s:%u", host, ntohs(a->sin_port));
}

/* Counts the new connection against the limits; false (closed, counted and
 * logged) if it is over one of them. */
static bool within_limits(struct net_server *s, struct listener *l, int fd,
                          const struct sockaddr_storage *ss)
{
    uint32_t all = atomic_fetch_add(&s->nconns, 1);
    uint32_t mine = atomic_fetch_add(&l->nconns, 1);
    enum net_stat st = NET_ST_ACCEPTED;
    uint32_t limit = 0;
    if (l->max_conns && mine >= l->max_conns)
        st = NET_ST_REFUSED_LIMIT, limit = l->max_conns;
    else if (s->cfg.max_connections && all >= s->cfg.max_connections)
        st = NET_ST_REFUSED_LIMIT, limit = s->cfg.max_connections;
    else if (s->fd_budget && all >= s->fd_budget)
        st = NET_ST_REFUSED_FDS, limit = s->fd_budget;
    if (st == NET_ST_ACCEPTED)
        return true;
    char peer[64];
    format_peer(ss, peer, sizeof(peer));
    if (st == NET_ST_REFUSED_LIMIT)
        listener_note(l, st, peer, "refused: %s (%u) reached",
                      limit == l->max_conns ? "listener max_connections" : "max_connections",
                      limit);
    else
        listener_note(l, st, peer, "refused: the file descriptor limit allows %u connections",
                      limit);
    /* Counted before the close, which the peer sees; the slot is given
     * back after it, so the descriptor is really free again. */
    close(fd);
    atomic_fetch_sub(&l->nconns, 1);
    atomic_fetch_sub(&s->nconns, 1);
    return false;
}

static void pause_listener(struct worker *w, struct listener *l)
{
    if (epoll_ctl(w->epfd, EPOLL_CTL_DEL, l->fd, NULL) < 0)
        log_warn("net: epoll_ctl(DEL) pausing listener %u: %s", l->index, strerror(errno));
    w->paused_until[l->index] = clock_mono_ms() + ACCEPT_PAUSE_MS;
    atomic_fetch_add(&l->st[NET_ST_ACCEPT_PAUSES], 1);
}

/* see internal.h */
int listener_resume(struct worker *w, uint64_t now, int max)
{
    int wait = max;
    for (unsigned i = 0; i < w->s->nlisteners; i++) {
        uint64_t until = w->paused_until[i];
        if (!until)
            continue;
        if (now < until) {
            wait = until - now < (uint64_t)wait ? (int)(until - now) : wait;
            continue;
        }
        struct listener *l = &w->s->listeners[i];
        if (atomic_load(&w->s->accept_stopped)) { /* net_server_stop_accepting */
            w->paused_until[i] = 0;
            continue;
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = l};
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, l->fd, &ev) < 0 && errno != EEXIST) {
            /* Left paused: tried again after another pause. */
            log_error("net: epoll_ctl(ADD) resuming listener %u: %s", i, strerror(errno));
            w->paused_until[i] = now + ACCEPT_PAUSE_MS;
            continue;
        }
        w->paused_until[i] = 0;
    }
    return wait;
}

/* accept() failed. Out of descriptors, the pending connection would make
 * the listening socket readable forever (a loop at full CPU): the worker's
 * spare descriptor is freed to accept it and close it at once. Linux fails
 * accept() with EMFILE before it looks at the queue, so the loop stops
 * there: the level-triggered listener wakes the worker again while more
 * connections wait. Without a spare this worker stops accepting on l for a
 * moment. Returns true to go on accepting. */
static bool accept_failed(struct worker *w, struct listener *l, int err)
{
    if (err == EAGAIN || err == EWOULDBLOCK || atomic_load(&w->s->accept_stopped))
        return false; /* after net_server_stop_accepting: EINVAL, not a failure */
    if (err == EINTR || err == ECONNABORTED || err == EPROTO)
        return true;
    listener_note(l, NET_ST_ACCEPT_ERRORS, "accept", "%s", strerror(err));
    if ((err == EMFILE || err == ENFILE) && w->spare >= 0) {
        close(w->spare);
        struct sockaddr_storage ss = {0};
        socklen_t sl = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
        if (fd >= 0) {
            /* Counted before the close, which the peer sees. */
            char peer[64];
            format_peer(&ss, peer, sizeof(peer));
            listener_note(l, NET_ST_REFUSED_FDS, peer, "refused: out of file descriptors");
            close(fd);
        }
        w->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (w->spare >= 0)
            return false;
    }
    pause_listener(w, l);
    return false;
}

/* see internal.h */
void listener_accept(struct worker *w, struct listener *l)
{
    if (w->spare < 0)
        w->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (int i = 0; i < ACCEPTS_PER_TURN; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (accept_failed(w, l, errno))
                continue;
            return;
        }
        if (within_limits(w->s, l, fd, &ss))
            conn_open(w, l, fd, NULL, &ss);
    }
}

/* ---- descriptors ---- */

static unsigned open_fds(void)
{
    unsigned n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 64; /* a guess on systems without /proc */
    while (readdir(d))
        n++;
    closedir(d);
    return n > 3 ? n - 3 : 0; /* ".", ".." and the directory's own */
}

/* see internal.h */
void listener_fd_budget(struct net_server *s)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit up = {rl.rlim_max, rl.rlim_max};
        /* An unlimited hard limit still stops at fs.nr_open. */
        FILE *f = rl.rlim_max == RLIM_INFINITY ? fopen("/proc/sys/fs/nr_open", "r") : NULL;
        unsigned long long nr = 0;
        if (f && fscanf(f, "%llu", &nr) == 1 && nr > rl.rlim_cur)
            up.rlim_cur = (rlim_t)nr;
        if (f)
            fclose(f);
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl = up;
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > UINT32_MAX)
        return;
    unsigned used = open_fds();
    uint64_t left = rl.rlim_cur > used ? rl.rlim_cur - used : 0;
    uint64_t keep = left / 4 < FD_HEADROOM ? left / 4 : FD_HEADROOM;
    s->fd_budget = left - keep > 0 ? (uint32_t)(left - keep) : 1;
    if (s->cfg.max_connections && s->fd_budget < s->cfg.max_connections)
        log_notice("net: the file descriptor limit (%llu, %u in use) allows %u connections, fewer "
                   "than max_connections (%u); more are refused",
                   (unsigned long long)rl.rlim_cur, used, s->fd_budget, s->cfg.max_connections);
    else
        log_info("net: the file descriptor limit (%llu, %u in use) allows %u connections",
                 (unsigned long long)rl.rlim_cur, used, s->fd_budget);
}

/* see net.h */
void net_server_inherit(struct net_server *s, const int *fds, unsigned n)
{
    s->ninherited = n < MAX_LISTENERS ? n : MAX_LISTENERS;
    for (unsigned i = 0; i < s->ninherited; i++)
        s->inherited[i] = fds[i];
}

/* see net.h */
unsigned net_server_inherited_unused(const struct net_server *s, int *fds, unsigned cap)
{
    unsigned n = 0;
    for (unsigned i = 0; i < s->ninherited; i++)
        if (s->inherited[i] >= 0 && n < cap)
            fds[n++] = s->inherited[i];
    return n;
}

uint32_t net_server_fd_budget(const struct net_server *s)
{
    return s->fd_budget;
}

/* ---- counters out ---- */

/* see net.h */
bool net_server_listener_stats(const struct net_server *s, unsigned i, uint64_t out[NET_NSTATS])
{
    if (i >= s->nlisteners)
        return false;
    struct listener *l = (struct listener *)&s->listeners[i];
    for (unsigned k = 0; k < NET_NSTATS; k++)
        out[k] = atomic_load(&l->st[k]);
    return true;
}

/* see net.h */
void net_server_sys(void *server, void (*emit)(void *ectx, const char *topic, const char *value),
                    void *ectx)
{
    struct net_server *s = server;
    char topic[128], value[32];
    for (unsigned i = 0; i < s->nlisteners; i++) {
        struct listener *l = &s->listeners[i];
        for (unsigned k = 0; k < NET_NSTATS; k++) {
            snprintf(topic, sizeof(topic), "$SYS/broker/listeners/%u/%s", l->port, stat_names[k]);
            snprintf(value, sizeof(value), "%" PRIu64, atomic_load(&l->st[k]));
            emit(ectx, topic, value);
        }
        snprintf(topic, sizeof(topic), "$SYS/broker/listeners/%u/connections", l->port);
        snprintf(value, sizeof(value), "%u", atomic_load(&l->nconns));
        emit(ectx, topic, value);
        if (!l->tls)
            continue;
        pthread_mutex_lock(&l->gate_lock);
        uint32_t active = l->gate.active, waiting = l->gate.waiting;
        pthread_mutex_unlock(&l->gate_lock);
        snprintf(topic, sizeof(topic), "$SYS/broker/listeners/%u/handshakes/active", l->port);
        snprintf(value, sizeof(value), "%u", active);
        emit(ectx, topic, value);
        snprintf(topic, sizeof(topic), "$SYS/broker/listeners/%u/handshakes/waiting", l->port);
        snprintf(value, sizeof(value), "%u", waiting);
        emit(ectx, topic, value);
    }
}
