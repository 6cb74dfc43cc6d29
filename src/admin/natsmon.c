/* nats-server's monitoring endpoints, in its formats (see api.h), so
 * prometheus-nats-exporter and nats-top read ward as they read
 * nats-server. Field names follow what nats-server 2.9 answers.
 *
 * ward is one broker for MQTT and NATS: the message and byte totals of
 * /varz are the whole broker's; /connz lists the NATS connections only,
 * each with its own message and byte counts (its in_bytes are payload and
 * headers, as nats-server counts them; out_bytes the whole MSG lines). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin/api.h"
#include "broker/broker.h"
#include "broker/inspect.h"
#include "core/clock.h"
#include "http/jsonw.h"
#include "net/net.h"

#define CONNZ_DEFAULT_LIMIT 1024u /* nats-server's */
#define CONNZ_MAX_LIMIT     10000u

/* RFC 3339 with milliseconds, UTC, from unix ms. */
static void rfc3339(uint64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%03uZ", base, (unsigned)(ms % 1000));
}

/* A duration as nats-server writes uptimes: "1d2h3m4s", "5m0s", "0s". */
static void duration(uint64_t ms, char *out, size_t cap)
{
    uint64_t s = ms / 1000, d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60;
    if (d)
        snprintf(out, cap, "%" PRIu64 "d%" PRIu64 "h%" PRIu64 "m%" PRIu64 "s", d, h, m, s % 60);
    else if (h)
        snprintf(out, cap, "%" PRIu64 "h%" PRIu64 "m%" PRIu64 "s", h, m, s % 60);
    else if (m)
        snprintf(out, cap, "%" PRIu64 "m%" PRIu64 "s", m, s % 60);
    else
        snprintf(out, cap, "%" PRIu64 "s", s);
}

static void kv_time(struct jsonw *w, const char *key, uint64_t ms)
{
    char t[48];
    rfc3339(ms, t, sizeof(t));
    jsonw_kv_string(w, key, t);
}

static void kv_duration(struct jsonw *w, const char *key, uint64_t ms)
{
    char t[48];
    duration(ms, t, sizeof(t));
    jsonw_kv_string(w, key, t);
}

static void done(struct jsonw *w, struct admin_reply *rep)
{
    if (!jsonw_done(w)) {
        buf_reset(&rep->body);
        return admin_reply_error(rep, 500, "out of memory");
    }
    rep->status = 200;
    rep->content_type = "application/json";
}

/* Resident bytes and CPU seconds from /proc (0 if unreadable). */
static void process_use(uint64_t *rss, double *cpu_s)
{
    *rss = 0;
    *cpu_s = 0;
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    unsigned long ut, st;
    long rs;
    if (p && sscanf(p + 2,
                    "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d "
                    "%*u %*u %ld",
                    &ut, &st, &rs) == 3) {
        long hz = sysconf(_SC_CLK_TCK);
        *cpu_s = (double)(ut + st) / (double)(hz > 0 ? hz : 100);
        *rss = rs > 0 ? (uint64_t)rs * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
    }
}

static void varz_limits(struct jsonw *w, const struct admin_sources *src)
{
    struct broker_nats_opts o;
    unsigned idx = 0;
    if (broker_inspect_nats_listener(src->broker, &idx, &o) < 0)
        broker_nats_opts_defaults(&o);
    jsonw_kv_string(w, "host", "0.0.0.0");
    jsonw_kv_u64(w, "port", src->net ? net_server_port(src->net, idx) : 0);
    jsonw_kv_u64(w, "max_connections", 0);
    jsonw_kv_u64(w, "ping_interval", (uint64_t)o.ping_interval_ms * 1000000u); /* ns */
    jsonw_kv_u64(w, "ping_max", o.ping_max);
    jsonw_key(w, "auth_timeout");
    jsonw_double(w, (double)o.auth_timeout_ms / 1000.0);
    jsonw_kv_u64(w, "max_control_line", o.max_control_line);
    jsonw_kv_u64(w, "max_payload", o.max_payload);
    jsonw_kv_bool(w, "tls_required", false);
    jsonw_kv_bool(w, "tls_verify", o.tls_verify);
}

/* see api.h */
void admin_natsmon_varz(void *ctx, const struct http_request *rq, const char *who,
                        struct admin_reply *rep)
{
    const struct admin_sources *src = ctx;
    struct broker_counters k;
    broker_inspect_counters(src->broker, &k);
    uint64_t now = clock_wall_ms(), rss;
    double cpu_s;
    process_use(&rss, &cpu_s);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    struct jsonw w;
    buf_reset(&rep->body);
    jsonw_init(&w, &rep->body);
    jsonw_object_begin(&w);
    jsonw_kv_string(&w, "server_id", broker_nats_server_id());
    jsonw_kv_string(&w, "server_name", src->node_name ? src->node_name : broker_nats_server_id());
    jsonw_kv_string(&w, "version", WARD_VERSION);
    jsonw_kv_u64(&w, "proto", 1);
    jsonw_kv_string(&w, "go", "ward (C)");
    varz_limits(&w, src);
    kv_time(&w, "start", src->start_time_ms);
    kv_time(&w, "now", now);
    kv_duration(&w, "uptime", k.uptime_ms);
    jsonw_kv_u64(&w, "mem", rss);
    jsonw_kv_u64(&w, "cores", cores > 0 ? (uint64_t)cores : 1);
    jsonw_kv_u64(&w, "gomaxprocs", cores > 0 ? (uint64_t)cores : 1);
    jsonw_key(&w, "cpu"); /* percent, averaged since start */
    jsonw_double(&w, k.uptime_ms ? cpu_s * 100000.0 / (double)k.uptime_ms : 0.0);
    jsonw_kv_u64(&w, "connections", k.nats_connected);
    jsonw_kv_u64(&w, "total_connections", k.connects);
    jsonw_kv_u64(&w, "routes", 0);
    jsonw_kv_u64(&w, "remotes", 0);
    jsonw_kv_u64(&w, "leafnodes", 0);
    jsonw_kv_u64(&w, "in_msgs", k.msgs_in[0] + k.msgs_in[1] + k.msgs_in[2]);
    jsonw_kv_u64(&w, "out_msgs", k.msgs_out[0] + k.msgs_out[1] + k.msgs_out[2]);
    jsonw_kv_u64(&w, "in_bytes", k.bytes_in);
    jsonw_kv_u64(&w, "out_bytes", k.bytes_out);
    jsonw_kv_u64(&w, "slow_consumers", k.slow_consumers);
    jsonw_kv_u64(&w, "subscriptions", k.subscriptions);
    jsonw_key(&w, "http_req_stats");
    jsonw_object_begin(&w);
    jsonw_object_end(&w);
    kv_time(&w, "config_load_time", src->start_time_ms);
    jsonw_object_end(&w);
    done(&w, rep);
}

/* ?name=N as a count in 0..max; false (400) when present and not one. */
static bool query_num(const struct http_request *rq, const char *name, uint64_t max, uint64_t *out)
{
    char v[24];
    if (!http_form_get(rq->query, name, v, sizeof(v)))
        return true;
    char *end;
    if (!v[0] || v[0] == '-' || v[0] == '+')
        return false;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end || n > max)
        return false;
    *out = n;
    return true;
}

/* A connection's subscriptions, as a list of subjects or (detail) objects. */
static void connz_subs(struct jsonw *w, const struct admin_sources *src,
                       const struct broker_client_info *ci, bool detail)
{
    struct broker_sub_info *si = calloc(ci->subscriptions ? ci->subscriptions : 1, sizeof(*si));
    size_t total = 0;
    int n = si ? broker_inspect_subs(src->broker, ci->id, 0, ci->subscriptions, si, &total) : -1;
    jsonw_key(w, detail ? "subscriptions_list_detail" : "subscriptions_list");
    jsonw_array_begin(w);
    for (int i = 0; i < n; i++) {
        if (detail) {
            jsonw_object_begin(w);
            jsonw_kv_string(w, "subject", si[i].topic);
            jsonw_kv_u64(w, "cid", ci->nats_cid);
            jsonw_object_end(w);
        } else
            jsonw_string(w, si[i].topic);
        broker_sub_info_clear(&si[i]);
    }
    jsonw_array_end(w);
    free(si);
    if (n < 0)
        w->failed = true;
}

static void connz_one(struct jsonw *w, const struct admin_sources *src,
                      const struct broker_client_info *ci, uint64_t now, int subs)
{
    const char *colon = strrchr(ci->peer, ':');
    size_t hl = colon ? (size_t)(colon - ci->peer) : strlen(ci->peer);
    const char *host = ci->peer;
    if (hl >= 2 && host[0] == '[') {
        host++;
        hl -= 2;
    }
    jsonw_object_begin(w);
    jsonw_kv_u64(w, "cid", ci->nats_cid);
    jsonw_kv_string(w, "kind", "Client");
    jsonw_kv_string(w, "type", "nats");
    jsonw_key(w, "ip");
    jsonw_string_n(w, host, hl);
    jsonw_kv_u64(w, "port", colon ? strtoul(colon + 1, NULL, 10) : 0);
    kv_time(w, "start", ci->connected_at_ms);
    kv_time(w, "last_activity", ci->last_activity_ms);
    jsonw_kv_string(w, "rtt", "0s");
    kv_duration(w, "uptime", now - ci->connected_at_ms);
    kv_duration(w, "idle", now > ci->last_activity_ms ? now - ci->last_activity_ms : 0);
    jsonw_kv_u64(w, "pending_bytes", ci->pending_bytes);
    jsonw_kv_u64(w, "in_msgs", ci->msgs_in);
    jsonw_kv_u64(w, "out_msgs", ci->msgs_out);
    jsonw_kv_u64(w, "in_bytes", ci->bytes_in);
    jsonw_kv_u64(w, "out_bytes", ci->bytes_out);
    jsonw_kv_u64(w, "subscriptions", ci->subscriptions);
    if (ci->username)
        jsonw_kv_string(w, "authorized_user", ci->username);
    if (subs)
        connz_subs(w, src, ci, subs == 2);
    jsonw_object_end(w);
}

/* see api.h */
void admin_natsmon_connz(void *ctx, const struct http_request *rq, const char *who,
                         struct admin_reply *rep)
{
    const struct admin_sources *src = ctx;
    uint64_t limit = CONNZ_DEFAULT_LIMIT, offset = 0;
    char subs_v[16] = "";
    if (!query_num(rq, "limit", CONNZ_MAX_LIMIT, &limit) ||
        !query_num(rq, "offset", UINT32_MAX, &offset))
        return admin_reply_error(rep, 400, "limit and offset must be whole numbers in range");
    http_form_get(rq->query, "subs", subs_v, sizeof(subs_v));
    int subs = strcmp(subs_v, "detail") == 0                             ? 2
               : strcmp(subs_v, "1") == 0 || strcmp(subs_v, "true") == 0 ? 1
                                                                         : 0;
    struct broker_client_info *ci = calloc(limit ? limit : 1, sizeof(*ci));
    if (!ci)
        return admin_reply_error(rep, 500, "out of memory");
    size_t total = 0;
    int n =
        broker_inspect_clients(src->broker, NULL, (size_t)offset, (size_t)limit, true, ci, &total);
    if (n < 0) {
        free(ci);
        return admin_reply_error(rep, 500, "out of memory");
    }
    uint64_t now = clock_wall_ms();
    struct jsonw w;
    buf_reset(&rep->body);
    jsonw_init(&w, &rep->body);
    jsonw_object_begin(&w);
    jsonw_kv_string(&w, "server_id", broker_nats_server_id());
    kv_time(&w, "now", now);
    jsonw_kv_u64(&w, "num_connections", (uint64_t)n);
    jsonw_kv_u64(&w, "total", total);
    jsonw_kv_u64(&w, "offset", offset);
    jsonw_kv_u64(&w, "limit", limit);
    jsonw_key(&w, "connections");
    jsonw_array_begin(&w);
    for (int i = 0; i < n; i++) {
        connz_one(&w, src, &ci[i], now, subs);
        broker_client_info_clear(&ci[i]);
    }
    free(ci);
    jsonw_array_end(&w);
    jsonw_object_end(&w);
    done(&w, rep);
}

/* see api.h */
void admin_natsmon_subsz(void *ctx, const struct http_request *rq, const char *who,
                         struct admin_reply *rep)
{
    const struct admin_sources *src = ctx;
    struct broker_counters k;
    broker_inspect_counters(src->broker, &k);
    struct jsonw w;
    buf_reset(&rep->body);
    jsonw_init(&w, &rep->body);
    jsonw_object_begin(&w);
    jsonw_kv_u64(&w, "num_subscriptions", k.subscriptions);
    /* ward's tree keeps no match cache: these stay 0. */
    jsonw_kv_u64(&w, "num_cache", 0);
    jsonw_kv_u64(&w, "num_inserts", 0);
    jsonw_kv_u64(&w, "num_removes", 0);
    jsonw_kv_u64(&w, "num_matches", 0);
    jsonw_kv_u64(&w, "cache_hit_rate", 0);
    jsonw_kv_u64(&w, "max_fanout", 0);
    jsonw_kv_u64(&w, "avg_fanout", 0);
    jsonw_object_end(&w);
    done(&w, rep);
}
