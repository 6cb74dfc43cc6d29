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

/* What few connections use, behind one pointer so that the others do not
 * carry it: a v5 client's topic aliases and the retained messages a
 * SUBSCRIBE matched that did not fit yet. Allocated at the first use
 * (client_extra) and freed with the client. */
struct client_extra {
    char **alias_in; /* [1..topic_alias_max] topics the client set */
    uint16_t *alias_in_len;
    char **alias_out; /* OUT_ALIAS_CAP entries, allocated at the first alias */
    /* The retained backlog: sent in order as room comes (its output full,
     * or its queue at max_mqueue_len) (route.c). Held by reference. */
    struct retained_item *rb;
    size_t rb_head, rb_n, rb_cap;
    uint16_t nalias_out;
    bool rb_draining;
};

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
    char *owner;               /* identity owning this client's session (see broker.c); NULL: "" */
    struct client_extra *x;    /* NULL until something in it is used */
    /* broker.c: a password check in progress (owner only) */
    struct auth_wait *auth_wait;
    /* The label for logs while it cannot be made from the session
     * (client_label, client_name); NULL once the client is connected. */
    char *label;
    /* This connection's traffic (inspect.h): messages (PUBLISH, NATS
     * PUB/MSG) and protocol bytes; counted where the broker's totals are. */
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
    /* A verified client certificate (mTLS), read while a CONNECT is
     * handled (login.h: client_read_cert, client_drop_cert, and
     * client_cert_user / client_cert_clientid for what
     * peer_cert_as_username/_clientid make of it); NULL otherwise. */
    const struct tls_identity *cert;
    struct mqtt_codec codec;
    enum auth_cause auth_cause; /* decided before the lock (may be slow) */
    uint32_t max_packet;        /* the client's Maximum Packet Size, 0 = protocol max */
    /* Input bytes whose acknowledgements were handled ahead: at most the
     * held input, which net bounds by the largest packet (< 256 MiB). */
    uint32_t scanned;
    uint16_t keepalive;
    uint16_t recv_max;  /* the client's Receive Maximum: our outbound window */
    uint16_t alias_max; /* the client's Topic Alias Maximum */
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
    bool pump_listed;   /* persist.c: has sends waiting for a commit */
    bool cert_read, has_cert;
};

/* Sets the client's label for logs (printf-style, at most
 * CLIENT_LABEL_MAX bytes); keeps the old one if memory runs out. An idle
 * connection's structures hold only what they need: the label and the
 * owner are allocated to their length, and a connected MQTT client keeps
 * no label at all (client_label_drop). */
#define CLIENT_LABEL_MAX 384
void client_label(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Frees the label of a connected MQTT client: client_name makes the same
 * text, "client 'ID' (PEER)", from its session's id and net's peer when a
 * line is logged. Call it only once c->s is the session of that id. */
void client_label_drop(struct client *c);
/* Stores the label client_name makes now, before c->s is taken away from a
 * connection that may still log (a takeover, a session ended by the
 * administrator). */
void client_label_keep(struct client *c);
/* The client's label: the stored one, or one made into buf (at least
 * CLIENT_LABEL_MAX bytes). Valid while buf and the label live. */
const char *client_name(const struct client *c, char *buf);
/* client_name into a buffer that lives until the end of the enclosing
 * block, for use as a log argument. */
#define CLIENT_NAME(c) client_name((c), (char[CLIENT_LABEL_MAX]){0})
/* The connection's rarely used part, allocated if it is not yet; NULL if
 * memory runs out. */
struct client_extra *client_extra(struct client *c);
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
