/* Internal to src/broker: the broker's own state, shared as data by the
 * files below it. Functions live in one header per file, and calls point
 * one way: broker.c (protocol handling, life cycle) -> route.c (matching,
 * delivery) -> conn.c (a connection's output) and session.c (sessions);
 * session.c calls none of the others. Everything here is guarded by the
 * broker lock unless marked otherwise. */
#ifndef WARD_BROKER_INTERNAL_H
#define WARD_BROKER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth/auth.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/flow.h"
#include "broker/msg.h"
#include "broker/nats_out.h"
#include "broker/persist.h"
#include "broker/retain.h"
#include "broker/route.h"
#include "broker/session.h"
#include "broker/topic_tree.h"
#include "mqtt/mqtt.h"

struct broker_stats {
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out, dropped;
    uint64_t connects, clients_max;
    uint64_t auth_failures, acl_denied;
    uint64_t sessions_refused, subs_refused, packet_timeouts;
    uint64_t slow_consumers; /* closed: a full queue held producers too long */
    uint64_t memory_refused; /* publishes refused over system.memory_limit */
    uint64_t throttled;      /* producers made to wait (events) */
    uint64_t dropped_queue; /* QoS 1/2 for an online receiver whose queue was full (drop, reject) */
    uint64_t dropped_offline;  /* QoS 1/2 for an offline session whose queue was full */
    uint64_t dropped_output;   /* QoS 0 for a receiver whose output was full */
    uint64_t dropped_large;    /* larger than the receiver's Maximum Packet Size */
    uint64_t retained_dropped; /* refused by the retained store's limits */
    uint32_t clients_connected;
    uint32_t nats_connected;   /* of clients_connected */
    uint64_t msgs_in_qos[3];   /* msgs_in by QoS as published (NATS: 0) */
    uint64_t msgs_out_qos[3];  /* msgs_out by QoS as delivered */
    uint64_t queued, inflight; /* every session's delivery lists (session.c) */
};

struct match {
    struct session *s;
    struct nats_sub *ns; /* a NATS subscription: delivered on its own as MSG */
    bool shared;         /* a share group's pick: delivered on its own, never merged */
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
    struct session *offline;       /* sessions without a connection */
    size_t noffline;               /* how many are on that list */
    struct session_heap deadlines; /* offline sessions by next will or expiry (session.c) */
    struct client *clients;
    struct broker_stats st;
    uint32_t listener_conns[64];  /* open connections per net listener index (inspect.h) */
    uint64_t listener_opened[64]; /* connections handed to the broker (TLS: handshake done) */
    struct auth *auth;
    bool acl_active;                   /* auth has rules: check deliveries too */
    int8_t listener_anon[64];          /* broker_set_listener_anonymous */
    uint8_t listener_idmatch[64];      /* enum broker_id_match per listener */
    int8_t listener_overload[64];      /* enum broker_overload, -1: mqtt.overload */
    struct broker_nats_opts *nats[64]; /* NATS listeners' settings (nats.c), NULL: MQTT */
    struct store *store;
    /* broker.c's: sends what waited for a commit; persist.c calls it from
     * the commit hook (a pointer, so persist.c need not call upwards). */
    void (*persist_pump)(struct broker *b,
                         struct client *c); /* durable state (persist.c), NULL: memory only */
    struct persist *persist;                /* persist.c's state, NULL without a store */
    enum flow_hit flow_hit;                 /* what routing the current PUBLISH met */
    bool over_memory;                       /* system.memory_limit passed (housekeeping) */
    uint64_t next_memory_ms;                /* when housekeeping next reads the resident size */
    struct client *throttled;               /* producers waiting (flow.c) */
    size_t nthrottled;
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
    uint64_t retain_full_log_ms; /* the next "retained store full" log line may go out */
    uint32_t match_gen;
    struct match *matches;
    size_t nmatches, capmatches;
    uint8_t *scratch; /* encoding buffer, used under the lock */
    size_t scratch_cap;
    bool shutting_down;
    bool stop;
    pthread_t housekeeper;
    pthread_cond_t wake;
    /* Broadcast at shutdown when the last client is gone and after each
     * store commit: broker_wait_flushed() waits on it. */
    pthread_cond_t quiet;
    bool housekeeping;
};

#endif
