/* schedule.c: see schedule.h. */
#define SHOAL_LOG_SUBSYS "schedule"
#include "worker/train/schedule.h"

#include <math.h>

shoal_status shoal_lr_schedule_check(const shoal_lr_schedule *s) {
    SHOAL_REQUIRE(isfinite(s->lr_max) && s->lr_max > 0 && s->lr_max < 1e3, SHOAL_ERR_INVALID_ARG,
                  "learning rate %g must be positive and finite", s->lr_max);
    SHOAL_REQUIRE(isfinite(s->min_ratio) && s->min_ratio >= 0 && s->min_ratio <= 1,
                  SHOAL_ERR_INVALID_ARG, "min lr ratio %g must be in [0, 1]", s->min_ratio);
    SHOAL_REQUIRE(s->total_steps >= 1, SHOAL_ERR_INVALID_ARG, "total steps %lld must be >= 1",
                  (long long)s->total_steps);
    SHOAL_REQUIRE(s->warmup_steps >= 0 && s->warmup_steps <= s->total_steps, SHOAL_ERR_INVALID_ARG,
                  "warmup steps %lld must be in [0, total steps %lld]", (long long)s->warmup_steps,
                  (long long)s->total_steps);
    return SHOAL_OK;
}

double shoal_lr_schedule_at(const shoal_lr_schedule *s, int64_t step) {
    double lr_min = s->lr_max * s->min_ratio;
    if (step < 0) step = 0;
    if (step < s->warmup_steps) return s->lr_max * (double)(step + 1) / (double)s->warmup_steps;
    if (step >= s->total_steps) return lr_min;
    double p = (double)(step - s->warmup_steps) / (double)(s->total_steps - s->warmup_steps);
    return lr_min + (s->lr_max - lr_min) * 0.5 * (1.0 + cos(M_PI * p));
}
