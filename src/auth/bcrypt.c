/* bcrypt through libxcrypt, for NATS users and tokens: see auth/nats_users.h.
 *
 * libxcrypt's crypt_r does the work; this file only checks shapes, maps the
 * hash variants, draws the salt and compares in constant time. */
#include <crypt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>

#include "auth/nats_users.h"

/* "$2b$" "11" "$" + 22 salt + 31 hash characters. */
#define PREFIX_LEN 7u
#define SALT_BYTES 16u

/* $2a$ and $2b$ differ only for passwords of 256 bytes or more (the length
 * counter of some $2a$ implementations wrapped there); refusing those lets
 * every variant be verified as $2b$, whatever variants the local libxcrypt
 * was built with. */
#define MAX_MAPPED_PASSWORD 255u

static bool bcrypt_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '/';
}

/* see nats_users.h */
bool auth_is_bcrypt(const char *s)
{
    if (!s || strlen(s) != AUTH_BCRYPT_HASH_LEN)
        return false;
    if (s[0] != '$' || s[1] != '2' || s[3] != '$' || s[6] != '$')
        return false;
    if (s[2] != 'a' && s[2] != 'b' && s[2] != 'y')
        return false;
    if (s[4] < '0' || s[4] > '3' || s[5] < '0' || s[5] > '9')
        return false;
    unsigned cost = (unsigned)(s[4] - '0') * 10u + (unsigned)(s[5] - '0');
    if (cost < 4 || cost > 31)
        return false;
    for (size_t i = PREFIX_LEN; i < AUTH_BCRYPT_HASH_LEN; i++)
        if (!bcrypt_char(s[i]))
            return false;
    return true;
}

/* see nats_users.h */
unsigned auth_bcrypt_cost(const char *hash)
{
    if (!auth_is_bcrypt(hash))
        return 0;
    return (unsigned)(hash[4] - '0') * 10u + (unsigned)(hash[5] - '0');
}

/* see nats_users.h */
bool auth_bcrypt_verify(const char *hash, const char *password)
{
    if (!password || !auth_is_bcrypt(hash))
        return false;
    if (hash[2] != 'b' && strlen(password) > MAX_MAPPED_PASSWORD)
        return false;
    char setting[AUTH_BCRYPT_HASH_LEN + 1];
    memcpy(setting, hash, sizeof setting);
    setting[2] = 'b';
    /* struct crypt_data is about 32 KiB: too big for a worker's stack. */
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (!cd)
        return false;
    const char *out = crypt_r(password, setting, cd);
    bool ok = out && out[0] == '$' && strlen(out) == AUTH_BCRYPT_HASH_LEN &&
              CRYPTO_memcmp(out, setting, AUTH_BCRYPT_HASH_LEN) == 0;
    OPENSSL_cleanse(cd, sizeof *cd);
    free(cd);
    return ok;
}

/* see nats_users.h */
int auth_bcrypt_hash(const char *password, unsigned cost, char *out, size_t cap)
{
    if (cost == 0)
        cost = AUTH_BCRYPT_DEFAULT_COST;
    if (!password || cost < 4 || cost > 31 || cap < AUTH_BCRYPT_HASH_LEN + 1)
        return -1;
    uint8_t salt[SALT_BYTES];
    if (getrandom(salt, sizeof salt, 0) != (ssize_t)sizeof salt)
        return -1;
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    const char *s =
        crypt_gensalt_rn("$2b$", cost, (const char *)salt, sizeof salt, setting, sizeof setting);
    OPENSSL_cleanse(salt, sizeof salt);
    if (!s)
        return -1;
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (!cd)
        return -1;
    int rc = -1;
    const char *h = crypt_r(password, setting, cd);
    if (h && auth_is_bcrypt(h)) {
        memcpy(out, h, AUTH_BCRYPT_HASH_LEN + 1);
        rc = 0;
    }
    OPENSSL_cleanse(cd, sizeof *cd);
    free(cd);
    return rc;
}
