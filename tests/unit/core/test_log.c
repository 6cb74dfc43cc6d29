#include "core/log.h"
#include "test.h"

#include <unistd.h>

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

TEST(escape_control_characters)
{
    char out[64];
    ASSERT_EQ(log_escape("plain id/1", 10, out, sizeof(out)), 10);
    ASSERT_STR_EQ(out, "plain id/1");
    log_escape("a\nb\r\x1b[31m\\", 10, out, sizeof(out));
    ASSERT_STR_EQ(out, "a\\x0ab\\x0d\\x1b[31m\\x5c");
    /* Stops at a NUL and never overflows: an escape that does not fit is left out. */
    ASSERT_EQ(log_escape("ab\0cd", 5, out, sizeof(out)), 2);
    ASSERT_EQ(log_escape("abc\n", 4, out, 6), 3);
    ASSERT_STR_EQ(out, "abc");
    ASSERT_EQ(log_escape("x", 1, out, 0), 0);
}

TEST(forged_line_is_escaped)
{
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    ASSERT(saved >= 0);
    ASSERT(dup2(fds[1], STDERR_FILENO) >= 0);
    log_set_level(LOG_NOTICE);
    log_notice("client '%s' connected", "evil\n2026-01-01T00:00:00.000Z NOTICE admin logged in");
    ASSERT(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    close(fds[1]);
    char buf[512];
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    ASSERT(n > 0);
    buf[n] = '\0';
    ASSERT(strchr(buf, '\n') == buf + n - 1); /* one line only */
    ASSERT(strstr(buf, "evil\\x0a2026") != NULL);
}

int main(void)
{
    RUN(parse_levels);
    RUN(set_get);
    RUN(escape_control_characters);
    RUN(forged_line_is_escaped);
    TEST_DONE();
}
