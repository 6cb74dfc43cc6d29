#include "core/log.h"
#include "core/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Longest message kept (longer ones are cut), and the longest formatted
 * lines: a text escape is 4 bytes, a JSON one at most 6. */
#define MSG_MAX  2048u
#define TEXT_MAX (MSG_MAX + 64u)
#define JSON_MAX (MSG_MAX * 3u + 128u)
/* What the logger thread takes out of the queue at once. */
#define BATCH_MAX (64u * 1024u)

static _Atomic int current_level = LOG_NOTICE;
static _Atomic uint64_t dropped_lines;

static const char *const level_names[] = {"ERROR", "WARN", "NOTICE", "INFO", "DEBUG"};
static const char *const json_levels[] = {"error", "warn", "notice", "info", "debug"};
/* RFC 5424 severities: err, warning, notice, info, debug. (syslog.h's names
 * clash with ours.) */
static const int syslog_severity[] = {3, 4, 5, 6, 7};

/* One event as queued: the message is raw (escaped per sink when written). */
struct rec {
    uint32_t len; /* of msg; REC_WRAP marks the unused end of the ring */
    uint32_t level;
    int64_t sec;
    int64_t nsec;
    char msg[]; /* len bytes, no NUL */
};
#define REC_WRAP UINT32_MAX

/* The sinks. Only whoever holds sinks.mu writes to them: the caller of
 * log_msg before log_start, the logger thread after. */
static struct {
    pthread_mutex_t mu;
    unsigned to;
    enum log_format format;
    char path[PATH_MAX];
    int fd;        /* the file sink, -1: none */
    uint64_t size; /* bytes in the file, for rotation */
    uint64_t rot_size;
    uint32_t rot_count;
    int facility;
    char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int sock;         /* the syslog socket, -1: none */
    bool sock_failed; /* reported once until it works again */
} sinks = {.mu = PTHREAD_MUTEX_INITIALIZER, .to = LOG_TO_CONSOLE, .fd = -1, .sock = -1};

/* The queue: a ring of 8-byte aligned records, and the logger thread. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake; /* the logger: work, reopen or stop */
    pthread_cond_t done; /* log_stop: the logger drained and left */
    bool running;        /* log_msg queues (under mu) */
    bool stopping, finished, reopen;
    bool detached; /* log_stop gave up waiting: the logger frees buf itself */
    bool conds_ready;
    char *buf;
    size_t cap, head, tail, used;
    uint64_t reported; /* drops already reported when the logger started */
    pthread_t thread;
} q = {.mu = PTHREAD_MUTEX_INITIALIZER};

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

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF), or 0 if there is none. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n = c >= 0xc2 && c <= 0xdf   ? 2
               : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 0;
    if (n == 0 || n > avail)
        return 0;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* see log.h */
size_t log_json_escape(const char *in, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)in;
    size_t n = 0;
    if (cap == 0)
        return 0;
    len = strnlen(in, len);
    for (size_t i = 0; i < len;) {
        unsigned char ch = s[i];
        size_t seq = ch >= 0x80 ? utf8_len(s + i, len - i) : 1;
        bool special = ch == '"' || ch == '\\';
        bool control = ch < 0x20 || ch == 0x7f || seq == 0;
        size_t need = special ? 2 : control ? 6 : seq;
        if (n + need >= cap)
            break;
        if (special) {
            out[n++] = '\\';
            out[n++] = (char)ch;
        } else if (control) {
            memcpy(out + n, "\\u00", 4);
            out[n + 4] = hex[ch >> 4];
            out[n + 5] = hex[ch & 15];
            n += 6;
        } else {
            memcpy(out + n, s + i, seq);
            n += seq;
        }
        i += seq ? seq : 1;
    }
    out[n] = '\0';
    return n;
}

int log_sinks_parse(const char *list, unsigned *to, const char **bad)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"console", LOG_TO_CONSOLE}, {"file", LOG_TO_FILE}, {"syslog", LOG_TO_SYSLOG}};
    *to = 0;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ", ");
        bool known = n == 0;
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && !known; i++)
            if (strlen(names[i].name) == n && strncasecmp(p, names[i].name, n) == 0) {
                *to |= names[i].bit;
                known = true;
            }
        if (!known) {
            if (bad)
                *bad = p;
            return -1;
        }
        p += n + (p[n] != '\0');
    }
    return 0;
}

int log_facility_parse(const char *name)
{
    static const struct {
        const char *name;
        int facility;
    } names[] = {{"user", 1},    {"daemon", 3},  {"local0", 16}, {"local1", 17}, {"local2", 18},
                 {"local3", 19}, {"local4", 20}, {"local5", 21}, {"local6", 22}, {"local7", 23}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(name, names[i].name) == 0)
            return names[i].facility;
    return -1;
}

/* ---- formatting and the sinks (under sinks.mu) --------------------------- */

/* Under sinks.mu, like every caller: the date and time of the last second
 * seen is kept, so a burst of lines formats it once. */
static size_t format_time(const struct rec *r, char *out, size_t cap)
{
    static int64_t last_sec = -1;
    static char last[32];
    static size_t last_len;
    if (r->sec != last_sec) {
        struct tm tm;
        time_t t = (time_t)r->sec;
        gmtime_r(&t, &tm);
        last_len = strftime(last, sizeof(last), "%Y-%m-%dT%H:%M:%S", &tm);
        last_sec = r->sec;
    }
    memcpy(out, last, last_len);
    size_t n = last_len;
    n += (size_t)snprintf(out + n, cap - n, ".%03dZ", (int)(r->nsec / 1000000));
    return n;
}

static size_t format_text(const struct rec *r, char *line)
{
    size_t n = format_time(r, line, TEXT_MAX);
    n += (size_t)snprintf(line + n, TEXT_MAX - n, " %s ", level_names[r->level]);
    /* Client ids, user names and topics are the peer's choice: a control
     * character in them must not start a forged line or steer a terminal,
     * so each is written as \xNN (and a backslash as \x5c). */
    n += log_escape(r->msg, r->len, line + n, TEXT_MAX - n - 1);
    line[n++] = '\n';
    return n;
}

static size_t format_json(const struct rec *r, char *line)
{
    size_t n = (size_t)snprintf(line, JSON_MAX, "{\"time\":\"");
    n += format_time(r, line + n, JSON_MAX - n);
    n += (size_t)snprintf(line + n, JSON_MAX - n, "\",\"level\":\"%s\",\"msg\":\"",
                          json_levels[r->level]);
    n += log_json_escape(r->msg, r->len, line + n, JSON_MAX - n - 3);
    memcpy(line + n, "\"}\n", 3);
    return n + 3;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int open_file(const char *path, uint64_t *size)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    struct stat st;
    if (fd >= 0)
        *size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    return fd;
}

static void emit(const struct rec *r, bool rotate);

/* While the logger thread writes a batch, the lines for standard error and
 * for the file are gathered here and written with one write(2) per sink
 * when a buffer fills or the batch ends, not one per line. */
#define OUT_MAX (64u * 1024u)
static struct {
    bool on;
    size_t con, file;
    char con_buf[OUT_MAX], file_buf[OUT_MAX];
} gather;

static int write_all(int fd, const char *p, size_t n);

static void flush_console(void)
{
    if (gather.con)
        (void)write_all(STDERR_FILENO, gather.con_buf, gather.con);
    gather.con = 0;
}

static void flush_file(void)
{
    if (gather.file && write_all(sinks.fd, gather.file_buf, gather.file) == 0)
        sinks.size += gather.file;
    gather.file = 0;
}

/* A record and its text, as log_msg and sink_line build them: bytes laid
 * out as in the ring (struct rec, then its text), not a struct holding
 * one, which C allows only at the end (clang refuses it). */
struct rec_line {
    _Alignas(struct rec) unsigned char buf[sizeof(struct rec) + MSG_MAX];
};

static struct rec *rec_of(struct rec_line *e)
{
    return (struct rec *)(void *)e->buf;
}

static void rec_format(struct rec_line *e, enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void rec_format(struct rec_line *e, enum log_level level, const char *fmt, va_list ap)
{
    struct rec *r = rec_of(e);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int m = vsnprintf(r->msg, MSG_MAX, fmt, ap);
    r->len = m < 0 ? 0 : (uint32_t)strnlen(r->msg, MSG_MAX);
    r->level = (uint32_t)level;
    r->sec = ts.tv_sec;
    r->nsec = ts.tv_nsec;
}

static void rec_printf(struct rec_line *e, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void rec_printf(struct rec_line *e, enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rec_format(e, level, fmt, ap);
    va_end(ap);
}

/* A line about the sinks themselves, built as a record so every format
 * applies. Trouble (an error) also goes to standard error and never
 * rotates the file (no recursion). */
static void sink_line(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sink_line(enum log_level level, const char *fmt, ...)
{
    struct rec_line e;
    va_list ap;
    va_start(ap, fmt);
    rec_format(&e, level, fmt, ap);
    va_end(ap);
    if ((int)level <= atomic_load(&current_level))
        emit(rec_of(&e), level != LOG_ERROR);
}

static void rotated_name(char *out, size_t cap, unsigned i)
{
    snprintf(out, cap, "%s.%u", sinks.path, i);
}

/* path.N-1 -> path.N ... path -> path.1, then a new path. If anything
 * fails the current file stays in use and the next try waits for another
 * rotation.size bytes (counted after the error line), so a full or
 * read-only directory costs one line per rotation, not one per event. */
static void rotate(void)
{
    char from[PATH_MAX + 16], to[PATH_MAX + 16];
    rotated_name(to, sizeof(to), sinks.rot_count);
    (void)unlink(to);
    for (unsigned i = sinks.rot_count; i > 1; i--) {
        rotated_name(from, sizeof(from), i - 1);
        rotated_name(to, sizeof(to), i);
        if (rename(from, to) < 0 && errno != ENOENT) {
            /* path.1 stays: the current file must not replace it. */
            sink_line(LOG_ERROR, "log: cannot rotate %s to %s: %s; still writing to %s", from, to,
                      strerror(errno), sinks.path);
            sinks.size = 0;
            return;
        }
    }
    rotated_name(to, sizeof(to), 1);
    uint64_t size = 0;
    if (rename(sinks.path, to) < 0) {
        sink_line(LOG_ERROR, "log: cannot rotate %s to %s: %s; still writing to it", sinks.path, to,
                  strerror(errno));
        sinks.size = 0;
        return;
    }
    int fd = open_file(sinks.path, &size);
    if (fd < 0) {
        sink_line(LOG_ERROR, "log: cannot open %s after rotating it: %s; still writing to %s",
                  sinks.path, strerror(errno), to);
        sinks.size = 0;
        return;
    }
    close(sinks.fd);
    sinks.fd = fd;
    sinks.size = size;
}

static void file_write(const char *line, size_t n, bool may_rotate)
{
    uint64_t size = sinks.size + gather.file;
    if (may_rotate && sinks.rot_size && size > 0 && size + n > sinks.rot_size) {
        flush_console(); /* what came before stays before the rotation's lines */
        flush_file();
        rotate();
    }
    if (gather.on && may_rotate) {
        if (gather.file + n > OUT_MAX)
            flush_file();
        memcpy(gather.file_buf + gather.file, line, n);
        gather.file += n;
    } else if (write_all(sinks.fd, line, n) == 0) {
        sinks.size += n;
    }
}

static void console_write(const char *line, size_t n, bool may_rotate)
{
    if (gather.on && may_rotate) {
        if (gather.con + n > OUT_MAX)
            flush_console();
        memcpy(gather.con_buf + gather.con, line, n);
        gather.con += n;
        return;
    }
    (void)write_all(STDERR_FILENO, line, n);
}

static int syslog_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* One RFC 3164 datagram, as syslog(3) sends it to /dev/log: journald and
 * rsyslog both read it. Reconnects once if the reader went away (a
 * restarted journald). */
static void syslog_write(const struct rec *r)
{
    char line[TEXT_MAX + 128], stamp[32];
    struct tm tm;
    time_t t = (time_t)r->sec;
    localtime_r(&t, &tm);
    strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
    int n = snprintf(line, sizeof(line),
                     "<%d>%s ward[%ld]: ", sinks.facility * 8 + syslog_severity[r->level], stamp,
                     (long)getpid());
    size_t len = (size_t)n + log_escape(r->msg, r->len, line + n, sizeof(line) - (size_t)n);
    int e = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (sinks.sock < 0)
            sinks.sock = syslog_connect(sinks.sock_path);
        if (sinks.sock >= 0 && send(sinks.sock, line, len, MSG_NOSIGNAL) == (ssize_t)len) {
            sinks.sock_failed = false;
            return;
        }
        e = errno;
        if (sinks.sock >= 0)
            close(sinks.sock);
        sinks.sock = -1;
    }
    if (!sinks.sock_failed) {
        sinks.sock_failed = true;
        sink_line(LOG_ERROR,
                  "log: syslog socket %s: %s; lines for syslog are lost until it works again",
                  sinks.sock_path, strerror(e));
    }
}

/* Writes one record to every sink. */
static void emit(const struct rec *r, bool may_rotate)
{
    char text[TEXT_MAX], json[JSON_MAX];
    const char *line = text;
    size_t n;
    if (sinks.format == LOG_FORMAT_JSON) {
        n = format_json(r, json);
        line = json;
    } else {
        n = format_text(r, text);
    }
    bool console = (sinks.to & LOG_TO_CONSOLE) || sinks.to == 0;
    /* A sink's own trouble also goes to standard error, where a service
     * manager still sees it. */
    if (!may_rotate) { /* after what is gathered, not before it */
        flush_console();
        flush_file();
    }
    if (console || !may_rotate)
        console_write(line, n, may_rotate);
    if ((sinks.to & LOG_TO_FILE) && sinks.fd >= 0)
        file_write(line, n, may_rotate);
    if ((sinks.to & LOG_TO_SYSLOG) && may_rotate)
        syslog_write(r);
}

/* ---- configuration ------------------------------------------------------- */

int log_configure(const struct log_config *c, char *err, size_t cap)
{
    int fd = -1, sock = -1;
    uint64_t size = 0;
    const char *sp = c->syslog_socket ? c->syslog_socket : "/dev/log";
    if ((c->to & LOG_TO_FILE) && (!c->path || !*c->path || strlen(c->path) >= PATH_MAX)) {
        snprintf(err, cap, "log file: no usable path");
        return -1;
    }
    if ((c->to & LOG_TO_FILE) && (fd = open_file(c->path, &size)) < 0) {
        snprintf(err, cap, "log file %s: %s", c->path, strerror(errno));
        return -1;
    }
    if ((c->to & LOG_TO_SYSLOG) &&
        (strlen(sp) >= sizeof(sinks.sock_path) || (sock = syslog_connect(sp)) < 0)) {
        snprintf(err, cap, "syslog socket %s: %s", sp,
                 strlen(sp) >= sizeof(sinks.sock_path) ? "path too long" : strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    pthread_mutex_lock(&sinks.mu);
    if (sinks.fd >= 0)
        close(sinks.fd);
    if (sinks.sock >= 0)
        close(sinks.sock);
    sinks.to = c->to ? c->to : LOG_TO_CONSOLE;
    sinks.format = c->format;
    snprintf(sinks.path, sizeof(sinks.path), "%s", (c->to & LOG_TO_FILE) ? c->path : "");
    sinks.fd = fd;
    sinks.size = size;
    sinks.rot_size = c->rotation_size;
    sinks.rot_count = c->rotation_count ? c->rotation_count : 1;
    sinks.facility = c->syslog_facility;
    snprintf(sinks.sock_path, sizeof(sinks.sock_path), "%s", sp);
    sinks.sock = sock;
    sinks.sock_failed = false;
    pthread_mutex_unlock(&sinks.mu);
    q.cap = c->queue_size ? c->queue_size : LOG_QUEUE_DEFAULT;
    q.cap = q.cap < LOG_QUEUE_MIN ? LOG_QUEUE_MIN : q.cap & ~(size_t)7;
    return 0;
}

/* Under sinks.mu. */
static void reopen_file(void)
{
    uint64_t size = 0;
    if (!(sinks.to & LOG_TO_FILE) || sinks.fd < 0)
        return;
    int fd = open_file(sinks.path, &size);
    if (fd < 0) {
        sink_line(LOG_ERROR, "log: cannot reopen %s: %s; still writing to the file already open",
                  sinks.path, strerror(errno));
        return;
    }
    close(sinks.fd);
    sinks.fd = fd;
    sinks.size = size;
    sink_line(LOG_NOTICE, "log: reopened %s", sinks.path);
}

uint64_t log_dropped(void)
{
    return atomic_load(&dropped_lines);
}

/* ---- the queue ----------------------------------------------------------- */

static size_t rec_size(uint32_t len)
{
    return (sizeof(struct rec) + len + 7u) & ~(size_t)7;
}

/* Copies r into the ring. Returns 1 if queued, 0 if the queue is full, -1
 * if no logger runs (the caller writes the line itself). */
static int enqueue(const struct rec *r)
{
    size_t need = rec_size(r->len);
    pthread_mutex_lock(&q.mu);
    if (!q.running) {
        pthread_mutex_unlock(&q.mu);
        return -1;
    }
    size_t at = q.tail, wasted = 0;
    if (q.tail >= q.head && need > q.cap - q.tail) { /* no room at the end: wrap */
        wasted = q.cap - q.tail;
        at = 0;
    }
    if (q.used + wasted + need > q.cap) {
        pthread_mutex_unlock(&q.mu);
        return 0;
    }
    if (wasted) {
        uint32_t mark = REC_WRAP;
        memcpy(q.buf + q.tail, &mark, sizeof(mark));
    }
    memcpy(q.buf + at, r, sizeof(*r) + r->len);
    bool was_empty = q.used == 0;
    q.used += wasted + need;
    q.tail = at + need == q.cap ? 0 : at + need;
    if (was_empty)
        pthread_cond_signal(&q.wake);
    pthread_mutex_unlock(&q.mu);
    return 1;
}

/* Under q.mu: moves whole records into batch, up to cap bytes. */
static size_t dequeue(char *batch, size_t cap)
{
    size_t n = 0;
    while (q.used > 0) {
        uint32_t len;
        memcpy(&len, q.buf + q.head, sizeof(len));
        if (len == REC_WRAP) {
            q.used -= q.cap - q.head;
            q.head = 0;
            continue;
        }
        size_t sz = rec_size(len);
        if (n + sz > cap)
            break;
        memcpy(batch + n, q.buf + q.head, sz);
        n += sz;
        q.used -= sz;
        q.head = q.head + sz == q.cap ? 0 : q.head + sz;
    }
    if (q.used == 0)
        q.head = q.tail = 0;
    return n;
}

/* Writes a batch, then says how many lines the full queue cost, if any. */
static void write_batch(const char *batch, size_t n, uint64_t *reported)
{
    pthread_mutex_lock(&sinks.mu);
    gather.on = true;
    for (size_t off = 0; off < n;) {
        const struct rec *r = (const struct rec *)(const void *)(batch + off);
        emit(r, true);
        off += rec_size(r->len);
    }
    uint64_t d = atomic_load(&dropped_lines);
    if (d > *reported) {
        struct rec_line e;
        rec_printf(&e, LOG_WARN, "log: %llu log lines dropped (the log queue was full)",
                   (unsigned long long)(d - *reported));
        emit(rec_of(&e), true);
        *reported = d;
    }
    flush_console();
    flush_file();
    gather.on = false;
    pthread_mutex_unlock(&sinks.mu);
}

static void *logger(void *arg)
{
    (void)arg;
    static char batch[BATCH_MAX]; /* one logger at a time */
    uint64_t reported = q.reported;
    pthread_mutex_lock(&q.mu);
    for (;;) {
        while (q.used == 0 && !q.stopping && !q.reopen)
            pthread_cond_wait(&q.wake, &q.mu);
        if (q.reopen) {
            q.reopen = false;
            pthread_mutex_unlock(&q.mu);
            pthread_mutex_lock(&sinks.mu);
            reopen_file();
            pthread_mutex_unlock(&sinks.mu);
            pthread_mutex_lock(&q.mu);
            continue;
        }
        if (q.used == 0) /* and stopping */
            break;
        size_t n = dequeue(batch, BATCH_MAX);
        pthread_mutex_unlock(&q.mu);
        write_batch(batch, n, &reported);
        pthread_mutex_lock(&q.mu);
    }
    /* From here log_msg writes for itself again. */
    q.running = false;
    q.finished = true;
    pthread_cond_broadcast(&q.done);
    if (q.detached) { /* the sink came back after log_stop's timeout */
        free(q.buf);
        q.buf = NULL;
    }
    pthread_mutex_unlock(&q.mu);
    return NULL;
}

int log_start(void)
{
    pthread_condattr_t ca;
    pthread_mutex_lock(&q.mu);
    if (q.running) {
        pthread_mutex_unlock(&q.mu);
        return 0;
    }
    if (!q.cap)
        q.cap = LOG_QUEUE_DEFAULT;
    q.buf = malloc(q.cap);
    if (!q.conds_ready) { /* once: a detached logger may still use them */
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&q.wake, NULL);
        pthread_cond_init(&q.done, &ca);
        pthread_condattr_destroy(&ca);
        q.conds_ready = true;
    }
    q.head = q.tail = q.used = 0;
    q.stopping = q.finished = q.reopen = q.detached = false;
    /* Read here, not in the thread: lines dropped before it first runs
     * must be reported too. */
    q.reported = atomic_load(&dropped_lines);
    q.running = q.buf != NULL;
    if (q.running && pthread_create(&q.thread, NULL, logger, NULL) != 0)
        q.running = false;
    if (!q.running) {
        free(q.buf);
        q.buf = NULL;
    }
    int rc = q.running ? 0 : -1;
    pthread_mutex_unlock(&q.mu);
    return rc;
}

void log_stop(uint32_t timeout_ms)
{
    struct timespec until = clock_mono_after(timeout_ms);
    pthread_mutex_lock(&q.mu);
    if (!q.buf) {
        pthread_mutex_unlock(&q.mu);
        return;
    }
    q.stopping = true;
    pthread_cond_signal(&q.wake);
    int rc = 0;
    while (!q.finished && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&q.done, &q.mu, &until);
    /* Stuck in a write: the logger is left to finish (and free the queue)
     * on its own; a later log_stop may still wait for that. */
    bool finished = q.finished, detached = q.detached;
    q.detached = detached || !finished;
    pthread_mutex_unlock(&q.mu);
    if (!detached && !finished)
        pthread_detach(q.thread);
    if (detached || !finished)
        return;
    pthread_join(q.thread, NULL);
    free(q.buf);
    q.buf = NULL;
}

void log_reopen(void)
{
    pthread_mutex_lock(&q.mu);
    if (q.running) {
        q.reopen = true;
        pthread_cond_signal(&q.wake);
        pthread_mutex_unlock(&q.mu);
        return;
    }
    pthread_mutex_unlock(&q.mu);
    pthread_mutex_lock(&sinks.mu);
    reopen_file();
    pthread_mutex_unlock(&sinks.mu);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if ((int)level > atomic_load(&current_level))
        return;
    struct rec_line e;
    va_list ap;
    va_start(ap, fmt);
    rec_format(&e, level, fmt, ap);
    va_end(ap);
    int queued = enqueue(rec_of(&e));
    if (queued == 0)
        atomic_fetch_add(&dropped_lines, 1);
    if (queued >= 0)
        return;
    pthread_mutex_lock(&sinks.mu);
    emit(rec_of(&e), true);
    pthread_mutex_unlock(&sinks.mu);
}
