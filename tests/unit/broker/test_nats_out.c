/* src/broker/nats_out.c: which messages a NATS subscription takes (NATS's
 * '>' against MQTT's '#', echo) and how an MQTT message reads as HMSG (user
 * properties as headers in order, content type, correlation data, a pair NATS
 * cannot carry left out alone), on a live loopback NATS listener. */
#include "broker_rig.h"

TEST(accepts)
{
    struct nats_state st = {.echo = true};
    struct session self = {0}, other = {0};
    struct client c = {.nats = &st, .s = &self};
    struct nats_sub ns = {.c = &c, .gt_tail = true, .gt_prefix = 1}; /* "a.>" as "a/#" */
    struct msg *a = msg_new((const uint8_t *)"a", 1, NULL, 0, 0, false, NULL, "", 0);
    struct msg *ab = msg_new((const uint8_t *)"a/b", 3, NULL, 0, 0, false, NULL, "", 0);
    ASSERT(a && ab);
    ASSERT(!nats_out_accepts(&ns, a, &other)); /* '>' wants one more token */
    ASSERT(nats_out_accepts(&ns, ab, &other));
    ns.gt_tail = false;
    ASSERT(nats_out_accepts(&ns, a, &other));
    ASSERT(nats_out_accepts(&ns, a, &self)); /* echo on: hears itself */
    st.echo = false;
    ASSERT(!nats_out_accepts(&ns, a, &self));
    ASSERT(nats_out_accepts(&ns, a, &other));
    msg_unref(a);
    msg_unref(ab);
}

/* user properties in wire form: 0x26, key, value */
static size_t user_prop(uint8_t *o, const char *k, const char *v)
{
    size_t kl = strlen(k), vl = strlen(v);
    o[0] = 0x26;
    o[1] = 0, o[2] = (uint8_t)kl;
    memcpy(o + 3, k, kl);
    o[3 + kl] = 0, o[4 + kl] = (uint8_t)vl;
    memcpy(o + 5 + kl, v, vl);
    return 5 + kl + vl;
}

TEST(mqtt_message_as_hmsg)
{
    struct broker_config cfg;
    broker_config_defaults(&cfg);
    struct rig r;
    r.b = broker_new(&cfg);
    ASSERT(r.b);
    struct net_config nc = {
        .workers = 1, .max_connections = 10, .max_input = 1 << 16, .max_output = 1 << 20};
    r.s = net_server_new(&nc, broker_net_handler(), r.b);
    ASSERT(r.s);
    char err[256];
    struct net_listen_opts lo = {.greeting = broker_nats_greeting};
    ASSERT_EQ(net_server_listen_opts(r.s, "tcp://127.0.0.1:0", NULL, &lo, err, sizeof(err)), 0);
    struct broker_nats_opts o;
    broker_nats_opts_defaults(&o);
    ASSERT_EQ(broker_set_listener_nats(r.b, 0, &o, err, sizeof(err)), 0);
    ASSERT_EQ(broker_start(r.b), 0);
    ASSERT_EQ(net_server_start(r.s), 0);
    int fd = dial(net_server_port(r.s, 0));
    char line[4096];
    read_crlf_line(fd, line, sizeof(line)); /* INFO */
    const char *hello = "CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB t.* 1\r\nPING\r\n";
    ASSERT_EQ(write(fd, hello, strlen(hello)), (ssize_t)strlen(hello));
    read_crlf_line(fd, line, sizeof(line));
    ASSERT_STR_EQ(line, "PONG");

    /* An MQTT 5 message: two user properties, one NATS cannot carry (a
     * name with ':'), a content type, correlation data 0x01 0x02. */
    uint8_t users[128];
    size_t n = user_prop(users, "K", "v1");
    n += user_prop(users + n, "urn:dev", "x");
    n += user_prop(users + n, "K", "v2");
    struct mqtt_props props = {0};
    props.present = MQTT_HAS(MQTT_PROP_CONTENT_TYPE) | MQTT_HAS(MQTT_PROP_CORRELATION_DATA);
    props.content_type = (struct mqtt_str){(const uint8_t *)"text/plain", 10};
    props.correlation_data = (struct mqtt_bin){(const uint8_t *)"\x01\x02", 2};
    props.user_raw = (struct mqtt_bin){users, (uint32_t)n};
    struct msg *m = msg_new((const uint8_t *)"t/x", 3, (const uint8_t *)"hi", 2, 0, false, &props,
                            "mqtt-client", 0);
    ASSERT(m);
    pthread_mutex_lock(&r.b->lock);
    route_publish(r.b, m, NULL);
    pthread_mutex_unlock(&r.b->lock);
    msg_unref(m);
    const char hdr[] = "NATS/1.0\r\nK: v1\r\nK: v2\r\nContent-Type: text/plain\r\n"
                       "Ward-Correlation-Data: AQI=\r\n\r\n";
    char want[128];
    snprintf(want, sizeof(want), "HMSG t.x 1 %zu %zu", sizeof(hdr) - 1, sizeof(hdr) - 1 + 2);
    read_crlf_line(fd, line, sizeof(line));
    ASSERT_STR_EQ(line, want);
    char body[sizeof(hdr) + 3];
    ASSERT_EQ(read_n(fd, body, sizeof(hdr) - 1 + 4), sizeof(hdr) - 1 + 4);
    ASSERT(memcmp(body, hdr, sizeof(hdr) - 1) == 0);
    ASSERT(memcmp(body + sizeof(hdr) - 1, "hi\r\n", 4) == 0);
    close(fd);
    rig_stop(&r);
}

int main(void)
{
    RUN(accepts);
    RUN(mqtt_message_as_hmsg);
    TEST_DONE();
}
