/* GET /metrics: the Prometheus text exposition format 0.0.4 (see api.h).
 *
 * Every value is a counter or size the broker, net, TLS, the store and the
 * bridges maintain as things happen, copied in one short hold of each
 * one's lock; nothing walks clients or sessions, so a scrape costs the
 * same with ten clients or twenty thousand. No label carries a client id
 * or a topic: listener and bridge names come from the configuration. */
#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/api.h"
#include "bridge/bridge.h"
#include "broker/inspect.h"
#include "core/clock.h"
#include "core/log.h"
#include "net/net.h"
#include "store/store.h"
#include "tls/tls.h"

struct mw {
    struct buf *out;
    bool failed;
};

static void put(struct mw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct mw *w, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) || !ward_ok(buf_append(w->out, line, (size_t)n)))
        w->failed = true;
}

/* The HELP and TYPE lines of a family. */
static void family(struct mw *w, const char *name, const char *type, const char *help)
{
    put(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value as the format wants it: backslash, quote and newline
 * escaped. */
static const char *label(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (; *in && o + 3 < cap; in++) {
        if (*in == '\\' || *in == '"') {
            out[o++] = '\\';
            out[o++] = *in;
        } else if (*in == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else
            out[o++] = *in;
    }
    out[o] = '\0';
    return out;
}

/* One sample without labels. */
static void value(struct mw *w, const char *name, const char *type, const char *help, uint64_t v)
{
    family(w, name, type, help);
    put(w, "%s %" PRIu64 "\n", name, v);
}

/* ---- the broker ---------------------------------------------------------- */

static void messages(struct mw *w, const struct broker_counters *k)
{
    family(w, "ward_messages_received_total", "counter",
           "Application messages received from clients (PUBLISH, NATS PUB) by QoS.");
    for (int q = 0; q < 3; q++)
        put(w, "ward_messages_received_total{qos=\"%d\"} %" PRIu64 "\n", q, k->msgs_in[q]);
    family(w, "ward_messages_sent_total", "counter",
           "Application messages sent to subscribers by QoS (resends included).");
    for (int q = 0; q < 3; q++)
        put(w, "ward_messages_sent_total{qos=\"%d\"} %" PRIu64 "\n", q, k->msgs_out[q]);
    value(w, "ward_received_bytes_total", "counter", "Protocol bytes read from clients.",
          k->bytes_in);
    value(w, "ward_sent_bytes_total", "counter", "Protocol bytes queued for clients.",
          k->bytes_out);
    static const char *const reasons[] = {
        "queue_full", "offline_queue_full", "output_full", "too_large",
        "other",      "retained_limit",     "memory_limit"};
    uint64_t counts[] = {k->dropped_queue_full, k->dropped_offline_full, k->dropped_output_full,
                         k->dropped_too_large,  k->dropped_other,        k->retained_refused,
                         k->memory_refused};
    family(w, "ward_messages_dropped_total", "counter",
           "Messages dropped or refused, by reason (per receiver for delivery drops).");
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        put(w, "ward_messages_dropped_total{reason=\"%s\"} %" PRIu64 "\n", reasons[i], counts[i]);
    value(w, "ward_messages_queued", "gauge", "QoS 1/2 messages queued for sessions, not yet sent.",
          k->queued);
    value(w, "ward_messages_inflight", "gauge", "QoS 1/2 messages sent and not yet acknowledged.",
          k->inflight);
    value(w, "ward_retained_messages", "gauge", "Retained messages held ($SYS included).",
          k->retained);
    value(w, "ward_retained_bytes", "gauge", "Bytes of the retained messages held.",
          k->retained_bytes);
}

static void clients(struct mw *w, const struct broker_counters *k)
{
    family(w, "ward_clients_connected", "gauge", "Clients connected (CONNECT accepted).");
    put(w, "ward_clients_connected{protocol=\"mqtt\"} %" PRIu32 "\n",
        k->clients_connected - k->nats_connected);
    put(w, "ward_clients_connected{protocol=\"nats\"} %" PRIu32 "\n", k->nats_connected);
    value(w, "ward_clients_connected_max", "gauge", "Most clients connected at once.",
          k->clients_max);
    value(w, "ward_connects_total", "counter", "Connections accepted by the broker (CONNECT).",
          k->connects);
    family(w, "ward_sessions", "gauge", "MQTT sessions held, by state.");
    uint64_t off = k->sessions_offline < k->sessions ? k->sessions_offline : k->sessions;
    put(w, "ward_sessions{state=\"online\"} %" PRIu64 "\n", k->sessions - off);
    put(w, "ward_sessions{state=\"offline\"} %" PRIu64 "\n", off);
    value(w, "ward_subscriptions", "gauge", "Subscriptions held (MQTT and NATS).",
          k->subscriptions);
    value(w, "ward_auth_failures_total", "counter", "Logins refused.", k->auth_failures);
    value(w, "ward_acl_denied_total", "counter",
          "Publishes, subscriptions and wills the ACL denied.", k->acl_denied);
    value(w, "ward_sessions_refused_total", "counter", "Sessions refused at the sessions limit.",
          k->sessions_refused);
    value(w, "ward_subscriptions_refused_total", "counter", "Subscriptions refused by limits.",
          k->subs_refused);
    value(w, "ward_packet_timeouts_total", "counter",
          "Connections closed: a packet or CONNECT not completed in time.", k->packet_timeouts);
    value(w, "ward_slow_consumers_total", "counter",
          "Connections closed: their full queue held producers too long.", k->slow_consumers);
    value(w, "ward_producers_throttled_total", "counter",
          "Times a producer was made to wait for a full receiver.", k->throttled);
    value(w, "ward_producers_waiting", "gauge", "Producers waiting for a full receiver now.",
          k->producers_waiting);
}

/* ---- listeners and TLS --------------------------------------------------- */

static void listener_labels(const struct admin_listener *l, char *out, size_t cap)
{
    char name[256];
    snprintf(out, cap, "listener=\"%s\",protocol=\"%s\",transport=\"%s\"",
             label(l->name, name, sizeof(name)), l->protocol, l->transport);
}

static void listeners(struct mw *w, const struct admin_sources *src,
                      const struct broker_counters *k)
{
    char lab[400];
    family(w, "ward_connections", "gauge", "Open connections per listener.");
    for (size_t i = 0; i < src->nlisteners; i++) {
        listener_labels(&src->listeners[i], lab, sizeof(lab));
        put(w, "ward_connections{%s} %" PRIu32 "\n", lab,
            k->listener_conns[src->listeners[i].index % BROKER_INSPECT_LISTENERS]);
    }
    if (!src->net)
        return;
    family(w, "ward_listener_connections_total", "counter",
           "Connections taken on (before any TLS handshake) per listener.");
    uint64_t st[NET_NSTATS];
    for (size_t i = 0; i < src->nlisteners; i++)
        if (net_server_listener_stats(src->net, src->listeners[i].index, st)) {
            listener_labels(&src->listeners[i], lab, sizeof(lab));
            put(w, "ward_listener_connections_total{%s} %" PRIu64 "\n", lab, st[NET_ST_ACCEPTED]);
        }
    family(w, "ward_listener_refused_total", "counter",
           "Connections refused or closed by a listener's limits, by reason.");
    static const enum net_stat why[] = {
        NET_ST_REFUSED_LIMIT,    NET_ST_REFUSED_FDS, NET_ST_ACCEPT_ERRORS, NET_ST_HS_REFUSED,
        NET_ST_HS_IDLE_TIMEOUTS, NET_ST_HS_TIMEOUTS, NET_ST_PROXY_REFUSED, NET_ST_SLOW_CONSUMERS};
    for (size_t i = 0; i < src->nlisteners; i++) {
        if (!net_server_listener_stats(src->net, src->listeners[i].index, st))
            continue;
        listener_labels(&src->listeners[i], lab, sizeof(lab));
        for (size_t j = 0; j < sizeof(why) / sizeof(why[0]); j++)
            put(w, "ward_listener_refused_total{%s,reason=\"%s\"} %" PRIu64 "\n", lab,
                net_stat_name(why[j]), st[why[j]]);
    }
}

/* The kind of a tls_expiry entry, from its description. */
static int expiry_kind(const char *what)
{
    static const char *const prefixes[] = {"server certificate", "chain certificate",
                                           "CA certificate", "CRL"};
    for (int i = 0; i < 4; i++)
        if (strncmp(what, prefixes[i], strlen(prefixes[i])) == 0)
            return i;
    return -1;
}

static void tls_expiry_days(struct mw *w, const struct admin_listener *l, const char *lab)
{
    static const char *const kinds[] = {"certificate", "chain", "ca", "crl"};
    struct tls_expiry ex[32];
    int n = tls_server_expiries(l->tls, ex, 32);
    long least[4];
    bool seen[4] = {false};
    for (int i = 0; i < n; i++) {
        int k = expiry_kind(ex[i].what);
        if (k >= 0 && (!seen[k] || ex[i].days < least[k])) {
            least[k] = ex[i].days;
            seen[k] = true;
        }
    }
    for (int k = 0; k < 4; k++)
        if (seen[k])
            put(w, "ward_tls_expiry_days{%s,kind=\"%s\"} %ld\n", lab, kinds[k], least[k]);
}

/* see api.h */
const char *admin_tls_cause_slug(int cause)
{
    static const char *const slugs[] = {
        "no_cert",     "unknown_ca", "expired",          "not_yet_valid",
        "revoked",     "bad_usage",  "protocol_version", "no_shared_cipher",
        "timeout",     "plaintext",  "bad_cert",         "busy",
        "peer_closed", "other"};
    _Static_assert(sizeof(slugs) / sizeof(slugs[0]) == TLS_NCAUSES, "a slug per tls_cause");
    return cause >= 0 && cause < TLS_NCAUSES ? slugs[cause] : "other";
}

static void tls(struct mw *w, const struct admin_sources *src, const struct broker_counters *k)
{
    char lab[400];
    bool any = false;
    for (size_t i = 0; i < src->nlisteners; i++)
        any = any || src->listeners[i].tls;
    if (!any)
        return;
    family(w, "ward_tls_handshakes_total", "counter", "Completed TLS handshakes per listener.");
    for (size_t i = 0; i < src->nlisteners; i++)
        if (src->listeners[i].tls) {
            listener_labels(&src->listeners[i], lab, sizeof(lab));
            put(w, "ward_tls_handshakes_total{%s} %" PRIu64 "\n", lab,
                k->listener_opened[src->listeners[i].index % BROKER_INSPECT_LISTENERS]);
        }
    family(w, "ward_tls_handshake_failures_total", "counter",
           "Failed TLS handshakes per listener, by cause.");
    for (size_t i = 0; i < src->nlisteners; i++) {
        const struct admin_listener *l = &src->listeners[i];
        if (!l->tls)
            continue;
        listener_labels(l, lab, sizeof(lab));
        uint64_t counts[TLS_NCAUSES];
        tls_server_counters(l->tls, counts);
        for (int c = 0; c < TLS_NCAUSES; c++)
            put(w, "ward_tls_handshake_failures_total{%s,cause=\"%s\"} %" PRIu64 "\n", lab,
                admin_tls_cause_slug(c), counts[c]);
    }
    family(w, "ward_tls_expiry_days", "gauge",
           "Days until the soonest expiry per listener: its certificate, chain, trusted CAs, "
           "CRL next update (negative: past).");
    for (size_t i = 0; i < src->nlisteners; i++)
        if (src->listeners[i].tls) {
            listener_labels(&src->listeners[i], lab, sizeof(lab));
            tls_expiry_days(w, &src->listeners[i], lab);
        }
}

/* ---- bridges, store, admin, process -------------------------------------- */

static void bridges(struct mw *w, const struct admin_sources *src)
{
    size_t n = src->nbridges < ADMIN_API_MAX_BRIDGES ? src->nbridges : ADMIN_API_MAX_BRIDGES;
    if (!n)
        return;
    struct bridge_status bs[ADMIN_API_MAX_BRIDGES];
    char names[ADMIN_API_MAX_BRIDGES][256];
    for (size_t i = 0; i < n; i++) {
        bridge_status(src->bridges[i], &bs[i]);
        label(bs[i].name, names[i], sizeof(names[i]));
    }
    static const char *const fam[][3] = {
        {"ward_bridge_up", "gauge", "1 while the bridge's upstream link is connected."},
        {"ward_bridge_messages_sent_total", "counter", "Messages the upstream acknowledged."},
        {"ward_bridge_messages_received_total", "counter", "Messages from the upstream."},
        {"ward_bridge_messages_dropped_total", "counter", "Messages a bridge lost."},
        {"ward_bridge_connects_total", "counter", "Successful upstream connections."},
        {"ward_bridge_queued_messages", "gauge", "QoS 1/2 messages waiting for the upstream."},
    };
    for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
        family(w, fam[f][0], fam[f][1], fam[f][2]);
        for (size_t i = 0; i < n; i++) {
            uint64_t v[] = {bs[i].connected, bs[i].sent,     bs[i].received,
                            bs[i].dropped,   bs[i].connects, bs[i].queued};
            put(w, "%s{bridge=\"%s\"} %" PRIu64 "\n", fam[f][0], names[i], v[f]);
        }
    }
}

static void store(struct mw *w, const struct admin_sources *src)
{
    if (!src->store)
        return;
    struct store_stats st;
    store_get_stats(src->store, &st);
    value(w, "ward_store_commits_total", "counter", "Store transactions committed.", st.commits);
    value(w, "ward_store_operations_total", "counter", "Operations written by those commits.",
          st.ops);
    value(w, "ward_store_commit_failures_total", "counter", "Commits that failed.", st.failures);
    value(w, "ward_store_pending_operations", "gauge", "Operations waiting for the next commit.",
          st.pending_ops);
    value(w, "ward_store_size_bytes", "gauge", "The database and its WAL.", st.bytes);
    family(w, "ward_store_commit_seconds", "gauge", "Duration of the last and the longest commit.");
    put(w, "ward_store_commit_seconds{which=\"last\"} %.6f\n", (double)st.last_commit_us / 1e6);
    put(w, "ward_store_commit_seconds{which=\"max\"} %.6f\n", (double)st.max_commit_us / 1e6);
}

static void admin_counters(struct mw *w, const struct admin_sources *src)
{
    if (!src->admin)
        return;
    struct admin_stats st;
    admin_get_stats(src->admin, &st);
    family(w, "ward_http_requests_total", "counter", "Admin HTTP requests, by outcome.");
    put(w, "ward_http_requests_total{outcome=\"answered\"} %" PRIu64 "\n", st.requests);
    put(w, "ward_http_requests_total{outcome=\"unauthorized\"} %" PRIu64 "\n", st.unauthorized);
    put(w, "ward_http_requests_total{outcome=\"forbidden\"} %" PRIu64 "\n", st.forbidden);
    put(w, "ward_http_requests_total{outcome=\"refused\"} %" PRIu64 "\n", st.refused);
    put(w, "ward_http_requests_total{outcome=\"timeout\"} %" PRIu64 "\n", st.timeouts);
}

/* /proc/self/stat: CPU ticks (user + system), virtual and resident size. */
static bool proc_stat(double *cpu_s, uint64_t *vsize, uint64_t *rss)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold anything */
    unsigned long ut, st;
    unsigned long long vs;
    long rs;
    if (!p || sscanf(p + 2,
                     "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d "
                     "%*u %llu %ld",
                     &ut, &st, &vs, &rs) != 4)
        return false;
    long hz = sysconf(_SC_CLK_TCK);
    *cpu_s = (double)(ut + st) / (double)(hz > 0 ? hz : 100);
    *vsize = vs;
    *rss = rs > 0 ? (uint64_t)rs * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
    return true;
}

/* Open descriptors. Since Linux 6.2 the size of /proc/self/fd is their
 * count, which costs a few microseconds; listing the directory costs about
 * 4 ms of CPU with 10,000 connections, so it is only the fallback for
 * older kernels (whose size reads 0). */
static uint64_t open_fds(void)
{
    struct stat st;
    if (stat("/proc/self/fd", &st) == 0 && st.st_size > 0)
        return (uint64_t)st.st_size;
    uint64_t n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n ? n - 1 : 0; /* the directory's own descriptor */
}

static void process(struct mw *w, const struct admin_sources *src)
{
    double cpu;
    uint64_t vsize, rss;
    if (proc_stat(&cpu, &vsize, &rss)) {
        family(w, "process_cpu_seconds_total", "counter", "User and system CPU time spent.");
        put(w, "process_cpu_seconds_total %.2f\n", cpu);
        value(w, "process_resident_memory_bytes", "gauge", "Resident memory size.", rss);
        value(w, "process_virtual_memory_bytes", "gauge", "Virtual memory size.", vsize);
    }
    value(w, "process_open_fds", "gauge", "Open file descriptors.", open_fds());
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        value(w, "process_max_fds", "gauge", "The file descriptor limit.", (uint64_t)rl.rlim_cur);
    family(w, "process_start_time_seconds", "gauge", "Start time since the epoch.");
    put(w, "process_start_time_seconds %.3f\n", (double)src->start_time_ms / 1000.0);
}

/* see api.h */
struct ward_result admin_metrics_write(const struct admin_sources *src, struct buf *out)
{
    struct mw w = {.out = out};
    struct broker_counters k;
    broker_inspect_counters(src->broker, &k);
    family(&w, "ward_build_info", "gauge", "The running version.");
    put(&w, "ward_build_info{version=\"%s\"} 1\n", WARD_VERSION);
    family(&w, "ward_uptime_seconds", "gauge", "Seconds since the broker started.");
    put(&w, "ward_uptime_seconds %.3f\n", (double)k.uptime_ms / 1000.0);
    listeners(&w, src, &k);
    clients(&w, &k);
    messages(&w, &k);
    tls(&w, src, &k);
    bridges(&w, src);
    store(&w, src);
    admin_counters(&w, src);
    value(&w, "ward_log_dropped_lines_total", "counter",
          "Log lines dropped because the log queue was full (a stalled pipe or disk).",
          log_dropped());
    process(&w, src);
    return w.failed ? WARD_RESULT_ERR(WARD_ERR_NOMEM) : WARD_RESULT_OK;
}

/* see api.h */
void admin_metrics(void *ctx, const struct http_request *rq, const char *who,
                   struct admin_reply *rep)
{
    buf_reset(&rep->body);
    if (!ward_ok(admin_metrics_write(ctx, &rep->body))) {
        buf_reset(&rep->body);
        return admin_reply_error(rep, 500, "out of memory");
    }
    rep->status = 200;
    rep->content_type = "text/plain; version=0.0.4; charset=utf-8";
}
