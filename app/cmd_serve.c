/* `ward serve`: the broker. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "broker/broker.h"
#include "commands.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/log.h"
#include "net/net.h"
#include "serve_bridges.h"
#include "tls/tls.h"

#define MAX_URLS 16

struct serve_opts {
    const char *config;
    const char *urls[MAX_URLS];
    unsigned nurls;
    unsigned workers;
    const char *log_level;
    const char *dev_pki;
    uint32_t max_connections;
    struct broker_config bc;
    const char *password_file;
    const char *acl_file;
    int allow_anonymous;         /* -1: not given */
    int listener_anon[MAX_URLS]; /* per -l / listener block: -1 inherit */
    bool listener_password[MAX_URLS];
    int listener_idmatch[MAX_URLS];
    /* TLS settings per listener: from its config block, or the flags. */
    bool has_tls[MAX_URLS];
    struct tls_server_config tls[MAX_URLS];
    struct tls_server_config tls_flags; /* --certfile ... for tls:// and mtls:// */
    const char *client_cert;            /* --client-cert none|optional|required */
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ward serve [-c FILE] [-l URL ...] [--workers N] [options]\n"
            "  -c, --config FILE        configuration file (HOCON, NanoMQ's key names)\n"
            "  -l, --listen URL         tcp://HOST:PORT (repeatable; default tcp://0.0.0.0:1883)\n"
            "      --workers N          worker threads (default: one per CPU)\n"
            "      --log-level LEVEL    error, warn, notice, info or debug\n"
            "      --max-packet-size N  largest packet in bytes (default 1048576)\n"
            "      --max-connections N  most simultaneous connections (default 100000)\n"
            "      --max-inflight N     unacknowledged QoS 1/2 messages per client (64)\n"
            "      --max-queued N       queued messages per offline session (1000)\n"
            "      --max-keepalive S    highest keep alive granted (65535)\n"
            "      --topic-alias-max N  topic aliases a client may use (10)\n"
            "      --sys-interval S     $SYS publication interval, 0 disables (10)\n"
            "      --password-file FILE users and password hashes ('ward passwd')\n"
            "      --acl-file FILE      access rules (NanoMQ's ACL format)\n"
            "      --allow-anonymous B  true or false: clients without credentials\n"
            "      --dev-pki DIR        development PKI made by 'ward cert dev': adds\n"
            "                           tls://0.0.0.0:8883 and mtls://0.0.0.0:8884\n"
            "TLS (for -l tls://HOST:PORT and mtls://HOST:PORT):\n"
            "      --certfile F --keyfile F [--key-password P]   the server's identity\n"
            "      --cafile F           CAs trusted for client certificates\n"
            "      --crlfile F          revoked client certificates (PEM, may hold several)\n"
            "      --client-cert MODE   none, optional or required (tls:// none,\n"
            "                           mtls:// required)\n"
            "      --tls-version V      minimum: 1.2 (default) or 1.3\n"
            "      --ciphers L, --ciphersuites L   TLS 1.2 list, TLS 1.3 suites\n"
            "      --groups L           key exchange groups (X25519:P-256 ...)\n"
            "      --verify-depth N     most intermediate CAs above a client certificate\n"
            "      --sni HOST,CERT,KEY  another certificate for clients asking for HOST\n"
            "                           (*.example.com allowed; repeatable)\n"
            "      --peer-cert-as-username F, --peer-cert-as-clientid F\n"
            "                           cn, dn, san_dns, san_email, san_uri or none\n"
            "SIGHUP re-reads the configuration file, the password file and the ACL.\n");
}

enum {
    OPT_WORKERS = 256,
    OPT_LOG,
    OPT_MAXPKT,
    OPT_MAXCONN,
    OPT_INFLIGHT,
    OPT_QUEUED,
    OPT_KEEPALIVE,
    OPT_ALIAS,
    OPT_SYS,
    OPT_DEVPKI,
    OPT_PASSWD,
    OPT_ACL,
    OPT_ANON,
    OPT_CERT,
    OPT_KEY,
    OPT_KEYPW,
    OPT_CA,
    OPT_CRL,
    OPT_CLIENTCERT,
    OPT_TLSVER,
    OPT_CIPHERS,
    OPT_SUITES,
    OPT_AS_USER,
    OPT_AS_ID,
    OPT_SNI,
    OPT_GROUPS,
    OPT_DEPTH,
};

static const struct option long_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"listen", required_argument, NULL, 'l'},
    {"help", no_argument, NULL, 'h'},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"log-level", required_argument, NULL, OPT_LOG},
    {"max-packet-size", required_argument, NULL, OPT_MAXPKT},
    {"max-connections", required_argument, NULL, OPT_MAXCONN},
    {"max-inflight", required_argument, NULL, OPT_INFLIGHT},
    {"max-queued", required_argument, NULL, OPT_QUEUED},
    {"max-keepalive", required_argument, NULL, OPT_KEEPALIVE},
    {"topic-alias-max", required_argument, NULL, OPT_ALIAS},
    {"sys-interval", required_argument, NULL, OPT_SYS},
    {"dev-pki", required_argument, NULL, OPT_DEVPKI},
    {"password-file", required_argument, NULL, OPT_PASSWD},
    {"acl-file", required_argument, NULL, OPT_ACL},
    {"allow-anonymous", required_argument, NULL, OPT_ANON},
    {"certfile", required_argument, NULL, OPT_CERT},
    {"keyfile", required_argument, NULL, OPT_KEY},
    {"key-password", required_argument, NULL, OPT_KEYPW},
    {"cafile", required_argument, NULL, OPT_CA},
    {"crlfile", required_argument, NULL, OPT_CRL},
    {"client-cert", required_argument, NULL, OPT_CLIENTCERT},
    {"tls-version", required_argument, NULL, OPT_TLSVER},
    {"ciphers", required_argument, NULL, OPT_CIPHERS},
    {"ciphersuites", required_argument, NULL, OPT_SUITES},
    {"peer-cert-as-username", required_argument, NULL, OPT_AS_USER},
    {"peer-cert-as-clientid", required_argument, NULL, OPT_AS_ID},
    {"sni", required_argument, NULL, OPT_SNI},
    {"groups", required_argument, NULL, OPT_GROUPS},
    {"verify-depth", required_argument, NULL, OPT_DEPTH},
    {NULL, 0, NULL, 0},
};

/* A whole number in [lo, hi], or exit 2 naming the flag. */
static uint32_t number(const char *flag, const char *s, uint32_t lo, uint32_t hi)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *end != '\0' || *s == '-' || v < lo || v > hi) {
        fprintf(stderr, "ward serve: %s: '%s' is not a number from %u to %u\n", flag, s, lo, hi);
        exit(2);
    }
    return (uint32_t)v;
}

static int parse(int argc, char **argv, struct serve_opts *o)
{
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:l:h", long_opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o->config = optarg;
            break;
        case 'l':
            if (o->nurls == MAX_URLS) {
                fprintf(stderr, "ward serve: at most %d listeners\n", MAX_URLS);
                return 2;
            }
            o->urls[o->nurls++] = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case OPT_WORKERS:
            o->workers = number("--workers", optarg, 1, 256);
            break;
        case OPT_LOG:
            if (log_level_parse(optarg) < 0) {
                fprintf(stderr, "ward serve: --log-level: unknown level '%s'\n", optarg);
                return 2;
            }
            o->log_level = optarg;
            break;
        case OPT_MAXPKT:
            o->bc.max_packet_size = number("--max-packet-size", optarg, 64, 268435460u);
            break;
        case OPT_MAXCONN:
            o->max_connections = number("--max-connections", optarg, 1, 10000000u);
            break;
        case OPT_INFLIGHT:
            o->bc.max_inflight = (uint16_t)number("--max-inflight", optarg, 1, 65535);
            break;
        case OPT_QUEUED:
            o->bc.max_queued = number("--max-queued", optarg, 1, 100000000u);
            break;
        case OPT_KEEPALIVE:
            o->bc.max_keepalive = (uint16_t)number("--max-keepalive", optarg, 1, 65535);
            break;
        case OPT_ALIAS:
            o->bc.topic_alias_max = (uint16_t)number("--topic-alias-max", optarg, 0, 65535);
            break;
        case OPT_SYS:
            o->bc.sys_interval_s = number("--sys-interval", optarg, 0, 86400);
            break;
        case OPT_DEVPKI:
            o->dev_pki = optarg;
            break;
        case OPT_PASSWD:
            o->password_file = optarg;
            break;
        case OPT_CERT:
            o->tls_flags.certfile = optarg;
            break;
        case OPT_KEY:
            o->tls_flags.keyfile = optarg;
            break;
        case OPT_KEYPW:
            o->tls_flags.key_password = optarg;
            break;
        case OPT_CA:
            o->tls_flags.cafile = optarg;
            break;
        case OPT_CRL:
            o->tls_flags.crlfile = optarg;
            break;
        case OPT_CLIENTCERT:
            if (strcmp(optarg, "none") && strcmp(optarg, "optional") &&
                strcmp(optarg, "required")) {
                fprintf(stderr, "ward serve: --client-cert: none, optional or required\n");
                return 2;
            }
            o->client_cert = optarg;
            break;
        case OPT_TLSVER:
            o->tls_flags.min_version = optarg;
            break;
        case OPT_CIPHERS:
            o->tls_flags.ciphers = optarg;
            break;
        case OPT_SUITES:
            o->tls_flags.ciphersuites = optarg;
            break;
        case OPT_GROUPS:
            o->tls_flags.groups = optarg;
            break;
        case OPT_DEPTH:
            o->tls_flags.verify_depth = number("--verify-depth", optarg, 0, 100) + 1;
            break;
        case OPT_SNI: {
            /* HOST,CERTFILE,KEYFILE; argv stays as it is (parsed twice). */
            static char parts[TLS_MAX_SNI][3][1024];
            unsigned k = o->tls_flags.nsni;
            char *cert = strchr(optarg, ','), *key = cert ? strchr(cert + 1, ',') : NULL;
            if (!cert || !key || k == TLS_MAX_SNI) {
                fprintf(stderr, "ward serve: --sni HOST,CERTFILE,KEYFILE (at most %d)\n",
                        TLS_MAX_SNI);
                return 2;
            }
            snprintf(parts[k][0], sizeof(parts[k][0]), "%.*s", (int)(cert - optarg), optarg);
            snprintf(parts[k][1], sizeof(parts[k][1]), "%.*s", (int)(key - cert - 1), cert + 1);
            snprintf(parts[k][2], sizeof(parts[k][2]), "%s", key + 1);
            o->tls_flags.sni[o->tls_flags.nsni++] =
                (struct tls_sni){parts[k][0], parts[k][1], parts[k][2]};
            break;
        }
        case OPT_AS_USER:
        case OPT_AS_ID: {
            int f = tls_id_field_parse(optarg);
            if (f < 0) {
                fprintf(stderr, "ward serve: %s: cn, dn, san_dns, san_email, san_uri or none\n",
                        ch == OPT_AS_USER ? "--peer-cert-as-username" : "--peer-cert-as-clientid");
                return 2;
            }
            if (ch == OPT_AS_USER)
                o->tls_flags.as_username = (enum tls_id_field)f;
            else
                o->tls_flags.as_clientid = (enum tls_id_field)f;
            break;
        }
        case OPT_ACL:
            o->acl_file = optarg;
            break;
        case OPT_ANON:
            if (strcmp(optarg, "true") != 0 && strcmp(optarg, "false") != 0) {
                fprintf(stderr, "ward serve: --allow-anonymous: expected true or false\n");
                return 2;
            }
            o->allow_anonymous = strcmp(optarg, "true") == 0;
            break;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ward serve: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    return 0;
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

/* Applies a configuration file; flags given on the command line win, so
 * the file is applied to a copy of the defaults first. */
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
    for (size_t i = 0; i < cfg->nlisteners && o->nurls < MAX_URLS; i++) {
        const struct cfg_listener *l = &cfg->listeners[i];
        if (!l->enable)
            continue;
        if (l->kind == CFG_LISTENER_WS || l->kind == CFG_LISTENER_WSS) {
            fprintf(stderr,
                    "ward serve: %s: listener '%s': WebSocket listeners are not available in "
                    "this build yet\n",
                    o->config, l->name);
            return 1;
        }
        snprintf(urls[o->nurls], 300, "%s://%s", l->kind == CFG_LISTENER_SSL ? "tls" : "tcp",
                 l->bind);
        if (l->kind == CFG_LISTENER_SSL && ssl_config(o, l, &o->tls[o->nurls]) < 0)
            return 1;
        o->has_tls[o->nurls] = l->kind == CFG_LISTENER_SSL;
        o->listener_anon[o->nurls] = l->allow_anonymous;
        o->listener_password[o->nurls] = l->require_password;
        o->listener_idmatch[o->nurls] = broker_id_match_parse(l->clientid_must_match);
        o->urls[o->nurls] = urls[o->nurls];
        o->nurls++;
    }
    return 0;
}

static void config_to_broker(const struct ward_config *cfg, struct broker_config *bc)
{
    bc->max_packet_size = cfg->max_packet_size;
    bc->max_inflight = (uint16_t)cfg->max_inflight_window;
    bc->max_queued = cfg->max_mqueue_len;
    bc->max_topic_levels = cfg->max_topic_levels;
    bc->max_keepalive = (uint16_t)cfg->max_keepalive;
    bc->topic_alias_max = (uint16_t)cfg->topic_alias_max;
    bc->max_qos = (uint8_t)cfg->max_qos;
    bc->retain_available = cfg->retain_available;
    bc->keepalive_multiplier = cfg->keepalive_multiplier;
    bc->sys_interval_s = cfg->sys_interval_s;
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
    static const char *const tls[] = {"tls://", "ssl://", "mqtts://", "tls+mqtt-tcp://"};
    *mutual = strncmp(url, "mtls://", 7) == 0;
    for (size_t i = 0; i < sizeof(tls) / sizeof(tls[0]); i++)
        if (strncmp(url, tls[i], strlen(tls[i])) == 0)
            return true;
    return *mutual;
}

static enum tls_verify verify_mode(const char *client_cert, bool mutual)
{
    if (!client_cert)
        return mutual ? TLS_VERIFY_REQUIRED : TLS_VERIFY_NONE;
    return strcmp(client_cert, "required") == 0   ? TLS_VERIFY_REQUIRED
           : strcmp(client_cert, "optional") == 0 ? TLS_VERIFY_OPTIONAL
                                                  : TLS_VERIFY_NONE;
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
        if ((is_tls ? net_server_listen_tls(s, o->urls[i], tls[i], err, sizeof(err))
                    : net_server_listen(s, o->urls[i], err, sizeof(err))) < 0) {
            fprintf(stderr, "ward serve: %s\n", err);
            return -1;
        }
        if (is_tls) {
            /* $SYS names the listener by its port: tls/8883/... */
            const char *colon = strrchr(o->urls[i], ':');
            broker_add_tls(b, colon ? colon + 1 : o->urls[i], tls[i]);
        }
    }
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

static int run(struct serve_opts *o, const struct serve_opts *flags, struct ward_config *cfg)
{
    sigset_t set;
    block_signals(&set);
    struct net_config nc = {o->workers, o->max_connections, o->bc.max_packet_size + 8u, 64u << 20};
    struct broker *b = broker_new(&o->bc);
    struct net_server *s = b ? net_server_new(&nc, broker_net_handler(), b) : NULL;
    struct auth *a = auth_new();
    struct tls_server *tls[MAX_URLS] = {0};
    struct serve_bridges *bridges = NULL;
    struct auth_settings as;
    char err[4096];
    int rc = 1;
    if (!s || !a) {
        fprintf(stderr, "ward serve: out of memory\n");
        goto out;
    }
    auth_settings(flags, o->config ? cfg : NULL, &as);
    if (auth_configure(a, &as, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\nward serve: authentication files rejected; not starting\n", err);
        goto out;
    }
    broker_set_auth(b, a);
    for (unsigned i = 0; i < o->nurls; i++) {
        broker_set_listener_anonymous(b, i, o->listener_anon[i]);
        broker_set_listener_password(b, i, o->listener_password[i]);
        if (o->listener_idmatch[i] > 0)
            broker_set_listener_id_match(b, i, (enum broker_id_match)o->listener_idmatch[i]);
    }
    if (listen_all(o, s, tls, b) < 0)
        goto out;
    warn_expiry(o, tls);
    uint64_t next_expiry_check = clock_mono_ms() + 86400000ull;
    if (o->config && serve_bridges_check(cfg) < 0)
        goto out;
    if (broker_start(b) < 0 || net_server_start(s) < 0) {
        fprintf(stderr, "ward serve: cannot start threads\n");
        goto out;
    }
    if (o->config && !(bridges = serve_bridges_start(cfg, s, b)))
        goto stop;
    log_notice("ward %s serving with %u worker%s", WARD_VERSION, o->workers,
               o->workers == 1 ? "" : "s");
    for (;;) {
        /* Every few seconds, changed certificate, key, CA or CRL files are
         * picked up without a signal. */
        struct timespec poll = {5, 0};
        int sig = sigtimedwait(&set, NULL, &poll);
        if (sig < 0) {
            reload_tls(o, tls, b, true);
            if (clock_mono_ms() >= next_expiry_check) {
                warn_expiry(o, tls);
                next_expiry_check = clock_mono_ms() + 86400000ull;
            }
            continue;
        }
        if (sig == SIGHUP) {
            reload(flags, a, b);
            reload_tls(o, tls, b, false);
            serve_bridges_reload(bridges);
            continue;
        }
        log_notice("%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
        break;
    }
    rc = 0;
stop:
    serve_bridges_stop(bridges);
    broker_shutdown(b);
    usleep(100 * 1000); /* let the DISCONNECTs reach the wire */
    net_server_stop(s);
    net_server_join(s);
out:
    net_server_free(s);
    broker_free(b);
    serve_bridges_free(bridges);
    auth_free(a);
    for (unsigned i = 0; i < MAX_URLS; i++)
        tls_server_free(tls[i]);
    return rc;
}

/* --dev-pki DIR: what `ward cert dev DIR` made, on the usual ports. */
static int add_dev_pki(struct serve_opts *o, const char *dir)
{
    static char paths[4][4096];
    static const char *const urls[] = {"tls://0.0.0.0:8883", "mtls://0.0.0.0:8884"};
    snprintf(paths[0], sizeof(paths[0]), "%s/server.crt", dir);
    snprintf(paths[1], sizeof(paths[1]), "%s/server.key", dir);
    snprintf(paths[2], sizeof(paths[2]), "%s/ca.crt", dir);
    snprintf(paths[3], sizeof(paths[3]), "%s/crl.pem", dir);
    if (access(paths[0], R_OK) != 0) {
        fprintf(stderr, "ward serve: --dev-pki: %s: %s (run `ward cert dev %s`)\n", paths[0],
                strerror(errno), dir);
        return -1;
    }
    for (size_t i = 0; i < 2 && o->nurls < MAX_URLS; i++) {
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

int cmd_serve(int argc, char **argv)
{
    struct serve_opts o = {0};
    struct serve_opts flags = {0};
    struct ward_config cfg = {0};
    static char urls[MAX_URLS][300];
    broker_config_defaults(&o.bc);
    flags.bc = o.bc;
    flags.allow_anonymous = -1;
    for (unsigned i = 0; i < MAX_URLS; i++)
        o.listener_anon[i] = -1;
    int rc = parse(argc, argv, &flags);
    if (rc)
        return rc;
    o.config = flags.config;
    if (o.config) {
        if (apply_config(&o, &cfg, urls))
            return 1;
        config_to_broker(&cfg, &o.bc);
        o.workers = cfg.workers;
        o.max_connections = cfg.max_connections;
        log_set_level((enum log_level)log_level_parse(cfg.log_level));
    }
    /* Flags override the file: re-parse them over what the file gave. */
    struct serve_opts over = o;
    over.nurls = 0;
    if ((rc = parse(argc, argv, &over)))
        return rc;
    if (over.nurls) { /* -l replaces the file's listeners and their settings */
        for (unsigned i = 0; i < MAX_URLS; i++) {
            o.listener_anon[i] = -1;
            o.listener_password[i] = false;
            o.listener_idmatch[i] = 0;
            o.has_tls[i] = false;
        }
        o.nurls = over.nurls;
        memcpy(o.urls, over.urls, sizeof(o.urls));
    }
    o.bc = over.bc;
    o.workers = over.workers ? over.workers : o.workers;
    o.max_connections = over.max_connections ? over.max_connections : o.max_connections;
    if (over.log_level)
        log_set_level((enum log_level)log_level_parse(over.log_level));
    if (!o.workers) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o.workers = n > 0 ? (unsigned)n : 1;
    }
    if (!o.max_connections)
        o.max_connections = 100000;
    o.tls_flags = over.tls_flags;
    o.client_cert = over.client_cert;
    if (o.nurls == 0)
        o.urls[o.nurls++] = "tcp://0.0.0.0:1883";
    if (over.dev_pki && add_dev_pki(&o, over.dev_pki) < 0)
        return 1;
    rc = run(&o, &flags, &cfg);
    if (o.config)
        config_free(&cfg);
    return rc;
}
