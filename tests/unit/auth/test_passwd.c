#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/passwd.h"
#include "scratch.h"
#include "test.h"

static char dir[] = "/tmp/ward-passwd-XXXXXX";
static char err[1024];

TEST(set_check_save_load)
{
    struct passwd_db db;
    passwd_db_init(&db);
    ASSERT_EQ(passwd_set(&db, "alice", "s3cret", 6, err, sizeof(err)), 0);
    ASSERT(passwd_check(&db, "alice", 5, (const uint8_t *)"s3cret", 6));
    /* The second check of the same password takes the cached path. */
    ASSERT(passwd_check(&db, "alice", 5, (const uint8_t *)"s3cret", 6));
    ASSERT(!passwd_check(&db, "alice", 5, (const uint8_t *)"s3cre", 5));
    ASSERT(!passwd_check(&db, "alice", 5, (const uint8_t *)"s3cret!", 7));
    ASSERT(!passwd_check(&db, "bob", 3, (const uint8_t *)"s3cret", 6));
    ASSERT(!passwd_check(&db, "alic", 4, (const uint8_t *)"s3cret", 6));
    ASSERT_EQ(passwd_save(&db, scratch_path("pw.conf"), err, sizeof(err)), 0);
    struct stat st;
    ASSERT_EQ(stat(scratch_path("pw.conf"), &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    passwd_db_free(&db);

    passwd_db_init(&db);
    ASSERT_EQ(passwd_load(&db, scratch_path("pw.conf"), err, sizeof(err)), 0);
    ASSERT_EQ(db.count, 1);
    ASSERT(passwd_check(&db, "alice", 5, (const uint8_t *)"s3cret", 6));
    ASSERT(!passwd_check(&db, "alice", 5, (const uint8_t *)"wrong", 5));
    passwd_db_free(&db);
}

TEST(change_and_delete)
{
    struct passwd_db db;
    passwd_db_init(&db);
    ASSERT_EQ(passwd_set(&db, "a", "one", 3, err, sizeof(err)), 0);
    ASSERT_EQ(passwd_set(&db, "b", "two", 3, err, sizeof(err)), 0);
    ASSERT(passwd_check(&db, "a", 1, (const uint8_t *)"one", 3));
    ASSERT_EQ(passwd_set(&db, "a", "uno", 3, err, sizeof(err)), 0);
    ASSERT_EQ(db.count, 2);
    /* The cache must not keep the old password alive after a change. */
    ASSERT(!passwd_check(&db, "a", 1, (const uint8_t *)"one", 3));
    ASSERT(passwd_check(&db, "a", 1, (const uint8_t *)"uno", 3));
    ASSERT(passwd_delete(&db, "a"));
    ASSERT(!passwd_delete(&db, "a"));
    ASSERT(!passwd_check(&db, "a", 1, (const uint8_t *)"uno", 3));
    ASSERT(passwd_check(&db, "b", 1, (const uint8_t *)"two", 3));
    passwd_db_free(&db);
}

TEST(bad_user_names)
{
    struct passwd_db db;
    passwd_db_init(&db);
    ASSERT_EQ(passwd_set(&db, "", "x", 1, err, sizeof(err)), -1);
    ASSERT_EQ(passwd_set(&db, "a\"b", "x", 1, err, sizeof(err)), -1);
    ASSERT_EQ(passwd_set(&db, "a\nb", "x", 1, err, sizeof(err)), -1);
    ASSERT(strstr(err, "invalid user name"));
    ASSERT_EQ(db.count, 0);
    passwd_db_free(&db);
}

TEST(hash_format_roundtrip)
{
    struct passwd_entry e = {.iterations = 1000};
    for (int i = 0; i < PASSWD_SALT_LEN; i++)
        e.salt[i] = (uint8_t)i;
    for (int i = 0; i < PASSWD_HASH_LEN; i++)
        e.hash[i] = (uint8_t)(255 - i);
    char text[256];
    ASSERT_EQ(passwd_format_hash(&e, text, sizeof(text)), 0);
    ASSERT(strncmp(text, "$pbkdf2-sha512$1000$", 20) == 0);
    struct passwd_entry back = {0};
    ASSERT_EQ(passwd_parse_hash(text, &back), 0);
    ASSERT_EQ(back.iterations, 1000);
    ASSERT_MEM_EQ(back.salt, e.salt, PASSWD_SALT_LEN);
    ASSERT_MEM_EQ(back.hash, e.hash, PASSWD_HASH_LEN);
    ASSERT_EQ(passwd_format_hash(&e, text, 20), -1);
}

TEST(malformed_hashes)
{
    static const char *const bad[] = {
        "public",                                          /* NanoMQ's plaintext */
        "$pbkdf2-sha512$",                                 /* nothing after the scheme */
        "$pbkdf2-sha512$abc$AAAA$AAAA",                    /* iterations not a number */
        "$pbkdf2-sha512$10$AAAAAAAAAAAAAAAAAAAAAA==$AAAA", /* too few iterations */
        "$pbkdf2-sha512$100000$AAAA$AAAA",                 /* salt and hash too short */
        "$pbkdf2-sha512$100000$!!!!!!!!!!!!!!!!!!!!!!==$AAAA",
        "$pbkdf2-sha256$100000$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct passwd_entry e;
        if (passwd_parse_hash(bad[i], &e) != -1)
            TEST_FAIL_("accepted \"%s\"", bad[i]);
    }
}

TEST(load_errors_name_the_line)
{
    struct passwd_db db;
    passwd_db_init(&db);
    scratch_write("plain.conf", "# NanoMQ's format\n\"admin\": \"public\"\n");
    ASSERT_EQ(passwd_load(&db, scratch_path("plain.conf"), err, sizeof(err)), -1);
    ASSERT(strstr(err, "plain.conf:2: admin: plaintext"));
    ASSERT(strstr(err, "run `ward passwd -c "));
    ASSERT_EQ(db.count, 0);

    scratch_write("num.conf", "a = 5\n");
    ASSERT_EQ(passwd_load(&db, scratch_path("num.conf"), err, sizeof(err)), -1);
    ASSERT(strstr(err, "num.conf:1: a: expected a password hash string"));

    scratch_write("broken.conf", "\"a\" = \"$pbkdf2-sha512$100000$zz$zz\"\n");
    ASSERT_EQ(passwd_load(&db, scratch_path("broken.conf"), err, sizeof(err)), -1);
    ASSERT(strstr(err, "broken.conf:1: a: malformed password hash"));

    scratch_write("syntax.conf", "\"a\" = \n{");
    ASSERT_EQ(passwd_load(&db, scratch_path("syntax.conf"), err, sizeof(err)), -1);
    ASSERT(strstr(err, "syntax.conf:"));

    ASSERT_EQ(passwd_load(&db, scratch_path("missing.conf"), err, sizeof(err)), -1);
    ASSERT(strstr(err, "missing.conf"));
    passwd_db_free(&db);
}

TEST(convert_hashes_plaintext)
{
    struct passwd_db db;
    size_t n = 99;
    passwd_db_init(&db);
    ASSERT_EQ(passwd_set(&db, "kept", "k", 1, err, sizeof(err)), 0);
    ASSERT_EQ(passwd_save(&db, scratch_path("mixed.conf"), err, sizeof(err)), 0);
    passwd_db_free(&db);
    FILE *f = fopen(scratch_path("mixed.conf"), "a");
    ASSERT(f);
    fputs("\"admin\": \"public\"\n", f);
    fclose(f);
    passwd_db_init(&db);
    ASSERT_EQ(passwd_convert(&db, scratch_path("mixed.conf"), &n, err, sizeof(err)), 0);
    ASSERT_EQ(n, 1);
    ASSERT_EQ(db.count, 2);
    ASSERT(passwd_check(&db, "admin", 5, (const uint8_t *)"public", 6));
    ASSERT(passwd_check(&db, "kept", 4, (const uint8_t *)"k", 1));
    passwd_db_free(&db);
    /* Still refused: another scheme's hash, a broken hash of ours, a number. */
    const char *const bad[][2] = {
        {"\"a\" = \"$2y$11$abcdefghijklmnopqrstuv\"\n", "a hash of another scheme"},
        {"\"a\" = \"$pbkdf2-sha512$100000$zz$zz\"\n", "malformed password hash"},
        {"a = 5\n", "expected a password hash string"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        scratch_write("bad.conf", bad[i][0]);
        passwd_db_init(&db);
        ASSERT_EQ(passwd_convert(&db, scratch_path("bad.conf"), &n, err, sizeof(err)), -1);
        if (!strstr(err, bad[i][1]))
            TEST_FAIL_("%s: %s", bad[i][0], err);
        ASSERT_EQ(db.count, 0);
        passwd_db_free(&db);
    }
}

TEST(save_to_bad_directory)
{
    struct passwd_db db;
    passwd_db_init(&db);
    ASSERT_EQ(passwd_save(&db, "/nonexistent-dir/pw.conf", err, sizeof(err)), -1);
    ASSERT(strstr(err, "/nonexistent-dir/pw.conf"));
    passwd_db_free(&db);
}

int main(void)
{
    scratch_open(dir);
    RUN(set_check_save_load);
    RUN(change_and_delete);
    RUN(bad_user_names);
    RUN(hash_format_roundtrip);
    RUN(malformed_hashes);
    RUN(load_errors_name_the_line);
    RUN(convert_hashes_plaintext);
    RUN(save_to_bad_directory);
    SCRATCH_DONE();
}
