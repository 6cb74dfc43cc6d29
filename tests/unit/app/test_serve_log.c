#include "app/serve_log.h"
#include "capture.h"
#include "core/log.h"
#include "test.h"

#include <stdbool.h>
#include <sys/stat.h>

static char dir[64];

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    static char buf[8192];
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return buf;
}

static void load(struct ward_config *cfg, const char *text)
{
    struct cfg_errors errs;
    int r = config_load_string("test.conf", text, cfg, &errs);
    for (size_t i = 0; i < errs.count; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    cfg_errors_free(&errs);
    ASSERT_EQ(r, 0);
}

/* log.file inside log.dir, written through the logger thread, in JSON. */
TEST(file_in_dir_json)
{
    struct ward_config cfg;
    char text[256], path[128];
    snprintf(text, sizeof(text), "log { to = file, dir = \"%s\", file = a.log, format = json }",
             dir);
    load(&cfg, text);
    struct serve_log_flags flags = {0};
    ASSERT_EQ(serve_log_start(&cfg, &flags), 0);
    snprintf(path, sizeof(path), "%s/a.log", dir);
    ASSERT_STR_EQ(serve_log_file(), path); /* for the privilege check */
    ASSERT_EQ(serve_log_begin(), 0);
    log_notice("hello");
    serve_log_stop();
    snprintf(path, sizeof(path), "%s/a.log", dir);
    ASSERT(strstr(slurp(path), "\"level\":\"notice\",\"msg\":\"hello\"}\n") != NULL);
    config_free(&cfg);
}

/* --log-file adds the file sink (no configuration file: its defaults);
 * --log-format wins over log.format. */
TEST(flags_without_a_file)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/flag.log", dir);
    struct serve_log_flags flags = {.file = path, .format = "json"};
    struct capture c;
    capture_begin(&c, stderr);
    ASSERT_EQ(serve_log_start(NULL, &flags), 0);
    ASSERT_EQ(serve_log_begin(), 0);
    log_notice("to both");
    serve_log_stop();
    char *err = capture_end(&c);
    ASSERT(strstr(err, "\"msg\":\"to both\"") != NULL); /* console stays on */
    free(err);
    ASSERT(strstr(slurp(path), "\"msg\":\"to both\"") != NULL);
}

/* An absolute log.file ignores log.dir. */
TEST(absolute_file_ignores_dir)
{
    struct ward_config cfg;
    char text[256], path[128];
    snprintf(path, sizeof(path), "%s/abs.log", dir);
    snprintf(text, sizeof(text), "log { to = file, dir = /nonexistent, file = \"%s\" }", path);
    load(&cfg, text);
    struct serve_log_flags flags = {0};
    ASSERT_EQ(serve_log_start(&cfg, &flags), 0);
    serve_log_stop();
    ASSERT(exists(path));
    config_free(&cfg);
}

/* A file that cannot be opened: ward serve refuses to start, naming it. */
TEST(unopenable_file_refused)
{
    struct ward_config cfg;
    load(&cfg, "log { to = [console, file], dir = /nonexistent-ward-dir }");
    struct serve_log_flags flags = {0};
    struct capture c;
    capture_begin(&c, stderr);
    ASSERT_EQ(serve_log_start(&cfg, &flags), -1);
    char *err = capture_end(&c);
    ASSERT(strstr(err, "log file /nonexistent-ward-dir/ward.log: No such file or directory") !=
           NULL);
    free(err);
    config_free(&cfg);
}

int main(void)
{
    char cmd[96];
    snprintf(dir, sizeof(dir), "/tmp/ward-serve-log-XXXXXX");
    ASSERT(mkdtemp(dir) != NULL);
    RUN(file_in_dir_json);
    RUN(flags_without_a_file);
    RUN(absolute_file_ignores_dir);
    RUN(unopenable_file_refused);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ASSERT_EQ(system(cmd), 0);
    TEST_DONE();
}
