/* The MQTT broker: sessions, subscriptions, retained messages, QoS flows,
 * wills, keep alive and $SYS, for MQTT 3.1.1 and 5.0 clients.
 *
 * Threading (docs/ARCHITECTURE.md): net's workers call the handler from
 * broker_net_handler() concurrently; all broker state is guarded by one
 * mutex taken once per batch of decoded packets. Output goes through
 * net_conn_send (thread-safe). A housekeeping thread handles keep-alive
 * timeouts, will delays, session expiry and $SYS publication. */
#ifndef WARD_BROKER_BROKER_H
#define WARD_BROKER_BROKER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/result.h"
#include "net/net.h"

struct broker;
struct auth;

/* mqtt.overload: what happens when a message meets a receiver that cannot
 * take it now (its QoS 1/2 queue full, or its output over its bound). */
enum broker_overload {
    BROKER_OVERLOAD_BACKPRESSURE, /* the producers that feed it wait */
    BROKER_OVERLOAD_DROP,         /* the message is dropped for it, counted */
    BROKER_OVERLOAD_REJECT,       /* dropped; v5 publishers hear 0x97 */
};
/* "backpressure", "drop", "reject"; -1 if unknown. */
int broker_overload_parse(const char *s);

struct broker_config {
    uint32_t max_packet_size; /* whole packet, both directions */
    uint16_t max_inflight;    /* window towards subscribers (v5: at most their Receive Maximum) */
    uint16_t receive_max;     /* our Receive Maximum: QoS 1/2 publishes in flight towards us */
    enum broker_overload overload;
    uint32_t max_queued; /* per session, beyond the inflight window */
    uint8_t
        queue_full_policy; /* mqtt.queue_full_policy: 0 drop_newest, 1 drop_oldest (persist.h) */
    uint32_t max_topic_levels;
    uint16_t max_keepalive;   /* higher requests get Server Keep Alive (v5) */
    uint16_t topic_alias_max; /* aliases a client may use towards us */
    uint8_t max_qos;
    bool retain_available;
    double keepalive_multiplier; /* 1.5 per the specification */
    uint32_t sys_interval_s;     /* 0: no $SYS */
    uint32_t connect_timeout_ms; /* CONNECT must arrive within this */
    uint32_t max_filters_per_subscribe;
    uint32_t max_subscriptions;    /* per session */
    uint32_t max_session_expiry_s; /* 0: no maximum */
    uint32_t max_sessions;
    uint32_t packet_timeout_ms; /* a started packet must complete within this */
    uint64_t memory_limit;      /* resident bytes past which publishes are refused; 0: none */

    /* Retained store limits, 0: unlimited ($SYS topics not counted). */
    uint32_t max_retained_messages;
    uint64_t max_retained_bytes;
};

/* Fills the defaults. */
void broker_config_defaults(struct broker_config *cfg);

struct broker *broker_new(const struct broker_config *cfg);
/* Starts the housekeeping thread. Returns 0 or -1. */
int broker_start(struct broker *b);
/* Tells MQTT 5 clients the server is shutting down (DISCONNECT 0x8B),
 * NATS clients that it is going away (nats-server's lame duck INFO,
 * "ldm":true), and closes every client connection once that is written;
 * in-process ones (bridges) are left to finish their backlog and stop on
 * their own (net_server_stop closes what is left of them). A connection
 * that becomes ready afterwards is refused. Wills are not published. Call
 * after net_server_stop_accepting() and before net_server_stop(). */
void broker_shutdown(struct broker *b);
/* After broker_shutdown(): waits until every client connection but the
 * in-process ones is closed (its output written, or net's close grace
 * period over), then until the
 * store has committed everything written so far (the offline sessions'
 * rows, their queued messages). True if all that happened within
 * timeout_ms; false if the time ran out first. Thread-safe. */
bool broker_wait_flushed(struct broker *b, uint32_t timeout_ms);
/* Stops the housekeeping thread, so $SYS sources (broker_add_sys_source)
 * are no longer called and may be freed; idempotent, NULL is a no-op. */
void broker_stop(struct broker *b);
/* Stops housekeeping and frees everything (after net_server_join()). */
void broker_free(struct broker *b);

/* Puts authentication and access control in force (src/auth/auth.h); NULL,
 * the default, lets everyone connect and do anything. Call before
 * broker_start(); `a` must outlive the broker. */
void broker_set_auth(struct broker *b, struct auth *a);
/* Per-listener anonymous access: -1 follows auth.allow_anonymous, 0 refuses,
 * 1 allows. `listener` is net's listener index (fewer than 64). */
void broker_set_listener_anonymous(struct broker *b, unsigned listener, int allow);
/* A listener where a client certificate alone does not authenticate: a
 * user name and password are checked as well. */
void broker_set_listener_password(struct broker *b, unsigned listener, bool required);
/* clientid_must_match: the client id a listener's clients must use. */
enum broker_id_match {
    BROKER_ID_MATCH_NONE,     /* any */
    BROKER_ID_MATCH_USERNAME, /* the verified user name */
    BROKER_ID_MATCH_CERT_CN,  /* the verified certificate's CN */
};
void broker_set_listener_id_match(struct broker *b, unsigned listener, enum broker_id_match m);
/* A listener's own mqtt.overload for the receivers connected through it. */
void broker_set_listener_overload(struct broker *b, unsigned listener, enum broker_overload o);
/* Parses "none", "username", "cert_cn"; -1 if unknown. */
int broker_id_match_parse(const char *s);
/* NATS listeners (src/broker/nats.c): a listener marked here speaks the
 * NATS client protocol instead of MQTT, in the same message space. */
struct auth_nats; /* src/auth/nats_users.h: an `authorization { }` block */
struct broker_nats_opts {
    uint32_t max_payload;          /* default 1 MiB, at most 64 MiB */
    uint32_t max_control_line;     /* default 4096 */
    uint32_t ping_interval_ms;     /* server PINGs; default 2 minutes as nats-server */
    uint32_t ping_max;             /* unanswered PINGs before "Stale Connection"; default 2 */
    uint32_t auth_timeout_ms;      /* CONNECT must come within this; default 2 s (TLS: 5 s) */
    uint32_t max_subscriptions;    /* per connection, 0: mqtt.max_subscriptions */
    bool tls_verify;               /* client certificates required (INFO tls_verify) */
    bool verify_and_map;           /* a name from the certificate must be a listed user */
    bool handshake_first;          /* TLS before INFO (nats.js handshakeFirst) */
    const char *server_name;       /* NULL: the server id */
    const char *no_auth_user;      /* a listed user taken by clients that send no credentials */
    const struct auth_nats *users; /* NULL: only the password file / anonymous rules */
};
void broker_nats_opts_defaults(struct broker_nats_opts *o);
/* Marks listener `listener` (net's index) as a NATS listener; o is copied
 * (users and strings must outlive the broker). Returns 0, or -1 with a
 * message in err. Call before broker_start(). */
WARD_WUR int broker_set_listener_nats(struct broker *b, unsigned listener,
                                      const struct broker_nats_opts *o, char *err, size_t errlen);
/* net's greeting hook for NATS listeners (struct net_listen_opts.greeting):
 * writes the INFO line a NATS server sends before anything else (before
 * the TLS handshake unless handshake_first). ctx is the broker. */
size_t broker_nats_greeting(void *ctx, struct net_conn *c, uint8_t *buf, size_t cap);

/* Durable state (src/store/store.h, src/broker/persist.c). With a store
 * set, sessions that outlive their connection, their subscriptions and
 * queued/in-flight messages, retained messages and pending wills are
 * written to it, and a QoS 1/2 PUBLISH is acknowledged only once what it
 * changed is committed. Call before broker_start(); NULL: memory only. */
struct store;
void broker_set_store(struct broker *b, struct store *st);
/* Loads the stored state into the broker (before any listener accepts).
 * Returns 0, or -1 with a message in err. */
WARD_WUR int broker_load(struct broker *b, char *err, size_t errlen);

/* After the auth rules were reloaded: removes the subscriptions the new
 * rules forbid (and logs each). Thread-safe. */
void broker_auth_reloaded(struct broker *b);

/* Applies limits from a reloaded configuration. What can change while
 * clients are connected changes at once (max_queued, max_topic_levels,
 * max_keepalive and max_packet_size for new connections, up to the value the
 * broker started with, sys_interval_s); a change to anything else is logged
 * as needing a restart and ignored. Thread-safe. */
void broker_reconfigure(struct broker *b, const struct broker_config *cfg);

/* Publishes a TLS listener's handshake failures per cause and the days
 * left of its certificates and CRLs under $SYS/broker/tls/NAME/. */
void broker_add_tls(struct broker *b, const char *name, struct tls_server *t);

/* More $SYS values from outside the broker (bridges): at every $SYS
 * interval, under the broker lock, fn calls emit(ectx, topic, value) for
 * each value it has. fn must not call back into the broker. */
typedef void (*broker_sys_emit_fn)(void *ectx, const char *topic, const char *value);
typedef void (*broker_sys_source_fn)(void *ctx, broker_sys_emit_fn emit, void *ectx);
void broker_add_sys_source(struct broker *b, broker_sys_source_fn fn, void *ctx);

/* After a CRL reload: disconnects every client whose certificate the new
 * CRL revokes (v5 reason 0x87). Returns how many. Thread-safe. */
unsigned broker_kick_revoked(struct broker *b);

/* The callbacks net calls; ctx is the struct broker. */
const struct net_handler *broker_net_handler(void);

#endif
