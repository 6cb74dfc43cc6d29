/* The broker's protocol handling: one handler per packet type, chosen
 * through a table, plus connection life cycle, housekeeping and $SYS. */
#include "broker/broker.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "broker/internal.h"
#include "broker/login.h"
#include "broker/nats.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/recent.h"
#include "core/vec.h"

#define MQTT_MAX_PACKET 268435460u

void broker_config_defaults(struct broker_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_packet_size = 1u << 20;
    cfg->max_inflight = 1024;
    cfg->receive_max = 1024;
    cfg->overload = BROKER_OVERLOAD_BACKPRESSURE;
    cfg->max_queued = 1000;
    cfg->max_topic_levels = 128;
    cfg->max_keepalive = 65535;
    cfg->topic_alias_max = 10;
    cfg->max_qos = 2;
    cfg->retain_available = true;
    cfg->keepalive_multiplier = 1.5;
    cfg->sys_interval_s = 10;
    cfg->connect_timeout_ms = 10000;
    cfg->max_filters_per_subscribe = 1000;
    cfg->max_subscriptions = 10000;
    cfg->max_session_expiry_s = 86400;
    cfg->max_sessions = 200000;
    cfg->packet_timeout_ms = 60000;
    /* system.memory_limit's automatic value: three quarters of the
     * machine's memory, at most 4 GiB (what the configuration key holds). */
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    uint64_t total = pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
    cfg->memory_limit = total / 4 * 3 > 0xFFFFFFFFull ? 0xFFFFFFFFull : total / 4 * 3;
    cfg->max_retained_messages = 100000;
    cfg->max_retained_bytes = 256u << 20;
}

/* ---- sending ------------------------------------------------------------ */

/* Acknowledgements go through persist_ack (persist.c): after the commit. */

static uint32_t topic_levels(const uint8_t *t, size_t len)
{
    uint32_t n = 1;
    for (size_t i = 0; i < len; i++)
        n += t[i] == '/';
    return n;
}

/* ---- CONNECT ------------------------------------------------------------ */

static void connack(struct client *c, bool present, uint8_t rc, const struct mqtt_props *props)
{
    struct mqtt_packet p = {.type = MQTT_CONNACK};
    p.u.connack.session_present = present;
    p.u.connack.reason = rc;
    if (props)
        p.u.connack.props = *props;
    client_send(c, &p);
}

/* Refuses a CONNECT: CONNACK with the v5 reason or 3.1.1 return code. */
static void refuse(struct client *c, uint8_t rc5, uint8_t rc311, const char *why)
{
    log_notice("%s: connection refused: %s", CLIENT_NAME(c), why);
    connack(c, false, c->codec.version == MQTT_V5 ? rc5 : rc311, NULL);
    client_close(c, why);
}

/* Ends a session: a will still pending goes out first (MQTT-3.1.3-9: a
 * delayed will is sent when the session ends before the delay). */
static void end_session(struct broker *b, struct session *s)
{
    if (s->will && !b->shutting_down)
        route_internal(b, s->will);
    persist_session_end(b, s);
    session_end(b, s);
}

static void take_over(struct broker *b, struct session *s, bool clean)
{
    struct client *old = s->c;
    log_notice("%s: session taken over by a new connection", CLIENT_NAME(old));
    /* MQTT-3.1.4-3: the existing connection is closed; v5 says why. */
    client_kick(old, MQTT_RC_SESSION_TAKEN_OVER, "session taken over");
    client_label_keep(old); /* its label was made from the session */
    old->s = NULL;
    s->c = NULL;
    /* The old connection ended abnormally: its will goes out now unless the
     * session continues and the will was delayed (MQTT 5 3.1.3.2.2). One
     * that sent a normal DISCONNECT (and is only draining its output) ended
     * normally: its will is discarded (MQTT-3.14.4-3). */
    if (s->will && !old->normal_disconnect && (clean || s->will_delay_s == 0))
        route_internal(b, s->will);
    if (s->will) {
        msg_unref(s->will);
        s->will = NULL;
    }
}

static int make_will(struct client *c, struct session *s, const struct mqtt_connect *ck)
{
    struct broker *b = c->b;
    if (!ck->will_flag)
        return 0;
    if (topic_levels(ck->will_topic.p, ck->will_topic.len) > b->cfg.max_topic_levels)
        return MQTT_RC_TOPIC_NAME_INVALID;
    if (ck->will_qos > b->cfg.max_qos)
        return MQTT_RC_QOS_NOT_SUPPORTED;
    if (ck->will_retain && !b->cfg.retain_available)
        return MQTT_RC_RETAIN_NOT_SUPPORTED;
    /* The will is published in the client's name: its ACL applies. A will
     * the client may not publish is dropped here, and the client told in
     * the log rather than refused, as a PUBLISH would be. */
    if (!session_allowed(b, s, ACL_PUBLISH, (const char *)ck->will_topic.p, ck->will_topic.len)) {
        b->st.acl_denied++;
        log_notice("%s: will on '%.*s' not authorized; dropped", CLIENT_NAME(c),
                   (int)ck->will_topic.len, ck->will_topic.p);
        return 0;
    }
    s->will =
        msg_new(ck->will_topic.p, ck->will_topic.len, ck->will_payload.p, ck->will_payload.len,
                ck->will_qos, ck->will_retain, &ck->will_props, s->id, clock_mono_ms());
    s->will_delay_s = ck->will_props.will_delay;
    return s->will ? 0 : MQTT_RC_UNSPECIFIED;
}

/* A server-assigned client id: 128 bits from the kernel's CSPRNG, so one
 * client cannot predict (and take over) another's session. */
static bool assign_id(char *out, size_t len)
{
    uint64_t r[2];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return false;
    snprintf(out, len, "ward-%016" PRIx64 "%016" PRIx64, r[0], r[1]);
    return true;
}

/* A session lifetime within mqtt.max_session_expiry. */
static uint32_t clamp_expiry(const struct broker *b, uint32_t requested)
{
    uint32_t max = b->cfg.max_session_expiry_s;
    return max && requested > max ? max : requested;
}

static void connack_props(struct client *c, const struct mqtt_connect *ck, const char *assigned,
                          struct mqtt_props *pr)
{
    struct broker *b = c->b;
    memset(pr, 0, sizeof(*pr));
    pr->present = MQTT_HAS(MQTT_PROP_RECEIVE_MAX) | MQTT_HAS(MQTT_PROP_TOPIC_ALIAS_MAX) |
                  MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE);
    pr->receive_max = b->cfg.receive_max;
    pr->topic_alias_max = b->cfg.topic_alias_max;
    pr->max_packet_size = b->cfg.max_packet_size;
    /* MQTT 5 3.2.2.3.2: a lifetime other than the one asked is announced. */
    uint32_t asked =
        (ck->props.present & MQTT_HAS(MQTT_PROP_SESSION_EXPIRY)) ? ck->props.session_expiry : 0;
    if (c->s && c->s->expiry_s != asked) {
        pr->present |= MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
        pr->session_expiry = c->s->expiry_s;
    }
    if (b->cfg.max_qos < 2) {
        pr->present |= MQTT_HAS(MQTT_PROP_MAX_QOS);
        pr->max_qos = b->cfg.max_qos;
    }
    if (!b->cfg.retain_available) {
        pr->present |= MQTT_HAS(MQTT_PROP_RETAIN_AVAILABLE);
        pr->retain_available = 0;
    }
    if (assigned) {
        pr->present |= MQTT_HAS(MQTT_PROP_ASSIGNED_CLIENT_ID);
        pr->assigned_client_id =
            (struct mqtt_str){(const uint8_t *)assigned, (uint16_t)strlen(assigned)};
    }
    /* MQTT-3.2.2-21: the server's keep alive replaces the client's. */
    if (ck->keep_alive > b->cfg.max_keepalive ||
        (ck->keep_alive == 0 && b->cfg.max_keepalive < 65535)) {
        pr->present |= MQTT_HAS(MQTT_PROP_SERVER_KEEP_ALIVE);
        pr->server_keep_alive = b->cfg.max_keepalive;
        c->keepalive = b->cfg.max_keepalive;
    }
}

static void read_connect_props(struct client *c, const struct mqtt_connect *ck)
{
    const struct mqtt_props *pr = &ck->props;
    c->recv_max = 65535;
    c->request_problem_info = true;
    if (pr->present & MQTT_HAS(MQTT_PROP_RECEIVE_MAX))
        c->recv_max = pr->receive_max;
    if (pr->present & MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE))
        c->max_packet = pr->max_packet_size;
    if (pr->present & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS_MAX))
        c->alias_max = pr->topic_alias_max;
    if (pr->present & MQTT_HAS(MQTT_PROP_REQUEST_PROBLEM_INFO))
        c->request_problem_info = pr->request_problem_info;
}

/* Attaches the connection to its session (found, taken over or new).
 * Returns the session, or NULL on allocation failure. */
static struct session *attach(struct client *c, const char *id, bool clean, bool *present,
                              bool *full)
{
    struct broker *b = c->b;
    struct session *s = session_find(b, id);
    /* A session belongs to the identity that made it: another identity may
     * neither resume, discard nor take it over (the caller checked). */
    /* A session that lasts only as long as its connection (3.1.1 clean
     * session, v5 expiry 0) ends with the connection taken over here, so
     * the newcomer never inherits it (MQTT-3.1.2-6, 3.1.2.11.2). */
    bool ends = s && (clean || s->expiry_s == 0);
    if (s && s->c)
        take_over(b, s, ends);
    if (s && ends) {
        end_session(b, s);
        s = NULL;
    }
    *present = s != NULL;
    if (!s && b->nsessions >= b->cfg.max_sessions) {
        *full = true;
        return NULL;
    }
    if (!s && !(s = session_new(b, id)))
        return NULL;
    session_offline_remove(b, s);
    if (s->will) { /* reconnected within the will delay: no will (MQTT 5 3.1.3.2.2) */
        msg_unref(s->will);
        s->will = NULL;
    }
    s->will_at = 0;
    if (!s->owner && !session_set_owner(s, client_owner(c))) {
        session_offline_add(b, s);
        return NULL;
    }
    s->c = c;
    c->s = s;
    return s;
}

/* The user name access control may use: the certificate's (with
 * peer_cert_as_username), or the CONNECT's once its password was checked;
 * NULL otherwise. A name that was sent but not verified is logged and
 * ignored (docs/security.md). */
static const char *verified_user(struct client *c, const struct mqtt_connect *ck, char *buf,
                                 size_t cap)
{
    if (client_cert_user(c))
        return client_cert_user(c);
    if (!ck->has_username)
        return NULL;
    if (!c->user_verified) {
        log_notice("%s: user name '%.*s' ignored: its password was not checked", CLIENT_NAME(c),
                   (int)ck->username.len, ck->username.p);
        return NULL;
    }
    snprintf(buf, cap, "%.*s", (int)ck->username.len, ck->username.p);
    return buf;
}

/* Who owns the sessions this connection makes: a verified user, else a
 * verified certificate's subject, else nobody in particular (anonymous). */
static bool set_owner(struct client *c, const char *user)
{
    char owner[600];
    if (c->internal)
        snprintf(owner, sizeof(owner), "internal");
    else if (user)
        snprintf(owner, sizeof(owner), "user:%s", user);
    else if (c->has_cert)
        snprintf(owner, sizeof(owner), "cert:%s", c->cert->dn);
    else
        owner[0] = '\0';
    return client_set_owner(c, owner);
}

/* clientid_must_match (listener): 0 when the client id is acceptable. */
static const char *id_mismatch(struct client *c, const char *id, const char *user)
{
    switch (c->b->listener_idmatch[net_conn_listener(c->nc) % 64]) {
    case BROKER_ID_MATCH_USERNAME:
        return user && strcmp(user, id) == 0 ? NULL
                                             : "the client id must be the verified user name";
    case BROKER_ID_MATCH_CERT_CN:
        return c->has_cert && strcmp(c->cert->cn, id) == 0
                   ? NULL
                   : "the client id must be the certificate's common name";
    case BROKER_ID_MATCH_NONE:
    default:
        return NULL;
    }
}

/* A session of this id held by another identity (MQTT leaves who may
 * resume a session to the server: here, only its owner). */
static bool owned_by_other(struct client *c, const char *id)
{
    struct session *s = session_find(c->b, id);
    return s && s->owner && strcmp(s->owner, client_owner(c)) != 0;
}

static int dup_opt(char **dst, const char *src)
{
    free(*dst);
    *dst = NULL;
    return src && *src && !(*dst = strdup(src)) ? -1 : 0;
}

/* Records who the session's client is now, for ACL checks: the user name
 * (from the certificate with peer_cert_as_username), CN and OU. */
static int set_identity(struct client *c, struct session *s, const char *user)
{
    if (dup_opt(&s->username, user) < 0)
        return -1;
    if (dup_opt(&s->cert_cn, c->has_cert ? c->cert->cn : NULL) < 0 ||
        dup_opt(&s->cert_ou, c->has_cert ? c->cert->ou : NULL) < 0)
        return -1;
    return 0;
}

static void connect_packet(struct client *c, struct mqtt_packet *pkt)
{
    struct broker *b = c->b;
    struct mqtt_connect *ck = &pkt->u.connect;
    char id[256], assigned[64];
    bool v5 = ck->version == MQTT_V5, present = false, gave_id = false;
    c->codec.version = ck->version;
    if (v5)
        read_connect_props(c, ck);
    client_label(c, "client '%.*s' (%s)", (int)ck->client_id.len, ck->client_id.p,
                 net_conn_peer(c->nc));
    if (v5 && (ck->props.present & MQTT_HAS(MQTT_PROP_AUTH_METHOD)))
        return refuse(c, MQTT_RC_BAD_AUTH_METHOD, 0, "no enhanced authentication method");
    client_read_cert(c);
    if (c->has_cert && c->cert->ambiguous)
        return refuse(c, MQTT_RC_NOT_AUTHORIZED, MQTT_RC311_NOT_AUTHORIZED,
                      "the certificate's names are ambiguous (a NUL or control character, a "
                      "repeated CN or OU, or too long): no identity can be taken from it");
    if (client_cert_clientid(c)) { /* peer_cert_as_clientid: the certificate names the client */
        snprintf(id, sizeof(id), "%s", client_cert_clientid(c));
    } else if (ck->client_id.len == 0) {
        /* MQTT-3.1.3-8: 3.1.1 needs clean session for a server-made id. */
        if (!v5 && !ck->clean_start)
            return refuse(c, 0, MQTT_RC311_IDENTIFIER_REJECTED,
                          "empty client id without clean session");
        if (!assign_id(assigned, sizeof(assigned)))
            return refuse(c, MQTT_RC_SERVER_UNAVAILABLE, MQTT_RC311_SERVER_UNAVAILABLE,
                          "no random bytes for a client id");
        snprintf(id, sizeof(id), "%s", assigned);
        gave_id = v5;
    } else if (ck->client_id.len >= sizeof(id)) {
        return refuse(c, MQTT_RC_CLIENT_ID_NOT_VALID, MQTT_RC311_IDENTIFIER_REJECTED,
                      "client id longer than 255 bytes");
    } else {
        memcpy(id, ck->client_id.p, ck->client_id.len);
        id[ck->client_id.len] = '\0';
    }
    client_label(c, "client '%s' (%s)", id, net_conn_peer(c->nc));
    /* "$bridge/NAME" belongs to this broker's own bridges: a client taking
     * it over would cut a bridge off. */
    if (!c->internal && strncmp(id, "$bridge/", 8) == 0)
        return refuse(c, MQTT_RC_CLIENT_ID_NOT_VALID, MQTT_RC311_IDENTIFIER_REJECTED,
                      "client ids starting with $bridge/ are reserved for bridges");
    if (b->auth && (!c->auth_done || c->auth_cause != AUTH_OK)) {
        b->st.auth_failures++;
        recent_refusal(net_conn_listener(c->nc), CLIENT_NAME(c), auth_cause_text(c->auth_cause));
        return refuse(c, auth_reason(c->auth_cause), auth_reason311(c->auth_cause),
                      auth_cause_text(c->auth_cause));
    }
    char ubuf[256];
    const char *user = verified_user(c, ck, ubuf, sizeof(ubuf));
    const char *bad_id = id_mismatch(c, id, user);
    if (bad_id)
        return refuse(c, MQTT_RC_CLIENT_ID_NOT_VALID, MQTT_RC311_IDENTIFIER_REJECTED, bad_id);
    if (!set_owner(c, user))
        return refuse(c, MQTT_RC_SERVER_UNAVAILABLE, MQTT_RC311_SERVER_UNAVAILABLE,
                      "out of memory");
    if (owned_by_other(c, id)) {
        b->st.auth_failures++;
        return refuse(c, MQTT_RC_NOT_AUTHORIZED, MQTT_RC311_NOT_AUTHORIZED,
                      "the client id's session belongs to another identity");
    }
    c->keepalive = ck->keep_alive;
    bool full = false;
    struct session *s = attach(c, id, ck->clean_start, &present, &full);
    if (full) {
        b->st.sessions_refused++;
        return refuse(c, MQTT_RC_QUOTA_EXCEEDED, MQTT_RC311_SERVER_UNAVAILABLE,
                      "mqtt.max_sessions reached");
    }
    if (!s || set_identity(c, s, user) < 0)
        return refuse(c, MQTT_RC_SERVER_UNAVAILABLE, MQTT_RC311_SERVER_UNAVAILABLE,
                      "out of memory");
    s->trusted = c->internal;
    s->bridge = ck->bridge;
    /* Session lifetime: v5 session expiry, 3.1.1 clean session, at most
     * the server's maximum. */
    s->expiry_s = clamp_expiry(b, v5 ? ((ck->props.present & MQTT_HAS(MQTT_PROP_SESSION_EXPIRY))
                                            ? ck->props.session_expiry
                                            : 0)
                                     : (ck->clean_start ? 0 : SESSION_NEVER_EXPIRES));
    int rc = make_will(c, s, ck);
    if (rc)
        return refuse(c, (uint8_t)rc, MQTT_RC311_SERVER_UNAVAILABLE, "will not acceptable");
    struct mqtt_props pr;
    connack_props(c, ck, gave_id ? assigned : NULL, &pr);
    c->connected = true;
    client_label_drop(c); /* client_name makes it from s->id from now on */
    b->st.connects++;
    b->st.clients_connected++;
    if (b->st.clients_connected > b->st.clients_max)
        b->st.clients_max = b->st.clients_connected;
    connack(c, present, 0, v5 ? &pr : NULL);
    log_notice("%s connected: MQTT %s%s, clean start %d, keep alive %u, session present %d",
               CLIENT_NAME(c), v5 ? "5.0" : "3.1.1", ck->bridge ? " (bridge)" : "", ck->clean_start,
               c->keepalive, present);
    persist_connected(b, c, s);
    route_resend(b, c);
}

/* ---- PUBLISH and its acknowledgements ----------------------------------- */

/* Resolves a v5 topic alias (MQTT-3.3.2-7..12). Returns 0 or a reason. */
static int resolve_alias(struct client *c, struct mqtt_publish *pub)
{
    struct broker *b = c->b;
    if (!(pub->props.present & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS)))
        return 0;
    uint16_t a = pub->props.topic_alias;
    if (a == 0 || a > b->cfg.topic_alias_max)
        return MQTT_RC_TOPIC_ALIAS_INVALID;
    struct client_extra *x = client_extra(c);
    if (!x)
        return MQTT_RC_UNSPECIFIED;
    if (!x->alias_in) {
        x->alias_in = calloc(b->cfg.topic_alias_max + 1u, sizeof(*x->alias_in));
        x->alias_in_len = calloc(b->cfg.topic_alias_max + 1u, sizeof(*x->alias_in_len));
        if (!x->alias_in || !x->alias_in_len)
            return MQTT_RC_UNSPECIFIED;
    }
    if (pub->topic.len) {
        char *t = malloc(pub->topic.len);
        if (!t)
            return MQTT_RC_UNSPECIFIED;
        memcpy(t, pub->topic.p, pub->topic.len);
        free(x->alias_in[a]);
        x->alias_in[a] = t;
        x->alias_in_len[a] = pub->topic.len;
        return 0;
    }
    if (!x->alias_in[a])
        return MQTT_RC_PROTOCOL_ERROR; /* an alias never set */
    pub->topic = (struct mqtt_str){(const uint8_t *)x->alias_in[a], x->alias_in_len[a]};
    return 0;
}

/* Checks a PUBLISH against the broker's limits; 0 or a reason code. */
static int publish_allowed(struct client *c, const struct mqtt_publish *pub)
{
    struct broker *b = c->b;
    if (topic_levels(pub->topic.p, pub->topic.len) > b->cfg.max_topic_levels)
        return MQTT_RC_TOPIC_NAME_INVALID;
    if (pub->retain && !b->cfg.retain_available) /* MQTT-3.2.2-14 */
        return MQTT_RC_RETAIN_NOT_SUPPORTED;
    if (pub->qos > b->cfg.max_qos) /* MQTT-3.2.2-11 */
        return MQTT_RC_QOS_NOT_SUPPORTED;
    if (pub->qos == 2 && !session_rel_has(c->s, pub->packet_id) && c->s->nrel >= b->cfg.receive_max)
        return MQTT_RC_RECEIVE_MAX_EXCEEDED; /* MQTT-3.3.4-9 */
    return 0;
}

/* A PUBLISH the ACL forbids. MQTT 5 says so in the PUBACK/PUBREC (0x87);
 * 3.1.1 has no way to, so the flow completes normally (MQTT-3.3.5-2) and
 * the message goes nowhere. auth.deny_action = disconnect closes instead. */
static void publish_denied(struct client *c, const struct mqtt_publish *pub)
{
    struct broker *b = c->b;
    bool v5 = c->codec.version == MQTT_V5;
    b->st.acl_denied++;
    log_info("%s: PUBLISH to '%.*s' not authorized", CLIENT_NAME(c), (int)pub->topic.len,
             pub->topic.p);
    if (auth_deny_disconnects(b->auth))
        return client_kick(c, MQTT_RC_NOT_AUTHORIZED, "PUBLISH not authorized");
    if (pub->qos == 1)
        persist_ack(c, MQTT_PUBACK, pub->packet_id, v5 ? MQTT_RC_NOT_AUTHORIZED : 0);
    if (pub->qos == 2) {
        /* v5: a PUBREC >= 0x80 ends the exchange; 3.1.1 expects a PUBREL. */
        if (!v5 && persist_rel_add(b, c->s, pub->packet_id) < 0)
            return client_kick(c, MQTT_RC_UNSPECIFIED, "out of memory");
        persist_ack(c, MQTT_PUBREC, pub->packet_id, v5 ? MQTT_RC_NOT_AUTHORIZED : 0);
    }
}

/* A retained message the store's limits refused: it still goes to current
 * subscribers but is not kept for later ones. Counted for $SYS; logged at
 * most once a minute, as a publisher may retain into a full store at speed. */
static void retained_refused(struct broker *b, const struct msg *m)
{
    b->st.retained_dropped++;
    if (m->created_ms < b->retain_full_log_ms)
        return;
    b->retain_full_log_ms = m->created_ms + 60000;
    log_warn("retained store full (%zu messages, %zu bytes; limits %u messages, %" PRIu64
             " bytes): '%s' not kept (%" PRIu64 " refused so far)",
             retain_count(b->retained), retain_bytes(b->retained), b->cfg.max_retained_messages,
             b->cfg.max_retained_bytes, m->topic, b->st.retained_dropped);
}

/* Over system.memory_limit: v5 publishers hear 0x97 (quota exceeded);
 * 3.1.1 has no refusal but the close, so a 3.1.1 QoS 1/2 publisher is
 * disconnected; QoS 0 is dropped. All counted. */
static void publish_over_memory(struct client *c, const struct mqtt_publish *pub)
{
    struct broker *b = c->b;
    b->st.memory_refused++;
    if (pub->qos == 0)
        return;
    if (c->codec.version != MQTT_V5)
        return client_kick(c, MQTT_RC_QUOTA_EXCEEDED, "over system.memory_limit");
    persist_ack(c, pub->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, pub->packet_id,
                MQTT_RC_QUOTA_EXCEEDED);
}

static void handle_publish(struct client *c, struct mqtt_packet *pkt)
{
    struct broker *b = c->b;
    struct mqtt_publish *pub = &pkt->u.publish;
    int rc = resolve_alias(c, pub);
    if (!rc)
        rc = publish_allowed(c, pub);
    if (rc)
        return client_kick(c, (uint8_t)rc, "refused PUBLISH");
    if (b->over_memory && !c->internal)
        return publish_over_memory(c, pub);
    if (persist_refuse_full(c, pub))
        return;
    if (!session_allowed(b, c->s, ACL_PUBLISH, (const char *)pub->topic.p, pub->topic.len)) {
        b->st.msgs_in++;
        b->st.msgs_in_qos[pub->qos % 3]++;
        c->msgs_in++;
        return publish_denied(c, pub);
    }
    if (pub->qos == 2 && session_rel_has(c->s, pub->packet_id)) {
        /* A resend of a QoS 2 message we already have: ack, don't deliver. */
        persist_ack(c, MQTT_PUBREC, pub->packet_id, 0);
        return;
    }
    /* Clients may not publish into the broker's own $SYS tree. */
    bool sys = pub->topic.len >= 5 && memcmp(pub->topic.p, "$SYS/", 5) == 0;
    if (!sys) {
        struct msg *m =
            msg_from_publish(pub, pub->topic.p, pub->topic.len, c->s->id, clock_mono_ms());
        if (!m)
            return client_kick(c, MQTT_RC_UNSPECIFIED, "out of memory");
        b->flow_hit = FLOW_OK;
        if (!route_publish_or_wait(b, m, c->s)) {
            /* Backpressure: the packet stays in the input, undecoded, and
             * is handled again once the full receiver has room. */
            msg_unref(m);
            flow_throttle(b, c);
            c->hold = true;
            return;
        }
        if (pub->retain && persist_retain_set(b, m) == RETAIN_FULL)
            retained_refused(b, m);
        msg_unref(m);
    }
    b->st.msgs_in++;
    b->st.msgs_in_qos[pub->qos % 3]++;
    c->msgs_in++;
    /* mqtt.overload = reject: a receiver was full and the message was
     * dropped for it; a v5 publisher hears 0x97. */
    uint8_t ack = 0;
    if (!sys && b->flow_hit == FLOW_REJECT && c->codec.version == MQTT_V5)
        ack = MQTT_RC_QUOTA_EXCEEDED;
    if (pub->qos == 1)
        persist_ack(c, MQTT_PUBACK, pub->packet_id, ack);
    if (pub->qos == 2) {
        if (!ack && persist_rel_add(b, c->s, pub->packet_id) < 0)
            return client_kick(c, MQTT_RC_UNSPECIFIED, "out of memory");
        persist_ack(c, MQTT_PUBREC, pub->packet_id, ack);
    }
}

/* PUBACK (QoS 1) and PUBCOMP (QoS 2) complete an outbound delivery. */
static void complete(struct client *c, uint16_t pid, uint8_t qos, bool need_pubrel)
{
    struct session *s = c->s;
    struct delivery *d = delivery_find(&s->inflight, pid);
    if (!d || d->qos != qos || d->pubrel_sent != need_pubrel) {
        log_debug("%s: acknowledgement for unknown packet id %u ignored", CLIENT_NAME(c), pid);
        return;
    }
    session_inflight_take(c->b, s, pid);
    session_pid_release(s, pid);
    persist_delivery_done(c->b, s, d);
    delivery_free(d);
    route_pump(c->b, c);
    flow_check(c->b, c, false);
}

static void handle_puback(struct client *c, struct mqtt_packet *pkt)
{
    complete(c, pkt->u.ack.packet_id, 1, false);
}

static void handle_pubcomp(struct client *c, struct mqtt_packet *pkt)
{
    complete(c, pkt->u.ack.packet_id, 2, true);
}

static void handle_pubrec(struct client *c, struct mqtt_packet *pkt)
{
    uint16_t pid = pkt->u.ack.packet_id;
    struct delivery *d = delivery_find(&c->s->inflight, pid);
    if (d && d->qos == 2 && pkt->u.ack.reason >= 0x80) {
        /* MQTT 5 4.3.3: a failure code ends the exchange. */
        complete(c, pid, 2, false);
        return;
    }
    if (d && d->qos == 2) {
        d->pubrel_sent = true;
        persist_delivery_update(c->b, c->s, d);
    }
    persist_ack(c, MQTT_PUBREL, pid, d ? 0 : MQTT_RC_PACKET_ID_NOT_FOUND);
}

static void handle_pubrel(struct client *c, struct mqtt_packet *pkt)
{
    uint16_t pid = pkt->u.ack.packet_id;
    bool known = persist_rel_remove(c->b, c->s, pid);
    persist_ack(c, MQTT_PUBCOMP, pid, known ? 0 : MQTT_RC_PACKET_ID_NOT_FOUND);
}

/* ---- SUBSCRIBE UNSUBSCRIBE PINGREQ DISCONNECT AUTH ----------------------- */

struct retained_ctx {
    struct broker *b;
    struct client *c;
    uint8_t qos;
    uint32_t sub_id;
};

static void send_retained(void *ctx, struct msg *m)
{
    struct retained_ctx *r = ctx;
    uint8_t qos = m->qos < r->qos ? m->qos : r->qos;
    route_retained(r->b, r->c, m, qos, r->sub_id);
}

static uint8_t subscribe_one(struct client *c, const struct mqtt_subscription *sub, uint32_t sub_id,
                             bool *is_new)
{
    struct broker *b = c->b;
    /* MQTT-3.9.3: 3.1.1 has only "failure" (0x80) for a refused filter. */
    uint8_t invalid = c->codec.version == MQTT_V5 ? MQTT_RC_TOPIC_FILTER_INVALID : 0x80;
    struct mqtt_share sh;
    /* MQTT-4.8.2-1/2, in both versions: a malformed "$share/" filter is
     * refused on its own. The ACL and the level limit see the plain filter. */
    if (!mqtt_share_split(sub->filter.p, sub->filter.len, &sh)) {
        log_info("%s: SUBSCRIBE to '%.*s' refused: not a valid shared subscription", CLIENT_NAME(c),
                 (int)sub->filter.len, sub->filter.p);
        return invalid;
    }
    if (topic_levels(sh.filter, sh.filter_len) > b->cfg.max_topic_levels)
        return invalid;
    if (!session_allowed(b, c->s, ACL_SUBSCRIBE, (const char *)sh.filter, sh.filter_len)) {
        b->st.acl_denied++;
        log_info("%s: SUBSCRIBE to '%.*s' not authorized", CLIENT_NAME(c), (int)sub->filter.len,
                 sub->filter.p);
        /* MQTT-3.9.3: 0x87 in v5; 3.1.1 has only "failure" (0x80). */
        return c->codec.version == MQTT_V5 ? MQTT_RC_NOT_AUTHORIZED : 0x80;
    }
    uint8_t qos = MQTT_SUBOPT_QOS(sub->options);
    if (qos > b->cfg.max_qos)
        qos = b->cfg.max_qos;
    uint8_t opts = (uint8_t)((sub->options & ~0x03) | qos);
    if (c->s->nsubs >= b->cfg.max_subscriptions &&
        !session_has_sub(c->s, sub->filter.p, sub->filter.len)) {
        b->st.subs_refused++;
        log_notice("%s: SUBSCRIBE to '%.*s' refused: mqtt.max_subscriptions (%u) reached",
                   CLIENT_NAME(c), (int)sub->filter.len, sub->filter.p, b->cfg.max_subscriptions);
        return c->codec.version == MQTT_V5 ? MQTT_RC_QUOTA_EXCEEDED : 0x80;
    }
    /* A 3.1.1 bridge (protocol level 0x84, as Mosquitto's bridges send):
     * what it publishes is not sent back to it, and retained flags pass
     * through unchanged, so two brokers bridged both ways do not loop. */
    if (c->s->bridge)
        opts |= MQTT_SUBOPT_NO_LOCAL | MQTT_SUBOPT_RAP;
    int r = session_subscribe(b, c->s, sub->filter.p, sub->filter.len, opts, sub_id);
    if (r < 0)
        return MQTT_RC_UNSPECIFIED;
    persist_sub_put(b, c->s, sub->filter.p, sub->filter.len, opts, sub_id);
    *is_new = r == 1;
    return qos;
}

static void handle_subscribe(struct client *c, struct mqtt_packet *pkt)
{
    struct broker *b = c->b;
    struct mqtt_subscribe *sp = &pkt->u.subscribe;
    uint32_t sub_id = sp->props.sub_id_count ? sp->props.sub_ids[0] : 0;
    uint8_t *codes = malloc(sp->count);
    bool *fresh = calloc(sp->count, sizeof(bool));
    if (!codes || !fresh) {
        free(codes);
        free(fresh);
        return client_kick(c, MQTT_RC_UNSPECIFIED, "out of memory");
    }
    size_t pos = 0;
    struct mqtt_subscription sub;
    /* mqtt.max_filters_per_subscribe: the rest are refused unread, so one
     * packet cannot hold the broker lock for long. */
    uint8_t over = c->codec.version == MQTT_V5 ? MQTT_RC_QUOTA_EXCEEDED : 0x80;
    for (uint32_t i = 0; mqtt_subscribe_next(sp, &pos, &sub); i++)
        codes[i] =
            i < b->cfg.max_filters_per_subscribe ? subscribe_one(c, &sub, sub_id, &fresh[i]) : over;
    if (sp->count > b->cfg.max_filters_per_subscribe) {
        b->st.subs_refused += sp->count - b->cfg.max_filters_per_subscribe;
        log_notice("%s: SUBSCRIBE with %u filters: those past mqtt.max_filters_per_subscribe (%u) "
                   "refused",
                   CLIENT_NAME(c), sp->count, b->cfg.max_filters_per_subscribe);
    }
    struct mqtt_packet ack = {.type = MQTT_SUBACK};
    ack.u.suback.packet_id = sp->packet_id;
    ack.u.suback.reasons = (struct mqtt_bin){codes, sp->count};
    client_send(c, &ack);
    /* Retained messages after the SUBACK, per Retain Handling (3.8.3.1). */
    pos = 0;
    for (uint32_t i = 0; mqtt_subscribe_next(sp, &pos, &sub); i++) {
        uint8_t rh = MQTT_SUBOPT_RH(sub.options);
        struct mqtt_share sh;
        /* Retained messages are not sent for a shared subscription. */
        bool shared = !mqtt_share_split(sub.filter.p, sub.filter.len, &sh) || sh.group;
        if (codes[i] >= 0x80 || shared || rh == 2 || (rh == 1 && !fresh[i]))
            continue;
        struct retained_ctx r = {b, c, codes[i], sub_id};
        retain_match(b->retained, sub.filter.p, sub.filter.len, clock_mono_ms(), send_retained, &r);
    }
    free(codes);
    free(fresh);
}

static void handle_unsubscribe(struct client *c, struct mqtt_packet *pkt)
{
    struct mqtt_unsubscribe *up = &pkt->u.unsubscribe;
    uint8_t *codes = malloc(up->count);
    if (!codes)
        return client_kick(c, MQTT_RC_UNSPECIFIED, "out of memory");
    size_t pos = 0;
    struct mqtt_str f;
    for (uint32_t i = 0; mqtt_unsubscribe_next(up, &pos, &f); i++) {
        int r = session_unsubscribe(c->b, c->s, f.p, f.len);
        if (r)
            persist_sub_del(c->b, c->s, f.p, f.len);
        codes[i] = r ? MQTT_RC_SUCCESS : MQTT_RC_NO_SUBSCRIPTION_EXISTED;
    }
    struct mqtt_packet ack = {.type = MQTT_UNSUBACK};
    ack.u.suback.packet_id = up->packet_id;
    ack.u.suback.reasons = (struct mqtt_bin){codes, up->count};
    client_send(c, &ack);
    free(codes);
}

static void handle_pingreq(struct client *c, struct mqtt_packet *pkt)
{
    (void)pkt;
    struct mqtt_packet p = {.type = MQTT_PINGRESP};
    client_send(c, &p);
}

static void handle_disconnect(struct client *c, struct mqtt_packet *pkt)
{
    struct mqtt_disconnect *d = &pkt->u.disconnect;
    if (d->props.present & MQTT_HAS(MQTT_PROP_SESSION_EXPIRY)) {
        /* MQTT-3.14.2-2: not from zero to non-zero. */
        if (c->s->expiry_s == 0 && d->props.session_expiry != 0)
            return client_kick(c, MQTT_RC_PROTOCOL_ERROR, "session expiry set after 0");
        c->s->expiry_s = clamp_expiry(c->b, d->props.session_expiry);
    }
    /* MQTT-3.14.4-3: a normal DISCONNECT discards the will, except 0x04. */
    c->normal_disconnect = d->reason != MQTT_RC_DISCONNECT_WITH_WILL;
    client_close(c, "client disconnected");
}

static void handle_auth(struct client *c, struct mqtt_packet *pkt)
{
    (void)pkt;
    /* MQTT-4.12.0-1: AUTH without an authentication method in CONNECT. */
    client_kick(c, MQTT_RC_PROTOCOL_ERROR, "AUTH without an authentication method");
}

/* The certificate's copy is needed only while the CONNECT is handled. */
static void handle_connect(struct client *c, struct mqtt_packet *pkt)
{
    connect_packet(c, pkt);
    client_drop_cert(c);
}

typedef void (*packet_handler)(struct client *c, struct mqtt_packet *pkt);

static const packet_handler handlers[16] = {
    [MQTT_CONNECT] = handle_connect,     [MQTT_PUBLISH] = handle_publish,
    [MQTT_PUBACK] = handle_puback,       [MQTT_PUBREC] = handle_pubrec,
    [MQTT_PUBREL] = handle_pubrel,       [MQTT_PUBCOMP] = handle_pubcomp,
    [MQTT_SUBSCRIBE] = handle_subscribe, [MQTT_UNSUBSCRIBE] = handle_unsubscribe,
    [MQTT_PINGREQ] = handle_pingreq,     [MQTT_DISCONNECT] = handle_disconnect,
    [MQTT_AUTH] = handle_auth,
};

/* ---- decode errors ------------------------------------------------------ */

static void decode_failed(struct client *c, int rc, const struct mqtt_packet *pkt)
{
    if (c->connected)
        return client_kick(c, (uint8_t)rc, "bad packet");
    /* Before CONNACK: answer a CONNECT in the client's own version. */
    if (pkt->type == MQTT_CONNECT && rc == MQTT_RC_UNSUPPORTED_VERSION) {
        c->codec.version = pkt->u.connect.version == MQTT_V5 ? MQTT_V5 : MQTT_V311;
        return refuse(c, MQTT_RC_UNSUPPORTED_VERSION, MQTT_RC311_BAD_PROTOCOL_VERSION,
                      "unsupported protocol version");
    }
    if (pkt->type == MQTT_CONNECT && pkt->u.connect.version == MQTT_V5) {
        c->codec.version = MQTT_V5;
        return refuse(c, (uint8_t)rc, 0, "bad CONNECT");
    }
    log_notice("%s: %s before CONNECT (%s); closing", CLIENT_NAME(c), mqtt_type_name(pkt->type),
               mqtt_rc_name((uint8_t)rc));
    client_close(c, "bad first packet");
}

/* ---- net callbacks ------------------------------------------------------ */

static void *on_open(void *ctx, struct net_conn *nc)
{
    struct broker *b = ctx;
    struct client *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->b = b;
    c->nc = nc;
    c->codec.is_server = true;
    c->opened_ms = c->last_rx_ms = clock_mono_ms();
    client_label(c, "client from %s", net_conn_peer(nc));
    if (!c->label) {
        free(c);
        return NULL;
    }
    if (b->nats[net_conn_listener(nc) % 64] && !nats_open(b, c)) {
        nats_free(c);
        free(c->label);
        free(c);
        return NULL;
    }
    /* An in-process client (a bridge's local side) is part of the broker:
     * it needs no login, and no ACL applies to it. */
    if ((c->internal = net_conn_internal(nc))) {
        c->auth_done = true;
        c->auth_cause = AUTH_OK;
    }
    pthread_mutex_lock(&b->lock);
    if (b->shutting_down) { /* a handshake that ended after broker_shutdown */
        pthread_mutex_unlock(&b->lock);
        nats_free(c);
        free(c->label);
        free(c);
        return NULL;
    }
    /* Under the lock: broker_reconfigure() may change it on another thread. */
    c->codec.max_packet_size = b->cfg.max_packet_size;
    c->next = b->clients;
    if (b->clients)
        b->clients->prev = c;
    b->clients = c;
    b->listener_conns[net_conn_listener(nc) % 64]++;
    b->listener_opened[net_conn_listener(nc) % 64]++;
    pthread_mutex_unlock(&b->lock);
    return c;
}

/* Authenticates the CONNECT at the head of the input before the broker lock
 * is taken. Password hashing is slow on purpose, so it runs on auth's
 * hashing threads, never here on the I/O worker: returns false while the
 * check runs (the caller holds the input; the check resumes it), true when
 * on_data may go on (c->auth_done set, or no complete CONNECT yet). Only
 * this connection's worker touches these fields. */
static bool authenticate(struct client *c, const uint8_t *data, size_t len)
{
    if (c->auth_wait) {
        if (!client_auth_end(c, false))
            return false;
        c->auth_done = true;
        return true;
    }
    struct mqtt_packet pkt;
    size_t used;
    if (mqtt_decode(&c->codec, data, len, &pkt, &used) != 0 || pkt.type != MQTT_CONNECT)
        return true; /* incomplete (try again with more) or refused under the lock */
    const struct mqtt_connect *ck = &pkt.u.connect;
    char id[256];
    snprintf(id, sizeof(id), "%.*s", (int)ck->client_id.len, ck->client_id.p);
    int8_t anon = c->b->listener_anon[net_conn_listener(c->nc) % 64];
    client_read_cert(c);
    struct auth_request q = {
        .client_id = id,
        .peer = net_conn_peer(c->nc),
        .username = ck->has_username ? ck->username.p : NULL,
        .username_len = ck->username.len,
        .password = ck->has_password ? ck->password.p : NULL,
        .password_len = ck->password.len,
        .listener_anonymous = anon,
        .cert_identity = c->has_cert,
        .cert_and_password = (c->b->listener_password >> (net_conn_listener(c->nc) % 64)) & 1,
    };
    if (!client_auth_start(c, &q))
        return false;
    c->auth_done = true;
    return true;
}

/* Packets a throttled connection's input is searched for past a held
 * PUBLISH and handled at once: its acknowledgements of what we send it and
 * its pings. Without them a client that publishes and subscribes (or a
 * bridge) could wait forever on its own full queue. SUBSCRIBE, UNSUBSCRIBE
 * and DISCONNECT keep their place after the PUBLISH. */
static bool ahead_type(enum mqtt_type t)
{
    return t == MQTT_PUBACK || t == MQTT_PUBREC || t == MQTT_PUBREL || t == MQTT_PUBCOMP ||
           t == MQTT_PINGREQ;
}

/* Handles the ahead_type packets from `from` on, stepping over PUBLISHes,
 * until anything else or the end of what has arrived. Returns where it
 * stopped: everything before that has had its ahead_type packets handled. */
static size_t scan_ahead(struct client *c, const uint8_t *data, size_t len, size_t from)
{
    while (from < len && !c->closing) {
        struct mqtt_packet pkt;
        size_t used = 0;
        if (mqtt_decode(&c->codec, data + from, len - from, &pkt, &used) != 0)
            break;
        if (pkt.type != MQTT_PUBLISH && !ahead_type(pkt.type))
            break;
        if (pkt.type != MQTT_PUBLISH)
            handlers[pkt.type](c, &pkt);
        from += used;
    }
    return from;
}

static size_t on_data(void *user, const uint8_t *data, size_t len)
{
    struct client *c = user;
    struct broker *b = c->b;
    size_t off = 0;
    if (c->nats)
        return nats_data(c, data, len);
    if (b->auth && !c->auth_done && !c->connected && !authenticate(c, data, len)) {
        net_conn_hold_input(c->nc); /* until the password check resumes it */
        return 0;
    }
    pthread_mutex_lock(&b->lock);
    c->last_rx_ms = clock_mono_ms();
    size_t ahead = c->scanned; /* handled ahead on an earlier call */
    while (off < len && !c->closing) {
        struct mqtt_packet pkt;
        size_t used = 0;
        int rc = mqtt_decode(&c->codec, data + off, len - off, &pkt, &used);
        if (rc == MQTT_INCOMPLETE)
            break;
        if (rc != 0) {
            decode_failed(c, rc, &pkt);
            off = len;
            break;
        }
        if (off < ahead && ahead_type(pkt.type)) {
            off += used;
            continue;
        }
        if (pkt.type == MQTT_PUBLISH && c->throttled)
            c->hold = true;
        else
            handlers[pkt.type](c, &pkt);
        if (c->hold) { /* flow.c: the PUBLISH waits where it is */
            c->hold = false;
            ahead = scan_ahead(c, data, len, off > ahead ? off : ahead);
            net_conn_hold_input(c->nc);
            break;
        }
        off += used;
        b->st.bytes_in += used;
        c->bytes_in += used;
    }
    c->scanned = ahead > off ? (uint32_t)(ahead - off) : 0;
    /* A packet begun and not finished starts mqtt.packet_timeout's clock. */
    if (off == len)
        c->partial_since_ms = 0;
    else if (!c->partial_since_ms)
        c->partial_since_ms = c->last_rx_ms;
    /* `closing` is the broker lock's: another thread (a takeover, a kick,
     * shutdown) may set it once the lock is released. */
    bool closing = c->closing;
    pthread_mutex_unlock(&b->lock);
    return closing ? len : off;
}

/* The connection is gone: the session goes offline or ends, and an
 * abnormal end publishes the will (now, or after its delay). */
static void detach(struct broker *b, struct client *c)
{
    struct session *s = c->s;
    uint64_t now = clock_mono_ms();
    s->c = NULL;
    c->s = NULL;
    if (c->normal_disconnect && s->will) {
        msg_unref(s->will);
        s->will = NULL;
    }
    if (s->will && s->will_delay_s == 0 && !b->shutting_down) {
        route_internal(b, s->will);
        msg_unref(s->will);
        s->will = NULL;
    }
    if (s->will)
        s->will_at = now + (uint64_t)s->will_delay_s * 1000u;
    if (s->expiry_s == 0) {
        end_session(b, s);
        return;
    }
    if (s->expiry_s != SESSION_NEVER_EXPIRES)
        s->expire_at = now + (uint64_t)s->expiry_s * 1000u;
    session_offline_add(b, s);
    persist_session_sync(b, s);
}

static void client_free(struct client *c)
{
    struct client_extra *x = c->x;
    if (x && x->alias_in)
        for (uint32_t i = 0; i <= c->b->cfg.topic_alias_max; i++)
            free(x->alias_in[i]);
    if (x) {
        free(x->alias_in);
        free(x->alias_in_len);
        for (uint16_t i = 0; i < x->nalias_out; i++)
            free(x->alias_out[i]);
        free(x->alias_out);
    }
    client_drop_cert(c);
    free(c->owner);
    free(c->label);
    route_retained_forget(c);
    free(c->x);
    nats_free(c);
    free(c);
}

static bool external_left(const struct broker *b);

static void on_close(void *user, const char *why)
{
    struct client *c = user;
    struct broker *b = c->b;
    pthread_mutex_lock(&b->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        b->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    flow_forget(b, c);
    persist_client_gone(b, c);
    b->listener_conns[net_conn_listener(c->nc) % 64]--;
    if (c->connected) {
        b->st.clients_connected--;
        if (c->nats)
            b->st.nats_connected--;
        log_notice("%s disconnected: %s", CLIENT_NAME(c), why);
    }
    if (c->nats)
        nats_closed(c);
    else if (c->s)
        detach(b, c);
    if (b->shutting_down && !external_left(b)) /* broker_wait_flushed's wait is over */
        pthread_cond_broadcast(&b->quiet);
    pthread_mutex_unlock(&b->lock);
    if (c->auth_wait) /* a password check still running finishes into nothing */
        client_auth_end(c, true);
    client_free(c);
}

/* The client's output drained after refusing a PUBLISH. */
static void on_drain(void *user)
{
    struct client *c = user;
    struct broker *b = c->b;
    pthread_mutex_lock(&b->lock);
    if (c->s && c->connected && !c->closing)
        route_drained(b, c);
    else
        flow_check(b, c, true);
    pthread_mutex_unlock(&b->lock);
}

static const struct net_handler handler = {on_open, on_data, on_close, on_drain};

const struct net_handler *broker_net_handler(void)
{
    return &handler;
}

/* ---- housekeeping and $SYS ---------------------------------------------- */

static void sys_publish(struct broker *b, const char *topic, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sys_emit(void *ectx, const char *topic, const char *value);

static void sys_publish(struct broker *b, const char *topic, const char *fmt, ...)
{
    char payload[320];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(payload, sizeof(payload), fmt, ap);
    va_end(ap);
    struct msg *m =
        msg_new((const uint8_t *)topic, (uint16_t)strlen(topic), (const uint8_t *)payload,
                (uint32_t)n, 0, true, NULL, "$SYS", clock_mono_ms());
    if (!m)
        return;
    route_internal(b, m);
    msg_unref(m);
}

/* "certificate revoked" -> "certificate_revoked": one topic level. */
static void slug(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (; *in && n + 1 < cap; in++)
        out[n++] = (*in == ' ' || *in == '/' || *in == '+' || *in == '#') ? '_' : *in;
    out[n] = '\0';
}

static void publish_tls(struct broker *b, unsigned i)
{
    char topic[256], name[64];
    uint64_t counts[TLS_NCAUSES];
    tls_server_counters(b->tls[i], counts);
    for (int c = 0; c < TLS_NCAUSES; c++) {
        slug(tls_cause_name((enum tls_cause)c), name, sizeof(name));
        snprintf(topic, sizeof(topic), "$SYS/broker/tls/%s/handshake_failures/%s", b->tls_name[i],
                 name);
        sys_publish(b, topic, "%" PRIu64, counts[c]);
    }
    struct tls_expiry ex[32];
    int n = tls_server_expiries(b->tls[i], ex, 32);
    long cert = 0, ca = 100000, crl = 100000;
    for (int k = 0; k < n; k++) {
        if (strncmp(ex[k].what, "server certificate", 18) == 0)
            cert = ex[k].days;
        else if (strncmp(ex[k].what, "CRL", 3) == 0)
            crl = ex[k].days < crl ? ex[k].days : crl;
        else
            ca = ex[k].days < ca ? ex[k].days : ca;
    }
    snprintf(topic, sizeof(topic), "$SYS/broker/tls/%s/cert_days_left", b->tls_name[i]);
    sys_publish(b, topic, "%ld", cert);
    if (ca != 100000) {
        snprintf(topic, sizeof(topic), "$SYS/broker/tls/%s/ca_days_left", b->tls_name[i]);
        sys_publish(b, topic, "%ld", ca);
    }
    if (crl != 100000) {
        snprintf(topic, sizeof(topic), "$SYS/broker/tls/%s/crl_days_left", b->tls_name[i]);
        sys_publish(b, topic, "%ld", crl);
    }
}

static void publish_sys(struct broker *b, uint64_t now)
{
    const struct broker_stats *st = &b->st;
    sys_publish(b, "$SYS/broker/version", "ward %s", WARD_VERSION);
    sys_publish(b, "$SYS/broker/uptime", "%" PRIu64 " seconds", (now - b->started_ms) / 1000);
    sys_publish(b, "$SYS/broker/clients/connected", "%u", st->clients_connected);
    sys_publish(b, "$SYS/broker/clients/total", "%zu", b->nsessions);
    sys_publish(b, "$SYS/broker/clients/maximum", "%" PRIu64, st->clients_max);
    sys_publish(b, "$SYS/broker/messages/received", "%" PRIu64, st->msgs_in);
    sys_publish(b, "$SYS/broker/messages/sent", "%" PRIu64, st->msgs_out);
    sys_publish(b, "$SYS/broker/publish/messages/dropped", "%" PRIu64, st->dropped);
    sys_publish(b, "$SYS/broker/bytes/received", "%" PRIu64, st->bytes_in);
    sys_publish(b, "$SYS/broker/bytes/sent", "%" PRIu64, st->bytes_out);
    sys_publish(b, "$SYS/broker/subscriptions/count", "%zu", subtree_count(b->subs));
    /* Work counters (not timings): what removals examined in the tree. */
    sys_publish(b, "$SYS/broker/debug/subscriptions/removal_visits", "%" PRIu64,
                subtree_visits(b->subs));
    sys_publish(b, "$SYS/broker/retained messages/count", "%zu", retain_count(b->retained));
    sys_publish(b, "$SYS/broker/retained messages/dropped", "%" PRIu64, st->retained_dropped);
    sys_publish(b, "$SYS/broker/debug/retained/visits", "%" PRIu64, retain_visits(b->retained));
    sys_publish(b, "$SYS/broker/auth/failures", "%" PRIu64, st->auth_failures);
    sys_publish(b, "$SYS/broker/auth/denied", "%" PRIu64, st->acl_denied);
    sys_publish(b, "$SYS/broker/auth/hashes", "%" PRIu64, auth_hash_counts(b->auth).total);
    sys_publish(b, "$SYS/broker/auth/hashes_on_workers", "%" PRIu64,
                auth_hash_counts(b->auth).on_caller);
    sys_publish(b, "$SYS/broker/limits/sessions_refused", "%" PRIu64, st->sessions_refused);
    sys_publish(b, "$SYS/broker/limits/subscriptions_refused", "%" PRIu64, st->subs_refused);
    sys_publish(b, "$SYS/broker/limits/packet_timeouts", "%" PRIu64, st->packet_timeouts);
    sys_publish(b, "$SYS/broker/flow/throttled", "%" PRIu64, st->throttled);
    sys_publish(b, "$SYS/broker/flow/waiting", "%zu", b->nthrottled);
    sys_publish(b, "$SYS/broker/flow/slow_consumers", "%" PRIu64, st->slow_consumers);
    sys_publish(b, "$SYS/broker/limits/memory_refused", "%" PRIu64, st->memory_refused);
    sys_publish(b, "$SYS/broker/publish/messages/dropped/queue_full", "%" PRIu64,
                st->dropped_queue);
    sys_publish(b, "$SYS/broker/publish/messages/dropped/offline_queue_full", "%" PRIu64,
                st->dropped_offline);
    sys_publish(b, "$SYS/broker/publish/messages/dropped/output_full", "%" PRIu64,
                st->dropped_output);
    sys_publish(b, "$SYS/broker/publish/messages/dropped/too_large", "%" PRIu64, st->dropped_large);
    for (unsigned i = 0; i < b->nsys_src; i++)
        b->sys_src[i].fn(b->sys_src[i].ctx, sys_emit, b);
    for (unsigned i = 0; i < b->ntls; i++)
        publish_tls(b, i);
}

/* The housekeeping tick, and the longest the walks of the clients may be
 * apart. */
#define TICK_MS             100u
#define CLIENTS_WALK_MAX_MS 1000u

static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static uint32_t slow_consumer_ms(const struct client *c)
{
    return c->nc ? net_conn_slow_consumer_ms(c->nc) : 0;
}

/* One client's clocks. */
static void check_client(struct broker *b, struct client *c, uint64_t now)
{
    if (c->closing)
        return;
    if (c->nats) { /* NATS has its own clocks: PINGs, auth_timeout */
        nats_tick(b, c, now);
        if (!c->closing && c->partial_since_ms &&
            now - c->partial_since_ms > b->cfg.packet_timeout_ms) {
            b->st.packet_timeouts++;
            log_notice("%s: command not completed within packet_timeout; closing", CLIENT_NAME(c));
            client_close(c, "packet timeout");
        }
        return;
    }
    if (!c->connected && now - c->opened_ms > b->cfg.connect_timeout_ms) {
        log_notice("%s: no CONNECT within %u ms; closing", CLIENT_NAME(c),
                   b->cfg.connect_timeout_ms);
        client_close(c, "connect timeout");
        return;
    }
    if (flow_stalled(b, c, now)) {
        b->st.slow_consumers++;
        client_kick(c, MQTT_RC_QUOTA_EXCEEDED,
                    "slow consumer: its full queue held producers for slow_consumer_timeout");
        return;
    }
    /* Neither clock runs against a connection ward is not reading. */
    if (c->throttled)
        return;
    if (c->partial_since_ms && now - c->partial_since_ms > b->cfg.packet_timeout_ms) {
        b->st.packet_timeouts++;
        client_kick(c, MQTT_RC_KEEP_ALIVE_TIMEOUT, "packet not completed within packet_timeout");
        return;
    }
    uint64_t limit = (uint64_t)((double)c->keepalive * 1000.0 * b->cfg.keepalive_multiplier);
    /* MQTT-3.1.2-24: silent for 1.5 x keep alive: the will goes out. */
    if (c->connected && c->keepalive && now - c->last_rx_ms > limit)
        client_kick(c, MQTT_RC_KEEP_ALIVE_TIMEOUT, "keep alive timeout");
}

/* The earliest time check_client could act on c if nothing about c changes
 * before then: each clock fires at `since + limit + 1` (the checks are
 * `now - since > limit`). NATS clients (nats.c keeps their clocks) and
 * throttled ones (their clocks resume, maybe overdue) want every tick. */
static uint64_t client_due(const struct broker *b, const struct client *c, uint64_t now)
{
    if (c->closing)
        return UINT64_MAX;
    if (c->nats || c->throttled)
        return now + TICK_MS;
    uint64_t due = UINT64_MAX;
    if (!c->connected)
        due = c->opened_ms + b->cfg.connect_timeout_ms + 1;
    uint32_t slow = slow_consumer_ms(c);
    if (slow && c->s && !c->internal && c->s->blocking)
        due = min64(due, c->s->blocking_since_ms + slow + 1);
    if (c->partial_since_ms)
        due = min64(due, c->partial_since_ms + b->cfg.packet_timeout_ms + 1);
    uint64_t limit = (uint64_t)((double)c->keepalive * 1000.0 * b->cfg.keepalive_multiplier);
    if (c->connected && c->keepalive)
        due = min64(due, c->last_rx_ms + limit + 1);
    return due;
}

/* How far apart the walks may be: no further than the shortest clock a
 * client can start between two walks (a partial packet, a first keep-alive
 * of 1 s, a full queue), so the next walk sees it in time and schedules it
 * exactly. A new connection makes housekeeping walk at once. */
static uint64_t clients_walk_gap(const struct broker *b, uint32_t min_slow_ms)
{
    uint64_t gap = CLIENTS_WALK_MAX_MS;
    gap = min64(gap, b->cfg.packet_timeout_ms);
    gap = min64(gap, b->cfg.connect_timeout_ms);
    gap = min64(gap, (uint64_t)(1000.0 * b->cfg.keepalive_multiplier));
    gap = min64(gap, min_slow_ms);
    return gap < TICK_MS ? TICK_MS : gap;
}

/* Keep-alive, CONNECT, packet and slow-consumer timeouts. Walking every
 * client is the cost, so it happens when a clock is due, not every tick.
 * Returns when the next walk is needed. */
static uint64_t check_clients(struct broker *b, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    uint32_t min_slow = UINT32_MAX;
    for (struct client *c = b->clients; c; c = c->next) {
        check_client(b, c, now);
        uint32_t slow = slow_consumer_ms(c);
        if (slow && slow < min_slow)
            min_slow = slow;
        next = min64(next, client_due(b, c, now));
    }
    return min64(next, now + clients_walk_gap(b, min_slow));
}

/* What the last walk of the clients saw. A new connection goes first in the
 * list, and broker_reconfigure may shorten a clock: either means a walk now
 * rather than at the time the last one scheduled. */
struct clients_walk {
    uint64_t due;
    const struct client *head;
    uint32_t packet_ms, connect_ms;
    double keepalive_multiplier;
};

static bool clients_walk_needed(const struct broker *b, const struct clients_walk *w, uint64_t now)
{
    return now >= w->due || b->clients != w->head || b->cfg.packet_timeout_ms != w->packet_ms ||
           b->cfg.connect_timeout_ms != w->connect_ms ||
           b->cfg.keepalive_multiplier != w->keepalive_multiplier;
}

/* Only sessions whose deadline has come are looked at (session.h's heap):
 * each turn publishes a will or ends the session, so the loop is bounded by
 * the number of offline sessions. */
static void check_sessions(struct broker *b, uint64_t now)
{
    struct session *s;
    while ((s = session_deadline_due(b, now))) {
        if (s->will && s->will_at && now >= s->will_at) {
            route_internal(b, s->will);
            msg_unref(s->will);
            s->will = NULL;
            persist_session_sync(b, s);
        }
        if (s->expiry_s != SESSION_NEVER_EXPIRES && now >= s->expire_at)
            end_session(b, s);
        else
            session_deadline_update(b, s);
    }
}

/* Resident memory in bytes (0 if unknown). */
static uint64_t resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long long size = 0, rss = 0;
    if (!f)
        return 0;
    int n = fscanf(f, "%llu %llu", &size, &rss);
    fclose(f);
    return n == 2 ? (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

/* system.memory_limit: past it new publishes are refused; below 90% of it
 * they are taken again (a margin, so the state does not flap). */
static void check_memory(struct broker *b, uint64_t now)
{
    if (!b->cfg.memory_limit || now < b->next_memory_ms)
        return;
    b->next_memory_ms = now + 250;
    /* Reading /proc is a system call: not under the broker lock. */
    pthread_mutex_unlock(&b->lock);
    uint64_t rss = resident_bytes();
    pthread_mutex_lock(&b->lock);
    bool over = b->over_memory ? rss > b->cfg.memory_limit / 10 * 9 : rss > b->cfg.memory_limit;
    if (over != b->over_memory)
        log_warn("memory: %" PRIu64 " MiB resident, %s system.memory_limit (%" PRIu64 " MiB): %s",
                 rss >> 20, over ? "over" : "back under", b->cfg.memory_limit >> 20,
                 over ? "new publishes are refused" : "publishes are taken again");
    b->over_memory = over;
}

static void *housekeeping(void *arg)
{
    struct broker *b = arg;
    struct clients_walk walk = {0};
    pthread_mutex_lock(&b->lock);
    while (!b->stop) {
        uint64_t now = clock_mono_ms();
        if (clients_walk_needed(b, &walk, now)) {
            walk = (struct clients_walk){.due = check_clients(b, now),
                                         .head = b->clients,
                                         .packet_ms = b->cfg.packet_timeout_ms,
                                         .connect_ms = b->cfg.connect_timeout_ms,
                                         .keepalive_multiplier = b->cfg.keepalive_multiplier};
        }
        check_sessions(b, now);
        check_memory(b, now);
        if (b->cfg.sys_interval_s && now >= b->next_sys_ms) {
            publish_sys(b, now);
            b->next_sys_ms = now + b->cfg.sys_interval_s * 1000ull;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&b->wake, &b->lock, &ts);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

/* ---- life cycle ----------------------------------------------------------- */

/* persist.c's pump: after a commit, the PUBLISHes it held for it. */
static void pump_after_commit(struct broker *b, struct client *c)
{
    if (c->s && c->connected && !c->closing)
        route_drained(b, c);
}

struct broker *broker_new(const struct broker_config *cfg)
{
    struct broker *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->cfg = *cfg;
    b->persist_pump = pump_after_commit;
    if (b->cfg.max_packet_size > MQTT_MAX_PACKET)
        b->cfg.max_packet_size = MQTT_MAX_PACKET;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->wake, NULL);
    /* broker_wait_flushed's deadline must not move with the wall clock. */
    pthread_condattr_t mono;
    pthread_condattr_init(&mono);
    pthread_condattr_setclock(&mono, CLOCK_MONOTONIC);
    pthread_cond_init(&b->quiet, &mono);
    pthread_condattr_destroy(&mono);
    b->nbuckets = 16384;
    b->buckets = calloc(b->nbuckets, sizeof(*b->buckets));
    b->subs = subtree_new();
    b->retained = retain_new(b->cfg.max_retained_messages, (size_t)b->cfg.max_retained_bytes);
    b->started_ms = clock_mono_ms();
    memset(b->listener_anon, -1, sizeof(b->listener_anon));
    memset(b->listener_overload, -1, sizeof(b->listener_overload));
    b->started_max_packet = b->cfg.max_packet_size;
    if (!b->buckets || !b->subs || !b->retained) {
        broker_free(b);
        return NULL;
    }
    return b;
}

int broker_start(struct broker *b)
{
    if (pthread_create(&b->housekeeper, NULL, housekeeping, b) != 0)
        return -1;
    b->housekeeping = true;
    return 0;
}

void broker_shutdown(struct broker *b)
{
    pthread_mutex_lock(&b->lock);
    b->shutting_down = true;
    for (struct client *c = b->clients; c; c = c->next) {
        if (c->closing || c->internal) /* a bridge's: it stops on its own */
            continue;
        if (c->nats)
            nats_lame_duck(c);
        else if (c->connected)
            client_kick(c, MQTT_RC_SERVER_SHUTTING_DOWN, "server shutting down");
        else /* no CONNACK yet: MQTT has nothing to say to it (4.13) */
            client_close(c, "server shutting down");
    }
    pthread_cond_broadcast(&b->quiet);
    pthread_mutex_unlock(&b->lock);
}

/* Whether a client other than the in-process ones is left. */
static bool external_left(const struct broker *b)
{
    for (const struct client *c = b->clients; c; c = c->next)
        if (!c->internal)
            return true;
    return false;
}

/* see broker.h */
bool broker_wait_flushed(struct broker *b, uint32_t timeout_ms)
{
    struct timespec until = clock_mono_after(timeout_ms);
    bool timed_out = false;
    pthread_mutex_lock(&b->lock);
    /* A client leaves the list in on_close, which net calls once its
     * output (the DISCONNECT or lame duck INFO last) is written, or its
     * close grace period is over. */
    while (external_left(b) && !timed_out)
        timed_out = pthread_cond_timedwait(&b->quiet, &b->lock, &until) == ETIMEDOUT;
    /* The sessions that went offline wrote their rows in on_close: the
     * ticket is taken after the last of them. */
    uint64_t ticket = persist_flush(b);
    while (!persist_committed(b, ticket) && !timed_out)
        timed_out = pthread_cond_timedwait(&b->quiet, &b->lock, &until) == ETIMEDOUT;
    bool done = !external_left(b) && persist_committed(b, ticket);
    pthread_mutex_unlock(&b->lock);
    return done;
}

/* see broker.h */
void broker_stop(struct broker *b)
{
    if (!b || !b->housekeeping)
        return;
    pthread_mutex_lock(&b->lock);
    b->stop = true;
    pthread_cond_signal(&b->wake);
    pthread_mutex_unlock(&b->lock);
    pthread_join(b->housekeeper, NULL);
    b->housekeeping = false;
}

void broker_free(struct broker *b)
{
    if (!b)
        return;
    broker_stop(b);
    persist_detach(b);
    b->shutting_down = true;
    for (size_t i = 0; b->buckets && i < b->nbuckets; i++)
        while (b->buckets[i])
            session_end(b, b->buckets[i]);
    session_deadlines_free(b);
    subtree_free(b->subs);
    retain_free(b->retained);
    free(b->buckets);
    for (unsigned i = 0; i < 64; i++)
        free(b->nats[i]);
    free(b->matches);
    free(b->scratch);
    pthread_cond_destroy(&b->wake);
    pthread_cond_destroy(&b->quiet);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* ---- access control ----------------------------------------------------- */

void broker_set_auth(struct broker *b, struct auth *a)
{
    b->auth = a;
    b->acl_active = a && auth_has_rules(a);
}

void broker_set_listener_password(struct broker *b, unsigned listener, bool required)
{
    if (listener < 64)
        b->listener_password = required ? b->listener_password | (1ull << listener)
                                        : b->listener_password & ~(1ull << listener);
}

/* The index of s in names[n] (an enum's values by name), or -1. */
static int name_index(const char *const *names, int n, const char *s)
{
    for (int i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

int broker_overload_parse(const char *s)
{
    static const char *const names[] = {"backpressure", "drop", "reject"};
    return name_index(names, 3, s);
}

void broker_set_listener_overload(struct broker *b, unsigned listener, enum broker_overload o)
{
    if (listener < sizeof(b->listener_overload))
        b->listener_overload[listener] = (int8_t)o;
}

int broker_id_match_parse(const char *s)
{
    static const char *const names[] = {"none", "username", "cert_cn"};
    return name_index(names, 3, s);
}

void broker_set_listener_id_match(struct broker *b, unsigned listener, enum broker_id_match m)
{
    if (listener < sizeof(b->listener_idmatch))
        b->listener_idmatch[listener] = (uint8_t)m;
}

void broker_set_listener_anonymous(struct broker *b, unsigned listener, int allow)
{
    if (listener < sizeof(b->listener_anon))
        b->listener_anon[listener] = (int8_t)(allow < 0 ? -1 : allow > 0);
}

struct revoked_sub {
    struct session *s;
    char *filter; /* as subscribed, $share/GROUP/ included */
};

struct revoke_ctx {
    struct broker *b;
    struct revoked_sub *list;
    size_t n, cap;
};

static void collect_forbidden(void *ctx, const struct subtree_sub *sub)
{
    struct revoke_ctx *r = ctx;
    /* A NATS subscription stays: every message to it is checked anyway
     * (deliver_all), and NATS has no way to tell a client it lost one. */
    if (nats_sub_of(sub->owner))
        return;
    struct session *s = sub->owner;
    if (session_allowed(r->b, s, ACL_SUBSCRIBE, sub->filter, strlen(sub->filter)))
        return;
    if (!ward_ok(VEC_RESERVE(r->list, r->cap, r->n + 1)))
        return;
    char buf[1024];
    if (sub->group)
        snprintf(buf, sizeof(buf), "$share/%s/%s", sub->group, sub->filter);
    else
        snprintf(buf, sizeof(buf), "%s", sub->filter);
    if ((r->list[r->n].filter = strdup(buf)))
        r->list[r->n++].s = s;
}

/* see broker.h */
void broker_auth_reloaded(struct broker *b)
{
    struct revoke_ctx r = {b, NULL, 0, 0};
    pthread_mutex_lock(&b->lock);
    b->acl_active = b->auth && auth_has_rules(b->auth);
    if (b->auth)
        subtree_each(b->subs, collect_forbidden, &r);
    for (size_t i = 0; i < r.n; i++) {
        struct session *s = r.list[i].s;
        if (session_unsubscribe(b, s, (const uint8_t *)r.list[i].filter, strlen(r.list[i].filter)))
            persist_sub_del(b, s, (const uint8_t *)r.list[i].filter, strlen(r.list[i].filter));
        log_notice("session '%s': subscription '%s' removed: the new ACL forbids it", s->id,
                   r.list[i].filter);
        free(r.list[i].filter);
    }
    pthread_mutex_unlock(&b->lock);
    free(r.list);
}

/* see broker.h */
void broker_reconfigure(struct broker *b, const struct broker_config *n)
{
    pthread_mutex_lock(&b->lock);
    struct broker_config *c = &b->cfg;
    c->max_queued = n->max_queued;
    c->queue_full_policy = n->queue_full_policy;
    c->max_filters_per_subscribe = n->max_filters_per_subscribe;
    c->max_subscriptions = n->max_subscriptions;
    c->max_session_expiry_s = n->max_session_expiry_s;
    c->max_sessions = n->max_sessions;
    c->packet_timeout_ms = n->packet_timeout_ms;
    c->memory_limit = n->memory_limit;
    c->max_topic_levels = n->max_topic_levels;
    c->max_keepalive = n->max_keepalive;
    c->sys_interval_s = n->sys_interval_s;
    /* Net sized its input bound for the size the broker started with. */
    c->max_packet_size =
        n->max_packet_size < b->started_max_packet ? n->max_packet_size : b->started_max_packet;
    if (n->max_inflight != c->max_inflight || n->topic_alias_max != c->topic_alias_max ||
        n->max_qos != c->max_qos || n->retain_available != c->retain_available ||
        n->max_packet_size > b->started_max_packet)
        log_warn("reload: max_inflight_window, topic_alias_max, max_qos, retain_available and "
                 "a larger max_packet_size take effect after a restart");
    pthread_mutex_unlock(&b->lock);
}

/* see broker.h */
unsigned broker_kick_revoked(struct broker *b)
{
    unsigned n = 0;
    pthread_mutex_lock(&b->lock);
    for (struct client *c = b->clients; c; c = c->next)
        if (c->connected && !c->closing && net_conn_tls_revoked(c->nc)) {
            client_kick(c, MQTT_RC_NOT_AUTHORIZED, "certificate revoked by the reloaded CRL");
            n++;
        }
    pthread_mutex_unlock(&b->lock);
    return n;
}

static void sys_emit(void *ectx, const char *topic, const char *value)
{
    sys_publish(ectx, topic, "%s", value);
}

/* see broker.h */
void broker_add_sys_source(struct broker *b, broker_sys_source_fn fn, void *ctx)
{
    pthread_mutex_lock(&b->lock);
    if (b->nsys_src < sizeof(b->sys_src) / sizeof(b->sys_src[0])) {
        b->sys_src[b->nsys_src].fn = fn;
        b->sys_src[b->nsys_src++].ctx = ctx;
    }
    pthread_mutex_unlock(&b->lock);
}

/* see broker.h */
void broker_add_tls(struct broker *b, const char *name, struct tls_server *t)
{
    pthread_mutex_lock(&b->lock);
    if (b->ntls < sizeof(b->tls) / sizeof(b->tls[0])) {
        slug(name, b->tls_name[b->ntls], sizeof(b->tls_name[0]));
        b->tls[b->ntls++] = t;
    }
    pthread_mutex_unlock(&b->lock);
}
