/* Clocks: wall time in Unix nanoseconds (stamped into commands by the proposer) and a monotonic
 * millisecond clock for local timers and latency measurement. */
#ifndef CM_TIMEUTIL_H
#define CM_TIMEUTIL_H

#include <stdint.h>
#include <time.h>

static inline int64_t cm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline uint64_t cm_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

static inline uint64_t cm_mono_ms(void)
{
    return cm_mono_us() / 1000;
}

/* RFC 3339 with nanoseconds in UTC, as Go renders time.Time ("0001-01-01T00:00:00Z" for zero). */
void cm_format_rfc3339(int64_t unix_ns, char *out, size_t cap);

#endif
