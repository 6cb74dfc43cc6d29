/* see version.h */
#include "version.h"

#include <stdio.h>

#include <openssl/crypto.h>
#include <sqlite3.h>

/* Both come from CMake, for this file only, so a new revision recompiles
 * nothing else. */
#ifndef WARD_GIT_REV
#define WARD_GIT_REV "unknown"
#endif
#ifndef WARD_LIBSYSTEMD_VERSION
#define WARD_LIBSYSTEMD_VERSION "unknown"
#endif

const char *version_git_rev(void)
{
    return WARD_GIT_REV[0] ? WARD_GIT_REV : "unknown";
}

size_t version_report(char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "ward %s (git %s)\n%s\nSQLite %s\nlibsystemd %s\n", WARD_VERSION,
                     version_git_rev(), OpenSSL_version(OPENSSL_VERSION), sqlite3_libversion(),
                     WARD_LIBSYSTEMD_VERSION);
    return n < 0 ? 0 : (size_t)n;
}

size_t version_line(char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s (git %s; %s, SQLite %s, libsystemd %s)", WARD_VERSION,
                     version_git_rev(), OpenSSL_version(OPENSSL_VERSION), sqlite3_libversion(),
                     WARD_LIBSYSTEMD_VERSION);
    return n < 0 ? 0 : (size_t)n;
}
