/* Flow control (src/broker/flow.c): producers wait while a receiver they
 * feed cannot take more, instead of their messages being dropped.
 *
 * A client PUBLISH is routed only if none of its online receivers whose
 * listener follows mqtt.overload = backpressure is full: its QoS 1/2 queue
 * at max_queued, or (for a QoS 0 delivery) its output over its bound.
 * Otherwise the PUBLISH stays undecoded in the producer's input, the
 * producer is throttled (net stops reading it: TCP carries the pressure
 * back to the device) and the receiver is marked as blocking. When a
 * blocking receiver drains to half its queue, or its output drains, or it
 * goes away, every throttled producer is let go and retries; one whose
 * receiver is still full waits again. Nothing is acknowledged and then
 * dropped, and no queue ever grows past its bound for it.
 *
 * flow.c calls only net; guarded by the broker lock. */
#ifndef WARD_BROKER_FLOW_H
#define WARD_BROKER_FLOW_H

#include <stdbool.h>
#include <stdint.h>

struct broker;
struct msg;
struct client;
struct session;

/* What routing met, for the PUBLISH being handled (broker->flow_hit). */
enum flow_hit {
    FLOW_OK,
    FLOW_THROTTLE, /* a receiver is full: hold the PUBLISH, throttle its producer */
    FLOW_REJECT,   /* a receiver is full under overload = reject: dropped for it */
};

/* The mqtt.overload rule for messages to this client. */
int flow_policy(const struct broker *b, const struct client *c);
/* Whether delivering to s now, at qos, must wait (backpressure). Marks s
 * (or its client's output) as blocking when it must. */
bool flow_blocks(struct broker *b, struct session *s, uint8_t qos, const struct msg *m);
/* The producer c waits: net holds its input until flow_release. */
void flow_throttle(struct broker *b, struct client *c);
/* After a receiver's queue shrank or its output drained: if it was
 * blocking and has room again, lets every throttled producer retry. */
void flow_check(struct broker *b, struct client *c, bool output_drained);
/* Whether c's full queue has held producers back for longer than its
 * connection's slow-consumer timeout: a consumer that reads but does not acknowledge
 * (or acknowledges slower than it is fed, for that long) is disconnected
 * like one whose output is full, which lets its producers go. */
bool flow_stalled(const struct broker *b, const struct client *c, uint64_t now);
/* A client is going away: it no longer waits, and if it was blocking
 * others they retry. */
void flow_forget(struct broker *b, struct client *c);

#endif
