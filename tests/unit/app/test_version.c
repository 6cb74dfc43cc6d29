/* `ward --version` and the start line (app/version.c): ward's version
 * first, then the libraries' own run-time answers. */
#include <openssl/crypto.h>
#include <sqlite3.h>

#include "app/version.h"
#include "test.h"

TEST(report)
{
    char buf[1024], want[1024];
    size_t n = version_report(buf, sizeof(buf));
    ASSERT_EQ(n, strlen(buf));
    snprintf(want, sizeof(want), "ward %s (git %s)\n", WARD_VERSION, version_git_rev());
    ASSERT(strncmp(buf, want, strlen(want)) == 0); /* "ward X.Y.Z" stays first */
    snprintf(want, sizeof(want), "\n%s\n", OpenSSL_version(OPENSSL_VERSION));
    ASSERT(strstr(buf, want) != NULL);
    snprintf(want, sizeof(want), "\nSQLite %s\n", sqlite3_libversion());
    ASSERT(strstr(buf, want) != NULL);
    ASSERT(strstr(buf, "\nlibsystemd ") != NULL);
    ASSERT(buf[n - 1] == '\n');
}

TEST(git_rev)
{
    const char *rev = version_git_rev();
    ASSERT(rev != NULL && rev[0] != '\0');
    ASSERT(strchr(rev, '\n') == NULL && strchr(rev, ' ') == NULL);
}

TEST(line)
{
    char buf[512];
    size_t n = version_line(buf, sizeof(buf));
    ASSERT_EQ(n, strlen(buf));
    ASSERT(strncmp(buf, WARD_VERSION " (git ", strlen(WARD_VERSION " (git ")) == 0);
    ASSERT(strchr(buf, '\n') == NULL);
    ASSERT(strstr(buf, OpenSSL_version(OPENSSL_VERSION)) != NULL);
    ASSERT(strstr(buf, sqlite3_libversion()) != NULL);
}

TEST(truncated)
{
    char buf[8];
    size_t n = version_report(buf, sizeof(buf));
    ASSERT(n > sizeof(buf)); /* the full length, as snprintf */
    ASSERT_EQ(strlen(buf), sizeof(buf) - 1);
    ASSERT(version_line(buf, sizeof(buf)) > sizeof(buf));
    ASSERT_EQ(strlen(buf), sizeof(buf) - 1);
}

int main(void)
{
    RUN(report);
    RUN(git_rev);
    RUN(line);
    RUN(truncated);
    TEST_DONE();
}
