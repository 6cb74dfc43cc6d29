/* see x509.h */
#include "pki/x509.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

/* The last OpenSSL error as text, after `what`. */
static void ossl_err(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, errlen, "%s%s%s", what, e ? ": " : "", buf);
    ERR_clear_error();
}

/* see x509.h */
EVP_PKEY *pki_key_new(const struct pki_key_spec *spec, char *err, size_t errlen)
{
    EVP_PKEY *k = NULL;
    switch (spec->type) {
    case PKI_EC_P256:
        k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        break;
    case PKI_EC_P384:
        k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
        break;
    case PKI_RSA:
        if (spec->rsa_bits < 2048 || spec->rsa_bits > 16384) {
            snprintf(err, errlen, "RSA keys must have 2048 to 16384 bits");
            return NULL;
        }
        k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)spec->rsa_bits);
        break;
    case PKI_ED25519:
        k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        break;
    default:
        break;
    }
    if (!k)
        ossl_err(err, errlen, "cannot generate the key");
    return k;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value, char *err, size_t errlen)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!e || !X509_add_ext(x, e, -1)) {
        X509_EXTENSION_free(e);
        char what[160];
        snprintf(what, sizeof(what), "cannot add extension %s = %s", OBJ_nid2sn(nid), value);
        ossl_err(err, errlen, what);
        return -1;
    }
    X509_EXTENSION_free(e);
    return 0;
}

static int add_sans(X509 *x, const struct pki_cert_spec *s, char *err, size_t errlen)
{
    if (!s->ndns && !s->nips)
        return 0;
    char buf[4096];
    size_t n = 0;
    for (size_t i = 0; i < s->ndns && n < sizeof(buf); i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%sDNS:%s", n ? "," : "", s->dns[i]);
    for (size_t i = 0; i < s->nips && n < sizeof(buf); i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%sIP:%s", n ? "," : "", s->ips[i]);
    if (n >= sizeof(buf)) {
        snprintf(err, errlen, "too many subject alternative names");
        return -1;
    }
    return add_ext(x, NULL, NID_subject_alt_name, buf, err, errlen);
}

/* The extensions each profile needs (RFC 5280 4.2; CA/Browser baseline for
 * server certificates: SANs, serverAuth). */
static int add_profile(X509 *x, X509 *issuer, const struct pki_cert_spec *s, EVP_PKEY *key,
                       char *err, size_t errlen)
{
    bool rsa = EVP_PKEY_is_a(key, "RSA");
    const char *bc, *ku, *eku = NULL;
    switch (s->profile) {
    case PKI_ROOT_CA:
        bc = "critical,CA:TRUE";
        ku = "critical,keyCertSign,cRLSign";
        break;
    case PKI_INTERMEDIATE_CA:
        bc = "critical,CA:TRUE,pathlen:0";
        ku = "critical,keyCertSign,cRLSign";
        break;
    case PKI_SERVER:
        bc = "critical,CA:FALSE";
        ku = rsa ? "critical,digitalSignature,keyEncipherment" : "critical,digitalSignature";
        eku = "serverAuth";
        break;
    case PKI_CLIENT:
    default:
        bc = "critical,CA:FALSE";
        ku = rsa ? "critical,digitalSignature,keyEncipherment" : "critical,digitalSignature";
        eku = "clientAuth";
        break;
    }
    if (add_ext(x, issuer, NID_basic_constraints, bc, err, errlen) < 0 ||
        add_ext(x, issuer, NID_key_usage, ku, err, errlen) < 0 ||
        (eku && add_ext(x, issuer, NID_ext_key_usage, eku, err, errlen) < 0) ||
        add_ext(x, issuer, NID_subject_key_identifier, "hash", err, errlen) < 0 ||
        (issuer &&
         add_ext(x, issuer, NID_authority_key_identifier, "keyid:always", err, errlen) < 0))
        return -1;
    return s->profile == PKI_SERVER ? add_sans(x, s, err, errlen) : 0;
}

static int random_serial(X509 *x)
{
    BIGNUM *bn = BN_new();
    int ok = bn && BN_rand(bn, 127, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) == 1;
    ASN1_INTEGER *ai = ok ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    ok = ai && X509_set_serialNumber(x, ai) == 1;
    ASN1_INTEGER_free(ai);
    BN_free(bn);
    return ok ? 0 : -1;
}

static int set_name(X509_NAME *n, const struct pki_cert_spec *s)
{
    if (s->org && !X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *)s->org,
                                              -1, -1, 0))
        return -1;
    if (s->ou && !X509_NAME_add_entry_by_txt(n, "OU", MBSTRING_UTF8, (const unsigned char *)s->ou,
                                             -1, -1, 0))
        return -1;
    return X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)s->cn, -1, -1,
                                      0)
               ? 0
               : -1;
}

static X509 *build(const struct pki_cert_spec *s, X509_NAME *subject, EVP_PKEY *pub, X509 *issuer,
                   EVP_PKEY *issuer_key, EVP_PKEY *self_key, char *err, size_t errlen)
{
    X509 *x = X509_new();
    EVP_PKEY *signer = issuer_key ? issuer_key : self_key;
    if (!x || !X509_set_version(x, X509_VERSION_3) || random_serial(x) < 0 ||
        !X509_set_subject_name(x, subject) ||
        !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : subject) ||
        !X509_set_pubkey(x, pub) ||
        /* Five minutes back: a peer whose clock runs a little behind still
         * accepts a certificate made just now. */
        !X509_gmtime_adj(X509_getm_notBefore(x), -300) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), s->days, 0, NULL)) {
        ossl_err(err, errlen, "cannot build the certificate");
        X509_free(x);
        return NULL;
    }
    if (add_profile(x, issuer, s, pub, err, errlen) < 0) {
        X509_free(x);
        return NULL;
    }
    /* Ed25519 signs without a separate digest. */
    const EVP_MD *md = EVP_PKEY_is_a(signer, "ED25519") ? NULL : EVP_sha256();
    if (!X509_sign(x, signer, md)) {
        ossl_err(err, errlen, "cannot sign the certificate");
        X509_free(x);
        return NULL;
    }
    return x;
}

/* see x509.h */
X509 *pki_cert_new(const struct pki_cert_spec *s, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                   char *err, size_t errlen)
{
    X509_NAME *n = X509_NAME_new();
    if (!n || set_name(n, s) < 0) {
        X509_NAME_free(n);
        ossl_err(err, errlen, "invalid subject");
        return NULL;
    }
    X509 *x = build(s, n, key, issuer, issuer_key, key, err, errlen);
    X509_NAME_free(n);
    return x;
}

/* see x509.h */
X509 *pki_cert_from_req(X509_REQ *req, const struct pki_cert_spec *s, X509 *issuer,
                        EVP_PKEY *issuer_key, char *err, size_t errlen)
{
    EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
    if (!pub) {
        snprintf(err, errlen, "the request carries no public key");
        return NULL;
    }
    if (X509_REQ_verify(req, pub) != 1) {
        ossl_err(err, errlen, "the request's signature is invalid");
        return NULL;
    }
    /* The subject is made from the checked fields in s, never copied from
     * the request: whatever else a request names (a second CN, an O, an
     * emailAddress) would otherwise reach the certificate unchecked. */
    X509_NAME *n = X509_NAME_new();
    if (!n || set_name(n, s) < 0) {
        X509_NAME_free(n);
        ossl_err(err, errlen, "invalid subject");
        return NULL;
    }
    X509 *x = build(s, n, pub, issuer, issuer_key, NULL, err, errlen);
    X509_NAME_free(n);
    return x;
}

/* Opens path for writing: O_EXCL unless force, in which case a temporary
 * file is written and renamed over the old one by commit(). */
struct out {
    char path[4096], tmp[4200];
    FILE *f;
    bool force;
};

/* Refuses a path that is a symbolic link: a key or certificate written
 * through one lands wherever the link points (another user's file, or one
 * outside the PKI). open() below adds O_NOFOLLOW for the race after lstat. */
static int refuse_symlink(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        snprintf(err, errlen, "%s: is a symbolic link: refusing to write through it", path);
        return -1;
    }
    return 0;
}

static int out_open(struct out *o, const char *path, mode_t mode, bool force, char *err,
                    size_t errlen)
{
    snprintf(o->path, sizeof(o->path), "%s", path);
    snprintf(o->tmp, sizeof(o->tmp), "%s.tmp.%ld", path, (long)getpid());
    o->force = force;
    if (refuse_symlink(path, err, errlen) < 0)
        return -1;
    /* O_EXCL: a new file, created with its final mode (never chmod after
     * the key is in it); with force, a new temporary renamed over the old
     * file, which replaces a link rather than following it. */
    int fd =
        open(force ? o->tmp : path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s%s", force ? o->tmp : path, strerror(errno),
                 errno == EEXIST && !force ? " (use --force to replace it)" : "");
        return -1;
    }
    o->f = fdopen(fd, "wb");
    if (!o->f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        unlink(force ? o->tmp : path);
        return -1;
    }
    return 0;
}

static int out_commit(struct out *o, bool ok, char *err, size_t errlen)
{
    if (fflush(o->f) != 0 || fsync(fileno(o->f)) != 0)
        ok = false;
    fclose(o->f);
    const char *written = o->force ? o->tmp : o->path;
    if (ok && o->force && rename(o->tmp, o->path) != 0)
        ok = false;
    if (!ok) {
        unlink(written);
        if (!*err)
            snprintf(err, errlen, "%s: cannot write: %s", o->path, strerror(errno));
        return -1;
    }
    return 0;
}

/* see x509.h */
int pki_write_cert(const char *path, X509 *const *certs, size_t n, bool force, char *err,
                   size_t errlen)
{
    struct out o;
    err[0] = '\0';
    if (out_open(&o, path, 0644, force, err, errlen) < 0)
        return -1;
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++)
        ok = PEM_write_X509(o.f, certs[i]) == 1;
    return out_commit(&o, ok, err, errlen);
}

/* see x509.h */
int pki_write_key(const char *path, EVP_PKEY *key, const char *password, bool force, char *err,
                  size_t errlen)
{
    struct out o;
    err[0] = '\0';
    if (out_open(&o, path, 0600, force, err, errlen) < 0)
        return -1;
    const EVP_CIPHER *c = password ? EVP_aes_256_cbc() : NULL;
    bool ok = PEM_write_PKCS8PrivateKey(o.f, key, c, (const char *)password,
                                        password ? (int)strlen(password) : 0, NULL, NULL) == 1;
    return out_commit(&o, ok, err, errlen);
}

/* see x509.h */
int pki_write_der(const char *path, X509 *cert, bool force, char *err, size_t errlen)
{
    struct out o;
    err[0] = '\0';
    if (out_open(&o, path, 0644, force, err, errlen) < 0)
        return -1;
    return out_commit(&o, i2d_X509_fp(o.f, cert) == 1, err, errlen);
}

/* see x509.h */
int pki_write_p12(const char *path, const char *name, EVP_PKEY *key, X509 *cert, X509 *const *chain,
                  size_t nchain, const char *password, bool force, char *err, size_t errlen)
{
    STACK_OF(X509) *ca = sk_X509_new_null();
    for (size_t i = 0; ca && i < nchain; i++)
        sk_X509_push(ca, chain[i]);
    PKCS12 *p12 = PKCS12_create(password ? password : "", name, key, cert, ca, 0, 0, 0, 0, 0);
    sk_X509_free(ca);
    if (!p12) {
        ossl_err(err, errlen, "cannot build the PKCS#12 file");
        return -1;
    }
    struct out o;
    err[0] = '\0';
    int rc = out_open(&o, path, 0600, force, err, errlen);
    if (rc == 0)
        rc = out_commit(&o, i2d_PKCS12_fp(o.f, p12) == 1, err, errlen);
    PKCS12_free(p12);
    return rc;
}

/* see x509.h */
int pki_copy_file(const char *src, const char *dst, mode_t mode, char *err, size_t errlen)
{
    struct out o;
    err[0] = '\0';
    int in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (in < 0) {
        snprintf(err, errlen, "%s: %s", src, strerror(errno));
        return -1;
    }
    if (out_open(&o, dst, mode, true, err, errlen) < 0) {
        close(in);
        return -1;
    }
    char buf[8192];
    ssize_t n;
    bool ok = true;
    while (ok && (n = read(in, buf, sizeof(buf))) != 0)
        ok = n > 0 && fwrite(buf, 1, (size_t)n, o.f) == (size_t)n;
    if (!ok)
        snprintf(err, errlen, "%s: cannot copy from %s: %s", dst, src, strerror(errno));
    close(in);
    OPENSSL_cleanse(buf, sizeof(buf)); /* it may have held a private key */
    return out_commit(&o, ok, err, errlen);
}

/* see x509.h */
int pki_check_owner(const char *path, const struct stat *st, const char *what, char *err,
                    size_t errlen)
{
    uid_t me = geteuid();
    if (st->st_uid != me && st->st_uid != 0) {
        snprintf(err, errlen,
                 "%s owned by uid %u, not by uid %u or root: refusing it (another user could "
                 "replace what it holds)",
                 what, (unsigned)st->st_uid, (unsigned)me);
        return -1;
    }
    if (st->st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, errlen,
                 "%s with mode %04o, writable by group or others: refusing it (chmod go-w %s)",
                 what, (unsigned)(st->st_mode & 07777), path);
        return -1;
    }
    return 0;
}

static FILE *open_read(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        snprintf(err, errlen, "%s", strerror(errno));
    return f;
}

/* see x509.h */
X509 *pki_read_cert(const char *path, char *err, size_t errlen)
{
    FILE *f = open_read(path, err, errlen);
    if (!f)
        return NULL;
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    if (!x) {
        rewind(f);
        x = d2i_X509_fp(f, NULL); /* DER too */
    }
    fclose(f);
    if (!x)
        ossl_err(err, errlen, "no certificate found");
    return x;
}

/* see x509.h */
size_t pki_read_certs(const char *path, X509 **out, size_t cap, char *err, size_t errlen)
{
    FILE *f = open_read(path, err, errlen);
    if (!f)
        return 0;
    size_t n = 0;
    X509 *x;
    while (n < cap && (x = PEM_read_X509(f, NULL, NULL, NULL)))
        out[n++] = x;
    ERR_clear_error(); /* the end of the file reads as an error */
    fclose(f);
    if (!n)
        snprintf(err, errlen, "no certificates found");
    return n;
}

/* Never prompts: the password is given or there is none. */
static int password_cb(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    if (!u)
        return -1;
    int n = (int)strlen(u);
    if (n > size)
        n = size;
    memcpy(buf, u, (size_t)n);
    return n;
}

/* see x509.h */
EVP_PKEY *pki_read_key(const char *path, const char *password, char *err, size_t errlen)
{
    /* The checks are made on the file opened, not on the name: no window
     * in which another file can be put in its place. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if (pki_check_owner(path, &st, "a private key", err, errlen) < 0) {
        close(fd);
        return NULL;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        snprintf(err, errlen, "%s", strerror(errno));
        close(fd);
        return NULL;
    }
    char head[64] = "";
    size_t n = fread(head, 1, sizeof(head) - 1, f);
    head[n] = '\0';
    rewind(f);
    /* PKCS#8 "ENCRYPTED PRIVATE KEY" or a legacy PEM with Proc-Type. */
    bool encrypted = strstr(head, "ENCRYPTED") != NULL;
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, password_cb, (void *)password);
    if (!encrypted && !k) {
        char more[256] = "";
        rewind(f);
        encrypted = fread(more, 1, sizeof(more) - 1, f) > 0 && strstr(more, "ENCRYPTED");
    }
    fclose(f);
    if (!k) {
        bool decrypt = encrypted;
        ossl_err(err, errlen,
                 decrypt ? (password ? "cannot decrypt the private key: wrong password"
                                     : "the private key is encrypted: a password is needed")
                         : "no private key found");
    }
    return k;
}

/* see x509.h */
X509_REQ *pki_read_req(const char *path, char *err, size_t errlen)
{
    FILE *f = open_read(path, err, errlen);
    if (!f)
        return NULL;
    X509_REQ *r = PEM_read_X509_REQ(f, NULL, NULL, NULL);
    fclose(f);
    if (!r)
        ossl_err(err, errlen, "no certificate request found");
    return r;
}

static const char *const reasons[] = {
    "unspecified",   "keyCompromise",        "cACompromise",    "affiliationChanged",
    "superseded",    "cessationOfOperation", "certificateHold", NULL,
    "removeFromCRL", "privilegeWithdrawn",   "aACompromise",
};

int pki_reason_code(const char *name)
{
    for (int i = 0; i < (int)(sizeof(reasons) / sizeof(reasons[0])); i++)
        if (reasons[i] && strcasecmp(name, reasons[i]) == 0)
            return i;
    return -1;
}

const char *pki_reason_name(int code)
{
    return code >= 0 && code < (int)(sizeof(reasons) / sizeof(reasons[0])) && reasons[code]
               ? reasons[code]
               : "";
}

static int add_revoked(X509_CRL *crl, const struct pki_revoked *r)
{
    BIGNUM *bn = NULL;
    X509_REVOKED *rev = X509_REVOKED_new();
    ASN1_TIME *t = ASN1_TIME_set(NULL, r->when);
    int ok = rev && t && BN_hex2bn(&bn, r->serial_hex) > 0;
    ASN1_INTEGER *ai = ok ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    ok = ai && X509_REVOKED_set_serialNumber(rev, ai) && X509_REVOKED_set_revocationDate(rev, t);
    if (ok && r->reason >= 0) {
        ASN1_ENUMERATED *e = ASN1_ENUMERATED_new();
        ok = e && ASN1_ENUMERATED_set(e, r->reason) &&
             X509_REVOKED_add1_ext_i2d(rev, NID_crl_reason, e, 0, 0) == 1;
        ASN1_ENUMERATED_free(e);
    }
    if (ok)
        ok = X509_CRL_add0_revoked(crl, rev) == 1;
    else
        X509_REVOKED_free(rev);
    ASN1_INTEGER_free(ai);
    ASN1_TIME_free(t);
    BN_free(bn);
    return ok ? 0 : -1;
}

/* see x509.h */
X509_CRL *pki_crl_new(X509 *issuer, EVP_PKEY *issuer_key, const struct pki_revoked *list, size_t n,
                      int days, char *err, size_t errlen)
{
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *now = ASN1_TIME_set(NULL, time(NULL));
    ASN1_TIME *next = ASN1_TIME_adj(NULL, time(NULL), days, 0);
    ASN1_INTEGER *num = ASN1_INTEGER_new();
    bool ok = crl && now && next && num && X509_CRL_set_version(crl, X509_CRL_VERSION_2) &&
              X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)) &&
              X509_CRL_set1_lastUpdate(crl, now) && X509_CRL_set1_nextUpdate(crl, next) &&
              ASN1_INTEGER_set_int64(num, (int64_t)time(NULL)) &&
              X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) == 1;
    for (size_t i = 0; ok && i < n; i++)
        ok = add_revoked(crl, &list[i]) == 0;
    if (ok) {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, issuer, NULL, NULL, crl, 0);
        X509_EXTENSION *aki =
            X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
        ok = aki && X509_CRL_add_ext(crl, aki, -1);
        X509_EXTENSION_free(aki);
    }
    const EVP_MD *md = EVP_PKEY_is_a(issuer_key, "ED25519") ? NULL : EVP_sha256();
    if (ok) {
        X509_CRL_sort(crl);
        ok = X509_CRL_sign(crl, issuer_key, md) > 0;
    }
    ASN1_TIME_free(now);
    ASN1_TIME_free(next);
    ASN1_INTEGER_free(num);
    if (!ok) {
        ossl_err(err, errlen, "cannot build the CRL");
        X509_CRL_free(crl);
        return NULL;
    }
    return crl;
}

/* see x509.h */
int pki_write_crl(const char *path, X509_CRL *crl, char *err, size_t errlen)
{
    struct out o;
    err[0] = '\0';
    if (out_open(&o, path, 0644, true, err, errlen) < 0)
        return -1;
    return out_commit(&o, PEM_write_X509_CRL(o.f, crl) == 1, err, errlen);
}

/* see x509.h */
void pki_serial_hex(X509 *cert, char *out, size_t cap)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    snprintf(out, cap, "%s", hex ? hex : "?");
    OPENSSL_free(hex);
    BN_free(bn);
}

/* see x509.h */
long pki_days_left(X509 *cert)
{
    int days = 0, secs = 0;
    if (!ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert)))
        return 0;
    return secs < 0 && days <= 0 ? days - 1 : days;
}

/* see x509.h */
void pki_time_iso(const ASN1_TIME *t, char *out, size_t cap)
{
    struct tm tm;
    if (!t || !ASN1_TIME_to_tm(t, &tm)) {
        snprintf(out, cap, "?");
        return;
    }
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void hex_colons(const unsigned char *md, unsigned n, char *out, size_t cap)
{
    size_t k = 0;
    for (unsigned i = 0; i < n && k + 3 < cap; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s%02X", i ? ":" : "", md[i]);
}

/* see x509.h */
void pki_fingerprint(X509 *cert, char *out, size_t cap)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    X509_digest(cert, EVP_sha256(), md, &n);
    hex_colons(md, n, out, cap);
}

/* see x509.h */
void pki_pubkey_fingerprint(X509 *cert, char *out, size_t cap)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    X509_pubkey_digest(cert, EVP_sha256(), md, &n);
    hex_colons(md, n, out, cap);
}

/* see x509.h */
void pki_subject_field(X509 *cert, int nid, char *out, size_t cap)
{
    out[0] = '\0';
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), nid, out, (int)cap);
}

/* see x509.h */
int pki_verify(X509 *cert, X509 *const *chain, size_t nchain, const char *cafile, char *err,
               size_t errlen)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    int rc = -1;
    for (size_t i = 0; untrusted && i < nchain; i++)
        sk_X509_push(untrusted, chain[i]);
    if (!store || !ctx || !untrusted || X509_STORE_load_file(store, cafile) != 1) {
        ossl_err(err, errlen, "cannot load the CA file");
        goto out;
    }
    X509_STORE_CTX_init(ctx, store, cert, untrusted);
    if (X509_verify_cert(ctx) == 1)
        rc = 0;
    else
        snprintf(err, errlen, "%s", X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
out:
    sk_X509_free(untrusted);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return rc;
}
