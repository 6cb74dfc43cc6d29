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
/* The same for a client's PUBLISH under backpressure: if a receiver is
 * full (flow_blocks), nothing is delivered, flow_hit says FLOW_THROTTLE and
 * false is returned; the caller holds the PUBLISH for later. */
bool route_publish_or_wait(struct broker *b, struct msg *m, struct session *from);
/* The client's output drained: sends what could not go out, pumps its
 * queue, and lets producers go if it was holding them. */
void route_drained(struct broker *b, struct client *c);
/* Queues or sends one message to one session. */
void route_deliver(struct broker *b, struct session *s, struct msg *m, uint8_t qos, bool retain,
                   const uint32_t *sub_ids, uint8_t nsub);
/* Sends what the client's window allows from its queue. */
void route_pump(struct broker *b, struct client *c);
/* Resends in-flight messages after a session resumes (DUP set). */
void route_resend(struct broker *b, struct client *c);
/* A retained message for a client's new subscription (MQTT-3.3.1-9: sent
 * with RETAIN 1): delivered now if it fits (its output for QoS 0, its queue
 * for QoS 1/2), else kept in the client's retained backlog and sent in
 * order as room comes, so a large retained set reaches a subscriber that
 * reads it, however slowly. The backlog is bounded
 * (mqtt.max_retained_messages, else a million); past it, dropped and counted. */
void route_retained(struct broker *b, struct client *c, struct msg *m, uint8_t qos,
                    uint32_t sub_id);
/* The client is gone: its retained backlog is let go. */
void route_retained_forget(struct client *c);
/* Publishes a message the broker itself makes ($SYS, wills). */
void route_internal(struct broker *b, struct msg *m);

#endif
