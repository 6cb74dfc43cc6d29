/* A client connection as the broker sees it (src/broker/conn.c): its
 * protocol state and its output. Encoding a packet into the connection's
 * output queue, refusing and closing live here, below routing and protocol
 * handling: conn.c calls only net, mqtt and log. Guarded by the broker lock
 * unless marked otherwise. */
#ifndef WARD_BROKER_CONN_H
#define WARD_BROKER_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "auth/auth.h"
#include "mqtt/mqtt.h"
#include "net/net.h"
#include "tls/tls.h"

#define OUT_ALIAS_CAP 64 /* aliases we assign towards one client at most */

struct broker;
struct session;
struct nats_state;
struct retained_item;

struct client {
    struct broker *b;
    struct net_conn *nc;
    struct session *s;
    struct nats_state *nats; /* a NATS client (nats.c), NULL for MQTT */
    struct client *prev, *next;
    struct client *tprev, *tnext; /* the broker's list of throttled clients */
    uint64_t opened_ms;
    uint64_t last_rx_ms;
    uint64_t partial_since_ms; /* when an unfinished packet began, 0 if none */
    size_t scanned;            /* input bytes whose acknowledgements were handled ahead */
    char *owner;               /* identity owning this client's session (see broker.c); NULL: "" */
    char **alias_in;           /* [1..topic_alias_max] topics the client set */
    uint16_t *alias_in_len;
    char **alias_out; /* OUT_ALIAS_CAP entries, allocated at the first alias */
    /* broker.c: a password check in progress (owner only) */
    struct auth_wait *auth_wait;
    char *id; /* for logs, before and after CONNECT (client_label) */
    /* Retained messages a SUBSCRIBE matched that did not fit yet (its
     * output full, or its queue at max_mqueue_len): sent in order as room
     * comes (route.c). Held by reference; the connection's own. */
    struct retained_item *rb;
    size_t rb_head, rb_n, rb_cap;
    /* This connection's traffic (inspect.h): messages (PUBLISH, NATS
     * PUB/MSG) and protocol bytes; counted where the broker's totals are. */
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
    /* A verified client certificate (mTLS), read while a CONNECT is
     * handled (login.h: client_read_cert, client_drop_cert); NULL
     * otherwise. cert_user / cert_clientid are what
     * peer_cert_as_username/_clientid make of it (NULL: not configured or
     * no such field). */
    const struct tls_identity *cert;
    const char *cert_user, *cert_clientid;
    struct mqtt_codec codec;
    enum auth_cause auth_cause; /* decided before the lock (may be slow) */
    uint32_t max_packet;        /* the client's Maximum Packet Size, 0 = protocol max */
    uint16_t keepalive;
    uint16_t recv_max;  /* the client's Receive Maximum: our outbound window */
    uint16_t alias_max; /* the client's Topic Alias Maximum */
    uint16_t nalias_out;
    bool connected;
    bool closing;
    bool throttled;    /* flow.c: its PUBLISHes wait for a full receiver */
    bool out_blocking; /* flow.c: its full output holds producers back */
    bool hold;         /* set by handle_publish: keep this PUBLISH for later */
    bool internal;     /* net_conn_internal(): an in-process bridge */
    bool normal_disconnect;
    bool request_problem_info;
    bool auth_done;     /* auth_cause is this connection's verdict */
    bool user_verified; /* the CONNECT's user name had its password checked */
    bool rb_draining;
    bool pump_listed; /* persist.c: has sends waiting for a commit */
    bool cert_read, has_cert;
};

/* Sets the client's label for logs (printf-style, at most
 * CLIENT_LABEL_MAX bytes); keeps the old one if memory runs out. An idle
 * connection's structures hold only what they need: the label and the
 * owner are allocated to their length. */
#define CLIENT_LABEL_MAX 384
void client_label(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sets the owner (NULL or "" for none); false if out of memory. */
bool client_set_owner(struct client *c, const char *owner);
static inline const char *client_owner(const struct client *c)
{
    return c->owner ? c->owner : "";
}

/* Encodes and queues a packet to the client; false if it could not (a
 * closing connection takes only CONNACK and DISCONNECT; a full output
 * closes the connection as a slow consumer). */
bool client_send(struct client *c, const struct mqtt_packet *p);
/* Closes with a v5 DISCONNECT carrying rc where the protocol allows. */
void client_kick(struct client *c, uint8_t rc, const char *why);
/* Closes without a word (3.1.1 errors, a client's own DISCONNECT). */
void client_close(struct client *c, const char *why);

#endif
