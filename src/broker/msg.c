/* Reference-counted application messages (see msg.h). */
#include "broker/msg.h"

#include <stdlib.h>
#include <string.h>

/* Copies src into the message's data area and returns where it went. */
static const uint8_t *put(uint8_t **cursor, const void *src, size_t n, bool nul)
{
    uint8_t *at = *cursor;
    if (n)
        memcpy(at, src, n);
    if (nul)
        at[n] = '\0';
    *cursor += n + (nul ? 1 : 0);
    return at;
}

/* Everything a message is made of; absent parts are empty. */
struct parts {
    const uint8_t *topic, *payload;
    uint16_t topic_len;
    uint32_t payload_len;
    uint8_t qos;
    bool retain;
    const struct mqtt_props *props; /* payload format, expiry, content type */
    struct mqtt_bin response_topic, correlation, user_raw;
    const struct mqtt_props *user_props; /* decoded user properties (when no user_raw) */
    const char *origin;
    struct mqtt_bin nats_subject, nats_reply, nats_hdr;
};

static struct msg *build(const struct parts *pt, uint64_t now_ms)
{
    const struct mqtt_props empty = {0};
    const struct mqtt_props *props = pt->props ? pt->props : &empty;
    size_t user_len = pt->user_raw.len;
    if (!user_len && pt->user_props)
        user_len = mqtt_props_copy_user(pt->user_props, NULL, 0);
    size_t origin_len = pt->origin ? strlen(pt->origin) : 0;
    size_t n = sizeof(struct msg) + pt->topic_len + 1 + pt->payload_len + props->content_type.len +
               pt->response_topic.len + pt->correlation.len + user_len + origin_len + 1 +
               pt->nats_subject.len + 1 + pt->nats_reply.len + 1 + pt->nats_hdr.len;
    struct msg *m = malloc(n);
    if (!m)
        return NULL;
    memset(m, 0, sizeof(*m));
    atomic_init(&m->refs, 1);
    m->qos = pt->qos;
    m->retain = pt->retain;
    m->created_ms = now_ms;
    uint8_t *cur = m->data;
    m->topic = (const char *)put(&cur, pt->topic, pt->topic_len, true);
    m->topic_len = pt->topic_len;
    m->payload = put(&cur, pt->payload, pt->payload_len, false);
    m->payload_len = pt->payload_len;
    if (props->present & MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT)) {
        m->has_payload_format = true;
        m->payload_format = props->payload_format;
    }
    if (props->present & MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY)) {
        m->has_expiry = true;
        m->expire_at_ms = now_ms + (uint64_t)props->message_expiry * 1000u;
    }
    m->content_type = put(&cur, props->content_type.p, props->content_type.len, false);
    m->content_type_len = props->content_type.len;
    m->response_topic = put(&cur, pt->response_topic.p, pt->response_topic.len, false);
    m->response_topic_len = (uint16_t)pt->response_topic.len;
    m->correlation = put(&cur, pt->correlation.p, pt->correlation.len, false);
    m->correlation_len = (uint16_t)pt->correlation.len;
    m->user_raw = cur;
    m->user_raw_len = (uint32_t)user_len;
    if (pt->user_raw.len)
        memcpy(cur, pt->user_raw.p, user_len);
    else if (user_len && mqtt_props_copy_user(pt->user_props, cur, user_len) != user_len) {
        free(m); /* measured by the same call above: a bug, refused like no memory */
        return NULL;
    }
    cur += user_len;
    m->origin = (const char *)put(&cur, pt->origin, origin_len, true);
    m->origin_len = (uint16_t)origin_len;
    m->nats_subject = (const char *)put(&cur, pt->nats_subject.p, pt->nats_subject.len, true);
    m->nats_subject_len = (uint16_t)pt->nats_subject.len;
    m->nats_reply = (const char *)put(&cur, pt->nats_reply.p, pt->nats_reply.len, true);
    m->nats_reply_len = (uint16_t)pt->nats_reply.len;
    m->nats_hdr = put(&cur, pt->nats_hdr.p, pt->nats_hdr.len, false);
    m->nats_hdr_len = (uint32_t)pt->nats_hdr.len;
    return m;
}

/* The parts of a message made from MQTT properties. */
static struct parts mqtt_parts(const uint8_t *topic, uint16_t topic_len, const uint8_t *payload,
                               uint32_t payload_len, uint8_t qos, bool retain,
                               const struct mqtt_props *props, const char *origin)
{
    struct parts pt = {.topic = topic,
                       .topic_len = topic_len,
                       .payload = payload,
                       .payload_len = payload_len,
                       .qos = qos,
                       .retain = retain,
                       .props = props,
                       .origin = origin};
    if (props) {
        pt.response_topic = (struct mqtt_bin){props->response_topic.p, props->response_topic.len};
        pt.correlation = props->correlation_data;
        pt.user_raw = props->user_raw;
        pt.user_props = props;
    }
    return pt;
}

/* see msg.h */
struct msg *msg_from_publish(const struct mqtt_publish *p, const uint8_t *topic, uint16_t topic_len,
                             const char *origin, uint64_t now_ms)
{
    struct parts pt = mqtt_parts(topic, topic_len, p->payload.p, p->payload.len, p->qos, p->retain,
                                 &p->props, origin);
    return build(&pt, now_ms);
}

/* see msg.h */
struct msg *msg_new(const uint8_t *topic, uint16_t topic_len, const uint8_t *payload,
                    uint32_t payload_len, uint8_t qos, bool retain, const struct mqtt_props *props,
                    const char *origin, uint64_t now_ms)
{
    struct parts pt =
        mqtt_parts(topic, topic_len, payload, payload_len, qos, retain, props, origin);
    return build(&pt, now_ms);
}

/* see msg.h */
struct msg *msg_from_nats(const struct msg_nats *n, uint64_t now_ms)
{
    struct parts pt = {
        .topic = n->topic,
        .topic_len = n->topic_len,
        .payload = n->payload,
        .payload_len = n->payload_len,
        .response_topic = {n->reply_topic, n->reply_topic_len},
        .correlation = {n->correlation, n->correlation_len},
        .user_raw = {n->user_raw, n->user_raw_len},
        .origin = n->origin,
        .nats_subject = {n->subject, n->subject_len},
        .nats_reply = {n->reply, n->reply_len},
        .nats_hdr = {n->hdr, n->hdr_len},
    };
    return build(&pt, now_ms);
}

/* see msg.h */
struct msg *msg_ref(struct msg *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

/* see msg.h */
void msg_unref(struct msg *m)
{
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        free(m);
}

/* see msg.h */
bool msg_expired(const struct msg *m, uint64_t now_ms)
{
    return m->has_expiry && now_ms >= m->expire_at_ms;
}

/* see msg.h */
uint32_t msg_expiry_left(const struct msg *m, uint64_t now_ms)
{
    if (now_ms >= m->expire_at_ms)
        return 0;
    return (uint32_t)((m->expire_at_ms - now_ms + 999) / 1000);
}

/* see msg.h */
void msg_fill_props(const struct msg *m, uint64_t now_ms, struct mqtt_props *out)
{
    memset(out, 0, sizeof(*out));
    if (m->has_payload_format) {
        out->present |= MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT);
        out->payload_format = m->payload_format;
    }
    if (m->has_expiry) {
        /* MQTT-3.3.2-6: the received value less the time spent waiting. */
        out->present |= MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY);
        out->message_expiry = msg_expiry_left(m, now_ms);
    }
    if (m->content_type_len) {
        out->present |= MQTT_HAS(MQTT_PROP_CONTENT_TYPE);
        out->content_type = (struct mqtt_str){m->content_type, m->content_type_len};
    }
    if (m->response_topic_len) {
        out->present |= MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC);
        out->response_topic = (struct mqtt_str){m->response_topic, m->response_topic_len};
    }
    if (m->correlation_len) {
        out->present |= MQTT_HAS(MQTT_PROP_CORRELATION_DATA);
        out->correlation_data = (struct mqtt_bin){m->correlation, m->correlation_len};
    }
    out->user_raw = (struct mqtt_bin){m->user_raw, m->user_raw_len};
}

/* see msg.h */
size_t msg_wire_size(const struct msg *m)
{
    return 32u + m->topic_len + m->payload_len + m->content_type_len + m->response_topic_len +
           m->correlation_len + m->user_raw_len;
}
