/* Monotonic clock in nanoseconds, and small time helpers. */
#ifndef RLY_CORE_CLOCK_H
#define RLY_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

#define RLY_NS_PER_US INT64_C(1000)
#define RLY_NS_PER_MS INT64_C(1000000)
#define RLY_NS_PER_S INT64_C(1000000000)

/* rly_now_ns returns CLOCK_MONOTONIC time in nanoseconds. */
static inline int64_t rly_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * RLY_NS_PER_S + ts.tv_nsec;
}

/* rly_wall_ns returns CLOCK_REALTIME (Unix epoch) time in nanoseconds, for data timestamps. */
static inline int64_t rly_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * RLY_NS_PER_S + ts.tv_nsec;
}

/* rly_sleep_ns sleeps for at least ns nanoseconds. */
void rly_sleep_ns(int64_t ns);

#endif
