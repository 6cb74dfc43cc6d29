/* `ward check -c FILE`: validate a configuration file and print what it
 * means; `ward check --print-reference`: the configuration reference. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "admin/apikey.h"
#include "admin_client.h"
#include "auth/acl.h"
#include "auth/passwd.h"
#include "client/client.h"
#include "commands.h"
#include "config/config.h"
#include "core/clock.h"
#include "net/tcp.h"
#include "opts.h"
#include "privs.h"
#include "serve_bridges.h"

/* The password file and the ACL are part of the configuration: a file that
 * `ward serve` would refuse fails the check too. */
static int check_auth_files(const struct ward_config *cfg)
{
    char err[4096];
    int rc = 0;
    if (cfg->password_file) {
        struct passwd_db db;
        passwd_db_init(&db);
        if (passwd_load(&db, cfg->password_file, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", err);
            rc = -1;
        }
        passwd_db_free(&db);
    }
    if (cfg->acl_file) {
        struct acl acl;
        if (acl_load(&acl, cfg->acl_file, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", err);
            rc = -1;
        }
        acl_free(&acl);
    }
    if (cfg->http.api_keys_file) {
        struct apikey_db keys;
        apikey_db_init(&keys);
        if (apikey_load(&keys, cfg->http.api_keys_file, false, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", err);
            rc = -1;
        }
        apikey_db_free(&keys);
    }
    return rc;
}

/* system.user and system.group must exist here, or `ward serve` started
 * as root would refuse to start (whether the user can read every file is
 * checked by `ward serve` itself, which needs root to switch to it). */
static int check_user(const struct ward_config *cfg)
{
    char err[256];
    struct privs_target t;
    if (!cfg->user)
        return 0;
    if (privs_lookup(cfg->user, NULL, &t, err, sizeof(err)) < 0) {
        fprintf(stderr, "system.user: %s\n", err);
        return -1;
    }
    if (cfg->group && privs_lookup(cfg->user, cfg->group, &t, err, sizeof(err)) < 0) {
        fprintf(stderr, "system.group: %s\n", err);
        return -1;
    }
    return 0;
}

/* Secrets never reach the output: what `ward check` prints is often pasted
 * into tickets and chat. A shallow copy of the configuration shows each
 * secret that is set as "******"; whether one is set stays visible. */
static int print_masked(const struct ward_config *cfg, FILE *out)
{
    static char mask[] = "******";
    struct ward_config shown = *cfg;
    struct cfg_listener *ls = calloc(cfg->nlisteners + 1, sizeof(*ls));
    struct cfg_bridge *bs = calloc(cfg->nbridges + 1, sizeof(*bs));
    if (!ls || !bs) {
        free(ls);
        free(bs);
        fprintf(stderr, "ward check: out of memory\n");
        return -1;
    }
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        ls[i] = cfg->listeners[i];
        ls[i].key_password = ls[i].key_password ? mask : NULL;
    }
    for (size_t i = 0; i < cfg->nbridges; i++) {
        bs[i] = cfg->bridges[i];
        bs[i].password = bs[i].password ? mask : NULL;
        bs[i].ssl.key_password = bs[i].ssl.key_password ? mask : NULL;
    }
    shown.listeners = ls;
    shown.bridges = bs;
    shown.http.key_password = cfg->http.key_password ? mask : NULL;
    shown.http.nanomq_password = cfg->http.nanomq_password ? mask : NULL;
    config_print(&shown, out);
    free(ls);
    free(bs);
    return 0;
}

struct status_opts {
    bool on;
    const char *host, *user, *pass;
    uint16_t port;
    const char *url, *key, *key_file, *data_dir, *cafile; /* the admin HTTP API */
};

/* The first plain TCP listener of the file, as a place to connect to. */
static void default_target(const struct ward_config *cfg, char *host, size_t hlen, uint16_t *port)
{
    snprintf(host, hlen, "127.0.0.1");
    *port = 1883;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct cfg_listener *l = &cfg->listeners[i];
        char scheme[32], h[256], err[256];
        uint16_t p;
        if (l->kind != CFG_LISTENER_TCP || !l->enable || !l->bind ||
            tcp_parse_url(l->bind, scheme, sizeof(scheme), h, sizeof(h), &p, err, sizeof(err)) < 0)
            continue;
        if (*h && strcmp(h, "0.0.0.0") != 0 && strcmp(h, "::") != 0)
            snprintf(host, hlen, "%s", h);
        *port = p;
        return;
    }
}

/* Gathers "NAME/KEY = VALUE" lines from $SYS/broker/bridge/ for a few
 * seconds. Retained values come first, then each new publication: the last
 * value of each key is kept. Returns the number of lines. */
static size_t collect_status(struct client *c, char (*lines)[400], size_t cap)
{
    struct client_message m;
    size_t n = 0;
    uint64_t deadline = clock_mono_ms() + 3000;
    while (clock_mono_ms() < deadline && client_next(c, &m, 400) == 1 && m.topic.len > 19) {
        char key[200];
        snprintf(key, sizeof(key), "%.*s = ", (int)m.topic.len - 19, (const char *)m.topic.p + 19);
        size_t i = 0;
        while (i < n && strncmp(lines[i], key, strlen(key)) != 0)
            i++;
        if (i == n && n == cap)
            continue;
        snprintf(lines[i], 400, "%s%.*s", key, (int)m.payload.len, (const char *)m.payload.p);
        n += i == n;
    }
    return n;
}

/* Prints $SYS/broker/bridge/NAME/... as the running broker publishes it
 * (retained, so one subscription brings everything at once). */
static int print_status(const struct ward_config *cfg, const struct status_opts *so)
{
    char host[256];
    uint16_t port;
    default_target(cfg, host, sizeof(host), &port);
    struct client_config cc = {.host = so->host ? so->host : host,
                               .port = so->port ? so->port : port,
                               .version = MQTT_V5,
                               .client_id = "",
                               .username = so->user,
                               .password = so->pass,
                               .clean_start = true,
                               .timeout_ms = 5000};
    struct client_result res;
    struct client *c = client_connect(&cc, &res);
    if (!c) {
        fprintf(stderr, "ward check: cannot ask %s:%u for the bridges' status: %s\n", cc.host,
                cc.port, res.error);
        return 1;
    }
    const char *filter = "$SYS/broker/bridge/#";
    uint8_t code = 0;
    if (client_subscribe(c, &filter, 1, 0, 0, &code) < 0 || code >= 0x80) {
        fprintf(stderr, "ward check: $SYS/broker/bridge/# refused: %s\n", client_error(c));
        client_free(c);
        return 1;
    }
    printf("# bridges as %s:%u reports them ($SYS/broker/bridge/NAME/...):\n", cc.host, cc.port);
    static char lines[256][400];
    size_t n = collect_status(c, lines, 256);
    for (size_t i = 0; i < n; i++)
        printf("%s\n", lines[i]);
    if (n == 0)
        printf("(nothing yet: no bridges running, or no $SYS publication since start)\n");
    client_disconnect(c, 0);
    client_free(c);
    return 0;
}

/* With an admin HTTP server (http.bind, NanoMQ's http_server, or --url):
 * `ward status`'s summary from its API; then the bridges from $SYS. */
static int api_status(const char *path, const struct ward_config *cfg, const struct status_opts *so)
{
    if (!so->url && !cfg->http.bind && !cfg->http.nanomq_port)
        return -1;
    struct admin_target t = {.url = so->url,
                             .key = so->key,
                             .key_file = so->key_file,
                             .data_dir = so->data_dir,
                             .config = path};
    char url[512], key[512], err[1024];
    if (admin_client_resolve(&t, url, sizeof(url), key, sizeof(key), err, sizeof(err)) < 0) {
        fprintf(stderr, "ward check: %s\n", err);
        return 1;
    }
    struct admin_client ac = {.url = url, .key = key, .cafile = so->cafile, .timeout_ms = 5000};
    printf("# the running broker, from its admin API:\n");
    int rc = admin_client_summary(&ac, false, stdout);
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

/* Validates the file at path, prints it unless quiet, and asks the broker if
 * so->on. */
static int check_file(const char *path, const struct status_opts *so, bool quiet)
{
    struct ward_config cfg;
    struct cfg_errors errs;
    if (config_load(path, &cfg, &errs) != 0) {
        for (size_t i = 0; i < errs.count; i++)
            fprintf(stderr, "%s\n", errs.msgs[i]);
        fprintf(stderr, "ward check: %s: %zu error%s\n", path, errs.count,
                errs.count == 1 ? "" : "s");
        cfg_errors_free(&errs);
        return 1;
    }
    cfg_errors_free(&errs);
    if (check_auth_files(&cfg) < 0 || check_user(&cfg) < 0 || serve_bridges_check(&cfg) < 0) {
        config_free(&cfg);
        return 1;
    }
    int rc = 0;
    if (!quiet) {
        printf("# %s is valid; effective configuration with defaults filled in:\n", path);
        rc = print_masked(&cfg, stdout) < 0 ? 1 : 0;
    }
    if (rc == 0 && so->on) {
        int api = api_status(path, &cfg, so);
        rc = api > 0 ? api : print_status(&cfg, so);
    }
    config_free(&cfg);
    return rc;
}

struct check_cli {
    const char *path;
    bool reference;
    bool man;   /* --print-reference as ward.conf(5) */
    bool quiet; /* -c: only the status and the errors (ExecReload, postinst) */
    struct status_opts so;
};

#define AT(m) OPT_AT(struct check_cli, m)

static const struct opt table[] = {
    {"config", 'c', OPT_STRING, "FILE", AT(path),
     .help = "validate FILE and print the effective configuration\n(secrets as ******)"},
    {"quiet", 'q', OPT_SET, NULL, AT(quiet),
     .help = "with -c: print only errors; the exit status tells\n(ward.service's ExecReload)"},
    {"status", 0, OPT_SET, NULL, AT(so.on),
     .help = "also ask the running broker: its admin HTTP API\n(as `ward status`) when the file "
             "has one, and\neach bridge's state ($SYS)"},
    {"host", 'h', OPT_STRING, "HOST", AT(so.host),
     .help = "--status: the broker (default: the file's first TCP listener)"},
    {"port", 'p', OPT_UINT, "PORT", AT(so.port), .lo = 1, .hi = 65535,
     .help = "--status: its port"},
    {"username", 'u', OPT_STRING, "USER", AT(so.user), .help = "--status: user name"},
    {"pw", 'P', OPT_STRING, "PASS", AT(so.pass), .help = "--status: password"},
    {"url", 0, OPT_STRING, "URL", AT(so.url),
     .help = "--status: the admin HTTP API (default: the file's\nhttp.bind)"},
    {"key", 'k', OPT_STRING, "KEY", AT(so.key), .help = "--status: an API key"},
    {"key-file", 0, OPT_STRING, "F", AT(so.key_file),
     .help = "--status: a key file (default: DATA/admin.key)"},
    {"data", 0, OPT_STRING, "DIR", AT(so.data_dir),
     .help = "--status: the broker's data directory"},
    {"cafile", 0, OPT_STRING, "F", AT(so.cafile), .help = "--status over https: the CA"},
    {"print-reference", 0, OPT_SET, NULL, AT(reference),
     .help = "print docs/configuration.md (every key, type, default)"},
    {"man", 0, OPT_SET, NULL, AT(man),
     .help = "with --print-reference: as the ward.conf(5) man page"},
    {"help", 0, OPT_HELP, .help = "this help"},
};

int cmd_check(int argc, char **argv)
{
    struct check_cli cli = {0};
    struct opts p = {.prog = "ward check",
                     .table = table,
                     .n = sizeof(table) / sizeof(table[0]),
                     .usage =
                         "usage: ward check -c FILE [-q] [--status [-h HOST] [-p PORT] [-u USER] "
                         "[-P PASS]]\n"
                         "       ward check --print-reference [--man]\n"};
    if (argc == 2 && strcmp(argv[1], "-h") == 0) { /* -h alone: help, as before */
        opts_help(&p, stdout);
        return 0;
    }
    int rc = opts_parse(&p, &cli, argc, argv, 1, NULL);
    if (rc)
        return rc == OPTS_HELP ? 0 : rc;
    if (cli.reference && cli.man)
        return config_print_reference_man(stdout) == 0 ? 0 : 1;
    if (cli.reference) {
        config_print_reference(stdout);
        return 0;
    }
    if (!cli.path)
        return opts_fail(&p, "%s", "a configuration file is needed (-c FILE)");
    return check_file(cli.path, &cli.so, cli.quiet);
}
