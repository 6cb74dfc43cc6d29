/* src/broker/login.c: a connection's password check on auth's hashing
 * threads (decided at once, answered later, let go of while running). The
 * certificate read needs a TLS connection: tests/integration/test_identity.py
 * and test_nats_mir.py cover it. */
#include <time.h>

#include "auth/auth.h"
#include "broker/internal.h"
#include "broker/login.h"
#include "test.h"

static struct broker *b;
static struct auth *a;

/* A broker with auth in force and no password file: a user name alone is
 * nobody; the checks below bring their own secret (auth_request.check). */
static void setup(bool anonymous)
{
    struct broker_config cfg;
    broker_config_defaults(&cfg);
    b = broker_new(&cfg);
    ASSERT(b);
    a = auth_new();
    ASSERT(a);
    struct auth_settings s = {.allow_anonymous = anonymous};
    char err[256];
    ASSERT_EQ(auth_configure(a, &s, err, sizeof(err)), 0);
    broker_set_auth(b, a);
}

static void teardown(void)
{
    broker_free(b);
    auth_free(a);
}

/* Waits (bounded) for the check to finish; returns whether it did. */
static bool wait_verdict(struct client *c)
{
    for (int i = 0; i < 2000; i++) {
        if (client_auth_end(c, false))
            return true;
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return false;
}

TEST(anonymous_decided_at_once)
{
    setup(true);
    struct client c = {.b = b};
    struct auth_request q = {.client_id = "x", .peer = "127.0.0.1:1", .listener_anonymous = -1};
    ASSERT(client_auth_start(&c, &q));
    ASSERT_EQ(c.auth_cause, AUTH_OK);
    ASSERT(!c.auth_wait);
    teardown();
}

TEST(refused_anonymous_decided_at_once)
{
    setup(false);
    struct client c = {.b = b};
    struct auth_request q = {.client_id = "x", .peer = "127.0.0.1:1", .listener_anonymous = -1};
    ASSERT(client_auth_start(&c, &q));
    ASSERT_EQ(c.auth_cause, AUTH_NO_CREDENTIALS);
    teardown();
}

static bool secret_is(const void *arg, const uint8_t *secret, size_t len)
{
    const char *want = arg;
    return len == strlen(want) && memcmp(secret, want, len) == 0;
}

/* A check of the caller's own (as NATS's bcrypt users) runs on the pool:
 * the verdict comes later, right or wrong. */
TEST(slow_check_answers_later)
{
    setup(false);
    for (int right = 0; right < 2; right++) {
        struct client c = {.b = b};
        const char *pw = right ? "s3cret" : "nope";
        struct auth_request q = {.client_id = "x",
                                 .peer = "127.0.0.2:1",
                                 .listener_anonymous = -1,
                                 .username = (const uint8_t *)"u",
                                 .username_len = 1,
                                 .password = (const uint8_t *)pw,
                                 .password_len = strlen(pw),
                                 .check = secret_is,
                                 .check_arg = "s3cret"};
        ASSERT(!client_auth_start(&c, &q));
        ASSERT(c.auth_wait);
        ASSERT(wait_verdict(&c));
        ASSERT(!c.auth_wait);
        ASSERT_EQ(c.auth_cause, right ? AUTH_OK : AUTH_BAD_PASSWORD);
        ASSERT_EQ(c.user_verified, right ? 1 : 0);
    }
    ASSERT(auth_hash_counts(a).on_pool >= 2);
    ASSERT_EQ(auth_hash_counts(a).on_caller, 0u);
    teardown();
}

/* A connection that closes while its check runs lets go of it: the late
 * verdict touches nothing of it (ASan would see). */
TEST(closing_lets_go_of_a_running_check)
{
    setup(false);
    struct client c = {.b = b};
    struct auth_request q = {.client_id = "x",
                             .peer = "127.0.0.3:1",
                             .listener_anonymous = -1,
                             .username = (const uint8_t *)"u",
                             .username_len = 1,
                             .password = (const uint8_t *)"pw",
                             .password_len = 2,
                             .check = secret_is,
                             .check_arg = "pw"};
    if (!client_auth_start(&c, &q))
        client_auth_end(&c, true); /* closing: finished or not */
    ASSERT(!c.auth_wait);
    teardown(); /* auth_free waits for the pool */
}

/* Without a certificate read there is nothing peer_cert_as_username or
 * _clientid could take; dropping no copy is harmless and lets a later
 * CONNECT read again. (With one: test_identity.py.) */
TEST(no_certificate_no_names)
{
    struct client c = {0};
    ASSERT(client_cert_user(&c) == NULL);
    ASSERT(client_cert_clientid(&c) == NULL);
    c.cert_read = true;
    client_drop_cert(&c);
    ASSERT(!c.cert_read && c.cert == NULL);
}

int main(void)
{
    RUN(anonymous_decided_at_once);
    RUN(refused_anonymous_decided_at_once);
    RUN(slow_check_answers_later);
    RUN(closing_lets_go_of_a_running_check);
    RUN(no_certificate_no_names);
    TEST_DONE();
}
