/* libFuzzer target for the password file (src/auth/passwd.c): the stored
 * hash line parser and the file loader.
 *
 * The input is parsed as one "$pbkdf2-sha512$ITER$SALT$HASH" text. A hash
 * that parses must have an iteration count in the accepted range, format
 * again, and parse back to the same iterations, salt and hash. The same
 * bytes are then loaded as a whole password file (HOCON members, user name
 * checks, duplicates): whatever it accepts has valid users with hashes that
 * format. Nothing here runs PBKDF2 (a fuzzed iteration count would make one
 * input take minutes). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "auth/passwd.h"

static void roundtrip(const char *text)
{
    struct passwd_entry e = {0}, again = {0};
    if (passwd_parse_hash(text, &e) != 0)
        return;
    if (e.iterations < 1000 || e.iterations > 100000000u)
        abort(); /* out of the range the parser promises */
    char out[512];
    if (passwd_format_hash(&e, out, sizeof(out)) != 0 || passwd_parse_hash(out, &again) != 0)
        abort(); /* what it formats, it must read back */
    if (again.iterations != e.iterations || memcmp(again.salt, e.salt, sizeof(e.salt)) != 0 ||
        memcmp(again.hash, e.hash, sizeof(e.hash)) != 0)
        abort();
}

/* The loader reads a path: the input goes into an anonymous memory file. */
static void load(const uint8_t *data, size_t size)
{
    static int fd = -1;
    if (fd < 0 && (fd = memfd_create("passwd", MFD_CLOEXEC)) < 0)
        return;
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        return;
    char path[64], err[1024];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    struct passwd_db db;
    passwd_db_init(&db);
    if (passwd_load(&db, path, err, sizeof(err)) == 0) {
        for (size_t i = 0; i < db.count; i++) {
            char out[512];
            const struct passwd_entry *e = &db.users[i];
            if (!e->user[0] || passwd_format_hash(e, out, sizeof(out)) != 0)
                abort();
            if (passwd_find(&db, e->user, strlen(e->user)) != e)
                abort(); /* user names are unique after a load */
        }
    } else if (db.count != 0) {
        abort(); /* a failed load leaves the db empty */
    }
    passwd_db_free(&db);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    roundtrip(text);
    free(text);
    load(data, size);
    return 0;
}
