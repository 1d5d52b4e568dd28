/* timeutil.h: monotonic and wall clocks, and human-readable durations. */
#ifndef SHOAL_COMMON_TIMEUTIL_H
#define SHOAL_COMMON_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic seconds (CLOCK_MONOTONIC), for intervals. */
double shoal_now_s(void);
/* Monotonic nanoseconds. */
uint64_t shoal_now_ns(void);
/* Wall-clock Unix time in seconds, for timestamps stored or shown. */
double shoal_wall_s(void);
/* Format seconds as "1h02m03s", "4m05s" or "6.7s" into out; returns out. */
char *shoal_format_duration(double seconds, char *out, size_t cap);

#endif
