/* see passwd.h */
#include "auth/passwd.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/hocon.h"
#include "core/vec.h"

#define SCHEME "$pbkdf2-sha512$"

/* The key under which verified passwords are remembered: random per process,
 * so the cache means nothing outside this process's memory. */
static uint8_t cache_key[32];
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_key_init(void)
{
    if (RAND_bytes(cache_key, sizeof(cache_key)) != 1)
        abort(); /* no entropy: refusing to run beats a predictable key */
}

void passwd_db_init(struct passwd_db *db)
{
    memset(db, 0, sizeof(*db));
    pthread_mutex_init(&db->lock, NULL);
}

void passwd_db_free(struct passwd_db *db)
{
    for (size_t i = 0; i < db->count; i++) {
        free(db->users[i].user);
        OPENSSL_cleanse(&db->users[i], sizeof(db->users[i]));
    }
    free(db->users);
    pthread_mutex_destroy(&db->lock);
    memset(db, 0, sizeof(*db));
}

/* Standard base64 of exactly `len` bytes into out (NUL-terminated). */
static void b64_encode(const uint8_t *in, size_t len, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

/* Decodes base64 that must yield exactly `want` bytes. */
static int b64_decode_exact(const char *in, size_t inlen, uint8_t *out, size_t want)
{
    uint8_t tmp[128];
    if (inlen == 0 || inlen % 4 || inlen / 4 * 3 > sizeof(tmp))
        return -1;
    int n = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)inlen);
    if (n < 0)
        return -1;
    size_t pad = (in[inlen - 1] == '=') + (inlen > 1 && in[inlen - 2] == '=');
    if ((size_t)n - pad != want)
        return -1;
    memcpy(out, tmp, want);
    return 0;
}

/* see passwd.h */
int passwd_parse_hash(const char *text, struct passwd_entry *e)
{
    if (strncmp(text, SCHEME, strlen(SCHEME)) != 0)
        return -1;
    const char *p = text + strlen(SCHEME);
    char *end;
    errno = 0;
    unsigned long it = strtoul(p, &end, 10);
    if (errno || end == p || *end != '$' || it < 1000 || it > 100000000ul)
        return -1;
    const char *salt = end + 1, *dollar = strchr(salt, '$');
    if (!dollar)
        return -1;
    const char *hash = dollar + 1;
    if (b64_decode_exact(salt, (size_t)(dollar - salt), e->salt, PASSWD_SALT_LEN) < 0 ||
        b64_decode_exact(hash, strlen(hash), e->hash, PASSWD_HASH_LEN) < 0)
        return -1;
    e->iterations = (uint32_t)it;
    e->cached = false;
    return 0;
}

/* see passwd.h */
int passwd_format_hash(const struct passwd_entry *e, char *out, size_t cap)
{
    char salt[64], hash[128];
    b64_encode(e->salt, PASSWD_SALT_LEN, salt);
    b64_encode(e->hash, PASSWD_HASH_LEN, hash);
    int n = snprintf(out, cap, SCHEME "%u$%s$%s", e->iterations, salt, hash);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

static int derive(const struct passwd_entry *e, const uint8_t *pw, size_t plen,
                  uint8_t out[PASSWD_HASH_LEN])
{
    return PKCS5_PBKDF2_HMAC((const char *)pw, (int)plen, e->salt, PASSWD_SALT_LEN,
                             (int)e->iterations, EVP_sha512(), PASSWD_HASH_LEN, out) == 1
               ? 0
               : -1;
}

static void cache_mac(const uint8_t *pw, size_t plen, uint8_t out[32])
{
    unsigned int n = 32;
    pthread_once(&cache_once, cache_key_init);
    HMAC(EVP_sha256(), cache_key, sizeof(cache_key), pw, plen, out, &n);
}

static bool valid_user(const char *user)
{
    if (!*user)
        return false;
    for (const char *p = user; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* The iteration count most entries use (the larger on a tie). */
static void set_dummy_iterations(struct passwd_db *db)
{
    db->dummy_iterations = PASSWD_ITERATIONS;
    uint32_t *it = db->count ? malloc(db->count * sizeof(*it)) : NULL;
    if (!it)
        return;
    for (size_t i = 0; i < db->count; i++)
        it[i] = db->users[i].iterations;
    qsort(it, db->count, sizeof(*it), cmp_u32);
    size_t best = 0;
    for (size_t i = 0, run = 1; i < db->count; i++, run++) {
        if (i + 1 < db->count && it[i + 1] == it[i])
            continue;
        if (run >= best) {
            best = run;
            db->dummy_iterations = it[i];
        }
        run = 0;
    }
    free(it);
}

const struct passwd_entry *passwd_find(const struct passwd_db *db, const char *user, size_t ulen)
{
    for (size_t i = 0; i < db->count; i++)
        if (strlen(db->users[i].user) == ulen && memcmp(db->users[i].user, user, ulen) == 0)
            return &db->users[i];
    return NULL;
}

static struct passwd_entry *slot(struct passwd_db *db, const char *user)
{
    struct passwd_entry *e = (struct passwd_entry *)passwd_find(db, user, strlen(user));
    if (e)
        return e;
    if (!ward_ok(VEC_RESERVE(db->users, db->cap, db->count + 1)))
        return NULL;
    e = &db->users[db->count];
    memset(e, 0, sizeof(*e));
    if (!(e->user = strdup(user)))
        return NULL;
    db->count++;
    return e;
}

/* see passwd.h */
int passwd_set(struct passwd_db *db, const char *user, const char *password, size_t len, char *err,
               size_t errlen)
{
    if (!valid_user(user)) {
        snprintf(err, errlen,
                 "invalid user name (empty, or a quote, backslash or control "
                 "character)");
        return -1;
    }
    struct passwd_entry tmp = {.iterations = PASSWD_ITERATIONS};
    if (RAND_bytes(tmp.salt, PASSWD_SALT_LEN) != 1 ||
        derive(&tmp, (const uint8_t *)password, len, tmp.hash) < 0) {
        snprintf(err, errlen, "cannot hash the password (OpenSSL failure)");
        return -1;
    }
    struct passwd_entry *e = slot(db, user);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    e->iterations = tmp.iterations;
    memcpy(e->salt, tmp.salt, sizeof(e->salt));
    memcpy(e->hash, tmp.hash, sizeof(e->hash));
    e->cached = false;
    OPENSSL_cleanse(&tmp, sizeof(tmp));
    set_dummy_iterations(db);
    return 0;
}

/* see passwd.h */
bool passwd_delete(struct passwd_db *db, const char *user)
{
    struct passwd_entry *e = (struct passwd_entry *)passwd_find(db, user, strlen(user));
    if (!e)
        return false;
    free(e->user);
    *e = db->users[--db->count];
    set_dummy_iterations(db);
    return true;
}

/* Hashes the password against a dummy entry (the salt need not be secret or
 * random: the result is never accepted) and compares it, so the work is that
 * of a real check. */
static void hash_dummy(const struct passwd_db *db, const uint8_t *pw, size_t plen, bool *hashed)
{
    struct passwd_entry dummy = {.iterations = db->dummy_iterations ? db->dummy_iterations
                                                                    : PASSWD_ITERATIONS};
    uint8_t got[PASSWD_HASH_LEN];
    *hashed = true;
    if (derive(&dummy, pw, plen, got) == 0)
        (void)CRYPTO_memcmp(got, dummy.hash, PASSWD_HASH_LEN);
    OPENSSL_cleanse(got, sizeof(got));
}

/* see passwd.h */
enum passwd_verdict passwd_verify(struct passwd_db *db, const char *user, size_t ulen,
                                  const uint8_t *password, size_t plen, bool *hashed)
{
    bool dummy_hashed;
    hashed = hashed ? hashed : &dummy_hashed;
    *hashed = false;
    const struct passwd_entry *found = passwd_find(db, user, ulen);
    if (!found) {
        hash_dummy(db, password, plen, hashed);
        return PASSWD_NO_USER;
    }
    struct passwd_entry *e = (struct passwd_entry *)found;
    uint8_t mac[32], got[PASSWD_HASH_LEN];
    cache_mac(password, plen, mac);
    pthread_mutex_lock(&db->lock);
    bool hit = e->cached && CRYPTO_memcmp(mac, e->verified_mac, sizeof(mac)) == 0;
    struct passwd_entry copy = *e;
    pthread_mutex_unlock(&db->lock);
    if (hit)
        return PASSWD_OK;
    /* The slow hash runs without the lock: other users' checks proceed. */
    *hashed = true;
    bool ok = derive(&copy, password, plen, got) == 0 &&
              CRYPTO_memcmp(got, copy.hash, PASSWD_HASH_LEN) == 0;
    if (ok) {
        pthread_mutex_lock(&db->lock);
        memcpy(e->verified_mac, mac, sizeof(mac));
        e->cached = true;
        pthread_mutex_unlock(&db->lock);
    }
    OPENSSL_cleanse(got, sizeof(got));
    OPENSSL_cleanse(&copy, sizeof(copy));
    return ok ? PASSWD_OK : PASSWD_WRONG;
}

/* see passwd.h */
bool passwd_check(struct passwd_db *db, const char *user, size_t ulen, const uint8_t *password,
                  size_t plen)
{
    return passwd_verify(db, user, ulen, password, plen, NULL) == PASSWD_OK;
}

/* One entry of the file into db: a hash, or with convert (counted in
 * *converted) a plaintext password, hashed. 0, or -1 with the cause. */
static int load_entry(struct passwd_db *db, const char *path, const struct hocon_member *m,
                      size_t *converted, char *err, size_t errlen)
{
    const char *key = m->key, *file = m->val->file;
    unsigned line = m->val->line;
    if (m->val->type != HOCON_STRING)
        return snprintf(err, errlen, "%s:%u: %s: expected a password hash string", file, line, key),
               -1;
    const char *v = m->val->str;
    if (strncmp(v, SCHEME, strlen(SCHEME)) != 0) {
        if (!converted)
            return snprintf(err, errlen,
                            "%s:%u: %s: plaintext or unknown password format; ward stores only "
                            "hashes: run `ward passwd -c %s` to hash the plaintext ones",
                            file, line, key, path),
                   -1;
        /* "$id$...": another program's hash, which hashed again would
         * only ever accept the hash itself as the password. */
        if (v[0] == '$' && strchr(v + 1, '$'))
            return snprintf(err, errlen,
                            "%s:%u: %s: a hash of another scheme, not a plaintext password: "
                            "set it again with `ward passwd %s %s`",
                            file, line, key, path, key),
                   -1;
        char why[256];
        if (passwd_set(db, key, v, strlen(v), why, sizeof(why)) < 0)
            return snprintf(err, errlen, "%s:%u: %s: %s", file, line, key, why), -1;
        (*converted)++;
        return 0;
    }
    struct passwd_entry e = {0};
    if (passwd_parse_hash(v, &e) < 0 || !valid_user(key))
        return snprintf(err, errlen, "%s:%u: %s: malformed password hash", file, line, key), -1;
    struct passwd_entry *s = slot(db, key);
    if (!s)
        return snprintf(err, errlen, "%s: out of memory", path), -1;
    char *u = s->user;
    *s = e;
    s->user = u;
    return 0;
}

static int load(struct passwd_db *db, const char *path, size_t *converted, char *err, size_t errlen)
{
    struct hocon_doc doc;
    if (hocon_parse_file(path, &doc, err, errlen) < 0)
        return -1;
    int rc = 0;
    const struct hocon_value *root = doc.root;
    for (size_t i = 0; i < root->count && rc == 0; i++)
        rc = load_entry(db, path, &root->members[i], converted, err, errlen);
    hocon_doc_free(&doc);
    if (rc < 0) {
        for (size_t i = 0; i < db->count; i++)
            free(db->users[i].user);
        db->count = 0;
    }
    set_dummy_iterations(db);
    return rc;
}

/* see passwd.h */
int passwd_load(struct passwd_db *db, const char *path, char *err, size_t errlen)
{
    return load(db, path, NULL, err, errlen);
}

/* see passwd.h */
int passwd_convert(struct passwd_db *db, const char *path, size_t *converted, char *err,
                   size_t errlen)
{
    *converted = 0;
    return load(db, path, converted, err, errlen);
}

/* see passwd.h */
int passwd_save(const struct passwd_db *db, const char *path, char *err, size_t errlen)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    int rc = 0;
    fprintf(f, "# ward password file: written by `ward passwd`; PBKDF2-HMAC-SHA512 hashes.\n");
    for (size_t i = 0; i < db->count; i++) {
        char h[256];
        if (passwd_format_hash(&db->users[i], h, sizeof(h)) < 0) {
            /* Never write a truncated hash: it would lock the user out. */
            snprintf(err, errlen, "%s: the hash of '%s' does not fit", path, db->users[i].user);
            fclose(f);
            unlink(tmp);
            return -1;
        }
        fprintf(f, "\"%s\" = \"%s\"\n", db->users[i].user, h);
    }
    if (fflush(f) != 0 || fsync(fd) != 0)
        rc = -1;
    if (fclose(f) != 0)
        rc = -1;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -1;
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(tmp);
    }
    return rc;
}
