/* Logging: one line per event, "2026-11-22T14:00:00.123Z LEVEL msg" (or a
 * JSON object per line), to any of standard error, a file with size-based
 * rotation, and syslog. Thread-safe; the level can change at run time.
 *
 * Two modes. Until log_start(), and in every command but `ward serve`,
 * log_msg writes each line itself (one write(2) per line per sink). After
 * log_start(), log_msg only copies the line into a bounded queue that one
 * logger thread drains into the sinks: a stalled standard error pipe or a
 * slow disk costs dropped (and counted) lines, never a blocked worker. */
#ifndef WARD_CORE_LOG_H
#define WARD_CORE_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "core/result.h"

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_NOTICE, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error", "warn"/"warning", "notice", "info", "debug"; returns -1 if unknown. */
WARD_WUR int log_level_parse(const char *name);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Copies len bytes of in (stopping at a NUL) to out, writing each control
 * character, DEL and backslash as \xNN; out is always terminated. Returns
 * the length written. log_msg applies it to every text line. */
size_t log_escape(const char *in, size_t len, char *out, size_t cap);

/* The same for the inside of a JSON string (RFC 8259): '"' and '\' get a
 * backslash, control characters and DEL become \u00XX, valid UTF-8 passes
 * through, and a byte that is not part of valid UTF-8 becomes \u00XX (its
 * value as a Latin-1 character), so every line is valid JSON and UTF-8. An
 * escape that does not fit is left out; out is always terminated. */
size_t log_json_escape(const char *in, size_t len, char *out, size_t cap);

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

/* ---- sinks, rotation, the queue ------------------------------------------ */

enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };

#define LOG_TO_CONSOLE 1u /* standard error */
#define LOG_TO_FILE    2u
#define LOG_TO_SYSLOG  4u

/* Smallest and default queue sizes: the smallest still holds a few of the
 * longest lines (2 KiB each). */
#define LOG_QUEUE_MIN     (16u * 1024u)
#define LOG_QUEUE_DEFAULT (1024u * 1024u)

struct log_config {
    unsigned to;               /* LOG_TO_* bits; 0 means LOG_TO_CONSOLE */
    enum log_format format;    /* console and file; syslog always gets the text */
    const char *path;          /* the file sink's file */
    uint64_t rotation_size;    /* rotate before the file passes this; 0: never */
    uint32_t rotation_count;   /* rotated files kept: path.1 (newest) .. path.N */
    int syslog_facility;       /* a number, see log_facility_parse */
    const char *syslog_socket; /* a unix datagram socket; NULL: /dev/log */
    size_t queue_size;         /* bytes queued for the logger thread; 0: default */
};

/* "console,file,syslog" (any order, commas or spaces) into LOG_TO_* bits.
 * Returns -1 and points *bad at the first unknown word otherwise. */
WARD_WUR int log_sinks_parse(const char *list, unsigned *to, const char **bad);
/* "user", "daemon", "local0" ... "local7" to the syslog facility number
 * (RFC 5424 section 6.2.1); -1 if unknown. */
WARD_WUR int log_facility_parse(const char *name);

/* Opens the configured sinks (the file is created if missing, appended to
 * otherwise) and closes the previous ones. Call it before log_start (or
 * after log_stop). On failure nothing changes and err names the path and
 * the cause. */
WARD_WUR int log_configure(const struct log_config *c, char *err, size_t cap);

/* Starts the logger thread; from now on log_msg never blocks on a sink. */
WARD_WUR int log_start(void);

/* Writes what is queued (for at most timeout_ms), stops the logger thread
 * and returns to writing lines synchronously. A thread stuck writing to a
 * sink is left behind after the timeout (the process is exiting). */
void log_stop(uint32_t timeout_ms);

/* Reopens the log file by its path (after logrotate renamed it). Not
 * async-signal-safe: call it from the thread that waits for SIGUSR1. If the
 * file cannot be opened, one error line is logged and lines keep going to
 * the file already open. */
void log_reopen(void);

/* Lines dropped because the queue was full, since the process started. */
uint64_t log_dropped(void);

#endif
