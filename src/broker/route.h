/* Routing (src/broker/route.c): matching a message against the
 * subscriptions, merging overlapping ones per session, and delivering:
 * straight to the socket for QoS 0, through the session's inflight window
 * and queue for QoS 1/2. Calls session.c and conn.c, never broker.c.
 * Guarded by the broker lock. */
#ifndef WARD_BROKER_ROUTE_H
#define WARD_BROKER_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

struct broker;
struct client;
struct msg;
struct session;

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

#endif
