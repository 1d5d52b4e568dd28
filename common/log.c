/* log.c: see log.h. Level read lazily from SHOAL_LOG_LEVEL; one lock around each line. */
#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_level = -1; /* -1: not read from the environment yet */
static char log_role[64];

static const char *level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

int shoal_log_parse_level(const char *s) {
    if (!s) return -1;
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, level_names[i]) == 0) return i;
    if (strcasecmp(s, "warning") == 0) return SHOAL_LOG_WARN;
    return -1;
}

static int current_level(void) {
    if (log_level < 0) {
        int lv = shoal_log_parse_level(getenv("SHOAL_LOG_LEVEL"));
        log_level = lv < 0 ? SHOAL_LOG_INFO : lv;
    }
    return log_level;
}

void shoal_log_set_level(shoal_log_level level) {
    pthread_mutex_lock(&log_lock);
    log_level = (int)level;
    pthread_mutex_unlock(&log_lock);
}

shoal_log_level shoal_log_get_level(void) {
    pthread_mutex_lock(&log_lock);
    int lv = current_level();
    pthread_mutex_unlock(&log_lock);
    return (shoal_log_level)lv;
}

void shoal_log_set_role(const char *role) {
    pthread_mutex_lock(&log_lock);
    if (role)
        snprintf(log_role, sizeof log_role, "%s", role);
    else
        log_role[0] = '\0';
    pthread_mutex_unlock(&log_lock);
}

void shoal_log_write(shoal_log_level level, const char *subsys, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    pthread_mutex_lock(&log_lock);
    if ((int)level > current_level()) {
        pthread_mutex_unlock(&log_lock);
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (log_role[0])
        fprintf(stderr, "shoal[%s] %s %s: %s\n", log_role, level_names[level], subsys, msg);
    else
        fprintf(stderr, "shoal %s %s: %s\n", level_names[level], subsys, msg);
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
}
