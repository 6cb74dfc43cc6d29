/* A minimal unit-test harness: ASSERT_* print both operands and the location,
 * then abort the test binary. TEST(name) defines a case; RUN(name) runs it.
 * main() ends with TEST_DONE(), which prints "N passed, 0 failed". */
#ifndef WARD_TEST_H
#define WARD_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test__passed;

#define TEST_FAIL_(...)                                                                            \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        fprintf(stdout, "%d passed, 1 failed\n", test__passed);                                    \
        abort();                                                                                   \
    } while (0)

#define ASSERT(c)                                                                                  \
    do {                                                                                           \
        if (!(c))                                                                                  \
            TEST_FAIL_("assertion failed: %s", #c);                                                \
    } while (0)

#define ASSERT_EQ(a, b)                                                                            \
    do {                                                                                           \
        long long a__ = (long long)(a), b__ = (long long)(b);                                      \
        if (a__ != b__)                                                                            \
            TEST_FAIL_("%s == %s: %lld != %lld", #a, #b, a__, b__);                                \
    } while (0)

#define ASSERT_NE(a, b)                                                                            \
    do {                                                                                           \
        long long a__ = (long long)(a), b__ = (long long)(b);                                      \
        if (a__ == b__)                                                                            \
            TEST_FAIL_("%s != %s: both %lld", #a, #b, a__);                                        \
    } while (0)

#define ASSERT_STR_EQ(a, b)                                                                        \
    do {                                                                                           \
        const char *a__ = (a), *b__ = (b);                                                         \
        if (!a__ || !b__ || strcmp(a__, b__) != 0)                                                 \
            TEST_FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b, a__ ? a__ : "(null)",                 \
                       b__ ? b__ : "(null)");                                                      \
    } while (0)

#define ASSERT_MEM_EQ(a, b, n)                                                                     \
    do {                                                                                           \
        if (memcmp((a), (b), (n)) != 0)                                                            \
            TEST_FAIL_("%s and %s differ in their first %zu bytes", #a, #b, (size_t)(n));          \
    } while (0)

#define TEST(name) static void test_##name(void)
#define RUN(name)                                                                                  \
    do {                                                                                           \
        test_##name();                                                                             \
        test__passed++;                                                                            \
    } while (0)
#define TEST_DONE()                                                                                \
    do {                                                                                           \
        printf("%d passed, 0 failed\n", test__passed);                                             \
        return 0;                                                                                  \
    } while (0)

#endif
