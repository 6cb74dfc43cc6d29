/* What `ward --version` and `ward serve`'s start line report: ward's
 * version, the git revision it was built from, and the versions of the
 * libraries it runs with. */
#ifndef WARD_APP_VERSION_H
#define WARD_APP_VERSION_H

#include <stddef.h>

/* The git revision (`git describe --always --dirty` when CMake was
 * configured, the WARD_GIT_REV cache variable, or "unknown"). */
const char *version_git_rev(void);

/* `ward --version`: one "NAME VERSION" per line, ward's own first, so the
 * first two words stay "ward X.Y.Z" for scripts:
 *   ward 0.1.0 (git 03b1023)
 *   OpenSSL 3.0.19 27 Jan 2026
 *   SQLite 3.40.1
 *   libsystemd 252
 * OpenSSL and SQLite are asked at run time (the libraries loaded, not the
 * headers built against); libsystemd has no such call, so its version is
 * the one built against. Returns what snprintf would (the full length). */
size_t version_report(char *buf, size_t cap);

/* The same on one line, for the start log:
 * "0.1.0 (git 03b1023; OpenSSL 3.0.19 27 Jan 2026, SQLite 3.40.1,
 * libsystemd 252)". */
size_t version_line(char *buf, size_t cap);

#endif
