#include "core/log.h"
#include "test.h"

TEST(parse_levels)
{
    ASSERT_EQ(log_level_parse("debug"), LOG_DEBUG);
    ASSERT_EQ(log_level_parse("WARNING"), LOG_WARN);
    ASSERT_EQ(log_level_parse("warn"), LOG_WARN);
    ASSERT_EQ(log_level_parse("bogus"), -1);
}

TEST(set_get)
{
    log_set_level(LOG_ERROR);
    ASSERT_EQ(log_get_level(), LOG_ERROR);
    log_info("not printed %d", 1); /* below the level: must be a no-op */
    log_set_level(LOG_DEBUG);
    ASSERT_EQ(log_get_level(), LOG_DEBUG);
    log_debug("printed %s", "line");
}

int main(void)
{
    RUN(parse_levels);
    RUN(set_get);
    TEST_DONE();
}
