/* Looking into a running broker from another thread (the admin API,
 * /metrics, the status page): snapshots of its counters and of its
 * clients, sessions, subscriptions and retained messages, and a few
 * actions (kick a client, end a session, delete a retained message,
 * publish).
 *
 * Threading: every function here is thread-safe. Each takes the broker
 * lock once, briefly: counters are copied (they are maintained as things
 * happen, never counted by walking clients or sessions), and lists are
 * answered a page at a time (offset and limit, limit at most
 * BROKER_INSPECT_MAX_PAGE) so no call copies the whole broker while the
 * workers wait. A page walks the list up to its offset, which costs
 * pointer hops only; entries are copied (or, for messages, referenced)
 * so the caller reads them after the lock is released.
 *
 * Peer-chosen strings (client ids, user names, topics) are copied as they
 * are: escaping them for JSON or logs is the caller's. */
#ifndef WARD_BROKER_INSPECT_H
#define WARD_BROKER_INSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/result.h"

struct broker;
struct msg;

#define BROKER_INSPECT_MAX_PAGE  10000u
#define BROKER_INSPECT_LISTENERS 64u /* net listener indexes counted (net's own bound) */

/* Counters and sizes. "_total" ones only grow. */
struct broker_counters {
    uint64_t uptime_ms;
    uint64_t msgs_in[3], msgs_out[3]; /* PUBLISH / NATS PUB messages by QoS (NATS: 0) */
    uint64_t bytes_in, bytes_out;     /* every protocol byte read / queued for writing */
    /* Dropped messages by reason. */
    uint64_t dropped_queue_full;   /* QoS 1/2: an online receiver's queue was full */
    uint64_t dropped_offline_full; /* QoS 1/2: an offline session's queue was full */
    uint64_t dropped_output_full;  /* QoS 0: the receiver's output was full */
    uint64_t dropped_too_large;    /* over the receiver's Maximum Packet Size */
    uint64_t dropped_other;        /* the rest of the broker's dropped count */
    uint64_t retained_refused;     /* refused by the retained store's limits */
    uint64_t memory_refused;       /* publishes refused over system.memory_limit */
    uint64_t connects, auth_failures, acl_denied;
    uint64_t sessions_refused, subs_refused, packet_timeouts, slow_consumers, throttled;
    uint32_t clients_connected, clients_max;
    uint32_t nats_connected;                            /* of clients_connected */
    uint32_t listener_conns[BROKER_INSPECT_LISTENERS];  /* open connections per listener index */
    uint64_t listener_opened[BROKER_INSPECT_LISTENERS]; /* ever opened (TLS: handshakes done) */
    uint64_t sessions, sessions_offline; /* MQTT sessions held, those without a connection */
    uint64_t subscriptions;              /* in the subscription tree (MQTT and NATS) */
    uint64_t retained, retained_bytes;   /* $SYS topics included */
    uint64_t queued, inflight;           /* QoS 1/2 deliveries waiting / sent, not acknowledged */
    uint32_t producers_waiting;          /* held by backpressure now */
};
void broker_inspect_counters(struct broker *b, struct broker_counters *out);

/* One connected client. Strings are the snapshot's own (free with
 * broker_client_info_clear). */
struct broker_client_info {
    char *id;       /* MQTT client id, or "nats:CID" */
    char *username; /* the verified user name (or the NATS user), NULL if none */
    char *cert_cn;  /* the verified client certificate's CN, NULL if none */
    char peer[64];  /* "1.2.3.4:5678" */
    unsigned listener;
    bool nats;
    bool internal;     /* an in-process bridge */
    uint8_t proto_ver; /* MQTT protocol level (3, 4, 5); 0 for NATS */
    uint64_t nats_cid;
    uint16_t keepalive;
    uint32_t expiry_s;         /* session expiry interval (MQTT) */
    uint64_t connected_at_ms;  /* unix time, ms */
    uint64_t last_activity_ms; /* unix time, ms, of the last byte read */
    uint32_t subscriptions;
    uint32_t queued, inflight;
    size_t pending_bytes;         /* output queued in net, not yet written */
    uint64_t msgs_in, msgs_out;   /* its application messages (PUBLISH; NATS PUB, MSG) */
    uint64_t bytes_in, bytes_out; /* its protocol bytes (NATS: payload and headers in) */
};
void broker_client_info_clear(struct broker_client_info *ci);

/* Connected clients, in the broker's own order (newest first), skipping
 * `offset`, at most `limit` (capped at BROKER_INSPECT_MAX_PAGE) into
 * out[]. *total is how many clients are connected. Returns how many were
 * filled, or -1 (out of memory; nothing to clear). nats_only: NATS
 * clients only (then *total counts those).
 *
 * With `after` (the id of the last entry of the previous page) the page
 * starts right after that client instead, whatever the offset: a cursor,
 * whose cost is the page's alone however deep it is, where an offset
 * walks every entry before it. -2 if that client is no longer listed. */
WARD_WUR int broker_inspect_clients(struct broker *b, const char *after, size_t offset,
                                    size_t limit, bool nats_only, struct broker_client_info *out,
                                    size_t *total);
/* The connected client with this id ("nats:CID" for NATS). Returns 0
 * (filled), 1 (no such client connected) or -1 (out of memory). */
WARD_WUR int broker_inspect_client(struct broker *b, const char *id,
                                   struct broker_client_info *out);
/* Disconnects the client with this id (MQTT 5: DISCONNECT 0x98,
 * administrative action; NATS: -ERR and close). Its session stays or ends
 * as its expiry says, and its will goes out as after any abnormal end.
 * Returns 0, or 1 if no such client is connected. */
WARD_WUR int broker_kick_client(struct broker *b, const char *id);

/* One MQTT session, online or offline. */
struct broker_session_info {
    char *id;
    char *owner; /* the identity that made it ("" anonymous) */
    bool online;
    uint8_t protocol;
    uint32_t expiry_s;      /* SESSION_NEVER_EXPIRES (UINT32_MAX): never */
    uint64_t expires_in_ms; /* offline: time left; 0 online or never */
    uint32_t subscriptions;
    uint32_t queued, inflight;
    bool will_pending;
};
void broker_session_info_clear(struct broker_session_info *si);
/* Sessions: online ones first, then offline ones, with offset or cursor
 * as for clients (-2: the `after` session is gone). *total is how many
 * sessions the broker holds. */
WARD_WUR int broker_inspect_sessions(struct broker *b, const char *after, size_t offset,
                                     size_t limit, struct broker_session_info *out, size_t *total);
/* Returns 0 (filled), 1 (no such session) or -1 (out of memory). */
WARD_WUR int broker_inspect_session(struct broker *b, const char *id,
                                    struct broker_session_info *out);
/* Ends a session as its expiry would: a connected client is disconnected
 * first (0x98), a pending will goes out, the stored rows go. Returns 0, or
 * 1 if there is no such session. */
WARD_WUR int broker_end_session(struct broker *b, const char *id);

/* One subscription. */
struct broker_sub_info {
    char *client_id; /* the session's id, or "nats:CID" */
    char *topic;     /* the filter ($share/GROUP/ included) or the NATS subject */
    uint8_t qos;
    bool nats;
};
void broker_sub_info_clear(struct broker_sub_info *si);
/* Subscriptions, all of them or (client_id not NULL) one client's only.
 * *total is how many there are (of that client). */
WARD_WUR int broker_inspect_subs(struct broker *b, const char *client_id, size_t offset,
                                 size_t limit, struct broker_sub_info *out, size_t *total);

/* Retained messages (not those on $SYS topics), each held by a reference:
 * the message is immutable, so its topic and payload may be read without
 * the lock. Release with broker_retained_release. */
WARD_WUR int broker_inspect_retained(struct broker *b, size_t offset, size_t limit,
                                     struct msg **out, size_t *total);
void broker_retained_release(struct msg **ms, size_t n);
/* The retained message of exactly this topic (a topic name: no wildcards):
 * 0 and *out referenced, 1 none, -1 not a valid topic name. */
WARD_WUR int broker_inspect_retained_one(struct broker *b, const char *topic, struct msg **out);
/* Deletes the retained message of this topic (stored state too), without
 * delivering anything. Returns 0, 1 if there was none, -1 if the topic is
 * not a valid topic name or out of memory. */
WARD_WUR int broker_retained_delete(struct broker *b, const char *topic);

/* Publishes as the broker itself (no ACL, no publisher session): routed
 * like any message, stored as retained when `retain`. The topic must be a
 * valid topic name outside $SYS. Returns 0, -1 (out of memory) or -2
 * (bad topic, payload too large for max_packet_size, qos > 2). */
WARD_WUR int broker_publish(struct broker *b, const char *topic, const uint8_t *payload, size_t len,
                            uint8_t qos, bool retain);

/* NATS: the server id INFO announces (also /varz's), and the settings of
 * the first NATS listener (0, or -1 if there is none; *index is net's). */
const char *broker_nats_server_id(void);
struct broker_nats_opts;
WARD_WUR int broker_inspect_nats_listener(struct broker *b, unsigned *index,
                                          struct broker_nats_opts *out);

/* A message's parts for the caller (views into the referenced message). */
const char *broker_msg_topic(const struct msg *m);
const uint8_t *broker_msg_payload(const struct msg *m, size_t *len);
uint8_t broker_msg_qos(const struct msg *m);

#endif
