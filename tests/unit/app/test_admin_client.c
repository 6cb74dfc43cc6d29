/* app/admin_client.c: where ward status finds the broker and its key, and
 * one GET against a real admin server. */
#include "admin/admin.h"
#include "app/admin_client.h"
#include <unistd.h>

#include "test.h"

static char dir[] = "/tmp/ward-unit-aclient-XXXXXX";

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ASSERT(f);
    fputs(text, f);
    fclose(f);
}

TEST(resolve_order)
{
    char url[256], key[256], err[256], kf[300], conf[300], path[300];
    /* Nothing given: the default URL and no key. */
    struct admin_target t = {0};
    ASSERT_EQ(admin_client_resolve(&t, url, sizeof(url), key, sizeof(key), err, sizeof(err)), 0);
    ASSERT_STR_EQ(url, "http://127.0.0.1:8081");
    ASSERT_STR_EQ(key, "");
    /* The data directory's admin.key: the key and the URL. */
    snprintf(kf, sizeof(kf), "%s/admin.key", dir);
    write_file(kf, "wk_local\nhttp://127.0.0.1:9999\n");
    t = (struct admin_target){.data_dir = dir};
    ASSERT_EQ(admin_client_resolve(&t, url, sizeof(url), key, sizeof(key), err, sizeof(err)), 0);
    ASSERT_STR_EQ(url, "http://127.0.0.1:9999");
    ASSERT_STR_EQ(key, "wk_local");
    /* --url and --key win. */
    t = (struct admin_target){.data_dir = dir, .url = "https://h:1", .key = "wk_flag"};
    ASSERT_EQ(admin_client_resolve(&t, url, sizeof(url), key, sizeof(key), err, sizeof(err)), 0);
    ASSERT_STR_EQ(url, "https://h:1");
    ASSERT_STR_EQ(key, "wk_flag");
    /* A configuration: http.bind (0.0.0.0 asked on loopback, https with a
     * certificate) and persistence.dir for the key file. */
    snprintf(conf, sizeof(conf), "%s/w.conf", dir);
    snprintf(path, sizeof(path),
             "http { bind = \"0.0.0.0:8443\"\n certfile = c\n keyfile = k }\n"
             "persistence.dir = \"%s\"\n",
             dir);
    write_file(conf, path);
    write_file(kf, "wk_local\n");
    t = (struct admin_target){.config = conf};
    ASSERT_EQ(admin_client_resolve(&t, url, sizeof(url), key, sizeof(key), err, sizeof(err)), 0);
    ASSERT_STR_EQ(url, "https://127.0.0.1:8443");
    ASSERT_STR_EQ(key, "wk_local");
    /* Negative: a missing or empty key file, a bad configuration. */
    t = (struct admin_target){.key_file = "/nonexistent/k"};
    ASSERT_EQ(admin_client_resolve(&t, url, sizeof(url), key, sizeof(key), err, sizeof(err)), -1);
    write_file(kf, "\n");
    t = (struct admin_target){.key_file = kf};
    ASSERT_EQ(admin_client_resolve(&t, url, sizeof(url), key, sizeof(key), err, sizeof(err)), -1);
    ASSERT(strstr(err, "no key in it"));
    write_file(conf, "http { bnid = 1 }\n");
    t = (struct admin_target){.config = conf};
    ASSERT_EQ(admin_client_resolve(&t, url, sizeof(url), key, sizeof(key), err, sizeof(err)), -1);
    unlink(kf);
    unlink(conf);
}

TEST(get_against_a_server)
{
    char err[256];
    struct admin_config cfg = {.bind = "127.0.0.1:0", .open_health = true};
    struct admin *a = admin_new(&cfg, err, sizeof(err));
    ASSERT(a);
    ASSERT_EQ(admin_start(a, err, sizeof(err)), 0);
    char url[64];
    snprintf(url, sizeof(url), "%s", admin_url(a)); /* outlives the server */
    struct admin_client ac = {.url = url, .timeout_ms = 3000};
    struct buf body;
    buf_init(&body, 0);
    int status = 0;
    ASSERT_EQ(admin_client_get(&ac, "/healthz", &status, &body, err, sizeof(err)), 0);
    ASSERT_EQ(status, 200);
    ASSERT_EQ(buf_len(&body), 16);
    ASSERT_EQ(admin_client_get(&ac, "/nothing", &status, &body, err, sizeof(err)), 0);
    ASSERT_EQ(status, 404);
    admin_free(a);
    ASSERT_EQ(admin_client_get(&ac, "/healthz", &status, &body, err, sizeof(err)), -1);
    struct admin_client bad = {.url = "http://no-such-host.invalid:1", .timeout_ms = 1000};
    ASSERT_EQ(admin_client_get(&bad, "/healthz", &status, &body, err, sizeof(err)), -1);
    buf_free(&body);
}

int main(void)
{
    ASSERT(mkdtemp(dir));
    RUN(resolve_order);
    RUN(get_against_a_server);
    rmdir(dir);
    TEST_DONE();
}
