/* progress.c: see progress.h. */
#include "common/progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/timeutil.h"

void shoal_progress_init(shoal_progress *p, FILE *out, const char *label, const char *unit,
                         int64_t total, int64_t start_value) {
    memset(p, 0, sizeof *p);
    p->out = out;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    snprintf(p->unit, sizeof p->unit, "%s", unit ? unit : "it");
    p->total = total;
    p->start_value = start_value;
    p->start_s = shoal_now_s();
    p->last_draw_s = -1e9;
    p->plain_every_s = 10.0;
    p->is_tty = out && isatty(fileno(out));
    p->width = 24;
}

void shoal_progress_format(const shoal_progress *p, int64_t done, double now_s,
                           const char *suffix, char *buf, size_t cap) {
    double elapsed = now_s - p->start_s;
    double rate = elapsed > 0 ? (double)(done - p->start_value) / elapsed : 0.0;
    char eta[32], el[32];
    shoal_format_duration(elapsed, el, sizeof el);
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "%s", p->label);
    if (p->total > 0) {
        double frac = (double)done / (double)p->total;
        if (frac < 0) frac = 0;
        if (frac > 1) frac = 1;
        int fill = (int)(frac * p->width + 0.5);
        char bar[128];
        int w = p->width < (int)sizeof bar - 1 ? p->width : (int)sizeof bar - 1;
        for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
        bar[w] = '\0';
        double left = rate > 0 ? (double)(p->total - done) / rate : -1;
        shoal_format_duration(left, eta, sizeof eta);
        if (n < cap)
            n += (size_t)snprintf(buf + n, cap - n, " [%s] %lld/%lld %3.0f%% | %.2f %s/s | %s ETA %s",
                                  bar, (long long)done, (long long)p->total, frac * 100.0, rate,
                                  p->unit, el, eta);
    } else if (n < cap) {
        n += (size_t)snprintf(buf + n, cap - n, " %lld | %.2f %s/s | %s", (long long)done, rate,
                              p->unit, el);
    }
    if (suffix && suffix[0] && n < cap) snprintf(buf + n, cap - n, " | %s", suffix);
}

static void draw(shoal_progress *p, int64_t done, const char *suffix, double now, int final) {
    char line[512];
    shoal_progress_format(p, done, now, suffix, line, sizeof line);
    if (p->is_tty)
        fprintf(p->out, "\r%s\033[K%s", line, final ? "\n" : "");
    else
        fprintf(p->out, "%s\n", line);
    fflush(p->out);
    p->last_draw_s = now;
}

void shoal_progress_update(shoal_progress *p, int64_t done, const char *suffix, int force) {
    if (!p->out || p->finished) return;
    double now = shoal_now_s();
    double period = p->is_tty ? 0.1 : p->plain_every_s;
    if (force || now - p->last_draw_s >= period) draw(p, done, suffix, now, 0);
}

void shoal_progress_finish(shoal_progress *p, int64_t done, const char *suffix) {
    if (!p->out || p->finished) return;
    draw(p, done, suffix, shoal_now_s(), 1);
    p->finished = 1;
}
