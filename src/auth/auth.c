/* see auth.h */
#include "auth/auth.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/passwd.h"
#include "core/clock.h"
#include "mqtt/mqtt.h"

/* Failures from one address beyond FAIL_BURST within FAIL_WINDOW_MS block
 * that address for FAIL_BLOCK_MS: its CONNECTs are refused before any
 * password is hashed, so a flood cannot turn the slow hash against us. */
#define FAIL_SLOTS     1024
#define FAIL_BURST     5
#define FAIL_WINDOW_MS 10000
#define FAIL_BLOCK_MS  10000

/* The rules in force: immutable once published, shared by reference. */
struct rules {
    atomic_uint refs;
    struct auth_settings s;
    bool has_passwd, has_acl;
    struct passwd_db db;
    struct acl acl;
};

struct fail_slot {
    char host[64];
    uint32_t count;
    uint64_t window_start, blocked_until;
};

struct auth {
    pthread_mutex_t lock; /* guards `cur` and the failure table */
    struct rules *cur;
    struct fail_slot fails[FAIL_SLOTS];
    atomic_uint_fast64_t counters[AUTH_NCAUSES];
};

static void rules_put(struct rules *r)
{
    if (!r || atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    passwd_db_free(&r->db);
    acl_free(&r->acl);
    free(r);
}

static struct rules *rules_get(struct auth *a)
{
    pthread_mutex_lock(&a->lock);
    struct rules *r = a->cur;
    atomic_fetch_add(&r->refs, 1);
    pthread_mutex_unlock(&a->lock);
    return r;
}

static struct rules *rules_new(const struct auth_settings *s)
{
    struct rules *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    atomic_init(&r->refs, 1);
    r->s = *s;
    r->s.password_file = r->s.acl_file = NULL; /* not kept: paths are the caller's */
    passwd_db_init(&r->db);
    return r;
}

struct auth *auth_new(void)
{
    struct auth *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    pthread_mutex_init(&a->lock, NULL);
    struct auth_settings open = {.allow_anonymous = true, .no_match_allow = true};
    if (!(a->cur = rules_new(&open))) {
        free(a);
        return NULL;
    }
    return a;
}

void auth_free(struct auth *a)
{
    if (!a)
        return;
    rules_put(a->cur);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

/* see auth.h */
int auth_configure(struct auth *a, const struct auth_settings *s, char *err, size_t errlen)
{
    struct rules *r = rules_new(s);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    err[0] = '\0';
    int rc = 0;
    if (s->password_file) {
        rc = passwd_load(&r->db, s->password_file, err, errlen);
        r->has_passwd = rc == 0;
    }
    if (rc == 0 && s->acl_file) {
        rc = acl_load(&r->acl, s->acl_file, err, errlen);
        r->has_acl = rc == 0;
    }
    if (rc < 0) {
        rules_put(r);
        return -1;
    }
    pthread_mutex_lock(&a->lock);
    struct rules *old = a->cur;
    a->cur = r;
    pthread_mutex_unlock(&a->lock);
    rules_put(old);
    return 0;
}

/* The address without its port: "[::1]:5" -> "[::1]", "1.2.3.4:5" -> "1.2.3.4". */
static void host_of(const char *peer, char *out, size_t cap)
{
    snprintf(out, cap, "%s", peer ? peer : "?");
    char *colon = strrchr(out, ':');
    if (colon && (out[0] != '[' || colon > strchr(out, ']')))
        *colon = '\0';
}

static struct fail_slot *fail_slot(struct auth *a, const char *host)
{
    uint32_t h = 2166136261u;
    for (const char *p = host; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    struct fail_slot *f = &a->fails[h % FAIL_SLOTS];
    if (strcmp(f->host, host) != 0) { /* a collision simply evicts */
        memset(f, 0, sizeof(*f));
        snprintf(f->host, sizeof(f->host), "%s", host);
    }
    return f;
}

static bool blocked(struct auth *a, const char *host, uint64_t now)
{
    pthread_mutex_lock(&a->lock);
    bool b = fail_slot(a, host)->blocked_until > now;
    pthread_mutex_unlock(&a->lock);
    return b;
}

static void note_failure(struct auth *a, const char *host, uint64_t now)
{
    pthread_mutex_lock(&a->lock);
    struct fail_slot *f = fail_slot(a, host);
    if (now - f->window_start > FAIL_WINDOW_MS) {
        f->window_start = now;
        f->count = 0;
    }
    if (++f->count > FAIL_BURST)
        f->blocked_until = now + FAIL_BLOCK_MS;
    pthread_mutex_unlock(&a->lock);
}

/* Checks a user name and password against the password file. */
static enum auth_cause check_password(struct rules *r, struct auth_request *q)
{
    if (!passwd_find(&r->db, (const char *)q->username, q->username_len))
        return AUTH_UNKNOWN_USER;
    if (!q->password)
        return AUTH_BAD_PASSWORD;
    if (!passwd_check(&r->db, (const char *)q->username, q->username_len, q->password,
                      q->password_len))
        return AUTH_BAD_PASSWORD;
    q->user_verified = true;
    return AUTH_OK;
}

static enum auth_cause decide(struct rules *r, struct auth_request *q)
{
    bool anonymous_ok =
        q->listener_anonymous >= 0 ? q->listener_anonymous == 1 : r->s.allow_anonymous;
    /* A verified certificate identity is a login of its own on mTLS; a user
     * name claimed beside it is checked if it came with a password, and
     * ignored (never trusted) if it did not. */
    if (q->cert_identity && !q->cert_and_password) {
        if (q->username && q->password && r->has_passwd)
            return check_password(r, q);
        return AUTH_OK;
    }
    if (!q->username) {
        if (q->cert_identity)
            return AUTH_PASSWORD_REQUIRED;
        return anonymous_ok ? AUTH_OK : AUTH_NO_CREDENTIALS;
    }
    /* Without a password file a user name is only a label (as in
     * Mosquitto): it counts as anonymous. */
    if (!r->has_passwd)
        return anonymous_ok && !q->cert_and_password ? AUTH_OK : AUTH_NO_CREDENTIALS;
    return check_password(r, q);
}

/* see auth.h */
enum auth_cause auth_connect(struct auth *a, struct auth_request *q)
{
    q->user_verified = false;
    char host[64];
    uint64_t now = clock_mono_ms();
    host_of(q->peer, host, sizeof(host));
    enum auth_cause c;
    if (blocked(a, host, now)) {
        c = AUTH_RATE_LIMITED;
    } else {
        struct rules *r = rules_get(a);
        c = decide(r, q);
        rules_put(r);
        if (c != AUTH_OK)
            note_failure(a, host, now);
    }
    if (c != AUTH_OK)
        atomic_fetch_add(&a->counters[c], 1);
    return c;
}

/* see auth.h */
uint8_t auth_reason(enum auth_cause c)
{
    switch (c) {
    case AUTH_OK:
        return 0;
    case AUTH_UNKNOWN_USER:
    case AUTH_BAD_PASSWORD:
    case AUTH_PASSWORD_REQUIRED:
        return MQTT_RC_BAD_USERNAME_OR_PASSWORD;
    case AUTH_RATE_LIMITED:
        return MQTT_RC_CONNECTION_RATE_EXCEEDED;
    case AUTH_NO_CREDENTIALS:
    default:
        return MQTT_RC_NOT_AUTHORIZED;
    }
}

const char *auth_cause_text(enum auth_cause c)
{
    static const char *const text[AUTH_NCAUSES] = {
        "authenticated",
        "no credentials and anonymous access is off",
        "unknown user",
        "wrong password",
        "a password is required in addition to the certificate",
        "too many failed attempts from this address",
    };
    return (unsigned)c < AUTH_NCAUSES ? text[c] : "unknown";
}

/* see auth.h */
bool auth_allowed(struct auth *a, const struct acl_identity *id, enum acl_action action,
                  const char *topic, size_t len)
{
    struct rules *r = rules_get(a);
    int v = r->has_acl ? acl_check(&r->acl, id, action, topic, len) : -1;
    bool ok = v < 0 ? r->s.no_match_allow : v == 1;
    rules_put(r);
    return ok;
}

bool auth_has_rules(struct auth *a)
{
    struct rules *r = rules_get(a);
    bool has = r->has_acl || !r->s.no_match_allow;
    rules_put(r);
    return has;
}

bool auth_deny_disconnects(struct auth *a)
{
    struct rules *r = rules_get(a);
    bool d = r->s.deny_disconnect;
    rules_put(r);
    return d;
}

void auth_counters(struct auth *a, uint64_t out[AUTH_NCAUSES])
{
    for (int i = 0; i < AUTH_NCAUSES; i++)
        out[i] = atomic_load(&a->counters[i]);
}
