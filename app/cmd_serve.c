/* `ward serve`: the broker. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/admin.h"
#include "admin/api.h"
#include "admin/page.h"
#include "auth/auth.h"
#include "broker/broker.h"
#include "commands.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/vec.h"
#include "net/net.h"
#include "opts.h"
#include "privs.h"
#include "serve_bridges.h"
#include "serve_log.h"
#include "service.h"
#include "store/store.h"
#include "tls/tls.h"
#include "version.h"

#include <openssl/ssl.h>

#include "auth/nats_users.h"

#define MAX_URLS 16
/* Input a NATS connection may buffer beyond one PUB's payload and control
 * line: the CRLF after the payload and the next line's first bytes. */
#define NATS_INPUT_SLACK 1024u

struct serve_opts {
    const char *config;
    const char *urls[MAX_URLS];
    unsigned nurls;
    unsigned workers;
    const char *log_level;
    struct serve_log_flags log; /* --log-file, --log-format */
    const char *dev_pki;
    const char *data_dir; /* --data DIR: persistence on (process mode) */
    uint32_t max_connections;
    uint32_t max_output;       /* mqtt.max_output_bytes */
    uint32_t slow_consumer_ms; /* mqtt.slow_consumer_timeout */
    struct broker_config bc;
    const char *password_file;
    const char *acl_file;
    int allow_anonymous;         /* -1: not given */
    int listener_anon[MAX_URLS]; /* per -l / listener block: -1 inherit */
    bool listener_password[MAX_URLS];
    int listener_idmatch[MAX_URLS];
    int listener_overload[MAX_URLS];        /* -1: mqtt.overload */
    struct net_listen_opts lopts[MAX_URLS]; /* a listener block's net settings */
    /* TLS settings per listener: from its config block, or the flags. */
    bool has_tls[MAX_URLS];
    struct tls_server_config tls[MAX_URLS];
    struct tls_server_config tls_flags; /* --certfile ... for tls:// and mtls:// */
    int client_cert;                    /* --client-cert: an enum tls_verify, -1 not given */
    /* NATS listeners: from a listeners.nats block, or -l nats[+tls|+mtls]:// */
    bool is_nats[MAX_URLS];
    struct broker_nats_opts nats[MAX_URLS];
    const struct cfg_listener *nats_cfg[MAX_URLS]; /* its block: users, token ... */
    uint32_t max_payload;                          /* --max-payload, 0: not given */
    const char *http_bind;                         /* --http HOST:PORT: the admin server */
    const char *user;                              /* --user: system.user */
    uint32_t shutdown_timeout_ms;                  /* system.shutdown_timeout */
};

static int add_url(struct opts *p, void *ctx, const char *const *a)
{
    struct serve_opts *o = ctx;
    if (o->nurls == MAX_URLS)
        return opts_fail(p, "at most %d listeners", MAX_URLS);
    o->urls[o->nurls++] = a[0];
    return 0;
}

static int log_level(struct opts *p, void *ctx, const char *const *a)
{
    if (log_level_parse(a[0]) < 0)
        return opts_fail(p, "unknown level '%s' (error, warn, notice, info or debug)", a[0]);
    ((struct serve_opts *)ctx)->log_level = a[0];
    return 0;
}

static int log_format(struct opts *p, void *ctx, const char *const *a)
{
    if (strcmp(a[0], "text") != 0 && strcmp(a[0], "json") != 0)
        return opts_fail(p, "unknown log format '%s' (text or json)", a[0]);
    ((struct serve_opts *)ctx)->log.format = a[0];
    return 0;
}

/* 0 in tls_server_config means the default, so the depth is stored + 1. */
static int verify_depth(struct opts *p, void *ctx, const char *const *a)
{
    uint64_t v;
    if (opts_uint(a[0], 0, 100, &v) < 0)
        return opts_fail(p, "'%s' is not a number from 0 to 100", a[0]);
    ((struct serve_opts *)ctx)->tls_flags.verify_depth = (uint32_t)v + 1;
    return 0;
}

/* HOST,CERTFILE,KEYFILE; argv stays as it is (it is parsed twice). */
static int sni(struct opts *p, void *ctx, const char *const *a)
{
    static char parts[TLS_MAX_SNI][3][1024];
    struct tls_server_config *t = &((struct serve_opts *)ctx)->tls_flags;
    unsigned k = t->nsni;
    const char *arg = a[0], *cert = strchr(arg, ','), *key = cert ? strchr(cert + 1, ',') : NULL;
    if (!cert || !key || k == TLS_MAX_SNI)
        return opts_fail(p, "HOST,CERTFILE,KEYFILE (at most %d)", TLS_MAX_SNI);
    snprintf(parts[k][0], sizeof(parts[k][0]), "%.*s", (int)(cert - arg), arg);
    snprintf(parts[k][1], sizeof(parts[k][1]), "%.*s", (int)(key - cert - 1), cert + 1);
    snprintf(parts[k][2], sizeof(parts[k][2]), "%s", key + 1);
    t->sni[t->nsni++] = (struct tls_sni){parts[k][0], parts[k][1], parts[k][2]};
    return 0;
}

/* --max-payload SIZE: 1MB, 8MB, 65536 ... up to nats-server's 64MB. */
static int max_payload(struct opts *p, void *ctx, const char *const *a)
{
    uint64_t v;
    if (config_parse_size(a[0], &v) < 0 || v == 0 || v > (64u << 20))
        return opts_fail(p, "'%s' is not a size from 1 byte to 64MB (1MB, 8MB, 65536 ...)", a[0]);
    ((struct serve_opts *)ctx)->max_payload = (uint32_t)v;
    return 0;
}

/* --peer-cert-as-username and --peer-cert-as-clientid. */
static int peer_cert_as(struct opts *p, void *ctx, const char *const *a)
{
    struct tls_server_config *t = &((struct serve_opts *)ctx)->tls_flags;
    int f = tls_id_field_parse(a[0]);
    if (f < 0)
        return opts_fail(p, "'%s': cn, dn, san_dns, san_email, san_uri or none", a[0]);
    if (strcmp(p->cur->name, "peer-cert-as-username") == 0)
        t->as_username = (enum tls_id_field)f;
    else
        t->as_clientid = (enum tls_id_field)f;
    return 0;
}

static const struct opt_choice client_cert_modes[] = {
    {"none", TLS_VERIFY_NONE},
    {"optional", TLS_VERIFY_OPTIONAL},
    {"required", TLS_VERIFY_REQUIRED},
    {NULL, 0},
};
static const struct opt_choice booleans[] = {{"true", 1}, {"false", 0}, {NULL, 0}};

#define AT(m)       OPT_AT(struct serve_opts, m)
#define TLS(m)      OPT_AT(struct serve_opts, tls_flags.m)
#define FN(f)       .call = f, .nargs = 1
#define RANGE(a, b) .lo = a, .hi = b

static const struct opt table[] = {
    {"config", 'c', OPT_STRING, "FILE", AT(config),
     .help = "configuration file (HOCON, NanoMQ's key names)"},
    {"listen", 'l', OPT_CALL, "URL", FN(add_url),
     .help = "tcp://HOST:PORT (repeatable; default tcp://0.0.0.0:1883);\n"
             "tls:// mtls:// with --certfile ...; NATS clients:\n"
             "nats:// nats+tls:// nats+mtls:// (TLS ones with the\n"
             "same --certfile ... flags); WebSocket:\n"
             "ws://HOST:PORT/PATH wss://HOST:PORT/PATH (path\n"
             "/mqtt by default), nats+ws:// nats+wss://"},
    {"workers", 0, OPT_UINT, "N", AT(workers), RANGE(1, 256),
     .help = "worker threads (default: one per CPU)"},
    {"log-level", 0, OPT_CALL, "LEVEL", FN(log_level),
     .help = "error, warn, notice, info or debug"},
    {"log-file", 0, OPT_STRING, "PATH", AT(log.file),
     .help = "also log to PATH (rotated as log.rotation says)"},
    {"log-format", 0, OPT_CALL, "FORMAT", FN(log_format),
     .help = "text (default) or json: one JSON object per line"},
    {"max-packet-size", 0, OPT_UINT, "N", AT(bc.max_packet_size), RANGE(64, 268435460u),
     .help = "largest packet in bytes (default 1048576)"},
    {"max-connections", 0, OPT_UINT, "N", AT(max_connections), RANGE(1, 10000000u),
     .help = "most simultaneous connections (default 100000)"},
    {"max-inflight", 0, OPT_UINT, "N", AT(bc.max_inflight), RANGE(1, 65535),
     .help = "unacknowledged QoS 1/2 messages towards each subscriber (1024)"},
    {"receive-maximum", 0, OPT_UINT, "N", AT(bc.receive_max), RANGE(1, 65535),
     .help = "unacknowledged QoS 1/2 messages a publisher may send (1024)"},
    {"max-queued", 0, OPT_UINT, "N", AT(bc.max_queued), RANGE(1, 100000000u),
     .help = "QoS 1/2 messages queued per session (1000)"},
    {"max-keepalive", 0, OPT_UINT, "S", AT(bc.max_keepalive), RANGE(1, 65535),
     .help = "highest keep alive granted (65535)"},
    {"topic-alias-max", 0, OPT_UINT, "N", AT(bc.topic_alias_max), RANGE(0, 65535),
     .help = "topic aliases a client may use (10)"},
    {"sys-interval", 0, OPT_UINT, "S", AT(bc.sys_interval_s), RANGE(0, 86400),
     .help = "$SYS publication interval, 0 disables (10)"},
    {"password-file", 0, OPT_STRING, "FILE", AT(password_file),
     .help = "users and password hashes ('ward passwd')"},
    {"acl-file", 0, OPT_STRING, "FILE", AT(acl_file), .help = "access rules (NanoMQ's ACL format)"},
    {"allow-anonymous", 0, OPT_CHOICE, "B", AT(allow_anonymous), .choices = booleans,
     .help = "true or false: clients without credentials"},
    {"dev-pki", 0, OPT_STRING, "DIR", AT(dev_pki),
     .help = "development PKI made by 'ward cert dev': adds\ntls://0.0.0.0:8883, "
             "mtls://0.0.0.0:8884,\nnats://0.0.0.0:4222 and nats+mtls://0.0.0.0:4223"},
    {"max-payload", 0, OPT_CALL, "SIZE", FN(max_payload),
     .help = "NATS listeners: largest message payload\n(default 1MB, at most 64MB)"},
    {"http", 0, OPT_STRING, "HOST:PORT", AT(http_bind),
     .help =
         "the admin HTTP server (health, metrics, API) on\nHOST:PORT (http.bind; off by default)"},
    {"data", 0, OPT_STRING, "DIR", AT(data_dir),
     .help = "keep durable state (sessions, queued and retained\nmessages) in DIR/ward.db; "
             "persistence.dir otherwise"},
    {"user", 0, OPT_STRING, "USER", AT(user),
     .help = "started as root: open the listeners, check USER can\nread the key and "
             "configuration files and write the\ndata directory, then run as USER "
             "(system.user)"},
    {"help", 'h', OPT_HELP, .help = "this help"},
    {.kind = OPT_SECTION, .help = "TLS (for -l tls://HOST:PORT and mtls://HOST:PORT):"},
    {"certfile", 0, OPT_STRING, "F", TLS(certfile), .help = "the server's certificate (and chain)"},
    {"keyfile", 0, OPT_STRING, "F", TLS(keyfile), .help = "its private key"},
    {"key-password", 0, OPT_STRING, "P", TLS(key_password), .help = "the key's password"},
    {"cafile", 0, OPT_STRING, "F", TLS(cafile), .help = "CAs trusted for client certificates"},
    {"crlfile", 0, OPT_STRING, "F", TLS(crlfile),
     .help = "revoked client certificates (PEM, may hold several)"},
    {"client-cert", 0, OPT_CHOICE, "MODE", AT(client_cert), .choices = client_cert_modes,
     .help = "none, optional or required (tls:// none,\nmtls:// required)"},
    {"tls-version", 0, OPT_STRING, "V", TLS(min_version), .help = "minimum: 1.2 (default) or 1.3"},
    {"ciphers", 0, OPT_STRING, "L", TLS(ciphers), .help = "TLS 1.2 cipher list"},
    {"ciphersuites", 0, OPT_STRING, "L", TLS(ciphersuites), .help = "TLS 1.3 suites"},
    {"groups", 0, OPT_STRING, "L", TLS(groups), .help = "key exchange groups (X25519:P-256 ...)"},
    {"verify-depth", 0, OPT_CALL, "N", FN(verify_depth),
     .help = "most intermediate CAs above a client certificate"},
    {"sni", 0, OPT_CALL, "HOST,CERT,KEY", FN(sni),
     .help =
         "another certificate for clients asking for HOST\n(*.example.com allowed; repeatable)"},
    {"peer-cert-as-username", 0, OPT_CALL, "F", FN(peer_cert_as),
     .help =
         "the user name from the client certificate:\ncn, dn, san_dns, san_email, san_uri or none"},
    {"peer-cert-as-clientid", 0, OPT_CALL, "F", FN(peer_cert_as),
     .help = "the client id from it, the same way"},
};

static int parse(int argc, char **argv, struct serve_opts *o)
{
    struct opts p = {.prog = "ward serve",
                     .table = table,
                     .n = sizeof(table) / sizeof(table[0]),
                     .usage = "usage: ward serve [-c FILE] [-l URL ...] [--workers N] [options]\n",
                     .footer = "SIGHUP re-reads the configuration file, the password file and "
                               "the ACL.\nSIGTERM and SIGINT stop accepting, disconnect the "
                               "clients, let the store\ncommit, and exit 0 "
                               "(system.shutdown_timeout bounds the wait).\n"
                               "SIGUSR1 reopens the log file (logrotate).\n"};
    return opts_parse(&p, o, argc, argv, 1, NULL);
}

/* NanoMQ's listener keys: verify_peer false is server-only TLS; true with
 * fail_if_no_peer_cert is mTLS; true without it is the optional mode. */
static int ssl_config(const struct serve_opts *o, const struct cfg_listener *l,
                      struct tls_server_config *t)
{
    memset(t, 0, sizeof(*t));
    t->certfile = l->certfile;
    t->keyfile = l->keyfile;
    t->key_password = l->key_password;
    t->cafile = l->cacertfile;
    t->capath = l->capath;
    t->crlfile = l->crlfile;
    t->verify = !l->verify_peer           ? TLS_VERIFY_NONE
                : l->fail_if_no_peer_cert ? TLS_VERIFY_REQUIRED
                                          : TLS_VERIFY_OPTIONAL;
    t->min_version = l->tls_version;
    t->ciphers = l->ciphers;
    t->ciphersuites = l->ciphersuites;
    for (size_t i = 0; i < l->nsni && i < TLS_MAX_SNI; i++)
        t->sni[t->nsni++] = (struct tls_sni){l->sni[i].host, l->sni[i].certfile, l->sni[i].keyfile};
    t->groups = l->tls_groups;
    t->verify_depth = l->verify_depth + 1; /* 0 in tls_server_config: default */
    t->handshake_timeout_ms = l->handshake_timeout_ms;
    t->expiry_warn_days = l->expiry_warn_days;
    t->crl_strict = l->crl_strict;
    t->max_handshakes = l->max_handshakes;
    t->trim_after = l->heap_trim_after ? l->heap_trim_after : UINT32_MAX;
    int u = l->peer_cert_as_username ? tls_id_field_parse(l->peer_cert_as_username) : 0;
    int c = l->peer_cert_as_clientid ? tls_id_field_parse(l->peer_cert_as_clientid) : 0;
    if (u < 0 || c < 0) {
        fprintf(stderr,
                "ward serve: %s: listener '%s': peer_cert_as_username/clientid: cn, dn, "
                "san_dns, san_email, san_uri or none\n",
                o->config, l->name);
        return -1;
    }
    t->as_username = (enum tls_id_field)u;
    t->as_clientid = (enum tls_id_field)c;
    return 0;
}

/* nats-server's cipher_suites (IANA names) as OpenSSL's lists: TLS 1.3
 * suites keep their names, TLS 1.2 ones are translated. 0, or -1 with the
 * name OpenSSL does not know in err. */
static int nats_ciphers(const char *list, char *c12, char *c13, size_t cap, char *err,
                        size_t errlen)
{
    char copy[1024], *save = NULL;
    snprintf(copy, sizeof(copy), "%s", list);
    c12[0] = c13[0] = '\0';
    for (char *it = strtok_r(copy, ",", &save); it; it = strtok_r(NULL, ",", &save)) {
        bool v13 = strncmp(it, "TLS_AES_", 8) == 0 || strncmp(it, "TLS_CHACHA20_", 13) == 0;
        const char *name = v13 ? it : OPENSSL_cipher_name(it);
        if (!name || strcmp(name, "(NONE)") == 0) {
            snprintf(err, errlen, "tls.cipher_suites: '%s' is not a cipher suite OpenSSL knows",
                     it);
            return -1;
        }
        char *dst = v13 ? c13 : c12;
        size_t len = strlen(dst);
        snprintf(dst + len, cap - len, "%s%s", len ? ":" : "", name);
    }
    return 0;
}

/* A listeners.nats block: its URL, TLS from its tls { } block (through
 * ssl_config, as listeners.ssl), and the NATS options. */
static int nats_config(struct serve_opts *o, const struct cfg_listener *l, unsigned i, char *url)
{
    static char ciphers[MAX_URLS][2][1024];
    bool ws = l->kind == CFG_LISTENER_NATS_WS;
    bool tls = l->certfile != NULL && !(ws && l->ws_no_tls);
    /* nats+wss: a required client certificate comes from ssl_config's verify. */
    snprintf(url, 300, "%s://%s",
             ws                        ? (tls ? "nats+wss" : "nats+ws")
             : !tls                    ? "nats"
             : l->fail_if_no_peer_cert ? "nats+mtls"
                                       : "nats+tls",
             l->bind);
    if (tls && ssl_config(o, l, &o->tls[i]) < 0)
        return -1;
    char err[512];
    if (tls && l->nats_cipher_suites &&
        nats_ciphers(l->nats_cipher_suites, ciphers[i][0], ciphers[i][1], sizeof(ciphers[i][0]),
                     err, sizeof(err)) < 0) {
        fprintf(stderr, "ward serve: %s: listener '%s': %s\n", o->config, l->name, err);
        return -1;
    }
    o->tls[i].ciphers = ciphers[i][0][0] ? ciphers[i][0] : NULL;
    o->tls[i].ciphersuites = ciphers[i][1][0] ? ciphers[i][1] : NULL;
    o->has_tls[i] = tls;
    o->is_nats[i] = true;
    o->nats_cfg[i] = l;
    struct broker_nats_opts *n = &o->nats[i];
    broker_nats_opts_defaults(n);
    n->max_payload = l->nats_max_payload;
    n->max_control_line = l->nats_max_control_line;
    n->ping_interval_ms = l->nats_ping_interval_ms;
    n->ping_max = l->nats_ping_max;
    n->max_subscriptions = l->nats_max_subscriptions;
    n->auth_timeout_ms = l->nats_auth_timeout_ms ? l->nats_auth_timeout_ms
                         : tls                   ? 5000
                                                 : n->auth_timeout_ms;
    n->tls_verify = tls && l->fail_if_no_peer_cert;
    n->verify_and_map = l->nats_verify_and_map;
    n->handshake_first = l->nats_handshake_first;
    n->no_auth_user = l->nats_no_auth_user;
    return 0;
}

static int listeners_from_config(struct serve_opts *o, const struct ward_config *cfg,
                                 char urls[][300]);

/* Applies a configuration file; flags given on the command line win, so
 * the file is applied to a copy of the defaults first. On failure nothing
 * of the file is left to free. */
static int apply_config(struct serve_opts *o, struct ward_config *cfg, char urls[][300])
{
    struct cfg_errors errs;
    if (config_load(o->config, cfg, &errs) != 0) {
        for (size_t i = 0; i < errs.count; i++)
            fprintf(stderr, "%s\n", errs.msgs[i]);
        fprintf(stderr, "ward serve: %s: %zu error%s; not starting\n", o->config, errs.count,
                errs.count == 1 ? "" : "s");
        cfg_errors_free(&errs);
        return 1;
    }
    cfg_errors_free(&errs);
    if (listeners_from_config(o, cfg, urls) != 0) {
        config_free(cfg);
        return 1;
    }
    return 0;
}

/* The file's listeners as URLs and settings; 1 if one cannot be used. */
static int listeners_from_config(struct serve_opts *o, const struct ward_config *cfg,
                                 char urls[][300])
{
    for (size_t i = 0; i < cfg->nlisteners && o->nurls < MAX_URLS; i++) {
        const struct cfg_listener *l = &cfg->listeners[i];
        if (!l->enable)
            continue;
        static const char *const scheme[] = {
            [CFG_LISTENER_TCP] = "tcp",   [CFG_LISTENER_SSL] = "tls",
            [CFG_LISTENER_WS] = "ws",     [CFG_LISTENER_WSS] = "wss",
            [CFG_LISTENER_NATS] = "nats", [CFG_LISTENER_NATS_WS] = "nats+ws"};
        /* NanoMQ writes a WebSocket's path in bind: "0.0.0.0:8083/mqtt". */
        snprintf(urls[o->nurls], 300, "%s://%s", scheme[l->kind], l->bind);
        bool tls = l->kind == CFG_LISTENER_SSL || l->kind == CFG_LISTENER_WSS;
        if (tls && ssl_config(o, l, &o->tls[o->nurls]) < 0)
            return 1;
        o->has_tls[o->nurls] = tls;
        bool nats = l->kind == CFG_LISTENER_NATS || l->kind == CFG_LISTENER_NATS_WS;
        if (nats && nats_config(o, l, o->nurls, urls[o->nurls]) < 0)
            return 1;
        o->listener_anon[o->nurls] = l->allow_anonymous;
        o->listener_password[o->nurls] = l->require_password;
        o->listener_idmatch[o->nurls] = broker_id_match_parse(l->clientid_must_match);
        o->listener_overload[o->nurls] = l->overload ? broker_overload_parse(l->overload) : -1;
        o->lopts[o->nurls] = (struct net_listen_opts){
            .max_connections = l->max_connections,
            .proxy_protocol = l->proxy_protocol,
            .trusted_proxies = l->trusted_proxies,
            .handshake_timeout_ms = l->handshake_timeout_ms,
            .max_handshakes = l->max_handshakes,
            .handshake_idle_timeout_ms = l->handshake_idle_timeout_ms,
            .handshake_queue = l->handshake_queue,
            .handshake_queue_timeout_ms = l->handshake_queue_timeout_ms,
            .max_output_bytes = l->max_output_bytes,
            .slow_consumer_timeout_ms = l->slow_consumer_timeout_ms,
            .ws_origins = l->ws_allowed_origins,
            .ws_same_origin = l->ws_same_origin,
            .ws_max_message = l->ws_max_frame_size,
            .ws_max_header = l->ws_max_header_size,
        };
        o->urls[o->nurls] = urls[o->nurls];
        o->nurls++;
    }
    return 0;
}

static void config_to_broker(const struct ward_config *cfg, struct broker_config *bc)
{
    bc->max_packet_size = cfg->max_packet_size;
    bc->max_inflight = (uint16_t)cfg->max_inflight_window;
    bc->receive_max = (uint16_t)cfg->receive_maximum;
    bc->overload = (enum broker_overload)broker_overload_parse(cfg->overload);
    bc->max_queued = cfg->max_mqueue_len;
    bc->queue_full_policy =
        cfg->queue_full_policy && strcmp(cfg->queue_full_policy, "drop_oldest") == 0;
    bc->max_topic_levels = cfg->max_topic_levels;
    bc->max_keepalive = (uint16_t)cfg->max_keepalive;
    bc->topic_alias_max = (uint16_t)cfg->topic_alias_max;
    bc->max_qos = (uint8_t)cfg->max_qos;
    bc->retain_available = cfg->retain_available;
    bc->keepalive_multiplier = cfg->keepalive_multiplier;
    bc->sys_interval_s = cfg->sys_interval_s;
    bc->max_filters_per_subscribe = cfg->max_filters_per_subscribe;
    bc->max_subscriptions = cfg->max_subscriptions;
    bc->max_session_expiry_s = cfg->max_session_expiry;
    bc->max_sessions = cfg->max_sessions;
    bc->packet_timeout_ms = cfg->packet_timeout_ms;
    if (cfg->memory_limit) /* 0 keeps broker_config_defaults' automatic value */
        bc->memory_limit = cfg->memory_limit;
    bc->max_retained_messages = cfg->max_retained_messages;
    bc->max_retained_bytes = cfg->max_retained_bytes;
}

/* Blocks the signals in every thread; the main thread takes them with
 * sigwait, so no handler runs in an arbitrary thread. */
static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGUSR1); /* reopen the log file (logrotate) */
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* The auth settings: the file's auth block, then the flags over it. */
static void auth_settings(const struct serve_opts *flags, const struct ward_config *cfg,
                          struct auth_settings *s)
{
    *s = (struct auth_settings){.allow_anonymous = true, .no_match_allow = true};
    if (cfg) {
        s->allow_anonymous = cfg->allow_anonymous;
        s->no_match_allow = !cfg->no_match || strcmp(cfg->no_match, "deny") != 0;
        s->deny_disconnect = cfg->deny_action && strcmp(cfg->deny_action, "disconnect") == 0;
        s->password_file = cfg->password_file;
        s->acl_file = cfg->acl_file;
        s->hash_threads = cfg->hash_threads;
        s->max_pending = cfg->max_pending;
    }
    if (flags->password_file)
        s->password_file = flags->password_file;
    if (flags->acl_file)
        s->acl_file = flags->acl_file;
    if (flags->allow_anonymous >= 0)
        s->allow_anonymous = flags->allow_anonymous;
}

static void log_lines(const char *what, const char *text)
{
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        int n = nl ? (int)(nl - p) : (int)strlen(p);
        log_error("%s: %.*s", what, n, p);
        p += n + (nl != NULL);
    }
}

/* Limits given as flags beat the file, on reload as at start. */
static void override_limits(const struct serve_opts *flags, struct broker_config *bc)
{
    struct broker_config d;
    broker_config_defaults(&d);
    if (flags->bc.max_packet_size != d.max_packet_size)
        bc->max_packet_size = flags->bc.max_packet_size;
    if (flags->bc.max_queued != d.max_queued)
        bc->max_queued = flags->bc.max_queued;
    if (flags->bc.max_keepalive != d.max_keepalive)
        bc->max_keepalive = flags->bc.max_keepalive;
    if (flags->bc.max_inflight != d.max_inflight)
        bc->max_inflight = flags->bc.max_inflight;
    if (flags->bc.topic_alias_max != d.topic_alias_max)
        bc->topic_alias_max = flags->bc.topic_alias_max;
    if (flags->bc.sys_interval_s != d.sys_interval_s)
        bc->sys_interval_s = flags->bc.sys_interval_s;
}

/* SIGHUP: the configuration file (if any), the password file and the ACL
 * are read again. Only a wholly valid set replaces what runs; otherwise the
 * errors are logged and nothing changes. Listeners and worker counts need a
 * restart; log level and access control change at once. */
static void reload(const struct serve_opts *flags, struct auth *a, struct broker *b)
{
    struct ward_config cfg = {0};
    struct cfg_errors errs = {0};
    bool have_cfg = flags->config != NULL;
    if (have_cfg && config_load(flags->config, &cfg, &errs) != 0) {
        for (size_t i = 0; i < errs.count; i++)
            log_error("reload: %s", errs.msgs[i]);
        log_error("reload: %s has %zu error%s; the running configuration stays", flags->config,
                  errs.count, errs.count == 1 ? "" : "s");
        cfg_errors_free(&errs);
        return;
    }
    cfg_errors_free(&errs);
    struct auth_settings s;
    char err[4096];
    auth_settings(flags, have_cfg ? &cfg : NULL, &s);
    if (auth_configure(a, &s, err, sizeof(err)) < 0) {
        log_lines("reload", err);
        log_error("reload: authentication files rejected; the running rules stay");
    } else {
        broker_auth_reloaded(b);
        if (have_cfg && !flags->log_level)
            log_set_level((enum log_level)log_level_parse(cfg.log_level));
        if (have_cfg) {
            struct broker_config bc = flags->bc;
            config_to_broker(&cfg, &bc);
            override_limits(flags, &bc);
            broker_reconfigure(b, &bc);
        }
        log_notice("reload: configuration%s, password file and ACL reloaded",
                   have_cfg ? " file" : "");
    }
    if (have_cfg)
        config_free(&cfg);
}

/* The scheme of a listen URL decides TLS: tls:// ssl:// mqtts:// are
 * server-only unless --client-cert says otherwise; mtls:// requires a
 * client certificate. */
static bool url_tls(const char *url, bool *mutual)
{
    static const char *const tls[] = {"tls://",      "ssl://", "mqtts://",   "tls+mqtt-tcp://",
                                      "nats+tls://", "wss://", "nats+wss://"};
    *mutual = strncmp(url, "mtls://", 7) == 0 || strncmp(url, "nats+mtls://", 12) == 0;
    for (size_t i = 0; i < sizeof(tls) / sizeof(tls[0]); i++)
        if (strncmp(url, tls[i], strlen(tls[i])) == 0)
            return true;
    return *mutual;
}

static enum tls_verify verify_mode(int client_cert, bool mutual)
{
    if (client_cert < 0)
        return mutual ? TLS_VERIFY_REQUIRED : TLS_VERIFY_NONE;
    return (enum tls_verify)client_cert;
}

/* Opens every listener; TLS ones get their tls_server (kept in tls[]). */
/* At start-up and daily: a warning for everything in use that expires
 * within expiry_warn_days (an error for what already has). */
static void warn_expiry(const struct serve_opts *o, struct tls_server **tls)
{
    for (unsigned i = 0; i < o->nurls; i++) {
        struct tls_expiry ex[32];
        int n = tls[i] ? tls_server_expiries(tls[i], ex, 32) : 0;
        long warn = tls[i] ? (long)tls_server_config(tls[i])->expiry_warn_days : 0;
        for (int k = 0; k < n; k++) {
            /* CRLs are short-lived by design: only a week's notice. */
            bool crl = strncmp(ex[k].what, "CRL", 3) == 0;
            if (ex[k].days < 0)
                log_error("%s: %s has expired (%ld days ago)", o->urls[i], ex[k].what, -ex[k].days);
            else if (ex[k].days < (crl && warn > 7 ? 7 : warn))
                log_warn("%s: %s expires in %ld days", o->urls[i], ex[k].what, ex[k].days);
        }
    }
}

/* -l nats://, nats+tls://, nats+mtls://, nats+ws://, nats+wss:// */
static bool url_nats(const char *url)
{
    return strncmp(url, "nats://", 7) == 0 || strncmp(url, "nats+", 5) == 0;
}

/* A NATS listener's net settings (its INFO greeting, the input a PUB of
 * max_payload needs) and its options from -l (a listeners.nats block set
 * them in nats_config). */
static void nats_listener(struct serve_opts *o, unsigned i, bool is_tls)
{
    struct broker_nats_opts *n = &o->nats[i];
    if (!o->is_nats[i]) {
        broker_nats_opts_defaults(n);
        if (is_tls)
            n->auth_timeout_ms = 5000;
        n->tls_verify = is_tls && o->tls[i].verify == TLS_VERIFY_REQUIRED;
        o->is_nats[i] = true;
    }
    if (o->max_payload)
        n->max_payload = o->max_payload;
    struct net_listen_opts *lo = &o->lopts[i];
    lo->greeting = broker_nats_greeting;
    lo->tls_handshake_first = n->handshake_first;
    lo->max_input = (size_t)n->max_payload + n->max_control_line + NATS_INPUT_SLACK;
}

static int listen_all(struct serve_opts *o, struct net_server *s, struct tls_server **tls,
                      struct broker *b)
{
    char err[1024];
    for (unsigned i = 0; i < o->nurls; i++) {
        bool mutual = false, is_tls = url_tls(o->urls[i], &mutual) || o->has_tls[i];
        if (is_tls && !o->has_tls[i]) {
            o->tls[i] = o->tls_flags;
            o->tls[i].verify = verify_mode(o->client_cert, mutual);
        }
        if (is_tls && !(tls[i] = tls_server_new(&o->tls[i], err, sizeof(err)))) {
            fprintf(stderr, "ward serve: %s: %s\n", o->urls[i], err);
            return -1;
        }
        if (o->is_nats[i] || url_nats(o->urls[i]))
            nats_listener(o, i, is_tls);
        if (net_server_listen_opts(s, o->urls[i], is_tls ? tls[i] : NULL, &o->lopts[i], err,
                                   sizeof(err)) < 0) {
            fprintf(stderr, "ward serve: %s\n", err);
            return -1;
        }
        if (o->is_nats[i] && broker_set_listener_nats(b, i, &o->nats[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "ward serve: %s: %s\n", o->urls[i], err);
            return -1;
        }
        if (is_tls) {
            /* $SYS names the listener by its port: tls/8883/... */
            char port[8];
            snprintf(port, sizeof(port), "%u", net_server_port(s, i));
            broker_add_tls(b, port, tls[i]);
        }
    }
    broker_add_sys_source(b, net_server_sys, s);
    return 0;
}

/* New TLS material for every listener; a failure keeps the old. After a
 * CRL change, clients whose certificate is now revoked are disconnected. */
static void reload_tls(struct serve_opts *o, struct tls_server **tls, struct broker *b,
                       bool only_changed)
{
    bool any = false;
    for (unsigned i = 0; i < o->nurls; i++) {
        char err[1024];
        if (!tls[i] || (only_changed && !tls_server_files_changed(tls[i])))
            continue;
        if (tls_server_reload(tls[i], err, sizeof(err)) < 0) {
            log_error("reload: %s: %s; the running TLS material stays", o->urls[i], err);
            continue;
        }
        log_notice("reload: %s: TLS material reloaded", o->urls[i]);
        any = true;
    }
    unsigned kicked = any ? broker_kick_revoked(b) : 0;
    if (kicked)
        log_notice("reload: %u client%s disconnected: certificate revoked", kicked,
                   kicked == 1 ? "" : "s");
}

/* What a running broker is made of. */
struct running {
    struct broker *b;
    struct net_server *s;
    struct auth *a;
    struct tls_server *tls[MAX_URLS];
    struct serve_bridges *bridges;
    struct auth_nats *nats_auth[MAX_URLS]; /* a NATS listener's authorization { } */
    struct store *st;
    struct admin *admin;     /* NULL: no admin HTTP server */
    struct admin_page *page; /* GET / and /api/status (src/admin/page.h) */
    struct tls_server *admin_tls;
    struct admin_sources admin_src; /* what its endpoints read */
    struct admin_listener admin_ls[MAX_URLS];
    char admin_names[MAX_URLS][16];
};

static bool nats_has_authorization(const struct cfg_listener *l)
{
    return l && (l->nats_nusers || l->nats_user || l->nats_token);
}

static struct auth_nats_perms nats_perms(const struct cfg_nats_perms *c)
{
    return (struct auth_nats_perms){
        .pub_allow = (const char *const *)c->pub_allow,
        .pub_deny = (const char *const *)c->pub_deny,
        .sub_allow = (const char *const *)c->sub_allow,
        .sub_deny = (const char *const *)c->sub_deny,
        .npub_allow = c->npub_allow,
        .npub_deny = c->npub_deny,
        .nsub_allow = c->nsub_allow,
        .nsub_deny = c->nsub_deny,
        .allow_responses = c->allow_responses,
        .responses_max = c->responses_max ? c->responses_max : AUTH_NATS_RESPONSES_MAX_DEFAULT,
        .responses_expires_ms = c->responses_expires_ms,
    };
}

static int nats_add_entry(struct auth_nats *a, const struct cfg_nats_user *u, char *err,
                          size_t errlen)
{
    struct auth_nats_perms p = nats_perms(&u->perms);
    if (u->nkey)
        return auth_nats_add_nkey(a, u->nkey, u->has_perms ? &p : NULL, err, errlen);
    /* A user without a password (verify_and_map, no_auth_user) logs in
     * only through its certificate or as no_auth_user. */
    struct auth_nats_user au = {u->user, u->password, u->has_perms ? &p : NULL};
    return auth_nats_add_user(a, &au, err, errlen);
}

/* A listeners.nats block's authorization { } as the auth layer's
 * struct auth_nats (NULL without one). 0, or -1 with the cause in err. */
static int nats_auth_build(const struct cfg_listener *l, struct auth_nats **out, char *err,
                           size_t errlen)
{
    *out = NULL;
    if (!nats_has_authorization(l))
        return 0;
    struct auth_nats *a = auth_nats_new();
    if (!a)
        return snprintf(err, errlen, "out of memory"), -1;
    for (size_t i = 0; i < l->nats_nusers; i++)
        if (nats_add_entry(a, &l->nats_users[i], err, errlen) < 0)
            goto fail;
    struct cfg_nats_user single = {.user = l->nats_user, .password = l->nats_password};
    if (l->nats_user && nats_add_entry(a, &single, err, errlen) < 0)
        goto fail;
    if (l->nats_token && auth_nats_set_token(a, l->nats_token, err, errlen) < 0)
        goto fail;
    *out = a;
    return 0;
fail:
    auth_nats_free(a);
    return -1;
}

/* Every NATS listener's users, token and permissions, for the broker. */
static int nats_auth_all(struct serve_opts *o, struct running *r)
{
    char err[1024];
    for (unsigned i = 0; i < o->nurls; i++) {
        if (!o->is_nats[i] ||
            nats_auth_build(o->nats_cfg[i], &r->nats_auth[i], err, sizeof(err)) == 0) {
            o->nats[i].users = r->nats_auth[i];
            continue;
        }
        fprintf(stderr, "ward serve: %s: listener '%s': %s\n", o->config, o->nats_cfg[i]->name,
                err);
        return -1;
    }
    return 0;
}

/* persistence { }, NanoMQ's sqlite { } or --data DIR: the store, opened and
 * loaded before any listener accepts. Off without a directory. */
static int open_store(const struct serve_opts *o, const struct serve_opts *flags,
                      const struct ward_config *cfg, struct running *r)
{
    const char *dir = flags->data_dir, *mode = "process", *damage = "move_aside";
    uint64_t max_size = 0;
    if (o->config) {
        if (!dir)
            dir = cfg->persistence_dir ? cfg->persistence_dir
                                       : (cfg->sqlite_enable ? cfg->sqlite_path : NULL);
        mode = cfg->persistence_mode;
        damage = cfg->persistence_on_damage;
        max_size = cfg->persistence_max_size;
    }
    if (!dir || strcmp(mode, "off") == 0)
        return 0;
    struct store_config sc = {.mode = strcmp(mode, "fsync") == 0 ? STORE_FSYNC : STORE_PROCESS,
                              .dir = dir,
                              .max_size = max_size,
                              .on_damage = strcmp(damage, "refuse") == 0 ? STORE_DAMAGE_REFUSE
                                                                         : STORE_DAMAGE_MOVE_ASIDE};
    char err[1024];
    if (!(r->st = store_open(&sc, err, sizeof(err)))) {
        fprintf(stderr, "ward serve: %s; not starting\n", err);
        return -1;
    }
    broker_set_store(r->b, r->st);
    if (broker_load(r->b, err, sizeof(err)) < 0) {
        fprintf(stderr, "ward serve: loading %s/ward.db: %s; not starting\n", dir, err);
        return -1;
    }
    log_notice("persistence: %s mode, in %s", mode, dir);
    return 0;
}

/* Access control, the listeners, and a check of the bridges: everything
 * that can refuse to start before a thread runs. */
static int prepare(struct serve_opts *o, const struct serve_opts *flags, struct ward_config *cfg,
                   struct running *r)
{
    struct auth_settings as;
    char err[4096];
    auth_settings(flags, o->config ? cfg : NULL, &as);
    if (auth_configure(r->a, &as, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\nward serve: authentication files rejected; not starting\n", err);
        return -1;
    }
    broker_set_auth(r->b, r->a);
    for (unsigned i = 0; i < o->nurls; i++) {
        broker_set_listener_anonymous(r->b, i, o->listener_anon[i]);
        broker_set_listener_password(r->b, i, o->listener_password[i]);
        if (o->listener_overload[i] >= 0)
            broker_set_listener_overload(r->b, i, (enum broker_overload)o->listener_overload[i]);
        if (o->listener_idmatch[i] > 0)
            broker_set_listener_id_match(r->b, i, (enum broker_id_match)o->listener_idmatch[i]);
    }
    if (nats_auth_all(o, r) < 0 || listen_all(o, r->s, r->tls, r->b) < 0)
        return -1;
    warn_expiry(o, r->tls);
    return o->config && serve_bridges_check(cfg) < 0 ? -1 : 0;
}

static void admin_reload(struct running *r);

/* Until SIGINT or SIGTERM: SIGHUP reloads; every few seconds changed
 * certificate, key, CA or CRL files are picked up without a signal, and
 * once a day expiry is checked again. */
static void serve_signals(struct serve_opts *o, const struct serve_opts *flags, struct running *r,
                          const sigset_t *set)
{
    uint64_t next_expiry_check = clock_mono_ms() + 86400000ull;
    for (;;) {
        struct timespec poll = {5, 0};
        int sig = sigtimedwait(set, NULL, &poll);
        if (sig < 0) {
            reload_tls(o, r->tls, r->b, true);
            if (clock_mono_ms() >= next_expiry_check) {
                warn_expiry(o, r->tls);
                next_expiry_check = clock_mono_ms() + 86400000ull;
            }
            continue;
        }
        if (sig == SIGUSR1) {
            log_reopen();
            continue;
        }
        if (sig != SIGHUP) {
            log_notice("%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
            service_stopping();
            return;
        }
        service_reloading();
        reload(flags, r->a, r->b);
        reload_tls(o, r->tls, r->b, false);
        admin_reload(r);
        serve_bridges_reload(r->bridges);
        service_ready(o->nurls);
    }
}

/* ---- the admin HTTP server (docs/http-api.md) ---- */

/* The data directory, where admin.key for `ward status` goes. */
static const char *admin_key_dir(const struct serve_opts *flags, const struct ward_config *cfg)
{
    if (flags->data_dir)
        return flags->data_dir;
    if (!flags->config || (cfg->persistence_mode && strcmp(cfg->persistence_mode, "off") == 0))
        return NULL;
    return cfg->persistence_dir ? cfg->persistence_dir
                                : (cfg->sqlite_enable ? cfg->sqlite_path : NULL);
}

/* http { } (or NanoMQ's http_server { }, or --http): where, how bounded.
 * Returns false when the admin server is off. */
static bool admin_settings(const struct serve_opts *o, const struct ward_config *cfg,
                           struct admin_config *ac, char *bind, size_t cap)
{
    const struct cfg_http *h = o->config ? &cfg->http : NULL;
    memset(ac, 0, sizeof(*ac));
    ac->open_health = true;
    if (h && h->bind)
        snprintf(bind, cap, "%s", h->bind);
    else if (h && h->nanomq_port) /* NanoMQ binds 0.0.0.0 by default; ward, loopback */
        snprintf(bind, cap, "%s:%u", h->nanomq_ip_addr ? h->nanomq_ip_addr : "127.0.0.1",
                 h->nanomq_port);
    else
        bind[0] = '\0';
    if (o->http_bind)
        snprintf(bind, cap, "%s", o->http_bind);
    if (!bind[0] || (h && !h->enable && !o->http_bind))
        return false;
    ac->bind = bind;
    if (!h)
        return true;
    ac->max_connections =
        h->bind || !h->nanomq_limit_conn ? h->max_connections : h->nanomq_limit_conn;
    ac->limits.max_head = h->max_head;
    ac->limits.max_headers = h->max_headers;
    ac->limits.max_body = h->bind || !h->nanomq_max_body ? h->max_body : h->nanomq_max_body;
    ac->max_output = h->max_output;
    ac->idle_timeout_ms = h->idle_timeout_ms;
    ac->request_timeout_ms = h->request_timeout_ms;
    ac->open_metrics = h->open_metrics;
    ac->open_health = h->open_health;
    ac->api_keys_file = h->api_keys_file;
    ac->admin_ou = h->admin_ou;
    ac->read_ou = h->read_ou;
    return true;
}

/* HTTPS: the same TLS stack and keys as listeners.ssl. */
static int admin_tls(const struct ward_config *cfg, struct running *r)
{
    const struct cfg_http *h = &cfg->http;
    if (!h->certfile)
        return 0;
    struct tls_server_config t = {
        .certfile = h->certfile,
        .keyfile = h->keyfile,
        .key_password = h->key_password,
        .cafile = h->cacertfile,
        .capath = h->capath,
        .crlfile = h->crlfile,
        .verify = !h->verify_peer           ? TLS_VERIFY_NONE
                  : h->fail_if_no_peer_cert ? TLS_VERIFY_REQUIRED
                                            : TLS_VERIFY_OPTIONAL,
        .min_version = h->tls_version,
        .ciphers = h->ciphers,
        .ciphersuites = h->ciphersuites,
    };
    char err[1024];
    if (!(r->admin_tls = tls_server_new(&t, err, sizeof(err)))) {
        fprintf(stderr, "ward serve: http: %s\n", err);
        return -1;
    }
    return 0;
}

/* NanoMQ's http_server username/password: one admin credential for HTTP
 * Basic, never NanoMQ's well-known default. */
static void admin_nanomq_basic(const struct ward_config *cfg, struct admin_config *ac)
{
    const struct cfg_http *h = &cfg->http;
    if (h->nanomq_auth_type && strcmp(h->nanomq_auth_type, "jwt") == 0)
        log_warn("http_server.auth_type = jwt: not supported by ward; use API keys "
                 "(http.api_keys) with Bearer or Basic");
    if (!h->nanomq_username || !h->nanomq_password)
        return;
    if (strcmp(h->nanomq_password, "public") == 0) {
        log_warn("http_server.password is NanoMQ's default 'public': not accepted (ward has no "
                 "default password); use `ward apikey add`");
        return;
    }
    ac->basic_user = h->nanomq_username;
    ac->basic_password = h->nanomq_password;
}

/* POST /api/v4/reload, on the admin thread: the main thread does what
 * SIGHUP does, so a reload never runs twice at once. */
static int admin_reload_request(void *ctx, char *err, size_t errlen)
{
    if (kill(getpid(), SIGHUP) < 0)
        return snprintf(err, errlen, "%s", strerror(errno)), -1;
    return 0;
}

static const char *admin_transport(const struct serve_opts *o, const struct running *r, unsigned i)
{
    /* ws://, wss://, nats+ws://, nats+wss://: the scheme ends in ws or wss. */
    const char *end = strstr(o->urls[i], "://");
    size_t n = end ? (size_t)(end - o->urls[i]) : 0;
    bool ws =
        (n >= 2 && strncmp(end - 2, "ws", 2) == 0) || (n >= 3 && strncmp(end - 3, "wss", 3) == 0);
    return ws ? (r->tls[i] ? "wss" : "ws") : (r->tls[i] ? "tls" : "tcp");
}

/* The endpoints' view of the broker: listeners by port, protocol and
 * transport. The bridges are added once they run (admin_begin). */
static void admin_sources(const struct serve_opts *o, struct running *r)
{
    for (unsigned i = 0; i < o->nurls; i++) {
        snprintf(r->admin_names[i], sizeof(r->admin_names[i]), "%u", net_server_port(r->s, i));
        r->admin_ls[i] = (struct admin_listener){
            .name = r->admin_names[i],
            .index = i,
            .protocol = o->is_nats[i] ? "nats" : "mqtt",
            .transport = admin_transport(o, r, i),
            .tls = r->tls[i],
        };
    }
    r->admin_src = (struct admin_sources){
        .broker = r->b,
        .admin = r->admin,
        .net = r->s,
        .store = r->st,
        .listeners = r->admin_ls,
        .nlisteners = o->nurls,
        .start_time_ms = clock_wall_ms(),
        .reload = admin_reload_request,
    };
}

/* The status page's view of the listeners (net's indexes) and bridges,
 * and its routes; once the bridges run, before the server starts. */
static int page_setup(const struct serve_opts *o, struct running *r)
{
    struct admin_page_sources src = {.broker = r->b, .net = r->s};
    for (unsigned i = 0; i < o->nurls && i < ADMIN_PAGE_MAX_LISTENERS; i++) {
        src.listeners[i] = (struct admin_page_listener){
            .url = o->urls[i],
            .protocol = o->is_nats[i] ? "nats" : "mqtt",
            .transport = admin_transport(o, r, i),
            .tls = r->tls[i],
        };
        src.nlisteners = i + 1;
    }
    for (size_t i = 0; i < r->admin_src.nbridges && i < ADMIN_PAGE_MAX_BRIDGES; i++)
        src.bridges[src.nbridges++] = r->admin_src.bridges[i];
    if (!(r->page = admin_page_new(&src)) || admin_page_register(r->admin, r->page) < 0) {
        fprintf(stderr, "ward serve: http: cannot add the status page\n");
        return -1;
    }
    return 0;
}

/* Builds the admin server (its listener bound, its routes added); off
 * unless configured. The endpoints of src/admin (API, metrics, page) are
 * added here, before admin_start(). */
static int admin_setup(const struct serve_opts *o, const struct serve_opts *flags,
                       const struct ward_config *cfg, struct running *r)
{
    static char bind[300];
    struct admin_config ac;
    if (!admin_settings(o, cfg, &ac, bind, sizeof(bind)))
        return 0;
    if (o->config) {
        if (admin_tls(cfg, r) < 0)
            return -1;
        admin_nanomq_basic(cfg, &ac);
    }
    ac.tls = r->admin_tls;
    ac.local_key_dir = admin_key_dir(flags, cfg);
    char err[1024];
    if (!(r->admin = admin_new(&ac, err, sizeof(err)))) {
        fprintf(stderr, "ward serve: http: %s\n", err);
        return -1;
    }
    admin_sources(o, r);
    if (admin_api_register(r->admin, &r->admin_src) < 0) {
        fprintf(stderr, "ward serve: http: cannot add the API's routes\n");
        return -1;
    }
    return 0;
}

/* Once the bridges run: the status page, then the server. */
static int admin_begin(const struct serve_opts *o, struct running *r)
{
    char err[1024];
    if (!r->admin)
        return 0;
    r->admin_src.bridges = serve_bridges_list(r->bridges, &r->admin_src.nbridges);
    if (page_setup(o, r) < 0)
        return -1;
    if (admin_start(r->admin, err, sizeof(err)) < 0) {
        fprintf(stderr, "ward serve: http: %s\n", err);
        return -1;
    }
    if (admin_page_start(r->page) < 0) {
        fprintf(stderr, "ward serve: http: cannot start the status page's sampling\n");
        return -1;
    }
    return 0;
}

/* SIGHUP: the API key file again (and the TLS files). */
static void admin_reload(struct running *r)
{
    char err[1024];
    if (!r->admin)
        return;
    if (admin_reload_keys(r->admin, err, sizeof(err)) < 0)
        log_error("reload: http: %s; the running API keys stay", err);
    if (r->admin_tls && tls_server_reload(r->admin_tls, err, sizeof(err)) < 0)
        log_error("reload: http: %s; the running TLS material stays", err);
}

/* ---- system.user: the privilege drop (app/privs.h) ---- */

/* What must stay readable or writable after the drop, each named for the
 * error (as many as listeners, certificates and bridges make). */
struct need_item {
    const char *path;
    enum privs_need k;
    char what[160];
};
struct needs {
    struct need_item *items;
    size_t n, cap;
    bool oom;
};

static void need(struct needs *nd, const char *path, enum privs_need k, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void need(struct needs *nd, const char *path, enum privs_need k, const char *fmt, ...)
{
    if (!path || !*path)
        return;
    if (!ward_ok(VEC_RESERVE(nd->items, nd->cap, nd->n + 1))) {
        nd->oom = true;
        return;
    }
    struct need_item *it = &nd->items[nd->n++];
    it->path = path;
    it->k = k;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->what, sizeof(it->what), fmt, ap);
    va_end(ap);
}

/* The user checks every item; 0, or -1 with the first failure printed. */
static int check_needs(const struct needs *nd, const struct privs_target *t)
{
    char err[1024];
    struct privs_path *p = calloc(nd->n ? nd->n : 1, sizeof(*p));
    if (!p || nd->oom) {
        free(p);
        fprintf(stderr, "ward serve: out of memory\n");
        return -1;
    }
    for (size_t i = 0; i < nd->n; i++)
        p[i] = (struct privs_path){nd->items[i].path, nd->items[i].what, nd->items[i].k};
    int rc = privs_check(t, p, nd->n, err, sizeof(err));
    if (rc < 0)
        fprintf(stderr,
                "ward serve: system.user: %s; not starting (a reload after dropping root would "
                "fail)\n",
                err);
    free(p);
    return rc;
}

/* A TLS server's files: read again on SIGHUP and when they change. */
static void need_tls(struct needs *nd, const struct tls_server *t, const char *where)
{
    const struct tls_server_config *c = t ? tls_server_config(t) : NULL;
    if (!c)
        return;
    need(nd, c->certfile, PRIVS_READ, "the certificate of %s", where);
    need(nd, c->keyfile, PRIVS_READ, "the key of %s", where);
    need(nd, c->cafile, PRIVS_READ, "the CA file of %s", where);
    need(nd, c->capath, PRIVS_READ_DIR, "the CA directory of %s", where);
    need(nd, c->crlfile, PRIVS_READ, "the CRL of %s", where);
    for (unsigned k = 0; k < c->nsni; k++) {
        need(nd, c->sni[k].certfile, PRIVS_READ, "the certificate for %s on %s", c->sni[k].host,
             where);
        need(nd, c->sni[k].keyfile, PRIVS_READ, "the key for %s on %s", c->sni[k].host, where);
    }
}

static const char *admin_key_dir(const struct serve_opts *flags, const struct ward_config *cfg);

/* Everything a reload or a later start of a part reads or writes. */
static void collect_needs(const struct serve_opts *o, const struct serve_opts *flags,
                          const struct ward_config *cfg, const struct running *r, struct needs *nd)
{
    static char db[3][4200];
    struct auth_settings as;
    auth_settings(flags, o->config ? cfg : NULL, &as);
    need(nd, flags->config, PRIVS_READ, "the configuration file");
    need(nd, as.password_file, PRIVS_READ, "the password file");
    need(nd, as.acl_file, PRIVS_READ, "the ACL file");
    for (unsigned i = 0; i < o->nurls; i++)
        need_tls(nd, r->tls[i], o->urls[i]);
    need_tls(nd, r->admin_tls, "the admin HTTP server");
    if (r->admin && o->config)
        need(nd, cfg->http.api_keys_file, PRIVS_READ, "the API key file");
    for (size_t i = 0; o->config && i < cfg->nbridges; i++) {
        const struct cfg_bridge *b = &cfg->bridges[i];
        if (!b->enable || !b->ssl.enable)
            continue;
        need(nd, b->ssl.certfile, PRIVS_READ, "the certificate of bridge %s", b->name);
        need(nd, b->ssl.keyfile, PRIVS_READ, "the key of bridge %s", b->name);
        need(nd, b->ssl.cacertfile, PRIVS_READ, "the CA file of bridge %s", b->name);
    }
    static char logdir[4200];
    const char *logfile = serve_log_file();
    if (logfile) {
        need(nd, logfile, PRIVS_WRITE_FILE, "the log file");
        const char *slash = strrchr(logfile, '/');
        snprintf(logdir, sizeof(logdir), "%.*s", slash ? (int)(slash - logfile) : 1,
                 slash ? logfile : ".");
        if (!logdir[0]) /* a file in / */
            snprintf(logdir, sizeof(logdir), "/");
        need(nd, logdir, PRIVS_WRITE_DIR, "the log directory (rotation)");
    }
    const char *dir = admin_key_dir(flags, cfg);
    if (!dir)
        return;
    need(nd, dir, PRIVS_WRITE_DIR, "the data directory");
    static const char *const files[] = {"ward.db", "ward.db-wal", "ward.db-shm"};
    for (size_t k = 0; k < 3; k++) {
        snprintf(db[k], sizeof(db[k]), "%s/%s", dir, files[k]);
        need(nd, db[k], PRIVS_WRITE_FILE, "the store");
    }
}

/* A data directory that does not exist yet is made for the user (the
 * store would make it, as the user, only if its parent let it). */
static int make_data_dir(const char *dir, const struct privs_target *t)
{
    struct stat sb;
    if (!dir || stat(dir, &sb) == 0 || errno != ENOENT)
        return 0;
    if (mkdir(dir, 0700) != 0 || chown(dir, t->uid, t->gid) != 0) {
        fprintf(stderr, "ward serve: cannot make the data directory %s for user '%s': %s\n", dir,
                t->user, strerror(errno));
        return -1;
    }
    return 0;
}

/* system.user (or --user), once the listeners are open and before any
 * thread starts: checks, then drops root for good. Without one, running
 * as root is only warned about (tests and `make run` do). */
static int drop_privileges(const struct serve_opts *o, const struct serve_opts *flags,
                           const struct ward_config *cfg, const struct running *r)
{
    const char *user = flags->user ? flags->user : o->config ? cfg->user : NULL;
    char err[1024];
    struct privs_target t;
    if (!user) {
        if (o->config && cfg->group)
            log_warn("system.group is set without system.user: ignored");
        if (geteuid() == 0)
            log_warn("running as root: set system.user (or --user) to run as an unprivileged "
                     "user once the listeners are open");
        return 0;
    }
    if (privs_lookup(user, o->config ? cfg->group : NULL, &t, err, sizeof(err)) < 0) {
        fprintf(stderr, "ward serve: system.user: %s; not starting\n", err);
        return -1;
    }
    if (geteuid() != 0) {
        if (geteuid() == t.uid)
            return 0; /* started as that user already */
        fprintf(stderr,
                "ward serve: system.user '%s': changing user needs root (running as uid %u); "
                "not starting\n",
                t.user, (unsigned)geteuid());
        return -1;
    }
    struct needs nd = {0};
    collect_needs(o, flags, cfg, r, &nd);
    int rc = make_data_dir(admin_key_dir(flags, cfg), &t);
    if (rc == 0)
        rc = check_needs(&nd, &t);
    free(nd.items);
    if (rc == 0 && (rc = privs_drop(&t, err, sizeof(err))) < 0)
        fprintf(stderr, "ward serve: system.user '%s': %s; not starting\n", t.user, err);
    if (rc == 0)
        log_notice("running as user %s (uid %u), group %s (gid %u)", t.user, (unsigned)t.uid,
                   t.group, (unsigned)t.gid);
    return rc;
}

/* SIGTERM or SIGINT: stop accepting, tell every client, let the bridges
 * deliver their backlog upstream and stop, and wait for the client
 * connections to close and the store to commit; system.shutdown_timeout
 * bounds it all. */
static void shut_down(const struct serve_opts *o, struct running *r)
{
    uint64_t t0 = clock_mono_ms(), end = t0 + o->shutdown_timeout_ms;
    net_server_stop_accepting(r->s);
    broker_shutdown(r->b);
    serve_bridges_drain(r->bridges, r->b, o->shutdown_timeout_ms);
    serve_bridges_stop(r->bridges);
    uint64_t now = clock_mono_ms();
    if (broker_wait_flushed(r->b, now < end ? (uint32_t)(end - now) : 0))
        log_notice("shutdown: clients closed and state committed in %llu ms",
                   (unsigned long long)(clock_mono_ms() - t0));
    else
        log_warn("shutdown: not done within system.shutdown_timeout (%u ms); closing what is "
                 "left",
                 o->shutdown_timeout_ms);
}

static int run(struct serve_opts *o, const struct serve_opts *flags, struct ward_config *cfg)
{
    sigset_t set;
    block_signals(&set); /* before any thread, which must not take them */
    if (serve_log_start(o->config ? cfg : NULL, &flags->log) < 0)
        return 1;
    struct net_config nc = {.workers = o->workers,
                            .max_connections = o->max_connections,
                            .max_input = o->bc.max_packet_size + 8u,
                            .max_output = o->max_output ? o->max_output : 1u << 20,
                            .slow_consumer_timeout_ms = o->slow_consumer_ms};
    struct running r = {.b = broker_new(&o->bc), .a = auth_new()};
    struct service_watchdog *wd = NULL;
    r.s = r.b ? net_server_new(&nc, broker_net_handler(), r.b) : NULL;
    int rc = 1;
    if (!r.s || !r.a) {
        fprintf(stderr, "ward serve: out of memory\n");
        goto out;
    }
    char why[2048];
    if (service_offer_listen_fds(r.s, why, sizeof(why)) < 0) {
        fprintf(stderr, "ward serve: %s\n", why);
        goto out;
    }
    if (prepare(o, flags, cfg, &r) < 0)
        goto out;
    if (service_check_listen_fds(r.s, why, sizeof(why)) < 0) {
        fprintf(stderr, "ward serve: %s\n", why);
        goto out;
    }
    /* Listeners (the admin one too) are bound as root, then root is
     * dropped; the store is opened as the user, so its files are the
     * user's. */
    if (admin_setup(o, flags, cfg, &r) < 0 || drop_privileges(o, flags, cfg, &r) < 0 ||
        serve_log_begin() < 0 || open_store(o, flags, cfg, &r) < 0)
        goto out;
    r.admin_src.store = r.st; /* admin_setup ran before the store opened */
    if (broker_start(r.b) < 0 || net_server_start(r.s) < 0) {
        fprintf(stderr, "ward serve: cannot start threads\n");
        goto out;
    }
    if (o->config && !(r.bridges = serve_bridges_start(cfg, r.s, r.b)))
        goto stop;
    if (admin_begin(o, &r) < 0)
        goto stop;
    char version[512];
    version_line(version, sizeof(version));
    log_notice("ward %s serving with %u worker%s", version, o->workers, o->workers == 1 ? "" : "s");
    if (r.admin) /* listeners listen, stored state is loaded */
        admin_set_ready(r.admin, true);
    service_ready(o->nurls); /* systemd: the same moment */
    wd = service_watchdog_start(r.s);
    serve_signals(o, flags, &r, &set);
    rc = 0;
stop:
    service_watchdog_stop(wd); /* before the workers stop turning */
    if (r.admin)
        admin_set_ready(r.admin, false);
    shut_down(o, &r);
    admin_stop(r.admin); /* its handlers read the broker */
    net_server_stop(r.s);
    net_server_join(r.s);
out:
    admin_free(r.admin);
    admin_page_free(r.page); /* its sampling thread reads the broker */
    tls_server_free(r.admin_tls);
    /* The housekeeper publishes net_server_sys() in $SYS: stop it first. */
    broker_stop(r.b);
    net_server_free(r.s);
    store_close(r.st); /* its commit hook calls into the broker */
    broker_free(r.b);
    serve_bridges_free(r.bridges);
    auth_free(r.a);
    for (unsigned i = 0; i < MAX_URLS; i++) {
        tls_server_free(r.tls[i]);
        auth_nats_free(r.nats_auth[i]);
    }
    serve_log_stop();
    return rc;
}

/* --dev-pki DIR: what `ward cert dev DIR` made, on the usual ports. */
static int add_dev_pki(struct serve_opts *o, const char *dir)
{
    static char paths[4][4096];
    static const char *const urls[] = {"tls://0.0.0.0:8883", "mtls://0.0.0.0:8884",
                                       "nats+mtls://0.0.0.0:4223"};
    snprintf(paths[0], sizeof(paths[0]), "%s/server.crt", dir);
    snprintf(paths[1], sizeof(paths[1]), "%s/server.key", dir);
    snprintf(paths[2], sizeof(paths[2]), "%s/ca.crt", dir);
    snprintf(paths[3], sizeof(paths[3]), "%s/crl.pem", dir);
    if (access(paths[0], R_OK) != 0) {
        fprintf(stderr, "ward serve: --dev-pki: %s: %s (run `ward cert dev %s`)\n", paths[0],
                strerror(errno), dir);
        return -1;
    }
    /* Plain NATS too: Mir's development setups start without TLS. */
    if (o->nurls < MAX_URLS)
        o->urls[o->nurls++] = "nats://0.0.0.0:4222";
    for (size_t i = 0; i < 3 && o->nurls < MAX_URLS; i++) {
        struct tls_server_config *t = &o->tls[o->nurls];
        memset(t, 0, sizeof(*t));
        t->certfile = paths[0];
        t->keyfile = paths[1];
        t->cafile = paths[2];
        t->crlfile = access(paths[3], R_OK) == 0 ? paths[3] : NULL;
        t->verify = i == 0 ? TLS_VERIFY_NONE : TLS_VERIFY_REQUIRED;
        t->as_username = TLS_ID_CN;
        o->has_tls[o->nurls] = true;
        o->listener_anon[o->nurls] = -1;
        o->urls[o->nurls++] = urls[i];
    }
    return 0;
}

/* The flags, parsed again over what the file gave (in o), win over it. */
static void merge_flags(struct serve_opts *o, const struct serve_opts *over)
{
    if (over->nurls) { /* -l replaces the file's listeners and their settings */
        for (unsigned i = 0; i < MAX_URLS; i++) {
            o->listener_anon[i] = -1;
            o->listener_password[i] = false;
            o->listener_idmatch[i] = 0;
            o->listener_overload[i] = -1;
            o->lopts[i] = (struct net_listen_opts){0};
            o->has_tls[i] = false;
            o->is_nats[i] = false;
            o->nats_cfg[i] = NULL;
        }
        o->nurls = over->nurls;
        memcpy(o->urls, over->urls, sizeof(o->urls));
    }
    o->bc = over->bc;
    o->workers = over->workers ? over->workers : o->workers;
    o->max_connections = over->max_connections ? over->max_connections : o->max_connections;
    if (over->log_level)
        log_set_level((enum log_level)log_level_parse(over->log_level));
    if (!o->workers) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o->workers = n > 0 ? (unsigned)n : 1;
    }
    if (!o->max_connections)
        o->max_connections = 100000;
    o->tls_flags = over->tls_flags;
    o->client_cert = over->client_cert;
    o->max_payload = over->max_payload;
    o->http_bind = over->http_bind;
    if (o->nurls == 0)
        o->urls[o->nurls++] = "tcp://0.0.0.0:1883";
}

int cmd_serve(int argc, char **argv)
{
    struct serve_opts o = {.allow_anonymous = -1, .client_cert = -1};
    struct ward_config cfg = {0};
    static char urls[MAX_URLS][300];
    broker_config_defaults(&o.bc);
    o.slow_consumer_ms = 30000; /* mqtt.slow_consumer_timeout's default without a file */
    /* system.shutdown_timeout's default without a file */
    o.shutdown_timeout_ms = 5000;
    for (unsigned i = 0; i < MAX_URLS; i++) {
        o.listener_anon[i] = -1;
        o.listener_overload[i] = -1;
    }
    struct serve_opts flags = o;
    int rc = parse(argc, argv, &flags);
    if (rc)
        return rc == OPTS_HELP ? 0 : rc;
    o.config = flags.config;
    if (o.config) {
        if (apply_config(&o, &cfg, urls))
            return 1;
        config_to_broker(&cfg, &o.bc);
        o.workers = cfg.workers;
        o.max_connections = cfg.max_connections;
        o.max_output = cfg.max_output_bytes;
        o.slow_consumer_ms = cfg.slow_consumer_timeout_ms;
        o.shutdown_timeout_ms = cfg.shutdown_timeout_ms;
        log_set_level((enum log_level)log_level_parse(cfg.log_level));
    }
    struct serve_opts over = o;
    over.nurls = 0;
    if ((rc = parse(argc, argv, &over))) {
        rc = rc == OPTS_HELP ? 0 : rc;
    } else {
        merge_flags(&o, &over);
        rc = over.dev_pki && add_dev_pki(&o, over.dev_pki) < 0 ? 1 : run(&o, &flags, &cfg);
    }
    if (o.config)
        config_free(&cfg);
    return rc;
}
