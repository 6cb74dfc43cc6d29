/* secret_read without a terminal: the first line of standard input, its
 * line end removed; nothing at all is an error. */
#include <unistd.h>

#include "app/secret.h"
#include "test.h"

/* Makes standard input a file holding text. */
static void stdin_from(const char *text)
{
    char path[] = "/tmp/ward-unit-secret-XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    ASSERT_EQ(write(fd, text, strlen(text)), (long)strlen(text));
    ASSERT(freopen(path, "r", stdin) != NULL);
    close(fd);
    unlink(path);
}

TEST(first_line)
{
    char buf[64];
    stdin_from("s3cret\nsecond line\n");
    ASSERT_EQ(secret_read("Password: ", buf, sizeof(buf)), 0);
    ASSERT_STR_EQ(buf, "s3cret");
    stdin_from("crlf\r\n");
    ASSERT_EQ(secret_read("Password: ", buf, sizeof(buf)), 0);
    ASSERT_STR_EQ(buf, "crlf");
    stdin_from("no newline");
    ASSERT_EQ(secret_read("Password: ", buf, sizeof(buf)), 0);
    ASSERT_STR_EQ(buf, "no newline");
    stdin_from("\n");
    ASSERT_EQ(secret_read("Password: ", buf, sizeof(buf)), 0);
    ASSERT_STR_EQ(buf, ""); /* an empty line is an empty password, for the caller to refuse */
}

TEST(bounded)
{
    char buf[8];
    stdin_from("0123456789abcdef\n");
    ASSERT_EQ(secret_read("Password: ", buf, sizeof(buf)), 0);
    ASSERT_STR_EQ(buf, "0123456"); /* cap - 1 bytes and the terminator */
}

TEST(end_of_input)
{
    char buf[64];
    stdin_from("");
    ASSERT_EQ(secret_read("Password: ", buf, sizeof(buf)), -1);
}

int main(void)
{
    RUN(first_line);
    RUN(bounded);
    RUN(end_of_input);
    TEST_DONE();
}
