/* A broker behind a real net server on loopback, and raw MQTT clients, for
 * the unit tests of the broker's files that act on live connections
 * (conn.c, flow.c). Tests reach the broker's state through internal.h. */
#ifndef WARD_BROKER_RIG_H
#define WARD_BROKER_RIG_H

#include <string.h>
#include <time.h>

#include "broker/internal.h"
#include "net_fixture.h"

struct rig {
    struct broker *b;
    struct net_server *s;
    uint16_t port;
};

static inline void rig_start(struct rig *r, const struct broker_config *cfg, size_t max_output,
                             uint32_t slow_consumer_ms)
{
    r->b = broker_new(cfg);
    ASSERT(r->b);
    struct net_config nc = {.workers = 1,
                            .max_connections = 100,
                            .max_input = 1 << 16,
                            .max_output = max_output,
                            .slow_consumer_timeout_ms = slow_consumer_ms};
    r->s = net_server_new(&nc, broker_net_handler(), r->b);
    ASSERT(r->s);
    char err[256];
    ASSERT_EQ(net_server_listen(r->s, "tcp://127.0.0.1:0", err, sizeof(err)), 0);
    r->port = net_server_port(r->s, 0);
    ASSERT_EQ(broker_start(r->b), 0);
    ASSERT_EQ(net_server_start(r->s), 0);
}

static inline void rig_stop(struct rig *r)
{
    broker_shutdown(r->b);
    net_server_stop(r->s);
    net_server_join(r->s);
    broker_free(r->b);
    net_server_free(r->s);
}

/* A CONNECT (level 4 = 3.1.1, 5 = 5.0, clean start) with client id `id`;
 * returns the socket once the CONNACK came. */
static inline int rig_connect(struct rig *r, const char *id, uint8_t level)
{
    int fd = dial(r->port);
    uint8_t pkt[64];
    size_t idlen = strlen(id), n = 0;
    pkt[n++] = 0x10;
    pkt[n++] = (uint8_t)(10 + (level == 5) + 2 + idlen);
    memcpy(pkt + n, "\x00\x04MQTT", 6);
    n += 6;
    pkt[n++] = level;
    pkt[n++] = 0x02;
    pkt[n++] = 0;
    pkt[n++] = 60;
    if (level == 5)
        pkt[n++] = 0; /* no properties */
    pkt[n++] = 0;
    pkt[n++] = (uint8_t)idlen;
    memcpy(pkt + n, id, idlen);
    n += idlen;
    ASSERT_EQ(write(fd, pkt, n), (ssize_t)n);
    char ack[16];
    ASSERT_EQ(read_n(fd, ack, level == 5 ? 2 : 4), level == 5 ? 2u : 4u);
    ASSERT_EQ((uint8_t)ack[0], 0x20);
    if (level == 5) { /* the rest of a v5 CONNACK (its properties) */
        char rest[256];
        ASSERT(read_n(fd, rest, (size_t)(uint8_t)ack[1]) == (size_t)(uint8_t)ack[1]);
    }
    return fd;
}

/* The broker's client for a connected client id (takes the lock). */
static inline struct client *rig_client(struct rig *r, const char *id)
{
    for (int i = 0; i < 500; i++) { /* the CONNACK may come before the unlock */
        pthread_mutex_lock(&r->b->lock);
        for (struct client *c = r->b->clients; c; c = c->next)
            if (c->connected && c->s && strcmp(c->s->id, id) == 0) {
                pthread_mutex_unlock(&r->b->lock);
                return c;
            }
        pthread_mutex_unlock(&r->b->lock);
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    TEST_FAIL_("no connected client '%s'", id);
    return NULL;
}

#endif
