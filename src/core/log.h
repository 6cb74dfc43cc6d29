/* Logging: one line per event to stderr, "2026-11-22T14:00:00.123Z LEVEL msg".
 * Thread-safe (one write(2) per line). The level can change at run time. */
#ifndef WARD_CORE_LOG_H
#define WARD_CORE_LOG_H

#include <stddef.h>

#include "core/result.h"

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_NOTICE, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error", "warn"/"warning", "notice", "info", "debug"; returns -1 if unknown. */
WARD_WUR int log_level_parse(const char *name);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Copies len bytes of in (stopping at a NUL) to out, writing each control
 * character, DEL and backslash as \xNN; out is always terminated. Returns
 * the length written. log_msg applies it to every line. */
size_t log_escape(const char *in, size_t len, char *out, size_t cap);

#define log_error(...)  log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)                                                                              \
    do {                                                                                           \
        if (log_get_level() >= LOG_INFO)                                                           \
            log_msg(LOG_INFO, __VA_ARGS__);                                                        \
    } while (0)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_get_level() >= LOG_DEBUG)                                                          \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                                       \
    } while (0)

#endif
