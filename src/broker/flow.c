/* Backpressure from full receivers to the producers that feed them (see
 * flow.h). */
#include "broker/flow.h"

#include "broker/internal.h"
#include "core/clock.h"
#include "core/log.h"

/* see flow.h */
int flow_policy(const struct broker *b, const struct client *c)
{
    int8_t o = b->listener_overload[net_conn_listener(c->nc) % 64];
    return o >= 0 ? o : (int)b->cfg.overload;
}

/* see flow.h */
bool flow_blocks(struct broker *b, struct session *s, uint8_t qos, const struct msg *m)
{
    struct client *c = s->c;
    if (!c || !c->connected || c->closing || flow_policy(b, c) != BROKER_OVERLOAD_BACKPRESSURE)
        return false;
    if (qos == 0) {
        if (net_conn_writable(c->nc, msg_wire_size(m)))
            return false;
        c->out_blocking = true;
        return true;
    }
    if (s->queue.count < b->cfg.max_queued)
        return false;
    if (!s->blocking) {
        s->blocking = true;
        s->blocking_since_ms = clock_mono_ms();
    }
    return true;
}

static void unlink_throttled(struct broker *b, struct client *c)
{
    if (c->tprev)
        c->tprev->tnext = c->tnext;
    else
        b->throttled = c->tnext;
    if (c->tnext)
        c->tnext->tprev = c->tprev;
    c->tprev = c->tnext = NULL;
    c->throttled = false;
    b->nthrottled--;
}

/* see flow.h */
void flow_throttle(struct broker *b, struct client *c)
{
    if (c->throttled)
        return;
    c->throttled = true;
    c->tprev = NULL;
    c->tnext = b->throttled;
    if (b->throttled)
        b->throttled->tprev = c;
    b->throttled = c;
    b->nthrottled++;
    b->st.throttled++;
}

static void release_all(struct broker *b)
{
    while (b->throttled) {
        struct client *p = b->throttled;
        unlink_throttled(b, p);
        if (!p->closing)
            net_conn_resume_input(p->nc);
    }
}

/* see flow.h */
void flow_check(struct broker *b, struct client *c, bool output_drained)
{
    struct session *s = c->s;
    bool room = false;
    if (output_drained && c->out_blocking) {
        c->out_blocking = false;
        room = true;
    }
    if (s && s->blocking && s->queue.count <= b->cfg.max_queued / 2) {
        s->blocking = false;
        room = true;
    }
    if (room && b->throttled)
        release_all(b);
}

/* see flow.h */
bool flow_stalled(const struct broker *b, const struct client *c, uint64_t now)
{
    const struct session *s = c->s;
    (void)b;
    /* The connection's own timeout (a listener may override the global
     * one); a bridge's local side waits on its uplink, and never times out. */
    uint32_t limit = net_conn_slow_consumer_ms(c->nc);
    return limit && s && !c->internal && s->blocking && now - s->blocking_since_ms > limit;
}

/* see flow.h */
void flow_forget(struct broker *b, struct client *c)
{
    if (c->throttled)
        unlink_throttled(b, c);
    bool was_blocking = c->out_blocking || (c->s && c->s->blocking);
    c->out_blocking = false;
    if (c->s)
        c->s->blocking = false;
    if (was_blocking && b->throttled)
        release_all(b);
}
