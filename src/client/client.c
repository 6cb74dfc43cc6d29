/* see client.h */
#include "client/client.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/vec.h"
#include "net/tcp.h"
#include "tls/tls.h"

#define MAX_PENDING_IDS 65536

/* A received packet kept for later (messages that arrived while waiting). */
struct held {
    struct held *next;
    size_t len;
    uint8_t bytes[];
};

struct client {
    int fd;
    struct tcp_transport tcp;
    const struct transport_ops *ops;
    void *t;
    struct mqtt_codec codec;
    struct buf in;
    uint8_t *out;
    size_t out_cap;
    uint16_t next_pid;
    uint16_t keepalive;
    uint64_t last_tx_ms;
    int timeout_ms;
    bool debug;
    bool closed;
    struct held *held_head, *held_tail;
    uint8_t *current; /* the bytes behind the last message handed out */
    uint8_t *rel;     /* bitmap: inbound QoS 2 ids awaiting PUBREL */
    char err[256];
};

static void fail(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct client *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
}

static void debug_packet(const struct client *c, const char *dir, const struct mqtt_packet *p)
{
    if (!c->debug)
        return;
    fprintf(stderr, "%s %s", dir, mqtt_type_name(p->type));
    switch (p->type) {
    case MQTT_PUBLISH:
        fprintf(stderr, " (q%u, r%d, d%d, id %u, '%.*s', %u bytes)", p->u.publish.qos,
                p->u.publish.retain, p->u.publish.dup, p->u.publish.packet_id,
                (int)p->u.publish.topic.len, p->u.publish.topic.p, p->u.publish.payload.len);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        fprintf(stderr, " (id %u, reason 0x%02x)", p->u.ack.packet_id, p->u.ack.reason);
        break;
    case MQTT_CONNACK:
        fprintf(stderr, " (reason 0x%02x, session present %d)", p->u.connack.reason,
                p->u.connack.session_present);
        break;
    case MQTT_DISCONNECT:
        fprintf(stderr, " (reason 0x%02x)", p->u.disconnect.reason);
        break;
    default:
        break;
    }
    fprintf(stderr, "\n");
}

/* Waits until the socket is ready for `events`, at most until `deadline`
 * (monotonic ms; 0: forever). Returns 1 ready, 0 timeout, -1 error. */
static int wait_fd(struct client *c, short events, uint64_t deadline)
{
    for (;;) {
        int ms = -1;
        if (deadline) {
            uint64_t now = clock_mono_ms();
            ms = now >= deadline ? 0 : (int)(deadline - now);
        }
        struct pollfd p = {.fd = c->fd, .events = events};
        int n = poll(&p, 1, ms);
        if (n > 0)
            return 1;
        if (n == 0)
            return 0;
        if (errno != EINTR) {
            fail(c, "poll: %s", strerror(errno));
            return -1;
        }
    }
}

static int write_all(struct client *c, const uint8_t *p, size_t len)
{
    uint64_t deadline = clock_mono_ms() + (uint64_t)c->timeout_ms;
    while (len > 0) {
        ssize_t n = c->ops->write(c->t, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == TRANSPORT_WANT_WRITE || n == TRANSPORT_WANT_READ) {
            int r = wait_fd(c, n == TRANSPORT_WANT_WRITE ? POLLOUT : POLLIN, deadline);
            if (r <= 0) {
                if (r == 0)
                    fail(c, "timed out sending to the server");
                return -1;
            }
            continue;
        }
        fail(c, "connection lost while sending: %s", c->ops->cause(c->t));
        return -1;
    }
    c->last_tx_ms = clock_mono_ms();
    return 0;
}

static int send_packet(struct client *c, const struct mqtt_packet *p)
{
    size_t need = mqtt_encoded_size(&c->codec, p);
    if (!ward_ok(VEC_RESERVE_EXACT(c->out, c->out_cap, need))) {
        fail(c, "out of memory");
        return -1;
    }
    size_t len = mqtt_encode(&c->codec, p, c->out, c->out_cap);
    if (len == 0) {
        fail(c, "cannot encode %s (a string longer than 65535 bytes?)", mqtt_type_name(p->type));
        return -1;
    }
    debug_packet(c, "sent", p);
    return write_all(c, c->out, len);
}

static int send_ack(struct client *c, enum mqtt_type t, uint16_t pid)
{
    struct mqtt_packet p = {.type = t, .flags = t == MQTT_PUBREL ? 2 : 0};
    p.u.ack.packet_id = pid;
    return send_packet(c, &p);
}

static int send_ping_if_due(struct client *c)
{
    if (!c->keepalive || c->closed)
        return 0;
    if (clock_mono_ms() - c->last_tx_ms < (uint64_t)c->keepalive * 750u)
        return 0;
    struct mqtt_packet p = {.type = MQTT_PINGREQ};
    return send_packet(c, &p);
}

/* Reads more input, waiting at most until deadline. 1 read, 0 timeout,
 * -1 closed or failed. */
static int fill(struct client *c, uint64_t deadline)
{
    for (;;) {
        if (buf_reserve(&c->in, 16384).err != WARD_OK) {
            fail(c, "input buffer limit reached");
            return -1;
        }
        ssize_t n = c->ops->read(c->t, buf_tail(&c->in), buf_room(&c->in));
        if (n > 0) {
            buf_commit(&c->in, (size_t)n);
            return 1;
        }
        if (n == TRANSPORT_EOF) {
            if (!*c->err)
                fail(c, "the server closed the connection");
            c->closed = true;
            return -1;
        }
        if (n == TRANSPORT_ERROR) {
            fail(c, "connection lost: %s", c->ops->cause(c->t));
            c->closed = true;
            return -1;
        }
        /* Wake for keep alive pings while waiting. */
        uint64_t wake = deadline;
        if (c->keepalive) {
            uint64_t ping = c->last_tx_ms + (uint64_t)c->keepalive * 750u;
            if (!wake || ping < wake)
                wake = ping;
        }
        int r = wait_fd(c, n == TRANSPORT_WANT_WRITE ? POLLOUT : POLLIN, wake ? wake : 0);
        if (r < 0)
            return -1;
        if (r == 0) {
            if (send_ping_if_due(c) < 0)
                return -1;
            if (deadline && clock_mono_ms() >= deadline)
                return 0;
        }
    }
}

/* Takes the next whole packet from the input into its own allocation.
 * Returns 1 with *out and *bytes (caller frees), 0 timeout, -1 failure. */
static int next_packet(struct client *c, uint64_t deadline, struct mqtt_packet *out,
                       uint8_t **bytes, size_t *len)
{
    for (;;) {
        size_t used = 0;
        int rc = mqtt_decode(&c->codec, buf_head(&c->in), buf_len(&c->in), out, &used);
        if (rc == 0) {
            uint8_t *copy = malloc(used);
            if (!copy) {
                fail(c, "out of memory");
                return -1;
            }
            memcpy(copy, buf_head(&c->in), used);
            buf_consume(&c->in, used);
            /* views into the copy; the same bytes decoded a moment ago */
            if (mqtt_decode(&c->codec, copy, used, out, &used) != 0) {
                free(copy);
                fail(c, "internal error: a packet decoded once did not decode again");
                return -1;
            }
            debug_packet(c, "received", out);
            *bytes = copy;
            *len = used;
            return 1;
        }
        if (rc != MQTT_INCOMPLETE) {
            fail(c, "malformed packet from the server: %s", mqtt_rc_name((uint8_t)rc));
            return -1;
        }
        int r = fill(c, deadline);
        if (r <= 0)
            return r;
    }
}

static void hold(struct client *c, uint8_t *bytes, size_t len)
{
    struct held *h = malloc(sizeof(*h) + len);
    if (!h)
        return;
    h->next = NULL;
    h->len = len;
    memcpy(h->bytes, bytes, len);
    if (c->held_tail)
        c->held_tail->next = h;
    else
        c->held_head = h;
    c->held_tail = h;
}

static bool rel_test(const struct client *c, uint16_t id)
{
    return c->rel[id / 8] & (1u << (id % 8));
}

static void rel_set(struct client *c, uint16_t id, bool on)
{
    if (on)
        c->rel[id / 8] |= (uint8_t)(1u << (id % 8));
    else
        c->rel[id / 8] &= (uint8_t) ~(1u << (id % 8));
}

/* Handles what the server sends unasked. Returns 1 if the packet is a
 * message to hand out, 0 if consumed, -1 if the connection ends. */
static int unsolicited(struct client *c, const struct mqtt_packet *p)
{
    switch (p->type) {
    case MQTT_PUBLISH: {
        const struct mqtt_publish *pub = &p->u.publish;
        if (pub->qos == 1)
            return send_ack(c, MQTT_PUBACK, pub->packet_id) < 0 ? -1 : 1;
        if (pub->qos == 2) {
            bool seen = rel_test(c, pub->packet_id);
            rel_set(c, pub->packet_id, true);
            if (send_ack(c, MQTT_PUBREC, pub->packet_id) < 0)
                return -1;
            return seen ? 0 : 1; /* a resend before PUBREL: not again */
        }
        return 1;
    }
    case MQTT_PUBREL:
        rel_set(c, p->u.ack.packet_id, false);
        return send_ack(c, MQTT_PUBCOMP, p->u.ack.packet_id) < 0 ? -1 : 0;
    case MQTT_DISCONNECT:
        fail(c, "the server disconnected: %s (0x%02x)", mqtt_rc_name(p->u.disconnect.reason),
             p->u.disconnect.reason);
        c->closed = true;
        return -1;
    case MQTT_PINGRESP:
        return 0;
    default:
        fail(c, "unexpected %s from the server", mqtt_type_name(p->type));
        return -1;
    }
}

/* Waits for the packet of `type` (and packet id, if pid != 0), handling
 * and keeping everything else. Returns 1 with *p and *bytes, or -1. */
static int await(struct client *c, enum mqtt_type type, uint16_t pid, struct mqtt_packet *p,
                 uint8_t **bytes)
{
    uint64_t deadline = clock_mono_ms() + (uint64_t)c->timeout_ms;
    for (;;) {
        size_t len;
        int r = next_packet(c, deadline, p, bytes, &len);
        if (r == 0)
            fail(c, "timed out waiting for %s", mqtt_type_name(type));
        if (r <= 0)
            return -1;
        bool ack = p->type == MQTT_PUBACK || p->type == MQTT_PUBREC || p->type == MQTT_PUBCOMP ||
                   p->type == MQTT_SUBACK || p->type == MQTT_UNSUBACK;
        if (p->type == type && (!pid || p->u.ack.packet_id == pid))
            return 1;
        /* A stray acknowledgement (of an earlier, abandoned request) is
         * dropped; anything else is handled and messages kept. */
        int u = ack ? 0 : unsolicited(c, p);
        if (u == 1)
            hold(c, *bytes, len);
        free(*bytes);
        if (u < 0)
            return -1;
    }
}

static uint16_t take_pid(struct client *c)
{
    if (c->next_pid == 0)
        c->next_pid = 1;
    return c->next_pid++;
}

static void fill_connect(const struct client_config *cfg, struct mqtt_packet *p)
{
    struct mqtt_connect *ck = &p->u.connect;
    p->type = MQTT_CONNECT;
    ck->protocol_name = (struct mqtt_str){(const uint8_t *)"MQTT", 4};
    ck->version = cfg->version;
    ck->clean_start = cfg->clean_start;
    ck->keep_alive = cfg->keepalive;
    ck->client_id = (struct mqtt_str){(const uint8_t *)cfg->client_id, strlen(cfg->client_id)};
    if (cfg->has_session_expiry) {
        ck->props.present |= MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
        ck->props.session_expiry = cfg->session_expiry;
    }
    ck->props.user_raw = cfg->connect_user_props;
    if (cfg->username) {
        ck->has_username = true;
        ck->username = (struct mqtt_str){(const uint8_t *)cfg->username, strlen(cfg->username)};
    }
    if (cfg->password) {
        ck->has_password = true;
        ck->password = (struct mqtt_bin){(const uint8_t *)cfg->password, strlen(cfg->password)};
    }
    if (cfg->will_topic) {
        ck->will_flag = true;
        ck->will_topic =
            (struct mqtt_str){(const uint8_t *)cfg->will_topic, strlen(cfg->will_topic)};
        ck->will_payload = (struct mqtt_bin){cfg->will_payload, cfg->will_len};
        ck->will_qos = cfg->will_qos;
        ck->will_retain = cfg->will_retain;
    }
}

static struct client *client_new(const struct client_config *cfg, int fd)
{
    struct client *c = calloc(1, sizeof(*c));
    if (!c || !(c->rel = calloc(MAX_PENDING_IDS / 8, 1))) {
        free(c);
        return NULL;
    }
    c->fd = fd;
    c->tcp.fd = fd;
    c->ops = &tcp_transport_ops;
    c->t = &c->tcp;
    c->codec.version = cfg->version;
    c->keepalive = cfg->keepalive;
    c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000;
    c->debug = cfg->debug;
    c->next_pid = 1;
    buf_init(&c->in, 256u << 20);
    return c;
}

/* Runs the TLS handshake over the connected socket, within the timeout. */
static int start_tls(struct client *c, const struct client_config *cfg)
{
    void *t = tls_client_transport_new(cfg->tls, c->fd, cfg->host);
    if (!t) {
        fail(c, "out of memory");
        return -1;
    }
    c->ops = &tls_transport_ops;
    c->t = t;
    uint64_t deadline = clock_mono_ms() + (uint64_t)c->timeout_ms;
    for (;;) {
        ssize_t r = c->ops->handshake(t);
        if (r == 1)
            return 0;
        if (r == TRANSPORT_ERROR) {
            fail(c, "%s", c->ops->cause(t));
            return -1;
        }
        int w = wait_fd(c, r == TRANSPORT_WANT_WRITE ? POLLOUT : POLLIN, deadline);
        if (w <= 0) {
            if (w == 0)
                fail(c, "TLS handshake timed out");
            return -1;
        }
    }
}

/* see client.h */
struct client *client_connect(const struct client_config *cfg, struct client_result *res)
{
    memset(res, 0, sizeof(*res));
    res->status = -1;
    int fd = tcp_connect(cfg->host, cfg->port, cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000,
                         res->error, sizeof(res->error));
    if (fd < 0)
        return NULL;
    struct client *c = client_new(cfg, fd);
    if (!c) {
        close(fd);
        snprintf(res->error, sizeof(res->error), "out of memory");
        return NULL;
    }
    if (cfg->tls && start_tls(c, cfg) < 0) {
        snprintf(res->error, sizeof(res->error), "%s", c->err);
        client_free(c);
        return NULL;
    }
    struct mqtt_packet p = {0}, ack;
    uint8_t *bytes = NULL;
    fill_connect(cfg, &p);
    if (send_packet(c, &p) < 0 || await(c, MQTT_CONNACK, 0, &ack, &bytes) < 0) {
        snprintf(res->error, sizeof(res->error), "%s", c->err);
        client_free(c);
        return NULL;
    }
    res->status = ack.u.connack.reason;
    res->session_present = ack.u.connack.session_present;
    if (ack.u.connack.props.present & MQTT_HAS(MQTT_PROP_ASSIGNED_CLIENT_ID))
        snprintf(res->assigned_id, sizeof(res->assigned_id), "%.*s",
                 (int)ack.u.connack.props.assigned_client_id.len,
                 ack.u.connack.props.assigned_client_id.p);
    if (ack.u.connack.props.present & MQTT_HAS(MQTT_PROP_SERVER_KEEP_ALIVE))
        c->keepalive = ack.u.connack.props.server_keep_alive; /* MQTT-3.2.2-21 */
    free(bytes);
    if (res->status != 0) {
        snprintf(res->error, sizeof(res->error), "connection refused: %s (0x%02x)",
                 mqtt_connack_name(cfg->version, (uint8_t)res->status), res->status);
        client_free(c);
        return NULL;
    }
    return c;
}

/* see client.h */
int client_publish(struct client *c, const char *topic, const void *payload, size_t len,
                   uint8_t qos, bool retain, const struct mqtt_props *props, uint8_t *reason)
{
    struct mqtt_packet p = {.type = MQTT_PUBLISH}, ack;
    uint8_t *bytes = NULL;
    struct mqtt_publish *pub = &p.u.publish;
    size_t tlen = strlen(topic);
    if (tlen > 65535) { /* an MQTT string's length is 16 bits (MQTT-1.5.4) */
        fail(c, "topic is %zu bytes; MQTT allows at most 65535", tlen);
        return -1;
    }
    pub->topic = (struct mqtt_str){(const uint8_t *)topic, (uint16_t)tlen};
    pub->payload = (struct mqtt_bin){payload, len};
    pub->qos = qos;
    pub->retain = retain;
    if (props)
        pub->props = *props;
    if (qos)
        pub->packet_id = take_pid(c);
    *reason = 0;
    if (send_packet(c, &p) < 0)
        return -1;
    if (qos == 0)
        return 0;
    if (await(c, qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, pub->packet_id, &ack, &bytes) < 0)
        return -1;
    *reason = ack.u.ack.reason;
    free(bytes);
    /* MQTT-4.3.3: PUBREL unless the PUBREC refused the message (v5). */
    if (qos == 2 && *reason < 0x80) {
        if (send_ack(c, MQTT_PUBREL, pub->packet_id) < 0 ||
            await(c, MQTT_PUBCOMP, pub->packet_id, &ack, &bytes) < 0)
            return -1;
        free(bytes);
    }
    return 0;
}

/* see client.h */
int client_subscribe(struct client *c, const char *const *filters, size_t n, uint8_t options,
                     uint32_t sub_id, uint8_t *codes)
{
    struct mqtt_subscription *subs = calloc(n, sizeof(*subs));
    if (!subs) {
        fail(c, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        subs[i].filter = (struct mqtt_str){(const uint8_t *)filters[i], strlen(filters[i])};
        subs[i].options = options;
    }
    struct mqtt_packet p = {.type = MQTT_SUBSCRIBE, .flags = 2}, ack;
    uint8_t *bytes = NULL;
    p.u.subscribe.packet_id = take_pid(c);
    p.u.subscribe.count = (uint32_t)n;
    p.u.subscribe.subs = subs;
    if (sub_id) {
        p.u.subscribe.props.present |= MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID);
        p.u.subscribe.props.sub_ids[0] = sub_id;
        p.u.subscribe.props.sub_id_count = 1;
    }
    int rc = send_packet(c, &p);
    free(subs);
    if (rc < 0 || await(c, MQTT_SUBACK, p.u.subscribe.packet_id, &ack, &bytes) < 0)
        return -1;
    if (ack.u.suback.reasons.len != n) {
        fail(c, "SUBACK has %u codes for %zu filters", ack.u.suback.reasons.len, n);
        free(bytes);
        return -1;
    }
    memcpy(codes, ack.u.suback.reasons.p, n);
    free(bytes);
    return 0;
}

static void to_message(const struct mqtt_packet *p, struct client_message *m)
{
    const struct mqtt_publish *pub = &p->u.publish;
    m->topic = pub->topic;
    m->payload = pub->payload;
    m->qos = pub->qos;
    m->retain = pub->retain;
    m->dup = pub->dup;
    m->props = pub->props;
}

/* see client.h */
int client_next(struct client *c, struct client_message *m, int timeout_ms)
{
    free(c->current);
    c->current = NULL;
    struct mqtt_packet p;
    size_t used;
    if (c->held_head) { /* what arrived while we waited for an ack, first */
        struct held *h = c->held_head;
        if (!(c->held_head = h->next))
            c->held_tail = NULL;
        c->current = (uint8_t *)h;
        if (mqtt_decode(&c->codec, h->bytes, h->len, &p, &used) != 0) { /* decoded once already */
            fail(c, "internal error: a held packet did not decode again");
            return -1;
        }
        to_message(&p, m);
        return 1;
    }
    uint64_t deadline = timeout_ms < 0 ? 0 : clock_mono_ms() + (uint64_t)timeout_ms;
    if (timeout_ms == 0)
        deadline = clock_mono_ms() + 1;
    for (;;) {
        uint8_t *bytes;
        int r = next_packet(c, deadline, &p, &bytes, &used);
        if (r <= 0)
            return r;
        int u = unsolicited(c, &p);
        if (u == 1) {
            c->current = bytes;
            to_message(&p, m);
            return 1;
        }
        free(bytes);
        if (u < 0)
            return -1;
    }
}

/* see client.h */
void client_disconnect(struct client *c, uint8_t reason)
{
    if (!c->closed) {
        struct mqtt_packet p = {.type = MQTT_DISCONNECT};
        p.u.disconnect.reason = reason;
        send_packet(c, &p);
        shutdown(c->fd, SHUT_WR);
        c->closed = true;
    }
}

void client_free(struct client *c)
{
    if (!c)
        return;
    while (c->held_head) {
        struct held *h = c->held_head;
        c->held_head = h->next;
        free(h);
    }
    free(c->current);
    free(c->rel);
    free(c->out);
    buf_free(&c->in);
    if (c->ops && c->ops->destroy && c->t != &c->tcp)
        c->ops->destroy(c->t);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

const char *client_error(const struct client *c)
{
    return c->err;
}
