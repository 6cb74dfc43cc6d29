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

static struct msg *build(const uint8_t *topic, uint16_t topic_len, const uint8_t *payload,
                         uint32_t payload_len, uint8_t qos, bool retain,
                         const struct mqtt_props *props, const char *origin, uint64_t now_ms)
{
    size_t user_len = props ? mqtt_props_copy_user(props, NULL, 0) : 0;
    if (props && props->user_raw.len)
        user_len = props->user_raw.len;
    size_t origin_len = origin ? strlen(origin) : 0;
    const struct mqtt_props empty = {0};
    if (!props)
        props = &empty;
    size_t n = sizeof(struct msg) + topic_len + 1 + payload_len + props->content_type.len +
               props->response_topic.len + props->correlation_data.len + user_len + origin_len + 1;
    struct msg *m = malloc(n);
    if (!m)
        return NULL;
    memset(m, 0, sizeof(*m));
    atomic_init(&m->refs, 1);
    m->qos = qos;
    m->retain = retain;
    m->created_ms = now_ms;
    uint8_t *cur = m->data;
    m->topic = (const char *)put(&cur, topic, topic_len, true);
    m->topic_len = topic_len;
    m->payload = put(&cur, payload, payload_len, false);
    m->payload_len = payload_len;
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
    m->response_topic = put(&cur, props->response_topic.p, props->response_topic.len, false);
    m->response_topic_len = props->response_topic.len;
    m->correlation = put(&cur, props->correlation_data.p, props->correlation_data.len, false);
    m->correlation_len = (uint16_t)props->correlation_data.len;
    m->user_raw = cur;
    m->user_raw_len = (uint32_t)user_len;
    if (props->user_raw.len)
        memcpy(cur, props->user_raw.p, user_len);
    else if (user_len && mqtt_props_copy_user(props, cur, user_len) != user_len) {
        free(m); /* measured by the same call above: a bug, refused like no memory */
        return NULL;
    }
    cur += user_len;
    m->origin = (const char *)put(&cur, origin, origin_len, true);
    m->origin_len = (uint16_t)origin_len;
    return m;
}

/* see msg.h */
struct msg *msg_from_publish(const struct mqtt_publish *p, const uint8_t *topic, uint16_t topic_len,
                             const char *origin, uint64_t now_ms)
{
    return build(topic, topic_len, p->payload.p, p->payload.len, p->qos, p->retain, &p->props,
                 origin, now_ms);
}

/* see msg.h */
struct msg *msg_new(const uint8_t *topic, uint16_t topic_len, const uint8_t *payload,
                    uint32_t payload_len, uint8_t qos, bool retain, const struct mqtt_props *props,
                    const char *origin, uint64_t now_ms)
{
    return build(topic, topic_len, payload, payload_len, qos, retain, props, origin, now_ms);
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
