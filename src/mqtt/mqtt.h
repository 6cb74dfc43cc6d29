/* MQTT 3.1.1 and 5.0 codec: bytes in, structs out, and back. Sans-I/O.
 *
 * Decoding never allocates and never does I/O: a decoded packet holds views
 * (pointer + length) into the caller's input buffer, valid while that buffer
 * is. Encoding writes into a caller-provided buffer.
 *
 * Every validation the specifications place on the wire format lives here
 * (reserved flags, remaining length, UTF-8 well-formedness, property rules,
 * packet identifier presence, topic name/filter syntax); rules that need
 * broker state (session, authorization, limits other than packet size) do not. */
#ifndef WARD_MQTT_MQTT_H
#define WARD_MQTT_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/result.h"

enum mqtt_version {
    MQTT_V31 = 3,  /* "MQIsdp", handled with 3.1.1 semantics */
    MQTT_V311 = 4, /* "MQTT" level 4 */
    MQTT_V5 = 5,   /* "MQTT" level 5 */
};

enum mqtt_type {
    MQTT_CONNECT = 1,
    MQTT_CONNACK = 2,
    MQTT_PUBLISH = 3,
    MQTT_PUBACK = 4,
    MQTT_PUBREC = 5,
    MQTT_PUBREL = 6,
    MQTT_PUBCOMP = 7,
    MQTT_SUBSCRIBE = 8,
    MQTT_SUBACK = 9,
    MQTT_UNSUBSCRIBE = 10,
    MQTT_UNSUBACK = 11,
    MQTT_PINGREQ = 12,
    MQTT_PINGRESP = 13,
    MQTT_DISCONNECT = 14,
    MQTT_AUTH = 15,
};

/* MQTT 5.0 reason codes (section 2.4). 3.1.1 CONNACK return codes are the
 * MQTT_RC311_* values. */
enum mqtt_rc {
    MQTT_RC_SUCCESS = 0x00, /* also Normal disconnection, Granted QoS 0 */
    MQTT_RC_GRANTED_QOS1 = 0x01,
    MQTT_RC_GRANTED_QOS2 = 0x02,
    MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
    MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
    MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
    MQTT_RC_CONTINUE_AUTH = 0x18,
    MQTT_RC_REAUTHENTICATE = 0x19,
    MQTT_RC_UNSPECIFIED = 0x80,
    MQTT_RC_MALFORMED = 0x81,
    MQTT_RC_PROTOCOL_ERROR = 0x82,
    MQTT_RC_IMPL_SPECIFIC = 0x83,
    MQTT_RC_UNSUPPORTED_VERSION = 0x84,
    MQTT_RC_CLIENT_ID_NOT_VALID = 0x85,
    MQTT_RC_BAD_USERNAME_OR_PASSWORD = 0x86,
    MQTT_RC_NOT_AUTHORIZED = 0x87,
    MQTT_RC_SERVER_UNAVAILABLE = 0x88,
    MQTT_RC_SERVER_BUSY = 0x89,
    MQTT_RC_BANNED = 0x8A,
    MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
    MQTT_RC_BAD_AUTH_METHOD = 0x8C,
    MQTT_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
    MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
    MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
    MQTT_RC_TOPIC_NAME_INVALID = 0x90,
    MQTT_RC_PACKET_ID_IN_USE = 0x91,
    MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
    MQTT_RC_RECEIVE_MAX_EXCEEDED = 0x93,
    MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
    MQTT_RC_PACKET_TOO_LARGE = 0x95,
    MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
    MQTT_RC_QUOTA_EXCEEDED = 0x97,
    MQTT_RC_ADMIN_ACTION = 0x98,
    MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
    MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
    MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
    MQTT_RC_USE_ANOTHER_SERVER = 0x9C,
    MQTT_RC_SERVER_MOVED = 0x9D,
    MQTT_RC_SHARED_SUBS_NOT_SUPPORTED = 0x9E,
    MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
    MQTT_RC_MAX_CONNECT_TIME = 0xA0,
    MQTT_RC_SUB_IDS_NOT_SUPPORTED = 0xA1,
    MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED = 0xA2,
};

enum mqtt_rc311 {
    MQTT_RC311_ACCEPTED = 0,
    MQTT_RC311_BAD_PROTOCOL_VERSION = 1,
    MQTT_RC311_IDENTIFIER_REJECTED = 2,
    MQTT_RC311_SERVER_UNAVAILABLE = 3,
    MQTT_RC311_BAD_USERNAME_OR_PASSWORD = 4,
    MQTT_RC311_NOT_AUTHORIZED = 5,
};

/* Property identifiers (section 2.2.2.2). */
enum mqtt_prop_id {
    MQTT_PROP_PAYLOAD_FORMAT = 0x01,
    MQTT_PROP_MESSAGE_EXPIRY = 0x02,
    MQTT_PROP_CONTENT_TYPE = 0x03,
    MQTT_PROP_RESPONSE_TOPIC = 0x08,
    MQTT_PROP_CORRELATION_DATA = 0x09,
    MQTT_PROP_SUBSCRIPTION_ID = 0x0B,
    MQTT_PROP_SESSION_EXPIRY = 0x11,
    MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,
    MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,
    MQTT_PROP_AUTH_METHOD = 0x15,
    MQTT_PROP_AUTH_DATA = 0x16,
    MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,
    MQTT_PROP_WILL_DELAY = 0x18,
    MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19,
    MQTT_PROP_RESPONSE_INFO = 0x1A,
    MQTT_PROP_SERVER_REFERENCE = 0x1C,
    MQTT_PROP_REASON_STRING = 0x1F,
    MQTT_PROP_RECEIVE_MAX = 0x21,
    MQTT_PROP_TOPIC_ALIAS_MAX = 0x22,
    MQTT_PROP_TOPIC_ALIAS = 0x23,
    MQTT_PROP_MAX_QOS = 0x24,
    MQTT_PROP_RETAIN_AVAILABLE = 0x25,
    MQTT_PROP_USER_PROPERTY = 0x26,
    MQTT_PROP_MAX_PACKET_SIZE = 0x27,
    MQTT_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
    MQTT_PROP_SUB_ID_AVAILABLE = 0x29,
    MQTT_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

/* Bit for property id `id` in mqtt_props.present (ids are all < 64). */
#define MQTT_HAS(id) (1ull << (id))

/* A UTF-8 string view (length-prefixed on the wire, not NUL-terminated). */
struct mqtt_str {
    const uint8_t *p;
    uint16_t len;
};

/* A binary data view. */
struct mqtt_bin {
    const uint8_t *p;
    uint32_t len;
};

#define MQTT_MAX_SUB_IDS 16

/* MQTT 5.0 properties of any packet. `present` has MQTT_HAS(id) set for each
 * property that appears (or, when encoding, that is to be written).
 *
 * User properties: when decoding, `raw` views the whole property block and
 * `user_count` counts the user properties; walk them with mqtt_props_next_user().
 * When encoding, `user_raw` holds user properties already in wire form (each
 * entry 0x26, key string, value string, back to back), so a broker forwards
 * them without re-parsing; mqtt_props_copy_user() produces that form. */
struct mqtt_props {
    uint64_t present;
    uint8_t payload_format;
    uint32_t message_expiry;
    struct mqtt_str content_type;
    struct mqtt_str response_topic;
    struct mqtt_bin correlation_data;
    uint32_t sub_ids[MQTT_MAX_SUB_IDS]; /* PUBLISH to a client may carry several */
    uint8_t sub_id_count;
    uint32_t session_expiry;
    struct mqtt_str assigned_client_id;
    uint16_t server_keep_alive;
    struct mqtt_str auth_method;
    struct mqtt_bin auth_data;
    uint8_t request_problem_info;
    uint32_t will_delay;
    uint8_t request_response_info;
    struct mqtt_str response_info;
    struct mqtt_str server_reference;
    struct mqtt_str reason_string;
    uint16_t receive_max;
    uint16_t topic_alias_max;
    uint16_t topic_alias;
    uint8_t max_qos;
    uint8_t retain_available;
    uint32_t max_packet_size;
    uint8_t wildcard_sub_available;
    uint8_t sub_id_available;
    uint8_t shared_sub_available;
    /* user properties */
    uint16_t user_count;
    struct mqtt_bin raw;      /* decode: the whole property block */
    struct mqtt_bin user_raw; /* encode: user properties in wire form */
};

struct mqtt_connect {
    struct mqtt_str protocol_name;
    uint8_t version; /* enum mqtt_version */
    /* The protocol level had 0x80 set: a 3.1/3.1.1 bridge (Mosquitto's
     * try_private). version holds the level without the bit. */
    bool bridge;
    bool clean_start;
    uint16_t keep_alive;
    struct mqtt_props props;
    struct mqtt_str client_id;
    bool will_flag;
    uint8_t will_qos;
    bool will_retain;
    struct mqtt_props will_props;
    struct mqtt_str will_topic;
    struct mqtt_bin will_payload;
    bool has_username;
    struct mqtt_str username;
    bool has_password;
    struct mqtt_bin password;
};

struct mqtt_connack {
    bool session_present;
    uint8_t reason; /* v5 reason code, or 3.1.1 return code */
    struct mqtt_props props;
};

struct mqtt_publish {
    uint8_t qos;
    bool dup;
    bool retain;
    struct mqtt_str topic; /* may be empty in v5 when a topic alias is used */
    uint16_t packet_id;    /* 0 for QoS 0 */
    struct mqtt_props props;
    struct mqtt_bin payload;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
struct mqtt_ack {
    uint16_t packet_id;
    uint8_t reason;
    struct mqtt_props props;
};

/* Subscription options byte: bits 0-1 QoS, bit 2 No Local, bit 3 Retain As
 * Published, bits 4-5 Retain Handling (v5; 3.1.1 only has QoS). */
#define MQTT_SUBOPT_QOS(o)   ((uint8_t)((o)&0x03))
#define MQTT_SUBOPT_NO_LOCAL 0x04
#define MQTT_SUBOPT_RAP      0x08
#define MQTT_SUBOPT_RH(o)    ((uint8_t)(((o) >> 4) & 0x03))

struct mqtt_subscription {
    struct mqtt_str filter;
    uint8_t options;
};

/* SUBSCRIBE: decoding validates every entry; walk them with
 * mqtt_subscribe_next(). Encoding reads `subs[0..count)`. */
struct mqtt_subscribe {
    uint16_t packet_id;
    struct mqtt_props props;
    uint32_t count;
    struct mqtt_bin payload;              /* decode */
    const struct mqtt_subscription *subs; /* encode */
};

/* UNSUBSCRIBE: likewise, with mqtt_unsubscribe_next() and `filters`. */
struct mqtt_unsubscribe {
    uint16_t packet_id;
    struct mqtt_props props;
    uint32_t count;
    struct mqtt_bin payload;        /* decode */
    const struct mqtt_str *filters; /* encode */
};

/* SUBACK and UNSUBACK: one reason code byte per filter. (3.1.1 UNSUBACK has
 * none: count is 0.) */
struct mqtt_suback {
    uint16_t packet_id;
    struct mqtt_props props;
    struct mqtt_bin reasons;
};

struct mqtt_disconnect {
    uint8_t reason;
    struct mqtt_props props;
};

struct mqtt_auth {
    uint8_t reason;
    struct mqtt_props props;
};

struct mqtt_packet {
    enum mqtt_type type;
    uint8_t flags; /* low 4 bits of the fixed header */
    union {
        struct mqtt_connect connect;
        struct mqtt_connack connack;
        struct mqtt_publish publish;
        struct mqtt_ack ack; /* PUBACK PUBREC PUBREL PUBCOMP */
        struct mqtt_subscribe subscribe;
        struct mqtt_suback suback; /* SUBACK UNSUBACK */
        struct mqtt_unsubscribe unsubscribe;
        struct mqtt_disconnect disconnect;
        struct mqtt_auth auth;
    } u;
};

/* Codec settings for one connection, one direction. */
struct mqtt_codec {
    uint8_t version;          /* 0 before CONNECT is seen; then MQTT_V31/V311/V5 */
    bool is_server;           /* decoding what a client sent (vs. what a server sent) */
    uint32_t max_packet_size; /* whole packet incl. fixed header; 0 = protocol max */
};

/* Status of mqtt_decode beyond the mqtt_rc reason codes. */
#define MQTT_INCOMPLETE (-1)

/* Decodes one packet from buf[0..len).
 * Returns 0 (MQTT_RC_SUCCESS) and sets *used to the packet's size on success;
 * MQTT_INCOMPLETE when more bytes are needed (nothing consumed);
 * or a reason code saying why the bytes are not acceptable:
 *   MQTT_RC_MALFORMED (0x81), MQTT_RC_PROTOCOL_ERROR (0x82),
 *   MQTT_RC_PACKET_TOO_LARGE (0x95; reported as soon as the fixed header says
 *   so, without waiting for the body), MQTT_RC_UNSUPPORTED_VERSION (0x84, for
 *   CONNECT: out->u.connect.version is set so the caller can answer in kind),
 *   MQTT_RC_TOPIC_NAME_INVALID (0x90), MQTT_RC_PAYLOAD_FORMAT_INVALID (0x99).
 * A syntactically invalid topic filter is malformed (0x81): 0x8F is for
 * well-formed filters the broker refuses, among them a "$share/" filter
 * that mqtt_share_split rejects (the codec lets it through so the broker
 * can refuse that filter alone, in either version). No Local on a shared
 * subscription is a protocol error (MQTT-3.8.3-4).
 * When codec->version is 0 only CONNECT is accepted (first packet rule). A
 * CONNECT decoded by the caller sets codec->version for what follows. */
WARD_WUR int mqtt_decode(const struct mqtt_codec *codec, const uint8_t *buf, size_t len,
                         struct mqtt_packet *out, size_t *used);

/* Size of the whole encoded packet (fixed header included). */
WARD_WUR size_t mqtt_encoded_size(const struct mqtt_codec *codec, const struct mqtt_packet *p);

/* Encodes p into out[0..cap). Returns bytes written, or 0 if cap is too small
 * or the packet cannot be represented (for example a string over 65535 bytes).
 * v5-only fields are omitted for 3.1.1. */
WARD_WUR size_t mqtt_encode(const struct mqtt_codec *codec, const struct mqtt_packet *p,
                            uint8_t *out, size_t cap);

/* Walks SUBSCRIBE entries; *pos starts at 0. Returns false at the end. */
bool mqtt_subscribe_next(const struct mqtt_subscribe *s, size_t *pos,
                         struct mqtt_subscription *out);
/* Walks UNSUBSCRIBE filters; *pos starts at 0. Returns false at the end. */
bool mqtt_unsubscribe_next(const struct mqtt_unsubscribe *u, size_t *pos, struct mqtt_str *out);
/* Walks decoded user properties (props->raw); *pos starts at 0. */
bool mqtt_props_next_user(const struct mqtt_props *props, size_t *pos, struct mqtt_str *key,
                          struct mqtt_str *val);
/* Writes the decoded user properties in wire form (for user_raw). Returns the
 * bytes needed; writes only if cap is large enough. */
WARD_WUR size_t mqtt_props_copy_user(const struct mqtt_props *props, uint8_t *out, size_t cap);

/* MQTT-1.5.4: well-formed UTF-8, no U+0000, no surrogates. */
bool mqtt_utf8_valid(const uint8_t *p, size_t len);
/* MQTT-4.7: topic names have no wildcards and are non-empty. */
bool mqtt_topic_name_valid(const uint8_t *p, size_t len);
/* MQTT-4.7.1: '#' last and alone in its level, '+' alone in its level. */
bool mqtt_topic_filter_valid(const uint8_t *p, size_t len);

/* A view into a caller's buffer. */
struct mqtt_span {
    const uint8_t *p;
    size_t len;
};

/* The one way ward splits a topic or filter into levels (MQTT 4.7.1.1):
 * every '/' separates two levels, so "a//b" has three, "/a" and "a/" two
 * (one empty), and "" one empty level. *pos starts at 0; each call sets
 * *level to the next level and returns true, or returns false when none
 * is left. */
bool mqtt_level_next(const uint8_t *s, size_t len, size_t *pos, struct mqtt_span *level);
/* Whether a level is exactly the one character c (the wildcards '+', '#'). */
bool mqtt_level_is(const struct mqtt_span *level, char c);
/* MQTT-4.7.2-1: a topic starting with '$' is not matched by a filter that
 * starts with a wildcard. */
bool mqtt_topic_is_dollar(const uint8_t *topic, size_t tlen);

/* What the wildcards of a filter matched in a topic, for callers that
 * rebuild topics from them (bridge remapping). The caller provides plus[]. */
struct mqtt_captures {
    struct mqtt_span *plus; /* each '+' level, in order; the first plus_cap kept */
    size_t plus_cap;
    size_t nplus;          /* '+' levels matched (may exceed plus_cap) */
    struct mqtt_span hash; /* what '#' matched: the rest of the topic, maybe empty */
    bool has_hash;
};

/* Whether topic name matches filter, including the rule that a filter starting
 * with a wildcard does not match a topic starting with '$' (MQTT-4.7.2-1) and
 * that "a/#" matches "a" (MQTT-4.7.1-2). The reference matcher: the ACL and
 * bridge remapping use it; the subscription tree is tested against it. */
bool mqtt_topic_match(const uint8_t *filter, size_t flen, const uint8_t *topic, size_t tlen);
/* The same, also filling *cap (NULL: none) when it matches. "a/#" against
 * "a" or "a/" gives an empty hash capture. */
bool mqtt_topic_match_capture(const uint8_t *filter, size_t flen, const uint8_t *topic, size_t tlen,
                              struct mqtt_captures *cap);

/* A subscription filter, seen through its shared-subscription prefix. */
struct mqtt_share {
    const uint8_t *group; /* the ShareName; NULL when the filter is not shared */
    size_t group_len;
    const uint8_t *filter; /* the filter to match topics with */
    size_t filter_len;
};

/* The one parser of "$share/{ShareName}/{filter}" (MQTT 5 4.8.2), used by
 * the codec, the broker, the subscription tree and the ACL.
 *
 * A filter that does not start with "$share/" (case-sensitive; "$share"
 * alone included) is not shared: true, group NULL, filter = f whole (its
 * syntax is mqtt_topic_filter_valid's business). One that does is shared
 * and must have a ShareName of at least one character without '/', '+' or
 * '#' (MQTT-4.8.2-1/2), then '/', then a valid non-empty filter that is not
 * itself shared: true with both views set; otherwise false ("$share/",
 * "$share/g", "$share//t", "$share/g/", "$share/+/t", "$share/g/$share/h/t").
 *
 * The same rules hold for MQTT 3.1.1, which has no shared subscriptions:
 * ward, like Mosquitto (2.0.11 checked: a 3.1.1 "$share/g/t" subscriber
 * shares messages to "t"), offers them on 3.1.1 too. A false answer means
 * the broker refuses that one filter: SUBACK 0x8F in v5, 0x80 in 3.1.1. */
bool mqtt_share_split(const uint8_t *f, size_t len, struct mqtt_share *out);

/* Variable byte integer (1..4 bytes). Encode returns bytes written (0 if the
 * value is over 268435455); decode returns bytes read, 0 if incomplete, -1 if
 * malformed (a fifth continuation byte). */
size_t mqtt_vbi_encode(uint32_t v, uint8_t *out);
WARD_WUR int mqtt_vbi_decode(const uint8_t *p, size_t len, uint32_t *v);
size_t mqtt_vbi_size(uint32_t v);

const char *mqtt_type_name(enum mqtt_type t);
const char *mqtt_rc_name(uint8_t rc);
/* A CONNACK code's name: v5 reason codes, or the 3.1.1 return codes (which
 * reuse small numbers with other meanings). */
const char *mqtt_connack_name(uint8_t version, uint8_t rc);

#endif
