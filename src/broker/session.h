/* Sessions (src/broker/session.c): the table keyed by client id, the offline
 * list with its deadlines, each session's own subscriptions, outbound packet
 * identifiers, delivery lists and inbound QoS 2 state.
 *
 * session.c is the bottom of the broker's files: it calls nothing in
 * conn.c, route.c or broker.c. A session's will is the caller's to publish
 * before it ends the session. Guarded by the broker lock. */
#ifndef WARD_BROKER_SESSION_H
#define WARD_BROKER_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"
#include "broker/msg.h"
#include "mqtt/mqtt.h"

#define SESSION_NEVER_EXPIRES UINT32_MAX

struct broker;
/* One outbound QoS 1/2 message (queued or in flight), holding a reference. */
struct delivery {
    struct delivery *next;
    struct msg *m;
    uint8_t qos;
    bool retain;
    bool pubrel_sent;     /* QoS 2: PUBREC received, PUBREL sent */
    bool sent;            /* sent at least once: resends carry DUP */
    bool unsent;          /* in flight but not written: the output was full */
    uint64_t held_ticket; /* persist.c: a QoS 2 PUBLISH waits for this commit (its packet id) */
    uint16_t pid;
    uint8_t pstate; /* persist.c: 0 not stored, 1 message held, 2 row written */
    uint64_t seq;   /* order within the session (persist.c) */
    uint8_t nsub;
    uint32_t sub_ids[MQTT_MAX_SUB_IDS];
};

/* The broker's count across sessions (st.queued, st.inflight) is kept by
 * the session_queue_ / session_inflight_ functions, not by the list, so
 * that a session does not carry a pointer to it in each list. */
struct delivery_list {
    struct delivery *head, *tail;
    uint32_t count;
};

struct client;

/* Offline sessions by their next deadline (a pending will or the expiry), a
 * binary min-heap, so housekeeping looks only at sessions that are due
 * instead of walking every offline session each tick. */
struct session_heap {
    struct session **v;
    size_t n, cap;
    bool missed; /* an insertion failed (no memory): look for it again */
};

struct session {
    char *id;
    struct client *c; /* NULL while offline */
    struct session *hnext;
    struct session *oprev, *onext; /* offline list */
    size_t heap_pos;               /* 1 + its index in the broker's deadline heap; 0: not in it */
    uint64_t deadline;             /* its heap key: the earlier of will_at and expire_at */
    uint64_t expire_at;
    struct delivery_list inflight;
    struct delivery_list queue;
    uint8_t *pid_used; /* bitmap of outbound ids in flight, 8 KiB, lazily made */
    uint16_t *rel_ids; /* inbound QoS 2 ids awaiting PUBREL */
    size_t caprel;
    struct msg *will;
    uint64_t will_at;  /* non-zero: a delayed will is pending */
    char **subs;       /* its filters as subscribed ($share/GROUP/ included) */
    uint8_t *sub_opts; /* each filter's options byte, for inspection (inspect.h) */
    size_t capsubs;    /* of both subs and sub_opts */
    char *owner;       /* the identity that made it ("" anonymous); only it may resume it */
    char *username;    /* for ACLs: the verified user name, or NULL */
    char *cert_cn;     /* and its certificate's identity, when it had one */
    char *cert_ou;
    uint64_t blocking_since_ms;
    uint64_t next_seq;       /* persist.c: the last delivery's seq */
    struct msg *stored_will; /* persist.c: the will the store's row names (a reference) */
    uint32_t expiry_s;       /* SESSION_NEVER_EXPIRES for 3.1.1 persistent sessions */
    uint32_t nrel;
    uint32_t will_delay_s;
    uint32_t nsubs;
    uint32_t match_gen; /* merging overlapping subscriptions in route.c */
    uint32_t match_idx;
    uint16_t next_pid;
    uint8_t protocol; /* MQTT protocol level of its last connection */
    bool offline_listed;
    bool trusted;  /* an in-process client (a bridge): no ACL applies */
    bool blocking; /* flow.c: its full queue holds producers back */
    bool bridge;   /* MQTT 3.1.1 bridge flag: no local, retain as published */
    bool persist;  /* persist.c: kept in the store */
};

/* Sets the session's owner to a copy of owner ("" for an anonymous one:
 * every anonymous session shares one empty string instead of allocating
 * its own). False if memory runs out; the old owner is then kept. */
bool session_set_owner(struct session *s, const char *owner);
/* Frees the owner and leaves it NULL (session_end does this). */
void session_free_owner(struct session *s);

struct session *session_find(struct broker *b, const char *id);
struct session *session_new(struct broker *b, const char *id);
/* Ends a session: drops its subscriptions (its own, found through its list,
 * never by walking the tree), queued and in-flight messages and its will
 * (unpublished: publishing it is the caller's), and frees it. */
void session_end(struct broker *b, struct session *s);
/* Lists s as offline and files it under its next deadline (session_deadline_
 * update), so will_at / expire_at are set before this is called. Listing a
 * listed session again only refiles it. Removing takes it off both. */
void session_offline_add(struct broker *b, struct session *s);
void session_offline_remove(struct broker *b, struct session *s);

/* The earliest of an offline session's deadlines: will_at while a will is
 * pending, expire_at unless it never expires. 0: it has none. */
uint64_t session_next_deadline(const struct session *s);
/* Refiles an offline session after its will_at, will or expiry changed:
 * moves it in the heap, adds it, or takes it out (no deadline, or online).
 * O(log n). If memory runs out the heap marks itself missed, and
 * session_deadline_due finds the session by walking the list instead. */
void session_deadline_update(struct broker *b, struct session *s);
/* The offline session whose deadline is earliest if that is at or before
 * now_ms, else NULL. The caller acts on it (publishes the will, ends it)
 * and refiles it with session_deadline_update or ends it; otherwise the
 * same session comes back. */
struct session *session_deadline_due(struct broker *b, uint64_t now_ms);
/* Frees the heap's array (broker_free, after every session has ended). */
void session_deadlines_free(struct broker *b);

/* Subscribes the session to filter in the broker's tree and remembers it.
 * Returns 1 if added, 0 if an existing one was replaced, -1 on allocation
 * failure (nothing changed). */
int session_subscribe(struct broker *b, struct session *s, const uint8_t *filter, size_t len,
                      uint8_t options, uint32_t sub_id);
/* Whether the session holds a subscription to exactly this filter. */
bool session_has_sub(const struct session *s, const uint8_t *filter, size_t len);
/* Removes one subscription; 1 if it existed, else 0. */
int session_unsubscribe(struct broker *b, struct session *s, const uint8_t *filter, size_t len);

/* A free outbound packet identifier, marked used. 0 if all are in use. */
uint16_t session_pid_take(struct session *s);
void session_pid_release(struct session *s, uint16_t pid);
/* A session's queue and in-flight list, counted in the broker's
 * st.queued and st.inflight as well. */
void session_queue_add(struct broker *b, struct session *s, struct delivery *d);
struct delivery *session_queue_pop(struct broker *b, struct session *s);
void session_inflight_add(struct broker *b, struct session *s, struct delivery *d);
/* Unlinks the in-flight delivery with pid; NULL if none. */
struct delivery *session_inflight_take(struct broker *b, struct session *s, uint16_t pid);
/* Any list, counted in nothing else. */
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

#endif
