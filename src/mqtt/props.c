/* MQTT 5.0 properties (section 2.2.2): one table gives each property's wire
 * type, where it lives in struct mqtt_props, and which packets may carry it;
 * decoding, sizing and encoding are driven by that table. */
#include <stddef.h>
#include <string.h>

#include "mqtt/wire.h"

enum ptype { P_BYTE, P_U16, P_U32, P_VBI, P_STR, P_BIN, P_PAIR };

/* Where a property may appear: bit (1 << packet type), and bit 0 for the
 * will properties of CONNECT. */
#define IN(t) (1u << (t))
#define WILL  1u
#define MSG   (IN(MQTT_PUBLISH) | WILL)
#define ACKS  (IN(MQTT_PUBACK) | IN(MQTT_PUBREC) | IN(MQTT_PUBREL) | IN(MQTT_PUBCOMP))
#define ALL   0xFFFFu

struct prop_spec {
    uint8_t id;
    uint8_t type;
    uint16_t where;
    size_t off;
};

#define F(f) offsetof(struct mqtt_props, f)
static const struct prop_spec specs[] = {
    {MQTT_PROP_PAYLOAD_FORMAT, P_BYTE, MSG, F(payload_format)},
    {MQTT_PROP_MESSAGE_EXPIRY, P_U32, MSG, F(message_expiry)},
    {MQTT_PROP_CONTENT_TYPE, P_STR, MSG, F(content_type)},
    {MQTT_PROP_RESPONSE_TOPIC, P_STR, MSG, F(response_topic)},
    {MQTT_PROP_CORRELATION_DATA, P_BIN, MSG, F(correlation_data)},
    {MQTT_PROP_SUBSCRIPTION_ID, P_VBI, IN(MQTT_PUBLISH) | IN(MQTT_SUBSCRIBE), F(sub_ids)},
    {MQTT_PROP_SESSION_EXPIRY, P_U32, IN(MQTT_CONNECT) | IN(MQTT_CONNACK) | IN(MQTT_DISCONNECT),
     F(session_expiry)},
    {MQTT_PROP_ASSIGNED_CLIENT_ID, P_STR, IN(MQTT_CONNACK), F(assigned_client_id)},
    {MQTT_PROP_SERVER_KEEP_ALIVE, P_U16, IN(MQTT_CONNACK), F(server_keep_alive)},
    {MQTT_PROP_AUTH_METHOD, P_STR, IN(MQTT_CONNECT) | IN(MQTT_CONNACK) | IN(MQTT_AUTH),
     F(auth_method)},
    {MQTT_PROP_AUTH_DATA, P_BIN, IN(MQTT_CONNECT) | IN(MQTT_CONNACK) | IN(MQTT_AUTH), F(auth_data)},
    {MQTT_PROP_REQUEST_PROBLEM_INFO, P_BYTE, IN(MQTT_CONNECT), F(request_problem_info)},
    {MQTT_PROP_WILL_DELAY, P_U32, WILL, F(will_delay)},
    {MQTT_PROP_REQUEST_RESPONSE_INFO, P_BYTE, IN(MQTT_CONNECT), F(request_response_info)},
    {MQTT_PROP_RESPONSE_INFO, P_STR, IN(MQTT_CONNACK), F(response_info)},
    {MQTT_PROP_SERVER_REFERENCE, P_STR, IN(MQTT_CONNACK) | IN(MQTT_DISCONNECT),
     F(server_reference)},
    {MQTT_PROP_REASON_STRING, P_STR,
     IN(MQTT_CONNACK) | ACKS | IN(MQTT_SUBACK) | IN(MQTT_UNSUBACK) | IN(MQTT_DISCONNECT) |
         IN(MQTT_AUTH),
     F(reason_string)},
    {MQTT_PROP_RECEIVE_MAX, P_U16, IN(MQTT_CONNECT) | IN(MQTT_CONNACK), F(receive_max)},
    {MQTT_PROP_TOPIC_ALIAS_MAX, P_U16, IN(MQTT_CONNECT) | IN(MQTT_CONNACK), F(topic_alias_max)},
    {MQTT_PROP_TOPIC_ALIAS, P_U16, IN(MQTT_PUBLISH), F(topic_alias)},
    {MQTT_PROP_MAX_QOS, P_BYTE, IN(MQTT_CONNACK), F(max_qos)},
    {MQTT_PROP_RETAIN_AVAILABLE, P_BYTE, IN(MQTT_CONNACK), F(retain_available)},
    {MQTT_PROP_USER_PROPERTY, P_PAIR, ALL, 0},
    {MQTT_PROP_MAX_PACKET_SIZE, P_U32, IN(MQTT_CONNECT) | IN(MQTT_CONNACK), F(max_packet_size)},
    {MQTT_PROP_WILDCARD_SUB_AVAILABLE, P_BYTE, IN(MQTT_CONNACK), F(wildcard_sub_available)},
    {MQTT_PROP_SUB_ID_AVAILABLE, P_BYTE, IN(MQTT_CONNACK), F(sub_id_available)},
    {MQTT_PROP_SHARED_SUB_AVAILABLE, P_BYTE, IN(MQTT_CONNACK), F(shared_sub_available)},
};
#define NSPECS (sizeof(specs) / sizeof(specs[0]))

static const struct prop_spec *spec_of(uint8_t id)
{
    for (size_t i = 0; i < NSPECS; i++)
        if (specs[i].id == id)
            return &specs[i];
    return NULL;
}

/* Byte-valued properties that may only be 0 or 1, and values that may not
 * be 0 (MQTT-3.1.2-? receive maximum, maximum packet size, topic alias). */
static int check_value(uint8_t id, uint32_t v)
{
    switch (id) {
    case MQTT_PROP_PAYLOAD_FORMAT:
    case MQTT_PROP_REQUEST_PROBLEM_INFO:
    case MQTT_PROP_REQUEST_RESPONSE_INFO:
    case MQTT_PROP_MAX_QOS:
    case MQTT_PROP_RETAIN_AVAILABLE:
    case MQTT_PROP_WILDCARD_SUB_AVAILABLE:
    case MQTT_PROP_SUB_ID_AVAILABLE:
    case MQTT_PROP_SHARED_SUB_AVAILABLE:
        return v > 1 ? MQTT_RC_PROTOCOL_ERROR : 0;
    case MQTT_PROP_RECEIVE_MAX:
    case MQTT_PROP_MAX_PACKET_SIZE:
    case MQTT_PROP_TOPIC_ALIAS:
    case MQTT_PROP_SUBSCRIPTION_ID:
        return v == 0 ? MQTT_RC_PROTOCOL_ERROR : 0;
    default:
        return 0;
    }
}

static int decode_one(struct rd *r, const struct prop_spec *s, struct mqtt_props *out)
{
    char *field = (char *)out + s->off;
    uint8_t b;
    uint16_t h;
    uint32_t w;
    bool ok = true;
    switch (s->type) {
    case P_BYTE:
        if (!rd_u8(r, &b))
            return MQTT_RC_MALFORMED;
        *(uint8_t *)field = b;
        return check_value(s->id, b);
    case P_U16:
        if (!rd_u16(r, &h))
            return MQTT_RC_MALFORMED;
        *(uint16_t *)field = h;
        return check_value(s->id, h);
    case P_U32:
        if (!rd_u32(r, &w))
            return MQTT_RC_MALFORMED;
        *(uint32_t *)field = w;
        return check_value(s->id, w);
    case P_VBI:
        if (!rd_vbi(r, &w))
            return MQTT_RC_MALFORMED;
        if (out->sub_id_count >= MQTT_MAX_SUB_IDS)
            return MQTT_RC_PROTOCOL_ERROR;
        out->sub_ids[out->sub_id_count++] = w;
        return check_value(s->id, w);
    case P_STR:
        if (!rd_str(r, (struct mqtt_str *)field, &ok))
            return MQTT_RC_MALFORMED;
        return ok ? 0 : MQTT_RC_MALFORMED;
    case P_BIN:
        return rd_bin(r, (struct mqtt_bin *)field) ? 0 : MQTT_RC_MALFORMED;
    case P_PAIR: {
        struct mqtt_str k, v;
        bool ok2 = true;
        if (!rd_str(r, &k, &ok) || !rd_str(r, &v, &ok2))
            return MQTT_RC_MALFORMED;
        out->user_count++;
        return ok && ok2 ? 0 : MQTT_RC_MALFORMED;
    }
    default:
        return MQTT_RC_MALFORMED;
    }
}

/* see wire.h */
int props_decode(struct rd *r, enum mqtt_type type, bool will, bool from_client,
                 struct mqtt_props *out)
{
    uint32_t len;
    memset(out, 0, sizeof(*out));
    if (!rd_vbi(r, &len) || rd_left(r) < len)
        return MQTT_RC_MALFORMED;
    struct rd pr = {r->p, r->p + len};
    out->raw.p = r->p;
    out->raw.len = len;
    r->p += len;
    uint16_t where = will ? WILL : (uint16_t)IN(type);
    while (rd_left(&pr) > 0) {
        uint32_t id;
        if (!rd_vbi(&pr, &id))
            return MQTT_RC_MALFORMED;
        const struct prop_spec *s = id < 64 ? spec_of((uint8_t)id) : NULL;
        /* Section 2.2.2.2: an identifier that is unknown or not valid for
         * the packet type makes the packet malformed. */
        if (!s || !(s->where & where))
            return MQTT_RC_MALFORMED;
        /* A repeated property is a protocol error, except User Property and
         * (server to client) Subscription Identifier; MQTT-3.3.4-6: a
         * client's PUBLISH carries none. */
        bool repeatable = id == MQTT_PROP_USER_PROPERTY ||
                          (id == MQTT_PROP_SUBSCRIPTION_ID && type == MQTT_PUBLISH);
        if ((out->present & MQTT_HAS(id)) && !repeatable)
            return MQTT_RC_PROTOCOL_ERROR;
        if (id == MQTT_PROP_SUBSCRIPTION_ID && type == MQTT_PUBLISH && from_client)
            return MQTT_RC_PROTOCOL_ERROR;
        int rc = decode_one(&pr, s, out);
        if (rc)
            return rc;
        out->present |= MQTT_HAS(id);
    }
    return 0;
}

static size_t one_size(const struct prop_spec *s, const struct mqtt_props *p)
{
    const char *field = (const char *)p + s->off;
    switch (s->type) {
    case P_BYTE:
        return 2;
    case P_U16:
        return 3;
    case P_U32:
        return 5;
    case P_VBI: {
        size_t n = 0;
        for (uint8_t i = 0; i < p->sub_id_count; i++)
            n += 1 + mqtt_vbi_size(p->sub_ids[i]);
        return n;
    }
    case P_STR:
        return 3 + ((const struct mqtt_str *)field)->len;
    case P_BIN:
        return 3 + ((const struct mqtt_bin *)field)->len;
    case P_PAIR:
        return p->user_raw.len;
    default:
        return 0;
    }
}

/* see wire.h */
size_t props_size(const struct mqtt_props *p)
{
    size_t n = 0;
    if (!p)
        return 0;
    for (size_t i = 0; i < NSPECS; i++)
        if ((p->present & MQTT_HAS(specs[i].id)) || (specs[i].type == P_PAIR && p->user_raw.len))
            n += one_size(&specs[i], p);
    return n;
}

static void write_one(struct wr *w, const struct prop_spec *s, const struct mqtt_props *p)
{
    const char *field = (const char *)p + s->off;
    if (s->type == P_PAIR) {
        wr_bytes(w, p->user_raw.p, p->user_raw.len);
        return;
    }
    if (s->type == P_VBI) {
        for (uint8_t i = 0; i < p->sub_id_count; i++) {
            wr_u8(w, s->id);
            wr_vbi(w, p->sub_ids[i]);
        }
        return;
    }
    wr_u8(w, s->id);
    switch (s->type) {
    case P_BYTE:
        wr_u8(w, *(const uint8_t *)field);
        return;
    case P_U16:
        wr_u16(w, *(const uint16_t *)field);
        return;
    case P_U32:
        wr_u32(w, *(const uint32_t *)field);
        return;
    case P_STR:
        wr_str(w, *(const struct mqtt_str *)field);
        return;
    case P_BIN:
        wr_bin(w, *(const struct mqtt_bin *)field);
        return;
    default:
        return;
    }
}

/* see wire.h */
void props_write(struct wr *w, const struct mqtt_props *p)
{
    size_t n = props_size(p);
    wr_vbi(w, (uint32_t)n);
    if (!p)
        return;
    for (size_t i = 0; i < NSPECS; i++)
        if ((p->present & MQTT_HAS(specs[i].id)) || (specs[i].type == P_PAIR && p->user_raw.len))
            write_one(w, &specs[i], p);
}

/* see mqtt.h */
bool mqtt_props_next_user(const struct mqtt_props *props, size_t *pos, struct mqtt_str *key,
                          struct mqtt_str *val)
{
    if (!props->raw.p) /* no properties at all (also: a 3.1.1 packet) */
        return false;
    struct rd r = {props->raw.p + *pos, props->raw.p + props->raw.len};
    while (rd_left(&r) > 0) {
        uint32_t id;
        bool ok;
        if (!rd_vbi(&r, &id))
            return false;
        const struct prop_spec *s = id < 64 ? spec_of((uint8_t)id) : NULL;
        if (!s)
            return false;
        if (s->type == P_PAIR) {
            if (!rd_str(&r, key, &ok) || !rd_str(&r, val, &ok))
                return false;
            *pos = (size_t)(r.p - props->raw.p);
            return true;
        }
        /* Skip any other property by decoding it into a scratch struct. */
        struct mqtt_props scratch;
        memset(&scratch, 0, sizeof(scratch));
        if (decode_one(&r, s, &scratch) == MQTT_RC_MALFORMED)
            return false;
    }
    *pos = props->raw.len;
    return false;
}

/* see mqtt.h */
size_t mqtt_props_copy_user(const struct mqtt_props *props, uint8_t *out, size_t cap)
{
    size_t pos = 0, need = 0;
    struct mqtt_str k, v;
    while (mqtt_props_next_user(props, &pos, &k, &v))
        need += 5u + k.len + v.len;
    if (need > cap || !out)
        return need;
    struct wr w = {out};
    pos = 0;
    while (mqtt_props_next_user(props, &pos, &k, &v)) {
        wr_u8(&w, MQTT_PROP_USER_PROPERTY);
        wr_str(&w, k);
        wr_str(&w, v);
    }
    return need;
}
