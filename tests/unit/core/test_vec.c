#include <stdint.h>

#include "core/vec.h"
#include "test.h"

/* Under AddressSanitizer a huge request must fail like malloc does, not abort. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

TEST(grows_geometrically)
{
    int *a = NULL;
    size_t cap = 0;
    ASSERT(ward_ok(VEC_RESERVE(a, cap, 1)));
    ASSERT(a != NULL);
    ASSERT_EQ(cap, VEC_MIN_CAP);
    for (int i = 0; i < VEC_MIN_CAP; i++)
        a[i] = i;
    ASSERT(ward_ok(VEC_RESERVE(a, cap, VEC_MIN_CAP + 1)));
    ASSERT_EQ(cap, 2 * VEC_MIN_CAP);
    for (int i = 0; i < VEC_MIN_CAP; i++)
        ASSERT_EQ(a[i], i);
    ASSERT(ward_ok(VEC_RESERVE(a, cap, 1000))); /* more than double: exactly what is needed */
    ASSERT_EQ(cap, 1000);
    int *before = a; /* enough room: nothing changes */
    ASSERT(ward_ok(VEC_RESERVE(a, cap, 1000)));
    ASSERT(ward_ok(VEC_RESERVE(a, cap, 0)));
    ASSERT(a == before);
    ASSERT_EQ(cap, 1000);
    free(a);
}

TEST(exact)
{
    /* grows to exactly what is asked, never shrinks */
    static const size_t need[] = {5, 6, 2}, want[] = {5, 6, 6};
    char *s = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
        ASSERT(ward_ok(VEC_RESERVE_EXACT(s, cap, need[i])));
        ASSERT_EQ(cap, want[i]);
    }
    free(s);
}

TEST(overflow_keeps_the_old_block)
{
    uint32_t *a = NULL;
    size_t cap = 0;
    ASSERT(ward_ok(VEC_RESERVE(a, cap, 2)));
    a[0] = 7;
    uint32_t *before = a;
    /* need * elem_size wraps around SIZE_MAX */
    ASSERT_EQ(VEC_RESERVE(a, cap, SIZE_MAX / 2).err, WARD_ERR_LIMIT);
    ASSERT_EQ(VEC_RESERVE_EXACT(a, cap, SIZE_MAX / 4 + 1).err, WARD_ERR_LIMIT);
    ASSERT_EQ(vec_reserve(&a, &cap, 2 * VEC_MIN_CAP, 0).err, WARD_ERR_INVALID);
    ASSERT(a == before);
    ASSERT_EQ(cap, VEC_MIN_CAP);
    ASSERT_EQ(a[0], 7);
    free(a);
}

TEST(allocation_failure_keeps_the_old_block)
{
    uint8_t *a = NULL;
    size_t cap = 0;
    ASSERT(ward_ok(VEC_RESERVE(a, cap, 4)));
    memcpy(a, "ward", 4);
    uint8_t *before = a;
    /* no overflow, but no machine has SIZE_MAX - 1 bytes to give */
    ASSERT_EQ(VEC_RESERVE(a, cap, SIZE_MAX - 1).err, WARD_ERR_NOMEM);
    ASSERT_EQ(VEC_RESERVE_EXACT(a, cap, SIZE_MAX / 2).err, WARD_ERR_NOMEM);
    ASSERT(a == before);
    ASSERT_EQ(cap, VEC_MIN_CAP);
    ASSERT_MEM_EQ(a, "ward", 4);
    free(a);
}

TEST(doubling_near_the_limit_takes_what_is_needed)
{
    /* A capacity whose double overflows grows to `need`, which then fails to allocate. */
    uint8_t *a = NULL;
    size_t cap = 0;
    ASSERT(ward_ok(VEC_RESERVE(a, cap, 1)));
    size_t big = SIZE_MAX / 2 + 2;
    size_t fake = big - 1;
    ASSERT_EQ(vec_reserve(&a, &fake, big, 1).err, WARD_ERR_NOMEM);
    ASSERT_EQ(fake, big - 1);
    free(a);
}

int main(void)
{
    RUN(grows_geometrically);
    RUN(exact);
    RUN(overflow_keeps_the_old_block);
    RUN(allocation_failure_keeps_the_old_block);
    RUN(doubling_near_the_limit_takes_what_is_needed);
    TEST_DONE();
}
