/* Topic remapping for bridge rules: keep, replace, wildcard substitution,
 * prefix and suffix, and every way a mapping can fail (no match, no room,
 * an invalid result, a rule whose target the filter cannot fill). */
#include "bridge/topic_map.h"
#include "mqtt/mqtt.h"
#include "test.h"

/* Maps a NUL-terminated topic into a roomy buffer; returns the length and
 * leaves the result in out. */
static size_t map(const char *filter, const char *target, const char *prefix, const char *suffix,
                  const char *topic, char *out, size_t cap)
{
    memset(out, 'X', cap);
    return bridge_map_topic(filter, target, prefix, suffix, topic, strlen(topic), out, cap);
}

/* The topic maps to want, and the length returned is want's. */
#define MAPS_TO(filter, target, prefix, suffix, topic, want)                                       \
    do {                                                                                           \
        char out__[128];                                                                           \
        ASSERT_EQ(map(filter, target, prefix, suffix, topic, out__, sizeof(out__)), strlen(want)); \
        ASSERT_STR_EQ(out__, want);                                                                \
    } while (0)

TEST(keep_topic)
{
    char out[128];
    MAPS_TO("a/+/c", NULL, NULL, NULL, "a/b/c", "a/b/c");
    /* An empty target also keeps it. */
    MAPS_TO("a/#", "", NULL, NULL, "a/b/c", "a/b/c");
    /* tlen is what counts, not a NUL: only "a/b" of "a/bcd" is the topic. */
    ASSERT_EQ(bridge_map_topic("a/b", NULL, NULL, NULL, "a/bcd", 3, out, sizeof(out)), 3);
    ASSERT_STR_EQ(out, "a/b");
}

TEST(replace_topic)
{
    MAPS_TO("sensors/+/temp", "all/temps", NULL, NULL, "sensors/k1/temp", "all/temps");
    MAPS_TO("#", "one", NULL, NULL, "x/y/z", "one");
}

TEST(plus_captures_in_order)
{
    MAPS_TO("+/x/+", "+/+", NULL, NULL, "a/x/b", "a/b");
    MAPS_TO("dev/+/+/state", "site/+/unit/+/s", NULL, NULL, "dev/north/7/state",
            "site/north/unit/7/s");
    /* Fewer '+' in target than filter: the first ones are used. */
    MAPS_TO("+/+/+", "one/+", NULL, NULL, "p/q/r", "one/p");
    /* A '+' may capture an empty level. */
    MAPS_TO("a/+/c", "x/+/y", NULL, NULL, "a//c", "x//y");
}

TEST(hash_capture)
{
    MAPS_TO("a/#", "b/#", NULL, NULL, "a/x/y", "b/x/y");
    MAPS_TO("#", "up/#", NULL, NULL, "x/y", "up/x/y");
    MAPS_TO("+/#", "x/+/#", NULL, NULL, "p/q/r", "x/p/q/r");
    /* "a/#" matches "a" itself (MQTT-4.7.1-2): '#' matched nothing and takes
     * its '/' with it. */
    MAPS_TO("a/#", "b/#", NULL, NULL, "a", "b");
    MAPS_TO("a/#", NULL, NULL, NULL, "a", "a");
    MAPS_TO("a/+/#", "z/+/#", NULL, NULL, "a/m", "z/m");
}

TEST(prefix_and_suffix)
{
    MAPS_TO("a/#", NULL, "up/", NULL, "a/b", "up/a/b");
    MAPS_TO("a/#", NULL, NULL, "/in", "a/b", "a/b/in");
    MAPS_TO("a/+", "x/+", "p-", "-s", "a/b", "p-x/b-s");
    /* Concatenated exactly as written: no '/' is added. */
    MAPS_TO("t", NULL, "pre", "suf", "t", "pretsuf");
    /* With an empty '#' capture the suffix still follows. */
    MAPS_TO("a/#", "b/#", NULL, "/s", "a", "b/s");
}

TEST(prefix_kept_as_written_with_empty_hash)
{
    /* Target "#" with nothing matched maps to ""; the prefix is then added
     * exactly as written, so its trailing '/' must stay. */
    MAPS_TO("a/#", "#", "up/", NULL, "a/b", "up/b");
    MAPS_TO("a/#", "#", "up/", NULL, "a", "up/");
}

TEST(no_match)
{
    char out[128];
    ASSERT_EQ(map("a/b", NULL, NULL, NULL, "a/c", out, sizeof(out)), 0);
    ASSERT_EQ(map("a/b", NULL, NULL, NULL, "a/b/c", out, sizeof(out)), 0);
    ASSERT_EQ(map("a/b/c", NULL, NULL, NULL, "a/b", out, sizeof(out)), 0);
    ASSERT_EQ(map("a/+", NULL, NULL, NULL, "a", out, sizeof(out)), 0);
    ASSERT_EQ(map("a/+", NULL, NULL, NULL, "a/b/c", out, sizeof(out)), 0);
    ASSERT_EQ(map("a/#", NULL, NULL, NULL, "ab", out, sizeof(out)), 0);
    ASSERT_EQ(map("a/b/#", NULL, NULL, NULL, "a", out, sizeof(out)), 0);
    ASSERT_EQ(map("ab", NULL, NULL, NULL, "a", out, sizeof(out)), 0);
    ASSERT_EQ(map("+/+", "x/+", NULL, NULL, "a", out, sizeof(out)), 0);
}

TEST(dollar_topics_not_matched_by_leading_wildcards)
{
    /* MQTT-4.7.2-1: "#" and "+/..." do not match a topic starting with '$'. */
    char out[128];
    ASSERT_EQ(map("#", NULL, NULL, NULL, "$SYS/broker/uptime", out, sizeof(out)), 0);
    ASSERT_EQ(map("+/broker/#", NULL, NULL, NULL, "$SYS/broker/uptime", out, sizeof(out)), 0);
    ASSERT_EQ(map("$SYS/#", NULL, NULL, NULL, "$SYS/broker/uptime", out, sizeof(out)), 18);
}

TEST(fit)
{
    char out[16];
    /* "up/a/b" is 6 bytes and needs 7 with its NUL. */
    ASSERT_EQ(map("a/#", NULL, "up/", NULL, "a/b", out, 7), 6);
    ASSERT_STR_EQ(out, "up/a/b");
    ASSERT_EQ(map("a/#", NULL, "up/", NULL, "a/b", out, 6), 0);
    ASSERT_EQ(map("a/#", NULL, "up/", NULL, "a/b", out, 1), 0);
    ASSERT_EQ(bridge_map_topic("a", NULL, NULL, NULL, "a", 1, out, 0), 0);
    /* Each part alone can overflow: target, capture, suffix. */
    ASSERT_EQ(map("a/+", "long/target/+", NULL, NULL, "a/b", out, 13), 0);
    ASSERT_EQ(map("a/+", "long/target/+", NULL, NULL, "a/b", out, 14), 13);
    ASSERT_EQ(map("a/+", "x/+", NULL, NULL, "a/0123456789abcd", out, 16), 0);
    ASSERT_EQ(map("a", NULL, NULL, "/0123456789abcd", "a", out, 16), 0);
    ASSERT_EQ(map("a", NULL, NULL, "/0123456789abc", "a", out, 16), 15);
}

TEST(result_over_65535_refused)
{
    size_t cap = 70000;
    char *out = malloc(cap), *prefix = malloc(65536);
    ASSERT(out && prefix);
    memset(prefix, 'p', 65533);
    prefix[65533] = '\0';
    /* 65533 + "/a" = 65535: the longest topic name there is. */
    ASSERT_EQ(map("a", NULL, prefix, NULL, "a", out, cap), 65534);
    ASSERT_EQ(map("a", NULL, prefix, "/", "a", out, cap), 65535);
    ASSERT_EQ(map("a", NULL, prefix, "/b", "a", out, cap), 0);
    free(out);
    free(prefix);
}

TEST(invalid_results)
{
    char out[128];
    /* Target wildcards the filter has nothing for. */
    ASSERT_EQ(map("a/b", "x/+", NULL, NULL, "a/b", out, sizeof(out)), 0);
    ASSERT_EQ(map("a/+", "x/+/+", NULL, NULL, "a/b", out, sizeof(out)), 0);
    ASSERT_EQ(map("a/+", "x/#", NULL, NULL, "a/b", out, sizeof(out)), 0);
    /* Empty results. */
    ASSERT_EQ(map("a/#", "#", NULL, NULL, "a", out, sizeof(out)), 0);
    ASSERT_EQ(bridge_map_topic("#", NULL, NULL, NULL, "", 0, out, sizeof(out)), 0);
    /* Wildcards or bad UTF-8 brought in by the prefix or suffix. */
    ASSERT_EQ(map("a", NULL, "+/", NULL, "a", out, sizeof(out)), 0);
    ASSERT_EQ(map("a", NULL, NULL, "/#", "a", out, sizeof(out)), 0);
    ASSERT_EQ(map("a", NULL, "\xff", NULL, "a", out, sizeof(out)), 0);
    /* A topic with a wildcard in it is not a topic name. */
    ASSERT_EQ(map("#", NULL, NULL, NULL, "a/+", out, sizeof(out)), 0);
}

TEST(many_plus_levels)
{
    /* A rule that bridge_map_valid accepts must map what its filter
     * matches: 40 '+' levels and a topic of 40 levels. */
    char filter[128] = "", topic[128] = "", out[256], err[128];
    for (int i = 0; i < 40; i++) {
        strcat(filter, i ? "/+" : "+");
        strcat(topic, i ? "/t" : "t");
    }
    bool valid = bridge_map_valid(filter, NULL, err, sizeof(err));
    size_t n = map(filter, NULL, NULL, NULL, topic, out, sizeof(out));
    if (valid && n == 0)
        TEST_FAIL_("a filter of 40 '+' levels is valid but maps nothing");
    if (valid)
        ASSERT_STR_EQ(out, topic);
}

TEST(matches_what_mqtt_topic_match_matches)
{
    /* The map has no matcher of its own: a rule maps a topic exactly when
     * mqtt_topic_match says its filter matches (empty levels, '$', "a/#"
     * against "a" included). */
    static const char *const filters[] = {"#",  "+",   "a/#", "a/+", "+/+",   "a//b",
                                          "/#", "+/x", "a/",  "/+",  "$SYS/#"};
    static const char *const topics[] = {"a", "a/", "a/b", "a//b", "/", "/a", "$SYS/x", "x/x"};
    size_t yes = 0, no = 0;
    char out[64];
    for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++)
        for (size_t k = 0; k < sizeof(topics) / sizeof(topics[0]); k++) {
            bool want = mqtt_topic_match((const uint8_t *)filters[i], strlen(filters[i]),
                                         (const uint8_t *)topics[k], strlen(topics[k]));
            size_t n = map(filters[i], NULL, NULL, NULL, topics[k], out, sizeof(out));
            if ((n > 0) != want)
                TEST_FAIL_("filter '%s' topic '%s': mapped %zu, match %d", filters[i], topics[k], n,
                           want);
            yes += want;
            no += !want;
        }
    ASSERT(yes > 10 && no > 10);
    /* Captures of empty levels, in order. */
    MAPS_TO("+/+/#", "+/x/+/#", NULL, NULL, "//c/d", "/x//c/d");
}

TEST(valid_rules)
{
    char err[256] = "untouched";
    ASSERT(bridge_map_valid("a/b", NULL, err, sizeof(err)));
    ASSERT(bridge_map_valid("a/#", "", err, sizeof(err)));
    ASSERT(bridge_map_valid("a/+/#", "b/+/#", err, sizeof(err)));
    ASSERT(bridge_map_valid("+/+", "+", err, sizeof(err)));
    ASSERT(bridge_map_valid("#", "fixed/topic", err, sizeof(err)));
    ASSERT_STR_EQ(err, "untouched");
}

TEST(invalid_rules)
{
    char err[256];
    ASSERT(!bridge_map_valid(NULL, NULL, err, sizeof(err)));
    ASSERT(strstr(err, "not a valid topic filter"));
    ASSERT(!bridge_map_valid("", NULL, err, sizeof(err)));
    ASSERT(!bridge_map_valid("a/#/b", NULL, err, sizeof(err)));
    ASSERT(strstr(err, "'a/#/b' is not a valid topic filter"));
    ASSERT(!bridge_map_valid("a+", NULL, err, sizeof(err)));
    ASSERT(!bridge_map_valid("a/b#", NULL, err, sizeof(err)));
    ASSERT(!bridge_map_valid("\xc3", NULL, err, sizeof(err)));
    /* Targets that are not filters. */
    ASSERT(!bridge_map_valid("a/#", "x/#/y", err, sizeof(err)));
    ASSERT(strstr(err, "'x/#/y' is not a valid topic or pattern"));
    ASSERT(!bridge_map_valid("a/+", "x+", err, sizeof(err)));
    /* Targets with wildcards the filter cannot fill. */
    ASSERT(!bridge_map_valid("a/b", "x/+", err, sizeof(err)));
    ASSERT(strstr(err, "'x/+' has a wildcard that 'a/b' does not fill"));
    ASSERT(!bridge_map_valid("a/+", "+/+", err, sizeof(err)));
    ASSERT(!bridge_map_valid("a/+", "x/#", err, sizeof(err)));
    ASSERT(!bridge_map_valid("a/#", "+/#", err, sizeof(err)));
    /* A short error buffer is not overrun. */
    char small[8];
    ASSERT(!bridge_map_valid("a/#/b", NULL, small, sizeof(small)));
    ASSERT_EQ(strlen(small), 7);
}

int main(void)
{
    RUN(keep_topic);
    RUN(replace_topic);
    RUN(plus_captures_in_order);
    RUN(hash_capture);
    RUN(prefix_and_suffix);
    RUN(no_match);
    RUN(fit);
    RUN(result_over_65535_refused);
    RUN(invalid_results);
    RUN(valid_rules);
    RUN(invalid_rules);
    RUN(dollar_topics_not_matched_by_leading_wildcards);
    RUN(prefix_kept_as_written_with_empty_hash);
    RUN(many_plus_levels);
    RUN(matches_what_mqtt_topic_match_matches);
    TEST_DONE();
}
