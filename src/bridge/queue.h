/* The bridge's message queue: messages waiting to be sent to one side of a
 * bridge, in order, bounded, with the QoS 1/2 state of those in flight.
 *
 * Messages are sent in queue order, so every message in flight (SENT or
 * PUBREL) comes before every message not yet sent; `next` points at the
 * first of those. An acknowledged message leaves the queue wherever it is.
 * Not thread-safe: one bridge thread owns it. */
#ifndef WARD_BRIDGE_QUEUE_H
#define WARD_BRIDGE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt/mqtt.h"

enum bq_state {
    BQ_QUEUED, /* not sent on the current connection */
    BQ_SENT,   /* PUBLISH sent, PUBACK / PUBREC awaited */
    BQ_PUBREL  /* QoS 2: PUBREC received, PUBREL sent, PUBCOMP awaited */
};

struct bq_msg {
    struct bq_msg *prev, *next;
    enum bq_state state;
    uint8_t qos;
    bool retain;
    bool sent_before;    /* sent on an earlier connection: a resend carries DUP */
    bool relay;          /* QoS 2 both ways: the upstream PUBREL waits for the local one */
    bool rel_sent;       /* relay: the upstream PUBREL was sent */
    uint16_t pid;        /* while SENT/PUBREL */
    uint16_t origin_pid; /* the packet id it arrived with, to acknowledge it */
    uint32_t origin_gen; /* the connection it arrived on */
    uint8_t origin_qos;
    const char *topic;
    uint16_t topic_len;
    const uint8_t *payload;
    uint32_t payload_len;
    struct mqtt_props props; /* views into this allocation */
    uint8_t data[];
};

struct bq {
    struct bq_msg *head, *tail, *next;
    uint32_t count;    /* messages in the queue */
    uint32_t inflight; /* of which SENT or PUBREL */
    uint32_t limit;    /* most messages held; 0: no limit */
};

void bq_init(struct bq *q, uint32_t limit);
/* Frees every message. */
void bq_clear(struct bq *q);

/* A copy of a message: topic, payload, and those v5 properties a bridge
 * passes on (payload format, message expiry, content type, response topic,
 * correlation data, user properties; props may be NULL). NULL when out of
 * memory. */
struct bq_msg *bq_msg_new(const char *topic, size_t topic_len, const uint8_t *payload,
                          size_t payload_len, const struct mqtt_props *props, uint8_t qos,
                          bool retain);
void bq_msg_free(struct bq_msg *m);

/* Appends m. Returns 0, or -1 if the queue is full (m not taken). */
int bq_push(struct bq *q, struct bq_msg *m);
/* The first message not yet sent, or NULL. */
struct bq_msg *bq_peek_unsent(const struct bq *q);
/* Marks the first unsent message SENT with packet id pid. */
void bq_mark_sent(struct bq *q, struct bq_msg *m, uint16_t pid);
/* The message in flight with packet id pid, or NULL. */
struct bq_msg *bq_find(const struct bq *q, uint16_t pid);
/* Unlinks m and frees it. */
void bq_remove(struct bq *q, struct bq_msg *m);
/* After the connection was lost without its session (clean start, or the
 * server had none): every message in flight is to be sent again as new. */
void bq_requeue(struct bq *q);
/* After the connection was lost: every message in flight is marked
 * sent_before (a resend on a resumed session carries DUP, MQTT-3.3.1-1). */
void bq_mark_resend(struct bq *q);

#endif
