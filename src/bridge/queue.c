/* see queue.h */
#include "bridge/queue.h"

#include <stdlib.h>
#include <string.h>

void bq_init(struct bq *q, uint32_t limit)
{
    memset(q, 0, sizeof(*q));
    q->limit = limit;
}

void bq_clear(struct bq *q)
{
    while (q->head)
        bq_remove(q, q->head);
}

static size_t str_need(const struct mqtt_props *p, uint64_t bit, size_t len)
{
    return p && (p->present & bit) ? len : 0;
}

/* Copies a string property into the message's own bytes. */
static uint8_t *copy_str(uint8_t *at, const struct mqtt_props *from, struct mqtt_props *to,
                         uint64_t bit, const struct mqtt_str *src, struct mqtt_str *dst)
{
    if (!(from->present & bit))
        return at;
    memcpy(at, src->p, src->len);
    *dst = (struct mqtt_str){at, src->len};
    to->present |= bit;
    return at + src->len;
}

static uint8_t *copy_props(uint8_t *at, const struct mqtt_props *p, struct mqtt_props *to)
{
    static const uint64_t plain =
        MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT) | MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY);
    to->present = p->present & plain;
    to->payload_format = p->payload_format;
    to->message_expiry = p->message_expiry;
    at = copy_str(at, p, to, MQTT_HAS(MQTT_PROP_CONTENT_TYPE), &p->content_type, &to->content_type);
    at = copy_str(at, p, to, MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC), &p->response_topic,
                  &to->response_topic);
    if (p->present & MQTT_HAS(MQTT_PROP_CORRELATION_DATA)) {
        memcpy(at, p->correlation_data.p, p->correlation_data.len);
        to->correlation_data = (struct mqtt_bin){at, p->correlation_data.len};
        to->present |= MQTT_HAS(MQTT_PROP_CORRELATION_DATA);
        at += p->correlation_data.len;
    }
    if (p->user_count) {
        size_t n = mqtt_props_copy_user(p, at, (size_t)-1);
        to->user_raw = (struct mqtt_bin){at, (uint32_t)n};
        at += n;
    }
    return at;
}

/* see queue.h */
struct bq_msg *bq_msg_new(const char *topic, size_t topic_len, const uint8_t *payload,
                          size_t payload_len, const struct mqtt_props *props, uint8_t qos,
                          bool retain)
{
    size_t extra = 0;
    if (props) {
        extra += str_need(props, MQTT_HAS(MQTT_PROP_CONTENT_TYPE), props->content_type.len);
        extra += str_need(props, MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC), props->response_topic.len);
        extra += str_need(props, MQTT_HAS(MQTT_PROP_CORRELATION_DATA), props->correlation_data.len);
        if (props->user_count)
            extra += mqtt_props_copy_user(props, NULL, 0);
    }
    if (topic_len > 65535 || payload_len > UINT32_MAX)
        return NULL;
    struct bq_msg *m = calloc(1, sizeof(*m) + topic_len + 1 + payload_len + extra);
    if (!m)
        return NULL;
    uint8_t *at = m->data;
    memcpy(at, topic, topic_len);
    at[topic_len] = '\0';
    m->topic = (const char *)at;
    m->topic_len = (uint16_t)topic_len;
    at += topic_len + 1;
    if (payload_len)
        memcpy(at, payload, payload_len);
    m->payload = at;
    m->payload_len = (uint32_t)payload_len;
    at += payload_len;
    if (props)
        copy_props(at, props, &m->props);
    m->qos = qos;
    m->retain = retain;
    return m;
}

void bq_msg_free(struct bq_msg *m)
{
    free(m);
}

int bq_push(struct bq *q, struct bq_msg *m)
{
    if (q->limit && q->count >= q->limit)
        return -1;
    m->state = BQ_QUEUED;
    m->next = NULL;
    m->prev = q->tail;
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
    if (!q->next)
        q->next = m;
    q->count++;
    return 0;
}

struct bq_msg *bq_peek_unsent(const struct bq *q)
{
    return q->next;
}

void bq_mark_sent(struct bq *q, struct bq_msg *m, uint16_t pid)
{
    m->state = BQ_SENT;
    m->pid = pid;
    q->inflight++;
    if (q->next == m)
        q->next = m->next;
}

struct bq_msg *bq_find(const struct bq *q, uint16_t pid)
{
    for (struct bq_msg *m = q->head; m && m != q->next; m = m->next)
        if (m->pid == pid && m->state != BQ_QUEUED)
            return m;
    return NULL;
}

void bq_remove(struct bq *q, struct bq_msg *m)
{
    if (m->state != BQ_QUEUED)
        q->inflight--;
    if (q->next == m)
        q->next = m->next;
    if (m->prev)
        m->prev->next = m->next;
    else
        q->head = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else
        q->tail = m->prev;
    q->count--;
    bq_msg_free(m);
}

void bq_requeue(struct bq *q)
{
    for (struct bq_msg *m = q->head; m && m != q->next; m = m->next) {
        m->state = BQ_QUEUED;
        m->sent_before = false;
    }
    q->inflight = 0;
    q->next = q->head;
}

void bq_mark_resend(struct bq *q)
{
    for (struct bq_msg *m = q->head; m && m != q->next; m = m->next)
        m->sent_before = true;
}
