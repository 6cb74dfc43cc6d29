/* `ward status`: a running broker's state from its admin HTTP API, as a
 * short summary for people or one JSON object (--json); `ward check
 * --status` prints the same summary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "admin_client.h"
#include "commands.h"
#include "http/jsonw.h"
#include "opts.h"

/* The summary comes from the Prometheus text (/api/v4/prometheus, the
 * same numbers as /metrics) and /api/v4/brokers: one scrape has every
 * counter, so the figures are of one moment. */
struct prom {
    const char *p;
    size_t n;
};

/* Each sample line of metric `name`: its labels (without braces, "" when
 * none) and value. Returns false at the end. *pos walks the text. */
static bool prom_next(const struct prom *t, const char *name, size_t *pos, char *labels,
                      size_t lcap, double *v)
{
    size_t nl = strlen(name);
    while (*pos < t->n) {
        const char *line = t->p + *pos, *eol = memchr(line, '\n', t->n - *pos);
        size_t len = eol ? (size_t)(eol - line) : t->n - *pos;
        *pos += len + 1;
        if (len <= nl || memcmp(line, name, nl) != 0 || (line[nl] != '{' && line[nl] != ' '))
            continue;
        const char *sp = line + len;
        while (sp > line && sp[-1] != ' ')
            sp--;
        labels[0] = '\0';
        if (line[nl] == '{' && sp - line > (long)nl + 2)
            snprintf(labels, lcap, "%.*s", (int)(sp - line - (long)nl - 3), line + nl + 1);
        *v = strtod(sp, NULL);
        return true;
    }
    return false;
}

/* The sum of name's samples whose labels hold `has` (NULL: all). */
static double prom_sum(const struct prom *t, const char *name, const char *has)
{
    size_t pos = 0;
    char labels[512];
    double v, sum = 0;
    while (prom_next(t, name, &pos, labels, sizeof(labels), &v))
        if (!has || strstr(labels, has))
            sum += v;
    return sum;
}

/* The value of label key in "a=\"x\",b=\"y\"" into out. */
static void label_of(const char *labels, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "%s=\"", key);
    const char *p = strstr(labels, pat);
    out[0] = '\0';
    if (p) {
        p += strlen(pat);
        snprintf(out, cap, "%.*s", (int)strcspn(p, "\""), p);
    }
}

/* A string member of a JSON answer, found by key (the broker's own JSON). */
static void json_str(const struct buf *b, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":\"", key);
    const char *p = memmem(buf_head(b), buf_len(b), pat, strlen(pat));
    out[0] = '\0';
    if (p) {
        p += strlen(pat);
        size_t n = strcspn(p, "\"");
        size_t left = buf_len(b) - (size_t)((const uint8_t *)p - buf_head(b));
        snprintf(out, cap, "%.*s", (int)(n < left ? n : left), p);
    }
}

struct figures {
    char version[64], uptime[128];
    double conn_mqtt, conn_nats, online, offline, subs, in, out, dropped, retained, retained_bytes,
        queued, inflight;
};

static void figures(const struct prom *t, const struct buf *brokers, struct figures *f)
{
    json_str(brokers, "version", f->version, sizeof(f->version));
    json_str(brokers, "uptime", f->uptime, sizeof(f->uptime));
    f->conn_mqtt = prom_sum(t, "ward_clients_connected", "protocol=\"mqtt\"");
    f->conn_nats = prom_sum(t, "ward_clients_connected", "protocol=\"nats\"");
    f->online = prom_sum(t, "ward_sessions", "state=\"online\"");
    f->offline = prom_sum(t, "ward_sessions", "state=\"offline\"");
    f->subs = prom_sum(t, "ward_subscriptions", NULL);
    f->in = prom_sum(t, "ward_messages_received_total", NULL);
    f->out = prom_sum(t, "ward_messages_sent_total", NULL);
    f->dropped = prom_sum(t, "ward_messages_dropped_total", NULL);
    f->retained = prom_sum(t, "ward_retained_messages", NULL);
    f->retained_bytes = prom_sum(t, "ward_retained_bytes", NULL);
    f->queued = prom_sum(t, "ward_messages_queued", NULL);
    f->inflight = prom_sum(t, "ward_messages_inflight", NULL);
}

static void print_text(const struct prom *t, const struct figures *f, FILE *out)
{
    fprintf(out, "  version %s, up %s\n", f->version[0] ? f->version : "?",
            f->uptime[0] ? f->uptime : "?");
    fprintf(out, "  connections: %.0f (mqtt %.0f, nats %.0f)\n", f->conn_mqtt + f->conn_nats,
            f->conn_mqtt, f->conn_nats);
    fprintf(out, "  sessions: %.0f online, %.0f offline; subscriptions: %.0f\n", f->online,
            f->offline, f->subs);
    fprintf(out, "  messages: %.0f in, %.0f out, %.0f dropped; %.0f queued, %.0f in flight\n",
            f->in, f->out, f->dropped, f->queued, f->inflight);
    fprintf(out, "  retained: %.0f messages, %.0f bytes\n", f->retained, f->retained_bytes);
    size_t pos = 0;
    char labels[512], name[128], proto[16], tr[16];
    double v;
    while (prom_next(t, "ward_connections", &pos, labels, sizeof(labels), &v)) {
        label_of(labels, "listener", name, sizeof(name));
        label_of(labels, "protocol", proto, sizeof(proto));
        label_of(labels, "transport", tr, sizeof(tr));
        fprintf(out, "  listener %s: %s over %s, %.0f connection%s\n", name, proto, tr, v,
                v == 1 ? "" : "s");
    }
    pos = 0;
    while (prom_next(t, "ward_bridge_up", &pos, labels, sizeof(labels), &v)) {
        label_of(labels, "bridge", name, sizeof(name));
        fprintf(out, "  bridge %s: %s\n", name, v > 0 ? "up" : "down");
    }
}

static void json_listeners(struct jsonw *w, const struct prom *t)
{
    static const char *const lk[] = {"listener", "protocol", "transport"};
    size_t pos = 0;
    char labels[512], v_s[128];
    double v;
    jsonw_key(w, "listeners");
    jsonw_array_begin(w);
    while (prom_next(t, "ward_connections", &pos, labels, sizeof(labels), &v)) {
        jsonw_object_begin(w);
        for (size_t i = 0; i < 3; i++) {
            label_of(labels, lk[i], v_s, sizeof(v_s));
            jsonw_kv_string(w, lk[i], v_s);
        }
        jsonw_kv_u64(w, "connections", (uint64_t)v);
        jsonw_object_end(w);
    }
    jsonw_array_end(w);
}

static void write_json(const struct admin_client *ac, int health, int ready, const struct prom *t,
                       const struct figures *f, FILE *out)
{
    struct buf b;
    struct jsonw w;
    buf_init(&b, 0);
    jsonw_init(&w, &b);
    jsonw_object_begin(&w);
    jsonw_kv_string(&w, "url", ac->url);
    jsonw_kv_bool(&w, "reachable", health >= 0);
    jsonw_kv_bool(&w, "healthy", health == 200);
    jsonw_kv_bool(&w, "ready", ready == 200);
    if (f) {
        jsonw_kv_string(&w, "version", f->version);
        jsonw_kv_string(&w, "uptime", f->uptime);
        const char *keys[] = {"connections_mqtt", "connections_nats", "sessions_online",
                              "sessions_offline", "subscriptions",    "messages_received",
                              "messages_sent",    "messages_dropped", "retained_messages",
                              "retained_bytes",   "messages_queued",  "messages_inflight"};
        double vals[] = {f->conn_mqtt, f->conn_nats, f->online,  f->offline,  f->subs,
                         f->in,        f->out,       f->dropped, f->retained, f->retained_bytes,
                         f->queued,    f->inflight};
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
            jsonw_kv_u64(&w, keys[i], (uint64_t)vals[i]);
        json_listeners(&w, t);
    }
    jsonw_object_end(&w);
    if (jsonw_done(&w))
        fprintf(out, "%.*s\n", (int)buf_len(&b), (const char *)buf_head(&b));
    buf_free(&b);
}

/* GET path; -1 unreachable, else the status. */
static int get(const struct admin_client *ac, const char *path, struct buf *body, char *err,
               size_t errlen)
{
    int status = 0;
    return admin_client_get(ac, path, &status, body, err, errlen) < 0 ? -1 : status;
}

static const char *verdict(int rc, int ready)
{
    if (rc == 3)
        return "refused: a key with the read scope is needed (--key, --key-file, --data)";
    if (rc == 0)
        return "alive, ready";
    return ready == 503 ? "alive, not ready (starting or shutting down)"
                        : "alive, readiness unknown";
}

/* see admin_client.h */
int admin_client_summary(const struct admin_client *ac, bool json, FILE *out)
{
    struct buf metrics, brokers;
    buf_init(&metrics, 0);
    buf_init(&brokers, 0);
    char err[512];
    int health = get(ac, "/healthz", &metrics, err, sizeof(err));
    int ready = health < 0 ? -1 : get(ac, "/readyz", &metrics, err, sizeof(err));
    int rc = health == 401 || health == 403 || ready == 401 || ready == 403 ? 3
             : ready == 200                                                 ? 0
                                                                            : 1;
    int mst = rc == 0 ? get(ac, "/api/v4/prometheus", &metrics, err, sizeof(err)) : 0;
    bool have = mst == 200;
    if (have && get(ac, "/api/v4/brokers", &brokers, err, sizeof(err)) != 200)
        buf_reset(&brokers);
    struct prom t = {(const char *)buf_head(&metrics), buf_len(&metrics)};
    struct figures f = {0};
    if (have)
        figures(&t, &brokers, &f);
    if (json) {
        write_json(ac, health, ready, &t, have ? &f : NULL, out);
    } else if (health < 0) {
        fprintf(out, "ward at %s: unreachable: %s\n", ac->url, err);
    } else {
        fprintf(out, "ward at %s: %s\n", ac->url, verdict(rc, ready));
        if (have)
            print_text(&t, &f, out);
        else if (mst == 401 || mst == 403)
            fprintf(out, "  (figures need a key with the read scope: --key, --key-file or "
                         "--data DIR)\n");
    }
    buf_free(&metrics);
    buf_free(&brokers);
    return rc;
}

struct status_cli {
    struct admin_target t;
    struct admin_client c;
    bool json;
    unsigned timeout_s;
};

#define AT(m) OPT_AT(struct status_cli, m)

static const struct opt table[] = {
    {"url", 0, OPT_STRING, "URL", AT(t.url),
     .help = "the admin server (default: from the key file,\nthen -c FILE's http.bind, then "
             "http://127.0.0.1:8081)"},
    {"key", 'k', OPT_STRING, "KEY", AT(t.key), .help = "an API key (ward apikey add)"},
    {"key-file", 0, OPT_STRING, "F", AT(t.key_file),
     .help = "a file whose first line is the key (and second\nthe URL), as DATA/admin.key"},
    {"data", 0, OPT_STRING, "DIR", AT(t.data_dir),
     .help = "the broker's data directory: DIR/admin.key,\nwritten by the broker at start"},
    {"config", 'c', OPT_STRING, "FILE", AT(t.config),
     .help = "the broker's configuration: its http.bind and\npersistence.dir"},
    {"cafile", 0, OPT_STRING, "F", AT(c.cafile), .help = "https: the CA of the server"},
    {"cert", 0, OPT_STRING, "F", AT(c.certfile), .help = "https: a client certificate"},
    {"certkey", 0, OPT_STRING, "F", AT(c.keyfile), .help = "https: its key"},
    {"insecure", 0, OPT_SET, NULL, AT(c.insecure), .help = "https: skip the host name check"},
    {"timeout", 0, OPT_UINT, "S", AT(timeout_s), .lo = 1, .hi = 600,
     .help = "seconds for each request (default 5)"},
    {"json", 0, OPT_SET, NULL, AT(json), .help = "one JSON object instead of the summary"},
    {"help", 'h', OPT_HELP, .help = "this help"},
};

int cmd_status(int argc, char **argv)
{
    struct status_cli cli = {0};
    struct opts p = {.prog = "ward status",
                     .table = table,
                     .n = sizeof(table) / sizeof(table[0]),
                     .usage = "usage: ward status [--url URL] [--key KEY | --key-file F | --data "
                              "DIR] [-c FILE] [--json]\n",
                     .footer = "Exit status: 0 ready, 1 not ready or unreachable, 3 refused "
                               "(key).\n"};
    int rc = opts_parse(&p, &cli, argc, argv, 1, NULL);
    if (rc)
        return rc == OPTS_HELP ? 0 : rc;
    if (cli.t.key && cli.t.key_file)
        return opts_fail(&p, "%s", "--key or --key-file, not both");
    char url[512], key[512], err[1024];
    if (admin_client_resolve(&cli.t, url, sizeof(url), key, sizeof(key), err, sizeof(err)) < 0) {
        fprintf(stderr, "ward status: %s\n", err);
        return 1;
    }
    cli.c.url = url;
    cli.c.key = key;
    cli.c.timeout_ms = (int)(cli.timeout_s ? cli.timeout_s : 5) * 1000;
    rc = admin_client_summary(&cli.c, cli.json, stdout);
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}
