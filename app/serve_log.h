/* `ward serve`'s logging: log { } and the --log-file / --log-format flags
 * applied to the logger (src/core/log.h) at start, before any thread runs
 * and before privileges are dropped, so the file is opened as the user
 * that started ward. */
#ifndef WARD_APP_SERVE_LOG_H
#define WARD_APP_SERVE_LOG_H

#include "config/config.h"

/* What the command line adds: --log-file PATH (the file sink, on top of
 * log.to) and --log-format; NULL when not given. */
struct serve_log_flags {
    const char *file;
    const char *format;
};

/* Opens the sinks (as the user that started ward). cfg is NULL without a
 * configuration file. Returns 0, or -1 after printing why (naming the file
 * or socket) to stderr: ward serve then refuses to start. */
int serve_log_start(const struct ward_config *cfg, const struct serve_log_flags *flags);
/* The log file's path, NULL without a file sink (for the check before a
 * privilege drop: reopening and rotating need it writable). */
const char *serve_log_file(void);
/* Starts the logger thread: from now on a log line never blocks its
 * caller. Called once privileges are dropped (app/privs.h: no thread may
 * run while the check switches ids). -1 after printing why. */
int serve_log_begin(void);

/* Writes what is queued (within log.flush_timeout) and stops the thread. */
void serve_log_stop(void);

#endif
