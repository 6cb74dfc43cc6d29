/* A small blocking HTTP/1.1 client for the admin API (`ward status`,
 * `ward check --status`): one GET with a key, over http:// or https://. */
#ifndef WARD_APP_ADMIN_CLIENT_H
#define WARD_APP_ADMIN_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/buf.h"

struct admin_client {
    const char *url;                /* "http://127.0.0.1:8081" or "https://..." */
    const char *key;                /* sent as Bearer; NULL: none */
    const char *cafile;             /* https: the CA that signed the server (NULL: the system's) */
    const char *certfile, *keyfile; /* https with a client certificate */
    bool insecure;                  /* https: skip the host name check */
    int timeout_ms;
};

/* GET path: fills *status and body (bounded). 0, or -1 with the cause in
 * err (cannot connect, TLS, malformed answer, timeout). */
int admin_client_get(const struct admin_client *ac, const char *path, int *status, struct buf *body,
                     char *err, size_t errlen);

/* Where `ward status` finds the broker and its key, in order: the flags;
 * a key file (KEY on its first line, the URL on its second: what the
 * broker writes as DATA/admin.key); a configuration file's http.bind and
 * persistence directory. url and key are filled (key "" when none). 0, or
 * -1 with the cause in err. */
struct admin_target {
    const char *url, *key, *key_file, *data_dir, *config;
};
int admin_client_resolve(const struct admin_target *t, char *url, size_t ucap, char *key,
                         size_t kcap, char *err, size_t errlen);

/* Prints the short summary (or --json: one JSON object) of the broker at
 * ac->url on out. Returns the exit status: 0 ready, 1 not ready or
 * unreachable, 3 refused (401/403). */
int admin_client_summary(const struct admin_client *ac, bool json, FILE *out);

#endif
