/* `ward status`: a running broker's state from its admin HTTP API, as a
 * short summary for people or one JSON object (--json); `ward check
 * --status` prints the same summary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "admin_client.h"
#include "commands.h"
#include "opts.h"

/* What the summary shows, in order: the API's answers whose scalars are
 * printed as "section.key: value" (arrays as their length). A path the
 * broker does not serve (404) is left out. */
static const struct section {
    const char *name, *path;
} sections[] = {
    {"broker", "/api/v4/brokers"},
    {"stats", "/api/v4/stats"},
    {"listeners", "/api/v4/listeners"},
};

/* Prints the scalars of a JSON text, their keys joined by '.', objects up
 * to three deep; an array shows as its number of elements. Not a
 * validating parser: the text comes from the broker's JSON writer. */
struct flat {
    const char *p, *end;
    FILE *out;
};

static void skip_ws(struct flat *f)
{
    while (f->p < f->end && strchr(" \t\r\n", *f->p))
        f->p++;
}

/* A string token (p at '"'); its raw text, escapes kept. */
static size_t str_tok(struct flat *f, const char **s)
{
    const char *start = ++f->p;
    while (f->p < f->end && *f->p != '"')
        f->p += *f->p == '\\' && f->p + 1 < f->end ? 2 : 1;
    *s = start;
    size_t n = (size_t)(f->p - start);
    if (f->p < f->end)
        f->p++;
    return n;
}

static void value(struct flat *f, const char *key, unsigned depth);

static void skip_value(struct flat *f)
{
    int nest = 0;
    do {
        skip_ws(f);
        if (f->p >= f->end)
            return;
        const char *s;
        if (*f->p == '"') {
            str_tok(f, &s);
            continue;
        }
        nest += *f->p == '{' || *f->p == '[';
        nest -= *f->p == '}' || *f->p == ']';
        f->p++;
    } while (nest > 0);
}

static void array(struct flat *f, const char *key)
{
    size_t n = 0;
    f->p++;
    skip_ws(f);
    while (f->p < f->end && *f->p != ']') {
        skip_value(f);
        n++;
        skip_ws(f);
        if (f->p < f->end && *f->p == ',')
            f->p++;
        skip_ws(f);
    }
    f->p += f->p < f->end;
    fprintf(f->out, "  %s: %zu\n", key, n);
}

static void object(struct flat *f, const char *key, unsigned depth)
{
    f->p++;
    for (;;) {
        skip_ws(f);
        if (f->p >= f->end || *f->p == '}') {
            f->p += f->p < f->end;
            return;
        }
        if (*f->p == ',') {
            f->p++;
            continue;
        }
        const char *k;
        size_t kn = *f->p == '"' ? str_tok(f, &k) : 0;
        if (!kn) {
            f->p = f->end;
            return;
        }
        skip_ws(f);
        f->p += f->p < f->end && *f->p == ':';
        char sub[256];
        snprintf(sub, sizeof(sub), "%s%s%.*s", key, *key ? "." : "", (int)kn, k);
        if (depth >= 3)
            skip_value(f);
        else
            value(f, sub, depth + 1);
    }
}

static void value(struct flat *f, const char *key, unsigned depth)
{
    skip_ws(f);
    if (f->p >= f->end)
        return;
    if (*f->p == '{')
        return object(f, key, depth);
    if (*f->p == '[')
        return array(f, key);
    const char *s;
    size_t n;
    if (*f->p == '"') {
        n = str_tok(f, &s);
    } else {
        s = f->p;
        while (f->p < f->end && !strchr(",}] \t\r\n", *f->p))
            f->p++;
        n = (size_t)(f->p - s);
    }
    fprintf(f->out, "  %s: %.*s\n", key, (int)(n > 200 ? 200 : n), s);
}

static void print_flat(const struct buf *body, const char *name, FILE *out)
{
    struct flat f = {(const char *)buf_head(body), (const char *)buf_head(body) + buf_len(body),
                     out};
    value(&f, name, 0);
}

/* GET path; -1 unreachable, else the status. */
static int get(const struct admin_client *ac, const char *path, struct buf *body, char *err,
               size_t errlen)
{
    int status = 0;
    return admin_client_get(ac, path, &status, body, err, errlen) < 0 ? -1 : status;
}

static void json_sections(const struct admin_client *ac, FILE *out)
{
    struct buf body;
    buf_init(&body, 0);
    char err[512];
    for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
        if (get(ac, sections[i].path, &body, err, sizeof(err)) != 200 || buf_len(&body) == 0)
            continue;
        fprintf(out, ",\"%s\":%.*s", sections[i].name, (int)buf_len(&body),
                (const char *)buf_head(&body));
    }
    buf_free(&body);
}

/* see admin_client.h */
int admin_client_summary(const struct admin_client *ac, bool json, FILE *out)
{
    struct buf body;
    buf_init(&body, 0);
    char err[512];
    int health = get(ac, "/healthz", &body, err, sizeof(err));
    int ready = health < 0 ? -1 : get(ac, "/readyz", &body, err, sizeof(err));
    int rc = health == 401 || health == 403 || ready == 401 || ready == 403 ? 3
             : ready == 200                                                 ? 0
                                                                            : 1;
    if (json) {
        fprintf(out, "{\"url\":\"%s\",\"reachable\":%s,\"healthy\":%s,\"ready\":%s", ac->url,
                health < 0 ? "false" : "true", health == 200 ? "true" : "false",
                ready == 200 ? "true" : "false");
        if (rc == 0)
            json_sections(ac, out);
        fprintf(out, "}\n");
    } else if (health < 0) {
        fprintf(out, "ward at %s: unreachable: %s\n", ac->url, err);
    } else {
        fprintf(out, "ward at %s: %s\n", ac->url,
                rc == 3        ? "refused: a key with the read scope is needed (--key, --key-file)"
                : rc == 0      ? "alive, ready"
                : ready == 503 ? "alive, not ready (starting or shutting down)"
                               : "alive, readiness unknown");
        for (size_t i = 0; rc == 0 && i < sizeof(sections) / sizeof(sections[0]); i++)
            if (get(ac, sections[i].path, &body, err, sizeof(err)) == 200)
                print_flat(&body, sections[i].name, out);
    }
    buf_free(&body);
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
