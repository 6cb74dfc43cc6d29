/* src/broker/inspect.c on a real broker: counters that move with traffic,
 * pages and their bounds, unknown ids, kicking, ending sessions, retained
 * messages listed and deleted, publishing as the broker. */
#include "broker/inspect.h"

#include "broker_rig.h"
#include "core/clock.h"

/* Polls (bounded: 5 s) until the broker's counters satisfy the check. */
#define WAIT_FOR(r, cond)                                                                          \
    do {                                                                                           \
        struct broker_counters k_;                                                                 \
        int i_ = 0;                                                                                \
        for (; i_ < 1000; i_++) {                                                                  \
            broker_inspect_counters((r)->b, &k_);                                                  \
            const struct broker_counters *k = &k_;                                                 \
            if (cond)                                                                              \
                break;                                                                             \
            struct timespec ts_ = {0, 5 * 1000000L};                                               \
            nanosleep(&ts_, NULL);                                                                 \
        }                                                                                          \
        if (i_ == 1000)                                                                            \
            TEST_FAIL_("timed out waiting for %s", #cond);                                         \
    } while (0)

static void start(struct rig *r)
{
    struct broker_config cfg;
    broker_config_defaults(&cfg);
    cfg.sys_interval_s = 0;
    rig_start(r, &cfg, 1 << 20, 0);
}

/* A 3.1.1 CONNECT with clean session 0: the session outlives the link. */
static int connect_persistent(struct rig *r, const char *id)
{
    int fd = dial(r->port);
    uint8_t pkt[64];
    size_t idlen = strlen(id), n = 0;
    pkt[n++] = 0x10;
    pkt[n++] = (uint8_t)(12 + idlen);
    memcpy(pkt + n, "\x00\x04MQTT\x04\x00\x00\x3c", 10);
    n += 10;
    pkt[n++] = 0;
    pkt[n++] = (uint8_t)idlen;
    memcpy(pkt + n, id, idlen);
    n += idlen;
    ASSERT_EQ(write(fd, pkt, n), (ssize_t)n);
    char ack[4];
    ASSERT_EQ(read_n(fd, ack, 4), 4u);
    ASSERT_EQ(ack[3], 0);
    return fd;
}

/* SUBSCRIBE (3.1.1 or 5) to one filter at qos; waits for the SUBACK. */
static void subscribe(int fd, const char *filter, uint8_t qos, bool v5)
{
    uint8_t pkt[128];
    size_t flen = strlen(filter), n = 0;
    pkt[n++] = 0x82;
    pkt[n++] = (uint8_t)(2 + v5 + 2 + flen + 1);
    pkt[n++] = 0;
    pkt[n++] = 1;
    if (v5)
        pkt[n++] = 0;
    pkt[n++] = 0;
    pkt[n++] = (uint8_t)flen;
    memcpy(pkt + n, filter, flen);
    n += flen;
    pkt[n++] = qos;
    ASSERT_EQ(write(fd, pkt, n), (ssize_t)n);
    char ack[8];
    ASSERT_EQ(read_n(fd, ack, 5u + v5), 5u + v5);
    ASSERT_EQ((uint8_t)ack[0], 0x90);
}

/* PUBLISH QoS 1 (3.1.1) and wait for the PUBACK. */
static void publish_qos1(int fd, const char *topic, const char *payload)
{
    uint8_t pkt[128];
    size_t tlen = strlen(topic), plen = strlen(payload), n = 0;
    pkt[n++] = 0x32;
    pkt[n++] = (uint8_t)(2 + tlen + 2 + plen);
    pkt[n++] = 0;
    pkt[n++] = (uint8_t)tlen;
    memcpy(pkt + n, topic, tlen);
    n += tlen;
    pkt[n++] = 0;
    pkt[n++] = 7;
    memcpy(pkt + n, payload, plen);
    n += plen;
    ASSERT_EQ(write(fd, pkt, n), (ssize_t)n);
    char ack[4];
    ASSERT_EQ(read_n(fd, ack, 4), 4u);
    ASSERT_EQ((uint8_t)ack[0], 0x40);
}

TEST(counters_move_with_traffic)
{
    struct rig r;
    start(&r);
    struct broker_counters k0;
    broker_inspect_counters(r.b, &k0);
    ASSERT_EQ(k0.clients_connected, 0);
    ASSERT_EQ(k0.msgs_in[1], 0);
    int sub = rig_connect(&r, "sub", 5), pub = rig_connect(&r, "pub", 4);
    subscribe(sub, "t/#", 1, true);
    publish_qos1(pub, "t/1", "hello");
    char got[32];
    ASSERT(read_n(sub, got, 2) == 2 && ((uint8_t)got[0] & 0xf0) == 0x30);
    WAIT_FOR(&r, k->msgs_out[1] == 1);
    struct broker_counters kk;
    broker_inspect_counters(r.b, &kk);
    ASSERT_EQ(kk.clients_connected, 2);
    ASSERT_EQ(kk.listener_conns[0], 2);
    ASSERT_EQ(kk.sessions, 2);
    ASSERT_EQ(kk.sessions_offline, 0);
    ASSERT_EQ(kk.subscriptions, 1);
    ASSERT_EQ(kk.msgs_in[1], 1);
    ASSERT_EQ(kk.msgs_in[0], 0);
    ASSERT_EQ(kk.inflight, 1); /* not acknowledged by the subscriber yet */
    ASSERT(kk.bytes_in > k0.bytes_in && kk.bytes_out > k0.bytes_out);
    ASSERT_EQ(kk.connects, 2);
    close(sub);
    close(pub);
    WAIT_FOR(&r, k->clients_connected == 0 && k->listener_conns[0] == 0);
    broker_inspect_counters(r.b, &kk);
    ASSERT_EQ(kk.inflight, 0); /* the clean sessions ended with their deliveries */
    ASSERT_EQ(kk.sessions, 0);
    rig_stop(&r);
}

TEST(clients_are_paged)
{
    struct rig r;
    start(&r);
    int fds[3] = {rig_connect(&r, "c0", 4), rig_connect(&r, "c1", 5), rig_connect(&r, "c2", 4)};
    rig_client(&r, "c2");
    struct broker_client_info ci[4];
    size_t total = 0;
    int n = broker_inspect_clients(r.b, NULL, 0, 4, false, ci, &total);
    ASSERT_EQ(n, 3);
    ASSERT_EQ(total, 3);
    ASSERT_STR_EQ(ci[0].id, "c2"); /* newest first */
    ASSERT_EQ(ci[1].proto_ver, 5);
    ASSERT(strncmp(ci[0].peer, "127.0.0.1:", 10) == 0);
    ASSERT(ci[0].connected_at_ms > 1700000000000ull);
    for (int i = 0; i < n; i++)
        broker_client_info_clear(&ci[i]);
    n = broker_inspect_clients(r.b, NULL, 1, 1, false, ci, &total);
    ASSERT_EQ(n, 1);
    ASSERT_STR_EQ(ci[0].id, "c1");
    broker_client_info_clear(&ci[0]);
    ASSERT_EQ(broker_inspect_clients(r.b, "c1", 0, 4, false, ci, &total), 1); /* a cursor */
    ASSERT_STR_EQ(ci[0].id, "c0");
    broker_client_info_clear(&ci[0]);
    ASSERT_EQ(broker_inspect_clients(r.b, "gone", 0, 4, false, ci, &total), -2);
    ASSERT_EQ(broker_inspect_clients(r.b, NULL, 3, 4, false, ci, &total), 0); /* past the end */
    ASSERT_EQ(broker_inspect_clients(r.b, NULL, 0, 0, false, ci, &total), 0);
    ASSERT_EQ(total, 3);
    ASSERT_EQ(broker_inspect_clients(r.b, NULL, 0, 4, true, ci, &total), 0); /* no NATS clients */
    ASSERT_EQ(total, 0);
    struct broker_client_info one;
    ASSERT_EQ(broker_inspect_client(r.b, "c1", &one), 0);
    ASSERT_STR_EQ(one.id, "c1");
    broker_client_info_clear(&one);
    ASSERT_EQ(broker_inspect_client(r.b, "nobody", &one), 1);
    ASSERT_EQ(broker_inspect_client(r.b, "nats:12345", &one), 1);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    rig_stop(&r);
}

TEST(kick_disconnects_with_admin_action)
{
    struct rig r;
    start(&r);
    int fd = rig_connect(&r, "victim", 5);
    rig_client(&r, "victim");
    ASSERT_EQ(broker_kick_client(r.b, "victim"), 0);
    char d[8];
    ASSERT_EQ(read_n(fd, d, 3), 3u); /* DISCONNECT, length 1, 0x98 */
    ASSERT_EQ((uint8_t)d[0], 0xe0);
    ASSERT_EQ((uint8_t)d[2], 0x98);
    WAIT_FOR(&r, k->clients_connected == 0);
    ASSERT_EQ(broker_kick_client(r.b, "victim"), 1);
    ASSERT_EQ(broker_kick_client(r.b, "never-there"), 1);
    close(fd);
    rig_stop(&r);
}

TEST(sessions_online_and_offline)
{
    struct rig r;
    start(&r);
    int gone = connect_persistent(&r, "sleeper");
    subscribe(gone, "a/b", 2, false);
    close(gone);
    WAIT_FOR(&r, k->clients_connected == 0 && k->sessions_offline == 1);
    int live = rig_connect(&r, "awake", 4);
    rig_client(&r, "awake");
    struct broker_session_info si[4];
    size_t total = 0;
    int n = broker_inspect_sessions(r.b, NULL, 0, 4, si, &total);
    ASSERT_EQ(n, 2);
    ASSERT_EQ(total, 2);
    ASSERT_STR_EQ(si[0].id, "awake"); /* online ones first */
    ASSERT(si[0].online);
    ASSERT_STR_EQ(si[1].id, "sleeper");
    ASSERT(!si[1].online);
    ASSERT_EQ(si[1].subscriptions, 1);
    for (int i = 0; i < n; i++)
        broker_session_info_clear(&si[i]);
    n = broker_inspect_sessions(r.b, NULL, 1, 1, si, &total);
    ASSERT_EQ(n, 1);
    ASSERT_STR_EQ(si[0].id, "sleeper");
    broker_session_info_clear(&si[0]);
    /* Cursors: after the online one comes the offline one; after that,
     * nothing; an unknown one is gone. */
    ASSERT_EQ(broker_inspect_sessions(r.b, "awake", 99, 4, si, &total), 1);
    ASSERT_STR_EQ(si[0].id, "sleeper");
    broker_session_info_clear(&si[0]);
    ASSERT_EQ(broker_inspect_sessions(r.b, "sleeper", 0, 4, si, &total), 0);
    ASSERT_EQ(broker_inspect_sessions(r.b, "nobody", 0, 4, si, &total), -2);
    ASSERT_EQ(broker_inspect_sessions(r.b, NULL, 2, 4, si, &total), 0);

    struct broker_sub_info sub[4];
    n = broker_inspect_subs(r.b, "sleeper", 0, 4, sub, &total);
    ASSERT_EQ(n, 1);
    ASSERT_EQ(total, 1);
    ASSERT_STR_EQ(sub[0].topic, "a/b");
    ASSERT_EQ(sub[0].qos, 2);
    broker_sub_info_clear(&sub[0]);
    ASSERT_EQ(broker_inspect_subs(r.b, "awake", 0, 4, sub, &total), 0);
    ASSERT_EQ(total, 0);
    ASSERT_EQ(broker_inspect_subs(r.b, "nobody", 0, 4, sub, &total), 0);
    ASSERT_EQ(total, 0);
    n = broker_inspect_subs(r.b, NULL, 0, 4, sub, &total);
    ASSERT_EQ(n, 1);
    ASSERT_STR_EQ(sub[0].client_id, "sleeper");
    broker_sub_info_clear(&sub[0]);

    ASSERT_EQ(broker_end_session(r.b, "sleeper"), 0);
    ASSERT_EQ(broker_end_session(r.b, "sleeper"), 1);
    struct broker_counters kk;
    broker_inspect_counters(r.b, &kk);
    ASSERT_EQ(kk.sessions, 1);
    ASSERT_EQ(kk.sessions_offline, 0);
    ASSERT_EQ(kk.subscriptions, 0);
    /* Ending an online session disconnects its client. */
    ASSERT_EQ(broker_end_session(r.b, "awake"), 0);
    char c;
    ASSERT_EQ(read(live, &c, 1), 0);
    WAIT_FOR(&r, k->clients_connected == 0 && k->sessions == 0);
    close(live);
    rig_stop(&r);
}

TEST(retained_listed_and_deleted)
{
    struct rig r;
    start(&r);
    ASSERT_EQ(broker_publish(r.b, "r/1", (const uint8_t *)"one", 3, 1, true), 0);
    ASSERT_EQ(broker_publish(r.b, "r/2", (const uint8_t *)"two", 3, 0, true), 0);
    ASSERT_EQ(broker_publish(r.b, "r/3", (const uint8_t *)"x", 1, 0, false), 0); /* not kept */
    struct msg *ms[4];
    size_t total = 0;
    int n = broker_inspect_retained(r.b, 0, 4, ms, &total);
    ASSERT_EQ(n, 2);
    ASSERT_EQ(total, 2);
    size_t len;
    ASSERT(strncmp(broker_msg_topic(ms[0]), "r/", 2) == 0);
    broker_msg_payload(ms[0], &len);
    ASSERT_EQ(len, 3u);
    broker_retained_release(ms, (size_t)n);
    n = broker_inspect_retained(r.b, 1, 4, ms, &total);
    ASSERT_EQ(n, 1);
    broker_retained_release(ms, (size_t)n);
    ASSERT_EQ(broker_inspect_retained(r.b, 9, 4, ms, &total), 0);
    ASSERT_EQ(total, 2);

    struct msg *m;
    ASSERT_EQ(broker_inspect_retained_one(r.b, "r/1", &m), 0);
    ASSERT_EQ(broker_msg_qos(m), 1);
    ASSERT_MEM_EQ(broker_msg_payload(m, &len), "one", 3);
    broker_retained_release(&m, 1);
    ASSERT_EQ(broker_inspect_retained_one(r.b, "r/9", &m), 1);
    ASSERT_EQ(broker_inspect_retained_one(r.b, "r/+", &m), -1);

    ASSERT_EQ(broker_retained_delete(r.b, "r/1"), 0);
    ASSERT_EQ(broker_retained_delete(r.b, "r/1"), 1);
    ASSERT_EQ(broker_retained_delete(r.b, "r/#"), -1);
    ASSERT_EQ(broker_retained_delete(r.b, ""), -1);
    ASSERT_EQ(broker_inspect_retained_one(r.b, "r/1", &m), 1);
    n = broker_inspect_retained(r.b, 0, 4, ms, &total);
    ASSERT_EQ(n, 1);
    broker_retained_release(ms, (size_t)n);
    rig_stop(&r);
}

TEST(publish_reaches_subscribers_and_refuses_bad_input)
{
    struct rig r;
    start(&r);
    int sub = rig_connect(&r, "s", 4);
    subscribe(sub, "p/q", 0, false);
    ASSERT_EQ(broker_publish(r.b, "p/q", (const uint8_t *)"hi", 2, 0, false), 0);
    char got[16];
    ASSERT_EQ(read_n(sub, got, 9), 9u); /* 0x30 7 0 3 'p/q' 'hi' */
    ASSERT_EQ((uint8_t)got[0], 0x30);
    ASSERT_MEM_EQ(got + 7, "hi", 2);
    ASSERT_EQ(broker_publish(r.b, "p/+", (const uint8_t *)"", 0, 0, false), -2);
    ASSERT_EQ(broker_publish(r.b, "", (const uint8_t *)"", 0, 0, false), -2);
    ASSERT_EQ(broker_publish(r.b, "$SYS/x", (const uint8_t *)"", 0, 0, false), -2);
    ASSERT_EQ(broker_publish(r.b, "p/q", (const uint8_t *)"", 0, 3, false), -2);
    struct broker_config cfg;
    broker_config_defaults(&cfg);
    uint8_t *big = calloc(1, (size_t)cfg.max_packet_size + 1);
    ASSERT(big);
    ASSERT_EQ(broker_publish(r.b, "p/q", big, (size_t)cfg.max_packet_size + 1, 0, false), -2);
    free(big);
    struct broker_counters kk;
    broker_inspect_counters(r.b, &kk);
    ASSERT_EQ(kk.msgs_in[0], 1);
    close(sub);
    rig_stop(&r);
}

/* Many sessions and subscriptions: a page is right at its offset and a
 * page call's time is printed (it walks, it does not copy). */
TEST(big_lists_page_cheaply)
{
    struct rig r;
    start(&r);
    enum { N = 100000 };
    pthread_mutex_lock(&r.b->lock);
    for (int i = 0; i < N; i++) {
        char id[32], filter[48];
        snprintf(id, sizeof(id), "s-%d", i);
        /* Spread over levels: a node with 100,000 children is not what
         * this measures. */
        snprintf(filter, sizeof(filter), "dev/%d/%d/cmd", i / 300, i % 300);
        struct session *s = session_new(r.b, id);
        ASSERT(s);
        s->expiry_s = SESSION_NEVER_EXPIRES;
        session_offline_add(r.b, s);
        ASSERT_EQ(session_subscribe(r.b, s, (const uint8_t *)filter, strlen(filter), 1, 0), 1);
    }
    pthread_mutex_unlock(&r.b->lock);
    struct broker_session_info si[10];
    struct broker_sub_info sub[10];
    size_t total = 0;
    uint64_t t0 = clock_mono_ms();
    int n = broker_inspect_sessions(r.b, NULL, N - 5, 10, si, &total);
    uint64_t t1 = clock_mono_ms();
    ASSERT_EQ(n, 5);
    ASSERT_EQ(total, N);
    /* The same page by cursor: no walk to the offset. */
    char after[32];
    snprintf(after, sizeof(after), "%s", si[0].id);
    for (int i = 0; i < n; i++)
        broker_session_info_clear(&si[i]);
    uint64_t c0 = clock_mono_ms();
    ASSERT_EQ(broker_inspect_sessions(r.b, after, 0, 10, si, &total), 4);
    uint64_t c1 = clock_mono_ms();
    for (int i = 0; i < 4; i++)
        broker_session_info_clear(&si[i]);
    n = broker_inspect_subs(r.b, NULL, N - 3, 10, sub, &total);
    uint64_t t2 = clock_mono_ms();
    ASSERT_EQ(n, 3);
    ASSERT_EQ(total, N);
    for (int i = 0; i < n; i++)
        broker_sub_info_clear(&sub[i]);
    n = broker_inspect_subs(r.b, "s-77", 0, 10, sub, &total);
    uint64_t t3 = clock_mono_ms();
    ASSERT_EQ(n, 1);
    ASSERT_STR_EQ(sub[0].topic, "dev/0/77/cmd");
    ASSERT_EQ(sub[0].qos, 1);
    broker_sub_info_clear(&sub[0]);
    printf("last page of %d: sessions %" PRIu64 " ms (by cursor %" PRIu64
           " ms), subscriptions %" PRIu64 " ms, one client's subscriptions %" PRIu64 " ms\n",
           N, t1 - t0, c1 - c0, t2 - c1, t3 - t2);
    rig_stop(&r);
}

int main(void)
{
    RUN(counters_move_with_traffic);
    RUN(clients_are_paged);
    RUN(kick_disconnects_with_admin_action);
    RUN(sessions_online_and_offline);
    RUN(retained_listed_and_deleted);
    RUN(publish_reaches_subscribers_and_refuses_bad_input);
    RUN(big_lists_page_cheaply);
    TEST_DONE();
}
