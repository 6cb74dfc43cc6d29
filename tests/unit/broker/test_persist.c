/* src/broker/persist.c: what the broker writes to the store and reads back
 * (a real store in a temporary directory, the broker driven through its
 * internal functions as broker.c drives them). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <poll.h>

#include "broker/internal.h"
#include "broker_rig.h"
#include "core/clock.h"
#include "store/store.h"
#include "test.h"

static char dir[96];

/* Each test its own store directory. */
static void fresh_dir(const char *name)
{
    snprintf(dir, sizeof(dir), "/tmp/ward-test-persist-%d/%s", (int)getpid(), name);
}

static struct broker *open_broker(struct store **st, uint32_t max_queued, uint8_t policy)
{
    struct broker_config cfg;
    broker_config_defaults(&cfg);
    cfg.max_queued = max_queued;
    cfg.queue_full_policy = policy;
    struct broker *b = broker_new(&cfg);
    ASSERT(b);
    struct store_config sc = {.mode = STORE_PROCESS, .dir = dir};
    char err[256];
    *st = store_open(&sc, err, sizeof(err));
    ASSERT(*st);
    broker_set_store(b, *st);
    ASSERT_EQ(broker_load(b, err, sizeof(err)), 0);
    return b;
}

/* The store commits what is pending before it closes; the broker after. */
static void close_broker(struct broker *b, struct store *st)
{
    store_close(st);
    broker_free(b);
}

/* A connected session as handle_connect leaves it (no socket: persist.c
 * reads the client's protocol level and whether it is in-process). */
static struct session *connect_session(struct broker *b, struct client *c, const char *id,
                                       uint32_t expiry, bool internal)
{
    memset(c, 0, sizeof(*c));
    c->b = b;
    c->codec.version = MQTT_V5;
    c->internal = internal;
    struct session *s = session_new(b, id);
    ASSERT(s);
    s->owner = strdup("user:alice");
    s->username = strdup("alice");
    s->expiry_s = expiry;
    persist_connected(b, c, s);
    return s;
}

static void go_offline(struct broker *b, struct session *s)
{
    s->c = NULL;
    s->expire_at = clock_mono_ms() + (uint64_t)s->expiry_s * 1000u;
    session_offline_add(b, s);
    persist_session_sync(b, s);
}

static struct msg *v5_msg(const char *topic, const char *payload, uint8_t qos, bool retain)
{
    static const uint8_t user[] = {0x26, 0, 1, 'k', 0, 1, 'v'};
    struct mqtt_props pr = {0};
    pr.present = MQTT_HAS(MQTT_PROP_CONTENT_TYPE) | MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY) |
                 MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT) | MQTT_HAS(MQTT_PROP_CORRELATION_DATA);
    pr.content_type = (struct mqtt_str){(const uint8_t *)"text/plain", 10};
    pr.correlation_data = (struct mqtt_bin){(const uint8_t *)"c1", 2};
    pr.message_expiry = 3600;
    pr.payload_format = 1;
    pr.user_raw = (struct mqtt_bin){user, sizeof(user)};
    struct msg *m =
        msg_new((const uint8_t *)topic, (uint16_t)strlen(topic), (const uint8_t *)payload,
                (uint32_t)strlen(payload), qos, retain, &pr, "pub", clock_mono_ms());
    ASSERT(m);
    return m;
}

TEST(round_trip)
{
    fresh_dir("round_trip");
    struct store *st;
    struct broker *b = open_broker(&st, 100, 0);
    struct client c1, c2, c3;
    struct session *s = connect_session(b, &c1, "dev1", 3600, false);
    ASSERT(s->persist);
    /* As broker.c does: the session's own list, then the store. */
    ASSERT_EQ(session_subscribe(b, s, (const uint8_t *)"a/+", 3, 1, 42), 1);
    persist_sub_put(b, s, (const uint8_t *)"a/+", 3, 1, 42);
    ASSERT_EQ(session_subscribe(b, s, (const uint8_t *)"gone/#", 6, 1, 0), 1);
    persist_sub_put(b, s, (const uint8_t *)"gone/#", 6, 1, 0);
    ASSERT_EQ(session_unsubscribe(b, s, (const uint8_t *)"gone/#", 6), 1);
    persist_sub_del(b, s, (const uint8_t *)"gone/#", 6);
    ASSERT_EQ(persist_rel_add(b, s, 7), 0);
    ASSERT_EQ(persist_rel_add(b, s, 8), 0);
    ASSERT(persist_rel_remove(b, s, 8));
    /* Not stored: expiry 0, and an in-process client other than a bridge's
     * local side (whose session carries the bridge's backlog: stored). */
    struct session *tmp = connect_session(b, &c2, "short", 0, false);
    ASSERT(!tmp->persist);
    struct client c4;
    struct session *inproc = connect_session(b, &c4, "inproc", 3600, true);
    ASSERT(!inproc->persist);
    struct session *br = connect_session(b, &c3, "$bridge/x", 3600, true);
    ASSERT(br->persist);
    ASSERT_EQ(session_subscribe(b, tmp, (const uint8_t *)"a/+", 3, 1, 0), 1);
    go_offline(b, s);
    struct msg *m1 = v5_msg("a/1", "one", 1, false), *m2 = v5_msg("a/2", "two", 2, false);
    route_publish(b, m1, NULL);
    route_publish(b, m2, NULL);
    ASSERT_EQ(s->queue.count, 2);
    ASSERT_EQ(m1->prefs, 1);
    struct msg *r = v5_msg("cfg/x", "kept", 1, true), *sys = v5_msg("$SYS/x", "no", 0, true);
    ASSERT_EQ(persist_retain_set(b, r), RETAIN_OK);
    ASSERT_EQ(persist_retain_set(b, sys), RETAIN_OK);
    ASSERT_EQ(r->prefs, 1);
    ASSERT_EQ(sys->prefs, 0);
    msg_unref(m1), msg_unref(m2), msg_unref(r), msg_unref(sys);
    close_broker(b, st);

    b = open_broker(&st, 100, 0);
    s = session_find(b, "dev1");
    ASSERT(s && s->persist && !s->c);
    ASSERT(session_find(b, "short") == NULL);
    ASSERT(session_find(b, "inproc") == NULL);
    ASSERT(session_find(b, "$bridge/x") != NULL);
    ASSERT_STR_EQ(s->owner, "user:alice");
    ASSERT_STR_EQ(s->username, "alice");
    ASSERT_EQ(s->expiry_s, 3600);
    ASSERT(s->expire_at > clock_mono_ms() + 3500 * 1000ull);
    ASSERT_EQ(s->nsubs, 1);
    ASSERT(session_has_sub(s, (const uint8_t *)"a/+", 3));
    ASSERT(session_rel_has(s, 7) && !session_rel_has(s, 8));
    ASSERT_EQ(s->queue.count, 2);
    struct delivery *d = s->queue.head;
    ASSERT_STR_EQ(d->m->topic, "a/1");
    ASSERT_EQ(d->nsub, 1);
    ASSERT_EQ(d->sub_ids[0], 42);
    ASSERT_MEM_EQ(d->m->payload, "one", 3);
    ASSERT_MEM_EQ(d->m->content_type, "text/plain", 10);
    ASSERT_MEM_EQ(d->m->correlation, "c1", 2);
    ASSERT_EQ(d->m->user_raw_len, 7);
    ASSERT(d->m->has_payload_format && d->m->payload_format == 1);
    ASSERT(d->m->has_expiry && msg_expiry_left(d->m, clock_mono_ms()) > 3500);
    ASSERT_STR_EQ(d->next->m->topic, "a/2");
    ASSERT(d->seq < d->next->seq);
    ASSERT_EQ(retain_count(b->retained), 1);
    /* Delivered and acknowledged: gone after the next load. */
    struct delivery *first = session_queue_pop(b, s);
    persist_delivery_done(b, s, first);
    delivery_free(first);
    close_broker(b, st);

    b = open_broker(&st, 100, 0);
    s = session_find(b, "dev1");
    ASSERT(s);
    ASSERT_EQ(s->queue.count, 1);
    ASSERT_STR_EQ(s->queue.head->m->topic, "a/2");
    /* The session's end (as broker.c ends one) removes it with everything
     * it had. */
    persist_session_end(b, s);
    session_end(b, s);
    close_broker(b, st);

    b = open_broker(&st, 100, 0);
    ASSERT(session_find(b, "dev1") == NULL);
    ASSERT_EQ(retain_count(b->retained), 1);
    close_broker(b, st);
}

TEST(in_flight_resumes_with_its_packet_id)
{
    fresh_dir("in_flight");
    struct store *st;
    struct broker *b = open_broker(&st, 100, 0);
    struct client c;
    struct session *s = connect_session(b, &c, "q2", 600, false);
    ASSERT_EQ(session_subscribe(b, s, (const uint8_t *)"t", 1, 2, 0), 1);
    go_offline(b, s);
    struct msg *m = v5_msg("t", "x", 2, false);
    route_publish(b, m, NULL);
    msg_unref(m);
    /* What route_pump and a PUBREC do to it, without the socket. */
    struct delivery *d = session_queue_pop(b, s);
    d->pid = session_pid_take(s);
    session_inflight_add(b, s, d);
    persist_delivery_update(b, s, d);
    d->pubrel_sent = true;
    persist_delivery_update(b, s, d);
    uint16_t pid = d->pid;
    close_broker(b, st);

    b = open_broker(&st, 100, 0);
    s = session_find(b, "q2");
    ASSERT(s);
    ASSERT_EQ(s->inflight.count, 1);
    d = s->inflight.head;
    ASSERT_EQ(d->pid, pid);
    ASSERT(d->pubrel_sent && d->sent);
    /* Its id is taken: a new one differs. */
    ASSERT_NE(session_pid_take(s), pid);
    close_broker(b, st);
}

TEST(full_offline_queue)
{
    fresh_dir("full");
    struct store *st;
    struct broker *b = open_broker(&st, 2, 1 /* drop_oldest */);
    struct client c;
    struct session *s = connect_session(b, &c, "full", 600, false);
    ASSERT_EQ(session_subscribe(b, s, (const uint8_t *)"f", 1, 1, 0), 1);
    go_offline(b, s);
    for (int i = 0; i < 3; i++) {
        char p[8];
        snprintf(p, sizeof(p), "m%d", i);
        struct msg *m = v5_msg("f", p, 1, false);
        route_publish(b, m, NULL);
        msg_unref(m);
    }
    ASSERT_EQ(s->queue.count, 2);
    ASSERT_MEM_EQ(s->queue.head->m->payload, "m1", 2);
    /* A v5 publisher meets the full queue: refused, nothing retained. */
    struct client pc;
    struct session *ps = connect_session(b, &pc, "pub5", 0, false);
    ps->c = &pc;
    pc.connected = true;
    struct msg *m = v5_msg("f", "v5", 1, true);
    b->match_gen++;
    b->nmatches = 0;
    ASSERT(route_publish_or_wait(b, m, ps));
    ASSERT_EQ(b->flow_hit, FLOW_REJECT);
    ASSERT_EQ(persist_retain_set(b, m), RETAIN_OK);
    ASSERT_EQ(retain_count(b->retained), 0);
    ASSERT_EQ(s->queue.count, 2);
    msg_unref(m);
    ps->c = NULL;
    close_broker(b, st);

    b = open_broker(&st, 2, 1);
    s = session_find(b, "full");
    ASSERT(s && s->queue.count == 2);
    ASSERT_MEM_EQ(s->queue.head->m->payload, "m1", 2);
    close_broker(b, st);
}

TEST(will_pending_after_restart)
{
    fresh_dir("will");
    struct store *st;
    struct broker *b = open_broker(&st, 100, 0);
    struct client c;
    memset(&c, 0, sizeof(c));
    c.b = b;
    c.codec.version = MQTT_V5;
    struct session *s = session_new(b, "w");
    ASSERT(s);
    s->owner = strdup("");
    s->expiry_s = 600;
    s->will = v5_msg("will/t", "bye", 1, false);
    s->will_delay_s = 30;
    persist_connected(b, &c, s);
    ASSERT(s->stored_will == s->will);
    ASSERT_EQ(s->will->prefs, 1);
    close_broker(b, st);

    /* Its connection ended with the old process: the will is pending. */
    b = open_broker(&st, 100, 0);
    s = session_find(b, "w");
    ASSERT(s && s->will);
    ASSERT_STR_EQ(s->will->topic, "will/t");
    ASSERT_EQ(s->will_delay_s, 30);
    ASSERT(s->will_at >= clock_mono_ms() + 29000);
    /* Reconnected within the delay: no will any more, in the store too. */
    msg_unref(s->will);
    s->will = NULL;
    s->will_at = 0;
    persist_connected(b, &c, s);
    ASSERT(s->stored_will == NULL);
    close_broker(b, st);

    b = open_broker(&st, 100, 0);
    s = session_find(b, "w");
    ASSERT(s && !s->will);
    close_broker(b, st);
}

TEST(unreadable_rows_are_dropped)
{
    fresh_dir("unreadable");
    struct store_config sc = {.mode = STORE_PROCESS, .dir = dir};
    char err[256];
    struct store *st = store_open(&sc, err, sizeof(err));
    ASSERT(st);
    static const struct store_load_fns none = {0};
    ASSERT_EQ(store_load(st, &none, NULL, err, sizeof(err)), 0);
    ASSERT_EQ(store_start(st), 0);
    static const uint8_t bad[] = {99, 1, 2, 3}; /* a properties layout this ward does not know */
    struct store_msg m1 = {.id = store_next_id(st),
                           .topic = "r/bad",
                           .payload = (const uint8_t *)"x",
                           .payload_len = 1,
                           .qos = 1,
                           .retain = true,
                           .props = bad,
                           .props_len = sizeof(bad)};
    struct store_msg m2 = {.id = store_next_id(st),
                           .topic = "r/old",
                           .payload = (const uint8_t *)"y",
                           .payload_len = 1,
                           .qos = 1,
                           .retain = true,
                           .expire_at = 1000};
    store_msg_put(st, &m1);
    store_msg_put(st, &m2);
    store_retained_put(st, "r/bad", m1.id);
    store_retained_put(st, "r/old", m2.id); /* expired in 1970 */
    struct store_delivery d = {.msg_id = 424242, .seq = 1, .qos = 1};
    store_delivery_put(st, "nobody", &d); /* neither its session nor its message exist */
    store_close(st);

    struct broker *b = open_broker(&st, 100, 0);
    ASSERT_EQ(retain_count(b->retained), 0);
    ASSERT(session_find(b, "nobody") == NULL);
    close_broker(b, st);
}

TEST(without_a_store_nothing_is_written)
{
    struct broker_config cfg;
    broker_config_defaults(&cfg);
    struct broker *b = broker_new(&cfg);
    ASSERT(b);
    char err[64];
    ASSERT_EQ(broker_load(b, err, sizeof(err)), 0);
    struct client c;
    struct session *s = connect_session(b, &c, "mem", 600, false);
    ASSERT(!s->persist);
    struct msg *m = v5_msg("r", "x", 1, true);
    ASSERT_EQ(persist_retain_set(b, m), RETAIN_OK);
    ASSERT_EQ(m->prefs, 0);
    ASSERT_EQ(m->store_id, 0);
    msg_unref(m);
    broker_free(b);
}

/* The PUBREC for a PUBLISH goes only once what was written before it is
 * committed, even when something else took the batch's barrier first (a
 * QoS 2 delivery held for its packet id does, persist_hold_publish): the
 * acknowledgement used to go at once then, and kill -9 lost the message. */
TEST(ack_waits_for_a_barrier_someone_else_took)
{
    fresh_dir("ackwait");
    struct store *st;
    struct broker *b = open_broker(&st, 100, 0);
    struct net_config nc = {.workers = 1, .max_connections = 10, .max_input = 1 << 16};
    struct net_server *ns = net_server_new(&nc, broker_net_handler(), b);
    ASSERT(ns);
    char err[256];
    ASSERT_EQ(net_server_listen(ns, "tcp://127.0.0.1:0", err, sizeof(err)), 0);
    ASSERT_EQ(broker_start(b), 0);
    ASSERT_EQ(net_server_start(ns), 0);
    struct rig r = {.b = b, .s = ns, .port = net_server_port(ns, 0)};
    int pub = rig_connect(&r, "pub", 4);
    struct client *c = rig_client(&r, "pub");

    pthread_mutex_lock(&b->lock); /* the commit's hook waits for it */
    struct client sc;
    struct session *s = connect_session(b, &sc, "sub", 3600, false); /* rows written */
    persist_flush(b); /* a barrier: nothing is dirty now, nothing committed either */
    persist_ack(c, MQTT_PUBREC, 7, 0);
    struct pollfd p = {.fd = pub, .events = POLLIN};
    ASSERT_EQ(poll(&p, 1, 300), 0); /* not before the commit */
    go_offline(b, s);
    pthread_mutex_unlock(&b->lock);

    char ack[4];
    ASSERT_EQ(read_n(pub, ack, 4), 4u); /* after it */
    ASSERT_MEM_EQ(ack, "\x50\x02\x00\x07", 4);
    close(pub);
    broker_shutdown(b);
    net_server_stop(ns);
    net_server_join(ns);
    net_server_free(ns);
    close_broker(b, st);
}

int main(void)
{
    char top[64];
    snprintf(top, sizeof(top), "/tmp/ward-test-persist-%d", (int)getpid());
    ASSERT_EQ(mkdir(top, 0700), 0);
    RUN(round_trip);
    RUN(in_flight_resumes_with_its_packet_id);
    RUN(full_offline_queue);
    RUN(will_pending_after_restart);
    RUN(unreadable_rows_are_dropped);
    RUN(without_a_store_nothing_is_written);
    RUN(ack_waits_for_a_barrier_someone_else_took);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
    ASSERT_EQ(system(cmd), 0);
    TEST_DONE();
}
