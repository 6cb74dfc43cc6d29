/* The NATS client protocol on the broker's listeners: CONNECT and its
 * authentication, PUB/HPUB into the shared message space, SUB/UNSUB with
 * queue groups, server PINGs (see nats.h, docs/nats.md). */
#include "broker/nats.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "auth/nats_users.h"
#include "broker/inspect.h"
#include "broker/internal.h"
#include "broker/login.h"
#include "core/base64.h"
#include "core/clock.h"
#include "core/log.h"
#include "nats/nats.h"

/* ---- listener settings --------------------------------------------------- */

void broker_nats_opts_defaults(struct broker_nats_opts *o)
{
    *o = (struct broker_nats_opts){
        .max_payload = NATS_DEFAULT_MAX_PAYLOAD,
        .max_control_line = NATS_DEFAULT_MAX_CONTROL_LINE,
        .ping_interval_ms = 120000,
        .ping_max = 2,
        .auth_timeout_ms = 2000,
    };
}

int broker_set_listener_nats(struct broker *b, unsigned listener, const struct broker_nats_opts *o,
                             char *err, size_t errlen)
{
    if (listener >= 64) {
        snprintf(err, errlen, "too many listeners (at most 64)");
        return -1;
    }
    if (o->max_payload == 0 || o->max_payload > 64u << 20) {
        snprintf(err, errlen, "max_payload must be between 1 byte and 64 MiB");
        return -1;
    }
    if (o->max_control_line < 64 || o->max_control_line > 1u << 20) {
        snprintf(err, errlen, "max_control_line must be between 64 bytes and 1 MiB");
        return -1;
    }
    struct broker_nats_opts *copy = malloc(sizeof *copy);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *copy = *o;
    free(b->nats[listener]);
    b->nats[listener] = copy;
    return 0;
}

/* ---- INFO ---------------------------------------------------------------- */

static char server_id[23];
static uint8_t nonce_key[32];
static atomic_uint_fast64_t next_cid = 1;
static pthread_once_t ids_once = PTHREAD_ONCE_INIT;

static void make_ids(void)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    uint8_t r[21];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r) ||
        getrandom(nonce_key, sizeof(nonce_key), 0) != (ssize_t)sizeof(nonce_key))
        abort(); /* no randomness: nothing here could be trusted */
    server_id[0] = 'N';
    for (size_t i = 0; i < sizeof(r); i++)
        server_id[i + 1] = abc[r[i] % 32];
}

/* see inspect.h */
const char *broker_nats_server_id(void)
{
    pthread_once(&ids_once, make_ids);
    return server_id;
}

/* The nonce a client signs with its NKey: unpredictable, one per
 * connection, recomputed from the client id rather than stored (net wrote
 * INFO before the connection had any state of ours). */
static void make_nonce(uint64_t cid, char out[32])
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t mac[32];
    unsigned len = sizeof(mac);
    if (!HMAC(EVP_sha256(), nonce_key, sizeof(nonce_key), (const uint8_t *)&cid, sizeof(cid), mac,
              &len))
        abort();
    for (size_t i = 0; i < 22; i++)
        out[i] = abc[mac[i] & 63];
    out[22] = '\0';
}

static const struct broker_nats_opts *opts_of(const struct broker *b, const struct net_conn *nc)
{
    return b->nats[net_conn_listener(nc) % 64];
}

static bool table_requires(const struct auth_nats *u)
{
    return u && (auth_nats_has_users(u) || auth_nats_has_token(u) || auth_nats_has_nkeys(u));
}

/* Whether a client must authenticate (INFO's auth_required). */
static bool auth_required(struct broker *b, const struct net_conn *nc)
{
    const struct broker_nats_opts *o = opts_of(b, nc);
    if (o->no_auth_user)
        return false;
    if (table_requires(o->users))
        return true;
    return b->auth && !auth_anonymous_ok(b->auth, b->listener_anon[net_conn_listener(nc) % 64]);
}

static size_t info(struct broker *b, struct net_conn *nc, uint64_t cid, bool ldm, uint8_t *buf,
                   size_t cap)
{
    pthread_once(&ids_once, make_ids);
    const struct broker_nats_opts *o = opts_of(b, nc);
    char ip[64], nonce[32];
    snprintf(ip, sizeof(ip), "%s", net_conn_peer(nc));
    char *colon = strrchr(ip, ':');
    if (colon)
        *colon = '\0';
    if (ip[0] == '[') { /* "[::1]" -> "::1" */
        memmove(ip, ip + 1, strlen(ip));
        ip[strcspn(ip, "]")] = '\0';
    }
    char host[64] = "0.0.0.0";
    uint16_t port = 0;
    if (!net_conn_local(nc, host, sizeof(host), &port))
        snprintf(host, sizeof(host), "0.0.0.0");
    bool nkeys = o->users && auth_nats_has_nkeys(o->users);
    if (nkeys)
        make_nonce(cid, nonce);
    struct nats_info in = {
        .server_id = server_id,
        .server_name = o->server_name ? o->server_name : server_id,
        /* The nats-server protocol level ward speaks: clients turn
         * features (headers, no responders) on by this number. */
        .version = "2.9.0",
        .host = host,
        .port = port,
        .headers = true,
        .auth_required = auth_required(b, nc),
        .tls_required = net_conn_tls_server(nc) != NULL,
        .tls_verify = o->tls_verify,
        .max_payload = o->max_payload,
        .proto = 1,
        .client_id = cid,
        .client_ip = ip,
        .nonce = nkeys ? nonce : NULL,
        .ldm = ldm,
    };
    return nats_info_encode(&in, (char *)buf, cap);
}

size_t broker_nats_greeting(void *ctx, struct net_conn *c, uint8_t *buf, size_t cap)
{
    struct broker *b = ctx;
    if (!opts_of(b, c))
        return 0;
    uint64_t cid = atomic_fetch_add(&next_cid, 1);
    net_conn_set_tag(c, cid);
    return info(b, c, cid, false, buf, cap);
}

/* ---- connection life ----------------------------------------------------- */

bool nats_open(struct broker *b, struct client *c)
{
    struct nats_state *st = calloc(1, sizeof(*st));
    struct session *s = calloc(1, sizeof(*s));
    if (!st || !s) {
        free(st);
        free(s);
        return false;
    }
    st->o = opts_of(b, c->nc);
    /* nats-server's options until a CONNECT says otherwise. */
    st->echo = st->verbose = st->pedantic = true;
    st->cid = net_conn_greeted(c->nc) ? net_conn_tag(c->nc) : atomic_fetch_add(&next_cid, 1);
    make_nonce(st->cid, st->nonce);
    st->next_ping_ms = c->opened_ms + st->o->ping_interval_ms;
    char id[64];
    snprintf(id, sizeof(id), "nats:%" PRIu64, st->cid);
    if (!(s->id = strdup(id))) {
        free(st);
        free(s);
        return false;
    }
    s->c = c;
    c->s = s;
    c->nats = st;
    client_label(c, "NATS client %" PRIu64 " (%s)", st->cid, net_conn_peer(c->nc));
    if (!net_conn_greeted(c->nc)) {
        uint8_t buf[2048];
        size_t n = info(b, c->nc, st->cid, false, buf, sizeof(buf));
        if (!n || net_conn_send(c->nc, buf, n) < 0)
            return false; /* nats_free follows in the caller */
    }
    return true;
}

/* see nats.h */
void nats_lame_duck(struct client *c)
{
    if (c->closing)
        return;
    /* nats-server's lame duck INFO: a client that sees "ldm" knows the
     * server is going away and reconnects elsewhere rather than here. The
     * INFO a client gets before its CONNECT greets it; this one, after,
     * is an update (the protocol allows INFO at any time). */
    uint8_t buf[2048];
    size_t n = info(c->b, c->nc, c->nats->cid, true, buf, sizeof(buf));
    if (n)
        nats_out_raw(c, buf, n);
    if (!c->closing)
        client_close(c, "server shutting down");
}

void nats_closed(struct client *c)
{
    struct nats_state *st = c->nats;
    while (st->subs)
        nats_sub_remove(c->b, st->subs);
}

void nats_free(struct client *c)
{
    struct nats_state *st = c->nats;
    struct session *s = c->s;
    if (!st)
        return;
    if (s) {
        free(s->id);
        session_free_owner(s);
        free(s->username);
        free(s->cert_cn);
        free(s->cert_ou);
        free(s);
        c->s = NULL;
    }
    for (uint32_t i = 0; i < st->nresp; i++)
        free(st->resp[i].subject);
    free(st->resp);
    free(st->pending);
    free(st);
    c->nats = NULL;
}

static void send_str(struct client *c, const char *s)
{
    nats_out_raw(c, s, strlen(s));
}

static void ok(struct client *c)
{
    if (c->nats->verbose)
        send_str(c, "+OK\r\n");
}

static void fail(struct client *c, enum nats_err e)
{
    if (nats_err_sent(e))
        nats_out_err(c, nats_err_text(e), nats_err_closes(e));
    else if (nats_err_closes(e) && !c->closing)
        client_close(c, nats_err_text(e));
}

void nats_tick(struct broker *b, struct client *c, uint64_t now)
{
    struct nats_state *st = c->nats;
    const struct broker_nats_opts *o = st->o;
    if (c->closing)
        return;
    if (!st->got_connect && now - c->opened_ms >= o->auth_timeout_ms && auth_required(b, c->nc)) {
        log_notice("%s: no CONNECT within %u ms", CLIENT_NAME(c), o->auth_timeout_ms);
        fail(c, NATS_ERR_AUTH_TIMEOUT);
        return;
    }
    if (now < st->next_ping_ms || !o->ping_interval_ms)
        return;
    st->next_ping_ms = now + o->ping_interval_ms;
    if (now - c->last_rx_ms < o->ping_interval_ms) {
        st->pings_out = 0; /* it spoke within the interval: alive */
        return;
    }
    if (st->pings_out >= o->ping_max) {
        log_notice("%s: %u PINGs unanswered", CLIENT_NAME(c), st->pings_out);
        b->st.packet_timeouts++;
        fail(c, NATS_ERR_STALE);
        return;
    }
    st->pings_out++;
    send_str(c, "PING\r\n");
}

/* ---- login, before the lock ---------------------------------------------- */

static bool check_password(const void *entry, const uint8_t *secret, size_t len)
{
    char pw[1025];
    if (len >= sizeof(pw))
        return false;
    memcpy(pw, secret, len);
    pw[len] = '\0';
    return auth_nats_check_password(entry, pw);
}

static bool check_token(const void *users, const uint8_t *secret, size_t len)
{
    char tok[1025];
    if (len >= sizeof(tok))
        return false;
    memcpy(tok, secret, len);
    tok[len] = '\0';
    return auth_nats_check_token(users, tok);
}

/* verify_and_map: the certificate's names, in nats-server's order, looked
 * up among the listed users. */
static const struct auth_nats_entry *map_cert(const struct client *c, const struct auth_nats *u)
{
    const char *names[] = {c->cert->san_email, c->cert->san_dns, c->cert->dn, c->cert->cn};
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
        const struct auth_nats_entry *e = names[i][0] ? auth_nats_find_user(u, names[i]) : NULL;
        if (e)
            return e;
    }
    return NULL;
}

static void decided(struct client *c, enum auth_cause cause, const struct auth_nats_entry *e,
                    const char *user)
{
    c->auth_cause = cause;
    c->auth_done = true;
    struct nats_state *st = c->nats;
    st->entry = cause == AUTH_OK ? e : NULL;
    snprintf(st->user, sizeof(st->user), "%s", cause == AUTH_OK && user ? user : "");
    c->user_verified = cause == AUTH_OK && user && *user;
}

/* Works out who the CONNECT's client is. Returns true when decided (in c),
 * false while a slow check runs on auth's pool (the input is held). */
static bool login(struct client *c, const struct nats_connect *ck)
{
    struct broker *b = c->b;
    struct nats_state *st = c->nats;
    const struct broker_nats_opts *o = st->o;
    const struct auth_nats *u = o->users;
    const struct auth_nats_entry *e = NULL;
    client_read_cert(c);
    if (c->has_cert && c->cert->ambiguous) {
        decided(c, AUTH_NO_CREDENTIALS, NULL, NULL);
        return true;
    }
    if (ck->has_nkey) { /* Ed25519 over our nonce: fast, done here */
        e = u ? auth_nats_find_nkey(u, ck->nkey) : NULL;
        bool good =
            e && ck->has_sig &&
            auth_nkey_verify(ck->nkey, (const uint8_t *)st->nonce, strlen(st->nonce), ck->sig);
        decided(c, good ? AUTH_OK : e ? AUTH_BAD_PASSWORD : AUTH_UNKNOWN_USER, e, ck->nkey);
        return true;
    }
    if (o->verify_and_map && u) {
        e = c->has_cert ? map_cert(c, u) : NULL;
        decided(c, e ? AUTH_OK : AUTH_UNKNOWN_USER, e, e ? auth_nats_entry_name(e) : NULL);
        return true;
    }
    struct auth_request q = {
        .client_id = c->s->id,
        .peer = net_conn_peer(c->nc),
        .listener_anonymous = b->listener_anon[net_conn_listener(c->nc) % 64],
        .cert_identity = c->has_cert,
        .cert_and_password = (b->listener_password >> (net_conn_listener(c->nc) % 64)) & 1,
    };
    if (ck->has_token && table_requires(u) && auth_nats_has_token(u)) {
        q.password = (const uint8_t *)ck->auth_token;
        q.password_len = strlen(ck->auth_token);
        q.check = check_token;
        q.check_arg = u;
    } else if (ck->has_user && u && (e = auth_nats_find_user(u, ck->user))) {
        q.username = (const uint8_t *)ck->user;
        q.username_len = strlen(ck->user);
        q.password = (const uint8_t *)(ck->has_pass ? ck->pass : "");
        q.password_len = ck->has_pass ? strlen(ck->pass) : 0;
        q.check = check_password;
        q.check_arg = e;
    } else if (!ck->has_user && !ck->has_token && o->no_auth_user && u &&
               (e = auth_nats_find_user(u, o->no_auth_user))) {
        decided(c, AUTH_OK, e, o->no_auth_user);
        return true;
    } else if (b->auth) {      /* ward's own password file, certificates and anonymous rules */
        if (table_requires(u)) /* the listener's table wants credentials: none is not enough */
            q.listener_anonymous = 0;
        if (ck->has_user) {
            q.username = (const uint8_t *)ck->user;
            q.username_len = strlen(ck->user);
        }
        if (ck->has_pass) {
            q.password = (const uint8_t *)ck->pass;
            q.password_len = strlen(ck->pass);
        }
    } else {
        /* No password file: credentials the listener's table does not
         * know, or none, get in only where the table asks for none. */
        bool anonymous = !table_requires(u);
        decided(c, anonymous ? AUTH_OK : AUTH_NO_CREDENTIALS, NULL, NULL);
        return true;
    }
    if (!b->auth) { /* a table without the auth object to run its hashes: refuse */
        log_error("%s: NATS users need the broker's authentication to be set up", CLIENT_NAME(c));
        decided(c, AUTH_BUSY, NULL, NULL);
        return true;
    }
    st->entry = e;
    snprintf(st->user, sizeof(st->user), "%s", q.username ? (const char *)q.username : "");
    if (!client_auth_start(c, &q))
        return false;
    c->auth_done = true;
    if (c->auth_cause != AUTH_OK)
        st->entry = NULL;
    return true;
}

/* The identity access control sees: the user the broker verified (a listed
 * user, an NKey, the password file, or the certificate's mapped name) and
 * the certificate's CN and OU. */
static int set_identity(struct client *c)
{
    struct nats_state *st = c->nats;
    struct session *s = c->s;
    const char *user = NULL;
    if (st->user[0] && (st->entry || c->user_verified))
        user = st->user;
    else if (c->has_cert && client_cert_user(c))
        user = client_cert_user(c);
    char owner[600];
    if (user)
        snprintf(owner, sizeof(owner), "user:%s", user);
    else if (c->has_cert)
        snprintf(owner, sizeof(owner), "cert:%s", c->cert->dn);
    else
        owner[0] = '\0';
    if (!client_set_owner(c, owner))
        return -1;
    free(s->username);
    free(s->cert_cn);
    free(s->cert_ou);
    bool owned = session_set_owner(s, owner);
    s->username = user ? strdup(user) : NULL;
    s->cert_cn = c->has_cert && c->cert->cn[0] ? strdup(c->cert->cn) : NULL;
    s->cert_ou = c->has_cert && c->cert->ou[0] ? strdup(c->cert->ou) : NULL;
    st->perms = st->entry ? auth_nats_entry_perms(st->entry) : NULL;
    return owned && (!user || s->username) ? 0 : -1;
}

/* Before the lock: a CONNECT at the head of the input is authenticated
 * (perhaps on auth's pool). Returns false while that runs. */
static bool authenticate(struct client *c, const uint8_t *data, size_t len)
{
    struct nats_state *st = c->nats;
    if (c->auth_wait) {
        if (!client_auth_end(c, false))
            return false;
        c->auth_done = true;
        if (c->auth_cause != AUTH_OK)
            st->entry = NULL;
        return true;
    }
    struct nats_limits lim = {st->o->max_control_line, st->o->max_payload};
    struct nats_cmd cmd;
    size_t used;
    enum nats_err err;
    if (nats_parse(&lim, true, data, len, &cmd, &used, &err) != 1 || cmd.op != NATS_OP_CONNECT)
        return true; /* more to come, or handled under the lock */
    char why[128];
    if (!st->pending && !(st->pending = malloc(sizeof(*st->pending)))) {
        decided(c, AUTH_BUSY, NULL, NULL);
        return true;
    }
    if (nats_connect_parse(cmd.arg.p, cmd.arg.len, st->pending, why, sizeof(why)) != 0) {
        free(st->pending);
        st->pending = NULL;
        /* Decided (nobody), so handle_connect refuses it with its reason. */
        decided(c, AUTH_NO_CREDENTIALS, NULL, NULL);
        return true;
    }
    return login(c, st->pending);
}

/* ---- commands, under the lock --------------------------------------------- */

static void handle_connect(struct client *c, const struct nats_cmd *cmd)
{
    struct broker *b = c->b;
    struct nats_state *st = c->nats;
    struct nats_connect local, *ck = st->pending;
    char why[128];
    if (!ck) {
        if (nats_connect_parse(cmd->arg.p, cmd->arg.len, &local, why, sizeof(why)) != 0) {
            log_notice("%s: CONNECT refused: %s", CLIENT_NAME(c), why);
            fail(c, NATS_ERR_PARSER);
            return;
        }
        ck = &local;
    }
    if (ck->protocol < 0 || ck->protocol > 1) {
        fail(c, NATS_ERR_BAD_PROTOCOL);
        goto out;
    }
    if (ck->no_responders && !ck->headers) {
        fail(c, NATS_ERR_NO_RESPONDERS_NEEDS_HEADERS);
        goto out;
    }
    /* The login ran before the lock (nats_data sees to it); a CONNECT
     * without a verdict is refused, never waved through. */
    if (!st->got_connect && (!c->auth_done || c->auth_cause != AUTH_OK)) {
        b->st.auth_failures++;
        log_notice("%s: authentication failed: %s", CLIENT_NAME(c), auth_cause_text(c->auth_cause));
        fail(c, NATS_ERR_AUTH_VIOLATION);
        goto out;
    }
    st->verbose = ck->verbose;
    st->pedantic = ck->pedantic;
    st->echo = ck->echo;
    st->headers = ck->headers;
    st->no_responders = ck->no_responders;
    if (!st->got_connect) {
        if (set_identity(c) < 0) {
            fail(c, NATS_ERR_AUTH_VIOLATION);
            goto out;
        }
        st->got_connect = true;
        c->connected = true;
        b->st.connects++;
        b->st.nats_connected++;
        if (++b->st.clients_connected > b->st.clients_max)
            b->st.clients_max = b->st.clients_connected;
        client_label(c, "NATS client %" PRIu64 " '%s' (%s)", st->cid, ck->name,
                     net_conn_peer(c->nc));
        log_info("%s connected%s%s", CLIENT_NAME(c), c->s->owner[0] ? " as " : "", c->s->owner);
    }
    ok(c);
out:
    free(st->pending);
    st->pending = NULL;
}

/* Whether the client may still do anything: a server that asks for
 * authentication takes nothing but CONNECT, PING and PONG before it. */
static bool admitted(struct client *c)
{
    if (c->nats->got_connect || !auth_required(c->b, c->nc))
        return true;
    fail(c, NATS_ERR_AUTH_VIOLATION);
    return false;
}

/* allow_responses: a reply subject the client received may be answered. */
static bool may_respond(struct nats_state *st, const struct nats_str *subj)
{
    uint64_t now = clock_mono_ms();
    for (uint32_t i = 0; i < st->nresp; i++) {
        struct nats_resp *r = &st->resp[i];
        if (r->expires_ms && now >= r->expires_ms)
            continue;
        if (strlen(r->subject) == subj->len && memcmp(r->subject, subj->p, subj->len) == 0) {
            if (--r->left == 0) {
                free(r->subject);
                st->resp[i] = st->resp[--st->nresp];
            }
            return true;
        }
    }
    return false;
}

static bool may_publish(struct client *c, const struct nats_str *subj, const char *topic,
                        size_t tlen)
{
    struct nats_state *st = c->nats;
    struct broker *b = c->b;
    bool table_ok = !st->perms || auth_nats_may_publish(st->perms, subj->p, subj->len);
    bool acl_ok = !b->acl_active || session_allowed(b, c->s, ACL_PUBLISH, topic, tlen);
    if ((table_ok && acl_ok) || may_respond(st, subj))
        return true;
    b->st.acl_denied++;
    char buf[1024];
    size_t n = nats_err_perm(buf, sizeof(buf), true, subj->p, subj->len, NULL, 0);
    if (n)
        nats_out_raw(c, buf, n);
    log_info("%s: publish to '%.*s' denied", CLIENT_NAME(c),
             (int)(subj->len > 200 ? 200 : subj->len), (const char *)subj->p);
    return false;
}

static void put16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* NATS headers as MQTT 5 user properties (wire form) and correlation data. */
static bool headers_to_mqtt(const struct nats_str *h, uint8_t *user, size_t cap, uint32_t *ulen,
                            uint8_t *corr, uint16_t *clen)
{
    struct nats_hdr_iter it;
    struct nats_str name, value;
    size_t n = 0;
    *clen = 0;
    nats_hdr_iter_init(&it, h->p, h->len);
    while (nats_hdr_next(&it, &name, &value)) {
        static const char cd[] = "Ward-Correlation-Data";
        if (name.len == sizeof(cd) - 1 && strncasecmp((const char *)name.p, cd, name.len) == 0) {
            long d = base64_decode((const char *)value.p, value.len, corr, 65535);
            if (d >= 0) {
                *clen = (uint16_t)d;
                continue;
            }
        }
        if (name.len > 65535 || value.len > 65535 || n + 5 + name.len + value.len > cap)
            return false;
        user[n] = 0x26;
        put16(user + n + 1, name.len);
        memcpy(user + n + 3, name.p, name.len);
        put16(user + n + 3 + name.len, value.len);
        memcpy(user + n + 5 + name.len, value.p, value.len);
        n += 5 + name.len + value.len;
    }
    *ulen = (uint32_t)n;
    return true;
}

/* no_responders: a request nobody heard is answered with a 503 status on
 * the requester's own subscriptions to its reply subject. */
static void no_responders(struct client *c, const struct nats_str *reply)
{
    static const char hdr[] = "NATS/1.0 503\r\n\r\n";
    struct broker *b = c->b;
    for (struct nats_sub *ns = c->nats->subs; ns; ns = ns->next) {
        if (!nats_subject_match((const uint8_t *)ns->subject, ns->subject_len, reply->p,
                                reply->len))
            continue;
        char head[65536 + 512];
        size_t n = nats_msg_head(head, sizeof(head), (const char *)reply->p, reply->len, ns->sid,
                                 ns->sid_len, NULL, 0, sizeof(hdr) - 1, 0);
        if (!n)
            return;
        memcpy(head + n, hdr, sizeof(hdr) - 1);
        n += sizeof(hdr) - 1;
        memcpy(head + n, "\r\n", 2);
        nats_out_raw(c, head, n + 2);
        b->st.msgs_out++;
        b->st.msgs_out_qos[0]++;
        c->msgs_out++;
        return;
    }
}

static void handle_pub(struct client *c, const struct nats_cmd *cmd, bool hpub)
{
    struct broker *b = c->b;
    struct nats_state *st = c->nats;
    if (!admitted(c))
        return;
    if (hpub && !st->headers) {
        fail(c, NATS_ERR_NO_HEADERS);
        return;
    }
    char topic[65536], reply_topic[65536];
    /* nats_to_mqtt checks the subject rules on its way (no second pass). */
    int tlen = nats_to_mqtt(cmd->subject.p, cmd->subject.len, false, topic, sizeof(topic));
    int rlen = 0;
    if (tlen > 0 && cmd->reply.len &&
        (rlen = nats_to_mqtt(cmd->reply.p, cmd->reply.len, false, reply_topic,
                             sizeof(reply_topic))) <= 0)
        tlen = -1;
    if (tlen <= 0 || tlen > 65535) {
        fail(c, NATS_ERR_INVALID_PUB_SUBJECT);
        return;
    }
    if (!may_publish(c, &cmd->subject, topic, (size_t)tlen))
        return;
    if (b->over_memory) {
        b->st.memory_refused++;
        b->st.dropped++;
        ok(c);
        return;
    }
    uint8_t *user = NULL, corr[65535];
    uint32_t ulen = 0;
    uint16_t clen = 0;
    if (hpub && cmd->headers.len) {
        if (!nats_hdr_valid(cmd->headers.p, cmd->headers.len)) {
            fail(c, NATS_ERR_PARSER);
            return;
        }
        size_t cap = cmd->headers.len * 2 + 16;
        if (!(user = malloc(cap)) ||
            !headers_to_mqtt(&cmd->headers, user, cap, &ulen, corr, &clen)) {
            free(user);
            user = NULL, ulen = 0, clen = 0; /* MQTT subscribers see no properties */
        }
    }
    struct msg_nats mn = {
        .topic = (const uint8_t *)topic,
        .topic_len = (uint16_t)tlen,
        .subject = cmd->subject.p,
        .subject_len = (uint16_t)cmd->subject.len,
        .reply = cmd->reply.p,
        .reply_len = (uint16_t)cmd->reply.len,
        .reply_topic = (const uint8_t *)reply_topic,
        .reply_topic_len = (uint16_t)(rlen > 0 ? rlen : 0),
        .hdr = cmd->headers.p,
        .hdr_len = (uint32_t)cmd->headers.len,
        .payload = cmd->payload.p,
        .payload_len = (uint32_t)cmd->payload.len,
        .user_raw = user,
        .user_raw_len = ulen,
        .correlation = corr,
        .correlation_len = clen,
        .origin = c->s->id,
    };
    struct msg *m = msg_from_nats(&mn, c->last_rx_ms); /* read once per batch */
    free(user);
    if (!m) {
        b->st.dropped++;
        return;
    }
    b->flow_hit = FLOW_OK;
    if (!route_publish_or_wait(b, m, c->s)) {
        /* Backpressure: the PUB stays in the input, unread, and is handled
         * again once the full receiver has room (flow.c). */
        msg_unref(m);
        flow_throttle(b, c);
        c->hold = true;
        return;
    }
    b->st.msgs_in++;
    b->st.msgs_in_qos[0]++;
    b->st.bytes_in += cmd->payload.len + cmd->headers.len;
    c->msgs_in++;
    c->bytes_in += cmd->payload.len + cmd->headers.len;
    if (b->nmatches == 0 && cmd->reply.len && st->no_responders)
        no_responders(c, &cmd->reply);
    msg_unref(m);
    ok(c);
}

/* A queue group's name inside an MQTT "$share/NAME/" prefix: the characters
 * MQTT forbids there are escaped, so every NATS queue name has one. */
static bool share_name(const struct nats_str *q, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < q->len; i++) {
        uint8_t ch = q->p[i];
        bool esc = ch == '/' || ch == '+' || ch == '#' || ch == '%';
        if (o + (esc ? 3 : 1) >= cap)
            return false;
        if (esc)
            o += (size_t)snprintf(out + o, cap - o, "%%%02X", ch);
        else
            out[o++] = (char)ch;
    }
    out[o] = '\0';
    return o > 0;
}

static struct nats_sub *find_sid(struct nats_state *st, const struct nats_str *sid)
{
    for (struct nats_sub *ns = st->subs; ns; ns = ns->next)
        if (ns->sid_len == sid->len && memcmp(ns->sid, sid->p, sid->len) == 0)
            return ns;
    return NULL;
}

static void sub_free(struct nats_sub *ns)
{
    free(ns->filter);
    free(ns->subject);
    free(ns->queue);
    free(ns->sid);
    free(ns);
}

static void handle_sub(struct client *c, const struct nats_cmd *cmd)
{
    struct broker *b = c->b;
    struct nats_state *st = c->nats;
    if (!admitted(c))
        return;
    char filter[65536 + 300], group[256];
    int flen = -1;
    bool qok = !cmd->queue.len || (nats_queue_valid(cmd->queue.p, cmd->queue.len) &&
                                   share_name(&cmd->queue, group, sizeof(group)));
    if (qok) /* nats_to_mqtt checks the subject rules on its way */
        flen = nats_to_mqtt(cmd->subject.p, cmd->subject.len, true, filter, 65536);
    if (flen <= 0 || cmd->sid.len == 0 || cmd->sid.len > 255) {
        fail(c, NATS_ERR_INVALID_SUBJECT);
        return;
    }
    filter[flen] = '\0';
    if (find_sid(st, &cmd->sid)) { /* nats-server keeps the first */
        ok(c);
        return;
    }
    uint32_t limit = st->o->max_subscriptions ? st->o->max_subscriptions : b->cfg.max_subscriptions;
    if (limit && st->nsubs >= limit) {
        b->st.subs_refused++;
        log_notice("%s: subscription refused: it has %u (max_subscriptions)", CLIENT_NAME(c),
                   st->nsubs);
        fail(c, NATS_ERR_MAX_SUBSCRIPTIONS);
        return;
    }
    bool table_ok =
        !st->perms || auth_nats_may_subscribe(st->perms, cmd->subject.p, cmd->subject.len,
                                              cmd->queue.p, cmd->queue.len);
    if (!table_ok || !session_allowed(b, c->s, ACL_SUBSCRIBE, filter, (size_t)flen)) {
        b->st.acl_denied++;
        char buf[1024];
        size_t n = nats_err_perm(buf, sizeof(buf), false, cmd->subject.p, cmd->subject.len,
                                 cmd->queue.len ? cmd->queue.p : NULL, cmd->queue.len);
        if (n)
            nats_out_raw(c, buf, n);
        return;
    }
    struct nats_sub *ns = calloc(1, sizeof(*ns));
    if (!ns)
        return;
    ns->c = c;
    ns->gt_tail =
        cmd->subject.len > 2 && memcmp(cmd->subject.p + cmd->subject.len - 2, ".>", 2) == 0;
    ns->gt_prefix = ns->gt_tail ? (uint16_t)(flen - 2) : 0;
    ns->deny_filter =
        st->perms && auth_nats_sub_needs_filter(st->perms, cmd->subject.p, cmd->subject.len);
    if (cmd->queue.len) {
        char tmp[sizeof(filter)];
        snprintf(tmp, sizeof(tmp), "$share/%s/%.*s", group, flen, filter);
        snprintf(filter, sizeof(filter), "%s", tmp);
        flen = (int)strlen(filter);
    }
    ns->filter = strdup(filter);
    ns->subject = strndup((const char *)cmd->subject.p, cmd->subject.len);
    ns->subject_len = (uint16_t)cmd->subject.len;
    ns->queue = cmd->queue.len ? strndup((const char *)cmd->queue.p, cmd->queue.len) : NULL;
    ns->sid = strndup((const char *)cmd->sid.p, cmd->sid.len);
    ns->sid_len = (uint8_t)cmd->sid.len;
    if (!ns->filter || !ns->subject || !ns->sid || (cmd->queue.len && !ns->queue) ||
        subtree_add(b->subs, (const uint8_t *)filter, (size_t)flen, nats_owner(ns), 0, 0) < 0) {
        sub_free(ns);
        return;
    }
    ns->next = st->subs;
    st->subs = ns;
    st->nsubs++;
    ok(c);
}

static void handle_unsub(struct client *c, const struct nats_cmd *cmd)
{
    if (!admitted(c))
        return;
    struct nats_sub *ns = find_sid(c->nats, &cmd->sid);
    if (ns) {
        if (cmd->has_max && cmd->max_msgs > ns->delivered)
            ns->max = cmd->max_msgs;
        else
            nats_sub_remove(c->b, ns);
    }
    ok(c);
}

static void handle(struct client *c, const struct nats_cmd *cmd)
{
    switch (cmd->op) {
    case NATS_OP_CONNECT:
        handle_connect(c, cmd);
        client_drop_cert(c); /* the copy is needed only while CONNECT is handled */
        break;
    case NATS_OP_PUB:
    case NATS_OP_HPUB:
        handle_pub(c, cmd, cmd->op == NATS_OP_HPUB);
        break;
    case NATS_OP_SUB:
        handle_sub(c, cmd);
        break;
    case NATS_OP_UNSUB:
        handle_unsub(c, cmd);
        break;
    case NATS_OP_PING:
        if (admitted(c))
            send_str(c, "PONG\r\n");
        break;
    case NATS_OP_PONG:
        if (admitted(c))
            c->nats->pings_out = 0;
        break;
    default: /* a server's commands from a client */
        fail(c, NATS_ERR_UNKNOWN_OP);
        break;
    }
}

size_t nats_data(struct client *c, const uint8_t *data, size_t len)
{
    struct broker *b = c->b;
    struct nats_state *st = c->nats;
    struct nats_limits lim = {st->o->max_control_line, st->o->max_payload};
    size_t off = 0;
    for (;;) {
        /* A CONNECT is authenticated before the lock, wherever it stands in
         * the input: the locked loop below stops in front of it. */
        if (!c->auth_done && !st->got_connect && !authenticate(c, data + off, len - off)) {
            net_conn_hold_input(c->nc); /* until the check resumes it */
            return off;
        }
        bool login_next = false;
        pthread_mutex_lock(&b->lock);
        c->last_rx_ms = clock_mono_ms();
        while (off < len && !c->closing) {
            struct nats_cmd cmd;
            size_t used = 0;
            enum nats_err err = NATS_ERR_NONE;
            int rc = nats_parse(&lim, true, data + off, len - off, &cmd, &used, &err);
            if (rc == 0)
                break;
            if (rc < 0) {
                log_notice("%s: %s", CLIENT_NAME(c), nats_err_text(err));
                if (nats_err_sent(err))
                    nats_out_err(c, nats_err_text(err), true);
                else
                    client_close(c, nats_err_text(err));
                off = len;
                break;
            }
            if (cmd.op == NATS_OP_CONNECT && !c->auth_done && !st->got_connect) {
                login_next = true;
                break;
            }
            if ((cmd.op == NATS_OP_PUB || cmd.op == NATS_OP_HPUB) && c->throttled)
                c->hold = true; /* in order: it waits behind the one held before */
            else
                handle(c, &cmd);
            if (c->hold) {
                c->hold = false;
                net_conn_hold_input(c->nc);
                break;
            }
            off += used;
        }
        /* A command begun and not finished starts mqtt.packet_timeout's clock. */
        if (off == len)
            c->partial_since_ms = 0;
        else if (!c->partial_since_ms)
            c->partial_since_ms = c->last_rx_ms;
        bool closing = c->closing;
        pthread_mutex_unlock(&b->lock);
        if (closing)
            return len;
        if (!login_next)
            return off;
    }
}
