/* log.h: leveled logging to stderr with a subsystem and a role/rank prefix.
 *
 * Lines look like `shoal[rank 1] ERROR safetensors: model.safetensors: header length ...`.
 * The level comes from SHOAL_LOG_LEVEL (error|warn|info|debug, default info) on first use, or
 * shoal_log_set_level(). The role prefix ("coordinator", "rank 1", "site a") is set once by
 * the process. Thread-safe: each line is written with a single fprintf under a lock.
 * Each .c file defines SHOAL_LOG_SUBSYS before including this header to name itself.
 * Tested by tests/common/test_log.c.
 */
#ifndef SHOAL_COMMON_LOG_H
#define SHOAL_COMMON_LOG_H

typedef enum {
    SHOAL_LOG_ERROR = 0,
    SHOAL_LOG_WARN = 1,
    SHOAL_LOG_INFO = 2,
    SHOAL_LOG_DEBUG = 3,
} shoal_log_level;

#ifndef SHOAL_LOG_SUBSYS
#define SHOAL_LOG_SUBSYS "shoal"
#endif

void shoal_log_set_level(shoal_log_level level);
shoal_log_level shoal_log_get_level(void);
/* Parse "error|warn|info|debug" (case-insensitive); returns -1 when unknown. */
int shoal_log_parse_level(const char *s);
/* Role shown in every line, e.g. "coordinator" or "rank 3"; copied, NULL clears it. */
void shoal_log_set_role(const char *role);
void shoal_log_write(shoal_log_level level, const char *subsys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define SHOAL_LOG_ERROR(...) shoal_log_write(SHOAL_LOG_ERROR, SHOAL_LOG_SUBSYS, __VA_ARGS__)
#define SHOAL_LOG_WARN(...) shoal_log_write(SHOAL_LOG_WARN, SHOAL_LOG_SUBSYS, __VA_ARGS__)
#define SHOAL_LOG_INFO(...) shoal_log_write(SHOAL_LOG_INFO, SHOAL_LOG_SUBSYS, __VA_ARGS__)
#define SHOAL_LOG_DEBUG(...) shoal_log_write(SHOAL_LOG_DEBUG, SHOAL_LOG_SUBSYS, __VA_ARGS__)

#endif
