/* src/core/base64.c: RFC 4648 vectors, both alphabets, padding and the
 * one-spelling rule, bounds. */
#include <string.h>

#include "core/base64.h"
#include "test.h"

static const char *const vec[][2] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

TEST(rfc4648_vectors)
{
    for (size_t i = 0; i < sizeof(vec) / sizeof(*vec); i++) {
        char out[32];
        size_t n = strlen(vec[i][0]);
        ASSERT_EQ(base64_encode((const uint8_t *)vec[i][0], n, out), strlen(vec[i][1]));
        ASSERT_STR_EQ(out, vec[i][1]);
        ASSERT_EQ(BASE64_LEN(n), strlen(vec[i][1]));
        uint8_t back[32];
        ASSERT_EQ(base64_decode(vec[i][1], strlen(vec[i][1]), back, sizeof(back)), (long)n);
        ASSERT(memcmp(back, vec[i][0], n) == 0);
    }
}

TEST(url_alphabet_and_no_padding)
{
    const uint8_t raw[] = {0xfb, 0xff, 0xbf};
    uint8_t out[8];
    ASSERT_EQ(base64_decode("-_-_", 4, out, sizeof(out)), 3);
    ASSERT(memcmp(out, raw, 3) == 0);
    ASSERT_EQ(base64_decode("+/+/", 4, out, sizeof(out)), 3);
    ASSERT(memcmp(out, raw, 3) == 0);
    ASSERT_EQ(base64_decode("Zg", 2, out, sizeof(out)), 1); /* padding left out */
    ASSERT_EQ(out[0], 'f');
}

TEST(refused)
{
    uint8_t out[8];
    ASSERT_EQ(base64_decode("Zh==", 4, out, sizeof(out)), -1); /* leftover bits set */
    ASSERT_EQ(base64_decode("Zg=", 3, out, sizeof(out)), -1);  /* half the padding */
    ASSERT_EQ(base64_decode("Z", 1, out, sizeof(out)), -1);    /* one char: no byte */
    ASSERT_EQ(base64_decode("Zm9v!A==", 8, out, sizeof(out)), -1);
    ASSERT_EQ(base64_decode("Zm 9v", 5, out, sizeof(out)), -1);
    ASSERT_EQ(base64_decode("Zm9vYmFy", 8, out, 5), -1); /* does not fit */
    ASSERT_EQ(base64_decode("Zm9vYmFy", 8, out, 6), 6);
}

int main(void)
{
    RUN(rfc4648_vectors);
    RUN(url_alphabet_and_no_padding);
    RUN(refused);
    TEST_DONE();
}
