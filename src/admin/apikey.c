/* API key files: see apikey.h. */
#include "admin/apikey.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "core/base64.h"
#include "core/vec.h"

#define PREFIX      "$hs256$"
#define FORMAT_LINE "format:ward-apikeys-1"

void apikey_db_init(struct apikey_db *db)
{
    memset(db, 0, sizeof(*db));
}

void apikey_db_free(struct apikey_db *db)
{
    if (db->keys)
        OPENSSL_cleanse(db->keys, db->cap * sizeof(*db->keys));
    free(db->keys);
    apikey_db_init(db);
}

bool apikey_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > APIKEY_NAME_MAX)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

const char *apikey_scope_name(enum admin_scope s)
{
    switch (s) {
    case ADMIN_SCOPE_ADMIN:
        return "admin";
    case ADMIN_SCOPE_READ:
        return "read";
    case ADMIN_SCOPE_OPEN:
    default:
        return "open";
    }
}

int apikey_scope_parse(const char *s)
{
    if (strcmp(s, "read") == 0)
        return ADMIN_SCOPE_READ;
    if (strcmp(s, "admin") == 0)
        return ADMIN_SCOPE_ADMIN;
    return -1;
}

static void mac_of(const uint8_t salt[APIKEY_SALT_LEN], const char *key, size_t keylen,
                   uint8_t out[APIKEY_MAC_LEN])
{
    unsigned n = APIKEY_MAC_LEN;
    if (!HMAC(EVP_sha256(), salt, APIKEY_SALT_LEN, (const uint8_t *)key, keylen, out, &n))
        memset(out, 0, APIKEY_MAC_LEN); /* matches nothing: no salt makes an all-zero MAC */
}

int apikey_generate(char *out, size_t cap)
{
    uint8_t raw[32];
    char b64[64];
    if (cap < APIKEY_LEN + 1 || RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    size_t n = base64_encode(raw, sizeof(raw), b64);
    OPENSSL_cleanse(raw, sizeof(raw));
    /* base64url, unpadded: safe in a Basic password, a header and a shell. */
    size_t k = 0;
    memcpy(out, "wk_", 3);
    for (size_t i = 0; i < n && b64[i] != '='; i++)
        out[3 + k++] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    out[3 + k] = '\0';
    OPENSSL_cleanse(b64, sizeof(b64));
    return 0;
}

static struct apikey *find_mut(struct apikey_db *db, const char *name)
{
    for (size_t i = 0; i < db->n; i++)
        if (strcmp(db->keys[i].name, name) == 0)
            return &db->keys[i];
    return NULL;
}

const struct apikey *apikey_find(const struct apikey_db *db, const char *name)
{
    return find_mut((struct apikey_db *)db, name);
}

/* A slot for NAME: its entry, or a new one at the end. */
static struct apikey *slot(struct apikey_db *db, const char *name, char *err, size_t errlen)
{
    struct apikey *k = find_mut(db, name);
    if (k)
        return k;
    if (!apikey_name_ok(name)) { /* also what bounds the copy below */
        snprintf(err, errlen, "bad key name");
        return NULL;
    }
    if (db->n >= APIKEY_MAX_KEYS) {
        snprintf(err, errlen, "more than %d keys", APIKEY_MAX_KEYS);
        return NULL;
    }
    if (!ward_ok(VEC_RESERVE(db->keys, db->cap, db->n + 1))) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    k = &db->keys[db->n++];
    memset(k, 0, sizeof(*k));
    memcpy(k->name, name, strlen(name) + 1); /* apikey_name_ok: at most APIKEY_NAME_MAX */
    return k;
}

int apikey_add(struct apikey_db *db, const char *name, enum admin_scope scope, const char *key,
               char *err, size_t errlen)
{
    if (!apikey_name_ok(name))
        return snprintf(err, errlen, "'%s': a key name is 1 to %d of A-Z a-z 0-9 _ . -", name,
                        APIKEY_NAME_MAX),
               -1;
    if (scope != ADMIN_SCOPE_READ && scope != ADMIN_SCOPE_ADMIN)
        return snprintf(err, errlen, "the scope is read or admin"), -1;
    uint8_t salt[APIKEY_SALT_LEN];
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return snprintf(err, errlen, "no random bytes"), -1;
    struct apikey *k = slot(db, name, err, errlen);
    if (!k)
        return -1;
    k->scope = scope;
    memcpy(k->salt, salt, sizeof(salt));
    mac_of(k->salt, key, strlen(key), k->mac);
    return 0;
}

bool apikey_remove(struct apikey_db *db, const char *name)
{
    struct apikey *k = find_mut(db, name);
    if (!k)
        return false;
    size_t i = (size_t)(k - db->keys);
    memmove(k, k + 1, (db->n - i - 1) * sizeof(*k));
    db->n--;
    OPENSSL_cleanse(&db->keys[db->n], sizeof(*k));
    return true;
}

const struct apikey *apikey_check(const struct apikey_db *db, const char *name, const char *key,
                                  size_t keylen)
{
    static const uint8_t no_salt[APIKEY_SALT_LEN];
    const struct apikey *found = NULL;
    uint8_t mac[APIKEY_MAC_LEN];
    size_t tried = 0;
    for (size_t i = 0; i < db->n; i++) {
        const struct apikey *k = &db->keys[i];
        if (name && strcmp(k->name, name) != 0)
            continue;
        mac_of(k->salt, key, keylen, mac);
        tried++;
        /* Every entry is tried, so the time taken does not say which matched. */
        if (CRYPTO_memcmp(mac, k->mac, sizeof(mac)) == 0 && !found)
            found = k;
    }
    if (name && !tried) /* an unknown name costs what a known one does */
        mac_of(no_salt, key, keylen, mac);
    return found;
}

/* "NAME:SCOPE:$hs256$SALT$MAC" into k; a cause or NULL. */
static const char *parse_line(char *line, struct apikey *k)
{
    char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2)
        return "expected NAME:SCOPE:HASH";
    *c1 = *c2 = '\0';
    if (!apikey_name_ok(line))
        return "bad key name";
    int scope = apikey_scope_parse(c1 + 1);
    if (scope < 0)
        return "the scope is read or admin";
    const char *h = c2 + 1;
    if (strncmp(h, PREFIX, strlen(PREFIX)) != 0)
        return "unknown hash (expected $hs256$)";
    h += strlen(PREFIX);
    const char *d = strchr(h, '$');
    if (!d)
        return "malformed hash";
    if (base64_decode(h, (size_t)(d - h), k->salt, sizeof(k->salt)) != APIKEY_SALT_LEN ||
        base64_decode(d + 1, strlen(d + 1), k->mac, sizeof(k->mac)) != APIKEY_MAC_LEN)
        return "malformed hash";
    memcpy(k->name, line, strlen(line) + 1); /* apikey_name_ok: at most APIKEY_NAME_MAX */
    k->scope = (enum admin_scope)scope;
    return NULL;
}

static int load_lines(struct apikey_db *db, FILE *f, const char *path, char *err, size_t errlen)
{
    char line[512];
    unsigned no = 0;
    while (fgets(line, sizeof(line), f)) {
        no++;
        size_t n = strcspn(line, "\r\n");
        if (line[n] == '\0' && !feof(f))
            return snprintf(err, errlen, "%s:%u: line too long", path, no), -1;
        line[n] = '\0';
        if (line[0] == '\0' || line[0] == '#' || strcmp(line, FORMAT_LINE) == 0)
            continue;
        struct apikey k;
        const char *why = parse_line(line, &k);
        if (why)
            return snprintf(err, errlen, "%s:%u: %s", path, no, why), -1;
        if (apikey_find(db, k.name))
            return snprintf(err, errlen, "%s:%u: '%s' appears twice", path, no, k.name), -1;
        struct apikey *s = slot(db, k.name, err, errlen);
        if (!s)
            return -1;
        *s = k;
    }
    return ferror(f) ? (snprintf(err, errlen, "%s: read error", path), -1) : 0;
}

int apikey_load(struct apikey_db *db, const char *path, bool missing_ok, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT && missing_ok)
            return 0;
        return snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1;
    }
    int rc = load_lines(db, f, path, err, errlen);
    fclose(f);
    if (rc < 0)
        apikey_db_free(db);
    return rc;
}

static int write_all(FILE *f, const struct apikey_db *db)
{
    if (fprintf(f, FORMAT_LINE
                "\n# ward API keys (ward apikey add|list|remove); keys are not stored, only "
                "salted HMAC-SHA256 hashes\n") < 0)
        return -1;
    for (size_t i = 0; i < db->n; i++) {
        const struct apikey *k = &db->keys[i];
        char salt[32], mac[64];
        base64_encode(k->salt, sizeof(k->salt), salt);
        base64_encode(k->mac, sizeof(k->mac), mac);
        if (fprintf(f, "%s:%s:" PREFIX "%s$%s\n", k->name, apikey_scope_name(k->scope), salt, mac) <
            0)
            return -1;
    }
    return 0;
}

int apikey_save(const struct apikey_db *db, const char *path, char *err, size_t errlen)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return snprintf(err, errlen, "%s: path too long", path), -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int bad = write_all(f, db) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0;
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}
