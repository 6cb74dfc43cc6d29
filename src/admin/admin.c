/* The admin HTTP server: see admin.h and docs/http-api.md.
 *
 * One net_server of its own with one worker: every request is parsed and
 * answered on that worker, in order (pipelined requests too), so nothing
 * here runs on a broker worker. A small housekeeping thread enforces the
 * time limits (a request must be complete within request_timeout, an idle
 * keep-alive connection is closed after idle_timeout), because a net
 * connection has no timer of its own. */
#include "admin/admin.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "admin/apikey.h"
#include "core/base64.h"
#include "core/clock.h"
#include "core/log.h"
#include "net/net.h"
#include "tls/tls.h"

#define SWEEP_MS         200u
#define REFUSAL_LOG_RATE 10u /* refusal lines a second; the rest are counted */
#define REPLY_LIMIT      (64u << 20)

struct route {
    char method[8];
    char path[128];
    size_t plen;
    bool prefix; /* a path ending in '/' takes every path below it */
    enum admin_scope need;
    admin_fn fn;
    void *ctx;
};

struct aconn {
    struct admin *a;
    struct net_conn *c;
    struct aconn *prev, *next;
    uint64_t deadline_ms; /* the request under way must be complete by then; 0: none */
    uint64_t idle_ms;     /* closed then when no request is under way */
    bool busy;            /* in on_data: the sweeper leaves it alone */
    bool held;            /* waiting for its output to drain */
    bool closing;
    bool continued; /* 100 Continue sent for the request under way */
    enum admin_scope cert_scope;
    char cert_who[400];
    char peer[64];
};

struct admin {
    char bind[300], url[320], keys_file[4096], admin_ou[128], read_ou[128], key_dir[4096];
    struct admin_config cfg;
    struct net_server *ns;
    struct route routes[ADMIN_MAX_ROUTES];
    unsigned nroutes;
    pthread_mutex_t mu; /* conns, keys, stats, the refusal log */
    pthread_cond_t cv;
    struct aconn *conns;
    struct apikey_db keys;
    struct apikey_db local; /* the key admin_start() wrote for `ward status` */
    struct admin_stats st;
    uint64_t log_window_ms;
    unsigned log_lines;
    uint64_t log_dropped;
    atomic_bool ready;
    bool started; /* no more routes */
    bool running; /* the net server's thread runs */
    bool stopping, sweeper_on;
    bool key_written; /* key_dir/admin.key is ours to remove */
    pthread_t sweeper;
};

static uint64_t now_ms(void)
{
    return clock_mono_ms();
}

/* Refusals are logged at notice, at most REFUSAL_LOG_RATE lines a second,
 * so a flood of bad requests cannot flood the log; what is left out is
 * counted and said on the next line. Called with a->mu held. */
static void log_refusal(struct admin *a, const struct aconn *ac, const char *method,
                        const char *path, int status, const char *why)
{
    uint64_t now = now_ms();
    if (now - a->log_window_ms >= 1000) {
        if (a->log_dropped)
            log_notice("admin: %llu more refusals not logged", (unsigned long long)a->log_dropped);
        a->log_window_ms = now;
        a->log_lines = 0;
        a->log_dropped = 0;
    }
    if (a->log_lines++ >= REFUSAL_LOG_RATE) {
        a->log_dropped++;
        return;
    }
    log_notice("admin: %s: %s %s: %d %s", ac->peer, method, path, status, why);
}

/* A peer-chosen slice, escaped and bounded, for logs. */
static const char *esc(struct http_slice s, char *out, size_t cap)
{
    log_escape(s.p, s.len > 200 ? 200 : s.len, out, cap);
    return out;
}

/* ---- answering ---- */

static void send_or_close(struct aconn *ac, struct buf *b, bool keep_alive)
{
    if (net_conn_send(ac->c, buf_head(b), buf_len(b)) < 0) {
        net_conn_close(ac->c, "admin: output limit");
        ac->closing = true;
        return;
    }
    if (!keep_alive) {
        net_conn_close(ac->c, "admin: answered");
        ac->closing = true;
    }
}

/* head_only: HEAD, the same head as GET and no body (RFC 9110 9.3.2). */
static void send_reply(struct aconn *ac, const struct admin_reply *rep, bool keep_alive,
                       bool head_only)
{
    struct buf out;
    buf_init(&out, 0);
    const char *ct = rep->content_type ? rep->content_type : "application/json";
    if (!ward_ok(http_response_head(&out, rep->status, ct, buf_len(&rep->body),
                                    rep->extra[0] ? rep->extra : NULL, keep_alive)) ||
        (!head_only && !ward_ok(buf_append(&out, buf_head(&rep->body), buf_len(&rep->body))))) {
        net_conn_close(ac->c, "admin: out of memory");
        ac->closing = true;
    } else {
        send_or_close(ac, &out, keep_alive);
    }
    buf_free(&out);
}

/* see admin.h */
void admin_reply_error(struct admin_reply *rep, int status, const char *msg)
{
    char text[512];
    size_t n = 0;
    /* msg is ours (static text), but keep the JSON valid whatever it holds. */
    for (const char *p = msg; *p && n < sizeof(text) - 7; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\')
            text[n++] = '\\';
        text[n++] = ch < 0x20 ? ' ' : (char)ch;
    }
    text[n] = '\0';
    char body[700];
    int len = snprintf(body, sizeof(body), "{\"code\":%d,\"message\":\"%s\"}\n", status, text);
    rep->status = status;
    rep->content_type = "application/json";
    buf_reset(&rep->body);
    if (!ward_ok(buf_append(&rep->body, body, (size_t)len)))
        buf_reset(&rep->body);
}

/* ---- routing ---- */

/* see admin.h */
int admin_route(struct admin *a, const char *method, const char *path, enum admin_scope need,
                admin_fn fn, void *ctx)
{
    if (a->started || a->nroutes == ADMIN_MAX_ROUTES ||
        strlen(method) >= sizeof(a->routes[0].method) ||
        strlen(path) >= sizeof(a->routes[0].path) || path[0] != '/' || !fn)
        return -1;
    for (unsigned i = 0; i < a->nroutes; i++)
        if (strcmp(a->routes[i].method, method) == 0 && strcmp(a->routes[i].path, path) == 0)
            return -1;
    struct route *r = &a->routes[a->nroutes++];
    snprintf(r->method, sizeof(r->method), "%s", method);
    snprintf(r->path, sizeof(r->path), "%s", path);
    r->plen = strlen(path);
    r->prefix = path[r->plen - 1] == '/' && r->plen > 1;
    r->need = need;
    r->fn = fn;
    r->ctx = ctx;
    return 0;
}

static bool route_matches(const struct route *r, struct http_slice path)
{
    if (r->prefix)
        return path.len >= r->plen && memcmp(path.p, r->path, r->plen) == 0;
    return path.len == r->plen && memcmp(path.p, r->path, r->plen) == 0;
}

/* The route for this method and path (an exact path wins over a prefix),
 * or NULL with the methods the path takes in allow ("" if none). */
static const struct route *find_route(const struct admin *a, const struct http_request *rq,
                                      char *allow, size_t cap)
{
    const struct route *best = NULL;
    char method[16];
    /* HEAD is served wherever GET is. */
    snprintf(method, sizeof(method), "%.*s", (int)(rq->method.len < 15 ? rq->method.len : 15),
             rq->method.p);
    if (strcmp(method, "HEAD") == 0)
        snprintf(method, sizeof(method), "GET");
    allow[0] = '\0';
    for (unsigned i = 0; i < a->nroutes; i++) {
        const struct route *r = &a->routes[i];
        if (!route_matches(r, rq->path))
            continue;
        if (strcmp(method, r->method) != 0) {
            size_t n = strlen(allow);
            if (!strstr(allow, r->method))
                snprintf(allow + n, cap - n, "%s%s", n ? ", " : "", r->method);
            continue;
        }
        if (!best || (best->prefix && !r->prefix) || (r->prefix && r->plen > best->plen))
            best = r;
    }
    return best;
}

/* What the route needs once the listener's open_* settings apply. */
static enum admin_scope needed(const struct admin *a, const struct route *r)
{
    bool metrics = strcmp(r->path, "/metrics") == 0 || strcmp(r->path, "/api/v4/prometheus") == 0;
    bool health = strcmp(r->path, "/healthz") == 0 || strcmp(r->path, "/readyz") == 0;
    if ((metrics && a->cfg.open_metrics) || (health && a->cfg.open_health))
        return ADMIN_SCOPE_OPEN;
    return r->need;
}

/* ---- authentication ---- */

enum cred { CRED_NONE, CRED_BAD, CRED_OK };

static enum cred check_key(struct admin *a, const char *name, const char *key, size_t keylen,
                           enum admin_scope *scope, char *who, size_t wcap)
{
    pthread_mutex_lock(&a->mu);
    const struct apikey *k = apikey_check(&a->keys, name, key, keylen);
    if (!k)
        k = apikey_check(&a->local, name, key, keylen);
    if (k) {
        *scope = k->scope;
        snprintf(who, wcap, "key %s", k->name);
    }
    pthread_mutex_unlock(&a->mu);
    return k ? CRED_OK : CRED_BAD;
}

/* "Basic base64(NAME:KEY)": NanoMQ's and EMQX's scripts send this. */
static enum cred check_basic(struct admin *a, struct http_slice v, enum admin_scope *scope,
                             char *who, size_t wcap)
{
    uint8_t dec[300];
    long n = v.len < 400 ? base64_decode(v.p, v.len, dec, sizeof(dec) - 1) : -1;
    if (n <= 0)
        return CRED_BAD;
    dec[n] = '\0';
    char *colon = memchr(dec, ':', (size_t)n);
    if (!colon || memchr(dec, '\0', (size_t)n))
        return CRED_BAD;
    *colon = '\0';
    enum cred c = check_key(a, (const char *)dec, colon + 1, strlen(colon + 1), scope, who, wcap);
    OPENSSL_cleanse(dec, sizeof(dec));
    return c;
}

static enum cred check_authorization(struct admin *a, const struct http_request *rq,
                                     enum admin_scope *scope, char *who, size_t wcap)
{
    const struct http_header *h = http_header(rq, "Authorization");
    if (!h)
        return CRED_NONE;
    struct http_slice v = h->value;
    if (v.len > 7 && strncasecmp(v.p, "Bearer ", 7) == 0) {
        struct http_slice t = {v.p + 7, v.len - 7};
        while (t.len && *t.p == ' ')
            t.p++, t.len--;
        return t.len && t.len <= 256 ? check_key(a, NULL, t.p, t.len, scope, who, wcap) : CRED_BAD;
    }
    if (v.len > 6 && strncasecmp(v.p, "Basic ", 6) == 0) {
        struct http_slice t = {v.p + 6, v.len - 6};
        while (t.len && *t.p == ' ')
            t.p++, t.len--;
        return check_basic(a, t, scope, who, wcap);
    }
    return CRED_BAD;
}

/* The mTLS identity's scope: by its OU, verified certificates only. */
static enum admin_scope cert_scope(const struct admin *a, const struct net_conn *c, char *who,
                                   size_t wcap)
{
    const struct tls_identity *id = net_conn_tls_identity(c);
    if (!id || !id->verified || id->ambiguous || !id->ou[0])
        return ADMIN_SCOPE_OPEN;
    enum admin_scope s = ADMIN_SCOPE_OPEN;
    if (a->admin_ou[0] && strcmp(id->ou, a->admin_ou) == 0)
        s = ADMIN_SCOPE_ADMIN;
    else if (a->read_ou[0] && strcmp(id->ou, a->read_ou) == 0)
        s = ADMIN_SCOPE_READ;
    if (s != ADMIN_SCOPE_OPEN)
        snprintf(who, wcap, "cert CN=%s OU=%s", id->cn, id->ou);
    return s;
}

/* 0: the caller may go on (who says as whom); else the status refused,
 * with *why for the answer and the log. */
static int authorize(struct aconn *ac, const struct http_request *rq, enum admin_scope need,
                     char *who, size_t wcap, const char **why)
{
    struct admin *a = ac->a;
    snprintf(who, wcap, "%s", need == ADMIN_SCOPE_OPEN ? "anonymous" : "");
    if (need == ADMIN_SCOPE_OPEN)
        return 0;
    enum admin_scope have = ac->cert_scope, ks = ADMIN_SCOPE_OPEN;
    char kwho[120] = "";
    enum cred c = check_authorization(a, rq, &ks, kwho, sizeof(kwho));
    if (c == CRED_OK && ks >= have) {
        have = ks;
        snprintf(who, wcap, "%s", kwho);
    } else if (have != ADMIN_SCOPE_OPEN) {
        snprintf(who, wcap, "%s", ac->cert_who);
    }
    if (have == ADMIN_SCOPE_OPEN || (c == CRED_BAD && have < need)) {
        *why = c == CRED_BAD ? "the credentials are not valid"
                             : "a key is needed (Authorization: Bearer KEY, or Basic NAME:KEY)";
        return 401;
    }
    *why = "this credential's scope does not allow it";
    return have >= need ? 0 : 403;
}

/* ---- requests ---- */

static void refuse(struct aconn *ac, const struct http_request *rq, int status, const char *msg,
                   const char *extra, bool keep_alive)
{
    struct admin *a = ac->a;
    struct admin_reply rep = {.status = status};
    buf_init(&rep.body, REPLY_LIMIT);
    admin_reply_error(&rep, status, msg);
    if (extra)
        snprintf(rep.extra, sizeof(rep.extra), "%s", extra);
    char m[64], p[256];
    pthread_mutex_lock(&a->mu);
    a->st.requests += status != 401 && status != 403;
    a->st.unauthorized += status == 401;
    a->st.forbidden += status == 403;
    if (status == 401 || status == 403 || status == 405)
        log_refusal(a, ac, esc(rq->method, m, sizeof(m)), esc(rq->path, p, sizeof(p)), status, msg);
    pthread_mutex_unlock(&a->mu);
    if (status == 404)
        log_debug("admin: %s: %s %s: 404", ac->peer, esc(rq->method, m, sizeof(m)),
                  esc(rq->path, p, sizeof(p)));
    send_reply(ac, &rep, keep_alive, http_slice_eq(rq->method, "HEAD"));
    buf_free(&rep.body);
}

static void run_route(struct aconn *ac, const struct route *r, const struct http_request *rq,
                      const char *who)
{
    /* A handler sees HEAD as the GET it stands for, so no handler that
     * branches on its method can take it for another. */
    bool head = http_slice_eq(rq->method, "HEAD");
    struct http_request as_get;
    if (head) {
        as_get = *rq;
        as_get.method = (struct http_slice){"GET", 3};
    }
    struct admin_reply rep = {.status = 200};
    buf_init(&rep.body, REPLY_LIMIT);
    r->fn(r->ctx, head ? &as_get : rq, who, &rep);
    if (!rep.status)
        rep.status = 200;
    char m[64], p[256];
    log_debug("admin: %s: %s %s: %d (%s)", ac->peer, esc(rq->method, m, sizeof(m)),
              esc(rq->path, p, sizeof(p)), rep.status, who);
    pthread_mutex_lock(&ac->a->mu);
    ac->a->st.requests++;
    pthread_mutex_unlock(&ac->a->mu);
    send_reply(ac, &rep, rq->keep_alive, head);
    buf_free(&rep.body);
}

static void handle(struct aconn *ac, const struct http_request *rq)
{
    struct admin *a = ac->a;
    char allow[128], extra[160];
    const struct route *r = find_route(a, rq, allow, sizeof(allow));
    if (!r && allow[0]) {
        snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
        refuse(ac, rq, 405, "method not allowed", extra, rq->keep_alive);
        return;
    }
    if (!r) {
        refuse(ac, rq, 404, "not found", NULL, rq->keep_alive);
        return;
    }
    char who[420];
    const char *why = NULL;
    int st = authorize(ac, rq, needed(a, r), who, sizeof(who), &why);
    if (st == 401) {
        refuse(ac, rq, 401, why,
               "WWW-Authenticate: Bearer realm=\"ward\", Basic realm=\"ward\", "
               "charset=\"UTF-8\"\r\n",
               rq->keep_alive);
        return;
    }
    if (st == 403) {
        refuse(ac, rq, 403, why, NULL, rq->keep_alive);
        return;
    }
    run_route(ac, r, rq, who);
}

/* The parser refused the bytes: answer and close (the stream is lost). */
static void parse_refused(struct aconn *ac, int status, const char *why)
{
    struct admin *a = ac->a;
    pthread_mutex_lock(&a->mu);
    a->st.refused++;
    log_refusal(a, ac, "-", "-", status, why);
    pthread_mutex_unlock(&a->mu);
    struct buf out;
    buf_init(&out, 0);
    if (ward_ok(http_response_text(&out, status, why, false)))
        send_or_close(ac, &out, false);
    else
        net_conn_close(ac->c, "admin: out of memory");
    ac->closing = true;
    buf_free(&out);
}

/* ---- net callbacks (the admin worker) ---- */

static void *on_open(void *ctx, struct net_conn *c)
{
    struct admin *a = ctx;
    struct aconn *ac = calloc(1, sizeof(*ac));
    if (!ac)
        return NULL;
    ac->a = a;
    ac->c = c;
    snprintf(ac->peer, sizeof(ac->peer), "%s", net_conn_peer(c));
    ac->cert_scope = cert_scope(a, c, ac->cert_who, sizeof(ac->cert_who));
    pthread_mutex_lock(&a->mu);
    /* The first request must come, whole, within request_timeout. */
    ac->deadline_ms = now_ms() + a->cfg.request_timeout_ms;
    ac->next = a->conns;
    if (a->conns)
        a->conns->prev = ac;
    a->conns = ac;
    a->st.connections++;
    pthread_mutex_unlock(&a->mu);
    log_debug("admin: %s: connected", ac->peer);
    return ac;
}

/* Answers every complete request in data, in order; returns the bytes
 * used. Stops early while the answers wait for a slow reader. */
/* RFC 9110 10.1.1: a client that sent "Expect: 100-continue" may wait for
 * a 100 before sending its body (curl does, for bodies over 1 KiB). Once
 * the head is whole and the parser wants the body (a body too large was
 * already refused), it is told to go on. */
static void maybe_continue(struct aconn *ac, const uint8_t *data, size_t len)
{
    static const char go_on[] = "HTTP/1.1 100 Continue\r\n\r\n";
    const uint8_t *end = ac->continued ? NULL : memmem(data, len, "\r\n\r\n", 4);
    for (const uint8_t *p = end ? memchr(data, '\n', (size_t)(end - data)) : NULL; p && p < end;
         p = memchr(p, '\n', (size_t)(end - p))) {
        p++;
        if (end - p < 19 || strncasecmp((const char *)p, "expect:", 7) != 0)
            continue;
        const char *v = (const char *)p + 7;
        v += strspn(v, " \t");
        if (strncasecmp(v, "100-continue", 12) != 0)
            continue;
        ac->continued = true;
        if (net_conn_send_control(ac->c, go_on, sizeof(go_on) - 1) < 0)
            log_debug("admin: %s: 100 Continue not queued", ac->peer);
        return;
    }
}

static size_t serve_requests(struct aconn *ac, const uint8_t *data, size_t len)
{
    size_t used = 0;
    while (used < len && !ac->closing) {
        /* Past half the bound, a "no" that net answers with on_drain
         * once the client has read enough. */
        if (!net_conn_writable(ac->c, ac->a->cfg.max_output / 2)) {
            ac->held = true;
            net_conn_hold_input(ac->c);
            break;
        }
        struct http_request rq;
        int status = 0;
        const char *why = NULL;
        enum http_parse_status ps =
            http_parse(data + used, len - used, &ac->a->cfg.limits, &rq, &status, &why);
        if (ps == HTTP_PARSE_AGAIN) {
            maybe_continue(ac, data + used, len - used);
            break;
        }
        if (ps == HTTP_PARSE_ERROR) {
            parse_refused(ac, status, why ? why : http_reason(status));
            return len;
        }
        handle(ac, &rq);
        ac->continued = false;
        used += rq.consumed;
    }
    return ac->closing ? len : used;
}

static size_t on_data(void *user, const uint8_t *data, size_t len)
{
    struct aconn *ac = user;
    struct admin *a = ac->a;
    pthread_mutex_lock(&a->mu);
    bool closing = ac->closing;
    ac->busy = !closing;
    pthread_mutex_unlock(&a->mu);
    if (closing)
        return len;
    size_t used = serve_requests(ac, data, len);
    uint64_t now = now_ms();
    pthread_mutex_lock(&a->mu);
    ac->busy = false;
    if (used == len) { /* between requests */
        ac->deadline_ms = 0;
        ac->idle_ms = now + a->cfg.idle_timeout_ms;
    } else if (used > 0 || !ac->deadline_ms) { /* a new request has begun */
        ac->deadline_ms = now + a->cfg.request_timeout_ms;
    }
    pthread_mutex_unlock(&a->mu);
    return used;
}

static void on_drain(void *user)
{
    struct aconn *ac = user;
    pthread_mutex_lock(&ac->a->mu);
    bool held = ac->held;
    ac->held = false;
    pthread_mutex_unlock(&ac->a->mu);
    if (held)
        net_conn_resume_input(ac->c);
}

static void on_close(void *user, const char *why)
{
    struct aconn *ac = user;
    struct admin *a = ac->a;
    pthread_mutex_lock(&a->mu);
    if (ac->prev)
        ac->prev->next = ac->next;
    else
        a->conns = ac->next;
    if (ac->next)
        ac->next->prev = ac->prev;
    a->st.connections--;
    pthread_mutex_unlock(&a->mu);
    log_debug("admin: %s: closed (%s)", ac->peer, why);
    free(ac);
}

static const struct net_handler handler = {on_open, on_data, on_close, on_drain};

/* ---- time limits ---- */

static void sweep(struct admin *a, uint64_t now)
{
    static const char timeout[] = "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\n"
                                  "Content-Length: 16\r\nConnection: close\r\n\r\n"
                                  "Request Timeout\n";
    for (struct aconn *ac = a->conns; ac; ac = ac->next) {
        if (ac->busy || ac->held || ac->closing)
            continue;
        if (ac->deadline_ms && now >= ac->deadline_ms) {
            a->st.timeouts++;
            log_refusal(a, ac, "-", "-", 408, "request not complete in time");
            if (net_conn_send_control(ac->c, timeout, sizeof(timeout) - 1) < 0)
                log_debug("admin: %s: 408 not queued", ac->peer);
            net_conn_close(ac->c, "admin: request timeout");
            ac->closing = true;
        } else if (!ac->deadline_ms && ac->idle_ms && now >= ac->idle_ms) {
            net_conn_close(ac->c, "admin: idle");
            ac->closing = true;
        }
    }
}

static void *sweeper(void *arg)
{
    struct admin *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)SWEEP_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&a->cv, &a->mu, &ts);
        if (!a->stopping)
            sweep(a, now_ms());
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* ---- health ---- */

static void healthz(void *ctx, const struct http_request *rq, const char *who,
                    struct admin_reply *rep)
{
    static const char body[] = "{\"status\":\"ok\"}\n";
    if (!ward_ok(buf_append(&rep->body, body, sizeof(body) - 1)))
        admin_reply_error(rep, 500, "out of memory");
}

static void readyz(void *ctx, const struct http_request *rq, const char *who,
                   struct admin_reply *rep)
{
    struct admin *a = ctx;
    bool ready = atomic_load(&a->ready);
    const char *body = ready ? "{\"status\":\"ready\"}\n" : "{\"status\":\"not ready\"}\n";
    rep->status = ready ? 200 : 503;
    if (!ward_ok(buf_append(&rep->body, body, strlen(body))))
        admin_reply_error(rep, 500, "out of memory");
}

/* ---- life cycle ---- */

static void fill_defaults(struct admin_config *c)
{
    struct http_limits d;
    http_limits_defaults(&d);
    if (!c->limits.max_head)
        c->limits.max_head = d.max_head;
    if (!c->limits.max_headers)
        c->limits.max_headers = d.max_headers;
    if (c->limits.max_headers > HTTP_MAX_HEADERS)
        c->limits.max_headers = HTTP_MAX_HEADERS;
    if (!c->limits.max_body)
        c->limits.max_body = ADMIN_MAX_BODY_DEFAULT;
    if (!c->max_connections)
        c->max_connections = ADMIN_MAX_CONNECTIONS_DEFAULT;
    if (!c->idle_timeout_ms)
        c->idle_timeout_ms = ADMIN_IDLE_TIMEOUT_DEFAULT;
    if (!c->request_timeout_ms)
        c->request_timeout_ms = ADMIN_REQUEST_TIMEOUT_DEFAULT;
    if (!c->max_output)
        c->max_output = ADMIN_MAX_OUTPUT_DEFAULT;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static int listen_on(struct admin *a, char *err, size_t errlen)
{
    const char *b = a->bind;
    const char *sep = strstr(b, "://");
    char url[340];
    snprintf(url, sizeof(url), "%s://%s", a->cfg.tls ? "tls" : "tcp", sep ? sep + 3 : b);
    struct net_listen_opts lo = {
        .max_connections = a->cfg.max_connections,
        .handshake_timeout_ms = a->cfg.request_timeout_ms,
        .max_output_bytes = a->cfg.max_output,
        .slow_consumer_timeout_ms = a->cfg.idle_timeout_ms,
    };
    if (net_server_listen_opts(a->ns, url, a->cfg.tls, &lo, err, errlen) < 0)
        return -1;
    char host[256];
    size_t hl = strcspn(sep ? sep + 3 : b, "");
    snprintf(host, sizeof(host), "%.*s", (int)hl, sep ? sep + 3 : b);
    char *colon = strrchr(host, ':');
    if (colon)
        *colon = '\0';
    bool loopback = strncmp(host, "127.", 4) == 0 || strcmp(host, "[::1]") == 0 ||
                    strcmp(host, "localhost") == 0;
    if (!a->cfg.tls && !loopback)
        log_warn("admin: %s is not a loopback address and the admin server speaks plain HTTP: "
                 "keys cross the network in the clear (certfile and keyfile turn on HTTPS)",
                 host[0] ? host : "*");
    if (!host[0] || strcmp(host, "0.0.0.0") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    else if (strcmp(host, "[::]") == 0)
        snprintf(host, sizeof(host), "[::1]");
    snprintf(a->url, sizeof(a->url), "%s://%s:%u", a->cfg.tls ? "https" : "http", host,
             net_server_port(a->ns, 0));
    return 0;
}

static int load_keys(struct admin *a, char *err, size_t errlen)
{
    if (!a->keys_file[0])
        return 0;
    struct apikey_db db;
    apikey_db_init(&db);
    if (apikey_load(&db, a->keys_file, false, err, errlen) < 0)
        return -1;
    pthread_mutex_lock(&a->mu);
    struct apikey_db old = a->keys;
    a->keys = db;
    pthread_mutex_unlock(&a->mu);
    apikey_db_free(&old);
    return 0;
}

static void init_state(struct admin *a)
{
    pthread_mutex_init(&a->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the sweeper's waits ignore clock steps */
    pthread_cond_init(&a->cv, &ca);
    pthread_condattr_destroy(&ca);
    apikey_db_init(&a->keys);
    apikey_db_init(&a->local);
}

/* see admin.h */
struct admin *admin_new(const struct admin_config *cfg, char *err, size_t errlen)
{
    struct admin *a = calloc(1, sizeof(*a));
    if (!a)
        return snprintf(err, errlen, "out of memory"), NULL;
    a->cfg = *cfg;
    fill_defaults(&a->cfg);
    copy_str(a->bind, sizeof(a->bind), cfg->bind ? cfg->bind : "127.0.0.1:8081");
    copy_str(a->keys_file, sizeof(a->keys_file), cfg->api_keys_file);
    copy_str(a->admin_ou, sizeof(a->admin_ou), cfg->admin_ou);
    copy_str(a->read_ou, sizeof(a->read_ou), cfg->read_ou);
    copy_str(a->key_dir, sizeof(a->key_dir), cfg->local_key_dir);
    init_state(a);
    struct net_config nc = {
        .workers = 1, /* never the broker's workers */
        .max_connections = a->cfg.max_connections,
        .max_input = a->cfg.limits.max_head + a->cfg.limits.max_body + 1,
        .max_output = a->cfg.max_output,
        .slow_consumer_timeout_ms = a->cfg.idle_timeout_ms,
    };
    if (!(a->ns = net_server_new(&nc, &handler, a))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (load_keys(a, err, errlen) < 0 || listen_on(a, err, errlen) < 0)
        goto fail;
    if (cfg->basic_user && cfg->basic_password &&
        apikey_add(&a->local, cfg->basic_user, ADMIN_SCOPE_ADMIN, cfg->basic_password, err,
                   errlen) < 0)
        goto fail;
    if (admin_route(a, "GET", "/healthz", ADMIN_SCOPE_READ, healthz, a) < 0 ||
        admin_route(a, "GET", "/readyz", ADMIN_SCOPE_READ, readyz, a) < 0) {
        snprintf(err, errlen, "cannot add the health routes");
        goto fail;
    }
    return a;
fail:
    admin_free(a);
    return NULL;
}

/* DIR/admin.key: a key made now and the URL, for `ward status` run by the
 * same user on this machine (the file is 0600, the key lives until stop). */
static int write_local_key(struct admin *a, char *err, size_t errlen)
{
    char key[APIKEY_LEN + 1], path[4200];
    snprintf(path, sizeof(path), "%s/admin.key", a->key_dir);
    if (apikey_generate(key, sizeof(key)) < 0 ||
        apikey_add(&a->local, "local", ADMIN_SCOPE_ADMIN, key, err, errlen) < 0)
        return snprintf(err, errlen, "%s: cannot make a key", path), -1;
    unlink(path); /* a file someone else made is not reused */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    char text[APIKEY_LEN + 400];
    int n = snprintf(text, sizeof(text), "%s\n%s\n", key, a->url);
    OPENSSL_cleanse(key, sizeof(key));
    bool ok = fd >= 0 && fchmod(fd, 0600) == 0 && write(fd, text, (size_t)n) == n;
    int e = errno;
    OPENSSL_cleanse(text, sizeof(text));
    if (fd >= 0)
        close(fd);
    a->key_written = fd >= 0;
    if (!ok)
        return snprintf(err, errlen, "%s: %s", path, strerror(e)), -1;
    return 0;
}

static void remove_local_key(struct admin *a)
{
    if (!a->key_written)
        return;
    char path[4200];
    snprintf(path, sizeof(path), "%s/admin.key", a->key_dir);
    unlink(path);
    a->key_written = false;
}

/* see admin.h */
int admin_start(struct admin *a, char *err, size_t errlen)
{
    if (a->key_dir[0] && write_local_key(a, err, errlen) < 0)
        return -1;
    a->started = true;
    if (net_server_start(a->ns) < 0)
        return snprintf(err, errlen, "cannot start the admin thread: %s", strerror(errno)), -1;
    a->running = true;
    if (pthread_create(&a->sweeper, NULL, sweeper, a) != 0)
        return snprintf(err, errlen, "cannot start the admin timer thread"), -1;
    a->sweeper_on = true;
    log_notice("admin: serving %s", a->url);
    return 0;
}

/* see admin.h */
void admin_stop(struct admin *a)
{
    if (!a || !a->running)
        return;
    pthread_mutex_lock(&a->mu);
    bool first = !a->stopping;
    a->stopping = true;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    if (!first)
        return;
    if (a->sweeper_on)
        pthread_join(a->sweeper, NULL);
    net_server_stop(a->ns);
    net_server_join(a->ns);
    remove_local_key(a);
}

/* see admin.h */
void admin_free(struct admin *a)
{
    if (!a)
        return;
    admin_stop(a);
    remove_local_key(a); /* also when admin_start failed after writing it */
    net_server_free(a->ns);
    apikey_db_free(&a->keys);
    apikey_db_free(&a->local);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

uint16_t admin_port(const struct admin *a)
{
    return net_server_port(a->ns, 0);
}

const char *admin_url(const struct admin *a)
{
    return a->url;
}

void admin_set_ready(struct admin *a, bool ready)
{
    atomic_store(&a->ready, ready);
}

bool admin_ready(const struct admin *a)
{
    return atomic_load(&((struct admin *)a)->ready);
}

int admin_reload_keys(struct admin *a, char *err, size_t errlen)
{
    return load_keys(a, err, errlen);
}

void admin_get_stats(const struct admin *a, struct admin_stats *out)
{
    struct admin *m = (struct admin *)a;
    pthread_mutex_lock(&m->mu);
    *out = m->st;
    pthread_mutex_unlock(&m->mu);
}
