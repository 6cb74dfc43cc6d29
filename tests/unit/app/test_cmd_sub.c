/* ward sub's output: "payload" or "topic payload" per line, the payload's
 * bytes unchanged. */
#include "app/client_opts.h"
#include "test.h"

static char *format(bool verbose, const char *topic, const void *payload, uint32_t len)
{
    struct client_message m = {.topic = {(const uint8_t *)topic, (uint32_t)strlen(topic)},
                               .payload = {payload, len}};
    char *text = NULL;
    size_t size;
    FILE *f = open_memstream(&text, &size);
    sub_print_message(f, verbose, &m);
    fclose(f);
    return text;
}

TEST(plain_and_verbose)
{
    char *t = format(false, "a/b", "hello world", 11);
    ASSERT_STR_EQ(t, "hello world\n");
    free(t);
    t = format(true, "a/b", "hello world", 11);
    ASSERT_STR_EQ(t, "a/b hello world\n");
    free(t);
}

TEST(empty_payload)
{
    char *t = format(true, "cli/b", "", 0);
    ASSERT_STR_EQ(t, "cli/b \n"); /* what mosquitto_sub -v prints too */
    free(t);
    t = format(false, "cli/b", "", 0);
    ASSERT_STR_EQ(t, "\n");
    free(t);
}

TEST(binary_payload_unchanged)
{
    static const uint8_t bin[] = {0, 1, '\n', 0xff, '%', 's'};
    char *text = NULL;
    size_t size;
    struct client_message m = {.topic = {(const uint8_t *)"t", 1}, .payload = {bin, sizeof(bin)}};
    FILE *f = open_memstream(&text, &size);
    sub_print_message(f, true, &m);
    fclose(f);
    ASSERT_EQ(size, 2 + sizeof(bin) + 1);
    ASSERT_MEM_EQ(text, "t ", 2);
    ASSERT_MEM_EQ(text + 2, bin, sizeof(bin));
    ASSERT_EQ(text[size - 1], '\n');
    free(text);
}

int main(void)
{
    RUN(plain_and_verbose);
    RUN(empty_payload);
    RUN(binary_payload_unchanged);
    TEST_DONE();
}
