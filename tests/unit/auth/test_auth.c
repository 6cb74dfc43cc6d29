#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/passwd.h"
#include "mqtt/mqtt.h"
#include "test.h"

static char dir[] = "/tmp/ward-auth-XXXXXX";
static char err[4096];
static char pw_path[256], acl_path[256], bad_path[256];

static void write_file(const char *p, const char *text)
{
    FILE *f = fopen(p, "w");
    ASSERT(f);
    fputs(text, f);
    fclose(f);
}

static struct auth_request req(const char *peer, const char *user, const char *pw)
{
    struct auth_request q = {.client_id = "c", .peer = peer, .listener_anonymous = -1};
    if (user) {
        q.username = (const uint8_t *)user;
        q.username_len = strlen(user);
    }
    if (pw) {
        q.password = (const uint8_t *)pw;
        q.password_len = strlen(pw);
    }
    return q;
}

TEST(defaults_allow_everyone)
{
    struct auth *a = auth_new();
    struct auth_request q = req("1.1.1.1:1", NULL, NULL);
    ASSERT_EQ(auth_connect(a, &q), AUTH_OK);
    struct acl_identity id = {.client_id = "c"};
    ASSERT(auth_allowed(a, &id, ACL_PUBLISH, "x", 1));
    ASSERT(!auth_has_rules(a));
    auth_free(a);
}

TEST(passwords_and_anonymous)
{
    struct auth *a = auth_new();
    struct auth_settings s = {
        .allow_anonymous = false, .no_match_allow = true, .password_file = pw_path};
    ASSERT_EQ(auth_configure(a, &s, err, sizeof(err)), 0);
    struct auth_request q = req("10.0.0.1:1", "alice", "pw-a");
    ASSERT_EQ(auth_connect(a, &q), AUTH_OK);
    q = req("10.0.0.2:1", "alice", "nope");
    ASSERT_EQ(auth_connect(a, &q), AUTH_BAD_PASSWORD);
    q = req("10.0.0.3:1", "alice", NULL);
    ASSERT_EQ(auth_connect(a, &q), AUTH_BAD_PASSWORD);
    q = req("10.0.0.4:1", "mallory", "x");
    ASSERT_EQ(auth_connect(a, &q), AUTH_UNKNOWN_USER);
    q = req("10.0.0.5:1", NULL, NULL);
    ASSERT_EQ(auth_connect(a, &q), AUTH_NO_CREDENTIALS);
    /* A listener may allow anonymous access on its own. */
    q.listener_anonymous = 1;
    ASSERT_EQ(auth_connect(a, &q), AUTH_OK);
    /* A certificate identity logs in alone, unless a password is wanted too. */
    q = req("10.0.0.6:1", NULL, NULL);
    q.cert_identity = true;
    ASSERT_EQ(auth_connect(a, &q), AUTH_OK);
    q.cert_and_password = true;
    ASSERT_EQ(auth_connect(a, &q), AUTH_PASSWORD_REQUIRED);
    q = req("10.0.0.6:2", "alice", "pw-a");
    q.cert_identity = q.cert_and_password = true;
    ASSERT_EQ(auth_connect(a, &q), AUTH_OK);
    ASSERT_EQ(auth_reason(AUTH_BAD_PASSWORD), MQTT_RC_BAD_USERNAME_OR_PASSWORD);
    ASSERT_EQ(auth_reason(AUTH_NO_CREDENTIALS), MQTT_RC_NOT_AUTHORIZED);
    ASSERT_EQ(auth_reason(AUTH_RATE_LIMITED), MQTT_RC_CONNECTION_RATE_EXCEEDED);
    uint64_t n[AUTH_NCAUSES];
    auth_counters(a, n);
    ASSERT_EQ(n[AUTH_BAD_PASSWORD], 2);
    ASSERT_EQ(n[AUTH_UNKNOWN_USER], 1);
    auth_free(a);
}

TEST(failures_are_rate_limited_per_address)
{
    struct auth *a = auth_new();
    struct auth_settings s = {
        .allow_anonymous = false, .no_match_allow = true, .password_file = pw_path};
    ASSERT_EQ(auth_configure(a, &s, err, sizeof(err)), 0);
    for (int i = 0; i < 6; i++) {
        struct auth_request q = req("10.9.9.9:1000", "alice", "bad");
        ASSERT_EQ(auth_connect(a, &q), AUTH_BAD_PASSWORD);
    }
    /* Now even the right password is refused from there, before hashing... */
    struct auth_request q = req("10.9.9.9:1001", "alice", "pw-a");
    ASSERT_EQ(auth_connect(a, &q), AUTH_RATE_LIMITED);
    /* ...while other addresses are unaffected. */
    q = req("[::1]:1001", "alice", "pw-a");
    ASSERT_EQ(auth_connect(a, &q), AUTH_OK);
    auth_free(a);
}

TEST(acl_and_reload)
{
    struct auth *a = auth_new();
    struct auth_settings s = {
        .allow_anonymous = true, .no_match_allow = false, .acl_file = acl_path};
    ASSERT_EQ(auth_configure(a, &s, err, sizeof(err)), 0);
    ASSERT(auth_has_rules(a));
    struct acl_identity id = {.username = "alice", .client_id = "c"};
    ASSERT(auth_allowed(a, &id, ACL_PUBLISH, "up/alice", 8));
    ASSERT(!auth_allowed(a, &id, ACL_PUBLISH, "up/bob", 6));
    ASSERT(!auth_allowed(a, &id, ACL_SUBSCRIBE, "x", 1)); /* no_match = deny */
    /* A bad file is refused and the old rules stay. */
    s.acl_file = bad_path;
    ASSERT_EQ(auth_configure(a, &s, err, sizeof(err)), -1);
    ASSERT(strstr(err, "bad.conf:1:"));
    ASSERT(auth_allowed(a, &id, ACL_PUBLISH, "up/alice", 8));
    /* A missing password file as well. */
    s.acl_file = acl_path;
    s.password_file = "/nonexistent/pw";
    ASSERT_EQ(auth_configure(a, &s, err, sizeof(err)), -1);
    ASSERT(strstr(err, "/nonexistent/pw"));
    /* Without an ACL and with no_match allow, there are no rules. */
    s = (struct auth_settings){.allow_anonymous = true, .no_match_allow = true};
    ASSERT_EQ(auth_configure(a, &s, err, sizeof(err)), 0);
    ASSERT(!auth_has_rules(a));
    ASSERT(auth_allowed(a, &id, ACL_PUBLISH, "up/bob", 6));
    auth_free(a);
}

/* ---- the hashing pool ---------------------------------------------------- */

/* What one asynchronous check reported. With `block` set its done callback
 * waits until released, which keeps that check pending and its thread busy:
 * the tests order events by this, never by time. */
struct verdict {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int calls;
    enum auth_cause cause;
    bool verified, block;
};

static void verdict_init(struct verdict *v, bool block)
{
    *v = (struct verdict){.block = block, .cause = AUTH_NCAUSES};
    pthread_mutex_init(&v->lock, NULL);
    pthread_cond_init(&v->cond, NULL);
}

static void verdict_destroy(struct verdict *v)
{
    pthread_mutex_destroy(&v->lock);
    pthread_cond_destroy(&v->cond);
}

static void on_done(void *ctx, enum auth_cause cause, bool verified)
{
    struct verdict *v = ctx;
    pthread_mutex_lock(&v->lock);
    v->calls++;
    v->cause = cause;
    v->verified = verified;
    pthread_cond_broadcast(&v->cond);
    while (v->block)
        pthread_cond_wait(&v->cond, &v->lock);
    pthread_mutex_unlock(&v->lock);
}

/* Waits for the verdict (the deadline only turns a hang into a failure). */
static void wait_done(struct verdict *v)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 60;
    pthread_mutex_lock(&v->lock);
    int rc = 0;
    while (v->calls == 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&v->cond, &v->lock, &deadline);
    pthread_mutex_unlock(&v->lock);
    ASSERT_EQ(v->calls, 1);
}

static void release(struct verdict *v)
{
    pthread_mutex_lock(&v->lock);
    v->block = false;
    pthread_cond_broadcast(&v->cond);
    pthread_mutex_unlock(&v->lock);
}

static struct auth *pool_auth(uint32_t threads, uint32_t max_pending)
{
    struct auth *a = auth_new();
    struct auth_settings s = {.allow_anonymous = false,
                              .no_match_allow = true,
                              .password_file = pw_path,
                              .hash_threads = threads,
                              .max_pending = max_pending};
    ASSERT_EQ(auth_configure(a, &s, err, sizeof(err)), 0);
    return a;
}

/* Queues a check; returns what auth_connect_async returned. */
static int submit(struct auth *a, const char *peer, const char *user, const char *pw,
                  struct verdict *v)
{
    struct auth_request q = req(peer, user, pw);
    enum auth_cause now = AUTH_NCAUSES;
    int rc = auth_connect_async(a, &q, on_done, v, &now);
    if (rc == 0)
        ASSERT_EQ(now, AUTH_NCAUSES); /* not decided now: done will say */
    return rc;
}

TEST(async_verdicts_come_from_the_pool)
{
    struct auth *a = pool_auth(2, 8);
    const char *pw[] = {"pw-a", "nope", "x"};
    const char *user[] = {"alice", "alice", "mallory"};
    enum auth_cause want[] = {AUTH_OK, AUTH_BAD_PASSWORD, AUTH_UNKNOWN_USER};
    for (int i = 0; i < 3; i++) {
        struct verdict v;
        verdict_init(&v, false);
        ASSERT_EQ(submit(a, "10.1.0.1:1", user[i], pw[i], &v), 0);
        wait_done(&v);
        ASSERT_EQ(v.cause, want[i]);
        ASSERT_EQ(v.verified, want[i] == AUTH_OK);
        verdict_destroy(&v);
    }
    struct auth_hash_counts n = auth_hash_counts(a);
    ASSERT_EQ(n.total, 3);
    ASSERT_EQ(n.on_pool, 3);
    ASSERT_EQ(n.on_caller, 0);
    /* alice's good password is remembered now: no hash at all. */
    struct verdict v;
    verdict_init(&v, false);
    ASSERT_EQ(submit(a, "10.1.0.1:2", "alice", "pw-a", &v), 0);
    wait_done(&v);
    ASSERT_EQ(v.cause, AUTH_OK);
    ASSERT_EQ(auth_hash_counts(a).total, 3);
    verdict_destroy(&v);
    uint64_t c[AUTH_NCAUSES];
    auth_counters(a, c);
    ASSERT_EQ(c[AUTH_BAD_PASSWORD], 1);
    ASSERT_EQ(c[AUTH_UNKNOWN_USER], 1);
    auth_free(a);
}

TEST(decisions_without_a_hash_come_at_once)
{
    struct auth *a = pool_auth(1, 1);
    struct verdict v;
    verdict_init(&v, false);
    struct auth_request q = req("10.2.0.1:1", NULL, NULL);
    enum auth_cause now = AUTH_NCAUSES;
    ASSERT_EQ(auth_connect_async(a, &q, on_done, &v, &now), 1);
    ASSERT_EQ(now, AUTH_NO_CREDENTIALS);
    q = req("10.2.0.2:1", "alice", NULL); /* a user name without a password */
    ASSERT_EQ(auth_connect_async(a, &q, on_done, &v, &now), 1);
    ASSERT_EQ(now, AUTH_BAD_PASSWORD);
    ASSERT(!q.user_verified);
    q = req("10.2.0.3:1", "mallory", NULL);
    ASSERT_EQ(auth_connect_async(a, &q, on_done, &v, &now), 1);
    ASSERT_EQ(now, AUTH_UNKNOWN_USER);
    q = req("10.2.0.4:1", NULL, NULL); /* a certificate alone */
    q.cert_identity = true;
    ASSERT_EQ(auth_connect_async(a, &q, on_done, &v, &now), 1);
    ASSERT_EQ(now, AUTH_OK);
    /* An address blocked for its failures is refused before any hash. */
    for (int i = 0; i < 6; i++) {
        q = req("10.2.0.9:1", "alice", "bad");
        ASSERT_EQ(auth_connect(a, &q), AUTH_BAD_PASSWORD);
    }
    uint64_t hashes = auth_hash_counts(a).total;
    q = req("10.2.0.9:2", "alice", "pw-a");
    ASSERT_EQ(auth_connect_async(a, &q, on_done, &v, &now), 1);
    ASSERT_EQ(now, AUTH_RATE_LIMITED);
    ASSERT_EQ(auth_hash_counts(a).total, hashes);
    ASSERT_EQ(v.calls, 0);
    auth_free(a);
    verdict_destroy(&v);
}

TEST(requests_are_copied)
{
    struct auth *a = pool_auth(1, 4);
    struct verdict first, second;
    verdict_init(&first, true);
    verdict_init(&second, false);
    ASSERT_EQ(submit(a, "10.3.0.1:1", "alice", "nope", &first), 0);
    wait_done(&first); /* the only thread now waits in first's callback */
    char user[] = "alice", pw[] = "pw-a", peer[] = "10.3.0.2:1";
    struct auth_request q = req(peer, user, pw);
    enum auth_cause now;
    ASSERT_EQ(auth_connect_async(a, &q, on_done, &second, &now), 0);
    memset(user, 'x', strlen(user)); /* the caller's buffers go away */
    memset(pw, 'x', strlen(pw));
    memset(peer, 'x', strlen(peer));
    release(&first);
    wait_done(&second);
    ASSERT_EQ(second.cause, AUTH_OK);
    ASSERT(second.verified);
    auth_free(a);
    verdict_destroy(&first);
    verdict_destroy(&second);
}

TEST(a_full_queue_refuses)
{
    struct auth *a = pool_auth(1, 2);
    struct verdict running, queued, refused, later;
    verdict_init(&running, true);
    verdict_init(&queued, false);
    verdict_init(&refused, false);
    verdict_init(&later, false);
    ASSERT_EQ(submit(a, "10.4.0.1:1", "alice", "nope", &running), 0);
    wait_done(&running); /* pending until released */
    ASSERT_EQ(submit(a, "10.4.0.2:1", "alice", "nope", &queued), 0);
    ASSERT_EQ(submit(a, "10.4.0.3:1", "alice", "pw-a", &refused), -1);
    uint64_t c[AUTH_NCAUSES];
    auth_counters(a, c);
    ASSERT_EQ(c[AUTH_BUSY], 1);
    ASSERT_EQ(auth_reason(AUTH_BUSY), MQTT_RC_CONNECTION_RATE_EXCEEDED);
    ASSERT_EQ(auth_reason311(AUTH_BUSY), MQTT_RC311_SERVER_UNAVAILABLE);
    ASSERT_EQ(auth_reason311(AUTH_BAD_PASSWORD), MQTT_RC311_BAD_USERNAME_OR_PASSWORD);
    ASSERT_EQ(auth_reason311(AUTH_NO_CREDENTIALS), MQTT_RC311_NOT_AUTHORIZED);
    /* Refused work is no work: the refused check hashed nothing. */
    ASSERT_EQ(auth_hash_counts(a).total, 1);
    release(&running);
    wait_done(&queued);
    ASSERT_EQ(queued.cause, AUTH_BAD_PASSWORD);
    /* Room again (queued may still be in its callback: one of two). */
    ASSERT_EQ(submit(a, "10.4.0.4:1", "alice", "pw-a", &later), 0);
    wait_done(&later);
    ASSERT_EQ(later.cause, AUTH_OK);
    ASSERT_EQ(refused.calls, 0);
    auth_free(a);
    verdict_destroy(&running);
    verdict_destroy(&queued);
    verdict_destroy(&refused);
    verdict_destroy(&later);
}

TEST(unknown_users_cost_one_hash)
{
    struct auth *a = pool_auth(1, 4);
    struct auth_request q = req("10.5.0.1:1", "mallory", "x");
    ASSERT_EQ(auth_connect(a, &q), AUTH_UNKNOWN_USER);
    struct auth_hash_counts n = auth_hash_counts(a);
    ASSERT_EQ(n.total, 1);
    ASSERT_EQ(n.on_caller, 1); /* auth_connect hashes on the caller's thread */
    ASSERT_EQ(n.on_pool, 0);
    q = req("10.5.0.2:1", "alice", "wrong"); /* the same work as a wrong password */
    ASSERT_EQ(auth_connect(a, &q), AUTH_BAD_PASSWORD);
    ASSERT_EQ(auth_hash_counts(a).total, 2);
    struct verdict v;
    verdict_init(&v, false);
    ASSERT_EQ(submit(a, "10.5.0.3:1", "nobody", "y", &v), 0);
    wait_done(&v);
    ASSERT_EQ(v.cause, AUTH_UNKNOWN_USER);
    ASSERT(!v.verified);
    n = auth_hash_counts(a);
    ASSERT_EQ(n.total, 3);
    ASSERT_EQ(n.on_pool, 1);
    /* The client cannot tell the two apart. */
    ASSERT_EQ(auth_reason(AUTH_UNKNOWN_USER), auth_reason(AUTH_BAD_PASSWORD));
    ASSERT_EQ(auth_reason311(AUTH_UNKNOWN_USER), auth_reason311(AUTH_BAD_PASSWORD));
    ASSERT_EQ(auth_hash_counts(NULL).total, 0);
    auth_free(a);
    verdict_destroy(&v);
}

/* One address cannot have more checks pending than the failure limit would
 * let fail: concurrent guesses do not outrun it. */
TEST(pending_checks_count_against_the_address)
{
    struct auth *a = pool_auth(1, 64);
    struct verdict blocker, v[7], other;
    verdict_init(&blocker, true);
    verdict_init(&other, false);
    ASSERT_EQ(submit(a, "10.7.0.1:1", "alice", "nope", &blocker), 0);
    wait_done(&blocker); /* the only thread is held: what follows queues */
    for (int i = 0; i < 6; i++) {
        verdict_init(&v[i], false);
        ASSERT_EQ(submit(a, "10.7.0.2:1", "alice", "nope", &v[i]), 0);
    }
    verdict_init(&v[6], false);
    struct auth_request q = req("10.7.0.2:2", "alice", "pw-a");
    enum auth_cause now = AUTH_NCAUSES;
    ASSERT_EQ(auth_connect_async(a, &q, on_done, &v[6], &now), 1);
    ASSERT_EQ(now, AUTH_RATE_LIMITED);
    ASSERT_EQ(submit(a, "10.7.0.3:1", "alice", "pw-a", &other), 0); /* others unaffected */
    release(&blocker);
    for (int i = 0; i < 6; i++) {
        wait_done(&v[i]);
        ASSERT_EQ(v[i].cause, AUTH_BAD_PASSWORD);
    }
    wait_done(&other);
    ASSERT_EQ(other.cause, AUTH_OK);
    /* Six failures: the address is blocked now, before any hash. */
    q = req("10.7.0.2:3", "alice", "pw-a");
    ASSERT_EQ(auth_connect_async(a, &q, on_done, &v[6], &now), 1);
    ASSERT_EQ(now, AUTH_RATE_LIMITED);
    ASSERT_EQ(v[6].calls, 0);
    ASSERT_EQ(auth_hash_counts(a).total, 8);
    auth_free(a);
    for (int i = 0; i < 7; i++)
        verdict_destroy(&v[i]);
    verdict_destroy(&blocker);
    verdict_destroy(&other);
}

/* The dummy entry uses the iteration count most of the file's entries use. */
TEST(dummy_entry_matches_the_file)
{
    struct passwd_db db;
    passwd_db_init(&db);
    ASSERT_EQ(db.dummy_iterations, 0); /* empty: PASSWD_ITERATIONS is used */
    char text[2048] = "", line[400], h[256];
    const char *users[] = {"a", "b", "c"};
    uint32_t iters[] = {2000, 3000, 2000};
    for (int i = 0; i < 3; i++) {
        struct passwd_entry e = {.iterations = iters[i]};
        ASSERT_EQ(passwd_format_hash(&e, h, sizeof(h)), 0);
        snprintf(line, sizeof(line), "\"%s\" = \"%s\"\n", users[i], h);
        strcat(text, line);
    }
    char path[300];
    snprintf(path, sizeof(path), "%s/iters.conf", dir);
    write_file(path, text);
    ASSERT_EQ(passwd_load(&db, path, err, sizeof(err)), 0);
    ASSERT_EQ(db.dummy_iterations, 2000);
    bool hashed = false;
    ASSERT_EQ(passwd_verify(&db, "zed", 3, (const uint8_t *)"p", 1, &hashed), PASSWD_NO_USER);
    ASSERT(hashed);
    ASSERT(passwd_delete(&db, "a"));
    ASSERT_EQ(db.dummy_iterations, 3000); /* a tie takes the larger */
    passwd_db_free(&db);
}

/* Every queued check is answered exactly once, also when auth_free comes
 * first (those that never ran hear AUTH_BUSY), so callers can free what they
 * gave as ctx. */
TEST(auth_free_answers_every_check)
{
    struct auth *a = pool_auth(1, 8);
    struct verdict v[4];
    for (int i = 0; i < 4; i++) {
        verdict_init(&v[i], false);
        ASSERT_EQ(submit(a, "10.6.0.1:1", "alice", "nope", &v[i]), 0);
    }
    auth_free(a);
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(v[i].calls, 1);
        ASSERT(v[i].cause == AUTH_BAD_PASSWORD || v[i].cause == AUTH_BUSY);
        verdict_destroy(&v[i]);
    }
}

int main(void)
{
    ASSERT(mkdtemp(dir));
    snprintf(pw_path, sizeof(pw_path), "%s/pw.conf", dir);
    snprintf(acl_path, sizeof(acl_path), "%s/acl.conf", dir);
    snprintf(bad_path, sizeof(bad_path), "%s/bad.conf", dir);
    struct passwd_db db;
    passwd_db_init(&db);
    ASSERT_EQ(passwd_set(&db, "alice", "pw-a", 4, err, sizeof(err)), 0);
    ASSERT_EQ(passwd_save(&db, pw_path, err, sizeof(err)), 0);
    passwd_db_free(&db);
    write_file(acl_path, "rules = [{\"permit\": \"allow\", \"action\": \"publish\", "
                         "\"topics\": [\"up/${username}\"]}]\n");
    write_file(bad_path, "rules = [{\"permit\": \"allow\", \"topics\": \"up\"}]\n");
    RUN(defaults_allow_everyone);
    RUN(passwords_and_anonymous);
    RUN(failures_are_rate_limited_per_address);
    RUN(acl_and_reload);
    RUN(async_verdicts_come_from_the_pool);
    RUN(decisions_without_a_hash_come_at_once);
    RUN(requests_are_copied);
    RUN(a_full_queue_refuses);
    RUN(unknown_users_cost_one_hash);
    RUN(pending_checks_count_against_the_address);
    RUN(dummy_entry_matches_the_file);
    RUN(auth_free_answers_every_check);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    TEST_DONE();
}
