/* Durable state: the broker's side of src/store (see persist.h). What is
 * written when, how acknowledgements wait for commits, and loading it back
 * at start. docs/ARCHITECTURE.md "Durable state" tells the rules. */
#include "broker/persist.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/vec.h"
#include "store/store.h"

/* A PUBACK, PUBREC or PUBCOMP waiting for the commit of `ticket`. */
struct pending_ack {
    struct client *c; /* NULL: the client went away */
    uint64_t ticket;
    uint16_t pid;
    uint8_t type, reason;
};

/* A client whose PUBLISHes wait for the commit of `ticket` (its latest). */
struct held {
    struct client *c; /* NULL: the client went away */
    uint64_t ticket;
};

/* Messages by store id while loading. */
struct msg_map {
    struct msg **slots;
    size_t cap, n;
};

struct persist {
    struct store *st;
    bool loading;
    bool dirty;   /* written since the last barrier */
    bool refused; /* persist_refuses turned the current PUBLISH away */
    uint64_t last_ticket;
    uint64_t committed; /* the last commit the hook reported */
    struct held *pump;  /* clients with a PUBLISH held for a commit */
    size_t npump, cappump;
    struct pending_ack *q; /* FIFO: [head, n) wait, in ticket order */
    size_t head, n, cap;
    struct msg_map map;
    uint64_t full_refused, queue_refused, dropped_oldest, commit_failures;
    struct {
        uint64_t msgs, sessions, subs, deliveries, rels, retained, dropped, over_limit;
    } loaded;
};

/* ---- messages ----------------------------------------------------------- */

/* Mono-clock deadline <-> wall-clock ms since the epoch (the store's). */
static uint64_t to_wall(uint64_t mono_deadline)
{
    uint64_t now = clock_mono_ms(), wall = clock_wall_ms();
    return wall + (mono_deadline > now ? mono_deadline - now : 0);
}

static uint64_t to_mono(uint64_t wall_deadline)
{
    uint64_t now = clock_mono_ms(), wall = clock_wall_ms();
    return now + (wall_deadline > wall ? wall_deadline - wall : 0);
}

static uint8_t *put16(uint8_t *o, const void *p, uint16_t n)
{
    o[0] = (uint8_t)(n >> 8);
    o[1] = (uint8_t)n;
    if (n)
        memcpy(o + 2, p, n);
    return o + 2 + n;
}

/* The v5 properties that travel with a message, in ward's own layout (the
 * store keeps it opaque): version 1, flags, payload format, then content
 * type, response topic and correlation data with 16-bit lengths and the
 * user properties in wire form with a 32-bit length. */
#define PROPS_V1 1
static size_t props_size(const struct msg *m)
{
    if (!m->has_payload_format && !m->content_type_len && !m->response_topic_len &&
        !m->correlation_len && !m->user_raw_len)
        return 0; /* most messages: nothing to store */
    return 3 + 2 + m->content_type_len + 2 + m->response_topic_len + 2 + m->correlation_len + 4 +
           m->user_raw_len;
}

static void encode_props(const struct msg *m, uint8_t *o)
{
    *o++ = PROPS_V1;
    *o++ = (uint8_t)(m->has_payload_format ? 1 : 0);
    *o++ = m->payload_format;
    o = put16(o, m->content_type, m->content_type_len);
    o = put16(o, m->response_topic, m->response_topic_len);
    o = put16(o, m->correlation, m->correlation_len);
    uint32_t u = m->user_raw_len;
    *o++ = (uint8_t)(u >> 24), *o++ = (uint8_t)(u >> 16), *o++ = (uint8_t)(u >> 8),
    *o++ = (uint8_t)u;
    if (u)
        memcpy(o, m->user_raw, u);
}

static bool get16(const uint8_t **p, const uint8_t *end, const uint8_t **out, uint16_t *n)
{
    if (end - *p < 2)
        return false;
    *n = (uint16_t)((*p)[0] << 8 | (*p)[1]);
    *p += 2;
    if ((size_t)(end - *p) < *n)
        return false;
    *out = *p;
    *p += *n;
    return true;
}

/* Decodes encode_props' layout into props (views into the blob). */
static bool decode_props(const uint8_t *b, uint32_t len, struct mqtt_props *pr)
{
    memset(pr, 0, sizeof(*pr));
    if (len == 0)
        return true;
    const uint8_t *p = b, *end = b + len, *v;
    uint16_t n;
    if (len < 3 || p[0] != PROPS_V1)
        return false;
    if (p[1] & 1) {
        pr->present |= MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT);
        pr->payload_format = p[2];
    }
    p += 3;
    if (!get16(&p, end, &v, &n))
        return false;
    if (n)
        pr->present |= MQTT_HAS(MQTT_PROP_CONTENT_TYPE);
    pr->content_type = (struct mqtt_str){v, n};
    if (!get16(&p, end, &v, &n))
        return false;
    if (n)
        pr->present |= MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC);
    pr->response_topic = (struct mqtt_str){v, n};
    if (!get16(&p, end, &v, &n))
        return false;
    if (n)
        pr->present |= MQTT_HAS(MQTT_PROP_CORRELATION_DATA);
    pr->correlation_data = (struct mqtt_bin){v, n};
    if (end - p < 4)
        return false;
    uint32_t u = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    p += 4;
    if ((size_t)(end - p) != u)
        return false;
    pr->user_raw = (struct mqtt_bin){p, u};
    return true;
}

static void mark(struct persist *p)
{
    p->dirty = true;
}

/* One more persistent reference: the first writes the message. */
static void msg_hold(struct persist *p, struct msg *m)
{
    if (m->prefs++ > 0 || m->store_id)
        return;
    /* The properties' blob: on the stack when small (the store copies). */
    uint8_t small[256];
    size_t plen = props_size(m);
    uint8_t *props = plen <= sizeof(small) ? small : malloc(plen);
    if (plen && props)
        encode_props(m, props);
    m->store_id = store_next_id(p->st);
    struct store_msg r = {.id = m->store_id,
                          .topic = m->topic,
                          .payload = m->payload,
                          .payload_len = m->payload_len,
                          .qos = m->qos,
                          .retain = m->retain,
                          .expire_at = m->has_expiry ? to_wall(m->expire_at_ms) : 0,
                          .origin = m->origin,
                          .fresh = true, /* a new id */
                          .props = plen && props ? props : NULL,
                          .props_len = props ? (uint32_t)plen : 0};
    if (plen && !props)
        log_warn("store: out of memory: the properties of a message on '%s' are not stored",
                 m->topic);
    store_msg_put(p->st, &r);
    if (props != small)
        free(props);
    mark(p);
}

/* One persistent reference less: the last deletes the message's row. */
static void msg_release(struct persist *p, struct msg *m)
{
    if (!m->prefs || --m->prefs)
        return;
    store_msg_del(p->st, m->store_id);
    m->store_id = 0;
    mark(p);
}

/* ---- sessions ------------------------------------------------------------ */

static bool online(const struct session *s)
{
    return s->c && s->c->connected && !s->c->closing;
}

static struct persist *active(struct broker *b, const struct session *s)
{
    struct persist *p = b->persist;
    return p && !p->loading && s->persist ? p : NULL;
}

static void write_session(struct persist *p, const struct session *s)
{
    uint64_t expire_at = 0;
    if (!s->c && s->expiry_s != SESSION_NEVER_EXPIRES)
        expire_at = to_wall(s->expire_at) | 1;
    struct store_session r = {.id = s->id,
                              .owner = s->owner,
                              .username = s->username,
                              .cert_cn = s->cert_cn,
                              .cert_ou = s->cert_ou,
                              .expiry_s = s->expiry_s,
                              .expire_at = expire_at,
                              .protocol = s->protocol,
                              .bridge = s->bridge,
                              .will_msg_id = s->stored_will ? s->stored_will->store_id : 0,
                              .will_delay_s = s->will_delay_s};
    store_session_put(p->st, &r);
    mark(p);
}

/* see persist.h */
void persist_session_sync(struct broker *b, struct session *s)
{
    struct persist *p = active(b, s);
    if (!p)
        return;
    struct msg *old = NULL;
    if (s->stored_will != s->will) {
        old = s->stored_will;
        s->stored_will = NULL;
        if (s->will) {
            msg_hold(p, s->will);
            s->stored_will = msg_ref(s->will);
        }
    }
    write_session(p, s);
    if (old) {
        msg_release(p, old);
        msg_unref(old);
    }
}

static void release_list(struct persist *p, struct delivery_list *l)
{
    for (struct delivery *d = l->head; d; d = d->next) {
        if (p && d->pstate)
            msg_release(p, d->m);
        d->pstate = 0;
    }
}

/* Drops everything the store holds for s (the row goes with its subs,
 * deliveries and rels); s itself stays as it is in memory. */
static void forget(struct broker *b, struct session *s)
{
    struct persist *p = active(b, s);
    if (p)
        store_session_del(p->st, s->id), mark(p);
    if (s->stored_will) {
        if (p)
            msg_release(p, s->stored_will);
        msg_unref(s->stored_will);
        s->stored_will = NULL;
    }
    release_list(p, &s->inflight);
    release_list(p, &s->queue);
    s->persist = false;
}

/* see persist.h */
void persist_session_end(struct broker *b, struct session *s)
{
    forget(b, s);
}

/* see persist.h */
void persist_connected(struct broker *b, struct client *c, struct session *s)
{
    s->protocol = c->codec.version;
    if (!b->persist)
        return;
    /* 3.1.1 clean session 0 has SESSION_NEVER_EXPIRES (or the maximum); v5
     * an expiry > 0. Of the in-process clients only a bridge's local side
     * ("$bridge/NAME", owner "internal") is stored: its session is the
     * bridge's send queue, which must survive a restart. */
    bool bridge = c->internal && strncmp(s->id, "$bridge/", 8) == 0;
    bool want = (!c->internal || bridge) && s->expiry_s > 0;
    if (!want) {
        forget(b, s);
        return;
    }
    s->persist = true;
    persist_session_sync(b, s);
}

/* ---- subscriptions ------------------------------------------------------- */

void persist_sub_put(struct broker *b, struct session *s, const uint8_t *filter, size_t len,
                     uint8_t options, uint32_t sub_id)
{
    struct persist *p = active(b, s);
    char *f = p ? strndup((const char *)filter, len) : NULL;
    if (!f)
        return;
    struct store_sub r = {.filter = f, .options = options, .sub_id = sub_id};
    store_sub_put(p->st, s->id, &r);
    mark(p);
    free(f);
}

void persist_sub_del(struct broker *b, struct session *s, const uint8_t *filter, size_t len)
{
    struct persist *p = active(b, s);
    char *f = p ? strndup((const char *)filter, len) : NULL;
    if (!f)
        return;
    store_sub_del(p->st, s->id, f);
    mark(p);
    free(f);
}

/* ---- deliveries ---------------------------------------------------------- */

static void write_delivery(struct persist *p, const struct session *s, struct delivery *d)
{
    struct store_delivery r = {.msg_id = d->m->store_id,
                               .seq = d->seq,
                               .qos = d->qos,
                               .retain = d->retain,
                               .pid = d->pid,
                               .state = (uint8_t)(d->pid == 0      ? 0
                                                  : d->pubrel_sent ? 2
                                                                   : 1),
                               .sub_ids = d->sub_ids,
                               .nsub = d->nsub,
                               .fresh = d->pstate != 2}; /* its first row */
    store_delivery_put(p->st, s->id, &r);
    d->pstate = 2;
    mark(p);
}

/* see persist.h */
void persist_delivery_new(struct broker *b, struct session *s, struct delivery *d)
{
    d->seq = ++s->next_seq;
    struct persist *p = active(b, s);
    if (!p)
        return;
    msg_hold(p, d->m);
    d->pstate = 1;
}

/* see persist.h */
void persist_delivery_queued(struct broker *b, struct session *s)
{
    struct persist *p = active(b, s);
    struct delivery *d = s->queue.tail;
    if (p && d && d->pstate == 1)
        write_delivery(p, s, d);
}

/* see persist.h */
void persist_delivery_update(struct broker *b, struct session *s, struct delivery *d)
{
    struct persist *p = active(b, s);
    if (p && d->pstate)
        write_delivery(p, s, d);
}

/* see persist.h */
void persist_delivery_done(struct broker *b, struct session *s, struct delivery *d)
{
    struct persist *p = active(b, s);
    if (!p || !d->pstate)
        return;
    if (d->pstate == 2)
        store_delivery_del(p->st, s->id, d->m->store_id), mark(p);
    msg_release(p, d->m);
    d->pstate = 0;
}

/* see persist.h */
void persist_queue_room(struct broker *b, struct session *s)
{
    if (b->cfg.queue_full_policy != PERSIST_DROP_OLDEST || online(s) ||
        s->queue.count < b->cfg.max_queued || !s->queue.head)
        return;
    struct delivery *d = session_queue_pop(b, s);
    persist_delivery_done(b, s, d);
    log_debug("session '%s': queue full (%u); its oldest message, on '%s', dropped", s->id,
              b->cfg.max_queued, d->m->topic);
    delivery_free(d);
    b->st.dropped++;
    b->st.dropped_offline++;
    if (b->persist)
        b->persist->dropped_oldest++;
}

/* see persist.h */
bool persist_refuses(struct broker *b, struct session *from)
{
    struct persist *p = b->persist;
    if (!p || !from || !from->c || from->c->codec.version != MQTT_V5)
        return false;
    for (size_t i = 0; i < b->nmatches; i++) {
        const struct match *mt = &b->matches[i];
        if (!mt->qos || !mt->s->persist || online(mt->s) || mt->s->queue.count < b->cfg.max_queued)
            continue;
        p->queue_refused++;
        p->refused = true;
        b->flow_hit = FLOW_REJECT;
        log_debug("session '%s': offline queue full (%u); a PUBLISH to it is refused (0x97)",
                  mt->s->id, b->cfg.max_queued);
        return true;
    }
    return false;
}

/* ---- inbound QoS 2 --------------------------------------------------------- */

int persist_rel_add(struct broker *b, struct session *s, uint16_t pid)
{
    if (session_rel_add(s, pid) < 0)
        return -1;
    struct persist *p = active(b, s);
    if (p)
        store_rel_put(p->st, s->id, pid), mark(p);
    return 0;
}

bool persist_rel_remove(struct broker *b, struct session *s, uint16_t pid)
{
    if (!session_rel_remove(s, pid))
        return false;
    struct persist *p = active(b, s);
    if (p)
        store_rel_del(p->st, s->id, pid), mark(p);
    return true;
}

/* ---- retained -------------------------------------------------------------- */

static void find_old(void *ctx, struct msg *m)
{
    struct msg **old = ctx;
    if (!*old)
        *old = msg_ref(m);
}

/* see persist.h */
int persist_retain_set(struct broker *b, struct msg *m)
{
    struct persist *p = b->persist;
    if (p && p->refused)
        return RETAIN_OK; /* refused (0x97): nothing of it is kept */
    if (!p || p->loading || strncmp(m->topic, "$SYS/", 5) == 0)
        return retain_set(b->retained, m);
    struct msg *old = NULL;
    retain_match(b->retained, (const uint8_t *)m->topic, m->topic_len, clock_mono_ms(), find_old,
                 &old);
    int r = retain_set(b->retained, m);
    if (r == RETAIN_OK && m->payload_len) {
        msg_hold(p, m);
        store_retained_put(p->st, m->topic, m->store_id);
        mark(p);
    } else if (old || r == RETAIN_OK) {
        store_retained_del(p->st, m->topic); /* cleared, or the old one removed as full */
        mark(p);
    }
    if (old) {
        msg_release(p, old);
        msg_unref(old);
    }
    return r;
}

/* ---- acknowledgements after commit ----------------------------------------- */

static void send_ack(struct client *c, uint8_t type, uint16_t pid, uint8_t reason)
{
    struct mqtt_packet pk = {.type = (enum mqtt_type)type};
    pk.u.ack.packet_id = pid;
    pk.u.ack.reason = reason;
    client_send(c, &pk);
}

/* A commit failed: the publisher must not take the message as stored. v5
 * hears 0x80 (unspecified error); 3.1.1 has no way to say so but the close,
 * after which it resends. */
static void fail_ack(struct client *c, const struct pending_ack *a)
{
    if (c->codec.version == MQTT_V5 && (a->type == MQTT_PUBACK || a->type == MQTT_PUBREC) &&
        !a->reason) {
        /* A PUBREC >= 0x80 ends the exchange: no PUBREL will free the id,
         * and a later message under it must not pass for a resend. */
        if (a->type == MQTT_PUBREC && c->s)
            persist_rel_remove(c->b, c->s, a->pid);
        return send_ack(c, a->type, a->pid, MQTT_RC_UNSPECIFIED);
    }
    client_kick(c, MQTT_RC_UNSPECIFIED, "the store could not commit");
}

static void release_acks(struct persist *p, uint64_t ticket, bool ok)
{
    while (p->head < p->n && p->q[p->head].ticket <= ticket) {
        struct pending_ack *a = &p->q[p->head++];
        if (!a->c || a->c->closing)
            continue;
        if (ok)
            send_ack(a->c, a->type, a->pid, a->reason);
        else
            fail_ack(a->c, a);
    }
    if (p->head == p->n)
        p->head = p->n = 0;
}

/* The store thread, after each commit. */
static void on_commit(void *ctx, uint64_t ticket, bool ok)
{
    struct broker *b = ctx;
    pthread_mutex_lock(&b->lock);
    struct persist *p = b->persist;
    if (p) {
        if (!ok)
            p->commit_failures++;
        p->committed = ticket;
        release_acks(p, ticket, ok);
        /* The PUBLISHes held for this commit or an earlier one go now (on a
         * failed commit too: the store cannot keep them, and holding them
         * would stall the receiver). Clients waiting for a later commit
         * stay listed; the pump may list new ones (appended). */
        size_t keep = 0;
        for (size_t i = 0; i < p->npump; i++) {
            struct held h = p->pump[i];
            if (h.c && h.ticket > ticket) {
                p->pump[keep++] = h;
                continue;
            }
            if (!h.c)
                continue;
            h.c->pump_listed = false;
            size_t before = p->npump;
            if (b->persist_pump)
                b->persist_pump(b, h.c);
            for (size_t j = before; j < p->npump; j++) /* listed again meanwhile */
                p->pump[keep++] = p->pump[j];
            p->npump = before;
        }
        p->npump = keep;
    }
    pthread_cond_broadcast(&b->quiet);
    pthread_mutex_unlock(&b->lock);
}

/* see persist.h */
void persist_ack(struct client *c, enum mqtt_type t, uint16_t pid, uint8_t reason)
{
    struct persist *p = c->b->persist;
    if (p)
        p->refused = false; /* the PUBLISH it answers is done with */
    /* At once only if everything written so far is committed. "Not dirty"
     * is not enough: a barrier taken since the last write (a QoS 2 PUBLISH
     * held for its packet id, persist_hold_publish) clears the flag before
     * its commit, and this PUBLISH's rows may be in that very batch (a
     * PUBCOMP sent early lost an acknowledged message across kill -9). */
    if (!p || (!p->dirty && p->head == p->n && p->last_ticket <= p->committed))
        return send_ack(c, (uint8_t)t, pid, reason);
    if (p->dirty) {
        p->last_ticket = store_barrier(p->st);
        p->dirty = false;
    }
    if (p->head > 0 && p->head * 2 >= p->n) { /* compact the FIFO */
        memmove(p->q, p->q + p->head, (p->n - p->head) * sizeof(*p->q));
        p->n -= p->head;
        p->head = 0;
    }
    if (!ward_ok(VEC_RESERVE(p->q, p->cap, p->n + 1)))
        return client_kick(c, MQTT_RC_UNSPECIFIED, "out of memory");
    p->q[p->n++] = (struct pending_ack){c, p->last_ticket, pid, (uint8_t)t, reason};
}

/* see persist.h */
void persist_hold_publish(struct broker *b, struct session *s, struct delivery *d)
{
    struct persist *p = active(b, s);
    if (!p || d->qos != 2 || d->sent || d->pubrel_sent || !s->c)
        return;
    if (p->dirty) {
        p->last_ticket = store_barrier(p->st);
        p->dirty = false;
    }
    if (p->last_ticket <= p->committed)
        return;
    struct client *c = s->c;
    if (c->pump_listed) { /* its entry waits for the latest ticket */
        for (size_t i = 0; i < p->npump; i++)
            if (p->pump[i].c == c && p->pump[i].ticket < p->last_ticket)
                p->pump[i].ticket = p->last_ticket;
    } else {
        if (!ward_ok(VEC_RESERVE(p->pump, p->cappump, p->npump + 1)))
            return; /* sent at once, as without a store */
        p->pump[p->npump++] = (struct held){c, p->last_ticket};
        c->pump_listed = true;
    }
    d->held_ticket = p->last_ticket;
}

/* see persist.h */
uint64_t persist_flush(struct broker *b)
{
    struct persist *p = b->persist;
    if (!p)
        return 0;
    p->last_ticket = store_barrier(p->st);
    p->dirty = false;
    return p->last_ticket;
}

/* see persist.h */
bool persist_committed(const struct broker *b, uint64_t ticket)
{
    return !b->persist || ticket <= b->persist->committed;
}

/* see persist.h */
void persist_client_gone(struct broker *b, struct client *c)
{
    struct persist *p = b->persist;
    for (size_t i = 0; p && i < p->npump; i++)
        if (p->pump[i].c == c)
            p->pump[i].c = NULL;
    for (size_t i = p ? p->head : 0; p && i < p->n; i++)
        if (p->q[i].c == c)
            p->q[i].c = NULL;
}

/* see persist.h */
bool persist_refuse_full(struct client *c, const struct mqtt_publish *pub)
{
    struct persist *p = c->b->persist;
    if (!p)
        return false;
    p->refused = false;
    if (!pub->qos || c->internal || !store_full(p->st))
        return false;
    p->full_refused++;
    if (c->codec.version != MQTT_V5) {
        client_kick(c, MQTT_RC_QUOTA_EXCEEDED, "the store is full (persistence.max_size)");
        return true;
    }
    persist_ack(c, pub->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, pub->packet_id,
                MQTT_RC_QUOTA_EXCEEDED);
    return true;
}

/* ---- $SYS ---------------------------------------------------------------- */

static void sys_store(void *ctx, broker_sys_emit_fn emit, void *ectx)
{
    struct broker *b = ctx;
    struct persist *p = b->persist;
    if (!p)
        return;
    struct store_stats s;
    store_get_stats(p->st, &s);
    const struct {
        const char *name;
        uint64_t v;
    } rows[] = {{"commits", s.commits},
                {"ops", s.ops},
                {"syncs", s.syncs},
                {"failures", s.failures},
                {"bytes", s.bytes},
                {"full_refused", p->full_refused},
                {"queue_full_refused", p->queue_refused},
                {"queue_full_dropped_oldest", p->dropped_oldest}};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char topic[64], v[24];
        snprintf(topic, sizeof(topic), "$SYS/broker/store/%s", rows[i].name);
        snprintf(v, sizeof(v), "%" PRIu64, rows[i].v);
        emit(ectx, topic, v);
    }
}

/* ---- life cycle ------------------------------------------------------------ */

void broker_set_store(struct broker *b, struct store *st)
{
    b->store = st;
    if (!st)
        return;
    if (!(b->persist = calloc(1, sizeof(*b->persist))))
        return; /* broker_load reports it */
    b->persist->st = st;
    store_set_commit_hook(st, on_commit, b);
    broker_add_sys_source(b, sys_store, b);
}

/* see persist.h */
void persist_detach(struct broker *b)
{
    struct persist *p = b->persist;
    if (!p)
        return;
    b->persist = NULL;
    free(p->q);
    free(p->pump);
    free(p->map.slots);
    free(p);
}

/* ---- loading ----------------------------------------------------------------- */

static size_t slot_of(const struct msg_map *mp, uint64_t id)
{
    size_t i = (size_t)(id * UINT64_C(0x9E3779B97F4A7C15) >> 20) & (mp->cap - 1);
    while (mp->slots[i] && mp->slots[i]->store_id != id)
        i = (i + 1) & (mp->cap - 1);
    return i;
}

static int map_put(struct msg_map *mp, struct msg *m)
{
    if ((mp->n + 1) * 2 > mp->cap) {
        struct msg_map bigger = {calloc(mp->cap ? mp->cap * 2 : 1024, sizeof(struct msg *)),
                                 mp->cap ? mp->cap * 2 : 1024, mp->n};
        if (!bigger.slots)
            return -1;
        for (size_t i = 0; i < mp->cap; i++)
            if (mp->slots[i])
                bigger.slots[slot_of(&bigger, mp->slots[i]->store_id)] = mp->slots[i];
        free(mp->slots);
        *mp = bigger;
    }
    mp->slots[slot_of(mp, m->store_id)] = m;
    mp->n++;
    return 0;
}

static struct msg *map_get(const struct msg_map *mp, uint64_t id)
{
    return mp->cap ? mp->slots[slot_of(mp, id)] : NULL;
}

static int load_msg(void *ctx, const struct store_msg *r)
{
    struct broker *b = ctx;
    struct persist *p = b->persist;
    struct mqtt_props pr;
    if (!decode_props(r->props, r->props_len, &pr)) {
        log_warn("store: message %" PRIu64 " has properties this ward cannot read; dropped", r->id);
        p->loaded.dropped++;
        return 0;
    }
    uint64_t now = clock_mono_ms();
    size_t tlen = strlen(r->topic);
    struct msg *m = msg_new((const uint8_t *)r->topic, (uint16_t)(tlen > 65535 ? 65535 : tlen),
                            r->payload, r->payload_len, r->qos, r->retain, &pr, r->origin, now);
    if (!m)
        return -1;
    m->has_expiry = r->expire_at != 0;
    m->expire_at_ms = r->expire_at ? to_mono(r->expire_at) : 0;
    m->store_id = r->id;
    if (map_put(&p->map, m) < 0) {
        msg_unref(m);
        return -1;
    }
    p->loaded.msgs++;
    return 0;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int load_session(void *ctx, const struct store_session *r)
{
    struct broker *b = ctx;
    struct persist *p = b->persist;
    if (session_find(b, r->id))
        return 0;
    struct session *s = session_new(b, r->id);
    if (!s)
        return -1;
    uint64_t now = clock_mono_ms();
    s->persist = true;
    session_set_owner(s, r->owner ? r->owner : ""); /* checked below: NULL if it failed */
    s->username = dup_or_null(r->username);
    s->cert_cn = dup_or_null(r->cert_cn);
    s->cert_ou = dup_or_null(r->cert_ou);
    s->expiry_s = r->expiry_s;
    s->protocol = r->protocol;
    s->bridge = r->bridge;
    /* A session that was online when ward stopped starts counting now. */
    s->expire_at = r->expire_at ? to_mono(r->expire_at) : now + (uint64_t)r->expiry_s * 1000u;
    struct msg *will = r->will_msg_id ? map_get(&p->map, r->will_msg_id) : NULL;
    if (will) {
        /* Its connection ended with ward (or before): the will is pending. */
        s->will = msg_ref(will);
        s->stored_will = msg_ref(will);
        will->prefs++;
        s->will_delay_s = r->will_delay_s;
        s->will_at = (now + (uint64_t)r->will_delay_s * 1000u) | 1;
    }
    session_offline_add(b, s);
    if (!s->owner)
        return -1;
    p->loaded.sessions++;
    return 0;
}

static int load_sub(void *ctx, const char *sid, const struct store_sub *r)
{
    struct broker *b = ctx;
    struct session *s = session_find(b, sid);
    if (!s)
        return 0;
    if (session_subscribe(b, s, (const uint8_t *)r->filter, strlen(r->filter), r->options,
                          r->sub_id) < 0)
        return -1;
    b->persist->loaded.subs++;
    return 0;
}

/* Marks a stored in-flight packet id as used. */
static bool pid_claim(struct session *s, uint16_t pid)
{
    if (!pid || (!s->pid_used && !(s->pid_used = calloc(8192, 1))))
        return false;
    if (s->pid_used[pid >> 3] & (1u << (pid & 7)))
        return false;
    s->pid_used[pid >> 3] |= (uint8_t)(1u << (pid & 7));
    return true;
}

static int load_delivery(void *ctx, const char *sid, const struct store_delivery *r)
{
    struct broker *b = ctx;
    struct persist *p = b->persist;
    struct session *s = session_find(b, sid);
    struct msg *m = map_get(&p->map, r->msg_id);
    bool inflight = r->state != 0;
    if (!s || !m || (!inflight && msg_expired(m, clock_mono_ms())) ||
        (inflight && !pid_claim(s, r->pid))) {
        if (s)
            store_delivery_del(p->st, sid, r->msg_id);
        p->loaded.dropped++;
        return 0;
    }
    struct delivery *d = calloc(1, sizeof(*d));
    if (!d)
        return -1;
    d->m = msg_ref(m);
    m->prefs++;
    d->pstate = 2;
    d->seq = r->seq;
    if (r->seq > s->next_seq)
        s->next_seq = r->seq;
    d->qos = r->qos;
    d->retain = r->retain;
    d->nsub = r->nsub < MQTT_MAX_SUB_IDS ? r->nsub : MQTT_MAX_SUB_IDS;
    if (d->nsub)
        memcpy(d->sub_ids, r->sub_ids, d->nsub * sizeof(*d->sub_ids));
    if (inflight) {
        /* Resent with DUP and its packet id when the session resumes. */
        d->pid = r->pid;
        d->sent = true;
        d->pubrel_sent = r->state == 2;
        session_inflight_add(b, s, d);
    } else {
        session_queue_add(b, s, d);
    }
    p->loaded.deliveries++;
    return 0;
}

static int load_rel(void *ctx, const char *sid, uint16_t pid)
{
    struct broker *b = ctx;
    struct session *s = session_find(b, sid);
    if (!s || session_rel_has(s, pid))
        return 0;
    b->persist->loaded.rels++;
    return session_rel_add(s, pid);
}

static int load_retained(void *ctx, const char *topic, uint64_t msg_id)
{
    struct broker *b = ctx;
    struct persist *p = b->persist;
    struct msg *m = map_get(&p->map, msg_id);
    int r = m && !msg_expired(m, clock_mono_ms()) ? retain_set(b->retained, m) : RETAIN_NOMEM;
    if (r == RETAIN_OK) {
        m->prefs++;
        p->loaded.retained++;
        return 0;
    }
    /* Past mqtt.max_retained_messages / _bytes (lowered since it was
     * stored): as a new one would be, it is not kept (and said so). */
    if (r == RETAIN_FULL)
        p->loaded.over_limit++;
    else
        p->loaded.dropped++;
    store_retained_del(p->st, topic);
    return 0;
}

static int load_bridge(void *ctx, const char *bridge, uint64_t seq, uint64_t msg_id)
{
    /* Bridges' send queues are not kept yet (docs/persistence.md). */
    (void)ctx, (void)bridge, (void)seq, (void)msg_id;
    return 0;
}

/* After loading: messages nothing took are deleted; the map lets go. */
static void load_done(struct persist *p)
{
    for (size_t i = 0; i < p->map.cap; i++) {
        struct msg *m = p->map.slots[i];
        if (!m)
            continue;
        if (!m->prefs) {
            store_msg_del(p->st, m->store_id);
            m->store_id = 0;
        }
        msg_unref(m);
    }
    free(p->map.slots);
    p->map = (struct msg_map){0};
}

/* see broker.h */
int broker_load(struct broker *b, char *err, size_t errlen)
{
    if (!b->store)
        return 0;
    struct persist *p = b->persist;
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    static const struct store_load_fns fns = {load_msg, load_session,  load_sub,   load_delivery,
                                              load_rel, load_retained, load_bridge};
    uint64_t t0 = clock_mono_ms();
    pthread_mutex_lock(&b->lock);
    p->loading = true;
    int rc = store_load(p->st, &fns, b, err, errlen);
    p->loading = false;
    pthread_mutex_unlock(&b->lock);
    if (rc == 0 && store_start(p->st) < 0) {
        snprintf(err, errlen, "cannot start the store thread");
        rc = -1;
    }
    pthread_mutex_lock(&b->lock);
    load_done(p);
    pthread_mutex_unlock(&b->lock);
    if (rc < 0)
        return -1;
    log_notice("store: loaded %" PRIu64 " sessions, %" PRIu64 " subscriptions, %" PRIu64
               " queued or in-flight messages, %" PRIu64 " packet ids awaiting PUBREL, %" PRIu64
               " retained messages (%" PRIu64 " messages in all, %" PRIu64
               " expired or unusable rows dropped) in %" PRIu64 " ms",
               p->loaded.sessions, p->loaded.subs, p->loaded.deliveries, p->loaded.rels,
               p->loaded.retained, p->loaded.msgs, p->loaded.dropped, clock_mono_ms() - t0);
    if (p->loaded.over_limit)
        log_warn("store: %" PRIu64 " stored retained messages were over mqtt.max_retained_messages "
                 "or mqtt.max_retained_bytes: not loaded, and removed from the store",
                 p->loaded.over_limit);
    return 0;
}
