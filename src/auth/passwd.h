/* The password file: users and salted, slow password hashes.
 *
 * The file is HOCON, so it is included the way NanoMQ includes its password
 * file (`auth { password = {include "FILE"} }`), one member per user:
 *
 *     "alice" = "$pbkdf2-sha512$100000$<salt, base64>$<hash, base64>"
 *
 * A plaintext value (NanoMQ's format) is refused with its line: ward never
 * keeps passwords in the clear, and `ward passwd` converts a user in one
 * command. Verification is PBKDF2-HMAC-SHA512 through OpenSSL; because it is
 * deliberately slow, a successful check is remembered (as an HMAC of the
 * password under a per-process random key), so a fleet reconnecting after a
 * broker restart pays the slow hash once per user, not once per connection. */
#ifndef WARD_AUTH_PASSWD_H
#define WARD_AUTH_PASSWD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/result.h"

#define PASSWD_ITERATIONS 100000u /* for new hashes; a file may carry others */
#define PASSWD_SALT_LEN   16
#define PASSWD_HASH_LEN   64

struct passwd_entry {
    char *user;
    uint32_t iterations;
    uint8_t salt[PASSWD_SALT_LEN];
    uint8_t hash[PASSWD_HASH_LEN];
    bool cached;              /* verified_mac holds a known-good password */
    uint8_t verified_mac[32]; /* HMAC-SHA256(process key, password) */
};

struct passwd_db {
    struct passwd_entry *users;
    size_t count, cap;
    /* PBKDF2 iterations of the dummy entry an unknown user is hashed
     * against: the count most entries use (PASSWD_ITERATIONS when empty),
     * so "no such user" costs what "wrong password" costs. */
    uint32_t dummy_iterations;
    pthread_mutex_t lock; /* guards the verification cache only */
};

void passwd_db_init(struct passwd_db *db);
void passwd_db_free(struct passwd_db *db);

/* Reads `path`. Returns 0, or -1 with "file:line: cause" in err (the db is
 * then left empty). A file that does not exist is an error here; `ward
 * passwd` creates it. */
WARD_WUR int passwd_load(struct passwd_db *db, const char *path, char *err, size_t errlen);
/* passwd_load for `ward passwd -c`: a plaintext password (NanoMQ's
 * password file) is hashed as it is read, and counted in *converted; a
 * value that looks like another program's hash ("$id$...") is an error,
 * as a malformed hash of ward's own scheme is. */
WARD_WUR int passwd_convert(struct passwd_db *db, const char *path, size_t *converted, char *err,
                            size_t errlen);
/* Writes the db to `path` atomically (temporary file, fsync, rename), mode
 * 0600. Returns 0, or -1 with the cause in err. */
WARD_WUR int passwd_save(const struct passwd_db *db, const char *path, char *err, size_t errlen);

/* Adds or replaces a user with a fresh salt. Returns 0, or -1 if the user
 * name is empty/contains a quote, backslash or control character, or out of
 * memory (err says which). */
WARD_WUR int passwd_set(struct passwd_db *db, const char *user, const char *password, size_t len,
                        char *err, size_t errlen);
/* Removes a user; false if there was none. */
bool passwd_delete(struct passwd_db *db, const char *user);
const struct passwd_entry *passwd_find(const struct passwd_db *db, const char *user, size_t ulen);

/* True if the user exists and the password is theirs. Thread-safe; the
 * comparison is constant-time in the hash. */
bool passwd_check(struct passwd_db *db, const char *user, size_t ulen, const uint8_t *password,
                  size_t plen);

enum passwd_verdict { PASSWD_OK, PASSWD_WRONG, PASSWD_NO_USER };
/* passwd_check telling why. An unknown user's password is hashed all the
 * same, against a dummy entry with the file's usual parameters, so the
 * answer takes as long as for a known user with a wrong password (which
 * reveals nothing about which user names exist). *hashed (optional) says
 * whether the slow hash ran: false only for a remembered good password. */
WARD_WUR enum passwd_verdict passwd_verify(struct passwd_db *db, const char *user, size_t ulen,
                                           const uint8_t *password, size_t plen, bool *hashed);

/* Parses "$pbkdf2-sha512$ITER$SALT$HASH" into e (user untouched). */
WARD_WUR int passwd_parse_hash(const char *text, struct passwd_entry *e);
/* Formats e's hash the same way into out. */
WARD_WUR int passwd_format_hash(const struct passwd_entry *e, char *out, size_t cap);

#endif
