/* Internal to src/broker: the broker, session and client structures shared
 * by broker.c (protocol handling), session.c (sessions, QoS windows) and
 * route.c (matching and delivery). Everything here is guarded by the broker
 * lock unless marked otherwise. */
#ifndef WARD_BROKER_INTERNAL_H
#define WARD_BROKER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth/auth.h"
#include "broker/broker.h"
#include "broker/msg.h"
#include "broker/retain.h"
#include "broker/topic_tree.h"
#include "mqtt/mqtt.h"
#include "tls/tls.h"

#define SESSION_NEVER_EXPIRES UINT32_MAX
#define OUT_ALIAS_CAP         64 /* aliases we assign towards one client at most */

/* One outbound QoS 1/2 message (queued or in flight), holding a reference. */
struct delivery {
    struct delivery *next;
    struct msg *m;
    uint8_t qos;
    bool retain;
    bool pubrel_sent; /* QoS 2: PUBREC received, PUBREL sent */
    bool sent;        /* sent at least once: resends carry DUP */
    uint16_t pid;
    uint8_t nsub;
    uint32_t sub_ids[MQTT_MAX_SUB_IDS];
};

struct delivery_list {
    struct delivery *head, *tail;
    uint32_t count;
};

struct client;

struct session {
    char *id;
    struct client *c; /* NULL while offline */
    struct session *hnext;
    struct session *oprev, *onext; /* offline list */
    bool offline_listed;
    uint32_t expiry_s; /* SESSION_NEVER_EXPIRES for 3.1.1 persistent sessions */
    uint64_t expire_at;
    struct delivery_list inflight;
    struct delivery_list queue;
    uint16_t next_pid;
    uint8_t *pid_used; /* bitmap of outbound ids in flight, 8 KiB, lazily made */
    uint16_t *rel_ids; /* inbound QoS 2 ids awaiting PUBREL */
    uint32_t nrel, caprel;
    struct msg *will;
    uint32_t will_delay_s;
    uint64_t will_at; /* non-zero: a delayed will is pending */
    uint32_t nsubs;
    char *username; /* for ACLs: the last CONNECT's user name, or NULL */
    char *cert_cn;  /* and its certificate's identity, when it had one */
    char *cert_ou;
    bool trusted;       /* an in-process client (a bridge): no ACL applies */
    bool bridge;        /* MQTT 3.1.1 bridge flag: no local, retain as published */
    uint32_t match_gen; /* merging overlapping subscriptions in route.c */
    uint32_t match_idx;
};

struct client {
    struct broker *b;
    struct net_conn *nc;
    struct session *s;
    struct mqtt_codec codec;
    struct client *prev, *next;
    uint64_t opened_ms;
    uint64_t last_rx_ms;
    uint16_t keepalive;
    bool connected;
    bool closing;
    bool internal; /* net_conn_internal(): an in-process bridge */
    bool normal_disconnect;
    bool request_problem_info;
    bool auth_done;             /* auth_cause is this connection's verdict */
    enum auth_cause auth_cause; /* decided before the lock (may be slow) */
    uint16_t recv_max;          /* the client's Receive Maximum: our outbound window */
    uint32_t max_packet;        /* the client's Maximum Packet Size, 0 = protocol max */
    uint16_t alias_max;         /* the client's Topic Alias Maximum */
    char **alias_in;            /* [1..topic_alias_max] topics the client set */
    uint16_t *alias_in_len;
    char *alias_out[OUT_ALIAS_CAP];
    uint16_t nalias_out;
    char id[384]; /* for logs, before and after CONNECT */
    /* A verified client certificate (mTLS), read once after the handshake;
     * cert_user / cert_clientid are what peer_cert_as_username/_clientid
     * make of it (NULL: not configured or no such field). */
    bool cert_read, has_cert;
    struct tls_identity cert;
    const char *cert_user, *cert_clientid;
};

struct broker_stats {
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out, dropped;
    uint64_t connects, clients_max;
    uint64_t auth_failures, acl_denied;
    uint32_t clients_connected;
};

struct match {
    struct session *s;
    uint8_t qos;
    bool retain;
    uint8_t nsub;
    uint32_t sub_ids[MQTT_MAX_SUB_IDS];
};

struct broker {
    pthread_mutex_t lock;
    struct broker_config cfg;
    struct subtree *subs;
    struct retain_store *retained;
    struct session **buckets;
    size_t nbuckets;
    size_t nsessions;
    struct session *offline; /* sessions without a connection */
    struct client *clients;
    struct broker_stats st;
    struct auth *auth;
    bool acl_active;             /* auth has rules: check deliveries too */
    int8_t listener_anon[64];    /* broker_set_listener_anonymous */
    uint32_t started_max_packet; /* net sized its input bound for this */
    uint64_t listener_password;  /* bit per listener: certificate + password */
    struct tls_server *tls[16];  /* for $SYS */
    char tls_name[16][64];
    unsigned ntls;
    struct {
        broker_sys_source_fn fn;
        void *ctx;
    } sys_src[16];
    unsigned nsys_src;
    uint64_t started_ms;
    uint64_t next_sys_ms;
    uint32_t match_gen;
    struct match *matches;
    size_t nmatches, capmatches;
    uint8_t *scratch; /* encoding buffer, used under the lock */
    size_t scratch_cap;
    bool shutting_down;
    bool stop;
    pthread_t housekeeper;
    pthread_cond_t wake;
    bool housekeeping;
};

/* session.c */
struct session *session_find(struct broker *b, const char *id);
struct session *session_new(struct broker *b, const char *id);
/* Ends a session: publishes a pending will, drops subscriptions and queued
 * messages, frees it. */
void session_end(struct broker *b, struct session *s);
void session_offline_add(struct broker *b, struct session *s);
void session_offline_remove(struct broker *b, struct session *s);
/* A free outbound packet identifier, marked used. 0 if all are in use. */
uint16_t session_pid_take(struct session *s);
void session_pid_release(struct session *s, uint16_t pid);
void delivery_append(struct delivery_list *l, struct delivery *d);
struct delivery *delivery_pop(struct delivery_list *l);
/* Unlinks the in-flight delivery with pid; NULL if none. */
struct delivery *delivery_take(struct delivery_list *l, uint16_t pid);
struct delivery *delivery_find(struct delivery_list *l, uint16_t pid);
void delivery_free(struct delivery *d);
bool session_rel_has(const struct session *s, uint16_t pid);
int session_rel_add(struct session *s, uint16_t pid);
bool session_rel_remove(struct session *s, uint16_t pid);

/* The identity ACLs see for a session. */
void session_identity(const struct session *s, struct acl_identity *id);
/* True if the ACL lets the session's client act on topic (or no ACL). */
bool session_allowed(struct broker *b, const struct session *s, enum acl_action a,
                     const char *topic, size_t len);

/* route.c */
/* Delivers m to every matching subscription except no-local ones of
 * `from` (the publisher's session, or NULL). */
void route_publish(struct broker *b, struct msg *m, struct session *from);
/* Queues or sends one message to one session. */
void route_deliver(struct broker *b, struct session *s, struct msg *m, uint8_t qos, bool retain,
                   const uint32_t *sub_ids, uint8_t nsub);
/* Sends what the client's window allows from its queue. */
void route_pump(struct broker *b, struct client *c);
/* Resends in-flight messages after a session resumes (DUP set). */
void route_resend(struct broker *b, struct client *c);
/* Publishes a message the broker itself makes ($SYS, wills). */
void route_internal(struct broker *b, struct msg *m);

/* broker.c */
/* Encodes and queues a packet to the client; false if it could not. */
bool client_send(struct client *c, const struct mqtt_packet *p);
/* Closes with a v5 DISCONNECT carrying rc where the protocol allows. */
void client_kick(struct client *c, uint8_t rc, const char *why);

#endif
