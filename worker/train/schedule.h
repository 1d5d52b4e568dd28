/* schedule.h: the learning-rate schedule: linear warmup, then cosine decay to a floor.
 *
 * With steps counted from 0 (the step about to be taken):
 *   step <  warmup:          lr = lr_max * (step + 1) / warmup      (never 0, as in llm.c)
 *   warmup <= step < total:  p = (step - warmup) / (total - warmup),
 *                            lr = lr_min + (lr_max - lr_min) * (1 + cos(pi * p)) / 2
 *   step >= total:           lr = lr_min
 * where lr_min = lr_max * min_ratio. warmup = 0 starts the cosine at once; min_ratio = 1 is
 * a constant rate after warmup. A pure function of the step, so resuming needs no state.
 * Tested by tests/train/test_schedule.c against hand-computed values.
 */
#ifndef SHOAL_TRAIN_SCHEDULE_H
#define SHOAL_TRAIN_SCHEDULE_H

#include <stdint.h>

#include "common/status.h"

typedef struct {
    double lr_max;        /* peak rate, > 0 */
    double min_ratio;     /* floor as a fraction of lr_max, in [0, 1] */
    int64_t warmup_steps; /* >= 0 */
    int64_t total_steps;  /* >= warmup_steps, >= 1 */
} shoal_lr_schedule;

/* INVALID_ARG (with the field named) when a value is out of range or not finite. */
shoal_status shoal_lr_schedule_check(const shoal_lr_schedule *s);
/* The rate for `step` (0-based). s must have passed the check. */
double shoal_lr_schedule_at(const shoal_lr_schedule *s, int64_t step);

#endif
