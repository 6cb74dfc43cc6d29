/* Durable state, the broker's side (src/broker/persist.c): which sessions,
 * subscriptions, deliveries, inbound QoS 2 ids, retained messages and wills
 * are written to src/store, loading them back at start, and acknowledging a
 * PUBLISH only once what it changed is committed.
 *
 * Every function is a no-op without a store (broker_set_store(b, NULL), the
 * default) except where it says what it does then. All are called under the
 * broker lock; the commit hook takes the lock itself (store thread). */
#ifndef WARD_BROKER_PERSIST_H
#define WARD_BROKER_PERSIST_H

#include <stdbool.h>
#include <stdint.h>

#include "mqtt/mqtt.h"

struct broker;
struct client;
struct delivery;
struct msg;
struct mqtt_publish;
struct session;

/* mqtt.queue_full_policy for 3.1.1 publishers meeting an offline session's
 * full queue (v5 publishers hear 0x97 with a store). */
enum persist_queue_policy { PERSIST_DROP_NEWEST, PERSIST_DROP_OLDEST };

/* broker_free: the store is no longer written (the sessions freed there
 * stay stored); pending acknowledgements are forgotten. */
void persist_detach(struct broker *b);

/* A client's CONNECT was accepted: decides whether its session is stored
 * (3.1.1 clean session 0, v5 expiry > 0, never in-process clients) and
 * writes its row and will, or removes a row it no longer needs. */
void persist_connected(struct broker *b, struct client *c, struct session *s);
/* The session's row again (gone offline, will published, expiry changed). */
void persist_session_sync(struct broker *b, struct session *s);
/* session_end: the row with its subscriptions, deliveries and rels goes. */
void persist_session_end(struct broker *b, struct session *s);

void persist_sub_put(struct broker *b, struct session *s, const uint8_t *filter, size_t len,
                     uint8_t options, uint32_t sub_id);
void persist_sub_del(struct broker *b, struct session *s, const uint8_t *filter, size_t len);

/* A delivery about to be queued: numbered, its message held. */
void persist_delivery_new(struct broker *b, struct session *s, struct delivery *d);
/* After route_deliver pumped: the newest queued delivery gets its row. */
void persist_delivery_queued(struct broker *b, struct session *s);
/* Moved into the window with a packet id / PUBREC received (PUBREL sent). */
void persist_delivery_update(struct broker *b, struct session *s, struct delivery *d);
/* About to be freed (acknowledged, expired, dropped): its row goes. */
void persist_delivery_done(struct broker *b, struct session *s, struct delivery *d);
/* Before a QoS 1/2 message is queued for s: with drop_oldest and s offline
 * and full, its oldest queued message makes room (counted). */
void persist_queue_room(struct broker *b, struct session *s);
/* After matching a client's PUBLISH: true if an offline stored session's
 * queue is full and the publisher is v5 (flow_hit = FLOW_REJECT: nothing
 * is delivered nor retained, the publisher hears 0x97). */
bool persist_refuses(struct broker *b, struct session *from);

/* Before a QoS 2 PUBLISH first goes to a stored session: its packet id must
 * be committed first, or after a crash it would come again under another id
 * and be a new message to the receiver. Sets d->held_ticket (transmit then
 * waits) and lists the client for the pump after that commit. */
void persist_hold_publish(struct broker *b, struct session *s, struct delivery *d);
/* Asks the store to commit everything written so far; returns the ticket
 * persist_committed() then tells about (0 without a store). */
uint64_t persist_flush(struct broker *b);
/* Whether the commit of `ticket` is done (true without a store). */
bool persist_committed(const struct broker *b, uint64_t ticket);

/* session_rel_add / session_rel_remove, written through. */
int persist_rel_add(struct broker *b, struct session *s, uint16_t pid);
bool persist_rel_remove(struct broker *b, struct session *s, uint16_t pid);

/* retain_set, with the retained entry written ($SYS topics are not). */
int persist_retain_set(struct broker *b, struct msg *m);

/* Before a client's PUBLISH is handled: true if it was refused because the
 * store is full (v5: 0x97; 3.1.1 QoS 1/2: the connection is closed). */
bool persist_refuse_full(struct client *c, const struct mqtt_publish *pub);
/* Sends a PUBACK / PUBREC / PUBCOMP for a client's PUBLISH or PUBREL (and a
 * PUBREL for a subscriber's PUBREC, so its state is stored first) once
 * everything written before it is committed, in the order of the calls
 * (MQTT-4.6.0-2). Without a store: at once. */
void persist_ack(struct client *c, enum mqtt_type t, uint16_t pid, uint8_t reason);
/* The client is being freed: its waiting acknowledgements are dropped. */
void persist_client_gone(struct broker *b, struct client *c);

#endif
