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
    free(a);
}

TEST(enough_room_is_a_no_op)
{
    uint64_t *a = NULL;
    size_t cap = 0;
    ASSERT(ward_ok(VEC_RESERVE(a, cap, 3)));
    uint64_t *before = a;
    ASSERT(ward_ok(VEC_RESERVE(a, cap, cap)));
    ASSERT(ward_ok(VEC_RESERVE(a, cap, 0)));
    ASSERT(a == before);
    ASSERT_EQ(cap, VEC_MIN_CAP);
    free(a);
}

TEST(exact)
{
    char *s = NULL;
    size_t cap = 0;
    ASSERT(ward_ok(VEC_RESERVE_EXACT(s, cap, 5)));
    ASSERT_EQ(cap, 5);
    ASSERT(ward_ok(VEC_RESERVE_EXACT(s, cap, 6)));
    ASSERT_EQ(cap, 6);
    ASSERT(ward_ok(VEC_RESERVE_EXACT(s, cap, 2)));
    ASSERT_EQ(cap, 6);
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
    RUN(enough_room_is_a_no_op);
    RUN(exact);
    RUN(overflow_keeps_the_old_block);
    RUN(allocation_failure_keeps_the_old_block);
    RUN(doubling_near_the_limit_takes_what_is_needed);
    TEST_DONE();
}
