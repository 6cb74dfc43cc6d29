/* API keys for the admin HTTP server: a file of named, scoped, hashed keys
 * (`ward apikey add FILE NAME --scope read|admin`).
 *
 * A key is "wk_" and 43 base64url characters: 256 bits from the system's
 * random generator. The file keeps, per key, a random 16-byte salt and
 * HMAC-SHA256(salt, key); the key itself is printed once and never stored.
 * With 256 random bits a slow KDF buys nothing (no guess can be searched),
 * and a fast hash keeps every request cheap, so the admin listener is no
 * lever for making the broker burn CPU. Comparisons are constant-time.
 *
 * The file: one key a line, "NAME:SCOPE:$hs256$SALT$MAC" (standard base64),
 * '#' comments and blank lines allowed; NAME is 1 to 64 of [A-Za-z0-9_.-].
 * The first line is "format:ward-apikeys-1", so the file also parses as
 * HOCON with at least one member (`http.api_keys = {include "FILE"}` needs
 * one to know the file's name). */
#ifndef WARD_ADMIN_APIKEY_H
#define WARD_ADMIN_APIKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admin/admin.h"
#include "core/result.h"

#define APIKEY_NAME_MAX 64
#define APIKEY_LEN      46 /* "wk_" + 43 */
#define APIKEY_SALT_LEN 16
#define APIKEY_MAC_LEN  32
#define APIKEY_MAX_KEYS 10000 /* a longer file is refused: each request may try every key */

struct apikey {
    char name[APIKEY_NAME_MAX + 1];
    enum admin_scope scope; /* ADMIN_SCOPE_READ or ADMIN_SCOPE_ADMIN */
    uint8_t salt[APIKEY_SALT_LEN];
    uint8_t mac[APIKEY_MAC_LEN];
};

struct apikey_db {
    struct apikey *keys;
    size_t n, cap;
};

void apikey_db_init(struct apikey_db *db);
void apikey_db_free(struct apikey_db *db);
/* Reads a key file into an empty db. A missing file is an error unless
 * missing_ok. 0, or -1 with "FILE:LINE: cause" in err (db left empty). */
WARD_WUR int apikey_load(struct apikey_db *db, const char *path, bool missing_ok, char *err,
                         size_t errlen);
/* Writes the file atomically (a temporary file renamed over it), mode 0600.
 * 0, or -1 with the cause in err. */
WARD_WUR int apikey_save(const struct apikey_db *db, const char *path, char *err, size_t errlen);
/* A new random key into out (at least APIKEY_LEN + 1 bytes). 0 or -1. */
WARD_WUR int apikey_generate(char *out, size_t cap);
/* Adds (or replaces) NAME with the hash of key. 0, or -1 with the cause
 * (bad name, bad scope, too many keys, out of memory). */
WARD_WUR int apikey_add(struct apikey_db *db, const char *name, enum admin_scope scope,
                        const char *key, char *err, size_t errlen);
/* Removes NAME; false if it was not there. */
bool apikey_remove(struct apikey_db *db, const char *name);
const struct apikey *apikey_find(const struct apikey_db *db, const char *name);
/* The entry the key belongs to, NULL if none. With name (HTTP Basic) only
 * that entry is tried; without (Bearer) every entry is. */
const struct apikey *apikey_check(const struct apikey_db *db, const char *name, const char *key,
                                  size_t keylen);
/* Whether s is a valid key name. */
bool apikey_name_ok(const char *s);
/* "read" / "admin" and back (-1 if neither). */
const char *apikey_scope_name(enum admin_scope s);
WARD_WUR int apikey_scope_parse(const char *s);

#endif
