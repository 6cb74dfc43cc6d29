/* Monotonic and wall clocks in milliseconds. */
#ifndef WARD_CORE_CLOCK_H
#define WARD_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds from an arbitrary fixed point; never goes backwards. */
uint64_t clock_mono_ms(void);
/* Milliseconds since the Unix epoch. */
uint64_t clock_wall_ms(void);
/* The absolute CLOCK_MONOTONIC time `ms` from now, for pthread_cond_timedwait
 * on a condition variable set to that clock. */
struct timespec clock_mono_after(uint32_t ms);

#endif
