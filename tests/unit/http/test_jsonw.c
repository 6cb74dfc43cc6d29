/* src/http/jsonw.c: nesting and commas, string escaping (control bytes,
 * quotes, HTML-significant characters, invalid UTF-8 as U+FFFD per maximal
 * subpart), numbers, and every misuse remembered as a failure. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "http/jsonw.h"
#include "test.h"

/* The buf's bytes as a NUL-terminated string in a static area. */
static const char *text(struct buf *b)
{
    static char s[4096];
    size_t n = buf_len(b);
    if (n >= sizeof(s))
        n = sizeof(s) - 1;
    memcpy(s, buf_head(b), n);
    s[n] = '\0';
    return s;
}

TEST(nesting_and_commas)
{
    struct buf b;
    buf_init(&b, 0);
    struct jsonw w;
    jsonw_init(&w, &b);
    jsonw_object_begin(&w);
    jsonw_kv_string(&w, "name", "ward");
    jsonw_kv_u64(&w, "n", 3);
    jsonw_kv_bool(&w, "up", true);
    jsonw_key(&w, "list");
    jsonw_array_begin(&w);
    jsonw_i64(&w, -1);
    jsonw_null(&w);
    jsonw_object_begin(&w);
    jsonw_object_end(&w);
    jsonw_array_begin(&w);
    jsonw_array_end(&w);
    jsonw_bool(&w, false);
    jsonw_array_end(&w);
    jsonw_key(&w, "e");
    jsonw_object_begin(&w);
    jsonw_kv_string(&w, "k", NULL);
    jsonw_object_end(&w);
    jsonw_object_end(&w);
    ASSERT(jsonw_done(&w));
    ASSERT_STR_EQ(text(&b), "{\"name\":\"ward\",\"n\":3,\"up\":true,\"list\":[-1,null,{},[],false],"
                            "\"e\":{\"k\":null}}");
    buf_free(&b);
}

static const char *one_string(struct buf *b, const char *s, size_t n)
{
    struct jsonw w;
    buf_reset(b);
    jsonw_init(&w, b);
    jsonw_string_n(&w, s, n);
    ASSERT(jsonw_done(&w));
    return text(b);
}

TEST(escapes)
{
    struct buf b;
    buf_init(&b, 0);
    ASSERT_STR_EQ(one_string(&b, "a\"b\\c", 5), "\"a\\\"b\\\\c\"");
    ASSERT_STR_EQ(one_string(&b, "\n\r\t\x01\x1f\x7f", 6), "\"\\n\\r\\t\\u0001\\u001f\x7f\"");
    ASSERT_STR_EQ(one_string(&b, "a\0b", 3), "\"a\\u0000b\"");
    ASSERT_STR_EQ(one_string(&b, "</script>&", 10), "\"\\u003c/script\\u003e\\u0026\"");
    ASSERT_STR_EQ(one_string(&b, "", 0), "\"\"");
    /* Keys are escaped the same way. */
    struct jsonw w;
    buf_reset(&b);
    jsonw_init(&w, &b);
    jsonw_object_begin(&w);
    jsonw_kv_u64(&w, "\"k\n", 1);
    jsonw_object_end(&w);
    ASSERT(jsonw_done(&w));
    ASSERT_STR_EQ(text(&b), "{\"\\\"k\\n\":1}");
    buf_free(&b);
}

TEST(utf8)
{
    struct buf b;
    buf_init(&b, 0);
    /* Valid sequences of 2, 3 and 4 bytes pass unchanged, at the edges of
     * their ranges too. */
    const char ok[] =
        "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xed\x9f\xbf \xee\x80\x80 \xf4\x8f\xbf\xbf";
    char want[64];
    snprintf(want, sizeof(want), "\"%s\"", ok);
    ASSERT_STR_EQ(one_string(&b, ok, strlen(ok)), want);
    /* Each maximal ill-formed subpart becomes one U+FFFD. */
    ASSERT_STR_EQ(one_string(&b, "\xff", 1), "\"\\ufffd\"");
    ASSERT_STR_EQ(one_string(&b, "\xc0\x80", 2), "\"\\ufffd\\ufffd\""); /* overlong */
    ASSERT_STR_EQ(one_string(&b, "\xe0\x80\x80", 3), "\"\\ufffd\\ufffd\\ufffd\"");
    ASSERT_STR_EQ(one_string(&b, "\xed\xa0\x80", 3), "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate */
    ASSERT_STR_EQ(one_string(&b, "\xf4\x90\x80\x80", 4),
                  "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");           /* above U+10FFFF */
    ASSERT_STR_EQ(one_string(&b, "\xe2\x82", 2), "\"\\ufffd\""); /* cut short at the end */
    ASSERT_STR_EQ(one_string(&b,
                             "\xe2\x82"
                             "A",
                             3),
                  "\"\\ufffdA\""); /* cut short */
    ASSERT_STR_EQ(one_string(&b, "\xf0\x9f\x98", 3), "\"\\ufffd\"");
    ASSERT_STR_EQ(one_string(&b,
                             "a\x80"
                             "b",
                             3),
                  "\"a\\ufffdb\""); /* lone continuation */
    buf_free(&b);
}

static const char *one_double(struct buf *b, double v)
{
    struct jsonw w;
    buf_reset(b);
    jsonw_init(&w, b);
    jsonw_double(&w, v);
    ASSERT(jsonw_done(&w));
    return text(b);
}

TEST(numbers)
{
    struct buf b;
    buf_init(&b, 0);
    struct jsonw w;
    jsonw_init(&w, &b);
    jsonw_array_begin(&w);
    jsonw_u64(&w, UINT64_MAX);
    jsonw_i64(&w, INT64_MIN);
    jsonw_u64(&w, 0);
    jsonw_array_end(&w);
    ASSERT(jsonw_done(&w));
    ASSERT_STR_EQ(text(&b), "[18446744073709551615,-9223372036854775808,0]");
    ASSERT_STR_EQ(one_double(&b, 0.1), "0.1");
    ASSERT_STR_EQ(one_double(&b, 2.5), "2.5");
    ASSERT_STR_EQ(one_double(&b, 1e300), "1e+300");
    ASSERT_STR_EQ(one_double(&b, 0.1 + 0.2), "0.30000000000000004");
    ASSERT_STR_EQ(one_double(&b, NAN), "null");
    ASSERT_STR_EQ(one_double(&b, INFINITY), "null");
    ASSERT_STR_EQ(one_double(&b, -INFINITY), "null");
    buf_free(&b);
}

/* Runs `misuse` on a fresh writer and checks it is remembered. */
#define EXPECT_FAILS(...)                                                                          \
    do {                                                                                           \
        struct buf b_;                                                                             \
        buf_init(&b_, 0);                                                                          \
        struct jsonw w;                                                                            \
        jsonw_init(&w, &b_);                                                                       \
        __VA_ARGS__;                                                                               \
        ASSERT(!jsonw_done(&w));                                                                   \
        buf_free(&b_);                                                                             \
    } while (0)

TEST(misuse_is_remembered)
{
    /* Nothing written, or something left open. */
    EXPECT_FAILS((void)0);
    EXPECT_FAILS(jsonw_object_begin(&w));
    EXPECT_FAILS(jsonw_array_begin(&w); jsonw_object_begin(&w); jsonw_object_end(&w));
    /* A key outside an object, twice in a row, or left without its value. */
    EXPECT_FAILS(jsonw_key(&w, "k"));
    EXPECT_FAILS(jsonw_array_begin(&w); jsonw_key(&w, "k"); jsonw_array_end(&w));
    EXPECT_FAILS(jsonw_object_begin(&w); jsonw_key(&w, "a"); jsonw_key(&w, "b"); jsonw_null(&w);
                 jsonw_object_end(&w));
    EXPECT_FAILS(jsonw_object_begin(&w); jsonw_key(&w, "a"); jsonw_object_end(&w));
    EXPECT_FAILS(jsonw_object_begin(&w); jsonw_key(&w, NULL); jsonw_null(&w); jsonw_object_end(&w));
    /* A value inside an object without its key. */
    EXPECT_FAILS(jsonw_object_begin(&w); jsonw_u64(&w, 1); jsonw_object_end(&w));
    /* Closing what is not open, or the other kind. */
    EXPECT_FAILS(jsonw_object_end(&w));
    EXPECT_FAILS(jsonw_array_begin(&w); jsonw_object_end(&w));
    EXPECT_FAILS(jsonw_object_begin(&w); jsonw_array_end(&w));
    /* Two values at the top are not one JSON text. */
    EXPECT_FAILS(jsonw_null(&w); jsonw_null(&w));
    /* The failure sticks: what follows does not undo it. */
    EXPECT_FAILS(jsonw_key(&w, "k"); jsonw_object_begin(&w); jsonw_object_end(&w));
}

TEST(depth_limit)
{
    struct buf b;
    buf_init(&b, 0);
    struct jsonw w;
    jsonw_init(&w, &b);
    for (int i = 0; i < JSONW_MAX_DEPTH; i++)
        jsonw_array_begin(&w);
    for (int i = 0; i < JSONW_MAX_DEPTH; i++)
        jsonw_array_end(&w);
    ASSERT(jsonw_done(&w));
    ASSERT_EQ(buf_len(&b), 2 * JSONW_MAX_DEPTH);

    buf_reset(&b);
    jsonw_init(&w, &b);
    for (int i = 0; i < JSONW_MAX_DEPTH + 1; i++)
        jsonw_array_begin(&w);
    for (int i = 0; i < JSONW_MAX_DEPTH + 1; i++)
        jsonw_array_end(&w);
    ASSERT(!jsonw_done(&w));
    buf_free(&b);
}

TEST(out_of_room)
{
    /* A buf with a limit stands in for memory running out. */
    struct buf b;
    buf_init(&b, 8);
    struct jsonw w;
    jsonw_init(&w, &b);
    jsonw_object_begin(&w);
    jsonw_kv_string(&w, "key", "a value longer than the limit");
    jsonw_object_end(&w);
    ASSERT(!jsonw_done(&w));
    ASSERT(buf_len(&b) <= 8);
    buf_free(&b);
}

int main(void)
{
    RUN(nesting_and_commas);
    RUN(escapes);
    RUN(utf8);
    RUN(numbers);
    RUN(misuse_is_remembered);
    RUN(depth_limit);
    RUN(out_of_room);
    TEST_DONE();
}
