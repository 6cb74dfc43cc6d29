/* src/admin/apikey.c: key files, generation and constant-time checks. */
#include <sys/stat.h>

#include "admin/apikey.h"
#include "scratch.h"
#include "test.h"

TEST(generated_keys_are_long_random_and_url_safe)
{
    char a[APIKEY_LEN + 1], b[APIKEY_LEN + 1], small[10];
    ASSERT_EQ(apikey_generate(a, sizeof(a)), 0);
    ASSERT_EQ(apikey_generate(b, sizeof(b)), 0);
    ASSERT_EQ(strlen(a), APIKEY_LEN);
    ASSERT(strncmp(a, "wk_", 3) == 0);
    ASSERT(strcmp(a, b) != 0);
    ASSERT_EQ(strspn(a + 3, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"),
              APIKEY_LEN - 3);
    ASSERT_EQ(apikey_generate(small, sizeof(small)), -1);
}

TEST(check_by_key_and_by_name)
{
    struct apikey_db db;
    char err[256], k1[APIKEY_LEN + 1], k2[APIKEY_LEN + 1];
    apikey_db_init(&db);
    ASSERT_EQ(apikey_generate(k1, sizeof(k1)), 0);
    ASSERT_EQ(apikey_generate(k2, sizeof(k2)), 0);
    ASSERT_EQ(apikey_add(&db, "ops", ADMIN_SCOPE_ADMIN, k1, err, sizeof(err)), 0);
    ASSERT_EQ(apikey_add(&db, "grafana", ADMIN_SCOPE_READ, k2, err, sizeof(err)), 0);
    const struct apikey *k = apikey_check(&db, NULL, k2, strlen(k2));
    ASSERT(k && strcmp(k->name, "grafana") == 0 && k->scope == ADMIN_SCOPE_READ);
    k = apikey_check(&db, "ops", k1, strlen(k1));
    ASSERT(k && k->scope == ADMIN_SCOPE_ADMIN);
    /* Negative: another entry's key under a name, a prefix, a wrong key. */
    ASSERT(!apikey_check(&db, "ops", k2, strlen(k2)));
    ASSERT(!apikey_check(&db, NULL, k1, strlen(k1) - 1));
    ASSERT(!apikey_check(&db, NULL, "wk_nope", 7));
    ASSERT(!apikey_check(&db, "nobody", k1, strlen(k1)));
    /* Replacing a key: the old one stops working. */
    ASSERT_EQ(apikey_add(&db, "ops", ADMIN_SCOPE_READ, k2, err, sizeof(err)), 0);
    ASSERT_EQ(db.n, 2);
    ASSERT(!apikey_check(&db, "ops", k1, strlen(k1)));
    ASSERT(apikey_remove(&db, "ops"));
    ASSERT(!apikey_remove(&db, "ops"));
    ASSERT(!apikey_check(&db, "ops", k2, strlen(k2)));
    ASSERT_EQ(db.n, 1);
    apikey_db_free(&db);
}

TEST(bad_names_and_scopes_refused)
{
    struct apikey_db db;
    char err[256];
    apikey_db_init(&db);
    ASSERT_EQ(apikey_add(&db, "", ADMIN_SCOPE_READ, "k", err, sizeof(err)), -1);
    ASSERT_EQ(apikey_add(&db, "a:b", ADMIN_SCOPE_READ, "k", err, sizeof(err)), -1);
    ASSERT_EQ(apikey_add(&db, "a b", ADMIN_SCOPE_READ, "k", err, sizeof(err)), -1);
    ASSERT_EQ(apikey_add(&db, "ok", ADMIN_SCOPE_OPEN, "k", err, sizeof(err)), -1);
    char longname[APIKEY_NAME_MAX + 2];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    ASSERT_EQ(apikey_add(&db, longname, ADMIN_SCOPE_READ, "k", err, sizeof(err)), -1);
    longname[APIKEY_NAME_MAX] = '\0';
    ASSERT_EQ(apikey_add(&db, longname, ADMIN_SCOPE_READ, "k", err, sizeof(err)), 0);
    ASSERT_EQ(apikey_scope_parse("read"), ADMIN_SCOPE_READ);
    ASSERT_EQ(apikey_scope_parse("admin"), ADMIN_SCOPE_ADMIN);
    ASSERT_EQ(apikey_scope_parse("root"), -1);
    ASSERT_STR_EQ(apikey_scope_name(ADMIN_SCOPE_ADMIN), "admin");
    apikey_db_free(&db);
}

TEST(save_and_load_round_trip_0600)
{
    struct apikey_db db, back;
    char err[256], key[APIKEY_LEN + 1];
    apikey_db_init(&db);
    apikey_db_init(&back);
    ASSERT_EQ(apikey_generate(key, sizeof(key)), 0);
    ASSERT_EQ(apikey_add(&db, "ops.team-1", ADMIN_SCOPE_ADMIN, key, err, sizeof(err)), 0);
    const char *path = scratch_path("keys");
    ASSERT_EQ(apikey_save(&db, path, err, sizeof(err)), 0);
    struct stat st;
    ASSERT_EQ(stat(path, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    ASSERT_EQ(apikey_load(&back, path, false, err, sizeof(err)), 0);
    ASSERT_EQ(back.n, 1);
    ASSERT(apikey_check(&back, NULL, key, strlen(key)));
    /* The key itself is nowhere in the file. */
    FILE *f = fopen(path, "r");
    char text[2048] = "";
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    ASSERT(!strstr(text, key));
    ASSERT(strncmp(text, "format:ward-apikeys-1\n", 22) == 0);
    apikey_db_free(&db);
    apikey_db_free(&back);
    /* An empty database saves and loads as empty. */
    ASSERT_EQ(apikey_save(&db, path, err, sizeof(err)), 0);
    ASSERT_EQ(apikey_load(&back, path, false, err, sizeof(err)), 0);
    ASSERT_EQ(back.n, 0);
}

static void load_fails(const char *text, const char *cause)
{
    struct apikey_db db;
    char err[256] = "";
    apikey_db_init(&db);
    scratch_write("bad", text);
    ASSERT_EQ(apikey_load(&db, scratch_path("bad"), false, err, sizeof(err)), -1);
    if (!strstr(err, cause))
        TEST_FAIL_("'%s' does not say '%s'", err, cause);
    ASSERT_EQ(db.n, 0);
}

TEST(malformed_files_refused_with_line)
{
    const char *salt = "AAAAAAAAAAAAAAAAAAAAAA==";
    const char *mac = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    char ok[256], dup[600];
    snprintf(ok, sizeof(ok), "a:read:$hs256$%s$%s\n", salt, mac);
    snprintf(dup, sizeof(dup), "%s# c\n%s", ok, ok);
    load_fails(dup, ":3: 'a' appears twice");
    load_fails("a:read\n", ":1: expected NAME:SCOPE:HASH");
    load_fails("a:root:$hs256$x$y\n", "the scope is read or admin");
    load_fails("a:read:$pbkdf2$x$y\n", "unknown hash");
    load_fails("a:read:$hs256$AAAA$AAAA\n", "malformed hash");
    load_fails("a b:read:$hs256$x$y\n", "bad key name");
    char longline[700];
    memset(longline, 'a', sizeof(longline) - 2);
    longline[sizeof(longline) - 2] = '\n';
    longline[sizeof(longline) - 1] = '\0';
    load_fails(longline, "line too long");
    struct apikey_db db;
    char err[256];
    apikey_db_init(&db);
    ASSERT_EQ(apikey_load(&db, scratch_path("absent"), false, err, sizeof(err)), -1);
    ASSERT_EQ(apikey_load(&db, scratch_path("absent"), true, err, sizeof(err)), 0);
    scratch_write("good", ok);
    ASSERT_EQ(apikey_load(&db, scratch_path("good"), false, err, sizeof(err)), 0);
    ASSERT_EQ(db.n, 1);
    apikey_db_free(&db);
}

int main(void)
{
    char dir[] = "/tmp/ward-apikey-XXXXXX";
    scratch_open(dir);
    RUN(generated_keys_are_long_random_and_url_safe);
    RUN(check_by_key_and_by_name);
    RUN(bad_names_and_scopes_refused);
    RUN(save_and_load_round_trip_0600);
    RUN(malformed_files_refused_with_line);
    scratch_close();
    TEST_DONE();
}
