/* ward apikey: add prints the key once, the file keeps only its hash;
 * list and remove; every misuse refused. */
#include <sys/stat.h>

#include "admin/apikey.h"
#include "app/cli_fixture.h"
#include "app/commands.h"
#include "test.h"

#define RUN_APIKEY(...) cli_run(cmd_apikey, CLI_ARGS("apikey", __VA_ARGS__))

static char dir[] = "/tmp/ward-unit-apikey-XXXXXX";
static char file[300];

TEST(add_list_remove)
{
    ASSERT_EQ(RUN_APIKEY("add", file, "ops", "--scope", "admin"), 0);
    char key[128];
    snprintf(key, sizeof(key), "%s", out_text);
    key[strcspn(key, "\n")] = '\0';
    ASSERT_EQ(strlen(key), APIKEY_LEN);
    ASSERT(strstr(err_text, "shown only this once"));
    struct stat st;
    ASSERT_EQ(stat(file, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    /* The file holds the hash, not the key, and the key checks against it. */
    struct apikey_db db;
    char err[256];
    apikey_db_init(&db);
    ASSERT_EQ(apikey_load(&db, file, false, err, sizeof(err)), 0);
    const struct apikey *k = apikey_check(&db, "ops", key, strlen(key));
    ASSERT(k && k->scope == ADMIN_SCOPE_ADMIN);
    apikey_db_free(&db);
    ASSERT_EQ(RUN_APIKEY("add", file, "grafana", "-s", "read"), 0);
    ASSERT_EQ(RUN_APIKEY("list", file), 0);
    ASSERT_STR_EQ(out_text, "ops\tadmin\ngrafana\tread\n");
    ASSERT_EQ(RUN_APIKEY("remove", file, "ops"), 0);
    ASSERT_EQ(RUN_APIKEY("list", file), 0);
    ASSERT_STR_EQ(out_text, "grafana\tread\n");
}

TEST(misuse_refused)
{
    ASSERT_EQ(RUN_APIKEY("add", file, "x"), 2); /* no scope */
    ASSERT(strstr(err_text, "--scope"));
    ASSERT_EQ(RUN_APIKEY("add", file, "x", "--scope", "root"), 2);
    ASSERT_EQ(RUN_APIKEY("list", file, "--scope", "read"), 2);
    ASSERT_EQ(RUN_APIKEY("frobnicate", file), 2);
    ASSERT_EQ(RUN_APIKEY("add", file, "bad name", "--scope", "read"), 1);
    ASSERT(strstr(err_text, "a key name is"));
    ASSERT_EQ(RUN_APIKEY("remove", file, "nobody"), 1);
    ASSERT(strstr(err_text, "no key 'nobody'"));
    ASSERT_EQ(RUN_APIKEY("list", "/nonexistent/keys"), 1);
    ASSERT_EQ(RUN_APIKEY("add", "/nonexistent/dir/keys", "x", "--scope", "read"), 1);
    ASSERT_STR_EQ(out_text, ""); /* no key printed for a key that was not stored */
}

int main(void)
{
    ASSERT(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/api.keys", dir);
    RUN(add_list_remove);
    RUN(misuse_refused);
    unlink(file);
    rmdir(dir);
    TEST_DONE();
}
