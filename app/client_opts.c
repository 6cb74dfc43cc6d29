/* see client_opts.h */
#include "client_opts.h"

#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const tool_name[] = {"ward pub", "ward sub"};

static void usage(const struct client_opts *o, FILE *out)
{
    bool pub = o->tool == TOOL_PUB;
    fprintf(out, "usage: %s [-h HOST] [-p PORT] -t TOPIC%s [options]\n", tool_name[o->tool],
            pub ? " (-m MSG | -f FILE | -l | -s | -n)" : " [-t TOPIC ...]");
    fprintf(out,
            "  -h HOST            broker host (default localhost; IPv6 as ::1)\n"
            "  -p PORT            broker port (default 1883)\n"
            "  -t TOPIC           topic%s\n"
            "  -q QOS             0, 1 or 2 (default 0)\n"
            "  -i ID              client id (default: ward-pub-/ward-sub- and the pid)\n"
            "  -u USER, -P PASS   user name and password\n"
            "  -V VERSION         5 (default), 3.1.1 (also mqttv5, mqttv311, 311)\n"
            "  -c                 keep the session (clean start off)\n"
            "  -x SECONDS         session expiry interval (v5)\n"
            "  -k SECONDS         keep alive (default 60)\n"
            "  -D CMD user-property KEY VALUE   v5 user property on CONNECT%s\n"
            "  --user-property KEY VALUE        the same on %s\n"
            "  --will-topic T --will-payload P --will-qos Q --will-retain\n"
            "  -W SECONDS         give up after this long (exit 27)\n"
            "  --cafile F, --capath D   trust these CAs (turns TLS on)\n"
            "  --cert F --key F [--key-password P]   client certificate (mTLS)\n"
            "  --tls              TLS with the system's CAs\n"
            "  --tls-version V    minimum 1.2 (default) or 1.3; --ciphers LIST\n"
            "  --servername NAME  SNI and the name the certificate must carry\n"
            "  --alpn PROTO       ALPN protocol to offer (e.g. mqtt)\n"
            "  --insecure         do not check the server's host name (the chain is\n"
            "                     still verified)\n"
            "  -d                 print the packets sent and received\n",
            pub ? "" : " filter (repeatable)", pub ? " or PUBLISH" : "",
            pub ? "PUBLISH" : "CONNECT");
    if (pub)
        fprintf(out, "  -m MSG             the message\n"
                     "  -f FILE            the contents of FILE as one message\n"
                     "  -l                 each line of standard input as a message\n"
                     "  -s                 all of standard input as one message\n"
                     "  -n                 an empty message\n"
                     "  -r                 retain\n");
    else
        fprintf(out, "  -C COUNT           exit after COUNT messages\n"
                     "  -v                 print \"topic payload\"\n"
                     "  -R                 skip retained messages sent on subscribe\n"
                     "  --no-local         not my own messages (v5)\n");
}

enum {
    OPT_WILL_TOPIC = 256,
    OPT_WILL_PAYLOAD,
    OPT_WILL_QOS,
    OPT_WILL_RETAIN,
    OPT_USER_PROP,
    OPT_NO_LOCAL,
    OPT_HELP,
    OPT_CAFILE,
    OPT_CAPATH,
    OPT_CERT,
    OPT_KEY,
    OPT_KEYPW,
    OPT_TLS,
    OPT_TLSVER,
    OPT_CIPHERS,
    OPT_SNI,
    OPT_ALPN,
    OPT_INSECURE,
};

static const struct option long_opts[] = {
    {"host", required_argument, NULL, 'h'},
    {"port", required_argument, NULL, 'p'},
    {"topic", required_argument, NULL, 't'},
    {"qos", required_argument, NULL, 'q'},
    {"id", required_argument, NULL, 'i'},
    {"username", required_argument, NULL, 'u'},
    {"pw", required_argument, NULL, 'P'},
    {"protocol-version", required_argument, NULL, 'V'},
    {"message", required_argument, NULL, 'm'},
    {"file", required_argument, NULL, 'f'},
    {"retain", no_argument, NULL, 'r'},
    {"count", required_argument, NULL, 'C'},
    {"will-topic", required_argument, NULL, OPT_WILL_TOPIC},
    {"will-payload", required_argument, NULL, OPT_WILL_PAYLOAD},
    {"will-qos", required_argument, NULL, OPT_WILL_QOS},
    {"will-retain", no_argument, NULL, OPT_WILL_RETAIN},
    {"user-property", required_argument, NULL, OPT_USER_PROP},
    {"no-local", no_argument, NULL, OPT_NO_LOCAL},
    {"help", no_argument, NULL, OPT_HELP},
    {"cafile", required_argument, NULL, OPT_CAFILE},
    {"capath", required_argument, NULL, OPT_CAPATH},
    {"cert", required_argument, NULL, OPT_CERT},
    {"key", required_argument, NULL, OPT_KEY},
    {"key-password", required_argument, NULL, OPT_KEYPW},
    {"tls", no_argument, NULL, OPT_TLS},
    {"tls-version", required_argument, NULL, OPT_TLSVER},
    {"ciphers", required_argument, NULL, OPT_CIPHERS},
    {"servername", required_argument, NULL, OPT_SNI},
    {"alpn", required_argument, NULL, OPT_ALPN},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {NULL, 0, NULL, 0},
};

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

static int number(const struct client_opts *o, const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return bad(o, "'%s' is not a number in range", s);
    *out = v;
    return 0;
}

/* Appends one user property (0x26, key, value) in wire form. */
static int add_user_prop(const struct client_opts *o, uint8_t *buf, size_t *len, size_t cap,
                         const char *k, const char *v)
{
    size_t kl = strlen(k), vl = strlen(v);
    if (*len + 5 + kl + vl > cap || kl > 65535 || vl > 65535)
        return bad(o, "%s", "too many user properties");
    uint8_t *p = buf + *len;
    *p++ = 0x26;
    *p++ = (uint8_t)(kl >> 8);
    *p++ = (uint8_t)kl;
    memcpy(p, k, kl);
    p += kl;
    *p++ = (uint8_t)(vl >> 8);
    *p++ = (uint8_t)vl;
    memcpy(p, v, vl);
    *len += 5 + kl + vl;
    return 0;
}

static int set_version(struct client_opts *o, const char *v)
{
    static const struct {
        const char *name;
        uint8_t version;
    } names[] = {{"5", MQTT_V5},     {"mqttv5", MQTT_V5},     {"3.1.1", MQTT_V311},
                 {"311", MQTT_V311}, {"mqttv311", MQTT_V311}, {"4", MQTT_V311}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(v, names[i].name) == 0) {
            o->cc.version = names[i].version;
            return 0;
        }
    return bad(o, "unknown protocol version '%s' (5 or 3.1.1)", v);
}

static int set_source(struct client_opts *o, enum pub_source s, const char *arg)
{
    if (o->tool != TOOL_PUB)
        return bad(o, "%s", "message options are for 'ward pub'");
    if (o->source != SRC_NONE)
        return bad(o, "%s", "give only one of -m, -f, -l, -s, -n");
    o->source = s;
    o->message = arg;
    return 0;
}

/* -D COMMAND user-property KEY VALUE: getopt gives COMMAND, the other three
 * follow it in argv. */
static int dash_d(struct client_opts *o, int argc, char **argv)
{
    const char *cmd = optarg;
    if (optind + 2 >= argc || strcmp(argv[optind], "user-property") != 0)
        return bad(o, "%s", "-D takes: COMMAND user-property KEY VALUE");
    const char *k = argv[optind + 1], *v = argv[optind + 2];
    optind += 3;
    if (strcasecmp(cmd, "CONNECT") == 0)
        return add_user_prop(o, o->connect_props, &o->connect_props_len, sizeof(o->connect_props),
                             k, v);
    if (strcasecmp(cmd, "PUBLISH") == 0 && o->tool == TOOL_PUB)
        return add_user_prop(o, o->publish_props, &o->publish_props_len, sizeof(o->publish_props),
                             k, v);
    return bad(o, "-D %s: only CONNECT (and PUBLISH for ward pub) are supported", cmd);
}

static int one(struct client_opts *o, int ch, int argc, char **argv)
{
    long n;
    int rc = 0;
    switch (ch) {
    case 'h':
        o->cc.host = optarg;
        break;
    case 'p':
        if (!(rc = number(o, optarg, 1, 65535, &n)))
            o->cc.port = (uint16_t)n;
        break;
    case 't':
        if (o->ntopics == (o->tool == TOOL_PUB ? 1 : MAX_TOPICS))
            return bad(o, "%s", o->tool == TOOL_PUB ? "one topic only" : "too many topics");
        o->topics[o->ntopics++] = optarg;
        break;
    case 'q':
        if (!(rc = number(o, optarg, 0, 2, &n)))
            o->qos = (uint8_t)n;
        break;
    case 'i':
        o->cc.client_id = optarg;
        break;
    case 'u':
        o->cc.username = optarg;
        break;
    case 'P':
        o->cc.password = optarg;
        break;
    case 'V':
        return set_version(o, optarg);
    case 'c':
        o->cc.clean_start = false;
        break;
    case 'x':
        if (!(rc = number(o, optarg, 0, 4294967295L, &n))) {
            o->cc.has_session_expiry = true;
            o->cc.session_expiry = (uint32_t)n;
        }
        break;
    case 'k':
        if (!(rc = number(o, optarg, 0, 65535, &n)))
            o->cc.keepalive = (uint16_t)n;
        break;
    case 'm':
        return set_source(o, SRC_MESSAGE, optarg);
    case 'f':
        return set_source(o, SRC_FILE, optarg);
    case 'l':
        return set_source(o, SRC_LINES, NULL);
    case 's':
        return set_source(o, SRC_STDIN, NULL);
    case 'n':
        return set_source(o, SRC_EMPTY, NULL);
    case 'r':
        o->retain = true;
        break;
    case 'C':
        if (!(rc = number(o, optarg, 1, 1000000000, &n)))
            o->count = (int)n;
        break;
    case 'v':
        o->verbose = true;
        break;
    case 'R':
        o->no_retained = true;
        break;
    case 'W':
        if (!(rc = number(o, optarg, 1, 86400, &n)))
            o->timeout_s = (int)n;
        break;
    case 'd':
        o->cc.debug = true;
        break;
    case 'D':
        return dash_d(o, argc, argv);
    case OPT_WILL_TOPIC:
        o->cc.will_topic = optarg;
        break;
    case OPT_WILL_PAYLOAD:
        o->cc.will_payload = (const uint8_t *)optarg;
        o->cc.will_len = strlen(optarg);
        break;
    case OPT_WILL_QOS:
        if (!(rc = number(o, optarg, 0, 2, &n)))
            o->cc.will_qos = (uint8_t)n;
        break;
    case OPT_WILL_RETAIN:
        o->cc.will_retain = true;
        break;
    case OPT_USER_PROP:
        if (optind >= argc)
            return bad(o, "%s", "--user-property takes KEY VALUE");
        optind++;
        if (o->tool == TOOL_PUB)
            return add_user_prop(o, o->publish_props, &o->publish_props_len,
                                 sizeof(o->publish_props), optarg, argv[optind - 1]);
        return add_user_prop(o, o->connect_props, &o->connect_props_len, sizeof(o->connect_props),
                             optarg, argv[optind - 1]);
    case OPT_NO_LOCAL:
        o->no_local = true;
        break;
    case OPT_CAFILE:
        o->tls.cafile = optarg;
        o->use_tls = true;
        break;
    case OPT_CAPATH:
        o->tls.capath = optarg;
        o->use_tls = true;
        break;
    case OPT_CERT:
        o->tls.certfile = optarg;
        o->use_tls = true;
        break;
    case OPT_KEY:
        o->tls.keyfile = optarg;
        break;
    case OPT_KEYPW:
        o->tls.key_password = optarg;
        break;
    case OPT_TLS:
        o->use_tls = true;
        break;
    case OPT_TLSVER:
        o->tls.min_version = optarg;
        break;
    case OPT_CIPHERS:
        o->tls.ciphers = optarg;
        break;
    case OPT_SNI:
        o->tls.servername = optarg;
        break;
    case OPT_ALPN:
        o->tls.alpn = optarg;
        break;
    case OPT_INSECURE:
        o->tls.insecure = true;
        break;
    case OPT_HELP:
        usage(o, stdout);
        return -1;
    default:
        usage(o, stderr);
        return EXIT_USAGE;
    }
    return rc;
}

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

/* see client_opts.h */
int client_opts_parse(struct client_opts *o, enum client_tool tool, int argc, char **argv)
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
    const char *shorts =
        tool == TOOL_PUB ? "h:p:t:q:i:u:P:V:cx:k:m:f:lsnrW:dD:" : "h:p:t:q:i:u:P:V:cx:k:C:vRW:dD:";
    int ch;
    optind = 1;
    opterr = 1;
    while ((ch = getopt_long(argc, argv, shorts, long_opts, NULL)) != -1) {
        int rc = one(o, ch, argc, argv);
        if (rc)
            return rc < 0 ? -1 : rc;
    }
    if (optind < argc)
        return bad(o, "unexpected argument '%s'", argv[optind]);
    return finish(o);
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
