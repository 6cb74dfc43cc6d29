#include "serve_log.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"

static uint32_t flush_timeout_ms = 2000;

/* log.file inside log.dir, unless it is absolute or no dir is set. */
static char sink_file[PATH_MAX]; /* the file sink's path, "" without one */

static int file_path(const struct ward_config *c, char *out, size_t cap)
{
    const char *file = c->log_file ? c->log_file : "ward.log";
    int n = c->log_dir && *c->log_dir && file[0] != '/'
                ? snprintf(out, cap, "%s/%s", c->log_dir, file)
                : snprintf(out, cap, "%s", file);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* The settings from c (a loaded file, or the defaults) and the flags. */
static int settings(const struct ward_config *c, const struct serve_log_flags *flags,
                    struct log_config *lc, char *path, size_t cap)
{
    const char *bad = "";
    const char *format = flags->format ? flags->format : c->log_format;
    *lc = (struct log_config){.format = format && strcmp(format, "json") == 0 ? LOG_FORMAT_JSON
                                                                              : LOG_FORMAT_TEXT,
                              .path = path,
                              .rotation_size = c->log_rotation_size,
                              .rotation_count = c->log_rotation_count,
                              .syslog_facility = log_facility_parse(c->log_syslog_facility),
                              .syslog_socket = c->log_syslog_socket,
                              .queue_size = c->log_queue_size};
    if (log_sinks_parse(c->log_to ? c->log_to : "console", &lc->to, &bad) < 0) {
        fprintf(stderr, "ward serve: log.to: unknown sink '%s'\n", bad);
        return -1;
    }
    if (flags->file) {
        lc->to |= LOG_TO_FILE;
        snprintf(path, cap, "%s", flags->file);
    } else if ((lc->to & LOG_TO_FILE) && file_path(c, path, cap) < 0) {
        fprintf(stderr, "ward serve: log.dir and log.file make too long a path\n");
        return -1;
    }
    flush_timeout_ms = c->log_flush_timeout_ms;
    return 0;
}

/* see serve_log.h */
const char *serve_log_file(void)
{
    return sink_file[0] ? sink_file : NULL;
}

/* see serve_log.h */
int serve_log_begin(void)
{
    if (log_start() < 0) {
        fprintf(stderr, "ward serve: cannot start the logger thread\n");
        return -1;
    }
    return 0;
}

int serve_log_start(const struct ward_config *cfg, const struct serve_log_flags *flags)
{
    struct ward_config defaults;
    char path[PATH_MAX], err[PATH_MAX + 256];
    struct log_config lc;
    int rc = -1;
    if (!cfg) { /* no file: its defaults, so both read the same table */
        if (config_defaults(&defaults) < 0) {
            fprintf(stderr, "ward serve: cannot load the default log settings\n");
            config_free(&defaults);
            return -1;
        }
    }
    if (settings(cfg ? cfg : &defaults, flags, &lc, path, sizeof(path)) < 0)
        goto out;
    if (log_configure(&lc, err, sizeof(err)) < 0) {
        fprintf(stderr, "ward serve: %s; not starting\n", err);
        goto out;
    }
    snprintf(sink_file, sizeof(sink_file), "%s", (lc.to & LOG_TO_FILE) ? path : "");
    rc = 0;
out:
    if (!cfg)
        config_free(&defaults);
    return rc;
}

void serve_log_stop(void)
{
    log_stop(flush_timeout_ms);
}
