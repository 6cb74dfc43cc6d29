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

int main(void)
{
    RUN(spec_examples);
    RUN(dollar_topics);
    RUN(validity);
    TEST_DONE();
}
