/* Matching a message against the subscriptions, merging overlapping ones per
 * session, and delivering: straight to the socket for QoS 0, through the
 * session's inflight window and queue for QoS 1/2. */
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/vec.h"

static uint16_t window(const struct broker *b, const struct client *c)
{
    /* mqtt.max_inflight_window, and for v5 at most the client's Receive
     * Maximum (MQTT-3.3.4-7). */
    uint16_t w = b->cfg.max_inflight;
    return c->codec.version == MQTT_V5 && c->recv_max < w ? c->recv_max : w;
}

/* Topic alias towards the client (MQTT-3.3.2-10..12): the first time a
 * topic goes out it is sent with a new alias, later with the alias alone. */
static void apply_alias(struct client *c, struct mqtt_publish *pub, const struct msg *m)
{
    uint16_t cap = c->alias_max < OUT_ALIAS_CAP ? c->alias_max : OUT_ALIAS_CAP;
    struct client_extra *x = client_extra(c);
    if (!x)
        return; /* sent with its topic, as to a client without aliases */
    for (uint16_t i = 0; i < x->nalias_out; i++)
        if (strcmp(x->alias_out[i], m->topic) == 0) {
            pub->topic.len = 0;
            pub->props.present |= MQTT_HAS(MQTT_PROP_TOPIC_ALIAS);
            pub->props.topic_alias = (uint16_t)(i + 1);
            return;
        }
    if (x->nalias_out < cap && !x->alias_out &&
        !(x->alias_out = calloc(OUT_ALIAS_CAP, sizeof(*x->alias_out))))
        return;
    if (x->nalias_out < cap && (x->alias_out[x->nalias_out] = strdup(m->topic))) {
        pub->props.present |= MQTT_HAS(MQTT_PROP_TOPIC_ALIAS);
        pub->props.topic_alias = ++x->nalias_out;
    }
}

/* Sends one PUBLISH. Returns false if it could not go out (too large for
 * the client, or its output is full): the message is then dropped for this
 * client only (MQTT-3.1.2-25). */
static bool send_publish(struct broker *b, struct client *c, const struct msg *m, uint8_t qos,
                         bool retain, bool dup, uint16_t pid, const uint32_t *sub_ids, uint8_t nsub)
{
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    struct mqtt_publish *pub = &p.u.publish;
    pub->qos = qos;
    pub->retain = retain;
    pub->dup = dup;
    pub->packet_id = pid;
    pub->topic = (struct mqtt_str){(const uint8_t *)m->topic, m->topic_len};
    pub->payload = (struct mqtt_bin){m->payload, m->payload_len};
    if (c->codec.version == MQTT_V5) {
        msg_fill_props(m, clock_mono_ms(), &pub->props);
        for (uint8_t i = 0; i < nsub && i < MQTT_MAX_SUB_IDS; i++)
            if (sub_ids[i])
                pub->props.sub_ids[pub->props.sub_id_count++] = sub_ids[i];
        if (pub->props.sub_id_count)
            pub->props.present |= MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID);
        if (c->alias_max)
            apply_alias(c, pub, m);
    }
    if (c->max_packet && mqtt_encoded_size(&c->codec, &p) > c->max_packet) {
        b->st.dropped++;
        b->st.dropped_large++;
        log_debug("%s: message on '%s' larger than the client's maximum packet size; dropped",
                  CLIENT_NAME(c), m->topic);
        return false;
    }
    if (!client_send(c, &p)) {
        if (qos == 0) { /* QoS 1/2 stay in flight and go out on drain */
            b->st.dropped++;
            b->st.dropped_output++;
        }
        return false;
    }
    b->st.msgs_out++;
    b->st.msgs_out_qos[qos % 3]++;
    c->msgs_out++;
    return true;
}

static bool online(const struct session *s)
{
    return s->c && s->c->connected && !s->c->closing;
}

/* Sends an in-flight delivery (again). */
static void transmit(struct broker *b, struct client *c, struct delivery *d)
{
    if (d->pubrel_sent) {
        struct mqtt_packet p = {.type = MQTT_PUBREL};
        p.u.ack.packet_id = d->pid;
        client_send(c, &p);
        return;
    }
    /* A QoS 2 PUBLISH to a stored session goes once its packet id is
     * committed (persist_hold_publish): route_drained sends it then. */
    if (d->held_ticket) {
        if (!persist_committed(b, d->held_ticket)) {
            d->unsent = true;
            return;
        }
        d->held_ticket = 0;
    }
    /* MQTT-3.3.1-1: DUP on a resend. */
    if (send_publish(b, c, d->m, d->qos, d->retain, d->sent, d->pid, d->sub_ids, d->nsub))
        d->sent = true;
    else
        d->unsent = true; /* the output was full: route_drained sends it */
}

/* Whether the session may still receive a message it was given earlier:
 * the rules may have changed since it was queued (a reload), and a resumed
 * session gets nothing its identity may not read now. */
static bool still_allowed(struct broker *b, struct session *s, const struct msg *m)
{
    if (!b->acl_active || session_allowed(b, s, ACL_SUBSCRIBE, m->topic, m->topic_len))
        return true;
    b->st.acl_denied++;
    return false;
}

struct retained_item {
    struct msg *m;
    uint8_t qos;
    uint32_t sub_id;
};

/* Whether a retained message can go to c now without being dropped. */
static bool retained_fits(struct broker *b, struct client *c, const struct msg *m, uint8_t qos)
{
    if (qos == 0) /* a "no" arms on_drain: route_drained comes back here */
        return net_conn_writable(c->nc, msg_wire_size(m));
    return c->s->queue.count < b->cfg.max_queued;
}

static void retained_send(struct broker *b, struct client *c, struct msg *m, uint8_t qos,
                          uint32_t sub_id)
{
    route_deliver(b, c->s, m, qos, true, &sub_id, sub_id ? 1 : 0);
}

/* Sends from the backlog what fits now, in order. */
static void retained_drain(struct broker *b, struct client *c)
{
    struct client_extra *x = c->x;
    if (!x || x->rb_draining || !x->rb_n)
        return;
    x->rb_draining = true; /* route_deliver pumps, and the pump drains */
    while (x->rb_n && online(c->s)) {
        struct retained_item *it = &x->rb[x->rb_head];
        if (!retained_fits(b, c, it->m, it->qos))
            break;
        retained_send(b, c, it->m, it->qos, it->sub_id);
        msg_unref(it->m);
        x->rb_head++;
        x->rb_n--;
    }
    if (!x->rb_n)
        x->rb_head = 0;
    x->rb_draining = false;
}

/* see route.h */
void route_retained(struct broker *b, struct client *c, struct msg *m, uint8_t qos, uint32_t sub_id)
{
    if ((!c->x || !c->x->rb_n) && retained_fits(b, c, m, qos)) {
        retained_send(b, c, m, qos, sub_id);
        return;
    }
    struct client_extra *x = client_extra(c);
    size_t cap = b->cfg.max_retained_messages ? b->cfg.max_retained_messages : 1000000;
    if (!x || x->rb_n >= cap) {
        b->st.dropped++;
        if (x)
            b->st.dropped_output++;
        return;
    }
    if (x->rb_head && x->rb_head + x->rb_n == x->rb_cap) { /* slide to the front */
        memmove(x->rb, x->rb + x->rb_head, x->rb_n * sizeof(*x->rb));
        x->rb_head = 0;
    }
    if (!ward_ok(VEC_RESERVE(x->rb, x->rb_cap, x->rb_head + x->rb_n + 1))) {
        b->st.dropped++;
        return;
    }
    x->rb[x->rb_head + x->rb_n++] = (struct retained_item){msg_ref(m), qos, sub_id};
}

/* see route.h */
void route_retained_forget(struct client *c)
{
    struct client_extra *x = c->x;
    if (!x)
        return;
    for (size_t i = 0; i < x->rb_n; i++)
        msg_unref(x->rb[x->rb_head + i].m);
    free(x->rb);
    x->rb = NULL;
    x->rb_head = x->rb_n = x->rb_cap = 0;
}

void route_pump(struct broker *b, struct client *c)
{
    struct session *s = c->s;
    uint64_t now = clock_mono_ms();
    /* Nothing moves into the window while the output is over its bound:
     * it waits in the queue (where backpressure sees it) for on_drain. */
    while (s->queue.head && s->inflight.count < window(b, c) &&
           net_conn_writable(c->nc, msg_wire_size(s->queue.head->m))) {
        struct delivery *d = session_queue_pop(b, s);
        if (msg_expired(d->m, now) || !still_allowed(b, s, d->m) ||
            !(d->pid = session_pid_take(s))) {
            persist_delivery_done(b, s, d);
            delivery_free(d);
            continue;
        }
        session_inflight_add(b, s, d);
        persist_delivery_update(b, s, d);
        persist_hold_publish(b, s, d);
        transmit(b, c, d);
    }
    retained_drain(b, c);
}

void route_resend(struct broker *b, struct client *c)
{
    /* MQTT-4.4.0-1: unacknowledged PUBLISH and PUBREL, in their order;
     * a PUBLISH its receiver may no longer read is dropped instead. */
    struct session *s = c->s;
    for (struct delivery *d = s->inflight.head, *next; d; d = next) {
        next = d->next;
        if (!d->pubrel_sent && !still_allowed(b, s, d->m)) {
            session_inflight_take(b, s, d->pid);
            session_pid_release(s, d->pid);
            persist_delivery_done(b, s, d);
            delivery_free(d);
            continue;
        }
        transmit(b, c, d);
    }
    route_pump(b, c);
}

/* see route.h */
void route_drained(struct broker *b, struct client *c)
{
    for (struct delivery *d = c->s->inflight.head; d; d = d->next) {
        if (!d->unsent)
            continue;
        if (!net_conn_writable(c->nc, msg_wire_size(d->m)))
            break; /* in order: the rest wait for the next drain */
        d->unsent = false;
        transmit(b, c, d);
        if (d->unsent)
            break; /* held for a commit: the rest after it */
    }
    route_pump(b, c);
    flow_check(b, c, true);
}

void route_deliver(struct broker *b, struct session *s, struct msg *m, uint8_t qos, bool retain,
                   const uint32_t *sub_ids, uint8_t nsub)
{
    if (msg_expired(m, clock_mono_ms()))
        return;
    /* A subscription the ACL allowed may still reach topics a deny rule
     * covers (`#` past `secret/#`): each message is checked for its
     * receiver, as the ACL's subscribe rules say (src/auth/acl.h). */
    if (b->acl_active && !session_allowed(b, s, ACL_SUBSCRIBE, m->topic, m->topic_len)) {
        b->st.acl_denied++;
        return;
    }
    if (qos == 0) {
        if (online(s))
            send_publish(b, s->c, m, 0, retain, false, 0, sub_ids, nsub);
        return;
    }
    persist_queue_room(b, s);
    if (s->queue.count >= b->cfg.max_queued) {
        /* Offline, overload = drop | reject, or a message of the broker's
         * own (a will, $SYS, retained on subscribe), which cannot wait: a
         * client's PUBLISH to an online backpressured receiver never gets
         * here (flow_blocks held its producer). */
        b->st.dropped++;
        if (online(s)) {
            b->st.dropped_queue++;
            if (flow_policy(b, s->c) == BROKER_OVERLOAD_REJECT)
                b->flow_hit = FLOW_REJECT;
        } else {
            b->st.dropped_offline++;
        }
        log_debug("session '%s': queue full (%u); message on '%s' dropped", s->id,
                  b->cfg.max_queued, m->topic);
        return;
    }
    struct delivery *d = calloc(1, sizeof(*d));
    if (!d) {
        b->st.dropped++;
        return;
    }
    d->m = msg_ref(m);
    d->qos = qos;
    d->retain = retain;
    d->nsub = nsub;
    if (nsub)
        memcpy(d->sub_ids, sub_ids, nsub * sizeof(*sub_ids));
    persist_delivery_new(b, s, d);
    session_queue_add(b, s, d);
    if (online(s))
        route_pump(b, s->c);
    persist_delivery_queued(b, s);
}

struct route_ctx {
    struct broker *b;
    struct msg *m;
    struct session *from;
};

static struct match *match_slot(struct broker *b, struct session *s, bool shared)
{
    if (!shared && s->match_gen == b->match_gen)
        return &b->matches[s->match_idx];
    if (!ward_ok(VEC_RESERVE(b->matches, b->capmatches, b->nmatches + 1)))
        return NULL;
    if (!shared) {
        s->match_gen = b->match_gen;
        s->match_idx = (uint32_t)b->nmatches;
    }
    struct match *mt = &b->matches[b->nmatches++];
    memset(mt, 0, sizeof(*mt));
    mt->s = s;
    mt->shared = shared;
    return mt;
}

/* A NATS subscription is delivered once per subscription, never merged. */
static void on_nats_match(struct route_ctx *r, struct nats_sub *ns)
{
    if (!nats_out_accepts(ns, r->m, r->from))
        return;
    struct match *mt = match_slot(r->b, ns->c->s, true);
    if (mt)
        mt->ns = ns;
}

static void on_match(void *ctx, const struct subtree_sub *sub)
{
    struct route_ctx *r = ctx;
    struct nats_sub *ns = nats_sub_of(sub->owner);
    if (ns) {
        on_nats_match(r, ns);
        return;
    }
    struct session *s = sub->owner;
    uint8_t qos = MQTT_SUBOPT_QOS(sub->options);
    if (qos > r->m->qos)
        qos = r->m->qos;
    /* MQTT-3.3.1-12/13: RETAIN is kept only with Retain As Published. */
    bool retain = (sub->options & MQTT_SUBOPT_RAP) && r->m->retain;
    /* MQTT-3.8.3-3: No Local. */
    if ((sub->options & MQTT_SUBOPT_NO_LOCAL) && s == r->from)
        return;
    /* Each share group's pick is delivered on its own, never merged. */
    struct match *mt = match_slot(r->b, s, sub->group != NULL);
    if (!mt)
        return;
    /* MQTT-3.3.4-2..5: one delivery, the highest QoS, every identifier. */
    if (qos > mt->qos)
        mt->qos = qos;
    mt->retain |= retain;
    if (sub->sub_id && mt->nsub < MQTT_MAX_SUB_IDS)
        mt->sub_ids[mt->nsub++] = sub->sub_id;
}

static bool eligible(void *ctx, void *owner)
{
    (void)ctx;
    struct nats_sub *ns = nats_sub_of(owner);
    return ns ? online(ns->c->s) : online(owner);
}

static void match_all(struct broker *b, struct msg *m, struct session *from)
{
    struct route_ctx r = {b, m, from};
    b->match_gen++;
    b->nmatches = 0;
    subtree_match(b->subs, (const uint8_t *)m->topic, m->topic_len, on_match, eligible, &r);
}

static void deliver_all(struct broker *b, struct msg *m)
{
    for (size_t i = 0; i < b->nmatches; i++) {
        struct match *mt = &b->matches[i];
        if (!mt->ns) {
            route_deliver(b, mt->s, m, mt->qos, mt->retain, mt->sub_ids, mt->nsub);
            continue;
        }
        bool done = false;
        if (b->acl_active && !session_allowed(b, mt->s, ACL_SUBSCRIBE, m->topic, m->topic_len))
            b->st.acl_denied++;
        else if (nats_out_deliver(b, mt->ns, m, &done) && done)
            nats_sub_remove(b, mt->ns); /* UNSUB <sid> <max>: its last message went */
    }
}

void route_publish(struct broker *b, struct msg *m, struct session *from)
{
    match_all(b, m, from);
    deliver_all(b, m);
}

/* see route.h */
bool route_publish_or_wait(struct broker *b, struct msg *m, struct session *from)
{
    match_all(b, m, from);
    for (size_t i = 0; i < b->nmatches; i++)
        if (flow_blocks(b, b->matches[i].s, b->matches[i].qos, m)) {
            b->flow_hit = FLOW_THROTTLE;
            return false;
        }
    if (persist_refuses(b, from))
        return true;
    deliver_all(b, m);
    return true;
}

void route_internal(struct broker *b, struct msg *m)
{
    if (m->retain && b->cfg.retain_available && persist_retain_set(b, m) == RETAIN_FULL)
        b->st.retained_dropped++; /* a retained will past the store's limits */
    route_publish(b, m, NULL);
}
