/* Command-line options shared by `ward pub` and `ward sub`, in the spirit
 * of mosquitto_pub/mosquitto_sub (same letters where they exist). */
#ifndef WARD_APP_CLIENT_OPTS_H
#define WARD_APP_CLIENT_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "client/client.h"
#include "tls/tls.h"

#define MAX_TOPICS 64

enum client_tool { TOOL_PUB, TOOL_SUB };

enum pub_source { SRC_MESSAGE, SRC_FILE, SRC_LINES, SRC_STDIN, SRC_EMPTY, SRC_NONE };

struct client_opts {
    enum client_tool tool;
    struct client_config cc;
    const char *topics[MAX_TOPICS];
    size_t ntopics;
    uint8_t qos;
    bool retain;
    enum pub_source source;
    const char *message; /* -m, or the file name for -f */
    int count;           /* sub -C: 0 = no limit */
    int timeout_s;       /* -W: 0 = none */
    bool verbose;        /* sub -v: "topic payload" */
    bool no_retained;    /* sub -R */
    bool no_local;       /* sub --no-local (v5) */
    bool quiet;
    /* v5 user properties in wire form, per packet */
    uint8_t connect_props[4096], publish_props[4096];
    size_t connect_props_len, publish_props_len;
    char id_buf[64];
    /* TLS: on when a CA, certificate or --tls is given (like mosquitto_pub) */
    bool use_tls;
    struct tls_client_config tls;
};

/* Makes the TLS client context the options ask for, into o->cc.tls.
 * Returns 0, or an exit status after printing why. */
int client_opts_tls(struct client_opts *o);

/* The common start of pub and sub: parses argv, sets up TLS, connects.
 * Returns the connected client with *out allocated, or NULL with *status
 * the exit status (0 after --help). */
struct client *client_opts_start(struct client_opts **out, enum client_tool tool, int argc,
                                 char **argv, int *status);
/* Disconnects and frees what client_opts_start made. */
void client_opts_end(struct client_opts *o, struct client *c);

/* Parses argv (after the subcommand name). Returns 0, or the exit status to
 * end with (2 for usage errors, 0 after --help). */
int client_opts_parse(struct client_opts *o, enum client_tool tool, int argc, char **argv);

/* ward sub's output for one message: the payload as it is (binary too),
 * after "TOPIC " with -v, then a newline. */
void sub_print_message(FILE *out, bool verbose, const struct client_message *m);

/* Exit statuses, as mosquitto_sub uses them. */
#define EXIT_REFUSED 1
#define EXIT_USAGE   2
#define EXIT_TIMEOUT 27

#endif
