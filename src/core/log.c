#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static _Atomic int current_level = LOG_NOTICE;

static const char *const level_names[] = {"ERROR", "WARN", "NOTICE", "INFO", "DEBUG"};

void log_set_level(enum log_level level)
{
    atomic_store(&current_level, (int)level);
}

enum log_level log_get_level(void)
{
    return (enum log_level)atomic_load(&current_level);
}

int log_level_parse(const char *name)
{
    static const struct {
        const char *name;
        enum log_level level;
    } names[] = {{"error", LOG_ERROR},   {"warn", LOG_WARN}, {"warning", LOG_WARN},
                 {"notice", LOG_NOTICE}, {"info", LOG_INFO}, {"debug", LOG_DEBUG}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(name, names[i].name) == 0)
            return (int)names[i].level;
    return -1;
}

/* see log.h */
size_t log_escape(const char *in, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    if (cap == 0)
        return 0;
    for (size_t i = 0; i < len && in[i]; i++) {
        unsigned char ch = (unsigned char)in[i];
        bool plain = ch >= 0x20 && ch != 0x7f && ch != '\\';
        size_t need = plain ? 1 : 4;
        if (n + need >= cap)
            break;
        if (plain) {
            out[n++] = (char)ch;
            continue;
        }
        out[n++] = '\\';
        out[n++] = 'x';
        out[n++] = hex[ch >> 4];
        out[n++] = hex[ch & 15];
    }
    out[n] = '\0';
    return n;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if ((int)level > atomic_load(&current_level))
        return;
    char raw[2048], line[2048 + 64];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %s ", ts.tv_nsec / 1000000L,
                          level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    /* Client ids, user names and topics are the peer's choice: a control
     * character in them must not start a forged line or steer a terminal,
     * so each is written as \xNN (and a backslash as \x5c). */
    n += log_escape(raw, m < 0 ? 0 : strnlen(raw, sizeof(raw)), line + n, sizeof(line) - n - 1);
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}
