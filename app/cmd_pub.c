/* `ward pub`: publish one message, a file, or standard input line by line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_opts.h"
#include "commands.h"
#include "core/vec.h"

struct pub_run {
    struct client_opts *o;
    struct client *c;
    struct mqtt_props props;
};

/* Publishes one payload; returns 0, or an exit status. */
static int send_one(struct pub_run *r, const void *data, size_t len)
{
    uint8_t reason;
    if (client_publish(r->c, r->o->topics[0], data, len, r->o->qos, r->o->retain, &r->props,
                       &reason) < 0) {
        fprintf(stderr, "ward pub: %s\n", client_error(r->c));
        return EXIT_REFUSED;
    }
    if (reason >= 0x80) {
        fprintf(stderr, "ward pub: the broker refused the message: %s (0x%02x)\n",
                mqtt_rc_name(reason), reason);
        return EXIT_REFUSED;
    }
    return 0;
}

static int read_all(FILE *f, const char *name, char **out, size_t *len)
{
    size_t cap = 0;
    *out = NULL;
    *len = 0;
    for (;;) {
        if (*len == cap && !ward_ok(VEC_RESERVE(*out, cap, *len + 65536))) {
            fprintf(stderr, "ward pub: %s: out of memory\n", name);
            return EXIT_REFUSED;
        }
        size_t n = fread(*out + *len, 1, cap - *len, f);
        *len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        fprintf(stderr, "ward pub: %s: %s\n", name, strerror(errno));
        return EXIT_REFUSED;
    }
    return 0;
}

static int send_lines(struct pub_run *r)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, stdin)) >= 0) {
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        rc = send_one(r, line, (size_t)n);
    }
    free(line);
    return rc;
}

static int send_file(struct pub_run *r, const char *path)
{
    FILE *f = path ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "ward pub: %s: %s\n", path, strerror(errno));
        return EXIT_REFUSED;
    }
    char *data;
    size_t len;
    int rc = read_all(f, path ? path : "standard input", &data, &len);
    if (path)
        fclose(f);
    if (rc == 0)
        rc = send_one(r, data, len);
    free(data);
    return rc;
}

static int publish(struct pub_run *r)
{
    switch (r->o->source) {
    case SRC_MESSAGE:
        return send_one(r, r->o->message, strlen(r->o->message));
    case SRC_EMPTY:
        return send_one(r, "", 0);
    case SRC_LINES:
        return send_lines(r);
    case SRC_FILE:
        return send_file(r, r->o->message);
    case SRC_STDIN:
        return send_file(r, NULL);
    default:
        return EXIT_USAGE;
    }
}

int cmd_pub(int argc, char **argv)
{
    int rc;
    struct pub_run r = {0};
    r.c = client_opts_start(&r.o, TOOL_PUB, argc, argv, &rc);
    if (r.c) {
        r.props.user_raw = (struct mqtt_bin){r.o->publish_props, (uint32_t)r.o->publish_props_len};
        rc = publish(&r);
    }
    client_opts_end(r.o, r.c);
    return rc;
}
