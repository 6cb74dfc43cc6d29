#include <stdlib.h>

#include "config/config.h"
#include "test.h"

#ifndef DATA_DIR
#define DATA_DIR "tests/unit/config/data"
#endif

static void expect_error(const char *text, const char *want)
{
    struct ward_config cfg;
    struct cfg_errors errs;
    int r = config_load_string("w.conf", text, &cfg, &errs);
    if (r == 0)
        TEST_FAIL_("<<%s>> loaded, expected error %s", text, want);
    for (size_t i = 0; i < errs.count; i++)
        if (strstr(errs.msgs[i], want)) {
            cfg_errors_free(&errs);
            return;
        }
    for (size_t i = 0; i < errs.count; i++)
        fprintf(stderr, "  got: %s\n", errs.msgs[i]);
    TEST_FAIL_("no error contains \"%s\"", want);
}

/* Prints the effective configuration, frees it and loads the printed text
 * back into cfg and errs; returns what the load returned, and the text in
 * *printed (free it). */
static int reload_printed(struct ward_config *cfg, struct cfg_errors *errs, char **printed)
{
    size_t len = 0;
    *printed = NULL;
    FILE *f = open_memstream(printed, &len);
    config_print(cfg, f);
    fclose(f);
    config_free(cfg);
    cfg_errors_free(errs);
    return config_load_string("printed", *printed, cfg, errs);
}

TEST(defaults)
{
    struct ward_config cfg;
    ASSERT_EQ(config_defaults(&cfg), 0);
    ASSERT_EQ(cfg.max_packet_size, 1 << 20);
    ASSERT_EQ(cfg.max_mqueue_len, 1000);
    ASSERT_EQ(cfg.max_inflight_window, 1024);
    ASSERT_EQ(cfg.receive_maximum, 1024);
    ASSERT_STR_EQ(cfg.overload, "backpressure");
    ASSERT_EQ(cfg.max_output_bytes, 1 << 20);
    ASSERT_EQ(cfg.slow_consumer_timeout_ms, 30000);
    ASSERT(cfg.keepalive_multiplier == 1.5);
    ASSERT_EQ(cfg.sys_interval_s, 10);
    ASSERT_STR_EQ(cfg.log_level, "notice");
    ASSERT(cfg.allow_anonymous);
    ASSERT(cfg.retain_available);
    ASSERT_EQ(cfg.nlisteners, 0);
    config_free(&cfg);
}

TEST(nanomq_file_loads_unchanged)
{
    struct ward_config cfg;
    struct cfg_errors errs;
    int r = config_load(DATA_DIR "/nanomq_bridge.conf", &cfg, &errs);
    for (size_t i = 0; i < errs.count; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    ASSERT_EQ(r, 0);
    ASSERT_EQ(cfg.max_packet_size, 260u << 20);
    ASSERT_EQ(cfg.max_mqueue_len, 2048);
    ASSERT(cfg.keepalive_multiplier == 1.25);
    ASSERT_STR_EQ(cfg.log_level, "warn");
    ASSERT_STR_EQ(cfg.log_to, "file,console");
    ASSERT_EQ(cfg.nlisteners, 2);
    ASSERT_EQ(cfg.listeners[0].kind, CFG_LISTENER_TCP);
    ASSERT_STR_EQ(cfg.listeners[0].bind, "0.0.0.0:1883");
    ASSERT_EQ(cfg.listeners[1].kind, CFG_LISTENER_SSL);
    ASSERT_STR_EQ(cfg.listeners[1].certfile, "/etc/certs/cert.pem");
    ASSERT(!cfg.listeners[1].verify_peer);
    ASSERT_EQ(cfg.nbridges, 1);
    struct cfg_bridge *b = &cfg.bridges[0];
    ASSERT_STR_EQ(b->name, "emqx1");
    ASSERT_STR_EQ(b->server, "mqtt-tcp://127.0.0.1:1883");
    ASSERT_EQ(b->proto_ver, 4);
    ASSERT_EQ(b->keepalive_s, 60);
    ASSERT_STR_EQ(b->ssl.key_password, "yourpass");
    ASSERT_STR_EQ(b->ssl.cacertfile, "/etc/certs/cacert.pem");
    ASSERT(b->ssl.verify); /* ward verifies the upstream by default */
    ASSERT_EQ(b->nforwards, 2);
    ASSERT_STR_EQ(b->forwards[1].remote_topic, "fwd/topic2");
    ASSERT_EQ(b->nsubscriptions, 1);
    ASSERT_EQ(b->subscriptions[0].qos, 1);
    ASSERT_EQ(b->max_send_queue_len, 32);
    /* The printed effective configuration loads back to the same values. */
    char *buf;
    r = reload_printed(&cfg, &errs, &buf);
    for (size_t i = 0; i < errs.count; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    ASSERT_EQ(r, 0);
    ASSERT_EQ(cfg.nbridges, 1);
    ASSERT_EQ(cfg.bridges[0].nforwards, 2);
    ASSERT_STR_EQ(cfg.bridges[0].forwards[1].local_topic, "topic2");
    ASSERT_EQ(cfg.nlisteners, 2);
    ASSERT_EQ(cfg.max_packet_size, 260u << 20);
    free(buf);
    config_free(&cfg);
    cfg_errors_free(&errs);
}

/* The listeners of NanoMQ's default nanomq.conf (0.19: a tcp block, a
 * commented-out ssl block, a ws block whose bind carries the path) with
 * the mqtt keys it sets that ward reads under other names. */
TEST(nanomq_default_listeners)
{
    const char *text = "mqtt {\n"
                       "    max_topic_alias = 1024\n"
                       "    max_packet_size = 256MB\n"
                       "}\n"
                       "listeners.tcp {\n"
                       "    bind = \"0.0.0.0:1883\"\n"
                       "}\n"
                       "# listeners.ssl {\n"
                       "#   bind = \"0.0.0.0:8883\"\n"
                       "# }\n"
                       "listeners.ws {\n"
                       "    bind = \"0.0.0.0:8083/mqtt\"\n"
                       "}\n";
    struct ward_config cfg;
    struct cfg_errors errs;
    int r = config_load_string("nanomq.conf", text, &cfg, &errs);
    for (size_t i = 0; i < errs.count; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    ASSERT_EQ(r, 0);
    ASSERT_EQ(cfg.topic_alias_max, 1024);
    ASSERT_EQ(cfg.nlisteners, 2);
    ASSERT_EQ(cfg.listeners[1].kind, CFG_LISTENER_WS);
    ASSERT_STR_EQ(cfg.listeners[1].bind, "0.0.0.0:8083/mqtt");
    ASSERT_EQ(cfg.listeners[1].ws_max_header_size, 8192);
    ASSERT_EQ(cfg.listeners[1].ws_max_frame_size, 0);
    ASSERT(!cfg.listeners[1].ws_same_origin);
    ASSERT(cfg.listeners[1].ws_allowed_origins == NULL);
    char *printed;
    ASSERT_EQ(reload_printed(&cfg, &errs, &printed), 0);
    ASSERT(strstr(printed, "listeners.ws.default {"));
    ASSERT_STR_EQ(cfg.listeners[1].bind, "0.0.0.0:8083/mqtt");
    free(printed);
    config_free(&cfg);
    cfg_errors_free(&errs);
}

TEST(websocket_listeners)
{
    const char *text = "listeners.wss.browsers {\n"
                       "  bind = \"0.0.0.0:8084/mqtt\"\n"
                       "  keyfile = \"k.pem\"\n  certfile = \"c.pem\"\n  cacertfile = \"ca.pem\"\n"
                       "  verify_peer = true\n  fail_if_no_peer_cert = false\n"
                       "  crlfile = \"crl.pem\"\n  tls_version = \"1.3\"\n"
                       "  peer_cert_as_username = cn\n  require_password = true\n"
                       "  max_frame_size = 64KB\n  max_header_size = 4KB\n"
                       "  allowed_origins = [\"https://app.example\", \"https://ops.example\"]\n"
                       "  same_origin = true\n  trusted_proxies = \"10.0.0.0/8\"\n"
                       "}\n"
                       "listeners.nats_ws.console {\n"
                       "  host = \"127.0.0.1\"\n  port = 4224\n  no_tls = true\n"
                       "  compression = true\n  allowed_origins = \"http://localhost:3000\"\n"
                       "  handshake_timeout = 3s\n  max_payload = 2MB\n"
                       "}\n"
                       "listeners.nats_ws.secure {\n"
                       "  listen = \"0.0.0.0:4443\"\n"
                       "  tls { cert_file = \"c.pem\", key_file = \"k.pem\" }\n"
                       "}\n";
    struct ward_config cfg;
    struct cfg_errors errs;
    int r = config_load_string("w.conf", text, &cfg, &errs);
    for (size_t i = 0; i < errs.count; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    ASSERT_EQ(r, 0);
    ASSERT_EQ(cfg.nlisteners, 3);
    const struct cfg_listener *w = &cfg.listeners[0];
    ASSERT_EQ(w->kind, CFG_LISTENER_WSS);
    ASSERT_STR_EQ(w->name, "browsers");
    ASSERT(w->verify_peer && !w->fail_if_no_peer_cert && w->require_password);
    ASSERT_STR_EQ(w->crlfile, "crl.pem");
    ASSERT_EQ(w->ws_max_frame_size, 64 * 1024);
    ASSERT_EQ(w->ws_max_header_size, 4096);
    ASSERT_STR_EQ(w->ws_allowed_origins, "https://app.example,https://ops.example");
    ASSERT(w->ws_same_origin);
    const struct cfg_listener *n = &cfg.listeners[1];
    ASSERT_EQ(n->kind, CFG_LISTENER_NATS_WS);
    ASSERT_STR_EQ(n->bind, "127.0.0.1:4224");
    ASSERT(n->ws_no_tls && n->ws_compression);
    ASSERT_STR_EQ(n->ws_allowed_origins, "http://localhost:3000");
    ASSERT_EQ(n->handshake_timeout_ms, 3000);
    ASSERT_EQ(n->nats_max_payload, 2 << 20);
    const struct cfg_listener *t = &cfg.listeners[2];
    ASSERT_EQ(t->kind, CFG_LISTENER_NATS_WS);
    ASSERT_STR_EQ(t->bind, "0.0.0.0:4443");
    ASSERT_STR_EQ(t->certfile, "c.pem");
    char *printed;
    ASSERT_EQ(reload_printed(&cfg, &errs, &printed), 0);
    ASSERT(strstr(printed, "listeners.nats_ws.console {"));
    ASSERT_EQ(cfg.listeners[1].kind, CFG_LISTENER_NATS_WS);
    ASSERT_STR_EQ(cfg.listeners[0].ws_allowed_origins, "https://app.example,https://ops.example");
    ASSERT_EQ(cfg.listeners[0].ws_max_frame_size, 64 * 1024);
    free(printed);
    config_free(&cfg);
    cfg_errors_free(&errs);

    /* WebSocket keys belong to WebSocket listeners; their limits hold. */
    expect_error("listeners.tcp { bind = \"0.0.0.0:1883\"\n  max_frame_size = 1KB }",
                 "max_frame_size");
    expect_error("listeners.ssl { bind = \"0.0.0.0:8883\"\n  keyfile = k\n  certfile = c\n"
                 "  same_origin = true }",
                 "same_origin");
    expect_error("listeners.ws { bind = \"0.0.0.0:8083\"\n  max_header_size = 100 }",
                 "max_header_size");
    expect_error("listeners.ws { bind = \"0.0.0.0:8083\"\n  compression = true }", "compression");
    expect_error("listeners.wss { bind = \"0.0.0.0:8084\" }", "needs certfile and keyfile");
    expect_error("listeners.nats_ws { no_tls = true }", "bind");
    expect_error("listeners.nats_ws { port = 70000 }", "port");
    expect_error("listeners.nats_ws { port = 4224\n  same_origin = maybe }", "same_origin");
    expect_error("listeners.nats_ws { port = 4224\n  path = \"/x\" }", "path");
    expect_error("listeners.websocket { bind = \"0.0.0.0:1\" }", "nats_ws");
}

TEST(named_listeners)
{
    struct ward_config cfg;
    struct cfg_errors errs;
    const char *text = "listeners.ssl.mtls {\n bind = \"0.0.0.0:8884\"\n keyfile = k\n"
                       " certfile = c\n cacertfile = ca\n verify_peer = true\n"
                       " fail_if_no_peer_cert = true\n crlfile = crl.pem\n"
                       " peer_cert_as_username = cn\n}\n"
                       "listeners.ssl.tls {\n bind = \"0.0.0.0:8883\"\n keyfile = k\n"
                       " certfile = c\n}\n";
    ASSERT_EQ(config_load_string("w.conf", text, &cfg, &errs), 0);
    ASSERT_EQ(cfg.nlisteners, 2);
    ASSERT_STR_EQ(cfg.listeners[0].name, "mtls");
    ASSERT(cfg.listeners[0].fail_if_no_peer_cert);
    ASSERT_STR_EQ(cfg.listeners[0].peer_cert_as_username, "cn");
    ASSERT_STR_EQ(cfg.listeners[1].name, "tls");
    ASSERT_EQ(cfg.listeners[1].handshake_timeout_ms, 10000);
    ASSERT_EQ(cfg.listeners[1].allow_anonymous, -1);
    config_free(&cfg);
    cfg_errors_free(&errs);
}

TEST(sni_certificates)
{
    struct ward_config cfg;
    struct cfg_errors errs;
    const char *text = "listeners.ssl.multi {\n bind = \"0.0.0.0:8883\"\n keyfile = k\n"
                       " certfile = c\n sni = [\n  {host = \"a.example\", certfile = a.crt,"
                       " keyfile = a.key}\n  {host = \"*.b.example\", certfile = b.crt,"
                       " keyfile = b.key}\n ]\n}\n";
    ASSERT_EQ(config_load_string("w.conf", text, &cfg, &errs), 0);
    ASSERT_EQ(cfg.listeners[0].nsni, 2);
    ASSERT_STR_EQ(cfg.listeners[0].sni[1].host, "*.b.example");
    ASSERT_STR_EQ(cfg.listeners[0].sni[1].keyfile, "b.key");
    /* The effective configuration prints them back in a form that loads. */
    char *buf;
    ASSERT_EQ(reload_printed(&cfg, &errs, &buf), 0);
    ASSERT_EQ(cfg.listeners[0].nsni, 2);
    config_free(&cfg);
    cfg_errors_free(&errs);
    free(buf);
    expect_error("listeners.ssl.x {\n bind = \"0:1\"\n keyfile = k\n certfile = c\n"
                 " sni = [ {host = h, certfile = c2} ]\n}\n",
                 "w.conf:5: listeners.ssl.x.sni[0].: keyfile is required");
    expect_error("listeners.ssl.x {\n bind = \"0:1\"\n keyfile = k\n certfile = c\n"
                 " sni = [ {host = h, certfile = c2, keyfile = k2, hots = 1} ]\n}\n",
                 "listeners.ssl.x.sni[0].hots: unknown key");
    expect_error("listeners.ssl.x {\n bind = \"0:1\"\n keyfile = k\n certfile = c\n"
                 " sni = 5\n}\n",
                 "sni: expected an array of objects");
}

TEST(every_error_is_listed_with_file_line_key)
{
    struct ward_config cfg;
    struct cfg_errors errs;
    const char *text = "mqtt {\n  max_packet_sise = 10KB\n  max_qos = 3\n"
                       "  max_inflight_window = -1\n}\nlog.level = loud\n";
    ASSERT_EQ(config_load_string("w.conf", text, &cfg, &errs), -1);
    ASSERT_EQ(errs.count, 4);
    ASSERT_STR_EQ(errs.msgs[0], "w.conf:2: mqtt.max_packet_sise: unknown key (did you mean "
                                "'mqtt.max_packet_size'?)");
    ASSERT_STR_EQ(errs.msgs[1], "w.conf:3: mqtt.max_qos: 3 is out of range (0 to 2)");
    ASSERT(strstr(errs.msgs[2], "w.conf:4: mqtt.max_inflight_window: expected a whole number"));
    ASSERT(strstr(errs.msgs[3], "w.conf:6: log.level: 'loud' is not one of"));
    cfg_errors_free(&errs);
}

TEST(type_and_semantic_errors)
{
    expect_error("mqtt.retain_available = 3\n", "expected true or false");
    expect_error("mqtt.max_packet_size = lots\n", "expected a size");
    expect_error("mqtt.sys_interval = soon\n", "expected a duration");
    expect_error("listeners.tcp { port = 1883 }\n", "bind is required");
    expect_error("listeners.tcp { bind = \"x:1\", bnid = 2 }\n",
                 "did you mean 'listeners.tcp.bind'");
    expect_error("listeners.quic { bind = \"x:1\" }\n", "unknown listener type 'quic'");
    expect_error("listeners.ssl { bind = \"x:1\" }\n", "needs certfile and keyfile");
    expect_error("listeners.ssl { bind = \"x:1\"\n keyfile = k\n certfile = c\n"
                 " fail_if_no_peer_cert = true }\n",
                 "fail_if_no_peer_cert needs verify_peer");
    expect_error("listeners.ssl { bind = \"x:1\"\n keyfile = k\n certfile = c\n"
                 " verify_peer = true }\n",
                 "verify_peer needs cacertfile");
    expect_error("bridges.mqtt.b1 { proto_ver = 4 }\n", "server is required");
    expect_error("bridges.mqtt.b1 { server = \"mqtt-tcp://h:1\"\n proto_ver = 3 }\n",
                 "out of range");
    expect_error("bridges.mqtt.b1 { server = \"s\"\n forwards = [{ local_topic = a }] }\n",
                 "remote_topic is required");
    expect_error("bridges.mqtt.b1 { server = \"s\"\n forwards = {} }\n",
                 "expected an array of objects");
    expect_error("mqtt {\n max_qos = 1\n", "w.conf:3: unterminated object");
    expect_error("log.to = [{a = 1}]\n", "expected a list of words");
}

TEST(sizes_and_durations)
{
    uint64_t v;
    ASSERT_EQ(config_parse_size("256KB", &v), 0);
    ASSERT_EQ(v, 262144);
    ASSERT_EQ(config_parse_size("1mb", &v), 0);
    ASSERT_EQ(v, 1048576);
    ASSERT_EQ(config_parse_size("12", &v), 0);
    ASSERT_EQ(v, 12);
    ASSERT_EQ(config_parse_size("-1", &v), -1);
    ASSERT_EQ(config_parse_size("1XB", &v), -1);
    ASSERT_EQ(config_parse_size("", &v), -1);
    ASSERT_EQ(config_parse_duration_ms("10s", &v), 0);
    ASSERT_EQ(v, 10000);
    ASSERT_EQ(config_parse_duration_ms("500ms", &v), 0);
    ASSERT_EQ(v, 500);
    ASSERT_EQ(config_parse_duration_ms("2m", &v), 0);
    ASSERT_EQ(v, 120000);
    ASSERT_EQ(config_parse_duration_ms("60", &v), 0);
    ASSERT_EQ(v, 60000);
    ASSERT_EQ(config_parse_duration_ms("1y", &v), -1);
}

TEST(reference_mentions_every_key)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    config_print_reference(f);
    fclose(f);
    ASSERT(strstr(buf, "| `mqtt.max_packet_size` | a size") != NULL);
    ASSERT(strstr(buf, "| `fail_if_no_peer_cert` |") != NULL);
    ASSERT(strstr(buf, "| `ssl.verify` | true or false | true |") != NULL);
    free(buf);
}

/* ward.conf(5) is made from the Markdown reference: every key of it is a
 * .TP item of the page. */
TEST(man_page_has_every_key)
{
    char *md = NULL, *man = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&md, &len);
    config_print_reference(f);
    fclose(f);
    f = open_memstream(&man, &len);
    ASSERT_EQ(config_print_reference_man(f), 0);
    fclose(f);
    ASSERT(strncmp(man, ".TH WARD.CONF 5 ", 16) == 0);
    ASSERT(strstr(man, "\n.SH KEYS\n.SS\nGlobal keys\n.TP\n\\fBmqtt.max_packet_size\\fR (a size"));
    size_t keys = 0;
    for (const char *p = md; (p = strstr(p, "\n| `")) != NULL; p++) {
        const char *end = strstr(p + 4, "` |");
        ASSERT(end != NULL);
        char want[200];
        snprintf(want, sizeof(want), "\n.TP\n\\fB%.*s\\fR (", (int)(end - p - 4), p + 4);
        if (!strstr(man, want))
            TEST_FAIL_("%s is not in the man page", want + 10);
        keys++;
    }
    ASSERT(keys > 100);
    ASSERT(!strstr(man, "\n|"));
    ASSERT(!strstr(man, "a test keeps this file"));
    free(md);
    free(man);
}

/* Text reaches roff as text: a line starting with '.' or '\'' is not a
 * request, a backslash is not an escape, `code` is bold and closed. */
TEST(man_escapes_roff)
{
    char *man = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&man, &len);
    config_reference_man("# T\n\n.so /etc/passwd\n\n'br\n\n## A `b`\n\n"
                         "| key | type | default | meaning |\n|---|---|---|---|\n"
                         "| `.k` | a string | C:\\x | \\fBno `open |\n",
                         f);
    fclose(f);
    ASSERT(strstr(man, "\n.PP\n\\&.so /etc/passwd\n.PP\n\\&'br\n"));
    ASSERT(strstr(man, "\n.SH KEYS\n.SS\nA \\fBb\\fR\n"));
    ASSERT(strstr(man, "\n.TP\n\\fB.k\\fR (a string; default: C:\\ex)\n\\efBno \\fBopen\\fR\n"));
    ASSERT(!strstr(man, "\n.so"));
    ASSERT(!strstr(man, "\n# T"));
    free(man);
}

int main(void)
{
    RUN(defaults);
    RUN(nanomq_file_loads_unchanged);
    RUN(nanomq_default_listeners);
    RUN(websocket_listeners);
    RUN(named_listeners);
    RUN(sni_certificates);
    RUN(every_error_is_listed_with_file_line_key);
    RUN(type_and_semantic_errors);
    RUN(sizes_and_durations);
    RUN(reference_mentions_every_key);
    RUN(man_page_has_every_key);
    RUN(man_escapes_roff);
    TEST_DONE();
}
