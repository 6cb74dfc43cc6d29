#include "core/clock.h"
#include "test.h"

TEST(monotonic)
{
    uint64_t a = clock_mono_ms(), b = clock_mono_ms();
    ASSERT(b >= a);
}

TEST(wall_is_recent)
{
    /* 2020-01-01 in ms: any real clock is past it. */
    ASSERT(clock_wall_ms() > 1577836800000ull);
}

int main(void)
{
    RUN(monotonic);
    RUN(wall_is_recent);
    TEST_DONE();
}
