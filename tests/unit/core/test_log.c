#include "core/log.h"
#include "test.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

TEST(parse_levels)
{
    ASSERT_EQ(log_level_parse("debug"), LOG_DEBUG);
    ASSERT_EQ(log_level_parse("WARNING"), LOG_WARN);
    ASSERT_EQ(log_level_parse("warn"), LOG_WARN);
    ASSERT_EQ(log_level_parse("bogus"), -1);
}

TEST(set_get)
{
    log_set_level(LOG_ERROR);
    ASSERT_EQ(log_get_level(), LOG_ERROR);
    log_info("not printed %d", 1); /* below the level: must be a no-op */
    log_set_level(LOG_DEBUG);
    ASSERT_EQ(log_get_level(), LOG_DEBUG);
    log_debug("printed %s", "line");
}

TEST(escape_control_characters)
{
    char out[64];
    ASSERT_EQ(log_escape("plain id/1", 10, out, sizeof(out)), 10);
    ASSERT_STR_EQ(out, "plain id/1");
    log_escape("a\nb\r\x1b[31m\\", 10, out, sizeof(out));
    ASSERT_STR_EQ(out, "a\\x0ab\\x0d\\x1b[31m\\x5c");
    /* Stops at a NUL and never overflows: an escape that does not fit is left out. */
    ASSERT_EQ(log_escape("ab\0cd", 5, out, sizeof(out)), 2);
    ASSERT_EQ(log_escape("abc\n", 4, out, 6), 3);
    ASSERT_STR_EQ(out, "abc");
    ASSERT_EQ(log_escape("x", 1, out, 0), 0);
}

TEST(forged_line_is_escaped)
{
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    ASSERT(saved >= 0);
    ASSERT(dup2(fds[1], STDERR_FILENO) >= 0);
    log_set_level(LOG_NOTICE);
    log_notice("client '%s' connected", "evil\n2026-01-01T00:00:00.000Z NOTICE admin logged in");
    ASSERT(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    close(fds[1]);
    char buf[512];
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    ASSERT(n > 0);
    buf[n] = '\0';
    ASSERT(strchr(buf, '\n') == buf + n - 1); /* one line only */
    ASSERT(strstr(buf, "evil\\x0a2026") != NULL);
}

/* A JSON string's inside: quotes, backslashes, controls, DEL and bytes that
 * are not UTF-8 are escaped; valid UTF-8 is kept. */
TEST(json_escape)
{
    char out[128];
    log_json_escape("a\"b\\c\n\x01\x7f", 9, out, sizeof(out));
    ASSERT_STR_EQ(out, "a\\\"b\\\\c\\u000a\\u0001\\u007f");
    log_json_escape("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, out, sizeof(out));
    ASSERT_STR_EQ(out, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    /* Invalid: a lone 0xff, an overlong '/', a surrogate, a cut sequence. */
    log_json_escape("\xff|\xc0\xaf|\xed\xa0\x80|\xe2\x82", 12, out, sizeof(out));
    ASSERT_STR_EQ(out, "\\u00ff|\\u00c0\\u00af|\\u00ed\\u00a0\\u0080|\\u00e2\\u0082");
    /* Never overflows: an escape that does not fit is left out. */
    ASSERT_EQ(log_json_escape("ab\n", 3, out, 6), 2);
    ASSERT_STR_EQ(out, "ab");
    ASSERT_EQ(log_json_escape("\xc3\xa9", 2, out, 2), 0);
    ASSERT_EQ(log_json_escape("x", 1, out, 0), 0);
}

TEST(parse_sinks_and_facilities)
{
    unsigned to;
    const char *bad = NULL;
    ASSERT_EQ(log_sinks_parse("file,console", &to, &bad), 0);
    ASSERT_EQ(to, LOG_TO_FILE | LOG_TO_CONSOLE);
    ASSERT_EQ(log_sinks_parse("syslog", &to, &bad), 0);
    ASSERT_EQ(to, LOG_TO_SYSLOG);
    ASSERT_EQ(log_sinks_parse("console,journal", &to, &bad), -1);
    ASSERT_STR_EQ(bad, "journal");
    ASSERT_EQ(log_sinks_parse("files", &to, &bad), -1);
    ASSERT_EQ(log_facility_parse("daemon"), 3);
    ASSERT_EQ(log_facility_parse("local7"), 23);
    ASSERT_EQ(log_facility_parse("kern"), -1);
}

/* Standard error into a pipe, for the test's length. */
struct capture {
    int fds[2], saved;
};

static void capture_start(struct capture *c)
{
    ASSERT_EQ(pipe(c->fds), 0);
    c->saved = dup(STDERR_FILENO);
    ASSERT(c->saved >= 0);
    ASSERT(dup2(c->fds[1], STDERR_FILENO) >= 0);
}

/* Restores standard error and returns what was written (up to cap - 1). */
static size_t capture_end(struct capture *c, char *buf, size_t cap)
{
    ASSERT(dup2(c->saved, STDERR_FILENO) >= 0);
    close(c->saved);
    close(c->fds[1]);
    size_t n = 0;
    for (ssize_t r; n + 1 < cap && (r = read(c->fds[0], buf + n, cap - 1 - n)) > 0;)
        n += (size_t)r;
    close(c->fds[0]);
    buf[n] = '\0';
    return n;
}

static size_t slurp(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    size_t n = 0;
    if (fd >= 0) {
        for (ssize_t r; n + 1 < cap && (r = read(fd, buf + n, cap - 1 - n)) > 0;)
            n += (size_t)r;
        close(fd);
    }
    buf[n] = '\0';
    return fd < 0 ? (size_t)-1 : n;
}

static void console_only(void)
{
    char err[256];
    struct log_config c = {.to = LOG_TO_CONSOLE};
    ASSERT_EQ(log_configure(&c, err, sizeof(err)), 0);
}

static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ward-log-XXXXXX");
    ASSERT(mkdtemp(tmpdir) != NULL);
}

static void cleanup_tmpdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    ASSERT_EQ(system(cmd), 0);
}

TEST(file_rotates_by_size)
{
    char path[128], name[160], buf[4096], err[256];
    make_tmpdir();
    snprintf(path, sizeof(path), "%s/w.log", tmpdir);
    struct log_config c = {
        .to = LOG_TO_FILE, .path = path, .rotation_size = 300, .rotation_count = 2};
    ASSERT_EQ(log_configure(&c, err, sizeof(err)), 0);
    log_set_level(LOG_NOTICE);
    for (int i = 0; i < 40; i++)
        log_notice("line %02d of the rotation test", i);
    /* 40 lines of about 60 bytes: the current file and two old ones. */
    for (unsigned i = 0; i <= 3; i++) {
        if (i)
            snprintf(name, sizeof(name), "%s.%u", path, i);
        else
            snprintf(name, sizeof(name), "%s", path);
        size_t n = slurp(name, buf, sizeof(buf));
        if (i == 3) {
            ASSERT_EQ(n, (size_t)-1); /* the oldest was deleted */
            continue;
        }
        ASSERT(n != (size_t)-1 && n > 0 && n <= 300);
        ASSERT(buf[n - 1] == '\n');
    }
    ASSERT(slurp(path, buf, sizeof(buf)) > 0 && strstr(buf, "line 39") != NULL);
    console_only();
    cleanup_tmpdir();
}

/* A rotation that cannot shift the old files (here ward.log.2 is a
 * directory) says so once and keeps writing to the current file; path.1
 * is not overwritten. */
TEST(failed_rotation_keeps_writing)
{
    char path[128], name[160], buf[8192], err[256];
    make_tmpdir();
    snprintf(path, sizeof(path), "%s/w.log", tmpdir);
    snprintf(name, sizeof(name), "%s.2", path);
    ASSERT_EQ(mkdir(name, 0700), 0);
    snprintf(name, sizeof(name), "%s.2/keep", path);
    FILE *f = fopen(name, "w");
    ASSERT(f != NULL);
    fclose(f);
    struct log_config c = {
        .to = LOG_TO_FILE, .path = path, .rotation_size = 200, .rotation_count = 2};
    ASSERT_EQ(log_configure(&c, err, sizeof(err)), 0);
    struct capture cap;
    capture_start(&cap);
    for (int i = 0; i < 8; i++) /* ~60 bytes each: one rotation, then a failed one */
        log_notice("line %02d of the failing rotation", i);
    capture_end(&cap, buf, sizeof(buf));
    ASSERT(strstr(buf, "cannot rotate") && strstr(buf, ".1 to ") && strstr(buf, ".2: "));
    ASSERT(strchr(buf, '\n') == buf + strlen(buf) - 1); /* one line */
    snprintf(name, sizeof(name), "%s.1", path);
    ASSERT(slurp(name, buf, sizeof(buf)) > 0 && strstr(buf, "line 00"));
    ASSERT(slurp(path, buf, sizeof(buf)) > 0 && strstr(buf, "line 07"));
    ASSERT(strstr(buf, "cannot rotate"));
    console_only();
    cleanup_tmpdir();
}

TEST(reopen_after_rename_and_failed_reopen)
{
    char path[128], moved[200], dir2[160], buf[4096], err[256];
    make_tmpdir();
    snprintf(path, sizeof(path), "%s/w.log", tmpdir);
    snprintf(moved, sizeof(moved), "%s/w.log.old", tmpdir);
    struct log_config c = {.to = LOG_TO_FILE, .path = path};
    ASSERT_EQ(log_configure(&c, err, sizeof(err)), 0);
    log_notice("before");
    ASSERT_EQ(rename(path, moved), 0);
    log_reopen();
    log_notice("after");
    ASSERT(slurp(moved, buf, sizeof(buf)) > 0 && strstr(buf, "before") && !strstr(buf, "after"));
    ASSERT(slurp(path, buf, sizeof(buf)) > 0 && strstr(buf, "after") && !strstr(buf, "before"));
    /* The directory goes away: reopening fails, one error line names the
     * path, and lines keep going to the file already open. */
    snprintf(dir2, sizeof(dir2), "%s.gone", tmpdir);
    ASSERT_EQ(rename(tmpdir, dir2), 0);
    struct capture cap;
    capture_start(&cap);
    log_reopen();
    log_notice("still here");
    capture_end(&cap, buf, sizeof(buf));
    ASSERT(strstr(buf, "cannot reopen") && strstr(buf, path));
    ASSERT(strchr(buf, '\n') == buf + strlen(buf) - 1); /* one line */
    snprintf(moved, sizeof(moved), "%s/w.log", dir2);
    ASSERT(slurp(moved, buf, sizeof(buf)) > 0 && strstr(buf, "still here"));
    ASSERT(strstr(buf, "cannot reopen"));
    ASSERT_EQ(rename(dir2, tmpdir), 0);
    console_only();
    cleanup_tmpdir();
}

TEST(configure_refuses_unopenable_file)
{
    char err[256];
    struct log_config c = {.to = LOG_TO_FILE, .path = "/nonexistent-dir/ward.log"};
    ASSERT_EQ(log_configure(&c, err, sizeof(err)), -1);
    ASSERT(strstr(err, "/nonexistent-dir/ward.log") != NULL);
    c = (struct log_config){.to = LOG_TO_SYSLOG, .syslog_socket = "/nonexistent-dir/log"};
    ASSERT_EQ(log_configure(&c, err, sizeof(err)), -1);
    ASSERT(strstr(err, "/nonexistent-dir/log") != NULL);
}

TEST(json_lines)
{
    char path[128], buf[4096], err[256];
    make_tmpdir();
    snprintf(path, sizeof(path), "%s/w.json", tmpdir);
    struct log_config c = {.to = LOG_TO_FILE, .path = path, .format = LOG_FORMAT_JSON};
    ASSERT_EQ(log_configure(&c, err, sizeof(err)), 0);
    log_warn("client '%s' said \"hi\"", "ev\nil");
    ASSERT(slurp(path, buf, sizeof(buf)) > 0);
    ASSERT(strncmp(buf, "{\"time\":\"", 9) == 0);
    ASSERT(
        strstr(buf, "Z\",\"level\":\"warn\",\"msg\":\"client 'ev\\u000ail' said \\\"hi\\\"\"}\n"));
    ASSERT(strchr(buf, '\n') == buf + strlen(buf) - 1);
    console_only();
    cleanup_tmpdir();
}

TEST(syslog_datagram)
{
    char sock[100], buf[512], err[256];
    make_tmpdir();
    snprintf(sock, sizeof(sock), "%s/log", tmpdir);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    ASSERT_EQ(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct log_config c = {.to = LOG_TO_SYSLOG,
                           .syslog_facility = log_facility_parse("daemon"),
                           .syslog_socket = sock};
    ASSERT_EQ(log_configure(&c, err, sizeof(err)), 0);
    log_error("disk \x1b[2J full");
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    ASSERT(n > 0);
    buf[n] = '\0';
    ASSERT(strncmp(buf, "<27>", 4) == 0); /* daemon (3) * 8 + err (3) */
    char tag[64];
    snprintf(tag, sizeof(tag), " ward[%ld]: disk \\x1b[2J full", (long)getpid());
    ASSERT(strstr(buf, tag) != NULL);
    close(fd);
    console_only();
    cleanup_tmpdir();
}

static void *flood(void *arg)
{
    for (int i = 0; i < *(int *)arg; i++)
        log_notice("flood line %d, long enough to fill a small pipe quickly .........", i);
    return NULL;
}

/* Reads a pipe until its writers are gone. */
static void *drain(void *arg)
{
    char buf[4096];
    while (read(*(int *)arg, buf, sizeof(buf)) > 0)
        ;
    return NULL;
}

/* Standard error is a pipe nobody reads: log_msg still returns (the calls
 * complete, lines are dropped and counted), and once the pipe is read the
 * logger says how many lines it dropped. */
TEST(full_pipe_drops_instead_of_blocking)
{
    char err[256], buf[65536];
    struct capture cap;
    capture_start(&cap);
    (void)fcntl(cap.fds[1], F_SETPIPE_SZ, 4096);
    struct log_config c = {.to = LOG_TO_CONSOLE, .queue_size = LOG_QUEUE_MIN};
    ASSERT_EQ(log_configure(&c, err, sizeof(err)), 0);
    uint64_t before = log_dropped();
    ASSERT_EQ(log_start(), 0);
    int lines = 20000;
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, flood, &lines), 0);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    ASSERT(log_dropped() > before);
    /* Drain until the report; every read waits at most 10 s, and the
     * logger writes at most the queue and one report, so this ends. */
    bool seen = false;
    size_t keep = 0;
    for (int i = 0; i < 100000 && !seen; i++) {
        struct pollfd p = {.fd = cap.fds[0], .events = POLLIN};
        ASSERT_EQ(poll(&p, 1, 10000), 1);
        ssize_t n = read(cap.fds[0], buf + keep, sizeof(buf) - 1 - keep);
        ASSERT(n > 0);
        buf[keep + (size_t)n] = '\0';
        seen = strstr(buf, " log lines dropped (the log queue was full)") != NULL;
        /* Keep the last partial line: the report may span two reads. */
        char *nl = strrchr(buf, '\n');
        keep = nl ? strlen(nl + 1) : keep + (size_t)n;
        if (nl)
            memmove(buf, nl + 1, keep + 1);
        if (keep > sizeof(buf) / 2)
            keep = 0;
    }
    ASSERT(seen);
    /* What is still queued goes on into the pipe: read it while stopping. */
    pthread_t drainer;
    ASSERT_EQ(pthread_create(&drainer, NULL, drain, &cap.fds[0]), 0);
    log_stop(10000);
    ASSERT(dup2(cap.saved, STDERR_FILENO) >= 0);
    close(cap.saved);
    close(cap.fds[1]);
    ASSERT_EQ(pthread_join(drainer, NULL), 0);
    close(cap.fds[0]);
    console_only();
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* What is queued when log_stop is called reaches the file. */
TEST(stop_flushes_the_queue)
{
    static char buf[1 << 20];
    char path[128], err[256];
    make_tmpdir();
    snprintf(path, sizeof(path), "%s/w.log", tmpdir);
    struct log_config c = {.to = LOG_TO_FILE, .path = path};
    ASSERT_EQ(log_configure(&c, err, sizeof(err)), 0);
    uint64_t before = log_dropped();
    ASSERT_EQ(log_start(), 0);
    for (int i = 0; i < 1000; i++)
        log_notice("queued %d", i);
    ASSERT_EQ(log_dropped(), before); /* 1000 short lines fit in 1MB */
    log_stop(10000);
    log_notice("synchronous again");
    ASSERT(slurp(path, buf, sizeof(buf)) > 0);
    ASSERT_EQ(count_lines(buf), 1001);
    ASSERT(strstr(buf, "queued 999\n") && strstr(buf, "synchronous again\n"));
    console_only();
    cleanup_tmpdir();
}

/* A sink that never takes its lines (a FIFO nobody reads): log_stop gives
 * up after its timeout instead of hanging the exit, and the logger, once
 * the sink fails or moves again, finishes on its own. */
TEST(stop_is_bounded_by_its_timeout)
{
    char path[128], err[256];
    make_tmpdir();
    snprintf(path, sizeof(path), "%s/fifo", tmpdir);
    ASSERT_EQ(mkfifo(path, 0600), 0);
    signal(SIGPIPE, SIG_IGN);
    int rd = open(path, O_RDONLY | O_NONBLOCK); /* so the writer's open does not wait */
    ASSERT(rd >= 0);
    struct log_config c = {.to = LOG_TO_FILE, .path = path, .queue_size = LOG_QUEUE_MIN};
    ASSERT_EQ(log_configure(&c, err, sizeof(err)), 0);
    ASSERT_EQ(log_start(), 0);
    for (int i = 0; i < 5000; i++) /* far more than the FIFO and the queue hold */
        log_notice("stuck line %d ..........................................", i);
    log_stop(100); /* returns: the logger is stuck in write(2) */
    /* The reader goes: the stuck write fails (EPIPE), the logger finishes
     * what is queued on its own, and log_stop sees it finish. */
    close(rd);
    log_stop(10000);
    console_only();
    ASSERT_EQ(log_start(), 0); /* and a new one starts */
    log_stop(5000);
    cleanup_tmpdir();
}

int main(void)
{
    RUN(parse_levels);
    RUN(set_get);
    RUN(escape_control_characters);
    RUN(forged_line_is_escaped);
    RUN(json_escape);
    RUN(parse_sinks_and_facilities);
    RUN(file_rotates_by_size);
    RUN(failed_rotation_keeps_writing);
    RUN(reopen_after_rename_and_failed_reopen);
    RUN(configure_refuses_unopenable_file);
    RUN(json_lines);
    RUN(syslog_datagram);
    RUN(full_pipe_drops_instead_of_blocking);
    RUN(stop_flushes_the_queue);
    RUN(stop_is_bounded_by_its_timeout);
    TEST_DONE();
}
