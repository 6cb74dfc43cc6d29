/* A connection's output (src/broker/conn.c): a PUBLISH meets the output
 * bound and is refused without closing the connection; the protocol's own
 * replies may pass the bound up to twice, and past that the connection is
 * closed; kicks say why in v5 and close silently in 3.1.1. */
#include "broker_rig.h"
#include "test.h"

static struct mqtt_packet publish_of(size_t len)
{
    static uint8_t payload[1024];
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    p.u.publish.topic = (struct mqtt_str){(const uint8_t *)"t", 1};
    p.u.publish.payload = (struct mqtt_bin){payload, len};
    return p;
}

TEST(publish_meets_the_bound_control_passes_it)
{
    struct broker_config cfg;
    broker_config_defaults(&cfg);
    struct rig r;
    rig_start(&r, &cfg, 4096, 0);
    int fd = rig_connect(&r, "sink", 4);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct client *c = rig_client(&r, "sink");
    pthread_mutex_lock(&r.b->lock);
    struct mqtt_packet pub = publish_of(1000);
    int sent = 0;
    while (sent < 100000 && client_send(c, &pub)) /* never read: the kernel fills, then we do */
        sent++;
    ASSERT(sent < 100000);
    ASSERT(!c->closing); /* a refused PUBLISH is the caller's to keep or drop */
    struct mqtt_packet ping = {.type = MQTT_PINGRESP};
    ASSERT(client_send(c, &ping)); /* within twice the bound */
    int pings = 0;
    while (pings < 10000 && client_send(c, &ping))
        pings++;
    ASSERT(pings < 10000);
    ASSERT(c->closing); /* far past the bound: it reads nothing at all */
    pthread_mutex_unlock(&r.b->lock);
    close(fd);
    rig_stop(&r);
}

TEST(kick_says_why_in_v5_only)
{
    struct broker_config cfg;
    broker_config_defaults(&cfg);
    struct rig r;
    rig_start(&r, &cfg, 1 << 20, 0);
    int v5 = rig_connect(&r, "five", 5), v4 = rig_connect(&r, "four", 4);
    struct client *c5 = rig_client(&r, "five"), *c4 = rig_client(&r, "four");
    pthread_mutex_lock(&r.b->lock);
    client_kick(c5, MQTT_RC_QUOTA_EXCEEDED, "test kick");
    client_kick(c5, MQTT_RC_PROTOCOL_ERROR, "twice"); /* no second DISCONNECT */
    client_kick(c4, MQTT_RC_QUOTA_EXCEEDED, "test kick");
    ASSERT(c5->closing && c4->closing);
    pthread_mutex_unlock(&r.b->lock);
    uint8_t got[8];
    ASSERT_EQ(read_n(v5, (char *)got, 8), 4); /* E0 02 97 00 (no properties), then the close */
    ASSERT_EQ(got[0], 0xE0);
    ASSERT_EQ(got[2], MQTT_RC_QUOTA_EXCEEDED);
    ASSERT_EQ(read_n(v4, (char *)got, 1), 0); /* 3.1.1: closed, nothing said */
    close(v5);
    close(v4);
    rig_stop(&r);
}

TEST(close_after_what_is_queued)
{
    struct broker_config cfg;
    broker_config_defaults(&cfg);
    struct rig r;
    rig_start(&r, &cfg, 1 << 20, 0);
    int fd = rig_connect(&r, "bye", 4);
    struct client *c = rig_client(&r, "bye");
    pthread_mutex_lock(&r.b->lock);
    struct mqtt_packet ping = {.type = MQTT_PINGRESP};
    ASSERT(client_send(c, &ping));
    client_close(c, "test close");
    ASSERT(!client_send(c, &ping)); /* closing: only CONNACK and DISCONNECT */
    pthread_mutex_unlock(&r.b->lock);
    uint8_t got[4];
    ASSERT_EQ(read_n(fd, (char *)got, 4), 2); /* the PINGRESP queued before, then EOF */
    ASSERT_EQ(got[0], 0xD0);
    close(fd);
    rig_stop(&r);
}

/* The label and the owner are allocated to their length: the label is cut
 * at CLIENT_LABEL_MAX, an empty owner holds nothing. */
TEST(label_and_owner_fit_their_text)
{
    struct client c = {0};
    client_label(&c, "client '%s' (%s)", "a", "127.0.0.1:1");
    ASSERT_STR_EQ(c.label, "client 'a' (127.0.0.1:1)");
    char big[1000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    client_label(&c, "client '%s'", big);
    ASSERT_EQ(strlen(c.label), CLIENT_LABEL_MAX - 1);
    ASSERT(client_set_owner(&c, "user:alice"));
    ASSERT_STR_EQ(client_owner(&c), "user:alice");
    ASSERT(client_set_owner(&c, ""));
    ASSERT(c.owner == NULL);
    ASSERT_STR_EQ(client_owner(&c), "");
    ASSERT(client_set_owner(&c, NULL));
    ASSERT_STR_EQ(client_owner(&c), "");
    free(c.label);
}

/* A connected MQTT client keeps no label: client_name makes the text the
 * label had from its session's id and its peer. Kept before the session is
 * taken away, it stays the same; dropped again, it is made again. */
TEST(label_made_from_the_session_once_connected)
{
    struct broker_config cfg;
    broker_config_defaults(&cfg);
    struct rig r;
    rig_start(&r, &cfg, 1 << 20, 0);
    int fd = rig_connect(&r, "idle-one", 4);
    struct client *c = rig_client(&r, "idle-one");
    pthread_mutex_lock(&r.b->lock);
    ASSERT(c->label == NULL);
    char want[CLIENT_LABEL_MAX], buf[CLIENT_LABEL_MAX];
    snprintf(want, sizeof(want), "client 'idle-one' (%s)", net_conn_peer(c->nc));
    ASSERT_STR_EQ(client_name(c, buf), want);
    ASSERT_STR_EQ(CLIENT_NAME(c), want);
    client_label_keep(c);
    ASSERT(c->label != NULL);
    struct session *s = c->s;
    c->s = NULL; /* as a takeover does */
    ASSERT_STR_EQ(CLIENT_NAME(c), want);
    ASSERT(client_name(c, buf) == c->label); /* the stored one, buf untouched */
    c->s = s;
    client_label_drop(c);
    ASSERT(c->label == NULL);
    ASSERT_STR_EQ(CLIENT_NAME(c), want);
    /* Without a session nor a label, only the peer is known. */
    c->s = NULL;
    snprintf(want, sizeof(want), "client from %s", net_conn_peer(c->nc));
    ASSERT_STR_EQ(CLIENT_NAME(c), want);
    c->s = s;
    pthread_mutex_unlock(&r.b->lock);
    close(fd);
    rig_stop(&r);
}

/* An idle connection has no rarely used part; the first use makes it,
 * later uses get the same one, and closing the connection frees it (ASan
 * finds it otherwise). */
TEST(extra_part_made_at_first_use)
{
    struct broker_config cfg;
    broker_config_defaults(&cfg);
    struct rig r;
    rig_start(&r, &cfg, 1 << 20, 0);
    int fd = rig_connect(&r, "rare", 5);
    struct client *c = rig_client(&r, "rare");
    pthread_mutex_lock(&r.b->lock);
    ASSERT(c->x == NULL);
    struct client_extra *x = client_extra(c);
    ASSERT(x != NULL);
    ASSERT(client_extra(c) == x);
    ASSERT(x->rb_n == 0 && x->nalias_out == 0 && x->alias_in == NULL);
    pthread_mutex_unlock(&r.b->lock);
    close(fd);
    rig_stop(&r);
}

int main(void)
{
    RUN(publish_meets_the_bound_control_passes_it);
    RUN(kick_says_why_in_v5_only);
    RUN(close_after_what_is_queued);
    RUN(label_and_owner_fit_their_text);
    RUN(label_made_from_the_session_once_connected);
    RUN(extra_part_made_at_first_use);
    TEST_DONE();
}
