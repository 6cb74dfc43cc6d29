/* Fixed header framing and a decoder/encoder pair per packet type, chosen
 * through one table indexed by packet type. */
#include <string.h>

#include "mqtt/wire.h"

static bool v5(const struct mqtt_codec *c)
{
    return c->version == MQTT_V5;
}

/* ---- CONNECT ------------------------------------------------------------ */

static int connect_flags(struct mqtt_connect *c, uint8_t flags)
{
    /* MQTT-3.1.2-3: the reserved flag is 0. */
    if (flags & 0x01)
        return MQTT_RC_MALFORMED;
    c->clean_start = flags & 0x02;
    c->will_flag = flags & 0x04;
    c->will_qos = (flags >> 3) & 0x03;
    c->will_retain = flags & 0x20;
    c->has_password = flags & 0x40;
    c->has_username = flags & 0x80;
    /* MQTT-3.1.2-11/13/15: no will means will QoS 0 and will retain 0. */
    if (!c->will_flag && (c->will_qos || c->will_retain))
        return MQTT_RC_MALFORMED;
    if (c->will_qos == 3) /* MQTT-3.1.2-14 */
        return MQTT_RC_MALFORMED;
    /* MQTT-3.1.2-22 (3.1.1): a password needs a username. */
    if (c->version != MQTT_V5 && c->has_password && !c->has_username)
        return MQTT_RC_MALFORMED;
    return 0;
}

static int connect_header(struct rd *r, struct mqtt_connect *c)
{
    bool ok;
    uint8_t flags;
    if (!rd_str(r, &c->protocol_name, &ok) || !rd_u8(r, &c->version))
        return MQTT_RC_MALFORMED;
    bool mqtt = c->protocol_name.len == 4 && memcmp(c->protocol_name.p, "MQTT", 4) == 0;
    bool mqisdp = c->protocol_name.len == 6 && memcmp(c->protocol_name.p, "MQIsdp", 6) == 0;
    /* MQTT-3.1.2-1: another protocol name is not MQTT at all. */
    if (!mqtt && !mqisdp)
        return MQTT_RC_PROTOCOL_ERROR;
    /* Mosquitto's bridges set the top bit of a 3.1/3.1.1 level to say "I am
     * a bridge" (it has no meaning in 5.0, whose no-local replaces it). */
    if ((c->version & 0x80) && (c->version & 0x7f) != MQTT_V5) {
        c->bridge = true;
        c->version &= 0x7f;
    }
    /* MQTT-3.1.2-2: an unsupported level is answered with 0x01/0x84. */
    if ((mqtt && c->version != MQTT_V311 && c->version != MQTT_V5) ||
        (mqisdp && c->version != MQTT_V31))
        return MQTT_RC_UNSUPPORTED_VERSION;
    if (!rd_u8(r, &flags) || !rd_u16(r, &c->keep_alive))
        return MQTT_RC_MALFORMED;
    return connect_flags(c, flags);
}

static int connect_will(struct rd *r, struct mqtt_connect *c)
{
    bool ok;
    if (c->version == MQTT_V5) {
        int rc = props_decode(r, MQTT_CONNECT, true, true, &c->will_props);
        if (rc)
            return rc;
    }
    if (!rd_str(r, &c->will_topic, &ok) || !ok)
        return MQTT_RC_MALFORMED;
    if (!mqtt_topic_name_valid(c->will_topic.p, c->will_topic.len))
        return MQTT_RC_TOPIC_NAME_INVALID;
    struct mqtt_bin payload;
    if (!rd_bin(r, &payload))
        return MQTT_RC_MALFORMED;
    c->will_payload = payload;
    if ((c->will_props.present & MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT)) &&
        c->will_props.payload_format == 1 && !mqtt_utf8_valid(payload.p, payload.len))
        return MQTT_RC_PAYLOAD_FORMAT_INVALID;
    return 0;
}

static int decode_connect(const struct mqtt_codec *codec, struct rd *r, uint8_t flags,
                          struct mqtt_packet *out)
{
    struct mqtt_connect *c = &out->u.connect;
    bool ok;
    (void)codec;
    (void)flags;
    int rc = connect_header(r, c);
    if (rc)
        return rc;
    if (c->version == MQTT_V5 && (rc = props_decode(r, MQTT_CONNECT, false, true, &c->props)))
        return rc;
    /* MQTT-3.1.3-4: the client identifier is a UTF-8 string. */
    if (!rd_str(r, &c->client_id, &ok) || !ok)
        return MQTT_RC_MALFORMED;
    if (c->will_flag && (rc = connect_will(r, c)))
        return rc;
    if (c->has_username && (!rd_str(r, &c->username, &ok) || !ok))
        return MQTT_RC_MALFORMED;
    if (c->has_password && !rd_bin(r, &c->password))
        return MQTT_RC_MALFORMED;
    return rd_left(r) ? MQTT_RC_MALFORMED : 0;
}

static size_t props_block(const struct mqtt_codec *c, const struct mqtt_props *p)
{
    if (!v5(c))
        return 0;
    size_t n = props_size(p);
    return mqtt_vbi_size((uint32_t)n) + n;
}

static size_t size_connect(const struct mqtt_codec *codec, const struct mqtt_packet *p)
{
    const struct mqtt_connect *c = &p->u.connect;
    struct mqtt_codec cc = *codec;
    cc.version = c->version;
    size_t n = 2 + (c->version == MQTT_V31 ? 6 : 4) + 1 + 1 + 2;
    n += props_block(&cc, &c->props) + 2 + c->client_id.len;
    if (c->will_flag)
        n += props_block(&cc, &c->will_props) + 2 + c->will_topic.len + 2 + c->will_payload.len;
    if (c->has_username)
        n += 2 + c->username.len;
    if (c->has_password)
        n += 2 + c->password.len;
    return n;
}

static void write_connect(const struct mqtt_codec *codec, const struct mqtt_packet *p, struct wr *w)
{
    const struct mqtt_connect *c = &p->u.connect;
    struct mqtt_codec cc = *codec;
    cc.version = c->version;
    if (c->version == MQTT_V31)
        wr_str(w, (struct mqtt_str){(const uint8_t *)"MQIsdp", 6});
    else
        wr_str(w, (struct mqtt_str){(const uint8_t *)"MQTT", 4});
    wr_u8(w, (uint8_t)(c->version | (c->bridge && c->version != MQTT_V5 ? 0x80 : 0)));
    uint8_t flags = (uint8_t)((c->clean_start ? 0x02 : 0) | (c->will_flag ? 0x04 : 0) |
                              ((c->will_flag ? c->will_qos : 0) << 3) |
                              (c->will_flag && c->will_retain ? 0x20 : 0) |
                              (c->has_password ? 0x40 : 0) | (c->has_username ? 0x80 : 0));
    wr_u8(w, flags);
    wr_u16(w, c->keep_alive);
    if (v5(&cc))
        props_write(w, &c->props);
    wr_str(w, c->client_id);
    if (c->will_flag) {
        if (v5(&cc))
            props_write(w, &c->will_props);
        wr_str(w, c->will_topic);
        wr_bin(w, c->will_payload);
    }
    if (c->has_username)
        wr_str(w, c->username);
    if (c->has_password)
        wr_bin(w, c->password);
}

/* ---- CONNACK ------------------------------------------------------------ */

static int decode_connack(const struct mqtt_codec *codec, struct rd *r, uint8_t flags,
                          struct mqtt_packet *out)
{
    uint8_t ack;
    (void)flags;
    if (!rd_u8(r, &ack) || !rd_u8(r, &out->u.connack.reason))
        return MQTT_RC_MALFORMED;
    if (ack & 0xFE) /* MQTT-3.2.2-1: bits 7-1 reserved */
        return MQTT_RC_MALFORMED;
    out->u.connack.session_present = ack & 1;
    if (v5(codec)) {
        int rc = props_decode(r, MQTT_CONNACK, false, false, &out->u.connack.props);
        if (rc)
            return rc;
    }
    return rd_left(r) ? MQTT_RC_MALFORMED : 0;
}

static size_t size_connack(const struct mqtt_codec *c, const struct mqtt_packet *p)
{
    return 2 + props_block(c, &p->u.connack.props);
}

static void write_connack(const struct mqtt_codec *c, const struct mqtt_packet *p, struct wr *w)
{
    wr_u8(w, p->u.connack.session_present ? 1 : 0);
    wr_u8(w, p->u.connack.reason);
    if (v5(c))
        props_write(w, &p->u.connack.props);
}

/* ---- PUBLISH ------------------------------------------------------------ */

static int publish_topic(const struct mqtt_codec *codec, struct rd *r, struct mqtt_publish *pub)
{
    bool ok;
    if (!rd_str(r, &pub->topic, &ok) || !ok)
        return MQTT_RC_MALFORMED;
    /* MQTT-3.3.2-2: no wildcards in a topic name. */
    if (memchr(pub->topic.p, '+', pub->topic.len) || memchr(pub->topic.p, '#', pub->topic.len))
        return MQTT_RC_TOPIC_NAME_INVALID;
    /* 3.1.1 MQTT-4.7.3-1: at least one character (v5: see the alias check). */
    if (pub->topic.len == 0 && !v5(codec))
        return MQTT_RC_TOPIC_NAME_INVALID;
    return 0;
}

static int decode_publish(const struct mqtt_codec *codec, struct rd *r, uint8_t flags,
                          struct mqtt_packet *out)
{
    struct mqtt_publish *pub = &out->u.publish;
    pub->qos = (flags >> 1) & 0x03;
    pub->dup = flags & 0x08;
    pub->retain = flags & 0x01;
    if (pub->qos == 3) /* MQTT-3.3.1-4 */
        return MQTT_RC_MALFORMED;
    if (pub->dup && pub->qos == 0) /* MQTT-3.3.1-2 */
        return MQTT_RC_MALFORMED;
    int rc = publish_topic(codec, r, pub);
    if (rc)
        return rc;
    if (pub->qos > 0) {
        if (!rd_u16(r, &pub->packet_id))
            return MQTT_RC_MALFORMED;
        if (pub->packet_id == 0) /* MQTT-2.2.1-3 */
            return MQTT_RC_PROTOCOL_ERROR;
    }
    if (v5(codec)) {
        if ((rc = props_decode(r, MQTT_PUBLISH, false, codec->is_server, &pub->props)))
            return rc;
        /* MQTT-3.3.2-8 etc.: an empty topic needs a topic alias. */
        if (pub->topic.len == 0 && !(pub->props.present & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS)))
            return MQTT_RC_PROTOCOL_ERROR;
    }
    pub->payload.p = r->p;
    pub->payload.len = (uint32_t)rd_left(r);
    r->p = r->end;
    /* MQTT-3.3.2-4: a payload said to be UTF-8 must be. */
    if ((pub->props.present & MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT)) &&
        pub->props.payload_format == 1 && !mqtt_utf8_valid(pub->payload.p, pub->payload.len))
        return MQTT_RC_PAYLOAD_FORMAT_INVALID;
    return 0;
}

static size_t size_publish(const struct mqtt_codec *c, const struct mqtt_packet *p)
{
    const struct mqtt_publish *pub = &p->u.publish;
    return 2 + pub->topic.len + (pub->qos ? 2 : 0) + props_block(c, &pub->props) + pub->payload.len;
}

static void write_publish(const struct mqtt_codec *c, const struct mqtt_packet *p, struct wr *w)
{
    const struct mqtt_publish *pub = &p->u.publish;
    wr_str(w, pub->topic);
    if (pub->qos)
        wr_u16(w, pub->packet_id);
    if (v5(c))
        props_write(w, &pub->props);
    wr_bytes(w, pub->payload.p, pub->payload.len);
}

/* ---- PUBACK PUBREC PUBREL PUBCOMP --------------------------------------- */

static bool ack_reason_ok(enum mqtt_type t, uint8_t rc)
{
    static const uint8_t pub_ok[] = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
    if (t == MQTT_PUBREL || t == MQTT_PUBCOMP)
        return rc == 0x00 || rc == 0x92;
    return memchr(pub_ok, rc, sizeof(pub_ok)) != NULL;
}

static int decode_ack(const struct mqtt_codec *codec, struct rd *r, uint8_t flags,
                      struct mqtt_packet *out)
{
    struct mqtt_ack *a = &out->u.ack;
    (void)flags;
    if (!rd_u16(r, &a->packet_id))
        return MQTT_RC_MALFORMED;
    if (a->packet_id == 0)
        return MQTT_RC_PROTOCOL_ERROR;
    if (!v5(codec))
        return rd_left(r) ? MQTT_RC_MALFORMED : 0;
    /* MQTT 5 3.4.2.1: the reason code and properties may be omitted. */
    if (rd_left(r) && !rd_u8(r, &a->reason))
        return MQTT_RC_MALFORMED;
    if (!ack_reason_ok(out->type, a->reason))
        return MQTT_RC_PROTOCOL_ERROR;
    if (rd_left(r)) {
        int rc = props_decode(r, out->type, false, codec->is_server, &a->props);
        if (rc)
            return rc;
    }
    return rd_left(r) ? MQTT_RC_MALFORMED : 0;
}

static bool ack_short(const struct mqtt_codec *c, const struct mqtt_ack *a)
{
    return !v5(c) || (a->reason == 0 && props_size(&a->props) == 0);
}

static size_t size_ack(const struct mqtt_codec *c, const struct mqtt_packet *p)
{
    const struct mqtt_ack *a = &p->u.ack;
    if (ack_short(c, a))
        return 2;
    return 3 + props_block(c, &a->props);
}

static void write_ack(const struct mqtt_codec *c, const struct mqtt_packet *p, struct wr *w)
{
    const struct mqtt_ack *a = &p->u.ack;
    wr_u16(w, a->packet_id);
    if (ack_short(c, a))
        return;
    wr_u8(w, a->reason);
    props_write(w, &a->props);
}

/* ---- SUBSCRIBE UNSUBSCRIBE ---------------------------------------------- */

/* A "$share/" filter that breaks MQTT-4.8.2-1/2 is well-formed as a topic
 * filter and passes here: the broker refuses that filter alone (SUBACK 0x8F,
 * or 0x80 in 3.1.1), the same way in both versions (mqtt_share_split). */
static int check_filter(const struct mqtt_codec *codec, struct mqtt_str f, uint8_t opts,
                        bool subscribe)
{
    if (!mqtt_topic_filter_valid(f.p, f.len))
        return MQTT_RC_MALFORMED;
    if (!subscribe)
        return 0;
    if (v5(codec)) {
        struct mqtt_share share;
        bool shared = mqtt_share_split(f.p, f.len, &share) && share.group;
        if (opts & 0xC0) /* MQTT-3.8.3-5 */
            return MQTT_RC_MALFORMED;
        if (MQTT_SUBOPT_RH(opts) == 3)
            return MQTT_RC_PROTOCOL_ERROR;
        if (shared && (opts & MQTT_SUBOPT_NO_LOCAL)) /* MQTT-3.8.3-4 */
            return MQTT_RC_PROTOCOL_ERROR;
    } else if (opts & 0xFC) { /* 3.1.1 MQTT-3-8.3-4 */
        return MQTT_RC_MALFORMED;
    }
    return MQTT_SUBOPT_QOS(opts) == 3 ? MQTT_RC_MALFORMED : 0;
}

/* Walks a SUBSCRIBE or UNSUBSCRIBE payload, validating every entry. */
static int walk_filters(const struct mqtt_codec *codec, struct rd *r, bool subscribe,
                        uint32_t *count)
{
    *count = 0;
    while (rd_left(r)) {
        struct mqtt_str f;
        uint8_t opts = 0;
        bool ok;
        if (!rd_str(r, &f, &ok) || !ok || (subscribe && !rd_u8(r, &opts)))
            return MQTT_RC_MALFORMED;
        int rc = check_filter(codec, f, opts, subscribe);
        if (rc)
            return rc;
        (*count)++;
    }
    /* MQTT-3.8.3-3 / MQTT-3.10.3-2: at least one filter. */
    return *count ? 0 : MQTT_RC_PROTOCOL_ERROR;
}

static int decode_sub_common(const struct mqtt_codec *codec, struct rd *r, enum mqtt_type t,
                             uint16_t *pid, struct mqtt_props *props)
{
    if (!rd_u16(r, pid))
        return MQTT_RC_MALFORMED;
    if (*pid == 0)
        return MQTT_RC_PROTOCOL_ERROR;
    return v5(codec) ? props_decode(r, t, false, true, props) : 0;
}

static int decode_subscribe(const struct mqtt_codec *codec, struct rd *r, uint8_t flags,
                            struct mqtt_packet *out)
{
    struct mqtt_subscribe *s = &out->u.subscribe;
    (void)flags;
    int rc = decode_sub_common(codec, r, MQTT_SUBSCRIBE, &s->packet_id, &s->props);
    if (rc)
        return rc;
    s->payload.p = r->p;
    s->payload.len = (uint32_t)rd_left(r);
    return walk_filters(codec, r, true, &s->count);
}

static int decode_unsubscribe(const struct mqtt_codec *codec, struct rd *r, uint8_t flags,
                              struct mqtt_packet *out)
{
    struct mqtt_unsubscribe *u = &out->u.unsubscribe;
    (void)flags;
    int rc = decode_sub_common(codec, r, MQTT_UNSUBSCRIBE, &u->packet_id, &u->props);
    if (rc)
        return rc;
    u->payload.p = r->p;
    u->payload.len = (uint32_t)rd_left(r);
    return walk_filters(codec, r, false, &u->count);
}

static size_t size_subscribe(const struct mqtt_codec *c, const struct mqtt_packet *p)
{
    const struct mqtt_subscribe *s = &p->u.subscribe;
    size_t n = 2 + props_block(c, &s->props);
    for (uint32_t i = 0; i < s->count; i++)
        n += 3 + s->subs[i].filter.len;
    return n;
}

static void write_subscribe(const struct mqtt_codec *c, const struct mqtt_packet *p, struct wr *w)
{
    const struct mqtt_subscribe *s = &p->u.subscribe;
    wr_u16(w, s->packet_id);
    if (v5(c))
        props_write(w, &s->props);
    for (uint32_t i = 0; i < s->count; i++) {
        wr_str(w, s->subs[i].filter);
        wr_u8(w, s->subs[i].options);
    }
}

static size_t size_unsubscribe(const struct mqtt_codec *c, const struct mqtt_packet *p)
{
    const struct mqtt_unsubscribe *u = &p->u.unsubscribe;
    size_t n = 2 + props_block(c, &u->props);
    for (uint32_t i = 0; i < u->count; i++)
        n += 2 + u->filters[i].len;
    return n;
}

static void write_unsubscribe(const struct mqtt_codec *c, const struct mqtt_packet *p, struct wr *w)
{
    const struct mqtt_unsubscribe *u = &p->u.unsubscribe;
    wr_u16(w, u->packet_id);
    if (v5(c))
        props_write(w, &u->props);
    for (uint32_t i = 0; i < u->count; i++)
        wr_str(w, u->filters[i]);
}

/* see mqtt.h */
bool mqtt_subscribe_next(const struct mqtt_subscribe *s, size_t *pos, struct mqtt_subscription *out)
{
    struct rd r = {s->payload.p + *pos, s->payload.p + s->payload.len};
    bool ok;
    if (!rd_left(&r) || !rd_str(&r, &out->filter, &ok) || !rd_u8(&r, &out->options))
        return false;
    *pos = (size_t)(r.p - s->payload.p);
    return true;
}

/* see mqtt.h */
bool mqtt_unsubscribe_next(const struct mqtt_unsubscribe *u, size_t *pos, struct mqtt_str *out)
{
    struct rd r = {u->payload.p + *pos, u->payload.p + u->payload.len};
    bool ok;
    if (!rd_left(&r) || !rd_str(&r, out, &ok))
        return false;
    *pos = (size_t)(r.p - u->payload.p);
    return true;
}

/* ---- SUBACK UNSUBACK ---------------------------------------------------- */

static int decode_suback(const struct mqtt_codec *codec, struct rd *r, uint8_t flags,
                         struct mqtt_packet *out)
{
    struct mqtt_suback *s = &out->u.suback;
    (void)flags;
    if (!rd_u16(r, &s->packet_id))
        return MQTT_RC_MALFORMED;
    if (v5(codec)) {
        int rc = props_decode(r, out->type, false, false, &s->props);
        if (rc)
            return rc;
    }
    s->reasons.p = r->p;
    s->reasons.len = (uint32_t)rd_left(r);
    r->p = r->end;
    /* 3.1.1 UNSUBACK has no payload; SUBACK has at least one code. */
    if (!v5(codec) && out->type == MQTT_UNSUBACK)
        return s->reasons.len ? MQTT_RC_MALFORMED : 0;
    return s->reasons.len ? 0 : MQTT_RC_PROTOCOL_ERROR;
}

static size_t size_suback(const struct mqtt_codec *c, const struct mqtt_packet *p)
{
    const struct mqtt_suback *s = &p->u.suback;
    if (!v5(c) && p->type == MQTT_UNSUBACK)
        return 2;
    return 2 + props_block(c, &s->props) + s->reasons.len;
}

static void write_suback(const struct mqtt_codec *c, const struct mqtt_packet *p, struct wr *w)
{
    const struct mqtt_suback *s = &p->u.suback;
    wr_u16(w, s->packet_id);
    if (!v5(c) && p->type == MQTT_UNSUBACK)
        return;
    if (v5(c)) {
        props_write(w, &s->props);
        wr_bytes(w, s->reasons.p, s->reasons.len);
        return;
    }
    /* 3.1.1 SUBACK return codes: 0x00-0x02 or 0x80 Failure. */
    for (uint32_t i = 0; i < s->reasons.len; i++)
        wr_u8(w, s->reasons.p[i] >= 0x80 ? 0x80 : s->reasons.p[i]);
}

/* ---- PINGREQ PINGRESP --------------------------------------------------- */

static int decode_empty(const struct mqtt_codec *codec, struct rd *r, uint8_t flags,
                        struct mqtt_packet *out)
{
    (void)codec;
    (void)flags;
    (void)out;
    return rd_left(r) ? MQTT_RC_MALFORMED : 0;
}

static size_t size_empty(const struct mqtt_codec *c, const struct mqtt_packet *p)
{
    (void)c;
    (void)p;
    return 0;
}

static void write_empty(const struct mqtt_codec *c, const struct mqtt_packet *p, struct wr *w)
{
    (void)c;
    (void)p;
    (void)w;
}

/* ---- DISCONNECT AUTH ---------------------------------------------------- */

/* Both are "reason code, then properties", each optional in MQTT 5. */
static int decode_reason_props(const struct mqtt_codec *codec, struct rd *r, uint8_t flags,
                               struct mqtt_packet *out)
{
    uint8_t *reason = out->type == MQTT_AUTH ? &out->u.auth.reason : &out->u.disconnect.reason;
    struct mqtt_props *props =
        out->type == MQTT_AUTH ? &out->u.auth.props : &out->u.disconnect.props;
    (void)flags;
    if (!v5(codec))
        return rd_left(r) ? MQTT_RC_MALFORMED : 0;
    if (rd_left(r) && !rd_u8(r, reason))
        return MQTT_RC_MALFORMED;
    if (rd_left(r)) {
        int rc = props_decode(r, out->type, false, codec->is_server, props);
        if (rc)
            return rc;
    }
    if (out->type == MQTT_AUTH && *reason != 0x00 && *reason != 0x18 && *reason != 0x19)
        return MQTT_RC_PROTOCOL_ERROR;
    return rd_left(r) ? MQTT_RC_MALFORMED : 0;
}

static size_t size_reason_props(const struct mqtt_codec *c, const struct mqtt_packet *p)
{
    const struct mqtt_props *props =
        p->type == MQTT_AUTH ? &p->u.auth.props : &p->u.disconnect.props;
    uint8_t reason = p->type == MQTT_AUTH ? p->u.auth.reason : p->u.disconnect.reason;
    if (!v5(c))
        return 0;
    if (reason == 0 && props_size(props) == 0)
        return 0;
    return 1 + props_block(c, props);
}

static void write_reason_props(const struct mqtt_codec *c, const struct mqtt_packet *p,
                               struct wr *w)
{
    if (size_reason_props(c, p) == 0)
        return;
    wr_u8(w, p->type == MQTT_AUTH ? p->u.auth.reason : p->u.disconnect.reason);
    props_write(w, p->type == MQTT_AUTH ? &p->u.auth.props : &p->u.disconnect.props);
}

/* ---- dispatch ----------------------------------------------------------- */

struct packet_ops {
    int (*decode)(const struct mqtt_codec *, struct rd *, uint8_t, struct mqtt_packet *);
    size_t (*size)(const struct mqtt_codec *, const struct mqtt_packet *);
    void (*write)(const struct mqtt_codec *, const struct mqtt_packet *, struct wr *);
    uint8_t fixed_flags; /* required low nibble (PUBLISH: any) */
    bool from_client;    /* a client may send it */
    bool from_server;    /* a server may send it */
};

static const struct packet_ops ops[16] = {
    [MQTT_CONNECT] = {decode_connect, size_connect, write_connect, 0, true, false},
    [MQTT_CONNACK] = {decode_connack, size_connack, write_connack, 0, false, true},
    [MQTT_PUBLISH] = {decode_publish, size_publish, write_publish, 0xFF, true, true},
    [MQTT_PUBACK] = {decode_ack, size_ack, write_ack, 0, true, true},
    [MQTT_PUBREC] = {decode_ack, size_ack, write_ack, 0, true, true},
    [MQTT_PUBREL] = {decode_ack, size_ack, write_ack, 2, true, true},
    [MQTT_PUBCOMP] = {decode_ack, size_ack, write_ack, 0, true, true},
    [MQTT_SUBSCRIBE] = {decode_subscribe, size_subscribe, write_subscribe, 2, true, false},
    [MQTT_SUBACK] = {decode_suback, size_suback, write_suback, 0, false, true},
    [MQTT_UNSUBSCRIBE] = {decode_unsubscribe, size_unsubscribe, write_unsubscribe, 2, true, false},
    [MQTT_UNSUBACK] = {decode_suback, size_suback, write_suback, 0, false, true},
    [MQTT_PINGREQ] = {decode_empty, size_empty, write_empty, 0, true, false},
    [MQTT_PINGRESP] = {decode_empty, size_empty, write_empty, 0, false, true},
    [MQTT_DISCONNECT] = {decode_reason_props, size_reason_props, write_reason_props, 0, true, true},
    [MQTT_AUTH] = {decode_reason_props, size_reason_props, write_reason_props, 0, true, true},
};

/* Checks that apply before the body is looked at. */
static int check_header(const struct mqtt_codec *codec, uint8_t type, uint8_t flags)
{
    const struct packet_ops *o = &ops[type];
    if (!o->decode) /* type 0 is reserved */
        return MQTT_RC_MALFORMED;
    if (type == MQTT_AUTH && codec->version != MQTT_V5 && codec->version != 0)
        return MQTT_RC_MALFORMED; /* reserved in 3.1.1 */
    if (codec->is_server ? !o->from_client : !o->from_server)
        return MQTT_RC_PROTOCOL_ERROR;
    /* MQTT-3.1.0-1: the first packet is CONNECT; MQTT-3.1.0-2: only once. */
    if (codec->is_server && (codec->version == 0) != (type == MQTT_CONNECT))
        return MQTT_RC_PROTOCOL_ERROR;
    /* MQTT-2.1.3-1: reserved fixed header flags. */
    if (o->fixed_flags != 0xFF && flags != o->fixed_flags)
        return MQTT_RC_MALFORMED;
    return 0;
}

/* see mqtt.h */
int mqtt_decode(const struct mqtt_codec *codec, const uint8_t *buf, size_t len,
                struct mqtt_packet *out, size_t *used)
{
    uint32_t rl;
    if (len < 2)
        return MQTT_INCOMPLETE;
    int n = mqtt_vbi_decode(buf + 1, len - 1, &rl);
    if (n < 0)
        return MQTT_RC_MALFORMED;
    if (n == 0)
        return MQTT_INCOMPLETE;
    size_t total = 1 + (size_t)n + rl;
    if (codec->max_packet_size && total > codec->max_packet_size)
        return MQTT_RC_PACKET_TOO_LARGE;
    memset(out, 0, sizeof(*out));
    out->type = (enum mqtt_type)(buf[0] >> 4);
    out->flags = buf[0] & 0x0F;
    int rc = check_header(codec, (uint8_t)out->type, out->flags);
    if (rc)
        return rc;
    if (len < total)
        return MQTT_INCOMPLETE;
    struct rd r = {buf + 1 + n, buf + total};
    rc = ops[out->type].decode(codec, &r, out->flags, out);
    if (rc == 0)
        *used = total;
    return rc;
}

static uint8_t first_byte(const struct mqtt_packet *p)
{
    if (p->type == MQTT_PUBLISH) {
        const struct mqtt_publish *pub = &p->u.publish;
        return (uint8_t)(MQTT_PUBLISH << 4 | (pub->dup ? 8 : 0) | (pub->qos << 1) |
                         (pub->retain ? 1 : 0));
    }
    return (uint8_t)(p->type << 4 | ops[p->type].fixed_flags);
}

/* see mqtt.h */
size_t mqtt_encoded_size(const struct mqtt_codec *codec, const struct mqtt_packet *p)
{
    if ((unsigned)p->type > 15 || !ops[p->type].size)
        return 0;
    size_t rl = ops[p->type].size(codec, p);
    if (rl > 268435455u)
        return 0;
    return 1 + mqtt_vbi_size((uint32_t)rl) + rl;
}

/* see mqtt.h */
size_t mqtt_encode(const struct mqtt_codec *codec, const struct mqtt_packet *p, uint8_t *out,
                   size_t cap)
{
    size_t total = mqtt_encoded_size(codec, p);
    if (total == 0 || total > cap)
        return 0;
    struct wr w = {out};
    wr_u8(&w, first_byte(p));
    wr_vbi(&w, (uint32_t)ops[p->type].size(codec, p));
    ops[p->type].write(codec, p, &w);
    return (size_t)(w.p - out) == total ? total : 0;
}

/* see mqtt.h */
const char *mqtt_type_name(enum mqtt_type t)
{
    static const char *const names[16] = {"RESERVED",  "CONNECT",  "CONNACK",     "PUBLISH",
                                          "PUBACK",    "PUBREC",   "PUBREL",      "PUBCOMP",
                                          "SUBSCRIBE", "SUBACK",   "UNSUBSCRIBE", "UNSUBACK",
                                          "PINGREQ",   "PINGRESP", "DISCONNECT",  "AUTH"};
    return (unsigned)t < 16 ? names[t] : "UNKNOWN";
}

/* see mqtt.h */
const char *mqtt_rc_name(uint8_t rc)
{
    static const struct {
        uint8_t rc;
        const char *name;
    } names[] = {
        {0x00, "success"},
        {0x01, "granted QoS 1"},
        {0x02, "granted QoS 2"},
        {0x04, "disconnect with will message"},
        {0x10, "no matching subscribers"},
        {0x11, "no subscription existed"},
        {0x18, "continue authentication"},
        {0x19, "re-authenticate"},
        {0x80, "unspecified error"},
        {0x81, "malformed packet"},
        {0x82, "protocol error"},
        {0x83, "implementation specific error"},
        {0x84, "unsupported protocol version"},
        {0x85, "client identifier not valid"},
        {0x86, "bad user name or password"},
        {0x87, "not authorized"},
        {0x88, "server unavailable"},
        {0x89, "server busy"},
        {0x8A, "banned"},
        {0x8B, "server shutting down"},
        {0x8C, "bad authentication method"},
        {0x8D, "keep alive timeout"},
        {0x8E, "session taken over"},
        {0x8F, "topic filter invalid"},
        {0x90, "topic name invalid"},
        {0x91, "packet identifier in use"},
        {0x92, "packet identifier not found"},
        {0x93, "receive maximum exceeded"},
        {0x94, "topic alias invalid"},
        {0x95, "packet too large"},
        {0x96, "message rate too high"},
        {0x97, "quota exceeded"},
        {0x98, "administrative action"},
        {0x99, "payload format invalid"},
        {0x9A, "retain not supported"},
        {0x9B, "QoS not supported"},
        {0x9C, "use another server"},
        {0x9D, "server moved"},
        {0x9E, "shared subscriptions not supported"},
        {0x9F, "connection rate exceeded"},
        {0xA0, "maximum connect time"},
        {0xA1, "subscription identifiers not supported"},
        {0xA2, "wildcard subscriptions not supported"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].rc == rc)
            return names[i].name;
    return "unknown reason";
}

/* see mqtt.h */
const char *mqtt_connack_name(uint8_t version, uint8_t rc)
{
    /* MQTT 3.1.1 section 3.2.2.3: the six return codes of a 3.1.1 CONNACK. */
    static const char *const v311[] = {
        "connection accepted", "unacceptable protocol version", "identifier rejected",
        "server unavailable",  "bad user name or password",     "not authorized",
    };
    if (version == MQTT_V5)
        return mqtt_rc_name(rc);
    return rc < sizeof(v311) / sizeof(v311[0]) ? v311[rc] : "unknown return code";
}
