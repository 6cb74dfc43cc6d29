/* `ward cert`: a certificate authority in the box (src/pki/). Every command
 * works in a PKI directory (--dir, default ./pki) and either completes or
 * leaves it as it was, naming the file and the cause of any failure. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "commands.h"
#include "opts.h"
#include "secret.h"
#include "pki/csr.h"
#include "pki/store.h"

#define MAX_SANS 64

struct cert_opts {
    const char *dir;
    const char *name; /* init: CA name */
    int days;
    struct pki_key_spec key;
    bool intermediate;
    const char *dns[MAX_SANS], *ips[MAX_SANS];
    size_t ndns, nips;
    const char *ou;
    int count;
    const char *password; /* for keys written and the CA key read */
    bool force;
    const char *format; /* pem der p12 */
    const char *k8s;    /* print a Kubernetes TLS secret */
    const char *reason;
    bool rekey;
    int warn_days;
    bool server; /* sign: a server certificate */
    const char *out;
    char pwbuf[1024];
    int argc;
    char **argv; /* positional arguments */
};

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ward cert: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(ward cert --help lists the commands)\n");
    return 2;
}

static int opt_rsa(struct opts *p, void *ctx, const char *const *a)
{
    struct cert_opts *o = ctx;
    uint64_t bits;
    if (opts_uint(a[0], 2048, 16384, &bits) < 0)
        return opts_fail(p, "'%s' is not a number from 2048 to 16384", a[0]);
    o->key.type = PKI_RSA;
    o->key.rsa_bits = (int)bits;
    return 0;
}

static int opt_ec(struct opts *p, void *ctx, const char *const *a)
{
    struct cert_opts *o = ctx;
    if (strcasecmp(a[0], "P-256") && strcasecmp(a[0], "P-384"))
        return opts_fail(p, "'%s' (P-256 or P-384)", a[0]);
    o->key.type = strcasecmp(a[0], "P-384") == 0 ? PKI_EC_P384 : PKI_EC_P256;
    return 0;
}

static int opt_ed25519(struct opts *p, void *ctx, const char *const *a)
{
    ((struct cert_opts *)ctx)->key.type = PKI_ED25519;
    return 0;
}

static int opt_dns(struct opts *p, void *ctx, const char *const *a)
{
    struct cert_opts *o = ctx;
    if (o->ndns == MAX_SANS)
        return opts_fail(p, "more than %d", MAX_SANS);
    o->dns[o->ndns++] = a[0];
    return 0;
}

static int opt_ip(struct opts *p, void *ctx, const char *const *a)
{
    struct cert_opts *o = ctx;
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(a[0]);
    if (!ip)
        return opts_fail(p, "'%s' is not an IPv4 or IPv6 address", a[0]);
    ASN1_OCTET_STRING_free(ip);
    if (o->nips == MAX_SANS)
        return opts_fail(p, "more than %d", MAX_SANS);
    o->ips[o->nips++] = a[0];
    return 0;
}

static int opt_format(struct opts *p, void *ctx, const char *const *a)
{
    if (strcmp(a[0], "pem") && strcmp(a[0], "der") && strcmp(a[0], "p12"))
        return opts_fail(p, "'%s' (pem, der or p12)", a[0]);
    ((struct cert_opts *)ctx)->format = a[0];
    return 0;
}

static int opt_reason(struct opts *p, void *ctx, const char *const *a)
{
    if (pki_reason_code(a[0]) < 0)
        return opts_fail(p,
                         "unknown reason '%s' (keyCompromise, superseded, "
                         "cessationOfOperation, affiliationChanged, ...)",
                         a[0]);
    ((struct cert_opts *)ctx)->reason = a[0];
    return 0;
}

#define AT(m)       OPT_AT(struct cert_opts, m)
#define RANGE(a, b) .lo = a, .hi = b
#define FN(f, n)    .call = f, .nargs = n

static const struct opt table[] = {
    {"dir", 0, OPT_STRING, "DIR", AT(dir), .help = "the PKI directory (default ./pki)"},
    {"name", 0, OPT_STRING, "N", AT(name), .help = "init: the CA's name"},
    {"days", 0, OPT_UINT, "D", AT(days), RANGE(1, 36500), .help = "validity in days"},
    {"ec", 0, OPT_CALL, "CURVE", FN(opt_ec, 1), .help = "EC key: P-256 (default) or P-384"},
    {"rsa", 0, OPT_CALL, "BITS", FN(opt_rsa, 1), .help = "RSA key of BITS (2048 to 16384)"},
    {"ed25519", 0, OPT_CALL, NULL, FN(opt_ed25519, 0), .help = "Ed25519 key"},
    {"intermediate", 0, OPT_SET, NULL, AT(intermediate),
     .help = "init: also an issuing intermediate CA"},
    {"dns", 0, OPT_CALL, "D", FN(opt_dns, 1), .help = "server: a DNS name (repeatable)"},
    {"ip", 0, OPT_CALL, "A", FN(opt_ip, 1), .help = "server: an IP address (repeatable)"},
    {"ou", 0, OPT_STRING, "UNIT", AT(ou), .help = "client, sign: organizational unit (role)"},
    {"count", 0, OPT_UINT, "N", AT(count), RANGE(1, 100000),
     .help = "client: N numbered certificates"},
    {"server", 0, OPT_SET, NULL, AT(server), .help = "sign: a server certificate"},
    {"out", 0, OPT_STRING, "FILE", AT(out), .help = "sign: where the certificate goes"},
    {"reason", 0, OPT_CALL, "R", FN(opt_reason, 1),
     .help = "revoke: keyCompromise, superseded, ..."},
    {"rekey", 0, OPT_SET, NULL, AT(rekey), .help = "renew: a new key as well"},
    {"warn-days", 0, OPT_UINT, "D", AT(warn_days), RANGE(0, 36500),
     .help = "check: expiring within D days (default 30)"},
    {"key-password", 0, OPT_STRING, "P", AT(password),
     .help = "(or WARD_KEY_PASSWORD; - asks for it): encrypts new\n"
             "keys as PKCS#8 and opens an encrypted CA key"},
    {"force", 0, OPT_SET, NULL, AT(force), .help = "replace files"},
    {"format", 0, OPT_CALL, "F", FN(opt_format, 1), .help = "pem (default), der or p12"},
    {"k8s-secret", 0, OPT_STRING, "NAME", AT(k8s), .help = "print a kubernetes.io/tls Secret"},
    {"help", 0, OPT_HELP, .help = "this help"},
};

static struct opts cli_opts = {
    .prog = "ward cert",
    .table = table,
    .n = sizeof(table) / sizeof(table[0]),
    .max_pos = (size_t)-1,
    .usage = "usage: ward cert COMMAND [options]   (a PKI lives in --dir DIR, default ./pki)\n"
             "  init [--name N] [--days 3650] [--ec P-256|P-384 | --rsa BITS | --ed25519]\n"
             "       [--intermediate]                 a root CA (and an issuing intermediate)\n"
             "  server NAME [--dns D ...] [--ip A ...] [--days 825]   serverAuth, SANs, chain\n"
             "  client NAME [--ou UNIT] [--days 365] [--count N]      clientAuth; N numbered\n"
             "  sign CSR [--ou ROLE] [--server] [--days D] [--out FILE]  sign a request\n"
             "  revoke NAME|SERIAL [--reason keyCompromise|superseded|...]  and a fresh CRL\n"
             "  crl [--days 30]                       write DIR/crl.pem\n"
             "  renew NAME [--rekey] [--days D]       same identity, new certificate\n"
             "  list                                  everything issued, with status\n"
             "  show FILE                             subject, SANs, usages, validity ...\n"
             "  check [FILE|DIR ...] [--warn-days 30] exit 0 ok, 1 expiring, 2 expired/invalid\n"
             "  dev [DIR]                             CA, localhost server, one client\n"
             "options:\n",
};

/* A password from the terminal or standard input; empty is none. */
static int read_password(const char *prompt, char *buf, size_t cap)
{
    return secret_read(prompt, buf, cap) == 0 && *buf ? 0 : -1;
}

static int parse(int argc, char **argv, struct cert_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->dir = "pki";
    o->key.type = PKI_EC_P256;
    o->format = "pem";
    o->warn_days = 30;
    o->count = 0;
    int rc = opts_parse(&cli_opts, o, argc, argv, 2, &o->argc);
    if (rc)
        return rc;
    o->argv = argv + 2;
    if (!o->password)
        o->password = getenv("WARD_KEY_PASSWORD");
    /* "--key-password -": ask (without echo on a terminal, else the first
     * line of standard input). */
    if (o->password && strcmp(o->password, "-") == 0 &&
        read_password("Key password: ", o->pwbuf, sizeof(o->pwbuf)) == 0)
        o->password = o->pwbuf;
    else if (o->password && strcmp(o->password, "-") == 0)
        return bad("%s", "--key-password -: no password given");
    return 0;
}

/* ---- writing an issued certificate ---- */

static bool host_like(const char *s)
{
    if (!*s || strlen(s) > 253)
        return false;
    for (const char *p = s; *p; p++)
        if (!(*p == '.' || *p == '-' || *p == '*' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return false;
    return true;
}

static void print_b64_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    BIO *b64 = BIO_new(BIO_f_base64()), *out = BIO_new_fp(stdout, BIO_NOCLOSE);
    BIO_set_flags(b64, BIO_FLAGS_BASE64_NO_NL);
    BIO_push(b64, out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        BIO_write(b64, buf, (int)n);
    (void)BIO_flush(b64);
    BIO_free_all(b64);
    fclose(f);
}

static void print_k8s(const char *secret, const char *crt, const char *key, const char *ca)
{
    printf("apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\ntype: kubernetes.io/tls\n"
           "data:\n  tls.crt: ",
           secret);
    print_b64_file(crt);
    printf("\n  tls.key: ");
    print_b64_file(key);
    printf("\n  ca.crt: ");
    print_b64_file(ca);
    printf("\n");
}

/* Writes NAME's key and certificate (with the chain) in the asked format.
 * crt_path/key_path receive where. */
static int write_issued(struct pki_store *s, const struct cert_opts *o, const char *name,
                        X509 *cert, EVP_PKEY *key, char *crt_path, char *key_path, size_t cap,
                        char *err, size_t errlen)
{
    char rel[600];
    X509 *chain[3] = {cert, s->issuer != s->root ? s->issuer : NULL, NULL};
    size_t nchain = chain[1] ? 2 : 1;
    snprintf(rel, sizeof(rel), "private/%s.key", name);
    pki_path(s, rel, key_path, cap);
    if (key && pki_write_key(key_path, key, o->password, o->force, err, errlen) < 0)
        return -1;
    if (strcmp(o->format, "der") == 0) {
        snprintf(rel, sizeof(rel), "certs/%s.der", name);
        return pki_write_der(pki_path(s, rel, crt_path, cap), cert, o->force, err, errlen);
    }
    if (strcmp(o->format, "p12") == 0) {
        snprintf(rel, sizeof(rel), "certs/%s.p12", name);
        if (!key) {
            snprintf(err, errlen, "--format p12 needs the private key (not for `sign`)");
            return -1;
        }
        return pki_write_p12(pki_path(s, rel, crt_path, cap), name, key, cert, &chain[1],
                             nchain - 1, o->password, o->force, err, errlen);
    }
    snprintf(rel, sizeof(rel), "certs/%s.crt", name);
    return pki_write_cert(pki_path(s, rel, crt_path, cap), chain, nchain, o->force, err, errlen);
}

static int issue(struct pki_store *s, const struct cert_opts *o, const char *name,
                 enum pki_profile profile, const char *ou, char *err, size_t errlen)
{
    const char *dns[MAX_SANS + 1];
    size_t ndns = o->ndns;
    memcpy(dns, o->dns, ndns * sizeof(*dns));
    /* The name is a DNS SAN when it looks like a host name (strict clients
     * check SANs only, never the CN: RFC 6125 6.4.4). */
    if (profile == PKI_SERVER && host_like(name)) {
        bool have = false;
        for (size_t i = 0; i < ndns; i++)
            have |= strcasecmp(dns[i], name) == 0;
        if (!have)
            dns[ndns++] = name;
    }
    struct pki_entry *prev = pki_find(s, name);
    if (prev && prev->status == 'V' && !o->force) {
        snprintf(err, errlen, "'%s' is already issued (serial %s): use `renew`, or --force", name,
                 prev->serial);
        return -1;
    }
    struct pki_cert_spec spec = {
        profile, name,    NULL,
        ou,      dns,     ndns,
        o->ips,  o->nips, o->days ? o->days : (profile == PKI_SERVER ? 825 : 365)};
    EVP_PKEY *key = pki_key_new(&o->key, err, errlen);
    X509 *cert = key ? pki_cert_new(&spec, key, s->issuer, s->issuer_key, err, errlen) : NULL;
    char crt[4096], keyp[4096];
    int rc = -1;
    if (cert && write_issued(s, o, name, cert, key, crt, keyp, sizeof(crt), err, errlen) == 0 &&
        pki_record(s, cert, name, ou, profile == PKI_SERVER ? "server" : "client") == 0 &&
        pki_save_index(s, err, errlen) == 0) {
        char serial[64];
        pki_serial_hex(cert, serial, sizeof(serial));
        fprintf(stderr, "%s: %s (serial %s, key %s)\n", name, crt, serial, keyp);
        if (o->k8s) {
            char ca[4096];
            print_k8s(o->k8s, crt, keyp, pki_path(s, "ca.crt", ca, sizeof(ca)));
        }
        rc = 0;
    } else if (cert && !*err) {
        snprintf(err, errlen, "cannot record '%s'", name);
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}

/* ---- commands ---- */

static int open_ca(struct pki_store *s, const struct cert_opts *o, char *err, size_t errlen)
{
    if (pki_open(s, o->dir, false, err, errlen) < 0)
        return -1;
    int rc = pki_load_ca(s, o->password, err, errlen);
    /* An encrypted CA key and a person at the terminal: ask once. */
    if (rc < 0 && !o->password && isatty(STDIN_FILENO) && strstr(err, "password is needed")) {
        char pw[1024];
        if (read_password("CA key password: ", pw, sizeof(pw)) == 0) {
            if (s->issuer != s->root)
                X509_free(s->issuer);
            X509_free(s->root);
            s->root = s->issuer = NULL;
            rc = pki_load_ca(s, pw, err, errlen);
            OPENSSL_cleanse(pw, sizeof(pw));
        }
    }
    return rc;
}

static int make_ca(struct pki_store *s, const struct cert_opts *o, const char *name, char *err,
                   size_t errlen)
{
    char crt[4096], keyp[4096];
    struct pki_cert_spec root = {
        PKI_ROOT_CA, name, "ward", NULL, NULL, 0, NULL, 0, o->days ? o->days : 3650};
    EVP_PKEY *k = pki_key_new(&o->key, err, errlen);
    X509 *c = k ? pki_cert_new(&root, k, NULL, NULL, err, errlen) : NULL;
    int rc = -1;
    if (!c ||
        pki_write_key(pki_path(s, "private/ca.key", keyp, sizeof(keyp)), k, o->password, o->force,
                      err, errlen) < 0 ||
        pki_write_cert(pki_path(s, "ca.crt", crt, sizeof(crt)), &c, 1, o->force, err, errlen) < 0)
        goto out;
    if (pki_record(s, c, name, NULL, "root") < 0) {
        snprintf(err, errlen, "out of memory recording '%s' in the index", name);
        goto out;
    }
    s->root = s->issuer = X509_dup(c);
    s->issuer_key = k;
    EVP_PKEY_up_ref(k);
    fprintf(stderr, "root CA '%s': %s\n", name, crt);
    if (o->intermediate) {
        char iname[300];
        snprintf(iname, sizeof(iname), "%s Issuing CA", name);
        struct pki_cert_spec is = {PKI_INTERMEDIATE_CA,     iname, "ward", NULL, NULL, 0, NULL, 0,
                                   o->days ? o->days : 3650};
        EVP_PKEY *ik = pki_key_new(&o->key, err, errlen);
        X509 *ic = ik ? pki_cert_new(&is, ik, c, k, err, errlen) : NULL;
        bool ok = ic &&
                  pki_write_key(pki_path(s, "private/intermediate.key", keyp, sizeof(keyp)), ik,
                                o->password, o->force, err, errlen) == 0 &&
                  pki_write_cert(pki_path(s, "intermediate.crt", crt, sizeof(crt)), &ic, 1,
                                 o->force, err, errlen) == 0;
        if (ok && pki_record(s, ic, iname, NULL, "intermediate") < 0) {
            snprintf(err, errlen, "out of memory recording '%s' in the index", iname);
            ok = false;
        }
        if (ok) {
            s->issuer = ic;
            EVP_PKEY_free(s->issuer_key);
            s->issuer_key = ik;
            fprintf(stderr, "intermediate CA '%s': %s\n", iname, crt);
        } else {
            X509_free(ic);
            EVP_PKEY_free(ik);
            goto out;
        }
    }
    rc = pki_save_index(s, err, errlen) == 0 && pki_write_current_crl(s, 30, err, errlen) == 0 ? 0
                                                                                               : -1;
out:
    X509_free(c);
    EVP_PKEY_free(k);
    return rc;
}

static int cmd_init(struct cert_opts *o, char *err, size_t errlen)
{
    struct pki_store s;
    char path[4096];
    snprintf(path, sizeof(path), "%s/ca.crt", o->dir);
    if (access(path, F_OK) == 0 && !o->force) {
        snprintf(err, errlen, "%s already exists: this directory has a CA (--force replaces it)",
                 path);
        return -1;
    }
    if (pki_open(&s, o->dir, true, err, errlen) < 0)
        return -1;
    if (o->force)
        s.n = 0; /* a new CA starts a new index */
    int rc = make_ca(&s, o, o->name ? o->name : "ward CA", err, errlen);
    pki_close(&s);
    return rc;
}

static int cmd_issue(struct cert_opts *o, enum pki_profile profile, char *err, size_t errlen)
{
    if (o->argc != 1)
        return bad("%s", profile == PKI_SERVER ? "usage: ward cert server NAME [options]"
                                               : "usage: ward cert client NAME [options]");
    struct pki_store s;
    if (open_ca(&s, o, err, errlen) < 0) {
        pki_close(&s);
        return -1;
    }
    int rc = 0;
    int n = o->count ? o->count : 1;
    for (int i = 1; i <= n && rc == 0; i++) {
        char name[300];
        if (o->count)
            snprintf(name, sizeof(name), "%s-%04d", o->argv[0], i);
        else
            snprintf(name, sizeof(name), "%s", o->argv[0]);
        rc = issue(&s, o, name, profile, o->ou, err, errlen);
    }
    pki_close(&s);
    return rc;
}

static int cmd_sign(struct cert_opts *o, char *err, size_t errlen)
{
    if (o->argc != 1)
        return bad("%s", "usage: ward cert sign CSR [--ou ROLE] [--server] [--out FILE]");
    char why[512];
    X509_REQ *req = pki_read_req(o->argv[0], why, sizeof(why));
    if (!req) {
        snprintf(err, errlen, "%s: %s", o->argv[0], why);
        return -1;
    }
    int rc = -1;
    struct pki_csr_subject sub;
    struct pki_store s;
    if (pki_csr_check(req, o->ou, &sub, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s: %s", o->argv[0], why);
    } else if (open_ca(&s, o, err, errlen) == 0) {
        const char *cn = sub.cn, *ou = sub.ou;
        struct pki_cert_spec spec = {o->server ? PKI_SERVER : PKI_CLIENT,
                                     cn,
                                     NULL,
                                     *ou ? ou : NULL,
                                     o->dns,
                                     o->ndns,
                                     o->ips,
                                     o->nips,
                                     o->days ? o->days : 365};
        X509 *cert = pki_cert_from_req(req, &spec, s.issuer, s.issuer_key, why, sizeof(why));
        char crt[4096], keyp[4096];
        if (!cert)
            snprintf(err, errlen, "%s: %s", o->argv[0], why);
        else if ((o->out ? pki_write_cert(o->out, &cert, 1, o->force, err, errlen)
                         : write_issued(&s, o, cn, cert, NULL, crt, keyp, sizeof(crt), err,
                                        errlen)) == 0 &&
                 pki_record(&s, cert, cn, ou, o->server ? "server" : "client") == 0 &&
                 pki_save_index(&s, err, errlen) == 0) {
            fprintf(stderr, "%s: signed as '%s'%s%s\n", o->argv[0], cn, *ou ? ", role " : "", ou);
            if (sub.dropped)
                fprintf(stderr, "%s: %u other subject field(s) not copied (only CN and OU are)\n",
                        o->argv[0], sub.dropped);
            rc = 0;
        }
        X509_free(cert);
        pki_close(&s);
    } else {
        pki_close(&s);
    }
    X509_REQ_free(req);
    return rc;
}

static int cmd_revoke(struct cert_opts *o, char *err, size_t errlen)
{
    if (o->argc != 1)
        return bad("%s", "usage: ward cert revoke NAME|SERIAL [--reason REASON]");
    struct pki_store s;
    int rc = -1;
    if (open_ca(&s, o, err, errlen) == 0) {
        struct pki_entry *e = pki_find(&s, o->argv[0]);
        if (!e)
            snprintf(err, errlen, "%s/index.txt: nothing issued as '%s'", o->dir, o->argv[0]);
        else if (strcmp(e->kind, "root") == 0)
            snprintf(err, errlen, "'%s' is the root CA: it cannot revoke itself", e->name);
        else if (e->status == 'R')
            snprintf(err, errlen, "'%s' (serial %s) is already revoked", e->name, e->serial);
        else {
            struct pki_entry saved = *e;
            e->status = 'R';
            e->revoked_at = (long)time(NULL);
            e->reason = o->reason ? pki_reason_code(o->reason) : -1;
            /* The CRL first: if it cannot be written, the index stays. */
            if (pki_write_current_crl(&s, 30, err, errlen) == 0 &&
                pki_save_index(&s, err, errlen) == 0) {
                fprintf(stderr, "revoked '%s' (serial %s); CRL: %s/crl.pem\n", e->name, e->serial,
                        o->dir);
                rc = 0;
            } else {
                *e = saved;
            }
        }
    }
    pki_close(&s);
    return rc;
}

static int cmd_crl(struct cert_opts *o, char *err, size_t errlen)
{
    struct pki_store s;
    int rc = -1;
    if (open_ca(&s, o, err, errlen) == 0 &&
        pki_write_current_crl(&s, o->days ? o->days : 30, err, errlen) == 0) {
        fprintf(stderr, "%s/crl.pem written\n", o->dir);
        rc = 0;
    }
    pki_close(&s);
    return rc;
}

static int cmd_renew(struct cert_opts *o, char *err, size_t errlen)
{
    if (o->argc != 1)
        return bad("%s", "usage: ward cert renew NAME [--rekey] [--days D]");
    struct pki_store s;
    int rc = -1;
    char path[4096], rel[600], why[512];
    if (open_ca(&s, o, err, errlen) < 0)
        goto out;
    struct pki_entry *e = pki_find(&s, o->argv[0]);
    if (!e || e->status != 'V' || (strcmp(e->kind, "server") && strcmp(e->kind, "client"))) {
        snprintf(err, errlen, "nothing valid issued as '%s' to renew", o->argv[0]);
        goto out;
    }
    snprintf(rel, sizeof(rel), "certs/%s.crt", e->name);
    X509 *old = pki_read_cert(pki_path(&s, rel, path, sizeof(path)), why, sizeof(why));
    if (!old) {
        snprintf(err, errlen, "%s: %s", path, why);
        goto out;
    }
    snprintf(rel, sizeof(rel), "private/%s.key", e->name);
    EVP_PKEY *key = o->rekey ? pki_key_new(&o->key, err, errlen)
                             : pki_read_key(pki_path(&s, rel, path, sizeof(path)), o->password, why,
                                            sizeof(why));
    if (!key && !o->rekey)
        snprintf(err, errlen, "%s: %s", path, why);
    /* Same subject and SANs: copy them from the old certificate. */
    X509 *cert = key ? X509_new() : NULL;
    if (cert) {
        X509_free(cert);
        char role[128], name[256];
        snprintf(role, sizeof(role), "%s", strcmp(e->role, "-") ? e->role : "");
        snprintf(name, sizeof(name), "%s", e->name);
        struct pki_cert_spec spec = {strcmp(e->kind, "server") == 0 ? PKI_SERVER : PKI_CLIENT,
                                     name,
                                     NULL,
                                     *role ? role : NULL,
                                     NULL,
                                     0,
                                     NULL,
                                     0,
                                     o->days ? o->days : (strcmp(e->kind, "server") ? 365 : 825)};
        cert = pki_cert_new(&spec, key, s.issuer, s.issuer_key, err, errlen);
        if (cert) { /* carry the SAN extension over unchanged */
            int i = X509_get_ext_by_NID(old, NID_subject_alt_name, -1);
            if (i >= 0)
                X509_add_ext(cert, X509_get_ext(old, i), -1);
            const EVP_MD *md = EVP_PKEY_is_a(s.issuer_key, "ED25519") ? NULL : EVP_sha256();
            X509_sign(cert, s.issuer_key, md);
        }
        struct cert_opts forced = *o;
        forced.force = true;
        char crt[4096], keyp[4096];
        if (cert && write_issued(&s, &forced, name, cert, o->rekey ? key : NULL, crt, keyp,
                                 sizeof(crt), err, errlen) == 0) {
            e->status = 'R'; /* the old one is superseded */
            e->revoked_at = (long)time(NULL);
            e->reason = pki_reason_code("superseded");
            if (pki_record(&s, cert, name, role,
                           spec.profile == PKI_SERVER ? "server" : "client") == 0 &&
                pki_write_current_crl(&s, 30, err, errlen) == 0 &&
                pki_save_index(&s, err, errlen) == 0) {
                fprintf(stderr, "renewed '%s': %s%s\n", name, crt, o->rekey ? " (new key)" : "");
                rc = 0;
            }
        }
        X509_free(cert);
    }
    EVP_PKEY_free(key);
    X509_free(old);
out:
    pki_close(&s);
    return rc;
}

static int cmd_list(struct cert_opts *o, char *err, size_t errlen)
{
    struct pki_store s;
    if (pki_open(&s, o->dir, false, err, errlen) < 0) {
        pki_close(&s);
        return -1;
    }
    printf("%-32s %-12s %-12s %-34s %-21s %6s %s\n", "NAME", "KIND", "ROLE", "SERIAL", "NOT AFTER",
           "DAYS", "STATUS");
    time_t now = time(NULL);
    for (size_t i = 0; i < s.n; i++) {
        const struct pki_entry *e = &s.e[i];
        struct tm tm = {0};
        long days = 0;
        if (strptime(e->not_after, "%Y-%m-%dT%H:%M:%SZ", &tm))
            days = (long)((timegm(&tm) - now) / 86400);
        const char *status = e->status == 'R' ? "revoked" : days < 0 ? "expired" : "valid";
        printf("%-32s %-12s %-12s %-34s %-21s %6ld %s%s%s\n", e->name, e->kind, e->role, e->serial,
               e->not_after, days, status, e->status == 'R' && e->reason >= 0 ? " " : "",
               e->status == 'R' ? pki_reason_name(e->reason) : "");
    }
    pki_close(&s);
    return 0;
}

static void print_ext(X509 *x, int nid, const char *label)
{
    int i = X509_get_ext_by_NID(x, nid, -1);
    if (i < 0)
        return;
    BIO *b = BIO_new_fp(stdout, BIO_NOCLOSE);
    printf("%-20s", label);
    X509V3_EXT_print(b, X509_get_ext(x, i), 0, 0);
    printf("\n");
    BIO_free(b);
}

static int cmd_show(struct cert_opts *o, char *err, size_t errlen)
{
    if (o->argc != 1)
        return bad("%s", "usage: ward cert show FILE");
    char why[512], line[512], serial[64], a[64], b[64], fp[200];
    X509 *x = pki_read_cert(o->argv[0], why, sizeof(why));
    if (!x) {
        snprintf(err, errlen, "%s: %s", o->argv[0], why);
        return -1;
    }
    X509_NAME_oneline(X509_get_subject_name(x), line, sizeof(line));
    printf("%-20s%s\n", "subject", line);
    X509_NAME_oneline(X509_get_issuer_name(x), line, sizeof(line));
    printf("%-20s%s\n", "issuer", line);
    pki_serial_hex(x, serial, sizeof(serial));
    printf("%-20s%s\n", "serial", serial);
    pki_time_iso(X509_get0_notBefore(x), a, sizeof(a));
    pki_time_iso(X509_get0_notAfter(x), b, sizeof(b));
    printf("%-20s%s .. %s (%ld days left)\n", "validity", a, b, pki_days_left(x));
    printf("%-20s%s\n", "key", EVP_PKEY_get0_type_name(X509_get0_pubkey(x)));
    print_ext(x, NID_subject_alt_name, "SANs");
    print_ext(x, NID_basic_constraints, "basic constraints");
    print_ext(x, NID_key_usage, "key usage");
    print_ext(x, NID_ext_key_usage, "extended key usage");
    pki_fingerprint(x, fp, sizeof(fp));
    printf("%-20s%s\n", "SHA-256", fp);
    pki_pubkey_fingerprint(x, fp, sizeof(fp));
    printf("%-20s%s\n", "public key SHA-256", fp);
    /* Does it chain to this PKI's CA? */
    char ca[4096];
    snprintf(ca, sizeof(ca), "%s/ca.crt", o->dir);
    if (access(ca, F_OK) == 0) {
        X509 *chain[8];
        size_t n = pki_read_certs(o->argv[0], chain, 8, why, sizeof(why));
        char inter[4096];
        snprintf(inter, sizeof(inter), "%s/intermediate.crt", o->dir);
        if (n < 8 && access(inter, F_OK) == 0)
            chain[n++] = pki_read_cert(inter, why, sizeof(why));
        int v = pki_verify(x, n > 1 ? chain + 1 : NULL, n > 1 ? n - 1 : 0, ca, why, sizeof(why));
        printf("%-20s%s%s\n", "chains to", v == 0 ? ca : "NOT this PKI's CA: ", v == 0 ? "" : why);
        for (size_t i = 0; i < n; i++)
            X509_free(chain[i]);
    }
    X509_free(x);
    return 0;
}

/* One line per certificate: 0 fine, 1 expiring within warn days, 2 expired,
 * not yet valid or unreadable. */
static int check_file(const char *path, int warn_days)
{
    char why[512], cn[256];
    X509 *certs[16];
    size_t n = pki_read_certs(path, certs, 16, why, sizeof(why));
    if (!n) {
        printf("INVALID  %s: %s\n", path, why);
        return 2;
    }
    int worst = 0;
    /* The first certificate is the one the file is about; a chain's CAs are
     * checked through their own files. */
    for (size_t i = 1; i < n; i++)
        X509_free(certs[i]);
    n = 1;
    for (size_t i = 0; i < n; i++) {
        long days = pki_days_left(certs[i]);
        pki_subject_field(certs[i], NID_commonName, cn, sizeof(cn));
        int st = days < 0 || X509_cmp_current_time(X509_get0_notBefore(certs[i])) > 0 ? 2
                 : days < warn_days                                                   ? 1
                                                                                      : 0;
        static const char *const label[] = {"OK      ", "EXPIRING", "EXPIRED "};
        printf("%s %s: %s: %ld days left\n", st == 2 && days >= 0 ? "NOTYET  " : label[st], path,
               cn, days);
        if (st > worst)
            worst = st;
        X509_free(certs[i]);
    }
    return worst;
}

/* A CRL past its next update makes strict peers refuse everyone. */
static int check_crl(const char *path, int warn_days)
{
    FILE *f = fopen(path, "rb");
    X509_CRL *crl = f ? PEM_read_X509_CRL(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    if (!crl) {
        printf("INVALID  %s: not a readable CRL\n", path);
        return 2;
    }
    int days = 0, secs = 0;
    const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
    ASN1_TIME_diff(&days, &secs, NULL, next);
    int st = !next ? 0 : (days < 0 || secs < 0) ? 2 : days < warn_days ? 1 : 0;
    static const char *const label[] = {"OK      ", "EXPIRING", "EXPIRED "};
    printf("%s %s: CRL next update in %d days (run `ward cert crl` to refresh)\n", label[st], path,
           days);
    X509_CRL_free(crl);
    return st;
}

static int check_path(const char *path, int warn_days)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        printf("INVALID  %s: %s\n", path, strerror(errno));
        return 2;
    }
    if (!S_ISDIR(st.st_mode))
        return check_file(path, warn_days);
    static const char *const sub[] = {"", "/certs"};
    int worst = 0;
    for (size_t k = 0; k < 2; k++) {
        char d[4096];
        snprintf(d, sizeof(d), "%s%s", path, sub[k]);
        DIR *dir = opendir(d);
        struct dirent *e;
        while (dir && (e = readdir(dir))) {
            size_t l = strlen(e->d_name);
            if (l < 5 || (strcmp(e->d_name + l - 4, ".crt") && strcmp(e->d_name + l - 4, ".pem")))
                continue;
            char f[4400];
            snprintf(f, sizeof(f), "%s/%s", d, e->d_name);
            int r = strcmp(e->d_name, "crl.pem") == 0 ? check_crl(f, 7) : check_file(f, warn_days);
            worst = r > worst ? r : worst;
        }
        if (dir)
            closedir(dir);
    }
    return worst;
}

static int run_check(struct cert_opts *o)
{
    int worst = 0;
    if (o->argc == 0)
        return check_path(o->dir, o->warn_days);
    for (int i = 0; i < o->argc; i++) {
        int r = check_path(o->argv[i], o->warn_days);
        worst = r > worst ? r : worst;
    }
    return worst;
}

/* Everything a developer needs: DIR/ca.crt, server.crt (chain) and
 * server.key for localhost, 127.0.0.1 and ::1, client.crt and client.key. */
static int cmd_dev(struct cert_opts *o, char *err, size_t errlen)
{
    if (o->argc > 1)
        return bad("%s", "usage: ward cert dev [DIR]");
    if (o->argc == 1)
        o->dir = o->argv[0];
    char path[4096];
    snprintf(path, sizeof(path), "%s/ca.crt", o->dir);
    if (access(path, F_OK) == 0 && !o->force) {
        snprintf(err, errlen,
                 "%s already exists: a development PKI is there (--force "
                 "replaces it)",
                 path);
        return -1;
    }
    if (cmd_init(o, err, errlen) < 0)
        return -1;
    struct pki_store s;
    if (open_ca(&s, o, err, errlen) < 0) {
        pki_close(&s);
        return -1;
    }
    static const char *const dns[] = {"localhost"};
    static const char *const ips[] = {"127.0.0.1", "::1"};
    struct cert_opts so = *o;
    so.ndns = 1;
    so.dns[0] = dns[0];
    so.nips = 2;
    so.ips[0] = ips[0];
    so.ips[1] = ips[1];
    so.force = true;
    int rc = issue(&s, &so, "localhost", PKI_SERVER, NULL, err, errlen);
    so.ndns = so.nips = 0;
    if (rc == 0)
        rc = issue(&s, &so, "dev-client", PKI_CLIENT, "Devices", err, errlen);
    char a[4096], b[4096];
    static const struct {
        const char *from, *to;
        mode_t mode;
    } copies[] = {{"certs/localhost.crt", "server.crt", 0644},
                  {"private/localhost.key", "server.key", 0600},
                  {"certs/dev-client.crt", "client.crt", 0644},
                  {"private/dev-client.key", "client.key", 0600}};
    for (size_t i = 0; rc == 0 && i < sizeof(copies) / sizeof(copies[0]); i++)
        rc = pki_copy_file(pki_path(&s, copies[i].from, a, sizeof(a)),
                           pki_path(&s, copies[i].to, b, sizeof(b)), copies[i].mode, err, errlen);
    if (rc == 0)
        fprintf(stderr,
                "development PKI in %s: ca.crt, server.crt/.key (localhost, 127.0.0.1, "
                "::1), client.crt/.key\n",
                o->dir);
    pki_close(&s);
    return rc;
}

typedef int (*cert_fn)(struct cert_opts *o, char *err, size_t errlen);

static int run_server(struct cert_opts *o, char *err, size_t errlen)
{
    return cmd_issue(o, PKI_SERVER, err, errlen);
}

static int run_client(struct cert_opts *o, char *err, size_t errlen)
{
    return cmd_issue(o, PKI_CLIENT, err, errlen);
}

static const struct {
    const char *name;
    cert_fn fn;
} subcommands[] = {
    {"init", cmd_init},     {"server", run_server}, {"client", run_client}, {"sign", cmd_sign},
    {"revoke", cmd_revoke}, {"crl", cmd_crl},       {"renew", cmd_renew},   {"list", cmd_list},
    {"show", cmd_show},     {"dev", cmd_dev},
};

int cmd_cert(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        opts_help(&cli_opts, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--help-markdown") == 0) {
        opts_markdown(&cli_opts, stdout);
        return 0;
    }
    if (strcmp(argv[1], "--help-man") == 0) {
        opts_man(&cli_opts, stdout);
        return 0;
    }
    struct cert_opts o;
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (strcmp(argv[1], "check") == 0)
        return run_check(&o);
    for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++) {
        if (strcmp(argv[1], subcommands[i].name) != 0)
            continue;
        char err[1024] = "";
        rc = subcommands[i].fn(&o, err, sizeof(err));
        if (rc == 2)
            return 2;
        if (rc < 0) {
            fprintf(stderr, "ward cert %s: %s\n", argv[1], err[0] ? err : "failed");
            return 1;
        }
        return 0;
    }
    return bad("unknown command '%s'", argv[1]);
}
