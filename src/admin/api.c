/* The JSON API on NanoMQ's /api/v4 paths (see api.h, docs/http-api.md). */
#include "admin/api.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridge/bridge.h"
#include "broker/inspect.h"
#include "core/base64.h"
#include "core/clock.h"
#include "core/log.h"
#include "http/jsonw.h"
#include "tls/tls.h"

#define ID_MAX 65536 /* a client id, session id or topic, decoded from the path */

/* ---- requests ------------------------------------------------------------ */

/* Whether the query names key at all (with a value or without). */
static bool query_has(struct http_slice q, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < q.len;) {
        size_t j = i;
        while (j < q.len && q.p[j] != '&')
            j++;
        if (j - i >= kl && memcmp(q.p + i, key, kl) == 0 && (j - i == kl || q.p[i + kl] == '='))
            return true;
        i = j + 1;
    }
    return false;
}

/* A query value: 1 read into out, 0 absent, -1 present but unreadable
 * (bad %XX, too long). */
static int query_get(const struct http_request *rq, const char *key, char *out, size_t cap)
{
    if (http_form_get(rq->query, key, out, cap))
        return 1;
    return query_has(rq->query, key) ? -1 : 0;
}

/* A whole unsigned decimal number in min..max; false otherwise. */
static bool parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 10)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* A numeric query parameter; false (400) if present and not in range. */
static bool query_count(const struct http_request *rq, const char *key, uint64_t min, uint64_t max,
                        uint64_t *out)
{
    char v[16];
    int r = query_get(rq, key, v, sizeof(v));
    return r == 0 || (r == 1 && parse_count(v, min, max, out));
}

struct page {
    uint64_t page, limit;
    size_t offset;
    char *after; /* ?after=ID: a cursor (clients, sessions), NULL if none */
};

static void page_free(struct page *pg)
{
    free(pg->after);
    pg->after = NULL;
}

/* ?after=ID, percent-decoded; false (400) if present and unreadable. */
static bool cursor_of(const struct http_request *rq, struct page *pg)
{
    if (!(pg->after = malloc(ID_MAX)))
        return false;
    int r = query_get(rq, "after", pg->after, ID_MAX);
    if (r <= 0 || !pg->after[0]) {
        page_free(pg);
        return r == 0;
    }
    return true;
}

/* ?_page=N (from 1) and ?_limit=M, as NanoMQ and EMQX take them. */
static bool page_of(const struct http_request *rq, struct page *pg)
{
    pg->page = 1;
    pg->limit = ADMIN_API_DEFAULT_LIMIT;
    pg->after = NULL;
    if (!query_count(rq, "_page", 1, UINT32_MAX, &pg->page) ||
        !query_count(rq, "_limit", 1, ADMIN_API_MAX_LIMIT, &pg->limit))
        return false;
    pg->offset = (size_t)((pg->page - 1) * pg->limit);
    return true;
}

/* The percent-decoded path below prefix ("/api/v4/clients/"); false if
 * there is none or it does not decode. */
static bool path_tail(const struct http_request *rq, const char *prefix, char *out, size_t cap)
{
    size_t pl = strlen(prefix);
    if (rq->path.len <= pl || memcmp(rq->path.p, prefix, pl) != 0)
        return false;
    struct http_slice s = {rq->path.p + pl, rq->path.len - pl};
    return http_percent_decode(s, out, cap) && out[0];
}

/* ---- answers ------------------------------------------------------------- */

/* Ends a JSON answer: 200, or 500 if the writer failed (out of memory,
 * or a page of large retained payloads past the server's reply bound). */
static void finish(struct jsonw *w, struct admin_reply *rep)
{
    if (!jsonw_done(w)) {
        buf_reset(&rep->body);
        admin_reply_error(rep, 500, "the answer does not fit: ask for a smaller _limit");
        return;
    }
    rep->status = 200;
    rep->content_type = "application/json";
}

static void begin(struct jsonw *w, struct admin_reply *rep)
{
    buf_reset(&rep->body);
    jsonw_init(w, &rep->body);
    jsonw_object_begin(w);
    jsonw_kv_u64(w, "code", 0);
}

/* "meta": {"page", "limit", "count", "hasnext"} and, when given, "last"
 * (the cursor for the next page), then closes the answer. With a cursor
 * the position is unknown: hasnext says the page is full. */
static void end_page(struct jsonw *w, const struct page *pg, size_t total, size_t n,
                     const char *last, struct admin_reply *rep)
{
    jsonw_array_end(w);
    jsonw_key(w, "meta");
    jsonw_object_begin(w);
    jsonw_kv_u64(w, "page", pg->page);
    jsonw_kv_u64(w, "limit", pg->limit);
    jsonw_kv_u64(w, "count", total);
    jsonw_kv_bool(w, "hasnext", pg->after ? n == pg->limit : pg->offset + n < total);
    if (last)
        jsonw_kv_string(w, "last", last);
    jsonw_object_end(w);
    jsonw_object_end(w);
    finish(w, rep);
}

static void ok_empty(struct admin_reply *rep)
{
    struct jsonw w;
    begin(&w, rep);
    jsonw_object_end(&w);
    finish(&w, rep);
}

static void kv_opt_string(struct jsonw *w, const char *key, const char *s)
{
    jsonw_key(w, key);
    if (s)
        jsonw_string(w, s);
    else
        jsonw_null(w);
}

/* "1.2.3.4:5678" / "[::1]:5678" into address and port. */
static void split_peer(const char *peer, char *host, size_t cap, unsigned *port)
{
    const char *colon = strrchr(peer, ':');
    size_t n = colon ? (size_t)(colon - peer) : strlen(peer);
    if (n >= 2 && peer[0] == '[' && peer[n - 1] == ']') {
        peer++;
        n -= 2;
    }
    snprintf(host, cap, "%.*s", (int)n, peer);
    *port = colon ? (unsigned)strtoul(colon + 1, NULL, 10) : 0;
}

/* ---- clients ------------------------------------------------------------- */

static void write_client(struct jsonw *w, const struct broker_client_info *ci)
{
    char host[64];
    unsigned port;
    split_peer(ci->peer, host, sizeof(host), &port);
    jsonw_object_begin(w);
    jsonw_kv_string(w, "client_id", ci->id);
    kv_opt_string(w, "username", ci->username);
    jsonw_kv_u64(w, "keepalive", ci->keepalive);
    jsonw_kv_string(w, "conn_state", "connected");
    jsonw_kv_bool(w, "clean_start", ci->expiry_s == 0);
    jsonw_kv_string(w, "proto_name", ci->nats ? "NATS" : "MQTT");
    jsonw_kv_u64(w, "proto_ver", ci->proto_ver);
    jsonw_kv_string(w, "ip_address", host);
    jsonw_kv_u64(w, "port", port);
    jsonw_kv_u64(w, "listener", ci->listener);
    jsonw_kv_bool(w, "is_bridge", ci->internal);
    kv_opt_string(w, "cert_cn", ci->cert_cn);
    jsonw_kv_u64(w, "connected_at", ci->connected_at_ms);
    jsonw_kv_u64(w, "last_activity", ci->last_activity_ms);
    jsonw_kv_u64(w, "expiry_interval", ci->expiry_s);
    jsonw_kv_u64(w, "subscriptions_cnt", ci->subscriptions);
    jsonw_kv_u64(w, "inflight", ci->inflight);
    jsonw_kv_u64(w, "mqueue_len", ci->queued);
    jsonw_kv_u64(w, "pending_bytes", ci->pending_bytes);
    jsonw_kv_u64(w, "recv_msg", ci->msgs_in);
    jsonw_kv_u64(w, "send_msg", ci->msgs_out);
    jsonw_kv_u64(w, "recv_oct", ci->bytes_in);
    jsonw_kv_u64(w, "send_oct", ci->bytes_out);
    jsonw_object_end(w);
}

/* Allocates room for one page of n entries of size sz; NULL answers 500. */
static void *page_room(size_t n, size_t sz, struct admin_reply *rep)
{
    void *p = calloc(n ? n : 1, sz);
    if (!p)
        admin_reply_error(rep, 500, "out of memory");
    return p;
}

/* see api.h */
void admin_api_clients(void *ctx, const struct http_request *rq, const char *who,
                       struct admin_reply *rep)
{
    const struct admin_sources *src = ctx;
    struct page pg;
    if (!page_of(rq, &pg) || !cursor_of(rq, &pg))
        return admin_reply_error(rep, 400, "_page, _limit or after is not readable");
    struct broker_client_info *ci = page_room(pg.limit, sizeof(*ci), rep);
    size_t total = 0;
    int n =
        ci ? broker_inspect_clients(src->broker, pg.after, pg.offset, pg.limit, false, ci, &total)
           : 0;
    if (n < 0) {
        free(ci);
        page_free(&pg);
        return n == -2 ? admin_reply_error(rep, 410, "the 'after' client is gone; start again")
                       : admin_reply_error(rep, 500, "out of memory");
    }
    if (ci) {
        struct jsonw w;
        begin(&w, rep);
        jsonw_key(&w, "data");
        jsonw_array_begin(&w);
        for (int i = 0; i < n; i++)
            write_client(&w, &ci[i]);
        end_page(&w, &pg, total, (size_t)n, n ? ci[n - 1].id : NULL, rep);
        for (int i = 0; i < n; i++)
            broker_client_info_clear(&ci[i]);
    }
    free(ci);
    page_free(&pg);
}

/* see api.h */
void admin_api_client_one(void *ctx, const struct http_request *rq, const char *who,
                          struct admin_reply *rep)
{
    const struct admin_sources *src = ctx;
    char *id = malloc(ID_MAX);
    if (!id)
        return admin_reply_error(rep, 500, "out of memory");
    if (!path_tail(rq, "/api/v4/clients/", id, ID_MAX)) {
        free(id);
        return admin_reply_error(rep, 400, "a client id is needed after /api/v4/clients/");
    }
    if (http_slice_eq(rq->method, "DELETE")) {
        int rc = broker_kick_client(src->broker, id);
        if (rc == 0)
            log_notice("admin: %s disconnected client '%s'", who, id);
        free(id);
        return rc == 0 ? ok_empty(rep) : admin_reply_error(rep, 404, "no such client connected");
    }
    struct broker_client_info ci;
    int rc = broker_inspect_client(src->broker, id, &ci);
    free(id);
    if (rc != 0)
        return admin_reply_error(rep, rc > 0 ? 404 : 500,
                                 rc > 0 ? "no such client connected" : "out of memory");
    struct jsonw w;
    begin(&w, rep);
    jsonw_key(&w, "data");
    jsonw_array_begin(&w); /* NanoMQ answers a list of one */
    write_client(&w, &ci);
    jsonw_array_end(&w);
    jsonw_object_end(&w);
    broker_client_info_clear(&ci);
    finish(&w, rep);
}

/* ---- subscriptions ------------------------------------------------------- */

/* see api.h */
void admin_api_subscriptions(void *ctx, const struct http_request *rq, const char *who,
                             struct admin_reply *rep)
{
    const struct admin_sources *src = ctx;
    struct page pg;
    if (!page_of(rq, &pg))
        return admin_reply_error(rep, 400, "_page and _limit must be whole numbers in range");
    char *id = malloc(ID_MAX);
    struct broker_sub_info *si = id ? page_room(pg.limit, sizeof(*si), rep) : NULL;
    if (!si) { /* page_room answered, or: */
        if (!id)
            admin_reply_error(rep, 500, "out of memory");
        free(id);
        return;
    }
    int has = query_get(rq, "clientid", id, ID_MAX);
    size_t total = 0;
    int n = has < 0 ? 0
                    : broker_inspect_subs(src->broker, has ? id : NULL, pg.offset, pg.limit, si,
                                          &total);
    free(id);
    if (has < 0 || n < 0) {
        free(si);
        return admin_reply_error(rep, has < 0 ? 400 : 500,
                                 has < 0 ? "clientid does not decode" : "out of memory");
    }
    struct jsonw w;
    begin(&w, rep);
    jsonw_key(&w, "data");
    jsonw_array_begin(&w);
    for (int i = 0; i < n; i++) {
        jsonw_object_begin(&w);
        jsonw_kv_string(&w, "clientid", si[i].client_id);
        jsonw_kv_string(&w, "topic", si[i].topic);
        jsonw_kv_u64(&w, "qos", si[i].qos);
        jsonw_kv_string(&w, "protocol", si[i].nats ? "nats" : "mqtt");
        jsonw_object_end(&w);
        broker_sub_info_clear(&si[i]);
    }
    free(si);
    end_page(&w, &pg, total, (size_t)n, NULL, rep);
}

/* ---- publish: a small JSON object reader --------------------------------- */

/* A flat JSON object's members: strings decoded, other values as written.
 * Nested objects and arrays are refused: the publish body has none. */
#define JSON_MAX_MEMBERS 16
struct jmember {
    char key[32]; /* longer keys are kept cut short (and so match nothing) */
    char *val;    /* NUL-terminated; may hold NULs when is_str (len says) */
    size_t len;
    bool is_str;
};
struct jobject {
    struct jmember m[JSON_MAX_MEMBERS];
    size_t n;
};

static void jobject_free(struct jobject *o)
{
    for (size_t i = 0; i < o->n; i++)
        free(o->m[i].val);
    o->n = 0;
}

struct jin {
    const char *p, *end;
};

static void skip_ws(struct jin *in)
{
    while (in->p < in->end && (*in->p == ' ' || *in->p == '\t' || *in->p == '\n' || *in->p == '\r'))
        in->p++;
}

static int hex4(const char *p, const char *end)
{
    if (end - p < 4)
        return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* One \uXXXX escape (a surrogate pair takes two); in->p is past "\u". */
static bool unicode_escape(struct jin *in, char *out, size_t *o)
{
    int hi = hex4(in->p, in->end);
    if (hi < 0)
        return false;
    in->p += 4;
    uint32_t cp = (uint32_t)hi;
    if (hi >= 0xdc00 && hi <= 0xdfff)
        return false; /* a low surrogate alone */
    if (hi >= 0xd800 && hi <= 0xdbff) {
        if (in->end - in->p < 6 || in->p[0] != '\\' || in->p[1] != 'u')
            return false;
        int lo = hex4(in->p + 2, in->end);
        if (lo < 0xdc00 || lo > 0xdfff)
            return false;
        in->p += 6;
        cp = 0x10000 + (((uint32_t)hi - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
    }
    *o += put_utf8(out + *o, cp);
    return true;
}

/* A string; in->p is past its opening quote. The decoded form is never
 * longer than the encoded one, so out is sized by the encoded string. */
static bool read_string(struct jin *in, char **val, size_t *len)
{
    const char *q = in->p;
    while (q < in->end && *q != '"')
        q += *q == '\\' && q + 1 < in->end ? 2 : 1;
    char *out = malloc((size_t)(q - in->p) + 1);
    size_t o = 0;
    if (!out)
        return false;
    static const char esc_in[] = "\"\\/bfnrt", esc_out[] = "\"\\/\b\f\n\r\t";
    while (in->p < in->end && *in->p != '"') {
        unsigned char c = (unsigned char)*in->p++;
        if (c < 0x20)
            goto bad;
        if (c != '\\') {
            out[o++] = (char)c;
            continue;
        }
        if (in->p == in->end)
            goto bad;
        char e = *in->p++;
        const char *k = e ? strchr(esc_in, e) : NULL;
        if (k)
            out[o++] = esc_out[k - esc_in];
        else if (e != 'u' || !unicode_escape(in, out, &o))
            goto bad;
    }
    if (in->p == in->end)
        goto bad;
    in->p++;
    out[o] = '\0';
    *val = out;
    *len = o;
    return true;
bad:
    free(out);
    return false;
}

/* A number, true, false or null, kept as written. */
static bool read_scalar(struct jin *in, char **val, size_t *len)
{
    const char *s = in->p;
    while (in->p < in->end && strchr("+-.0123456789eEtruefalsn", *in->p))
        in->p++;
    size_t n = (size_t)(in->p - s);
    if (n == 0 || n > 32)
        return false;
    if (!(*val = strndup(s, n)))
        return false;
    *len = n;
    return true;
}

static bool read_member(struct jin *in, struct jobject *o)
{
    if (o->n == JSON_MAX_MEMBERS || in->p == in->end || *in->p != '"')
        return false;
    in->p++;
    struct jmember *m = &o->m[o->n];
    char *key;
    size_t klen;
    if (!read_string(in, &key, &klen))
        return false;
    snprintf(m->key, sizeof(m->key), "%s", key);
    free(key);
    skip_ws(in);
    if (in->p == in->end || *in->p++ != ':')
        return false;
    skip_ws(in);
    if (in->p == in->end)
        return false;
    m->is_str = *in->p == '"';
    if (m->is_str)
        in->p++;
    if (!(m->is_str ? read_string(in, &m->val, &m->len) : read_scalar(in, &m->val, &m->len)))
        return false;
    o->n++;
    return true;
}

/* Parses one flat object filling the whole input; false if malformed. */
static bool jobject_parse(const uint8_t *body, size_t len, struct jobject *o)
{
    struct jin in = {(const char *)body, (const char *)body + len};
    o->n = 0;
    skip_ws(&in);
    if (in.p == in.end || *in.p++ != '{')
        return false;
    skip_ws(&in);
    if (in.p < in.end && *in.p == '}')
        in.p++;
    else
        for (;;) {
            if (!read_member(&in, o))
                goto bad;
            skip_ws(&in);
            if (in.p == in.end)
                goto bad;
            char c = *in.p++;
            if (c == '}')
                break;
            if (c != ',')
                goto bad;
            skip_ws(&in);
        }
    skip_ws(&in);
    if (in.p == in.end)
        return true;
bad:
    jobject_free(o);
    return false;
}

static const struct jmember *member(const struct jobject *o, const char *key)
{
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->m[i].key, key) == 0)
            return &o->m[i];
    return NULL;
}

struct publish_req {
    const char *topic;
    const uint8_t *payload;
    size_t len;
    uint8_t qos;
    bool retain;
    uint8_t *decoded; /* base64: the payload's own buffer */
};

/* The publish body's fields; NULL, or what is wrong with them. */
static const char *publish_fields(const struct jobject *o, struct publish_req *pr)
{
    const struct jmember *t = member(o, "topic"), *p = member(o, "payload");
    const struct jmember *q = member(o, "qos"), *r = member(o, "retain");
    const struct jmember *e = member(o, "encoding");
    if (!t || !t->is_str || strlen(t->val) != t->len)
        return "\"topic\" must be a string";
    pr->topic = t->val;
    if (p && !p->is_str)
        return "\"payload\" must be a string";
    if (q && (q->is_str || strlen(q->val) != 1 || q->val[0] < '0' || q->val[0] > '2'))
        return "\"qos\" must be 0, 1 or 2";
    pr->qos = q ? (uint8_t)(q->val[0] - '0') : 0;
    if (r && (r->is_str || (strcmp(r->val, "true") != 0 && strcmp(r->val, "false") != 0)))
        return "\"retain\" must be true or false";
    pr->retain = r && strcmp(r->val, "true") == 0;
    pr->payload = (const uint8_t *)(p ? p->val : "");
    pr->len = p ? p->len : 0;
    if (e && (!e->is_str || (strcmp(e->val, "plain") != 0 && strcmp(e->val, "base64") != 0)))
        return "\"encoding\" must be \"plain\" or \"base64\"";
    if (e && strcmp(e->val, "base64") == 0) {
        if (!(pr->decoded = malloc(pr->len + 1)))
            return "out of memory";
        long n = base64_decode((const char *)pr->payload, pr->len, pr->decoded, pr->len + 1);
        if (n < 0)
            return "\"payload\" is not base64";
        pr->payload = pr->decoded;
        pr->len = (size_t)n;
    }
    return NULL;
}

/* see api.h */
void admin_api_publish(void *ctx, const struct http_request *rq, const char *who,
                       struct admin_reply *rep)
{
    const struct admin_sources *src = ctx;
    struct jobject o;
    if (!jobject_parse(rq->body, rq->body_len, &o))
        return admin_reply_error(rep, 400,
                                 "the body must be one JSON object of strings, "
                                 "numbers and booleans");
    struct publish_req pr = {0};
    const char *bad = publish_fields(&o, &pr);
    int rc = bad ? 0 : broker_publish(src->broker, pr.topic, pr.payload, pr.len, pr.qos, pr.retain);
    if (!bad && rc == 0)
        log_info("admin: %s published %zu bytes to '%s'", who, pr.len, pr.topic);
    free(pr.decoded);
    jobject_free(&o);
    if (bad)
        return admin_reply_error(rep, 400, bad);
    if (rc == -2)
        return admin_reply_error(rep, 400, "not a topic one may publish to, or too large");
    if (rc < 0)
        return admin_reply_error(rep, 500, "out of memory");
    ok_empty(rep);
}

/* ---- retained ------------------------------------------------------------ */

static void write_retained(struct jsonw *w, const struct msg *m, bool plain)
{
    size_t len;
    const uint8_t *p = broker_msg_payload(m, &len);
    jsonw_object_begin(w);
    jsonw_kv_string(w, "topic", broker_msg_topic(m));
    jsonw_kv_u64(w, "qos", broker_msg_qos(m));
    jsonw_kv_u64(w, "payload_size", len);
    jsonw_kv_string(w, "encoding", plain ? "plain" : "base64");
    jsonw_key(w, "payload");
    char *b64 = plain ? NULL : malloc(BASE64_LEN(len) + 1);
    if (plain)
        jsonw_string_n(w, (const char *)p, len);
    else if (b64) {
        size_t n = base64_encode(p, len, b64);
        jsonw_string_n(w, b64, n);
    } else
        w->failed = true;
    free(b64);
    jsonw_object_end(w);
}

/* ?encoding=plain|base64 (default base64: payloads are bytes). */
static int encoding_of(const struct http_request *rq, bool *plain)
{
    char v[16];
    int r = query_get(rq, "encoding", v, sizeof(v));
    *plain = r == 1 && strcmp(v, "plain") == 0;
    return r < 0 || (r == 1 && !*plain && strcmp(v, "base64") != 0) ? -1 : 0;
}

/* see api.h */
void admin_api_retained(void *ctx, const struct http_request *rq, const char *who,
                        struct admin_reply *rep)
{
    const struct admin_sources *src = ctx;
    struct page pg;
    bool plain;
    if (!page_of(rq, &pg) || encoding_of(rq, &plain) < 0)
        return admin_reply_error(rep, 400, "bad _page, _limit or encoding");
    struct msg **ms = page_room(pg.limit, sizeof(*ms), rep);
    if (!ms)
        return;
    size_t total = 0;
    int n = broker_inspect_retained(src->broker, pg.offset, pg.limit, ms, &total);
    struct jsonw w;
    begin(&w, rep);
    jsonw_key(&w, "data");
    jsonw_array_begin(&w);
    for (int i = 0; i < n; i++)
        write_retained(&w, ms[i], plain);
    broker_retained_release(ms, n > 0 ? (size_t)n : 0);
    free(ms);
    end_page(&w, &pg, total, n > 0 ? (size_t)n : 0, NULL, rep);
}

/* see api.h */
void admin_api_retained_one(void *ctx, const struct http_request *rq, const char *who,
                            struct admin_reply *rep)
{
    const struct admin_sources *src = ctx;
    bool plain;
    char *topic = malloc(ID_MAX);
    if (!topic)
        return admin_reply_error(rep, 500, "out of memory");
    if (!path_tail(rq, "/api/v4/retained/", topic, ID_MAX) || encoding_of(rq, &plain) < 0) {
        free(topic);
        return admin_reply_error(rep, 400,
                                 "a percent-encoded topic is needed after "
                                 "/api/v4/retained/");
    }
    int rc;
    struct msg *m = NULL;
    if (http_slice_eq(rq->method, "DELETE")) {
        rc = broker_retained_delete(src->broker, topic);
        if (rc == 0)
            log_notice("admin: %s deleted the retained message of '%s'", who, topic);
    } else
        rc = broker_inspect_retained_one(src->broker, topic, &m);
    free(topic);
    if (rc < 0)
        return admin_reply_error(rep, 400, "not a topic name");
    if (rc > 0)
        return admin_reply_error(rep, 404, "no retained message on that topic");
    if (!m)
        return ok_empty(rep);
    struct jsonw w;
    begin(&w, rep);
    jsonw_key(&w, "data");
    write_retained(&w, m, plain);
    jsonw_object_end(&w);
    broker_retained_release(&m, 1);
    finish(&w, rep);
}

/* ---- sessions ------------------------------------------------------------ */

static void write_session(struct jsonw *w, const struct broker_session_info *si)
{
    jsonw_object_begin(w);
    jsonw_kv_string(w, "clientid", si->id);
    jsonw_kv_string(w, "owner", si->owner);
    jsonw_kv_bool(w, "connected", si->online);
    jsonw_kv_u64(w, "proto_ver", si->protocol);
    jsonw_key(w, "expiry_interval");
    if (si->expiry_s == UINT32_MAX)
        jsonw_null(w); /* never expires */
    else
        jsonw_u64(w, si->expiry_s);
    jsonw_kv_u64(w, "expires_in_ms", si->expires_in_ms);
    jsonw_kv_u64(w, "subscriptions_cnt", si->subscriptions);
    jsonw_kv_u64(w, "mqueue_len", si->queued);
    jsonw_kv_u64(w, "inflight", si->inflight);
    jsonw_kv_bool(w, "will_pending", si->will_pending);
    jsonw_object_end(w);
}

/* see api.h */
void admin_api_sessions(void *ctx, const struct http_request *rq, const char *who,
                        struct admin_reply *rep)
{
    const struct admin_sources *src = ctx;
    struct page pg;
    if (!page_of(rq, &pg) || !cursor_of(rq, &pg))
        return admin_reply_error(rep, 400, "_page, _limit or after is not readable");
    struct broker_session_info *si = page_room(pg.limit, sizeof(*si), rep);
    size_t total = 0;
    int n =
        si ? broker_inspect_sessions(src->broker, pg.after, pg.offset, pg.limit, si, &total) : 0;
    if (n < 0) {
        free(si);
        page_free(&pg);
        return n == -2 ? admin_reply_error(rep, 410, "the 'after' session is gone; start again")
                       : admin_reply_error(rep, 500, "out of memory");
    }
    if (si) {
        struct jsonw w;
        begin(&w, rep);
        jsonw_key(&w, "data");
        jsonw_array_begin(&w);
        for (int i = 0; i < n; i++)
            write_session(&w, &si[i]);
        end_page(&w, &pg, total, (size_t)n, n ? si[n - 1].id : NULL, rep);
        for (int i = 0; i < n; i++)
            broker_session_info_clear(&si[i]);
    }
    free(si);
    page_free(&pg);
}

/* see api.h */
void admin_api_session_one(void *ctx, const struct http_request *rq, const char *who,
                           struct admin_reply *rep)
{
    const struct admin_sources *src = ctx;
    char *id = malloc(ID_MAX);
    if (!id)
        return admin_reply_error(rep, 500, "out of memory");
    if (!path_tail(rq, "/api/v4/sessions/", id, ID_MAX)) {
        free(id);
        return admin_reply_error(rep, 400, "a client id is needed after /api/v4/sessions/");
    }
    if (http_slice_eq(rq->method, "DELETE")) {
        int rc = broker_end_session(src->broker, id);
        if (rc == 0)
            log_notice("admin: %s ended session '%s'", who, id);
        free(id);
        return rc == 0 ? ok_empty(rep) : admin_reply_error(rep, 404, "no such session");
    }
    struct broker_session_info si;
    int rc = broker_inspect_session(src->broker, id, &si);
    free(id);
    if (rc != 0)
        return admin_reply_error(rep, rc > 0 ? 404 : 500,
                                 rc > 0 ? "no such session" : "out of memory");
    struct jsonw w;
    begin(&w, rep);
    jsonw_key(&w, "data");
    write_session(&w, &si);
    jsonw_object_end(&w);
    broker_session_info_clear(&si);
    finish(&w, rep);
}

/* ---- bridges, TLS, reload, brokers --------------------------------------- */

/* see api.h */
void admin_api_bridges(void *ctx, const struct http_request *rq, const char *who,
                       struct admin_reply *rep)
{
    const struct admin_sources *src = ctx;
    size_t n = src->nbridges < ADMIN_API_MAX_BRIDGES ? src->nbridges : ADMIN_API_MAX_BRIDGES;
    struct jsonw w;
    begin(&w, rep);
    jsonw_key(&w, "data");
    jsonw_array_begin(&w);
    for (size_t i = 0; i < n; i++) {
        struct bridge_status bs;
        bridge_status(src->bridges[i], &bs);
        jsonw_object_begin(&w);
        jsonw_kv_string(&w, "name", bs.name);
        jsonw_kv_string(&w, "server", bs.server);
        jsonw_kv_bool(&w, "connected", bs.connected);
        jsonw_kv_u64(&w, "since", bs.since);
        jsonw_kv_u64(&w, "sent", bs.sent);
        jsonw_kv_u64(&w, "received", bs.received);
        jsonw_kv_u64(&w, "dropped", bs.dropped);
        jsonw_kv_u64(&w, "connects", bs.connects);
        jsonw_kv_u64(&w, "queued", bs.queued);
        jsonw_kv_string(&w, "last_error", bs.last_error);
        jsonw_object_end(&w);
    }
    jsonw_array_end(&w);
    jsonw_object_end(&w);
    finish(&w, rep);
}

#define MAX_EXPIRIES 32

static void write_tls(struct jsonw *w, const struct admin_listener *l)
{
    jsonw_object_begin(w);
    jsonw_kv_string(w, "listener", l->name);
    jsonw_kv_string(w, "protocol", l->protocol);
    jsonw_kv_string(w, "transport", l->transport);
    const struct tls_server_config *cfg = tls_server_config(l->tls);
    jsonw_kv_string(w, "verify",
                    cfg->verify == TLS_VERIFY_REQUIRED   ? "required"
                    : cfg->verify == TLS_VERIFY_OPTIONAL ? "optional"
                                                         : "none");
    jsonw_key(w, "certificate_days_left");
    jsonw_i64(w, tls_server_days_left(l->tls));
    struct tls_expiry ex[MAX_EXPIRIES];
    int n = tls_server_expiries(l->tls, ex, MAX_EXPIRIES);
    jsonw_key(w, "expiries");
    jsonw_array_begin(w);
    for (int i = 0; i < n; i++) {
        jsonw_object_begin(w);
        jsonw_kv_string(w, "what", ex[i].what);
        jsonw_key(w, "days_left");
        jsonw_i64(w, ex[i].days);
        jsonw_object_end(w);
    }
    jsonw_array_end(w);
    uint64_t counts[TLS_NCAUSES];
    tls_server_counters(l->tls, counts);
    jsonw_key(w, "handshake_failures");
    jsonw_object_begin(w);
    for (int c = 0; c < TLS_NCAUSES; c++)
        jsonw_kv_u64(w, admin_tls_cause_slug(c), counts[c]);
    jsonw_object_end(w);
    jsonw_object_end(w);
}

/* see api.h */
void admin_api_tls(void *ctx, const struct http_request *rq, const char *who,
                   struct admin_reply *rep)
{
    const struct admin_sources *src = ctx;
    struct jsonw w;
    begin(&w, rep);
    jsonw_key(&w, "data");
    jsonw_array_begin(&w);
    for (size_t i = 0; i < src->nlisteners; i++)
        if (src->listeners[i].tls)
            write_tls(&w, &src->listeners[i]);
    jsonw_array_end(&w);
    jsonw_object_end(&w);
    finish(&w, rep);
}

/* see api.h */
void admin_api_reload(void *ctx, const struct http_request *rq, const char *who,
                      struct admin_reply *rep)
{
    const struct admin_sources *src = ctx;
    if (!src->reload)
        return admin_reply_error(rep, 501, "reload is not available here");
    char err[512] = "";
    log_notice("admin: %s asked for a reload", who);
    if (src->reload(src->reload_ctx, err, sizeof(err)) < 0)
        return admin_reply_error(rep, 500, err[0] ? err : "reload failed");
    ok_empty(rep);
}

/* "3 days, 2 hours, 5 minutes, 7 seconds", as NanoMQ writes uptime. */
static void uptime_text(uint64_t s, char *out, size_t cap)
{
    snprintf(out, cap,
             "%" PRIu64 " days, %" PRIu64 " hours, %" PRIu64 " minutes, %" PRIu64 " seconds",
             s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
}

/* see api.h */
void admin_api_brokers(void *ctx, const struct http_request *rq, const char *who,
                       struct admin_reply *rep)
{
    const struct admin_sources *src = ctx;
    uint64_t now = clock_wall_ms();
    uint64_t up = now > src->start_time_ms ? (now - src->start_time_ms) / 1000 : 0;
    char node[300], host[256] = "localhost", text[128], date[32];
    if (gethostname(host, sizeof(host) - 1) != 0)
        snprintf(host, sizeof(host), "localhost");
    snprintf(node, sizeof(node), "%s", src->node_name ? src->node_name : "");
    if (!src->node_name)
        snprintf(node, sizeof(node), "ward@%s", host);
    uptime_text(up, text, sizeof(text));
    time_t t = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
    struct jsonw w;
    begin(&w, rep);
    jsonw_key(&w, "data");
    jsonw_object_begin(&w);
    jsonw_kv_string(&w, "datetime", date);
    jsonw_kv_string(&w, "node", node);
    jsonw_kv_string(&w, "node_status", "Running");
    jsonw_kv_string(&w, "sysdescr", "ward MQTT and NATS broker");
    jsonw_kv_string(&w, "uptime", text);
    jsonw_kv_u64(&w, "uptime_seconds", up);
    jsonw_kv_string(&w, "version", WARD_VERSION);
    jsonw_object_end(&w);
    jsonw_object_end(&w);
    finish(&w, rep);
}

/* ---- routes -------------------------------------------------------------- */

struct route {
    const char *method, *path;
    enum admin_scope need;
    admin_fn fn;
};

static const struct route routes[] = {
    {"GET", "/api/v4/clients", ADMIN_SCOPE_READ, admin_api_clients},
    {"GET", "/api/v4/clients/", ADMIN_SCOPE_READ, admin_api_client_one},
    {"DELETE", "/api/v4/clients/", ADMIN_SCOPE_ADMIN, admin_api_client_one},
    {"GET", "/api/v4/subscriptions", ADMIN_SCOPE_READ, admin_api_subscriptions},
    {"POST", "/api/v4/mqtt/publish", ADMIN_SCOPE_ADMIN, admin_api_publish},
    {"GET", "/api/v4/retained", ADMIN_SCOPE_READ, admin_api_retained},
    {"GET", "/api/v4/retained/", ADMIN_SCOPE_READ, admin_api_retained_one},
    {"DELETE", "/api/v4/retained/", ADMIN_SCOPE_ADMIN, admin_api_retained_one},
    {"GET", "/api/v4/sessions", ADMIN_SCOPE_READ, admin_api_sessions},
    {"GET", "/api/v4/sessions/", ADMIN_SCOPE_READ, admin_api_session_one},
    {"DELETE", "/api/v4/sessions/", ADMIN_SCOPE_ADMIN, admin_api_session_one},
    {"GET", "/api/v4/bridges", ADMIN_SCOPE_READ, admin_api_bridges},
    {"GET", "/api/v4/tls", ADMIN_SCOPE_READ, admin_api_tls},
    {"POST", "/api/v4/reload", ADMIN_SCOPE_ADMIN, admin_api_reload},
    {"GET", "/api/v4/brokers", ADMIN_SCOPE_READ, admin_api_brokers},
    {"GET", "/metrics", ADMIN_SCOPE_READ, admin_metrics},
    {"GET", "/api/v4/prometheus", ADMIN_SCOPE_READ, admin_metrics},
    {"GET", "/varz", ADMIN_SCOPE_READ, admin_natsmon_varz},
    {"GET", "/connz", ADMIN_SCOPE_READ, admin_natsmon_connz},
    {"GET", "/subsz", ADMIN_SCOPE_READ, admin_natsmon_subsz},
};

/* see api.h */
int admin_api_register(struct admin *a, const struct admin_sources *src)
{
    void *ctx = (void *)src;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (admin_route(a, routes[i].method, routes[i].path, routes[i].need, routes[i].fn, ctx) <
            0) {
            log_error("admin: cannot add the route %s %s", routes[i].method, routes[i].path);
            return -1;
        }
    return 0;
}
