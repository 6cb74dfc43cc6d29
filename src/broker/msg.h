/* An application message as the broker keeps it: one allocation holding the
 * topic, payload and the v5 properties that travel with it, reference-counted
 * and shared by every subscriber queue, inflight window and the retained
 * store that holds it. Never copied per subscriber. Immutable once made. */
#ifndef WARD_BROKER_MSG_H
#define WARD_BROKER_MSG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt/mqtt.h"

struct msg {
    _Atomic uint32_t refs;
    uint8_t qos; /* QoS it was published with */
    bool retain; /* RETAIN flag as published */
    bool has_expiry;
    uint8_t payload_format; /* v5 payload format indicator (0 if absent) */
    bool has_payload_format;
    uint64_t expire_at_ms; /* clock_mono_ms() deadline when has_expiry */
    uint64_t created_ms;   /* clock_mono_ms() when received */
    uint64_t store_id;     /* persist.c: its row in the store, 0: none */
    uint32_t prefs;        /* persist.c: persistent references to it (broker lock) */
    /* Views into `data` below (not NUL-terminated except topic, which is). */
    const char *topic;
    uint16_t topic_len;
    const uint8_t *payload;
    uint32_t payload_len;
    const uint8_t *content_type;
    uint16_t content_type_len;
    const uint8_t *response_topic;
    uint16_t response_topic_len;
    const uint8_t *correlation;
    uint16_t correlation_len;
    const uint8_t *user_raw; /* user properties in wire form (see mqtt_props) */
    uint32_t user_raw_len;
    const char *origin; /* client id of the publisher (for No Local), NUL-terminated */
    uint16_t origin_len;
    /* From a NATS publisher (msg_from_nats), for NATS subscribers: its
     * subject and reply subject as sent, and its header block byte for
     * byte (MQTT subscribers see the mapped topic, response topic and
     * user properties above). Empty for MQTT publishers. */
    const char *nats_subject;
    uint16_t nats_subject_len;
    const char *nats_reply;
    uint16_t nats_reply_len;
    const uint8_t *nats_hdr;
    uint32_t nats_hdr_len;
    uint8_t data[];
};

/* Builds a message from a decoded PUBLISH (topic already resolved from any
 * topic alias and passed separately) and the publisher's client id. Copies
 * everything it needs out of the packet. Returns NULL on allocation failure.
 * refs starts at 1. */
struct msg *msg_from_publish(const struct mqtt_publish *p, const uint8_t *topic, uint16_t topic_len,
                             const char *origin, uint64_t now_ms);
/* Builds a message from plain parts (wills are built from CONNECT; $SYS
 * messages from strings). props may be NULL. */
struct msg *msg_new(const uint8_t *topic, uint16_t topic_len, const uint8_t *payload,
                    uint32_t payload_len, uint8_t qos, bool retain, const struct mqtt_props *props,
                    const char *origin, uint64_t now_ms);
/* A message from a NATS PUB/HPUB: topic and response_topic in MQTT form
 * (src/nats mapping), subject/reply/hdr as the NATS client sent them,
 * user_raw the headers as MQTT user properties in wire form,
 * correlation the correlation data a header carried. */
struct msg_nats {
    const uint8_t *topic, *subject, *reply, *reply_topic, *hdr, *payload, *user_raw, *correlation;
    uint16_t topic_len, subject_len, reply_len, reply_topic_len, correlation_len;
    uint32_t hdr_len, payload_len, user_raw_len;
    const char *origin;
};
struct msg *msg_from_nats(const struct msg_nats *n, uint64_t now_ms);
struct msg *msg_ref(struct msg *m);
void msg_unref(struct msg *m);
/* About how many bytes the message takes as a PUBLISH (an upper bound of
 * its variable parts plus a fixed allowance), for output bounds. */
size_t msg_wire_size(const struct msg *m);
/* Whether the message expiry interval has passed at now_ms. */
bool msg_expired(const struct msg *m, uint64_t now_ms);
/* Seconds left of the expiry interval (rounded up), for the forwarded
 * Message Expiry Interval (MQTT-3.3.2-6). Only meaningful when has_expiry. */
uint32_t msg_expiry_left(const struct msg *m, uint64_t now_ms);
/* Fills the v5 properties of an outgoing PUBLISH from the message (payload
 * format, remaining expiry, content type, response topic, correlation data,
 * user properties). Subscription identifiers and topic alias are the
 * caller's. */
void msg_fill_props(const struct msg *m, uint64_t now_ms, struct mqtt_props *out);

#endif
