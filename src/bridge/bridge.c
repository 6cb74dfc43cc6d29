/* see bridge.h */
#include "bridge/bridge.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bridge/queue.h"
#include "bridge/topic_map.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "mqtt/mqtt.h"
#include "net/tcp.h"
#include "tls/tls.h"

#define OUT_SOFT_LIMIT (1u << 20)  /* stop taking queued messages above this */
#define OUT_HARD_LIMIT (64u << 20) /* a side whose output grows past this is broken */
#define IN_LIMIT       (256u << 20)
#define DOWN_WINDOW    1024u /* our Receive Maximum towards the upstream */
#define LOCAL_WINDOW   512u  /* and towards the local broker: its output stays small */
/* The local session holds the backlog while the link is down (stored with
 * persistence on): it lasts as long as the broker's default maximum. */
#define LOCAL_EXPIRY_S 86400u
#define BACKOFF_FIRST  1000u  /* ms */
#define STABLE_MS      10000u /* a link up this long resets the backoff */
#define LOG_EVERY_MS   10000u /* overflow and drop warnings at most this often */
#define REL_NONE       0
#define REL_PENDING    1 /* QoS 2 from upstream, not yet accepted here */
#define REL_RECEIVED   2 /* accepted here and PUBREC sent; PUBREL awaited */
/* The local acknowledgement a forwarded message is owed (owed[]). */
#define OWE_PUBACK       1
#define OWE_PUBREC       2 /* its PUBREL is answered here */
#define OWE_PUBREC_RELAY 3 /* its PUBREL goes on upstream */
/* What a local PUBREL is answered with (lrel[]). */
#define LREL_NONE  0 /* not known here (an earlier process): relayed upstream */
#define LREL_LOCAL 1 /* PUBCOMP at once */
#define LREL_RELAY 2 /* the upstream PUBREL, then the upstream's PUBCOMP */

/* One MQTT connection of the bridge, as a client. */
struct side {
    const char *what; /* "upstream" or "local", for logs */
    int fd;           /* -1: not connected */
    struct tcp_transport tcp;
    const struct transport_ops *ops;
    void *t;
    struct mqtt_codec codec;
    struct buf in, out;
    uint8_t pid_used[65536 / 8];
    uint16_t next_pid;
    uint32_t gen;        /* which connection this is */
    uint16_t window;     /* QoS 1/2 messages in flight at most */
    uint32_t max_packet; /* the server's Maximum Packet Size, 0: none */
    uint8_t max_qos;     /* the server's Maximum QoS (v5), else 2 */
    bool no_retain;      /* the server said Retain Available 0 */
    uint16_t keepalive;
    uint64_t last_tx, last_rx, ping_sent, up_since;
};

struct bridge {
    const struct cfg_bridge *cfg;
    char host[256];
    uint16_t port;
    bool tls;
    struct side local, up;
    struct bq fwd;  /* to the upstream */
    struct bq down; /* from the upstream, to be published here */
    uint8_t up_rel[65536];
    struct tls_client *tls_cur;  /* the live connection's (bridge thread only) */
    struct tls_client *tls_next; /* the newest set that loaded */
    pthread_mutex_t tls_lock;    /* guards tls_next */
    bool private_ok;             /* still trying the 3.1.1 bridge flag */
    bool local_ready;
    bool local_resume;                            /* CONNECT with the session kept */
    int (*reattach)(void *ctx, const char *name); /* a new local socket, or -1 */
    void *reattach_ctx;
    uint64_t last_reattach;
    uint32_t attempt;
    uint64_t next_try;
    uint16_t up_sub_pid;   /* the upstream SUBSCRIBE's packet id */
    uint32_t subs_pending; /* local SUBACKs awaited */
    bool up_released;      /* the upstream session's QoS 2 ids released once */
    /* Local packet ids (value: their QoS) whose message the upstream
     * acknowledged while the local side was away: the broker sends them
     * again (DUP) on the resumed session, and that copy is acknowledged
     * at once instead of being forwarded twice. */
    uint8_t owed[65536];
    /* Per local packet id in the PUBREL phase: how to answer the PUBREL. */
    uint8_t lrel[65536];
    /* Upstream packet ids of PUBRELs relayed for a message this process
     * does not hold (sent before a restart): their PUBCOMP goes back here. */
    uint8_t relay_comp[65536];
    uint32_t up_session_gen; /* the connection the upstream session began on */
    unsigned seed;           /* backoff jitter, different in every process */
    uint64_t last_drop_log;
    uint64_t drops_unlogged;
    pthread_t thread;
    bool started;
    int wakefd;
    _Atomic bool stop;
    pthread_mutex_t st_lock;
    struct bridge_status st;
};

static void set_error(struct bridge *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(struct bridge *b, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&b->st_lock);
    va_start(ap, fmt);
    vsnprintf(b->st.last_error, sizeof(b->st.last_error), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&b->st_lock);
}

static void count(struct bridge *b, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&b->st_lock);
    *field += n;
    b->st.queued = b->fwd.count;
    pthread_mutex_unlock(&b->st_lock);
}

static void set_connected(struct bridge *b, bool up)
{
    pthread_mutex_lock(&b->st_lock);
    b->st.connected = up;
    b->st.since = (uint64_t)time(NULL);
    if (up) {
        b->st.connects++;
        b->st.last_error[0] = '\0';
    }
    pthread_mutex_unlock(&b->st_lock);
}

/* Messages lost are counted at once and logged at most every few seconds. */
static void dropped(struct bridge *b, const char *why)
{
    count(b, &b->st.dropped, 1);
    b->drops_unlogged++;
    uint64_t now = clock_mono_ms();
    if (now - b->last_drop_log < LOG_EVERY_MS && b->last_drop_log)
        return;
    log_warn("bridge %s: %" PRIu64 " message%s dropped: %s", b->cfg->name, b->drops_unlogged,
             b->drops_unlogged == 1 ? "" : "s", why);
    b->drops_unlogged = 0;
    b->last_drop_log = now;
}

/* ---- one side: packets in and out ---------------------------------------- */

static void side_init(struct side *s, const char *what)
{
    s->what = what;
    s->fd = -1;
    s->next_pid = 1;
    buf_init(&s->in, IN_LIMIT);
    buf_init(&s->out, OUT_HARD_LIMIT);
}

static void side_close(struct side *s)
{
    if (s->t && s->ops->destroy && s->t != &s->tcp)
        s->ops->destroy(s->t);
    s->t = NULL;
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    buf_reset(&s->in);
    buf_reset(&s->out);
    s->ping_sent = 0;
}

static uint16_t pid_take(struct side *s)
{
    for (;;) {
        uint16_t id = s->next_pid++;
        if (s->next_pid == 0)
            s->next_pid = 1;
        if (id && !(s->pid_used[id / 8] & (1u << (id % 8)))) {
            s->pid_used[id / 8] |= (uint8_t)(1u << (id % 8));
            return id;
        }
    }
}

static void pid_release(struct side *s, uint16_t id)
{
    s->pid_used[id / 8] &= (uint8_t) ~(1u << (id % 8));
}

static bool pid_busy(const struct side *s, uint16_t id)
{
    return s->pid_used[id / 8] & (1u << (id % 8));
}

static void pid_mark(struct side *s, uint16_t id)
{
    s->pid_used[id / 8] |= (uint8_t)(1u << (id % 8));
}

/* Queues one packet. -1 if it cannot be encoded or the output is full. */
static int side_send(struct side *s, const struct mqtt_packet *p)
{
    if (s->fd < 0)
        return -1;
    size_t need = mqtt_encoded_size(&s->codec, p);
    if (s->max_packet && need > s->max_packet)
        return -1;
    if (buf_reserve(&s->out, need).err != WARD_OK)
        return -1;
    size_t n = mqtt_encode(&s->codec, p, buf_tail(&s->out), buf_room(&s->out));
    if (n == 0)
        return -1;
    buf_commit(&s->out, n);
    s->last_tx = clock_mono_ms();
    return 0;
}

static int side_ack(struct side *s, enum mqtt_type t, uint16_t pid, uint8_t reason)
{
    struct mqtt_packet p = {.type = t, .flags = t == MQTT_PUBREL ? 2 : 0};
    p.u.ack.packet_id = pid;
    p.u.ack.reason = reason;
    return side_send(s, &p);
}

/* Writes what is queued. 0: all written or the socket is full; -1: the
 * connection failed (cause in why). */
static int side_flush(struct side *s, const char **why)
{
    while (buf_len(&s->out)) {
        ssize_t n = s->ops->write(s->t, buf_head(&s->out), buf_len(&s->out));
        if (n > 0) {
            buf_consume(&s->out, (size_t)n);
            continue;
        }
        if (n == TRANSPORT_WANT_WRITE || n == TRANSPORT_WANT_READ)
            return 0;
        *why = n == TRANSPORT_EOF ? "connection closed" : s->ops->cause(s->t);
        return -1;
    }
    return 0;
}

/* Reads what is there. 1 read something, 0 nothing now, -1 closed. */
static int side_fill(struct side *s, const char **why)
{
    int got = 0;
    for (int i = 0; i < 8; i++) {
        if (buf_reserve(&s->in, 65536).err != WARD_OK) {
            *why = "input limit reached";
            return -1;
        }
        ssize_t n = s->ops->read(s->t, buf_tail(&s->in), buf_room(&s->in));
        if (n > 0) {
            buf_commit(&s->in, (size_t)n);
            s->last_rx = clock_mono_ms();
            got = 1;
            continue;
        }
        if (n == TRANSPORT_WANT_READ || n == TRANSPORT_WANT_WRITE)
            return got;
        *why = n == TRANSPORT_EOF ? "the server closed the connection" : s->ops->cause(s->t);
        return -1;
    }
    return got;
}

static void side_attach(struct side *s, int fd)
{
    s->fd = fd;
    s->tcp.fd = fd;
    s->tcp.err = 0;
    s->ops = &tcp_transport_ops;
    s->t = &s->tcp;
    s->gen++;
    s->last_rx = s->last_tx = clock_mono_ms();
}

/* ---- rules ----------------------------------------------------------------- */

/* The forward rule a local message came through: the lowest subscription
 * identifier the broker gave it (each rule subscribed with its index + 1). */
static const struct cfg_bridge_topic *forward_rule(const struct bridge *b,
                                                   const struct mqtt_publish *pub)
{
    uint32_t best = 0;
    for (unsigned i = 0; i < pub->props.sub_id_count; i++)
        if (pub->props.sub_ids[i] && (!best || pub->props.sub_ids[i] < best))
            best = pub->props.sub_ids[i];
    if (best && best <= b->cfg->nforwards)
        return &b->cfg->forwards[best - 1];
    for (size_t i = 0; i < b->cfg->nforwards; i++) {
        const char *f = b->cfg->forwards[i].local_topic ? b->cfg->forwards[i].local_topic
                                                        : b->cfg->forwards[i].remote_topic;
        if (mqtt_topic_match((const uint8_t *)f, strlen(f), pub->topic.p, pub->topic.len))
            return &b->cfg->forwards[i];
    }
    return NULL;
}

static const struct cfg_bridge_topic *subscription_rule(const struct bridge *b,
                                                        const struct mqtt_publish *pub)
{
    for (size_t i = 0; i < b->cfg->nsubscriptions; i++) {
        const char *f = b->cfg->subscriptions[i].remote_topic;
        if (mqtt_topic_match((const uint8_t *)f, strlen(f), pub->topic.p, pub->topic.len))
            return &b->cfg->subscriptions[i];
    }
    return NULL;
}

static const char *forward_filter(const struct cfg_bridge_topic *r)
{
    return r->local_topic && *r->local_topic ? r->local_topic : r->remote_topic;
}

static const char *forward_target(const struct cfg_bridge_topic *r)
{
    return r->local_topic && *r->local_topic ? r->remote_topic : NULL;
}

/* A queued message as a PUBLISH (QoS 0 carries no packet id or DUP). */
static struct mqtt_packet to_publish(const struct bq_msg *m, uint8_t qos, bool retain, uint16_t pid,
                                     bool dup, bool props)
{
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    p.u.publish = (struct mqtt_publish){.topic = {(const uint8_t *)m->topic, m->topic_len},
                                        .payload = {m->payload, m->payload_len},
                                        .qos = qos,
                                        .retain = retain,
                                        .dup = dup && qos,
                                        .packet_id = qos ? pid : 0};
    if (props)
        p.u.publish.props = m->props;
    return p;
}

/* Publishes m here (the local side is MQTT 5: properties go along). */
static int publish_local(struct bridge *b, const struct bq_msg *m, uint16_t pid, bool dup)
{
    struct mqtt_packet p = to_publish(m, m->qos, m->retain, pid, dup, true);
    return side_send(&b->local, &p);
}

/* ---- upstream -> here ----------------------------------------------------- */

static void send_down(struct bridge *b)
{
    struct side *l = &b->local;
    struct bq_msg *m;
    while (b->local_ready && b->down.inflight < l->window && (m = bq_peek_unsent(&b->down))) {
        uint16_t pid = pid_take(l);
        if (publish_local(b, m, pid, false) < 0) {
            pid_release(l, pid);
            dropped(b, "the local broker's input is full");
            bq_remove(&b->down, m);
            continue;
        }
        bq_mark_sent(&b->down, m, pid);
    }
}

/* An upstream message, published here under its mapped topic. */
static void from_upstream(struct bridge *b, const struct mqtt_publish *pub)
{
    struct side *u = &b->up;
    if (pub->qos == 2 && b->up_rel[pub->packet_id] != REL_NONE) {
        /* MQTT-4.3.3-9: a resend of what we have; PUBREC again if accepted. */
        if (b->up_rel[pub->packet_id] == REL_RECEIVED)
            side_ack(u, MQTT_PUBREC, pub->packet_id, 0);
        return;
    }
    const struct cfg_bridge_topic *r = subscription_rule(b, pub);
    char topic[65536];
    size_t tlen =
        r ? bridge_map_topic(r->remote_topic, r->local_topic, r->prefix, r->suffix,
                             (const char *)pub->topic.p, pub->topic.len, topic, sizeof(topic))
          : 0;
    bool retain = r && r->retain >= 0 ? r->retain : pub->retain;
    struct bq_msg *m = tlen ? bq_msg_new(topic, tlen, pub->payload.p, pub->payload.len, &pub->props,
                                         pub->qos, retain)
                            : NULL;
    if (!m) {
        dropped(b, tlen ? "out of memory" : "no subscription rule maps its topic");
        if (pub->qos == 1)
            side_ack(u, MQTT_PUBACK, pub->packet_id, 0);
        if (pub->qos == 2)
            side_ack(u, MQTT_PUBREC, pub->packet_id, u->codec.version == MQTT_V5 ? 0x80 : 0);
        return;
    }
    m->origin_pid = pub->packet_id;
    m->origin_qos = pub->qos;
    m->origin_gen = u->gen;
    if (pub->qos == 0) {
        /* Published at once, outside the QoS 1/2 window. */
        if (publish_local(b, m, 0, false) < 0)
            dropped(b, "the local broker's input is full");
        else
            count(b, &b->st.received, 1);
        bq_msg_free(m);
        return;
    }
    if (pub->qos == 2)
        b->up_rel[pub->packet_id] = REL_PENDING;
    bq_push(&b->down, m); /* unbounded: the upstream's window bounds it */
    send_down(b);
}

/* The local broker took a message from the upstream: acknowledge it there. */
static void accepted_here(struct bridge *b, struct bq_msg *m)
{
    struct side *u = &b->up;
    if (u->fd < 0)
        return;
    /* A packet id names the same message for as long as the session lasts;
     * a message from an earlier session is not acknowledged in this one. */
    if (m->origin_gen < b->up_session_gen)
        return;
    /* QoS 1: only the copy from this connection; after a resumed session
     * the upstream sends again what it has not seen acknowledged (DUP), and
     * that copy's PUBACK is the one it waits for. */
    if (m->origin_qos == 1 && m->origin_gen == u->gen)
        side_ack(u, MQTT_PUBACK, m->origin_pid, 0);
    if (m->origin_qos == 2 && b->up_rel[m->origin_pid] == REL_PENDING) {
        b->up_rel[m->origin_pid] = REL_RECEIVED;
        side_ack(u, MQTT_PUBREC, m->origin_pid, 0);
    }
}

/* ---- here -> upstream ----------------------------------------------------- */

/* A forwarded message is safe upstream (or given up): only now is it
 * acknowledged to the local broker, whose stored delivery lives until
 * then (PUBACK, or PUBREC for QoS 2). A message that came on an earlier
 * local connection is owed: its resend on this one is acknowledged. */
static void settle_local(struct bridge *b, struct bq_msg *m)
{
    struct side *l = &b->local;
    if (!m->origin_qos)
        return;
    uint8_t owe = m->origin_qos == 1 ? OWE_PUBACK : m->relay ? OWE_PUBREC_RELAY : OWE_PUBREC;
    if (l->fd >= 0 && m->origin_gen == l->gen) {
        side_ack(l, owe == OWE_PUBACK ? MQTT_PUBACK : MQTT_PUBREC, m->origin_pid, 0);
        if (owe != OWE_PUBACK)
            b->lrel[m->origin_pid] = owe == OWE_PUBREC_RELAY ? LREL_RELAY : LREL_LOCAL;
    } else {
        b->owed[m->origin_pid] = owe;
    }
    m->origin_qos = 0;
}

/* A relayed QoS 2 message gives up waiting for the local PUBREL (the local
 * session is gone): the upstream flow ends on its own. */
static void unrelay(struct bridge *b, struct bq_msg *m)
{
    if (!m->relay || m->rel_sent)
        return;
    m->relay = false;
    if (m->state == BQ_PUBREL) {
        m->rel_sent = true;
        side_ack(&b->up, MQTT_PUBREL, m->pid, 0);
    }
}

static int publish_up(struct bridge *b, struct bq_msg *m, uint16_t pid, bool dup)
{
    /* MQTT-3.2.2-11/-14: nothing above the server's Maximum QoS, and no
     * RETAIN where it has none. */
    struct side *u = &b->up;
    struct mqtt_packet p =
        to_publish(m, m->qos > u->max_qos ? u->max_qos : m->qos, m->retain && !u->no_retain, pid,
                   dup, u->codec.version == MQTT_V5);
    return side_send(u, &p);
}

static void send_up(struct bridge *b)
{
    struct side *u = &b->up;
    struct bq_msg *m;
    while (u->fd >= 0 && b->fwd.inflight < u->window && buf_len(&u->out) < OUT_SOFT_LIMIT &&
           (m = bq_peek_unsent(&b->fwd))) {
        /* A message goes up under the packet id the local broker gave it:
         * after a crash the broker's resend (DUP, same id) reaches the
         * upstream's resumed session as the same message, which QoS 2
         * needs for exactly once. An id still in use upstream waits. */
        uint16_t pid;
        if (m->origin_qos) {
            pid = m->origin_pid;
            if (pid_busy(u, pid))
                break;
            pid_mark(u, pid);
        } else {
            pid = pid_take(u);
        }
        if (publish_up(b, m, pid, false) < 0) {
            pid_release(u, pid);
            dropped(b, "larger than the upstream's maximum packet size");
            settle_local(b, m);
            bq_remove(&b->fwd, m);
            continue;
        }
        if (u->max_qos == 0) { /* sent as QoS 0: nothing will acknowledge it */
            pid_release(u, pid);
            count(b, &b->st.sent, 1);
            settle_local(b, m);
            bq_remove(&b->fwd, m);
            continue;
        }
        m->relay = m->origin_qos == 2 && m->qos == 2 && u->max_qos == 2;
        m->rel_sent = false;
        bq_mark_sent(&b->fwd, m, pid);
    }
    count(b, &b->st.sent, 0); /* refreshes st.queued */
}

/* A local message matched a forward rule. Returns the reason code for the
 * local broker's PUBACK/PUBREC now, or -1 when the acknowledgement waits
 * for the upstream's (settle_local). */
static int to_upstream(struct bridge *b, const struct mqtt_publish *pub)
{
    const struct cfg_bridge_topic *r = forward_rule(b, pub);
    char topic[65536];
    size_t tlen =
        r ? bridge_map_topic(forward_filter(r), forward_target(r), r->prefix, r->suffix,
                             (const char *)pub->topic.p, pub->topic.len, topic, sizeof(topic))
          : 0;
    if (!tlen) {
        dropped(b, "no forward rule maps its topic");
        return 0;
    }
    uint8_t qos = (uint8_t)r->qos;
    bool retain = r->retain >= 0 ? r->retain : pub->retain;
    struct bq_msg *m =
        bq_msg_new(topic, tlen, pub->payload.p, pub->payload.len, &pub->props, qos, retain);
    if (qos == 0) {
        if (!m || b->up.fd < 0 || buf_len(&b->up.out) >= OUT_SOFT_LIMIT ||
            publish_up(b, m, 0, false))
            dropped(b, b->up.fd < 0 ? "QoS 0 while the upstream is down" : "upstream too slow");
        else
            count(b, &b->st.sent, 1);
        bq_msg_free(m);
        return 0;
    }
    if (m) {
        m->origin_pid = pub->packet_id;
        m->origin_qos = pub->qos;
        m->origin_gen = b->local.gen;
    }
    if (!m || bq_push(&b->fwd, m) < 0) {
        bq_msg_free(m);
        dropped(b, m ? "max_send_queue_len reached" : "out of memory");
        return MQTT_RC_QUOTA_EXCEEDED;
    }
    send_up(b);
    return pub->qos ? -1 : 0;
}

static int subscribe_local(struct bridge *b);

/* ---- packets from each side ----------------------------------------------- */

static void log_suback(struct bridge *b, const char *side, uint8_t code, const char *filter)
{
    if (code >= 0x80)
        log_error("bridge %s: %s refused the subscription to '%s': %s (0x%02x)", b->cfg->name, side,
                  filter, mqtt_rc_name(code), code);
    else
        log_info("bridge %s: %s granted '%s' at QoS %u", b->cfg->name, side, filter, code);
}

/* The upstream acknowledged (or refused) a message of ours. */
static void upstream_ack(struct bridge *b, const struct mqtt_packet *p)
{
    struct side *u = &b->up;
    uint16_t id = p->u.ack.packet_id;
    struct bq_msg *m = bq_find(&b->fwd, id);
    /* Only the acknowledgement its state waits for: a PUBCOMP answering a
     * PUBREL sent for another message under the same id (resume_up's
     * release) must not settle a new PUBLISH. */
    if (m && (p->type == MQTT_PUBCOMP) != (m->state == BQ_PUBREL))
        m = NULL;
    if (!m) {
        if (p->type == MQTT_PUBCOMP && b->relay_comp[id]) {
            b->relay_comp[id] = 0;
            pid_release(u, id);
            side_ack(&b->local, MQTT_PUBCOMP, id, 0);
        }
        return; /* a late ack for a message already settled */
    }
    if (m->relay && p->type == MQTT_PUBCOMP) {
        /* End to end: the local PUBREL went on, its PUBCOMP comes back (or,
         * the local side away, answers the PUBREL the broker sends again). */
        if (side_ack(&b->local, MQTT_PUBCOMP, m->origin_pid, 0) < 0)
            b->lrel[m->origin_pid] = LREL_LOCAL;
        count(b, &b->st.sent, 1);
    } else if (p->u.ack.reason >= 0x80) {
        m->relay = false;
        log_warn("bridge %s: upstream refused '%s': %s (0x%02x)", b->cfg->name, m->topic,
                 mqtt_rc_name(p->u.ack.reason), p->u.ack.reason);
        dropped(b, "refused by the upstream");
    } else if (p->type == MQTT_PUBREC) {
        m->state = BQ_PUBREL;
        if (m->relay) {
            /* QoS 2 here and upstream: PUBREC here now, and the upstream
             * PUBREL only when the local broker's PUBREL (sent once it
             * stored its own PUBREC state) came. A crash anywhere in
             * between makes the broker send PUBLISH (DUP) or PUBREL again
             * under the same id, which the upstream's session recognises:
             * exactly once, given a resumed upstream session. */
            settle_local(b, m);
            return;
        }
        /* Otherwise the upstream's QoS 2 ends here: acknowledged locally
         * at PUBCOMP, once the upstream has released it. */
        side_ack(u, MQTT_PUBREL, m->pid, 0);
        return;
    } else {
        count(b, &b->st.sent, 1);
    }
    settle_local(b, m);
    pid_release(u, m->pid);
    bq_remove(&b->fwd, m);
    send_up(b);
}

/* Returns -1 if the upstream connection must end (cause in why). */
static int upstream_packet(struct bridge *b, const struct mqtt_packet *p, const char **why)
{
    struct side *u = &b->up;
    switch (p->type) {
    case MQTT_PUBLISH:
        from_upstream(b, &p->u.publish);
        return 0;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBCOMP:
        upstream_ack(b, p);
        return 0;
    case MQTT_PUBREL:
        b->up_rel[p->u.ack.packet_id] = REL_NONE;
        side_ack(u, MQTT_PUBCOMP, p->u.ack.packet_id, 0);
        return 0;
    case MQTT_SUBACK:
        pid_release(u, p->u.suback.packet_id);
        if (p->u.suback.packet_id == b->up_sub_pid)
            for (uint32_t i = 0; i < p->u.suback.reasons.len && i < b->cfg->nsubscriptions; i++)
                log_suback(b, "the upstream", p->u.suback.reasons.p[i],
                           b->cfg->subscriptions[i].remote_topic);
        send_up(b); /* a message waiting for this packet id */
        return 0;
    case MQTT_PINGRESP:
        u->ping_sent = 0;
        return 0;
    case MQTT_DISCONNECT: {
        static __thread char reason[160];
        snprintf(reason, sizeof(reason), "the upstream disconnected: %s (0x%02x)",
                 mqtt_rc_name(p->u.disconnect.reason), p->u.disconnect.reason);
        *why = reason;
        return -1;
    }
    default:
        *why = "unexpected packet from the upstream";
        return -1;
    }
}

static void local_ack(struct bridge *b, const struct mqtt_packet *p)
{
    struct side *l = &b->local;
    struct bq_msg *m = bq_find(&b->down, p->u.ack.packet_id);
    if (!m)
        return;
    if (p->type == MQTT_PUBREC && p->u.ack.reason < 0x80) {
        m->state = BQ_PUBREL;
        side_ack(l, MQTT_PUBREL, m->pid, 0);
        accepted_here(b, m);
        return;
    }
    if (p->type == MQTT_PUBACK || (p->type == MQTT_PUBREC && p->u.ack.reason >= 0x80)) {
        if (p->u.ack.reason >= 0x80)
            log_warn("bridge %s: the local broker refused '%s': %s (0x%02x)", b->cfg->name,
                     m->topic, mqtt_rc_name(p->u.ack.reason), p->u.ack.reason);
        accepted_here(b, m);
    }
    count(b, &b->st.received, 1);
    pid_release(l, m->pid);
    bq_remove(&b->down, m);
    send_down(b);
}

/* A local PUBLISH with a packet id the bridge already knows: a resend on a
 * resumed session (DUP) of a message still queued (it is now acknowledged
 * on this connection) or already settled upstream (acknowledged now).
 * Returns true when it was one of those. */
static bool local_resend(struct bridge *b, const struct mqtt_publish *pub)
{
    struct side *l = &b->local;
    uint16_t id = pub->packet_id;
    uint8_t owed = b->owed[id];
    b->owed[id] = 0;
    if (!pub->dup) {
        /* The broker reuses the id: what we knew under it is settled. */
        b->lrel[id] = LREL_NONE;
        for (struct bq_msg *m = b->fwd.head; m; m = m->next) {
            if (m->origin_qos && m->origin_pid == id && m->origin_gen != l->gen)
                m->origin_qos = 0;
            if (m->relay && m->origin_pid == id)
                unrelay(b, m);
        }
        return false;
    }
    if (owed) {
        side_ack(l, owed == OWE_PUBACK ? MQTT_PUBACK : MQTT_PUBREC, id, 0);
        if (owed != OWE_PUBACK)
            b->lrel[id] = owed == OWE_PUBREC_RELAY ? LREL_RELAY : LREL_LOCAL;
        return true;
    }
    for (struct bq_msg *m = b->fwd.head; m; m = m->next) {
        if (m->origin_qos && m->origin_pid == id && m->origin_gen != l->gen) {
            m->origin_gen = l->gen;
            return true;
        }
        /* Our PUBREC was lost with the connection: it goes again. */
        if (m->relay && !m->rel_sent && m->state == BQ_PUBREL && m->origin_pid == id) {
            side_ack(l, MQTT_PUBREC, id, 0);
            b->lrel[id] = LREL_RELAY;
            return true;
        }
    }
    return false;
}

static void local_publish(struct bridge *b, const struct mqtt_publish *pub)
{
    if (pub->qos && local_resend(b, pub))
        return;
    int rc = to_upstream(b, pub);
    if (rc < 0)
        return;
    if (pub->qos == 1)
        side_ack(&b->local, MQTT_PUBACK, pub->packet_id, (uint8_t)rc);
    else if (pub->qos == 2 && side_ack(&b->local, MQTT_PUBREC, pub->packet_id, (uint8_t)rc) == 0)
        b->lrel[pub->packet_id] = LREL_LOCAL;
}

/* A local PUBREL: answered here, or passed on upstream for a message that
 * is QoS 2 both ways (its PUBCOMP then comes back from the upstream). */
static void local_pubrel(struct bridge *b, uint16_t id)
{
    struct side *u = &b->up;
    uint8_t how = b->lrel[id];
    b->lrel[id] = LREL_NONE;
    if (how == LREL_RELAY) {
        for (struct bq_msg *m = b->fwd.head; m; m = m->next)
            if (m->relay && !m->rel_sent && m->state == BQ_PUBREL && m->origin_pid == id) {
                m->rel_sent = true;
                side_ack(u, MQTT_PUBREL, m->pid, 0); /* resume_up sends it if down */
                return;
            }
    }
    /* Unknown here: a PUBREC sent by an earlier process (the broker stored
     * its PUBREL state before a crash). The upstream may hold the message
     * under this id: release it there too, when the id is free. */
    if (how == LREL_NONE && u->fd >= 0 && !pid_busy(u, id)) {
        pid_mark(u, id);
        b->relay_comp[id] = 1;
        side_ack(u, MQTT_PUBREL, id, 0);
        return;
    }
    side_ack(&b->local, MQTT_PUBCOMP, id, 0);
}

/* After the local CONNACK: messages that were in flight to this broker go
 * again, with DUP and their packet ids if it kept the session. */
static void resume_local(struct bridge *b, bool present)
{
    struct side *l = &b->local;
    if (!b->local_resume)
        return;
    if (!present) { /* the session expired: subscribe again, send as new */
        bq_requeue(&b->down);
        memset(l->pid_used, 0, sizeof(l->pid_used));
        if (subscribe_local(b) < 0)
            log_error("bridge %s: cannot subscribe here again", b->cfg->name);
        /* Nothing is owed to a session that is gone. */
        memset(b->owed, 0, sizeof(b->owed));
        memset(b->lrel, 0, sizeof(b->lrel));
        for (struct bq_msg *m = b->fwd.head; m; m = m->next) {
            if (m->origin_gen != l->gen)
                m->origin_qos = 0;
            unrelay(b, m);
        }
        return;
    }
    for (struct bq_msg *m = b->down.head; m && m != bq_peek_unsent(&b->down); m = m->next) {
        if (m->state == BQ_PUBREL) {
            side_ack(l, MQTT_PUBREL, m->pid, 0);
            continue;
        }
        publish_local(b, m, m->pid, true);
    }
}

static int local_packet(struct bridge *b, const struct mqtt_packet *p, const char **why)
{
    struct side *l = &b->local;
    switch (p->type) {
    case MQTT_CONNACK:
        if (p->u.connack.reason) {
            *why = "the local broker refused the bridge";
            return -1;
        }
        if (p->u.connack.props.present & MQTT_HAS(MQTT_PROP_RECEIVE_MAX))
            l->window = p->u.connack.props.receive_max;
        b->local_ready = true;
        resume_local(b, p->u.connack.session_present);
        send_down(b);
        return 0;
    case MQTT_PUBLISH:
        local_publish(b, &p->u.publish);
        return 0;
    case MQTT_PUBREL:
        local_pubrel(b, p->u.ack.packet_id);
        return 0;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBCOMP:
        local_ack(b, p);
        return 0;
    case MQTT_SUBACK: {
        uint16_t id = p->u.suback.packet_id;
        pid_release(l, id);
        if (b->subs_pending)
            b->subs_pending--;
        if (id > 0 && id <= b->cfg->nforwards && p->u.suback.reasons.len)
            log_suback(b, "the local broker", p->u.suback.reasons.p[0],
                       forward_filter(&b->cfg->forwards[id - 1]));
        return 0;
    }
    case MQTT_PINGRESP:
        return 0;
    case MQTT_DISCONNECT:
        *why = "the local broker disconnected the bridge";
        return -1;
    default:
        *why = "unexpected packet from the local broker";
        return -1;
    }
}

/* True while the upstream has more queued output than it should get: the
 * local side is then not read, so a fast local publisher meets TCP
 * backpressure (and the broker's own bounds) instead of the bridge
 * dropping what it has already read. */
/* Whether the local side should wait: the link is up but cannot take more,
 * its output past OUT_SOFT_LIMIT or (QoS 1/2) the send queue full. The
 * local broker then sees a consumer that is not reading, and its producers
 * wait (mqtt.overload = backpressure) instead of the bridge refusing their
 * messages. While the link is down the queue keeps its bound and refuses
 * (0x97, counted): an outage must not stall local publishers. */
static bool upstream_full(struct bridge *b)
{
    return b->up.fd >= 0 && (buf_len(&b->up.out) >= OUT_SOFT_LIMIT ||
                             (b->fwd.limit && b->fwd.count >= b->fwd.limit));
}

/* Decodes and handles every whole packet read (the local side: until the
 * upstream is full). -1: the side must end. */
static int side_process(struct bridge *b, struct side *s, const char **why)
{
    bool up = s == &b->up;
    size_t off = 0;
    int rc = 0;
    while (rc == 0) {
        if (!up && upstream_full(b)) {
            const char *w = NULL;
            if (side_flush(&b->up, &w) < 0 || upstream_full(b))
                break; /* the upstream's turn; up_lost() comes from run_turn */
        }
        struct mqtt_packet p;
        size_t used = 0;
        int d = mqtt_decode(&s->codec, buf_head(&s->in) + off, buf_len(&s->in) - off, &p, &used);
        if (d == MQTT_INCOMPLETE)
            break;
        if (d != 0) {
            static __thread char reason[128];
            snprintf(reason, sizeof(reason), "malformed packet from the %s: %s", s->what,
                     mqtt_rc_name((uint8_t)d));
            *why = reason;
            return -1;
        }
        off += used;
        rc = up ? upstream_packet(b, &p, why) : local_packet(b, &p, why);
    }
    buf_consume(&s->in, off);
    return rc;
}

/* ---- the local side --------------------------------------------------------- */

/* One SUBSCRIBE per forward rule, packet id and subscription identifier
 * i + 1 (on a connection with nothing else in flight). */
static int subscribe_local(struct bridge *b)
{
    struct side *l = &b->local;
    for (size_t i = 0; i < b->cfg->nforwards; i++) {
        const char *f = forward_filter(&b->cfg->forwards[i]);
        /* Every rule gets its own SUBSCRIBE and identifier, so a message
         * names the rule it matched. QoS 2 takes messages at their own QoS;
         * No Local keeps what the bridge publishes here from going back up. */
        /* Sent on the first connection of this process even when the
         * stored session has them (rules may have changed since it was
         * made); Retain Handling 1: retained messages only for a
         * subscription that is new. */
        struct mqtt_subscription sub = {{(const uint8_t *)f, strlen(f)},
                                        2 | MQTT_SUBOPT_NO_LOCAL | MQTT_SUBOPT_RAP | 0x10};
        struct mqtt_packet s = {.type = MQTT_SUBSCRIBE, .flags = 2};
        s.u.subscribe.packet_id = (uint16_t)(i + 1);
        l->pid_used[(i + 1) / 8] |= (uint8_t)(1u << ((i + 1) % 8));
        s.u.subscribe.count = 1;
        s.u.subscribe.subs = &sub;
        s.u.subscribe.props.present = MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID);
        s.u.subscribe.props.sub_ids[0] = (uint32_t)(i + 1);
        s.u.subscribe.props.sub_id_count = 1;
        if (side_send(l, &s) < 0)
            return -1;
        b->subs_pending++;
    }
    return 0;
}

static int local_start(struct bridge *b, int fd)
{
    struct side *l = &b->local;
    side_attach(l, fd);
    l->codec.version = MQTT_V5;
    l->window = 65535;
    char id[200];
    snprintf(id, sizeof(id), "$bridge/%s", b->cfg->name);
    struct mqtt_packet p = {.type = MQTT_CONNECT};
    struct mqtt_connect *ck = &p.u.connect;
    ck->protocol_name = (struct mqtt_str){(const uint8_t *)"MQTT", 4};
    ck->version = MQTT_V5;
    /* Always the same session, stored by the broker (persist_connected):
     * what it had sent and we had not acknowledged, because the upstream
     * had not, comes again (MQTT-4.4.0-1), even after a restart. */
    ck->clean_start = false;
    ck->client_id = (struct mqtt_str){(const uint8_t *)id, strlen(id)};
    ck->props.present = MQTT_HAS(MQTT_PROP_RECEIVE_MAX) | MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
    /* What the bridge holds unacknowledged; the rest waits in the
     * broker's session queue. Within max_send_queue_len, so the send
     * queue never refuses what the broker sent. */
    ck->props.receive_max =
        (uint16_t)(b->fwd.limit && b->fwd.limit < LOCAL_WINDOW ? b->fwd.limit : LOCAL_WINDOW);
    ck->props.session_expiry = LOCAL_EXPIRY_S;
    b->subs_pending = 0;
    if (side_send(l, &p) < 0)
        return -1;
    return b->local_resume ? 0 : subscribe_local(b);
}

/* ---- the upstream connection ---------------------------------------------- */

static void load_tls(struct bridge *b, bool at_start)
{
    const struct cfg_bridge_ssl *s = &b->cfg->ssl;
    struct tls_client_config tc = {
        .cafile = s->cacertfile,
        .certfile = s->certfile,
        .keyfile = s->keyfile,
        .key_password = s->key_password,
        .min_version = s->tls_version,
        .ciphers = s->ciphers,
        .servername = s->server_name,
        .alpn = s->alpn,
        .insecure = !s->verify,
    };
    char err[512];
    struct tls_client *c = tls_client_new(&tc, err, sizeof(err));
    if (!c) {
        log_error("bridge %s: TLS files rejected: %s; %s", b->cfg->name, err,
                  at_start ? "cannot connect" : "the last good set stays in use");
        set_error(b, "TLS files rejected: %s", err);
        return;
    }
    pthread_mutex_lock(&b->tls_lock);
    if (b->tls_next != b->tls_cur) /* tls_cur is the live connection's */
        tls_client_free(b->tls_next);
    b->tls_next = c;
    pthread_mutex_unlock(&b->tls_lock);
}

/* Waits for fd to be ready until deadline. 1 ready, 0 timed out, -1 error. */
static int wait_until(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = clock_mono_ms();
        if (now >= deadline)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)(deadline - now));
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

static int tls_handshake(struct bridge *b, uint64_t deadline, char *err, size_t errlen)
{
    struct side *u = &b->up;
    pthread_mutex_lock(&b->tls_lock);
    if (b->tls_next && b->tls_next != b->tls_cur) {
        tls_client_free(b->tls_cur);
        b->tls_cur = b->tls_next;
    }
    pthread_mutex_unlock(&b->tls_lock);
    if (!b->tls_cur) {
        snprintf(err, errlen, "no usable TLS files (see above)");
        return -1;
    }
    const char *name = b->cfg->ssl.server_name ? b->cfg->ssl.server_name : b->host;
    void *t = tls_client_transport_new(b->tls_cur, u->fd, name);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    u->ops = &tls_transport_ops;
    u->t = t;
    for (;;) {
        ssize_t r = u->ops->handshake(t);
        if (r == 1)
            return 0;
        if (r == TRANSPORT_ERROR) {
            snprintf(err, errlen, "%s", u->ops->cause(t));
            return -1;
        }
        int w = wait_until(u->fd, r == TRANSPORT_WANT_WRITE ? POLLOUT : POLLIN, deadline);
        if (w <= 0) {
            snprintf(err, errlen, "TLS handshake timed out");
            return -1;
        }
    }
}

static void fill_connect(struct bridge *b, struct mqtt_packet *p, char *id, size_t idlen)
{
    const struct cfg_bridge *c = b->cfg;
    struct mqtt_connect *ck = &p->u.connect;
    p->type = MQTT_CONNECT;
    ck->protocol_name = (struct mqtt_str){(const uint8_t *)"MQTT", 4};
    ck->version = (uint8_t)c->proto_ver;
    ck->bridge = c->proto_ver == MQTT_V311 && c->try_private && b->private_ok;
    ck->clean_start = c->clean_start;
    ck->keep_alive = (uint16_t)c->keepalive_s;
    snprintf(id, idlen, "%s", c->clientid ? c->clientid : c->name);
    ck->client_id = (struct mqtt_str){(const uint8_t *)id, strlen(id)};
    if (c->username) {
        ck->has_username = true;
        ck->username = (struct mqtt_str){(const uint8_t *)c->username, strlen(c->username)};
    }
    if (c->password) {
        ck->has_password = true;
        ck->password = (struct mqtt_bin){(const uint8_t *)c->password, strlen(c->password)};
    }
    if (c->proto_ver == MQTT_V5) {
        ck->props.present = MQTT_HAS(MQTT_PROP_RECEIVE_MAX);
        ck->props.receive_max = DOWN_WINDOW;
        if (!c->clean_start) { /* a session that outlives the link */
            ck->props.present |= MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
            ck->props.session_expiry = UINT32_MAX;
        }
    }
}

/* Reads until CONNACK. Returns its reason (0 accepted) with *present, or -1. */
static int await_connack(struct bridge *b, uint64_t deadline, bool *present, bool *eof, char *err,
                         size_t errlen)
{
    struct side *u = &b->up;
    const char *why = NULL;
    bool closed = false;
    for (;;) {
        struct mqtt_packet p;
        size_t used = 0;
        int d = mqtt_decode(&u->codec, buf_head(&u->in), buf_len(&u->in), &p, &used);
        if (d == 0 && p.type == MQTT_CONNACK) {
            buf_consume(&u->in, used);
            *present = p.u.connack.session_present;
            const struct mqtt_props *pr = &p.u.connack.props;
            if ((pr->present & MQTT_HAS(MQTT_PROP_RECEIVE_MAX)) && pr->receive_max < u->window)
                u->window = pr->receive_max;
            if (pr->present & MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE))
                u->max_packet = pr->max_packet_size;
            if (pr->present & MQTT_HAS(MQTT_PROP_MAX_QOS))
                u->max_qos = pr->max_qos;
            if (pr->present & MQTT_HAS(MQTT_PROP_RETAIN_AVAILABLE))
                u->no_retain = !pr->retain_available;
            if (pr->present & MQTT_HAS(MQTT_PROP_SERVER_KEEP_ALIVE))
                u->keepalive = pr->server_keep_alive; /* MQTT-3.2.2-21 */
            return p.u.connack.reason;
        }
        if (d != MQTT_INCOMPLETE) {
            snprintf(err, errlen, "the upstream answered CONNECT with %s",
                     d == 0 ? mqtt_type_name(p.type) : "a malformed packet");
            return -1;
        }
        /* Read before writing: a server that refuses our certificate after
         * a TLS 1.3 handshake sends an alert and closes, and the alert is
         * the cause to report, not the reset our write would meet. */
        int r = side_fill(u, &why);
        if (r >= 0 && side_flush(u, &why) < 0) {
            const char *rwhy = NULL;
            r = side_fill(u, &rwhy) < 0 && rwhy ? (why = rwhy, -1) : -1;
        }
        if (r < 0 && !closed && buf_len(&u->in)) {
            closed = true; /* a refusal CONNACK and the close can come together */
            continue;
        }
        if (r < 0 || closed) {
            *eof = why && strcmp(why, "the server closed the connection") == 0;
            snprintf(err, errlen, "%s before CONNACK",
                     why ? why : "the server closed the connection");
            return -1;
        }
        if (r == 1)
            continue;
        if (wait_until(u->fd, buf_len(&u->out) ? POLLIN | POLLOUT : POLLIN, deadline) <= 0) {
            snprintf(err, errlen, "no CONNACK within %u ms", b->cfg->connect_timeout_ms);
            return -1;
        }
    }
}

static void subscribe_up(struct bridge *b)
{
    struct side *u = &b->up;
    size_t n = b->cfg->nsubscriptions;
    if (n == 0)
        return;
    struct mqtt_subscription *subs = calloc(n, sizeof(*subs));
    if (!subs)
        return;
    for (size_t i = 0; i < n; i++) {
        const struct cfg_bridge_topic *r = &b->cfg->subscriptions[i];
        uint8_t opts = (uint8_t)r->qos;
        if (u->codec.version == MQTT_V5)
            opts |=
                (uint8_t)(MQTT_SUBOPT_NO_LOCAL | (r->retain_as_published ? MQTT_SUBOPT_RAP : 0) |
                          (r->retain_handling << 4));
        subs[i] = (struct mqtt_subscription){
            {(const uint8_t *)r->remote_topic, strlen(r->remote_topic)}, opts};
    }
    /* One SUBSCRIBE for every rule: its SUBACK has a code per rule, in order. */
    struct mqtt_packet p = {.type = MQTT_SUBSCRIBE, .flags = 2};
    b->up_sub_pid = pid_take(u);
    p.u.subscribe.packet_id = b->up_sub_pid;
    p.u.subscribe.count = (uint32_t)n;
    p.u.subscribe.subs = subs;
    if (side_send(u, &p) < 0)
        log_error("bridge %s: cannot encode the SUBSCRIBE for the upstream", b->cfg->name);
    free(subs);
}

/* After CONNACK: the session decides what happens to messages in flight. */
static void resume_up(struct bridge *b, bool present)
{
    struct side *u = &b->up;
    if (!present || b->cfg->clean_start) {
        b->up_released = true; /* a new session holds nothing */
        b->up_session_gen = u->gen;
        bq_requeue(&b->fwd);
        memset(u->pid_used, 0, sizeof(u->pid_used));
        memset(b->up_rel, 0, sizeof(b->up_rel));
        subscribe_up(b);
        send_up(b);
        return;
    }
    /* The first resumed session of this process may hold QoS 2 messages an
     * earlier process sent and never released (a crash): the upstream
     * would take a new message sent under one of those ids for a resend
     * and drop it (MQTT-4.3.3). Every id is released once (PUBREL; an
     * unknown one just gets PUBCOMP): a message the upstream accepted is
     * delivered, and what the local broker sends again is at worst
     * delivered twice, never lost. */
    if (!b->up_released) {
        b->up_released = true;
        for (uint32_t id = 1; id < 65536; id++)
            if (!pid_busy(u, (uint16_t)id))
                side_ack(u, MQTT_PUBREL, (uint16_t)id, 0);
    }
    /* MQTT-4.4.0-1: resend unacknowledged PUBLISH (DUP) and PUBREL. */
    subscribe_up(b);
    for (struct bq_msg *m = b->fwd.head; m && m != bq_peek_unsent(&b->fwd); m = m->next) {
        if (m->state != BQ_PUBREL)
            publish_up(b, m, m->pid, true);
        else if (!m->relay || m->rel_sent) /* else the local PUBREL is awaited */
            side_ack(u, MQTT_PUBREL, m->pid, 0);
    }
    send_up(b);
}

/* One connection attempt: TCP, TLS, CONNECT, CONNACK. Returns 0 connected,
 * -1 failed (err says why), 1 refused the bridge flag (retry at once). */
static int connect_up(struct bridge *b, char *err, size_t errlen)
{
    struct side *u = &b->up;
    const struct cfg_bridge *c = b->cfg;
    uint64_t deadline = clock_mono_ms() + c->connect_timeout_ms;
    int fd = tcp_connect(b->host, b->port, (int)c->connect_timeout_ms, err, errlen);
    if (fd < 0) {
        const char *cause = strrchr(err, ':'); /* "cannot connect to H port P: cause" */
        if (cause && cause[1] == ' ')
            memmove(err, cause + 2, strlen(cause + 2) + 1);
        return -1;
    }
    side_attach(u, fd);
    u->codec = (struct mqtt_codec){.version = (uint8_t)c->proto_ver};
    u->window = (uint16_t)(c->max_inflight ? c->max_inflight : 32);
    u->max_packet = 0;
    u->max_qos = 2;
    u->no_retain = false;
    u->keepalive = (uint16_t)c->keepalive_s;
    if (b->tls && tls_handshake(b, deadline, err, errlen) < 0)
        return -1;
    struct mqtt_packet p = {0};
    char id[256];
    fill_connect(b, &p, id, sizeof(id));
    bool present = false;
    if (side_send(u, &p) < 0) {
        snprintf(err, errlen, "cannot encode CONNECT");
        return -1;
    }
    bool eof = false;
    int rc = await_connack(b, deadline, &present, &eof, err, errlen);
    if (rc < 0) {
        /* Some servers just close on level 0x84: a plain close before any
         * CONNACK (not a reset, not a TLS alert) is taken to mean that. A
         * try without the flag that fails the same way shows the flag was
         * not the reason, and the flag is used again. */
        if (p.u.connect.bridge && eof) {
            b->private_ok = false;
            snprintf(err + strlen(err), errlen - strlen(err),
                     " (retrying without the 3.1.1 bridge flag)");
            return 1;
        }
        if (c->proto_ver == MQTT_V311 && c->try_private && !p.u.connect.bridge && eof)
            b->private_ok = true;
        return -1;
    }
    if (rc != 0) {
        if (p.u.connect.bridge && rc == 0x01) {
            b->private_ok = false;
            snprintf(err, errlen, "refused the 3.1.1 bridge flag; retrying without it");
            return 1;
        }
        snprintf(err, errlen, "connection refused: %s (0x%02x)",
                 mqtt_connack_name((uint8_t)c->proto_ver, (uint8_t)rc), rc);
        return -1;
    }
    u->up_since = clock_mono_ms();
    log_notice("bridge %s: connected to %s:%u (%s%s, MQTT %s%s, session present %d)", c->name,
               b->host, b->port, b->tls ? "TLS " : "TCP",
               b->tls ? tls_transport_describe(u->t) : "", c->proto_ver == 5 ? "5.0" : "3.1.1",
               p.u.connect.bridge ? " bridge" : "", present);
    set_connected(b, true);
    b->attempt = 0;
    resume_up(b, present);
    return 0;
}

/* Backoff: 1 s doubling to backoff_max, each wait drawn from its upper half
 * so that a fleet of bridges does not reconnect in step. */
static void schedule_retry(struct bridge *b)
{
    uint64_t d = BACKOFF_FIRST;
    for (uint32_t i = 0; i < b->attempt && d < b->cfg->backoff_max_ms; i++)
        d *= 2;
    if (d > b->cfg->backoff_max_ms)
        d = b->cfg->backoff_max_ms;
    d = d / 2 + (uint64_t)rand_r(&b->seed) % (d / 2 + 1);
    b->attempt++;
    b->next_try = clock_mono_ms() + d;
}

static void up_lost(struct bridge *b, const char *why)
{
    struct side *u = &b->up;
    bool was_up = u->up_since != 0;
    log_warn("bridge %s: %s %s:%u: %s", b->cfg->name, was_up ? "lost" : "cannot connect to",
             b->host, b->port, why);
    set_error(b, "%s", why);
    if (was_up) {
        set_connected(b, false);
        set_error(b, "%s", why);
        if (clock_mono_ms() - u->up_since >= STABLE_MS)
            b->attempt = 0;
    }
    u->up_since = 0;
    side_close(u);
    bq_mark_resend(&b->fwd);
    /* PUBRELs passed on for messages of an earlier process: the broker
     * sends them again when the local side resumes. */
    for (uint32_t i = 1; i < 65536; i++)
        if (b->relay_comp[i]) {
            b->relay_comp[i] = 0;
            pid_release(u, (uint16_t)i);
        }
    schedule_retry(b);
}

static void try_connect(struct bridge *b)
{
    char err[512] = "";
    if (b->tls) {
        load_tls(b, false);
    }
    int rc = connect_up(b, err, sizeof(err));
    if (rc == 0)
        return;
    up_lost(b, err);
    if (rc == 1)
        b->next_try = clock_mono_ms();
}

/* Keep alive towards the upstream: PINGREQ when idle, and a server that
 * answers nothing within the keep alive is given up. */
static int keepalive(struct bridge *b, uint64_t now, const char **why)
{
    struct side *u = &b->up;
    if (!u->keepalive || u->fd < 0)
        return 0;
    uint64_t ka = (uint64_t)u->keepalive * 1000u;
    if (u->ping_sent && now - u->ping_sent >= ka) {
        *why = "no PINGRESP within the keep alive";
        return -1;
    }
    if (!u->ping_sent && now - u->last_tx >= ka * 3 / 4) {
        struct mqtt_packet p = {.type = MQTT_PINGREQ};
        side_send(u, &p);
        u->ping_sent = now;
    }
    return 0;
}

/* ---- the thread ------------------------------------------------------------- */

static int service(struct bridge *b, struct side *s, short revents, const char **why)
{
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        if (side_fill(s, why) < 0) {
            side_process(b, s, why); /* what arrived before the close counts */
            return -1;
        }
    }
    /* Input left from a turn the upstream was full counts too. */
    return buf_len(&s->in) ? side_process(b, s, why) : 0;
}

static int next_timeout(struct bridge *b, uint64_t now)
{
    uint64_t t = now + 1000;
    if (buf_len(&b->local.in) && !upstream_full(b))
        return 0;
    if (b->up.fd < 0 && b->next_try < t)
        t = b->next_try;
    return t > now ? (int)(t - now) : 0;
}

/* The connection to this broker ended (its output bound, a restart of
 * the broker's side): a new one resumes the same session, messages to
 * publish here are sent again; without a way to reattach the bridge stops. */
static void local_lost(struct bridge *b, const char *why)
{
    struct side *l = &b->local;
    side_close(l);
    b->local_ready = false;
    bq_mark_resend(&b->down);
    uint64_t now = clock_mono_ms();
    bool again = b->last_reattach && now - b->last_reattach < 1000;
    b->last_reattach = now;
    int fd = b->reattach && !again && !atomic_load(&b->stop)
                 ? b->reattach(b->reattach_ctx, b->cfg->name)
                 : -1;
    if (fd < 0) {
        log_error("bridge %s: local connection: %s; the bridge stops", b->cfg->name, why);
        atomic_store(&b->stop, true);
        return;
    }
    log_warn("bridge %s: local connection: %s; reattached", b->cfg->name, why);
    b->local_resume = true;
    if (local_start(b, fd) < 0) {
        log_error("bridge %s: cannot restart the local side; the bridge stops", b->cfg->name);
        atomic_store(&b->stop, true);
    }
}

/* The link is down: the local side leaves too (DISCONNECT, normal), so
 * the broker queues what the rules match in the bridge's offline session,
 * stored and bounded like any other (mqtt.max_mqueue_len), instead of
 * local publishers waiting on the bridge. What the bridge holds stays: the
 * broker sends it again on the resumed session (local_resend). */
static void local_detach(struct bridge *b)
{
    struct side *l = &b->local;
    const char *why = NULL;
    struct mqtt_packet p = {.type = MQTT_DISCONNECT};
    if (side_send(l, &p) == 0)
        (void)side_flush(l, &why);
    side_close(l);
    b->local_ready = false;
    b->local_resume = true;
    bq_mark_resend(&b->down);
    log_notice("bridge %s: link down; the local session queues for it", b->cfg->name);
}

/* The link is up again: the local side resumes its session. */
static void local_attach(struct bridge *b)
{
    int fd = b->reattach ? b->reattach(b->reattach_ctx, b->cfg->name) : -1;
    if (fd < 0 || local_start(b, fd) < 0) {
        log_error("bridge %s: cannot connect to the local broker again; the bridge stops",
                  b->cfg->name);
        atomic_store(&b->stop, true);
    }
}

static void run_turn(struct bridge *b)
{
    const char *why = "";
    struct pollfd p[3] = {{.fd = b->wakefd, .events = POLLIN},
                          {.fd = b->local.fd, .events = upstream_full(b) ? 0 : POLLIN},
                          {.fd = b->up.fd, .events = POLLIN}};
    if (buf_len(&b->local.out))
        p[1].events |= POLLOUT;
    if (buf_len(&b->up.out))
        p[2].events |= POLLOUT;
    uint64_t now = clock_mono_ms();
    poll(p, b->up.fd >= 0 ? 3 : 2, next_timeout(b, now));
    if (p[0].revents & POLLIN) {
        uint64_t v;
        ssize_t r = read(b->wakefd, &v, sizeof(v));
        (void)r;
    }
    if (service(b, &b->local, p[1].revents, &why) < 0) {
        local_lost(b, why);
        return;
    }
    if (b->up.fd >= 0 && (service(b, &b->up, p[2].revents, &why) < 0 ||
                          keepalive(b, clock_mono_ms(), &why) < 0 || side_flush(&b->up, &why) < 0))
        up_lost(b, why);
    if (side_flush(&b->local, &why) < 0) {
        local_lost(b, why);
        return;
    }
    /* Detached once its SUBSCRIBEs are answered: the session then matches
     * every rule while away. */
    if (b->reattach && b->up.fd < 0 && b->local.fd >= 0 && b->local_ready && !b->subs_pending &&
        !buf_len(&b->local.in))
        local_detach(b);
    /* Without a way back to the local broker (reattach) the local side
     * stays connected and its session fills while the link is down. */
    bool local_away = b->local.fd < 0;
    if (b->up.fd < 0 && (local_away || (!b->reattach && b->local_ready)) &&
        clock_mono_ms() >= b->next_try) {
        try_connect(b);
        if (b->up.fd >= 0 && local_away)
            local_attach(b);
    }
}

static void *bridge_main(void *arg)
{
    struct bridge *b = arg;
    while (!atomic_load(&b->stop))
        run_turn(b);
    if (b->up.fd >= 0) {
        const char *why;
        struct mqtt_packet p = {.type = MQTT_DISCONNECT};
        side_send(&b->up, &p);
        side_flush(&b->up, &why);
        log_notice("bridge %s: disconnected from %s:%u", b->cfg->name, b->host, b->port);
        set_connected(b, false); /* the status after a stop says so */
    }
    side_close(&b->up);
    side_close(&b->local);
    return NULL;
}

/* ---- set-up ------------------------------------------------------------------ */

static bool scheme_in(const char *scheme, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(scheme, *list) == 0)
            return true;
    return false;
}

/* The server URL: host, port, and whether it is TLS. */
static int parse_server(const struct cfg_bridge *c, char *host, size_t hlen, uint16_t *port,
                        bool *tls, char *err, size_t errlen)
{
    static const char *const plain[] = {"mqtt-tcp", "tcp", "mqtt", NULL};
    static const char *const secure[] = {"tls+mqtt-tcp", "mqtts", "ssl", "tls", NULL};
    char scheme[32], why[256];
    if (!c->server) {
        snprintf(err, errlen, "bridges.mqtt.%s: server is required", c->name);
        return -1;
    }
    if (tcp_parse_url(c->server, scheme, sizeof(scheme), host, hlen, port, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "bridges.mqtt.%s.server: %s", c->name, why);
        return -1;
    }
    if (!scheme_in(scheme, plain) && !scheme_in(scheme, secure)) {
        snprintf(err, errlen,
                 "bridges.mqtt.%s.server: '%s' is not mqtt-tcp://, tls+mqtt-tcp:// or mqtts://",
                 c->name, scheme);
        return -1;
    }
    *tls = scheme_in(scheme, secure) || c->ssl.enable;
    return 0;
}

static int check_rules(const struct cfg_bridge *c, char *err, size_t errlen)
{
    char why[256];
    for (size_t i = 0; i < c->nforwards; i++) {
        const struct cfg_bridge_topic *r = &c->forwards[i];
        if (!bridge_map_valid(forward_filter(r), forward_target(r), why, sizeof(why))) {
            snprintf(err, errlen, "bridges.mqtt.%s.forwards[%zu]: %s", c->name, i, why);
            return -1;
        }
    }
    for (size_t i = 0; i < c->nsubscriptions; i++) {
        const struct cfg_bridge_topic *r = &c->subscriptions[i];
        if (!bridge_map_valid(r->remote_topic, r->local_topic, why, sizeof(why))) {
            snprintf(err, errlen, "bridges.mqtt.%s.subscription[%zu]: %s", c->name, i, why);
            return -1;
        }
    }
    return 0;
}

/* see bridge.h */
int bridge_check(const struct cfg_bridge *c, char *err, size_t errlen)
{
    char host[256];
    uint16_t port;
    bool tls;
    /* The name is a topic level of $SYS/broker/bridge/NAME/. */
    if (!c->name || !*c->name || strpbrk(c->name, "/+#") ||
        !mqtt_utf8_valid((const uint8_t *)c->name, strlen(c->name))) {
        snprintf(err, errlen, "bridges.mqtt.%s: a bridge name may not be empty or hold / + #",
                 c->name ? c->name : "");
        return -1;
    }
    if (parse_server(c, host, sizeof(host), &port, &tls, err, errlen) < 0 ||
        check_rules(c, err, errlen) < 0)
        return -1;
    if (c->proto_ver != MQTT_V311 && c->proto_ver != MQTT_V5) {
        snprintf(err, errlen, "bridges.mqtt.%s.proto_ver: %u is not 4 or 5", c->name, c->proto_ver);
        return -1;
    }
    if (!tls)
        return 0;
    const struct cfg_bridge_ssl *s = &c->ssl;
    struct tls_client_config tc = {.cafile = s->cacertfile,
                                   .certfile = s->certfile,
                                   .keyfile = s->keyfile,
                                   .key_password = s->key_password,
                                   .min_version = s->tls_version,
                                   .ciphers = s->ciphers};
    char why[512];
    struct tls_client *t = tls_client_new(&tc, why, sizeof(why));
    if (!t) {
        snprintf(err, errlen, "bridges.mqtt.%s.ssl: %s", c->name, why);
        return -1;
    }
    tls_client_free(t);
    return 0;
}

/* see bridge.h */
struct bridge *bridge_new(const struct cfg_bridge *cfg, int local_fd, char *err, size_t errlen)
{
    struct bridge *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(err, errlen, "out of memory");
        close(local_fd);
        return NULL;
    }
    b->cfg = cfg;
    b->private_ok = true;
    b->seed = (unsigned)getpid() ^ (unsigned)time(NULL) ^ (unsigned)(uintptr_t)b;
    b->wakefd = -1;
    side_init(&b->local, "local broker");
    side_init(&b->up, "upstream");
    /* Forwards go up under the local broker's packet ids, which start low:
     * the bridge's own (SUBSCRIBE, QoS 0 sent as 1 or 2) start elsewhere. */
    b->up.next_pid = 49152;
    b->local.fd = local_fd;
    bq_init(&b->fwd, cfg->max_send_queue_len);
    bq_init(&b->down, 0);
    pthread_mutex_init(&b->tls_lock, NULL);
    pthread_mutex_init(&b->st_lock, NULL);
    snprintf(b->st.name, sizeof(b->st.name), "%s", cfg->name);
    snprintf(b->st.server, sizeof(b->st.server), "%s", cfg->server ? cfg->server : "");
    if (bridge_check(cfg, err, errlen) < 0 ||
        parse_server(cfg, b->host, sizeof(b->host), &b->port, &b->tls, err, errlen) < 0)
        goto fail;
    if ((b->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    if (b->tls)
        load_tls(b, true);
    int fd = b->local.fd;
    b->local.fd = -1;
    if (local_start(b, fd) < 0) {
        snprintf(err, errlen, "cannot start the local side");
        goto fail;
    }
    return b;
fail:
    bridge_free(b);
    return NULL;
}

void bridge_set_reattach(struct bridge *b, int (*fn)(void *ctx, const char *name), void *ctx)
{
    b->reattach = fn;
    b->reattach_ctx = ctx;
}

int bridge_start(struct bridge *b)
{
    if (pthread_create(&b->thread, NULL, bridge_main, b) != 0)
        return -1;
    b->started = true;
    log_notice("bridge %s: to %s (%s)", b->cfg->name, b->cfg->server,
               b->tls ? (b->cfg->ssl.certfile ? "mutual TLS" : "TLS") : "plain TCP");
    return 0;
}

static void wake(struct bridge *b)
{
    uint64_t one = 1;
    ssize_t r = write(b->wakefd, &one, sizeof(one));
    (void)r;
}

void bridge_reload(struct bridge *b)
{
    if (!b->tls)
        return;
    load_tls(b, false);
    log_notice("bridge %s: TLS files reloaded; the next connection uses them", b->cfg->name);
}

void bridge_stop(struct bridge *b)
{
    if (!b || !b->started)
        return;
    atomic_store(&b->stop, true);
    wake(b);
    pthread_join(b->thread, NULL);
    b->started = false;
}

void bridge_free(struct bridge *b)
{
    if (!b)
        return;
    bridge_stop(b);
    side_close(&b->up);
    side_close(&b->local);
    buf_free(&b->up.in);
    buf_free(&b->up.out);
    buf_free(&b->local.in);
    buf_free(&b->local.out);
    bq_clear(&b->fwd);
    bq_clear(&b->down);
    tls_client_free(b->tls_cur);
    if (b->tls_next != b->tls_cur)
        tls_client_free(b->tls_next);
    if (b->wakefd >= 0)
        close(b->wakefd);
    pthread_mutex_destroy(&b->tls_lock);
    pthread_mutex_destroy(&b->st_lock);
    free(b);
}

void bridge_status(struct bridge *b, struct bridge_status *out)
{
    pthread_mutex_lock(&b->st_lock);
    *out = b->st;
    pthread_mutex_unlock(&b->st_lock);
}
