#include "mqtt/mqtt.h"
#include "test.h"

static bool match(const char *f, const char *t)
{
    return mqtt_topic_match((const uint8_t *)f, strlen(f), (const uint8_t *)t, strlen(t));
}

static bool fvalid(const char *f)
{
    return mqtt_topic_filter_valid((const uint8_t *)f, strlen(f));
}

static bool nvalid(const char *t)
{
    return mqtt_topic_name_valid((const uint8_t *)t, strlen(t));
}

TEST(spec_examples)
{
    ASSERT(match("sport/tennis/player1/#", "sport/tennis/player1"));
    ASSERT(match("sport/tennis/player1/#", "sport/tennis/player1/ranking"));
    ASSERT(match("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon"));
    ASSERT(match("sport/#", "sport"));
    ASSERT(match("sport/tennis/+", "sport/tennis/player1"));
    ASSERT(!match("sport/tennis/+", "sport/tennis/player1/ranking"));
    ASSERT(match("sport/+", "sport/"));
    ASSERT(!match("sport/+", "sport"));
    ASSERT(match("+/+", "/finance"));
    ASSERT(match("/+", "/finance"));
    ASSERT(!match("+", "/finance"));
    ASSERT(match("#", "a/b/c"));
    ASSERT(!match("a/b", "a/b/c"));
    ASSERT(!match("a/b/c", "a/b"));
    ASSERT(match("a//b", "a//b"));
    ASSERT(!match("a/+/b", "a/b"));
}

TEST(dollar_topics)
{
    ASSERT(!match("#", "$SYS/broker"));
    ASSERT(!match("+/monitor/Clients", "$SYS/monitor/Clients"));
    ASSERT(match("$SYS/#", "$SYS/monitor/Clients"));
    ASSERT(match("$SYS/monitor/+", "$SYS/monitor/Clients"));
}

TEST(validity)
{
    ASSERT(fvalid("#"));
    ASSERT(fvalid("a/+/b/#"));
    ASSERT(fvalid("+"));
    ASSERT(fvalid("/"));
    ASSERT(!fvalid("a/#/b"));
    ASSERT(!fvalid("a#"));
    ASSERT(!fvalid("a+/b"));
    ASSERT(!fvalid("a/b+"));
    ASSERT(!fvalid(""));
    ASSERT(nvalid("a/b"));
    ASSERT(nvalid("/"));
    ASSERT(!nvalid(""));
    ASSERT(!nvalid("a/+"));
    ASSERT(!nvalid("#"));
}

static bool share(const char *f, const char *group, const char *plain)
{
    struct mqtt_share sh;
    size_t len = strlen(f);
    if (!mqtt_share_split((const uint8_t *)f, len, &sh))
        return false;
    if (!group) {
        /* Not shared: the filter comes back whole. */
        ASSERT(sh.group == NULL);
        ASSERT_EQ(sh.group_len, 0);
    } else {
        ASSERT(sh.group != NULL);
        ASSERT_EQ(sh.group_len, strlen(group));
        ASSERT_MEM_EQ(sh.group, group, sh.group_len);
    }
    ASSERT_EQ(sh.filter_len, strlen(plain));
    ASSERT_MEM_EQ(sh.filter, plain, sh.filter_len);
    /* Views into the caller's buffer, never copies. */
    ASSERT(sh.filter >= (const uint8_t *)f &&
           sh.filter + sh.filter_len == (const uint8_t *)f + len);
    return true;
}

TEST(share_split_valid)
{
    ASSERT(share("$share/g/t", "g", "t"));
    ASSERT(share("$share/group/a/b/#", "group", "a/b/#"));
    ASSERT(share("$share/g/#", "g", "#"));
    ASSERT(share("$share/g/+", "g", "+"));
    ASSERT(share("$share/g//", "g", "/"));
    ASSERT(share("$share/g/$SYS/x", "g", "$SYS/x"));
    ASSERT(share("$share/\xc3\xa9t\xc3\xa9/t", "\xc3\xa9t\xc3\xa9", "t")); /* UTF-8 name */
    /* Not shared: returned whole, whatever follows. */
    ASSERT(share("a/b", NULL, "a/b"));
    ASSERT(share("$share", NULL, "$share"));
    ASSERT(share("$SHARE/g/t", NULL, "$SHARE/g/t")); /* the prefix is case-sensitive */
    ASSERT(share("$shared/g/t", NULL, "$shared/g/t"));
    ASSERT(share("x/$share/g/t", NULL, "x/$share/g/t"));
}

TEST(share_split_invalid)
{
    /* MQTT-4.8.2-1: a ShareName of at least one character, then '/'. */
    ASSERT(!share("$share/", NULL, ""));
    ASSERT(!share("$share/g", NULL, ""));
    ASSERT(!share("$share//t", NULL, ""));
    ASSERT(!share("$share//", NULL, ""));
    /* MQTT-4.8.2-2: no '+' or '#' in it, and a non-empty valid filter after. */
    ASSERT(!share("$share/+/t", NULL, ""));
    ASSERT(!share("$share/#", NULL, ""));
    ASSERT(!share("$share/g+/t", NULL, ""));
    ASSERT(!share("$share/g#/t", NULL, ""));
    ASSERT(!share("$share/g/", NULL, ""));
    ASSERT(!share("$share/g/a#", NULL, ""));
    ASSERT(!share("$share/g/a/#/b", NULL, ""));
    ASSERT(!share("$share/g/\xff", NULL, ""));
    ASSERT(!share("$share/\xff/t", NULL, ""));
    /* Not a share inside a share: the prefix comes off exactly once. */
    ASSERT(!share("$share/g/$share/h/t", NULL, ""));
}

TEST(share_split_same_in_both_versions)
{
    /* The parser has no version: 3.1.1 and 5 see the same answer, and the
     * codec accepts these filters in both (the broker refuses them one by
     * one, SUBACK 0x8F / 0x80); only filters malformed as filters fail. */
    static const char *const refused[] = {"$share/", "$share/g", "$share//t", "$share/+/t",
                                          "$share/g/"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        ASSERT(fvalid(refused[i]));
        ASSERT(!share(refused[i], NULL, ""));
    }
    ASSERT(!fvalid("$share/g+/t"));
}

static bool next_level(const char *s, size_t *pos, const char *want)
{
    struct mqtt_span lv;
    if (!mqtt_level_next((const uint8_t *)s, strlen(s), pos, &lv))
        return false;
    ASSERT_EQ(lv.len, strlen(want));
    ASSERT_MEM_EQ(lv.p, want, lv.len);
    return true;
}

TEST(levels)
{
    size_t pos = 0;
    ASSERT(next_level("a//b", &pos, "a"));
    ASSERT(next_level("a//b", &pos, ""));
    ASSERT(next_level("a//b", &pos, "b"));
    ASSERT(!next_level("a//b", &pos, ""));
    pos = 0;
    ASSERT(next_level("/a", &pos, ""));
    ASSERT(next_level("/a", &pos, "a"));
    ASSERT(!next_level("/a", &pos, ""));
    pos = 0;
    ASSERT(next_level("a/", &pos, "a"));
    ASSERT(next_level("a/", &pos, ""));
    ASSERT(!next_level("a/", &pos, ""));
    pos = 0;
    ASSERT(next_level("", &pos, ""));
    ASSERT(!next_level("", &pos, ""));
}

TEST(match_edges)
{
    ASSERT(match("a/#", "a"));
    ASSERT(match("a/#", "a/"));
    ASSERT(!match("a/#", "ab"));
    ASSERT(!match("a/+", "a"));
    ASSERT(match("+/+", "/"));
    ASSERT(match("/#", "/"));
    ASSERT(!match("/#", "a"));
    ASSERT(match("a/", "a/"));
    ASSERT(!match("a/", "a"));
    ASSERT(!match("a", "a/"));
    ASSERT(!match("a//b", "a/b"));
    ASSERT(match("a/+/b", "a//b"));
    ASSERT(!match("+", "$"));
    ASSERT(match("$", "$"));
    ASSERT(!match("ab", "a"));
    ASSERT(!match("a", "ab"));
}

TEST(match_captures)
{
    struct mqtt_span plus[2];
    struct mqtt_captures c = {plus, 2, 0, {NULL, 0}, false};
    const char *f = "+/x/+/+/#", *t = "a/x//c/d/e";
    ASSERT(
        mqtt_topic_match_capture((const uint8_t *)f, strlen(f), (const uint8_t *)t, strlen(t), &c));
    ASSERT_EQ(c.nplus, 3); /* counted past plus_cap, only two kept */
    ASSERT_EQ(plus[0].len, 1);
    ASSERT_EQ(plus[0].p[0], 'a');
    ASSERT_EQ(plus[1].len, 0);
    ASSERT(c.has_hash);
    ASSERT_EQ(c.hash.len, 3);
    ASSERT_MEM_EQ(c.hash.p, "d/e", 3);
    /* "a/#" matches "a" with an empty '#' capture. */
    f = "a/#";
    t = "a";
    ASSERT(mqtt_topic_match_capture((const uint8_t *)f, 3, (const uint8_t *)t, 1, &c));
    ASSERT(c.has_hash);
    ASSERT_EQ(c.hash.len, 0);
    ASSERT_EQ(c.nplus, 0);
    /* No match, and the '$' rule, in the capturing form too. */
    ASSERT(!mqtt_topic_match_capture((const uint8_t *)"+/y", 3, (const uint8_t *)"a/x", 3, &c));
    ASSERT(!mqtt_topic_match_capture((const uint8_t *)"#", 1, (const uint8_t *)"$SYS/x", 6, &c));
}

int main(void)
{
    RUN(spec_examples);
    RUN(dollar_topics);
    RUN(validity);
    RUN(share_split_valid);
    RUN(share_split_invalid);
    RUN(share_split_same_in_both_versions);
    RUN(levels);
    RUN(match_edges);
    RUN(match_captures);
    TEST_DONE();
}
