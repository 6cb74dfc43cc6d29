#include <stdlib.h>
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
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    TEST_DONE();
}
