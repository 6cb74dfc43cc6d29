#include "core/clock.h"

#include <time.h>

static uint64_t to_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t clock_mono_ms(void)
{
    return to_ms(CLOCK_MONOTONIC);
}

uint64_t clock_wall_ms(void)
{
    return to_ms(CLOCK_REALTIME);
}
