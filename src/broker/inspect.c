/* Snapshots and actions for the admin API (see inspect.h). */
#include "broker/inspect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"
#include "core/clock.h"
#include "core/log.h"

/* see inspect.h */
void broker_inspect_counters(struct broker *b, struct broker_counters *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&b->lock);
    const struct broker_stats *st = &b->st;
    out->uptime_ms = clock_mono_ms() - b->started_ms;
    for (int q = 0; q < 3; q++) {
        out->msgs_in[q] = st->msgs_in_qos[q];
        out->msgs_out[q] = st->msgs_out_qos[q];
    }
    out->bytes_in = st->bytes_in;
    out->bytes_out = st->bytes_out;
    out->dropped_queue_full = st->dropped_queue;
    out->dropped_offline_full = st->dropped_offline;
    out->dropped_output_full = st->dropped_output;
    out->dropped_too_large = st->dropped_large;
    uint64_t known =
        st->dropped_queue + st->dropped_offline + st->dropped_output + st->dropped_large;
    out->dropped_other = st->dropped > known ? st->dropped - known : 0;
    out->retained_refused = st->retained_dropped;
    out->memory_refused = st->memory_refused;
    out->connects = st->connects;
    out->auth_failures = st->auth_failures;
    out->acl_denied = st->acl_denied;
    out->sessions_refused = st->sessions_refused;
    out->subs_refused = st->subs_refused;
    out->packet_timeouts = st->packet_timeouts;
    out->slow_consumers = st->slow_consumers;
    out->throttled = st->throttled;
    out->clients_connected = st->clients_connected;
    out->clients_max = (uint32_t)st->clients_max;
    out->nats_connected = st->nats_connected;
    memcpy(out->listener_conns, b->listener_conns, sizeof(out->listener_conns));
    memcpy(out->listener_opened, b->listener_opened, sizeof(out->listener_opened));
    out->sessions = b->nsessions;
    out->sessions_offline = b->noffline;
    out->subscriptions = subtree_count(b->subs);
    out->retained = retain_count(b->retained);
    out->retained_bytes = retain_bytes(b->retained);
    out->queued = st->queued;
    out->inflight = st->inflight;
    out->producers_waiting = (uint32_t)b->nthrottled;
    pthread_mutex_unlock(&b->lock);
}

static struct client *client_by_id(struct broker *b, const char *id);

static size_t cap_limit(size_t limit)
{
    return limit > BROKER_INSPECT_MAX_PAGE ? BROKER_INSPECT_MAX_PAGE : limit;
}

static int dup_or_null(char **dst, const char *src)
{
    *dst = NULL;
    if (!src || !src[0])
        return 0;
    return (*dst = strdup(src)) ? 0 : -1;
}

/* see inspect.h */
void broker_client_info_clear(struct broker_client_info *ci)
{
    free(ci->id);
    free(ci->username);
    free(ci->cert_cn);
    memset(ci, 0, sizeof(*ci));
}

/* A client that finished its CONNECT and is not on its way out. */
static bool listed(const struct client *c)
{
    return c->connected && c->s && !c->closing;
}

static uint64_t wall_of(uint64_t mono_ms, uint64_t now_mono, uint64_t now_wall)
{
    return now_wall - (now_mono > mono_ms ? now_mono - mono_ms : 0);
}

/* Copies one client; under the lock. Returns 0 or -1. */
static int client_copy(const struct client *c, struct broker_client_info *ci)
{
    memset(ci, 0, sizeof(*ci));
    const struct session *s = c->s;
    const char *user = s->username;
    if (c->nats && c->nats->user[0])
        user = c->nats->user;
    if (dup_or_null(&ci->id, s->id) < 0 || dup_or_null(&ci->username, user) < 0 ||
        dup_or_null(&ci->cert_cn, s->cert_cn) < 0 || !ci->id) {
        broker_client_info_clear(ci);
        return -1;
    }
    uint64_t now = clock_mono_ms(), wall = clock_wall_ms();
    snprintf(ci->peer, sizeof(ci->peer), "%s", net_conn_peer(c->nc));
    ci->listener = net_conn_listener(c->nc);
    ci->nats = c->nats != NULL;
    ci->internal = c->internal;
    ci->proto_ver = c->nats ? 0 : c->codec.version;
    ci->nats_cid = c->nats ? c->nats->cid : 0;
    ci->keepalive = c->keepalive;
    ci->expiry_s = s->expiry_s;
    ci->connected_at_ms = wall_of(c->opened_ms, now, wall);
    ci->last_activity_ms = wall_of(c->last_rx_ms, now, wall);
    ci->subscriptions = c->nats ? c->nats->nsubs : s->nsubs;
    ci->queued = s->queue.count;
    ci->inflight = s->inflight.count;
    ci->pending_bytes = net_conn_pending(c->nc);
    ci->msgs_in = c->msgs_in;
    ci->msgs_out = c->msgs_out;
    ci->bytes_in = c->bytes_in;
    ci->bytes_out = c->bytes_out;
    return 0;
}

/* see inspect.h */
int broker_inspect_clients(struct broker *b, const char *after, size_t offset, size_t limit,
                           bool nats_only, struct broker_client_info *out, size_t *total)
{
    limit = cap_limit(limit);
    size_t n = 0, seen = 0;
    int rc = 0;
    pthread_mutex_lock(&b->lock);
    *total = nats_only ? b->st.nats_connected : b->st.clients_connected;
    struct client *from = b->clients;
    if (after) {
        struct client *a = client_by_id(b, after);
        if (!a) {
            pthread_mutex_unlock(&b->lock);
            return -2;
        }
        from = a->next;
        offset = 0;
    }
    for (struct client *c = from; c && n < limit; c = c->next) {
        if (!listed(c) || (nats_only && !c->nats))
            continue;
        if (seen++ < offset)
            continue;
        if (client_copy(c, &out[n]) < 0) {
            rc = -1;
            break;
        }
        n++;
    }
    pthread_mutex_unlock(&b->lock);
    if (rc < 0) {
        for (size_t i = 0; i < n; i++)
            broker_client_info_clear(&out[i]);
        return -1;
    }
    return (int)n;
}

/* The listed client with this id; under the lock. */
static struct client *client_by_id(struct broker *b, const char *id)
{
    if (strncmp(id, "nats:", 5) != 0) {
        struct session *s = session_find(b, id);
        return s && s->c && listed(s->c) ? s->c : NULL;
    }
    /* NATS clients have no entry in the session table. */
    for (struct client *c = b->clients; c; c = c->next)
        if (c->nats && listed(c) && strcmp(c->s->id, id) == 0)
            return c;
    return NULL;
}

/* see inspect.h */
int broker_inspect_client(struct broker *b, const char *id, struct broker_client_info *out)
{
    pthread_mutex_lock(&b->lock);
    struct client *c = client_by_id(b, id);
    int rc = c ? client_copy(c, out) : 1;
    pthread_mutex_unlock(&b->lock);
    return rc;
}

/* Closes a client on the admin's word; under the lock. */
static void kick(struct client *c)
{
    if (c->nats)
        nats_out_err(c, "Kicked by the administrator", true);
    else
        client_kick(c, MQTT_RC_ADMIN_ACTION, "disconnected by the administrator");
}

/* see inspect.h */
int broker_kick_client(struct broker *b, const char *id)
{
    pthread_mutex_lock(&b->lock);
    struct client *c = client_by_id(b, id);
    if (c)
        kick(c);
    pthread_mutex_unlock(&b->lock);
    return c ? 0 : 1;
}

/* see inspect.h */
void broker_session_info_clear(struct broker_session_info *si)
{
    free(si->id);
    free(si->owner);
    memset(si, 0, sizeof(*si));
}

static int session_copy(const struct session *s, uint64_t now, struct broker_session_info *si)
{
    memset(si, 0, sizeof(*si));
    if (!(si->id = strdup(s->id)) || !(si->owner = strdup(s->owner ? s->owner : ""))) {
        broker_session_info_clear(si);
        return -1;
    }
    si->online = s->c != NULL;
    si->protocol = s->protocol;
    si->expiry_s = s->expiry_s;
    if (!si->online && s->expiry_s != SESSION_NEVER_EXPIRES && s->expire_at > now)
        si->expires_in_ms = s->expire_at - now;
    si->subscriptions = s->nsubs;
    si->queued = s->queue.count;
    si->inflight = s->inflight.count;
    si->will_pending = s->will != NULL;
    return 0;
}

/* A page walk over online sessions, then offline ones. */
struct walk {
    size_t offset, limit, seen, n;
    uint64_t now;
    struct broker_session_info *out;
    int rc;
};

/* Returns false once the page is full or a copy failed. */
static bool walk_one(struct walk *w, const struct session *s)
{
    if (w->seen++ < w->offset)
        return true;
    if (session_copy(s, w->now, &w->out[w->n]) < 0) {
        w->rc = -1;
        return false;
    }
    return ++w->n < w->limit;
}

/* see inspect.h */
/* Where a cursor page resumes: in the clients list, or (*online NULL) in
 * the offline list at *offline. False if the session is not listed. */
static bool resume_after(struct broker *b, const char *after, struct client **online,
                         struct session **offline)
{
    struct session *a = session_find(b, after);
    if (a && a->c && listed(a->c) && a->c->s == a) {
        *online = a->c->next;
        *offline = b->offline;
        return true;
    }
    if (a && a->offline_listed) {
        *online = NULL;
        *offline = a->onext;
        return true;
    }
    return false;
}

int broker_inspect_sessions(struct broker *b, const char *after, size_t offset, size_t limit,
                            struct broker_session_info *out, size_t *total)
{
    struct walk w = {.offset = after ? 0 : offset, .limit = cap_limit(limit), .out = out};
    pthread_mutex_lock(&b->lock);
    w.now = clock_mono_ms();
    *total = b->nsessions;
    struct client *online = b->clients;
    struct session *offline = b->offline;
    if (after && !resume_after(b, after, &online, &offline)) {
        pthread_mutex_unlock(&b->lock);
        return -2;
    }
    bool more = w.limit > 0;
    for (struct client *c = online; c && more; c = c->next)
        if (listed(c) && !c->nats && c->s->c == c)
            more = walk_one(&w, c->s);
    for (struct session *s = offline; s && more; s = s->onext)
        more = walk_one(&w, s);
    pthread_mutex_unlock(&b->lock);
    if (w.rc < 0) {
        for (size_t i = 0; i < w.n; i++)
            broker_session_info_clear(&out[i]);
        return -1;
    }
    return (int)w.n;
}

/* see inspect.h */
int broker_inspect_session(struct broker *b, const char *id, struct broker_session_info *out)
{
    pthread_mutex_lock(&b->lock);
    struct session *s = session_find(b, id);
    int rc = s ? session_copy(s, clock_mono_ms(), out) : 1;
    pthread_mutex_unlock(&b->lock);
    return rc;
}

/* see inspect.h */
int broker_end_session(struct broker *b, const char *id)
{
    pthread_mutex_lock(&b->lock);
    struct session *s = session_find(b, id);
    if (!s) {
        pthread_mutex_unlock(&b->lock);
        return 1;
    }
    struct client *c = s->c;
    if (c) {
        /* The connection goes; the session is no longer its to detach. */
        kick(c);
        client_label_keep(c); /* its label was made from the session */
        c->s = NULL;
        s->c = NULL;
    }
    log_notice("session '%s' ended by the administrator", id);
    /* A will still pending goes out as when the session expires
     * (MQTT-3.1.3-9). */
    if (s->will && !b->shutting_down)
        route_internal(b, s->will);
    persist_session_end(b, s);
    session_end(b, s);
    pthread_mutex_unlock(&b->lock);
    return 0;
}

/* see inspect.h */
void broker_sub_info_clear(struct broker_sub_info *si)
{
    free(si->client_id);
    free(si->topic);
    memset(si, 0, sizeof(*si));
}

/* A page of subscriptions, walked session by session (each keeps its own
 * filters and their options): the walk skips whole sessions up to the
 * offset and stops when the page is full. */
struct sub_walk {
    size_t offset, limit, seen, n;
    struct broker_sub_info *out;
    int rc;
};

static bool sub_add(struct sub_walk *w, const char *client_id, const char *topic, uint8_t qos,
                    bool nats)
{
    struct broker_sub_info *si = &w->out[w->n];
    memset(si, 0, sizeof(*si));
    si->nats = nats;
    si->qos = qos;
    if (!(si->client_id = strdup(client_id)) || !(si->topic = strdup(topic))) {
        broker_sub_info_clear(si);
        w->rc = -1;
        return false;
    }
    return ++w->n < w->limit;
}

/* One MQTT session's subscriptions; false once the page is full. */
static bool subs_of_session(struct sub_walk *w, const struct session *s)
{
    if (w->seen + s->nsubs <= w->offset) {
        w->seen += s->nsubs;
        return true;
    }
    for (uint32_t i = 0; i < s->nsubs; i++)
        if (w->seen++ >= w->offset &&
            !sub_add(w, s->id, s->subs[i], (uint8_t)(s->sub_opts[i] & 3u), false))
            return false;
    return true;
}

static bool subs_of_nats(struct sub_walk *w, const struct client *c)
{
    if (w->seen + c->nats->nsubs <= w->offset) {
        w->seen += c->nats->nsubs;
        return true;
    }
    for (const struct nats_sub *ns = c->nats->subs; ns; ns = ns->next)
        if (w->seen++ >= w->offset && !sub_add(w, c->s->id, ns->subject, 0, true))
            return false;
    return true;
}

/* Every subscription: online MQTT sessions, offline ones, NATS clients. */
static void subs_all(struct broker *b, struct sub_walk *w)
{
    bool more = true;
    for (struct client *c = b->clients; c && more; c = c->next)
        if (!c->nats && c->s && c->s->c == c)
            more = subs_of_session(w, c->s);
    for (struct session *s = b->offline; s && more; s = s->onext)
        more = subs_of_session(w, s);
    for (struct client *c = b->clients; c && more; c = c->next)
        if (c->nats && c->s)
            more = subs_of_nats(w, c);
}

/* see inspect.h */
int broker_inspect_subs(struct broker *b, const char *client_id, size_t offset, size_t limit,
                        struct broker_sub_info *out, size_t *total)
{
    struct sub_walk w = {.offset = offset, .limit = cap_limit(limit), .out = out};
    pthread_mutex_lock(&b->lock);
    *total = subtree_count(b->subs);
    if (client_id) {
        struct client *nc = strncmp(client_id, "nats:", 5) == 0 ? client_by_id(b, client_id) : NULL;
        struct session *s = nc ? NULL : session_find(b, client_id);
        *total = nc ? nc->nats->nsubs : s ? s->nsubs : 0;
        if (w.limit && nc)
            subs_of_nats(&w, nc);
        else if (w.limit && s)
            subs_of_session(&w, s);
    } else if (w.limit)
        subs_all(b, &w);
    pthread_mutex_unlock(&b->lock);
    if (w.rc < 0) {
        for (size_t i = 0; i < w.n; i++)
            broker_sub_info_clear(&out[i]);
        return -1;
    }
    return (int)w.n;
}

struct retained_walk {
    size_t offset, limit, seen, n;
    struct msg **out;
};

static void retained_visit(void *ctx, struct msg *m)
{
    struct retained_walk *w = ctx;
    if (w->seen++ < w->offset || w->n >= w->limit)
        return;
    w->out[w->n++] = msg_ref(m);
}

/* see inspect.h */
int broker_inspect_retained(struct broker *b, size_t offset, size_t limit, struct msg **out,
                            size_t *total)
{
    struct retained_walk w = {.offset = offset, .limit = cap_limit(limit), .out = out};
    pthread_mutex_lock(&b->lock);
    /* '#' does not match topics beginning with '$' (MQTT-4.7.2-1): the
     * broker's own $SYS messages stay out of the list. */
    retain_match(b->retained, (const uint8_t *)"#", 1, clock_mono_ms(), retained_visit, &w);
    pthread_mutex_unlock(&b->lock);
    *total = w.seen;
    return (int)w.n;
}

/* see inspect.h */
void broker_retained_release(struct msg **ms, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        msg_unref(ms[i]);
        ms[i] = NULL;
    }
}

static bool topic_ok(const char *topic)
{
    size_t n = strlen(topic);
    return n && n <= UINT16_MAX && mqtt_topic_name_valid((const uint8_t *)topic, n);
}

static void one_visit(void *ctx, struct msg *m)
{
    struct msg **out = ctx;
    if (!*out)
        *out = msg_ref(m);
}

/* see inspect.h */
int broker_inspect_retained_one(struct broker *b, const char *topic, struct msg **out)
{
    *out = NULL;
    if (!topic_ok(topic))
        return -1;
    pthread_mutex_lock(&b->lock);
    retain_match(b->retained, (const uint8_t *)topic, strlen(topic), clock_mono_ms(), one_visit,
                 out);
    pthread_mutex_unlock(&b->lock);
    return *out ? 0 : 1;
}

/* see inspect.h */
int broker_retained_delete(struct broker *b, const char *topic)
{
    if (!topic_ok(topic))
        return -1;
    /* An empty retained message clears its topic (MQTT-3.3.1-10); given
     * to the store directly, never routed, so no subscriber sees it. */
    uint64_t now = clock_mono_ms();
    struct msg *m = msg_new((const uint8_t *)topic, (uint16_t)strlen(topic), (const uint8_t *)"", 0,
                            0, true, NULL, "", now);
    if (!m)
        return -1;
    struct msg *old = NULL;
    pthread_mutex_lock(&b->lock);
    retain_match(b->retained, (const uint8_t *)topic, strlen(topic), now, one_visit, &old);
    int rc = old ? persist_retain_set(b, m) : RETAIN_OK;
    pthread_mutex_unlock(&b->lock);
    msg_unref(m);
    if (!old)
        return 1;
    msg_unref(old);
    return rc == RETAIN_OK ? 0 : -1;
}

/* see inspect.h */
int broker_publish(struct broker *b, const char *topic, const uint8_t *payload, size_t len,
                   uint8_t qos, bool retain)
{
    if (!topic_ok(topic) || strncmp(topic, "$SYS/", 5) == 0 || qos > 2)
        return -2;
    pthread_mutex_lock(&b->lock);
    size_t max = b->cfg.max_packet_size;
    bool may_retain = b->cfg.retain_available;
    pthread_mutex_unlock(&b->lock);
    if (len + strlen(topic) + 16 > max || (retain && !may_retain))
        return -2;
    struct msg *m = msg_new((const uint8_t *)topic, (uint16_t)strlen(topic), payload, (uint32_t)len,
                            qos, retain, NULL, "", clock_mono_ms());
    if (!m)
        return -1;
    pthread_mutex_lock(&b->lock);
    b->st.msgs_in++;
    b->st.msgs_in_qos[qos]++;
    route_internal(b, m);
    pthread_mutex_unlock(&b->lock);
    msg_unref(m);
    return 0;
}

/* see inspect.h */
const char *broker_msg_topic(const struct msg *m)
{
    return m->topic;
}

const uint8_t *broker_msg_payload(const struct msg *m, size_t *len)
{
    *len = m->payload_len;
    return m->payload;
}

uint8_t broker_msg_qos(const struct msg *m)
{
    return m->qos;
}

/* see inspect.h */
int broker_inspect_nats_listener(struct broker *b, unsigned *index, struct broker_nats_opts *out)
{
    int rc = -1;
    pthread_mutex_lock(&b->lock);
    for (unsigned i = 0; i < 64 && rc < 0; i++)
        if (b->nats[i]) {
            *out = *b->nats[i];
            *index = i;
            rc = 0;
        }
    pthread_mutex_unlock(&b->lock);
    return rc;
}
