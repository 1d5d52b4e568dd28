/* progress.h: a terminal progress bar with rate and ETA.
 *
 * On a TTY it redraws one line in place (\r) at most every 100 ms; when the stream is not a
 * TTY (logs, CI, pipes) it prints a plain line every `plain_every_s` seconds and at the end,
 * so log files stay readable. The caller supplies a free-form suffix (loss, lr, ...).
 * Not thread-safe: one owner updates it. Tested by tests/common/test_progress.c.
 */
#ifndef SHOAL_COMMON_PROGRESS_H
#define SHOAL_COMMON_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    FILE *out;
    char label[32];
    char unit[16];         /* e.g. "step", shown in the rate: "12.3 step/s" */
    int64_t total;         /* 0: unknown total, no bar or ETA */
    int64_t start_value;   /* progress at start (resume), excluded from the rate */
    double start_s;
    double last_draw_s;
    double plain_every_s;  /* period of plain lines when not a TTY (default 10 s) */
    int is_tty;
    int width;             /* bar width in characters */
    int finished;
} shoal_progress;

void shoal_progress_init(shoal_progress *p, FILE *out, const char *label, const char *unit,
                         int64_t total, int64_t start_value);
/* Report progress `done`; suffix may be NULL. Draws when due (force=1: always). */
void shoal_progress_update(shoal_progress *p, int64_t done, const char *suffix, int force);
/* Final draw and newline. */
void shoal_progress_finish(shoal_progress *p, int64_t done, const char *suffix);
/* Format one progress line (no \r, no newline) into buf; used by update and by tests. */
void shoal_progress_format(const shoal_progress *p, int64_t done, double now_s,
                           const char *suffix, char *buf, size_t cap);

#endif
