/* core_time.h - monotonic and wall clocks (inline, any thread). */
#ifndef CORE_TIME_H
#define CORE_TIME_H
#include <stdint.h>
#include <time.h>

/* Nanoseconds on CLOCK_MONOTONIC. */
static inline uint64_t core_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t core_now_ms(void)
{
    return core_now_ns() / 1000000ull;
}

/* Seconds since the Unix epoch (wall clock), for tokens and logs. */
static inline int64_t core_wall_s(void)
{
    return (int64_t)time(NULL);
}

/* Sleeps until the absolute CLOCK_MONOTONIC time deadline_ns. */
static inline void core_sleep_until_ns(uint64_t deadline_ns)
{
    struct timespec ts = {(time_t)(deadline_ns / 1000000000ull),
                          (long)(deadline_ns % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
    }
}
#endif
