/* see client_opts.h */
#include "client_opts.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "opts.h"

static const char *const tool_name[] = {"ward pub", "ward sub"};

static int bad(const struct client_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int bad(const struct client_opts *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", tool_name[o->tool]);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(%s --help lists the options)\n", tool_name[o->tool]);
    return EXIT_USAGE;
}

/* Appends one user property (0x26, key, value) in wire form. */
static int add_user_prop(struct opts *p, uint8_t *buf, size_t *len, size_t cap, const char *k,
                         const char *v)
{
    size_t kl = strlen(k), vl = strlen(v);
    if (kl > 65535 || vl > 65535 || *len + 5 + kl + vl > cap)
        return opts_fail(p, "%s", "too many user properties");
    uint8_t *b = buf + *len;
    *b++ = 0x26;
    *b++ = (uint8_t)(kl >> 8);
    *b++ = (uint8_t)kl;
    memcpy(b, k, kl);
    b += kl;
    *b++ = (uint8_t)(vl >> 8);
    *b++ = (uint8_t)vl;
    memcpy(b, v, vl);
    *len += 5 + kl + vl;
    return 0;
}

/* -D COMMAND user-property KEY VALUE (mosquitto's spelling). */
static int dash_d(struct opts *p, void *ctx, const char *const *a)
{
    struct client_opts *o = ctx;
    if (strcmp(a[1], "user-property") != 0)
        return opts_fail(p, "'%s': only user-property is supported", a[1]);
    if (strcasecmp(a[0], "CONNECT") == 0)
        return add_user_prop(p, o->connect_props, &o->connect_props_len, sizeof(o->connect_props),
                             a[2], a[3]);
    if (strcasecmp(a[0], "PUBLISH") == 0 && o->tool == TOOL_PUB)
        return add_user_prop(p, o->publish_props, &o->publish_props_len, sizeof(o->publish_props),
                             a[2], a[3]);
    return opts_fail(p, "'%s': only CONNECT%s is supported", a[0],
                     o->tool == TOOL_PUB ? " and PUBLISH" : "");
}

/* --user-property KEY VALUE: on the PUBLISH for pub, the CONNECT for sub. */
static int user_prop(struct opts *p, void *ctx, const char *const *a)
{
    struct client_opts *o = ctx;
    if (o->tool == TOOL_PUB)
        return add_user_prop(p, o->publish_props, &o->publish_props_len, sizeof(o->publish_props),
                             a[0], a[1]);
    return add_user_prop(p, o->connect_props, &o->connect_props_len, sizeof(o->connect_props), a[0],
                         a[1]);
}

static int add_topic(struct opts *p, void *ctx, const char *const *a)
{
    struct client_opts *o = ctx;
    if (o->ntopics == (o->tool == TOOL_PUB ? 1 : MAX_TOPICS))
        return opts_fail(p, "%s", o->tool == TOOL_PUB ? "one topic only" : "too many topics");
    o->topics[o->ntopics++] = a[0];
    return 0;
}

/* -m -f -l -s -n: the letters in the order of enum pub_source. */
static int set_source(struct opts *p, void *ctx, const char *const *a)
{
    static const char letters[] = "mflsn";
    struct client_opts *o = ctx;
    if (o->source != SRC_NONE)
        return opts_fail(p, "%s", "give only one of -m, -f, -l, -s, -n");
    o->source = (enum pub_source)(strchr(letters, p->cur->letter) - letters);
    o->message = a[0];
    return 0;
}

static int session_expiry(struct opts *p, void *ctx, const char *const *a)
{
    struct client_opts *o = ctx;
    uint64_t v;
    if (opts_uint(a[0], 0, 4294967295u, &v) < 0)
        return opts_fail(p, "'%s' is not a number from 0 to 4294967295", a[0]);
    o->cc.has_session_expiry = true;
    o->cc.session_expiry = (uint32_t)v;
    return 0;
}

static int will_payload(struct opts *p, void *ctx, const char *const *a)
{
    struct client_opts *o = ctx;
    o->cc.will_payload = (const uint8_t *)a[0];
    o->cc.will_len = strlen(a[0]);
    return 0;
}

static const struct opt_choice versions[] = {
    {"5", MQTT_V5},     {"mqttv5", MQTT_V5},     {"3.1.1", MQTT_V311},
    {"311", MQTT_V311}, {"mqttv311", MQTT_V311}, {"4", MQTT_V311},
    {NULL, 0},
};

#define PUB      (1u << TOOL_PUB)
#define SUB      (1u << TOOL_SUB)
#define AT(m)    OPT_AT(struct client_opts, m)
#define FN(f, n) .call = f, .nargs = n

/* The options of ward pub and ward sub, mosquitto_pub's and mosquitto_sub's
 * letters where they exist; .only marks those of one tool. */
static const struct opt table[] = {
    {"host", 'h', OPT_STRING, "HOST", AT(cc.host),
     .help = "broker host (default localhost; IPv6 as ::1)"},
    {"port", 'p', OPT_UINT, "PORT", AT(cc.port), .lo = 1, .hi = 65535,
     .help = "broker port (default 1883)"},
    {"topic", 't', OPT_CALL, "TOPIC", FN(add_topic, 1), .only = PUB, .help = "the topic"},
    {"topic", 't', OPT_CALL, "TOPIC", FN(add_topic, 1), .only = SUB,
     .help = "topic filter (repeatable)"},
    {"qos", 'q', OPT_UINT, "QOS", AT(qos), .hi = 2, .help = "0, 1 or 2 (default 0)"},
    {"id", 'i', OPT_STRING, "ID", AT(cc.client_id),
     .help = "client id (default: ward-pub-/ward-sub- and the pid)"},
    {"username", 'u', OPT_STRING, "USER", AT(cc.username), .help = "user name"},
    {"pw", 'P', OPT_STRING, "PASS", AT(cc.password), .help = "password"},
    {"protocol-version", 'V', OPT_CHOICE, "VERSION", AT(cc.version), .choices = versions,
     .help = "5 (default), 3.1.1 (also mqttv5, mqttv311, 311)"},
    {NULL, 'c', OPT_CLEAR, NULL, AT(cc.clean_start), .help = "keep the session (clean start off)"},
    {NULL, 'x', OPT_CALL, "SECONDS", FN(session_expiry, 1), .help = "session expiry interval (v5)"},
    {NULL, 'k', OPT_UINT, "SECONDS", AT(cc.keepalive), .hi = 65535,
     .help = "keep alive (default 60)"},
    {NULL, 'D', OPT_CALL, "CMD user-property KEY VALUE", FN(dash_d, 4), .only = PUB,
     .help = "v5 user property on CONNECT or PUBLISH"},
    {NULL, 'D', OPT_CALL, "CMD user-property KEY VALUE", FN(dash_d, 4), .only = SUB,
     .help = "v5 user property on CONNECT"},
    {"user-property", 0, OPT_CALL, "KEY VALUE", FN(user_prop, 2), .only = PUB,
     .help = "the same on PUBLISH"},
    {"user-property", 0, OPT_CALL, "KEY VALUE", FN(user_prop, 2), .only = SUB,
     .help = "the same on CONNECT"},
    {"will-topic", 0, OPT_STRING, "TOPIC", AT(cc.will_topic), .help = "last will: its topic"},
    {"will-payload", 0, OPT_CALL, "PAYLOAD", FN(will_payload, 1),
     .help = "its payload (default empty)"},
    {"will-qos", 0, OPT_UINT, "QOS", AT(cc.will_qos), .hi = 2, .help = "its QoS"},
    {"will-retain", 0, OPT_SET, NULL, AT(cc.will_retain), .help = "retain it"},
    {NULL, 'W', OPT_UINT, "SECONDS", AT(timeout_s), .lo = 1, .hi = 86400,
     .help = "give up after this long (exit 27)"},
    {NULL, 'd', OPT_SET, NULL, AT(cc.debug), .help = "print the packets sent and received"},
    {"help", 0, OPT_HELP, .help = "this help"},
    {.kind = OPT_SECTION, .only = PUB, .help = "the message (one of):"},
    {"message", 'm', OPT_CALL, "MSG", FN(set_source, 1), .only = PUB, .help = "the message"},
    {"file", 'f', OPT_CALL, "FILE", FN(set_source, 1), .only = PUB,
     .help = "the contents of FILE as one message"},
    {NULL, 'l', OPT_CALL, NULL, FN(set_source, 0), .only = PUB,
     .help = "each line of standard input as a message"},
    {NULL, 's', OPT_CALL, NULL, FN(set_source, 0), .only = PUB,
     .help = "all of standard input as one message"},
    {NULL, 'n', OPT_CALL, NULL, FN(set_source, 0), .only = PUB, .help = "an empty message"},
    {"retain", 'r', OPT_SET, NULL, AT(retain), .only = PUB, .help = "retain"},
    {"count", 'C', OPT_UINT, "COUNT", AT(count), .lo = 1, .hi = 1000000000, .only = SUB,
     .help = "exit after COUNT messages"},
    {NULL, 'v', OPT_SET, NULL, AT(verbose), .only = SUB, .help = "print \"topic payload\""},
    {NULL, 'R', OPT_SET, NULL, AT(no_retained), .only = SUB,
     .help = "skip retained messages sent on subscribe"},
    {"no-local", 0, OPT_SET, NULL, AT(no_local), .only = SUB, .help = "not my own messages (v5)"},
    {.kind = OPT_SECTION, .help = "TLS (--cafile, --capath, --cert or --tls turns it on):"},
    {"cafile", 0, OPT_STRING, "F", AT(tls.cafile), .help = "trust the CAs in F"},
    {"capath", 0, OPT_STRING, "D", AT(tls.capath), .help = "trust the CAs in directory D"},
    {"cert", 0, OPT_STRING, "F", AT(tls.certfile), .help = "client certificate (mTLS)"},
    {"key", 0, OPT_STRING, "F", AT(tls.keyfile), .help = "its private key"},
    {"key-password", 0, OPT_STRING, "P", AT(tls.key_password), .help = "the key's password"},
    {"tls", 0, OPT_SET, NULL, AT(use_tls), .help = "TLS with the system's CAs"},
    {"tls-version", 0, OPT_STRING, "V", AT(tls.min_version),
     .help = "minimum 1.2 (default) or 1.3"},
    {"ciphers", 0, OPT_STRING, "LIST", AT(tls.ciphers), .help = "TLS 1.2 cipher list"},
    {"servername", 0, OPT_STRING, "NAME", AT(tls.servername),
     .help = "SNI and the name the certificate must carry"},
    {"alpn", 0, OPT_STRING, "PROTO", AT(tls.alpn), .help = "ALPN protocol to offer (e.g. mqtt)"},
    {"insecure", 0, OPT_SET, NULL, AT(tls.insecure),
     .help = "do not check the server's host name (the chain is\nstill verified)"},
};

static int finish(struct client_opts *o)
{
    if (o->ntopics == 0)
        return bad(o, "%s", "a topic is required (-t)");
    if (o->tool == TOOL_PUB && o->source == SRC_NONE)
        return bad(o, "%s", "a message is required (-m, -f, -l, -s or -n)");
    if (!o->cc.client_id) {
        snprintf(o->id_buf, sizeof(o->id_buf), "ward-%s-%ld", o->tool == TOOL_PUB ? "pub" : "sub",
                 (long)getpid());
        o->cc.client_id = o->id_buf;
    }
    if (!o->cc.clean_start && !*o->cc.client_id)
        return bad(o, "%s", "-c needs a client id (-i)");
    /* A CA or a certificate turns TLS on, as with mosquitto_pub. */
    if (o->tls.cafile || o->tls.capath || o->tls.certfile)
        o->use_tls = true;
    if (o->cc.will_topic && !o->cc.will_payload)
        o->cc.will_payload = (const uint8_t *)"";
    o->cc.connect_user_props = (struct mqtt_bin){o->connect_props, (uint32_t)o->connect_props_len};
    /* A persistent v5 session without -x would end at once: keep it. */
    if (!o->cc.clean_start && o->cc.version == MQTT_V5 && !o->cc.has_session_expiry) {
        o->cc.has_session_expiry = true;
        o->cc.session_expiry = 0xFFFFFFFFu;
    }
    return 0;
}

static void defaults(struct client_opts *o, enum client_tool tool)
{
    memset(o, 0, sizeof(*o));
    o->tool = tool;
    o->source = SRC_NONE;
    o->cc.host = "localhost";
    o->cc.port = 1883;
    o->cc.version = MQTT_V5;
    o->cc.keepalive = 60;
    o->cc.clean_start = true;
    o->cc.timeout_ms = 10000;
}

/* see client_opts.h */
int client_opts_parse(struct client_opts *o, enum client_tool tool, int argc, char **argv)
{
    static const char *const usage[] = {
        "usage: ward pub [-h HOST] [-p PORT] -t TOPIC (-m MSG | -f FILE | -l | -s | -n) "
        "[options]\n",
        "usage: ward sub [-h HOST] [-p PORT] -t TOPIC [-t TOPIC ...] [options]\n"};
    struct opts p = {.prog = tool_name[tool],
                     .table = table,
                     .n = sizeof(table) / sizeof(table[0]),
                     .mask = 1u << tool,
                     .usage = usage[tool]};
    defaults(o, tool);
    int rc = opts_parse(&p, o, argc, argv, 1, NULL);
    return rc ? rc : finish(o);
}

/* see client_opts.h */
int client_opts_tls(struct client_opts *o)
{
    if (!o->use_tls)
        return 0;
    if (o->tls.keyfile && !o->tls.certfile)
        return bad(o, "--key needs --cert");
    if (o->tls.insecure)
        fprintf(stderr,
                "%s: --insecure: the server's host name is not checked (its "
                "certificate chain still is)\n",
                tool_name[o->tool]);
    char err[512];
    if (!(o->cc.tls = tls_client_new(&o->tls, err, sizeof(err)))) {
        fprintf(stderr, "%s: %s\n", tool_name[o->tool], err);
        return EXIT_REFUSED;
    }
    return 0;
}

/* see client_opts.h */
struct client *client_opts_start(struct client_opts **out, enum client_tool tool, int argc,
                                 char **argv, int *status)
{
    struct client_opts *o = calloc(1, sizeof(*o));
    *out = o;
    *status = EXIT_REFUSED;
    if (!o)
        return NULL;
    signal(SIGPIPE, SIG_IGN); /* a closed connection is an error to report */
    int rc = client_opts_parse(o, tool, argc, argv);
    if (rc == 0)
        rc = client_opts_tls(o);
    if (rc) {
        *status = rc < 0 ? 0 : rc;
        return NULL;
    }
    if (tool == TOOL_PUB && o->timeout_s)
        o->cc.timeout_ms = o->timeout_s * 1000;
    struct client_result res;
    struct client *c = client_connect(&o->cc, &res);
    if (!c)
        fprintf(stderr, "%s: %s:%u: %s\n", tool_name[tool], o->cc.host, o->cc.port, res.error);
    return c;
}

/* see client_opts.h */
void client_opts_end(struct client_opts *o, struct client *c)
{
    if (c) {
        client_disconnect(c, 0);
        client_free(c);
    }
    if (o)
        tls_client_free(o->cc.tls);
    free(o);
}
