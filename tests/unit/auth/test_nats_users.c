/* NATS users, NKeys, the token, and nats-server-style permissions. */
#include <string.h>

#include "auth/nats_users.h"
#include "test.h"

/* Cost 4 keeps the test fast; made with Go's bcrypt (see test_bcrypt.c). */
#define HASH_S3CR3T "$2a$04$k0qS1xEsExVJ8UYToS4yiuA2B.jrMLxRyy79XpXiD7y7F/V1YkF76"
#define PUB         "UB43KVROR7TFJ6KAPCYRF2FJROTZAH4FHLTJLPWX4DRZCC5NASLGJBFE"
#define ACCOUNT_PUB "ADYLD6UK7KNWEESBXWDH6SEVFQVPLJD2OLEK3VWLKJZ3M57MEHSRD5AE"

static char err[512];

#define N(a) (sizeof(a) / sizeof((a)[0]))

static bool pub(const struct auth_nats_perms *p, const char *s)
{
    return auth_nats_may_publish(p, (const uint8_t *)s, strlen(s));
}

static bool sub(const struct auth_nats_perms *p, const char *s, const char *q)
{
    return auth_nats_may_subscribe(p, (const uint8_t *)s, strlen(s), (const uint8_t *)q,
                                   q ? strlen(q) : 0);
}

static bool recv(const struct auth_nats_perms *p, const char *s, const char *q)
{
    return auth_nats_may_receive(p, (const uint8_t *)s, strlen(s), (const uint8_t *)q,
                                 q ? strlen(q) : 0);
}

static bool needs_filter(const struct auth_nats_perms *p, const char *s)
{
    return auth_nats_sub_needs_filter(p, (const uint8_t *)s, strlen(s));
}

TEST(users)
{
    struct auth_nats *a = auth_nats_new();
    ASSERT(a);
    ASSERT(!auth_nats_has_users(a));
    struct auth_nats_user u = {"alice", HASH_S3CR3T, NULL};
    ASSERT_EQ(auth_nats_add_user(a, &u, err, sizeof err), 0);
    ASSERT(auth_nats_has_users(a));
    ASSERT(!auth_nats_has_nkeys(a));
    ASSERT(!auth_nats_has_token(a));
    const struct auth_nats_entry *e = auth_nats_find_user(a, "alice");
    ASSERT(e);
    ASSERT_STR_EQ(auth_nats_entry_name(e), "alice");
    ASSERT(auth_nats_entry_perms(e) == NULL);
    ASSERT(auth_nats_check_password(e, "s3cr3t-ward"));
    ASSERT(!auth_nats_check_password(e, "s3cr3t-war"));
    ASSERT(!auth_nats_check_password(e, NULL));
    ASSERT(!auth_nats_check_password(NULL, "s3cr3t-ward"));
    ASSERT(auth_nats_find_user(a, "alic") == NULL);
    ASSERT(auth_nats_find_user(a, "Alice") == NULL);
    ASSERT(auth_nats_find_user(a, NULL) == NULL);
    ASSERT(auth_nats_find_nkey(a, "alice") == NULL);
    auth_nats_free(a);
}

TEST(user_refusals)
{
    struct auth_nats *a = auth_nats_new();
    ASSERT(a);
    struct auth_nats_user u = {"bob", "s3cr3t-ward", NULL};
    ASSERT_EQ(auth_nats_add_user(a, &u, err, sizeof err), -1);
    ASSERT(strstr(err, "\"bob\""));
    ASSERT(strstr(err, "is not a bcrypt hash: make one with `ward passwd --bcrypt`"));
    u.password = HASH_S3CR3T;
    ASSERT_EQ(auth_nats_add_user(a, &u, err, sizeof err), 0);
    ASSERT_EQ(auth_nats_add_user(a, &u, err, sizeof err), -1);
    ASSERT(strstr(err, "twice"));
    /* Too slow to check: refused with the reason. */
    u.user = "slow";
    u.password = "$2b$17$abcdefghijklmnopqrstuu23JPZtHcGhwXSF41f93o/7vBdDut3Xu";
    ASSERT_EQ(auth_nats_add_user(a, &u, err, sizeof err), -1);
    ASSERT(strstr(err, "cost 17 is over the limit of 16"));
    u.password = HASH_S3CR3T;
    u.user = "";
    ASSERT_EQ(auth_nats_add_user(a, &u, err, sizeof err), -1);
    u.user = NULL;
    ASSERT_EQ(auth_nats_add_user(a, &u, err, sizeof err), -1);
    /* A control character in a name is escaped in the message. */
    u.user = "ev\nil";
    u.password = "plain";
    ASSERT_EQ(auth_nats_add_user(a, &u, err, sizeof err), -1);
    ASSERT(strchr(err, '\n') == NULL);
    ASSERT(auth_nats_find_user(a, "bob"));
    auth_nats_free(a);
}

TEST(many_users)
{
    struct auth_nats *a = auth_nats_new();
    ASSERT(a);
    char name[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "user%d", i);
        struct auth_nats_user u = {name, HASH_S3CR3T, NULL};
        ASSERT_EQ(auth_nats_add_user(a, &u, err, sizeof err), 0);
    }
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "user%d", i);
        const struct auth_nats_entry *e = auth_nats_find_user(a, name);
        ASSERT(e);
        ASSERT_STR_EQ(auth_nats_entry_name(e), name);
    }
    ASSERT(auth_nats_find_user(a, "user1000") == NULL);
    auth_nats_free(a);
}

TEST(nkeys)
{
    struct auth_nats *a = auth_nats_new();
    ASSERT(a);
    ASSERT_EQ(auth_nats_add_nkey(a, PUB, NULL, err, sizeof err), 0);
    ASSERT(auth_nats_has_nkeys(a));
    ASSERT(!auth_nats_has_users(a));
    const struct auth_nats_entry *e = auth_nats_find_nkey(a, PUB);
    ASSERT(e);
    ASSERT_STR_EQ(auth_nats_entry_name(e), PUB);
    ASSERT(!auth_nats_check_password(e, ""));
    ASSERT(auth_nats_find_user(a, PUB) == NULL);
    ASSERT_EQ(auth_nats_add_nkey(a, PUB, NULL, err, sizeof err), -1);
    ASSERT(strstr(err, "twice"));
    ASSERT_EQ(auth_nats_add_nkey(a, ACCOUNT_PUB, NULL, err, sizeof err), -1);
    ASSERT(strstr(err, "not an NKey user public key"));
    ASSERT_EQ(auth_nats_add_nkey(a, "", NULL, err, sizeof err), -1);
    ASSERT_EQ(auth_nats_add_nkey(a, NULL, NULL, err, sizeof err), -1);
    auth_nats_free(a);
}

TEST(tokens)
{
    struct auth_nats *a = auth_nats_new();
    ASSERT(a);
    ASSERT(!auth_nats_check_token(a, "t0ken"));
    ASSERT_EQ(auth_nats_set_token(a, "t0ken", err, sizeof err), 0);
    ASSERT(auth_nats_has_token(a));
    ASSERT(auth_nats_check_token(a, "t0ken"));
    ASSERT(!auth_nats_check_token(a, "t0ke"));
    ASSERT(!auth_nats_check_token(a, "t0ken "));
    ASSERT(!auth_nats_check_token(a, ""));
    ASSERT(!auth_nats_check_token(a, NULL));
    /* A bcrypt token is checked by hash; the hash itself is not the token. */
    ASSERT_EQ(auth_nats_set_token(a, HASH_S3CR3T, err, sizeof err), 0);
    ASSERT(auth_nats_check_token(a, "s3cr3t-ward"));
    ASSERT(!auth_nats_check_token(a, "t0ken"));
    ASSERT(!auth_nats_check_token(a, HASH_S3CR3T));
    ASSERT_EQ(auth_nats_set_token(a, "$2b$31$abcdefghijklmnopqrstuu23JPZtHcGhwXSF41f93o/7vBdDut3Xu",
                                  err, sizeof err),
              -1);
    ASSERT_EQ(auth_nats_set_token(a, "", err, sizeof err), -1);
    ASSERT_EQ(auth_nats_set_token(a, NULL, err, sizeof err), -1);
    ASSERT(auth_nats_check_token(a, "s3cr3t-ward")); /* a refusal changes nothing */
    auth_nats_free(a);
}

TEST(perms_are_copied_and_normalised)
{
    const char *pa[] = {"orders.>"}, *sa[] = {"  jobs.*   workers  ", "_INBOX.>"};
    struct auth_nats_perms p = {.pub_allow = pa,
                                .npub_allow = N(pa),
                                .sub_allow = sa,
                                .nsub_allow = N(sa),
                                .allow_responses = true};
    struct auth_nats *a = auth_nats_new();
    ASSERT(a);
    struct auth_nats_user u = {"carol", HASH_S3CR3T, &p};
    ASSERT_EQ(auth_nats_add_user(a, &u, err, sizeof err), 0);
    pa[0] = "changed"; /* the caller's arrays are not kept */
    const struct auth_nats_perms *c = auth_nats_entry_perms(auth_nats_find_user(a, "carol"));
    ASSERT(c && c != &p);
    ASSERT_EQ(c->npub_allow, 1);
    ASSERT_STR_EQ(c->pub_allow[0], "orders.>");
    ASSERT_EQ(c->nsub_allow, 2);
    ASSERT_STR_EQ(c->sub_allow[0], "jobs.* workers");
    ASSERT_STR_EQ(c->sub_allow[1], "_INBOX.>");
    ASSERT_EQ(c->npub_deny, 0);
    ASSERT(c->allow_responses);
    ASSERT_EQ(c->responses_max, 1); /* the default */
    ASSERT_EQ(c->responses_expires_ms, 0);
    p.responses_max = 5;
    p.responses_expires_ms = 30000;
    ASSERT_EQ(auth_nats_add_nkey(a, PUB, &p, err, sizeof err), 0);
    c = auth_nats_entry_perms(auth_nats_find_nkey(a, PUB));
    ASSERT_EQ(c->responses_max, 5);
    ASSERT_EQ(c->responses_expires_ms, 30000);
    ASSERT_STR_EQ(c->pub_allow[0], "changed");
    auth_nats_free(a);
}

TEST(perms_with_bad_subjects)
{
    const char *bad[] = {"",     " ",         "foo..bar",    ".foo",
                         "foo.", "foo.>.bar", "foo bar baz", "foo\tbar\tbaz"};
    struct auth_nats *a = auth_nats_new();
    ASSERT(a);
    for (size_t i = 0; i < N(bad); i++) {
        struct auth_nats_perms p = {.sub_deny = &bad[i], .nsub_deny = 1};
        struct auth_nats_user u = {"dave", HASH_S3CR3T, &p};
        ASSERT_EQ(auth_nats_add_user(a, &u, err, sizeof err), -1);
        ASSERT(strstr(err, "subscribe deny"));
    }
    /* Queues belong to subscribe entries only. */
    const char *q[] = {"foo.* workers"};
    struct auth_nats_perms p = {.pub_allow = q, .npub_allow = 1};
    struct auth_nats_user u = {"dave", HASH_S3CR3T, &p};
    ASSERT_EQ(auth_nats_add_user(a, &u, err, sizeof err), -1);
    ASSERT(strstr(err, "publish allow"));
    p = (struct auth_nats_perms){.pub_deny = NULL, .npub_deny = 2};
    ASSERT_EQ(auth_nats_add_user(a, &u, err, sizeof err), -1);
    /* A refused user leaves nothing behind; then the name is free. */
    ASSERT(auth_nats_find_user(a, "dave") == NULL);
    u.perms = NULL;
    ASSERT_EQ(auth_nats_add_user(a, &u, err, sizeof err), 0);
    auth_nats_free(a);
}

TEST(publish)
{
    ASSERT(pub(NULL, "anything.at.all"));
    ASSERT(!pub(NULL, "bad..subject"));
    ASSERT(!pub(NULL, ""));
    const char *allow[] = {"orders.*", "audit.>", "status"}, *deny[] = {"orders.secret"};
    struct auth_nats_perms p = {
        .pub_allow = allow, .npub_allow = N(allow), .pub_deny = deny, .npub_deny = N(deny)};
    ASSERT(pub(&p, "orders.new"));
    ASSERT(!pub(&p, "orders.new.eu"));
    ASSERT(!pub(&p, "orders"));
    ASSERT(pub(&p, "audit.a"));
    ASSERT(pub(&p, "audit.a.b.c"));
    ASSERT(!pub(&p, "audit"));
    ASSERT(pub(&p, "status"));
    ASSERT(!pub(&p, "status.x"));
    ASSERT(!pub(&p, "orders.secret")); /* deny wins */
    ASSERT(!pub(&p, "other"));
    ASSERT(!pub(&p, "orders.bad subject"));
    /* Deny only: everything else allowed. */
    struct auth_nats_perms d = {.pub_deny = deny, .npub_deny = N(deny)};
    ASSERT(pub(&d, "whatever"));
    ASSERT(!pub(&d, "orders.secret"));
    ASSERT(!pub(&d, "orders.*")); /* a wildcard subject reaching a denied one */
    const char *wide[] = {"admin.>"};
    d.pub_deny = wide;
    ASSERT(!pub(&d, "admin.users.delete"));
    ASSERT(pub(&d, "admin"));
}

TEST(publish_with_responses)
{
    /* allow_responses alone denies publishing: replies are the broker's. */
    struct auth_nats_perms r = {.allow_responses = true, .responses_max = 1};
    ASSERT(!pub(&r, "anything"));
    const char *allow[] = {"status"};
    r.pub_allow = allow;
    r.npub_allow = 1;
    ASSERT(pub(&r, "status"));
    ASSERT(!pub(&r, "other"));
}

TEST(subscribe_allow_is_a_superset)
{
    ASSERT(sub(NULL, ">", NULL));
    ASSERT(!sub(NULL, "a.>.b", NULL));
    ASSERT(!sub(NULL, "a", "bad queue"));
    const char *allow[] = {"telemetry.>", "cmd.*.get", "_INBOX.>"};
    struct auth_nats_perms p = {.sub_allow = allow, .nsub_allow = N(allow)};
    ASSERT(sub(&p, "telemetry.x", NULL));
    ASSERT(sub(&p, "telemetry.*", NULL));
    ASSERT(sub(&p, "telemetry.>", NULL));
    ASSERT(sub(&p, "telemetry.*.temp", NULL));
    ASSERT(!sub(&p, "telemetry", NULL));
    ASSERT(!sub(&p, ">", NULL));
    ASSERT(!sub(&p, "*.x", NULL));
    ASSERT(sub(&p, "cmd.dev1.get", NULL));
    ASSERT(sub(&p, "cmd.*.get", NULL));
    ASSERT(!sub(&p, "cmd.>", NULL)); /* wider than cmd.*.get */
    /* Stricter than nats-server, which lets "foo.>" through under "foo.*". */
    const char *one[] = {"foo.*"};
    struct auth_nats_perms f = {.sub_allow = one, .nsub_allow = 1};
    ASSERT(!sub(&f, "foo.>", NULL));
    ASSERT(sub(&f, "foo.*", NULL));
    ASSERT(!sub(&p, "cmd.dev1.set", NULL));
    ASSERT(!sub(&p, "cmd.dev1.*", NULL));
    ASSERT(sub(&p, "_INBOX.abc.1", NULL));
    /* A queue subscription with no queue entries: plain entries decide. */
    ASSERT(sub(&p, "telemetry.x", "grp"));
    ASSERT(!sub(&p, "other", "grp"));
}

TEST(subscribe_deny_and_delivery_filter)
{
    const char *deny[] = {"telemetry.secret.>", "admin"};
    struct auth_nats_perms p = {.sub_deny = deny, .nsub_deny = N(deny)};
    ASSERT(sub(&p, "telemetry.x", NULL));
    ASSERT(!sub(&p, "telemetry.secret.a", NULL));
    ASSERT(!sub(&p, "telemetry.secret.*", NULL));
    ASSERT(!sub(&p, "admin", NULL));
    ASSERT(!sub(&p, "admin", "q"));
    /* Wider than a deny: accepted, and the denied subjects are dropped at
     * delivery, as nats-server does. */
    ASSERT(sub(&p, ">", NULL));
    ASSERT(sub(&p, "telemetry.>", NULL));
    ASSERT(needs_filter(&p, ">"));
    ASSERT(needs_filter(&p, "telemetry.*.a"));
    ASSERT(!needs_filter(&p, "telemetry.public.>"));
    ASSERT(!needs_filter(NULL, ">"));
    ASSERT(recv(&p, "telemetry.x", NULL));
    ASSERT(!recv(&p, "telemetry.secret.a", NULL));
    ASSERT(!recv(&p, "admin", NULL));
    ASSERT(!recv(&p, "admin", "q"));
    ASSERT(recv(&p, "admin.x", NULL));
    ASSERT(recv(NULL, "admin", NULL));
    ASSERT(!recv(&p, "tele.*", NULL)); /* a message subject is literal */
    /* A deny "*" takes a filter's ">" as nats-server's subscription list
     * does: deny bar.* refuses bar.> (which is not a subset of it). */
    const char *star[] = {"bar.*"};
    struct auth_nats_perms b = {.sub_deny = star, .nsub_deny = 1};
    ASSERT(!sub(&b, "bar.>", NULL));
    ASSERT(!sub(&b, "bar.*", NULL));
    ASSERT(sub(&b, "bar.a.b", NULL));
    ASSERT(sub(&b, "bar.*.b", NULL));
    ASSERT(sub(&b, ">", NULL));
    ASSERT(needs_filter(&b, ">"));
    /* Allow and deny together: deny wins. */
    const char *allow[] = {"telemetry.>"};
    p.sub_allow = allow;
    p.nsub_allow = 1;
    ASSERT(sub(&p, "telemetry.x", NULL));
    ASSERT(!sub(&p, "telemetry.secret.x", NULL));
    ASSERT(!sub(&p, "admin", NULL));
}

TEST(subscribe_queue_entries)
{
    /* jobs.> only in queue group "workers" (or any "pool.*" group); events.>
     * for everyone. */
    const char *allow[] = {"jobs.> workers", "jobs.> pool.*", "events.>"};
    struct auth_nats_perms p = {.sub_allow = allow, .nsub_allow = N(allow)};
    ASSERT(sub(&p, "jobs.a", "workers"));
    ASSERT(sub(&p, "jobs.*", "workers"));
    ASSERT(sub(&p, "jobs.a", "pool.eu"));
    ASSERT(!sub(&p, "jobs.a", "pool.eu.x"));
    ASSERT(!sub(&p, "jobs.a", "others"));
    ASSERT(!sub(&p, "jobs.a", NULL)); /* queue entries do not serve plain subs */
    ASSERT(sub(&p, "events.x", NULL));
    ASSERT(sub(&p, "events.x", "any"));
    /* Queue deny: that group may not take jobs.urgent; other groups may. */
    const char *deny[] = {"jobs.urgent workers"};
    p.sub_deny = deny;
    p.nsub_deny = 1;
    ASSERT(!sub(&p, "jobs.urgent", "workers"));
    ASSERT(sub(&p, "jobs.urgent", "pool.x"));
    ASSERT(sub(&p, "jobs.normal", "workers"));
    ASSERT(!recv(&p, "jobs.urgent", "workers"));
    ASSERT(recv(&p, "jobs.urgent", "pool.x"));
    ASSERT(recv(&p, "jobs.urgent", NULL));
    /* A literal "*" queue name matches itself. */
    const char *star[] = {"x *"};
    struct auth_nats_perms s = {.sub_allow = star, .nsub_allow = 1};
    ASSERT(sub(&s, "x", "*"));
    ASSERT(sub(&s, "x", "anything"));
    ASSERT(!sub(&s, "x", "a.b"));
}

int main(void)
{
    RUN(users);
    RUN(user_refusals);
    RUN(many_users);
    RUN(nkeys);
    RUN(tokens);
    RUN(perms_are_copied_and_normalised);
    RUN(perms_with_bad_subjects);
    RUN(publish);
    RUN(publish_with_responses);
    RUN(subscribe_allow_is_a_superset);
    RUN(subscribe_deny_and_delivery_filter);
    RUN(subscribe_queue_entries);
    TEST_DONE();
}
