/* timeutil.c: see timeutil.h. */
#include "common/timeutil.h"

#include <math.h>
#include <stdio.h>
#include <time.h>

uint64_t shoal_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double shoal_now_s(void) { return (double)shoal_now_ns() * 1e-9; }

double shoal_wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

char *shoal_format_duration(double s, char *out, size_t cap) {
    if (!isfinite(s) || s < 0) {
        snprintf(out, cap, "--");
    } else if (s < 60) {
        snprintf(out, cap, "%.1fs", s);
    } else {
        long t = (long)(s + 0.5);
        if (t < 3600)
            snprintf(out, cap, "%ldm%02lds", t / 60, t % 60);
        else
            snprintf(out, cap, "%ldh%02ldm%02lds", t / 3600, (t / 60) % 60, t % 60);
    }
    return out;
}
