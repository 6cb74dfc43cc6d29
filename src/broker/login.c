/* What a connection proves about itself, worked out on its own worker
 * before the broker lock is taken (src/broker/login.c): its client
 * certificate, and its password checked on auth's hashing threads. Used
 * by the MQTT (broker.c) and NATS (nats.c) protocol handlers alike. */
#include "broker/login.h"

#include <pthread.h>
#include <stdlib.h>

#include "broker/internal.h"
#include "core/log.h"

/* The copy client_read_cert keeps: the identity first, so that c->cert
 * points at the whole, and what the listener's settings take from it. */
struct client_cert {
    struct tls_identity id;
    const char *user, *clientid; /* into id, or NULL */
};

static const struct client_cert *cert_of(const struct client *c)
{
    return (const struct client_cert *)c->cert;
}

/* see login.h */
void client_read_cert(struct client *c)
{
    if (c->cert_read)
        return;
    c->cert_read = true;
    const struct tls_identity *id = net_conn_tls_identity(c->nc);
    struct tls_server *ts = net_conn_tls_server(c->nc);
    if (!id || !id->verified || !ts)
        return;
    struct client_cert *copy = malloc(sizeof(*copy));
    if (!copy) { /* no identity to take: as a connection without one */
        log_error("%s: out of memory reading its certificate", CLIENT_NAME(c));
        return;
    }
    copy->id = *id;
    const struct tls_server_config *tc = tls_server_config(ts);
    copy->user = tls_identity_get(&copy->id, tc->as_username);
    copy->clientid = tls_identity_get(&copy->id, tc->as_clientid);
    c->has_cert = true;
    c->cert = &copy->id;
}

/* see login.h */
void client_drop_cert(struct client *c)
{
    free((struct client_cert *)cert_of(c));
    c->cert = NULL;
    c->cert_read = false;
}

/* see login.h */
const char *client_cert_user(const struct client *c)
{
    return c->cert ? cert_of(c)->user : NULL;
}

/* see login.h */
const char *client_cert_clientid(const struct client *c)
{
    return c->cert ? cert_of(c)->clientid : NULL;
}

/* A password check running on auth's hashing threads for one connection.
 * The connection and the check share it and the last one to let go frees
 * it. It has a lock of its own, not the broker's, because at shutdown a
 * check may finish after the broker is gone; under that lock "is the
 * connection still open" and the resume of its input are one step, so a
 * check never touches a connection on_close has let go. */
struct auth_wait {
    struct net_conn *nc; /* NULL once the connection closed */
    int refs;
    bool finished, user_verified;
    enum auth_cause cause;
};

static pthread_mutex_t auth_wait_lock = PTHREAD_MUTEX_INITIALIZER;

/* Lets go of w (under auth_wait_lock); true when the caller must free it. */
static bool auth_wait_put(struct auth_wait *w)
{
    return --w->refs == 0;
}

/* auth_done_fn, on a hashing thread: the verdict waits in w for on_data,
 * which the resumed input calls again on the connection's worker. */
static void auth_checked(void *ctx, enum auth_cause cause, bool user_verified)
{
    struct auth_wait *w = ctx;
    pthread_mutex_lock(&auth_wait_lock);
    w->cause = cause;
    w->user_verified = user_verified;
    w->finished = true;
    if (w->nc)
        net_conn_resume_input(w->nc);
    bool last = auth_wait_put(w);
    pthread_mutex_unlock(&auth_wait_lock);
    if (last)
        free(w);
}

/* The connection lets go of its check: on a verdict, or when it closes
 * (the check then finishes into nothing). Returns whether the check had
 * finished, with its verdict in c. */
/* see login.h */
bool client_auth_end(struct client *c, bool closing)
{
    struct auth_wait *w = c->auth_wait;
    pthread_mutex_lock(&auth_wait_lock);
    bool finished = w->finished;
    if (!finished && !closing) {
        pthread_mutex_unlock(&auth_wait_lock);
        return false;
    }
    if (finished) {
        c->auth_cause = w->cause;
        c->user_verified = w->user_verified;
    }
    w->nc = NULL;
    bool last = auth_wait_put(w);
    pthread_mutex_unlock(&auth_wait_lock);
    if (last)
        free(w);
    c->auth_wait = NULL;
    return finished;
}

/* Hands the CONNECT's check to auth's hashing threads. Returns true when
 * the verdict is in c already (no hash was needed, or the queue is full:
 * AUTH_BUSY), false when it will come to auth_checked. */
/* see login.h */
bool client_auth_start(struct client *c, struct auth_request *q)
{
    struct auth_wait *w = calloc(1, sizeof(*w));
    enum auth_cause now = AUTH_BUSY;
    int rc = w ? 0 : -1;
    if (w) {
        *w = (struct auth_wait){.nc = c->nc, .refs = 2};
        rc = auth_connect_async(c->b->auth, q, auth_checked, w, &now);
    }
    if (rc == 0) {
        c->auth_wait = w;
        return false;
    }
    free(w);
    c->auth_cause = rc > 0 ? now : AUTH_BUSY;
    c->user_verified = rc > 0 && q->user_verified;
    return true;
}
