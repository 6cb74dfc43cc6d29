#include "auth/acl.h"
#include "config/hocon.h"
#include "mqtt/mqtt.h"
#include "test.h"

static char err[4096];

static int load(struct acl *acl, const char *text)
{
    struct hocon_doc d;
    if (hocon_parse_string("acl.conf", text, strlen(text), &d, err, sizeof(err)) != 0)
        TEST_FAIL_("parse: %s", err);
    int rc = acl_load_value(acl, d.root, err, sizeof(err));
    hocon_doc_free(&d);
    return rc;
}

static int check(const struct acl *acl, const struct acl_identity *id, enum acl_action a,
                 const char *topic)
{
    return acl_check(acl, id, a, topic, strlen(topic));
}

static bool covers(const char *p, const char *f)
{
    return acl_filter_covers(p, strlen(p), f, strlen(f));
}

TEST(filter_covers)
{
    ASSERT(covers("#", "a/b"));
    ASSERT(covers("#", "#"));
    ASSERT(covers("a/#", "a"));
    ASSERT(covers("a/#", "a/+/c"));
    ASSERT(covers("a/#", "a/#"));
    ASSERT(covers("a/+", "a/b"));
    ASSERT(covers("a/+", "a/+"));
    ASSERT(covers("a/b", "a/b"));
    ASSERT(covers("+/+", "x/y"));
    ASSERT(!covers("a/+", "a/#"));
    ASSERT(!covers("a/+", "a/b/c"));
    ASSERT(!covers("a/b", "a/+"));
    ASSERT(!covers("a/#", "#"));
    ASSERT(!covers("a/#", "b"));
    ASSERT(!covers("a/b/c", "a/b"));
    ASSERT(!covers("a/+/c", "a/b"));
    /* MQTT-4.7.2-1: a leading wildcard does not reach $-topics. */
    ASSERT(!covers("#", "$SYS/x"));
    ASSERT(!covers("+/x", "$SYS/x"));
    ASSERT(covers("$SYS/#", "$SYS/broker/uptime"));
}

TEST(nanomq_example)
{
    struct acl acl;
    ASSERT_EQ(load(&acl, "rules = [\n"
                         "  {\"permit\": \"allow\", \"username\": \"dashboard\", \"action\": "
                         "\"subscribe\", \"topics\": [\"$SYS/#\"]}\n"
                         "  {\"permit\": \"deny\", \"username\": \"#\", \"action\": "
                         "\"subscribe\", \"topics\": [\"$SYS/#\", \"eq #\"]}\n"
                         "  {\"permit\": \"allow\"}\n"
                         "]\n"),
              0);
    ASSERT_EQ(acl.count, 3);
    struct acl_identity dash = {.username = "dashboard", .client_id = "d"};
    struct acl_identity user = {.username = "joe", .client_id = "j"};
    struct acl_identity anon = {.client_id = "x"};
    ASSERT_EQ(check(&acl, &dash, ACL_SUBSCRIBE, "$SYS/broker/uptime"), 1);
    ASSERT_EQ(check(&acl, &user, ACL_SUBSCRIBE, "$SYS/broker/uptime"), 0);
    ASSERT_EQ(check(&acl, &user, ACL_SUBSCRIBE, "#"), 0);
    ASSERT_EQ(check(&acl, &user, ACL_SUBSCRIBE, "a/b"), 1);
    ASSERT_EQ(check(&acl, &user, ACL_PUBLISH, "a/b"), 1);
    /* "#" as a user name means "anyone with a user name". */
    ASSERT_EQ(check(&acl, &anon, ACL_SUBSCRIBE, "#"), 1);
    acl_free(&acl);
}

TEST(placeholders_and_roles)
{
    struct acl acl;
    ASSERT_EQ(load(&acl, "rules = [\n"
                         "{\"permit\": \"allow\", \"cert_ou\": \"Devices\", \"action\": "
                         "\"publish\", \"topics\": [\"devices/${cert_cn}/#\"]},\n"
                         "{\"permit\": \"allow\", \"cert_ou\": \"Devices\", \"action\": "
                         "\"subscribe\", \"topics\": [\"commands/${cert_cn}/#\"]},\n"
                         "{\"permit\": \"allow\", \"action\": \"pubsub\", \"topics\": "
                         "[\"users/%u/#\", \"clients/${clientid}\"]},\n"
                         "{\"permit\": \"deny\"}\n"
                         "]\n"),
              0);
    struct acl_identity dev = {.client_id = "c1", .cert_cn = "dev-1", .cert_ou = "Devices"};
    ASSERT_EQ(check(&acl, &dev, ACL_PUBLISH, "devices/dev-1/temp"), 1);
    ASSERT_EQ(check(&acl, &dev, ACL_PUBLISH, "devices/dev-2/temp"), 0);
    ASSERT_EQ(check(&acl, &dev, ACL_SUBSCRIBE, "commands/dev-1/#"), 1);
    ASSERT_EQ(check(&acl, &dev, ACL_SUBSCRIBE, "commands/#"), 0);
    ASSERT_EQ(check(&acl, &dev, ACL_SUBSCRIBE, "devices/dev-1/temp"), 0);
    ASSERT_EQ(check(&acl, &dev, ACL_PUBLISH, "clients/c1"), 1);
    /* No user name: a rule that needs one never matches. */
    ASSERT_EQ(check(&acl, &dev, ACL_PUBLISH, "users//x"), 0);
    struct acl_identity u = {.username = "ann", .client_id = "c2"};
    ASSERT_EQ(check(&acl, &u, ACL_PUBLISH, "users/ann/x"), 1);
    ASSERT_EQ(check(&acl, &u, ACL_PUBLISH, "devices/dev-1/temp"), 0);
    /* A wildcard inside a user name must not widen the rule. */
    struct acl_identity evil = {.username = "#", .client_id = "c3"};
    ASSERT_EQ(check(&acl, &evil, ACL_PUBLISH, "users/x/y"), 0);
    struct acl_identity slash = {.username = "a/b", .client_id = "c4"};
    ASSERT_EQ(check(&acl, &slash, ACL_PUBLISH, "users/a/b/c"), 0);
    acl_free(&acl);
}

TEST(and_or_first_match_no_match)
{
    struct acl acl;
    ASSERT_EQ(load(&acl, "rules = [\n"
                         "{\"permit\": \"allow\", \"and\": [{\"username\": \"u\"}, "
                         "{\"clientid\": \"c\"}], \"topics\": [\"t/and\"]}\n"
                         "{\"permit\": \"allow\", \"or\": [{\"username\": \"v\"}, "
                         "{\"clientid\": \"w\"}], \"topics\": [\"t/or\"]}\n"
                         "{\"permit\": \"deny\", \"topics\": [\"t/#\"]}\n"
                         "{\"permit\": \"allow\", \"topics\": [\"t/late\"]}\n"
                         "]\n"),
              0);
    struct acl_identity uc = {.username = "u", .client_id = "c"};
    struct acl_identity ux = {.username = "u", .client_id = "x"};
    struct acl_identity xw = {.username = "x", .client_id = "w"};
    ASSERT_EQ(check(&acl, &uc, ACL_PUBLISH, "t/and"), 1);
    ASSERT_EQ(check(&acl, &ux, ACL_PUBLISH, "t/and"), 0);
    ASSERT_EQ(check(&acl, &xw, ACL_PUBLISH, "t/or"), 1);
    ASSERT_EQ(check(&acl, &ux, ACL_PUBLISH, "t/or"), 0);
    /* First match wins: the later allow never applies. */
    ASSERT_EQ(check(&acl, &uc, ACL_PUBLISH, "t/late"), 0);
    /* Nothing applies: the caller's default decides. */
    ASSERT_EQ(check(&acl, &uc, ACL_PUBLISH, "other"), -1);
    acl_free(&acl);
}

TEST(errors_with_lines)
{
    struct acl acl;
    ASSERT_EQ(load(&acl, "rules = [\n"
                         "{\"permit\": \"perhaps\"}\n"
                         "{\"action\": \"read\", \"permit\": \"allow\"}\n"
                         "{\"permit\": \"allow\", \"topics\": [\"a/#/b\"]}\n"
                         "{\"permit\": \"allow\", \"user\": \"x\"}\n"
                         "{\"topics\": [\"a\"]}\n"
                         "{\"permit\": \"allow\", \"username\": \"a\", \"or\": []}\n"
                         "]\n"),
              -1);
    ASSERT(strstr(err, "acl.conf:2: permit: expected \"allow\" or \"deny\""));
    ASSERT(strstr(err, "acl.conf:3: action: expected"));
    ASSERT(strstr(err, "acl.conf:4: topics: \"a/#/b\" is not a valid topic filter"));
    ASSERT(strstr(err, "acl.conf:5: unknown rule field \"user\""));
    ASSERT(strstr(err, "acl.conf:6: rule 5: \"permit\" is required"));
    ASSERT(strstr(err, "acl.conf:7: or: cannot be combined"));
    ASSERT_EQ(acl.count, 0);
    ASSERT_EQ(load(&acl, "rule = []\n"), -1);
    ASSERT(strstr(err, "expected `rules = ["));
    ASSERT_EQ(load(&acl, "rules = [ 5 ]\n"), -1);
    ASSERT(strstr(err, "rule 1: expected an object"));
}

TEST(load_file)
{
    struct acl acl;
    ASSERT_EQ(acl_load(&acl, "/nonexistent/acl.conf", err, sizeof(err)), -1);
    ASSERT(strstr(err, "/nonexistent/acl.conf"));
}

TEST(filter_covers_agrees_with_topic_match)
{
    /* A filter without wildcards is a topic name: covering it is matching
     * it, exactly as the reference matcher (mqtt_topic_match) answers. */
    static const char *const pats[] = {"#",  "+",  "a/#",    "a/+", "+/+", "a//b", "/a",
                                       "a/", "/#", "$SYS/#", "+/x", "a/b", "/+",   "+/#"};
    static const char *const names[] = {"a",  "a/",   "a/b",    "a//b", "/a",    "/",
                                        "//", "$SYS", "$SYS/x", "x/x",  "a/b/c", "b"};
    size_t yes = 0, no = 0;
    for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++)
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
            bool want = mqtt_topic_match((const uint8_t *)pats[i], strlen(pats[i]),
                                         (const uint8_t *)names[k], strlen(names[k]));
            if (covers(pats[i], names[k]) != want)
                TEST_FAIL_("pattern '%s' name '%s': covers %d, match %d", pats[i], names[k], !want,
                           want);
            yes += want;
            no += !want;
        }
    ASSERT(yes > 20 && no > 20);
    /* Wildcard filters, level by level: empty levels and '$' included. */
    ASSERT(covers("+/+", "/+"));
    ASSERT(covers("a//#", "a//+"));
    ASSERT(!covers("a//#", "a/+"));
    ASSERT(covers("#", "+/x"));
    ASSERT(!covers("#", "$SYS/+"));
    ASSERT(!covers("+/#", "$SYS/#"));
    ASSERT(!covers("a/+", "a/+/#"));
    ASSERT(covers("a/+/#", "a/+"));
}

/* The rules of a broker that keeps `secret/` to itself. */
static const char share_rules[] = "rules = [\n"
                                  "{\"permit\": \"deny\", \"action\": \"subscribe\", "
                                  "\"topics\": [\"secret/#\", \"eq #\"]}\n"
                                  "{\"permit\": \"allow\", \"action\": \"subscribe\", "
                                  "\"topics\": [\"public/#\"]}\n"
                                  "]\n";

TEST(share_checks_the_plain_filter)
{
    /* "$share/GROUP/FILTER" is judged as FILTER: the group is not part of
     * the topic space. The ACL has no protocol version: an MQTT 3.1.1
     * subscriber's "$share/g/secret/x" is the same request as a v5 one. */
    struct acl acl;
    ASSERT_EQ(load(&acl, share_rules), 0);
    struct acl_identity id = {.username = "u", .client_id = "c"};
    ASSERT_EQ(check(&acl, &id, ACL_SUBSCRIBE, "secret/x"), 0);
    ASSERT_EQ(check(&acl, &id, ACL_SUBSCRIBE, "$share/g/secret/x"), 0);
    ASSERT_EQ(check(&acl, &id, ACL_SUBSCRIBE, "$share/g/secret/#"), 0);
    ASSERT_EQ(check(&acl, &id, ACL_SUBSCRIBE, "$share/g/#"), 0); /* "eq #" on the plain filter */
    ASSERT_EQ(check(&acl, &id, ACL_SUBSCRIBE, "$share/g/public/x"), 1);
    ASSERT_EQ(check(&acl, &id, ACL_SUBSCRIBE, "public/x"), 1);
    /* No rule applies to the plain filter: the default decides, as it does
     * for the same filter unshared. */
    ASSERT_EQ(check(&acl, &id, ACL_SUBSCRIBE, "$share/g/other"), -1);
    ASSERT_EQ(check(&acl, &id, ACL_SUBSCRIBE, "other"), -1);
    /* "$share" with no '/' is an ordinary filter, not a share. */
    ASSERT_EQ(check(&acl, &id, ACL_SUBSCRIBE, "$share"), -1);
    /* Publishing has no shares: the topic name is taken as it is. */
    ASSERT_EQ(check(&acl, &id, ACL_PUBLISH, "$share/g/secret/x"), -1);
    acl_free(&acl);
}

TEST(malformed_share_denied_not_emptied)
{
    /* A share with no filter after its group must not be checked as an
     * empty (or any other) filter: it is denied whatever the rules say,
     * even where no rule would apply and the default would allow. */
    static const char *const bad[] = {"$share/g",          "$share/",
                                      "$share//t",         "$share/g/",
                                      "$share/+/secret/x", "$share/g/$share/h/secret/x"};
    struct acl acl;
    ASSERT_EQ(load(&acl, share_rules), 0);
    struct acl_identity id = {.username = "u", .client_id = "c"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (check(&acl, &id, ACL_SUBSCRIBE, bad[i]) != 0)
            TEST_FAIL_("'%s' not denied", bad[i]);
    acl_free(&acl);
    /* And with a rule that allows everything. */
    ASSERT_EQ(load(&acl, "rules = [ {\"permit\": \"allow\"} ]\n"), 0);
    ASSERT_EQ(check(&acl, &id, ACL_SUBSCRIBE, "$share/g"), 0);
    ASSERT_EQ(check(&acl, &id, ACL_SUBSCRIBE, "$share/g/t"), 1);
    acl_free(&acl);
}

int main(void)
{
    RUN(filter_covers);
    RUN(filter_covers_agrees_with_topic_match);
    RUN(nanomq_example);
    RUN(placeholders_and_roles);
    RUN(and_or_first_match_no_match);
    RUN(errors_with_lines);
    RUN(load_file);
    RUN(share_checks_the_plain_filter);
    RUN(malformed_share_denied_not_emptied);
    TEST_DONE();
}
