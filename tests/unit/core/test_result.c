#include "core/result.h"
#include "test.h"

static struct ward_result fails(void)
{
    return WARD_RESULT_ERR(WARD_ERR_LIMIT);
}

static struct ward_result guarded(int *reached)
{
    GUARD(fails());
    *reached = 1;
    return WARD_RESULT_OK;
}

static struct ward_result ensured(int v)
{
    ENSURE(v > 0, WARD_ERR_INVALID);
    return WARD_RESULT_OK;
}

TEST(guard_propagates)
{
    int reached = 0;
    ASSERT_EQ(guarded(&reached).err, WARD_ERR_LIMIT);
    ASSERT_EQ(reached, 0);
}

TEST(ensure)
{
    ASSERT(ward_ok(ensured(1)));
    ASSERT_EQ(ensured(0).err, WARD_ERR_INVALID);
}

TEST(strings)
{
    ASSERT_STR_EQ(ward_err_str(WARD_OK), "ok");
    ASSERT_STR_EQ(ward_err_str(WARD_ERR_NOMEM), "out of memory");
    ASSERT_STR_EQ(ward_err_str((enum ward_err)99), "unknown error");
}

int main(void)
{
    RUN(guard_propagates);
    RUN(ensure);
    RUN(strings);
    TEST_DONE();
}
