#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include "pki/x509.h"
#include "test.h"

static char dir[] = "/tmp/ward-x509-XXXXXX";
static char err[512];

static const char *path(const char *name)
{
    static char p[4][256];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
    return p[i];
}

static EVP_PKEY *key(enum pki_key_type t)
{
    struct pki_key_spec s = {t, 2048};
    EVP_PKEY *k = pki_key_new(&s, err, sizeof(err));
    if (!k)
        TEST_FAIL_("key: %s", err);
    return k;
}

static bool has_eku(X509 *x, int nid)
{
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
    bool found = false;
    for (int i = 0; eku && i < sk_ASN1_OBJECT_num(eku); i++)
        found |= OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i)) == nid;
    EXTENDED_KEY_USAGE_free(eku);
    return found;
}

TEST(chain_with_profiles_verifies)
{
    EVP_PKEY *rk = key(PKI_EC_P256), *ik = key(PKI_EC_P384), *sk = key(PKI_RSA);
    struct pki_cert_spec rs = {PKI_ROOT_CA, "Root", "ward", NULL, NULL, 0, NULL, 0, 30};
    X509 *root = pki_cert_new(&rs, rk, NULL, NULL, err, sizeof(err));
    ASSERT(root);
    struct pki_cert_spec is = {PKI_INTERMEDIATE_CA, "Inter", NULL, NULL, NULL, 0, NULL, 0, 30};
    X509 *inter = pki_cert_new(&is, ik, root, rk, err, sizeof(err));
    ASSERT(inter);
    const char *dns[] = {"broker.test"}, *ips[] = {"10.1.2.3", "::1"};
    struct pki_cert_spec ss = {PKI_SERVER, "broker.test", NULL, "Services", dns, 1, ips, 2, 10};
    X509 *srv = pki_cert_new(&ss, sk, inter, ik, err, sizeof(err));
    ASSERT(srv);
    ASSERT(X509_check_ca(root) && X509_check_ca(inter) && !X509_check_ca(srv));
    ASSERT(has_eku(srv, NID_server_auth) && !has_eku(srv, NID_client_auth));
    ASSERT_EQ(X509_check_host(srv, "broker.test", 0, 0, NULL), 1);
    ASSERT_EQ(X509_check_ip_asc(srv, "10.1.2.3", 0), 1);
    ASSERT_EQ(X509_check_ip_asc(srv, "::1", 0), 1);
    ASSERT_EQ(X509_check_host(srv, "other.test", 0, 0, NULL), 0);
    char ou[64];
    pki_subject_field(srv, NID_organizationalUnitName, ou, sizeof(ou));
    ASSERT_STR_EQ(ou, "Services");
    ASSERT(pki_days_left(srv) >= 9 && pki_days_left(srv) <= 10);
    /* Serials: random, positive, different. */
    char s1[64], s2[64];
    pki_serial_hex(root, s1, sizeof(s1));
    pki_serial_hex(srv, s2, sizeof(s2));
    ASSERT(strcmp(s1, s2) != 0 && strlen(s1) == 32);
    X509 *chain[] = {root};
    ASSERT_EQ(pki_write_cert(path("root.pem"), chain, 1, false, err, sizeof(err)), 0);
    ASSERT_EQ(pki_verify(srv, &inter, 1, path("root.pem"), err, sizeof(err)), 0);
    /* Without the intermediate it does not chain. */
    ASSERT_EQ(pki_verify(srv, NULL, 0, path("root.pem"), err, sizeof(err)), -1);
    ASSERT(strstr(err, "issuer"));
    X509_free(root);
    X509_free(inter);
    X509_free(srv);
    EVP_PKEY_free(rk);
    EVP_PKEY_free(ik);
    EVP_PKEY_free(sk);
}

TEST(keys_written_private_and_encrypted)
{
    EVP_PKEY *k = key(PKI_ED25519);
    ASSERT_EQ(pki_write_key(path("k.pem"), k, "pw", false, err, sizeof(err)), 0);
    struct stat st;
    ASSERT_EQ(stat(path("k.pem"), &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    /* No overwrite without force. */
    ASSERT_EQ(pki_write_key(path("k.pem"), k, NULL, false, err, sizeof(err)), -1);
    ASSERT(strstr(err, "--force"));
    EVP_PKEY *back = pki_read_key(path("k.pem"), "pw", err, sizeof(err));
    ASSERT(back);
    ASSERT_EQ(EVP_PKEY_eq(k, back), 1);
    EVP_PKEY_free(back);
    ASSERT(pki_read_key(path("k.pem"), "nope", err, sizeof(err)) == NULL);
    ASSERT(strstr(err, "wrong password"));
    ASSERT(pki_read_key(path("k.pem"), NULL, err, sizeof(err)) == NULL);
    ASSERT(strstr(err, "password is needed"));
    ASSERT_EQ(pki_write_key(path("k.pem"), k, NULL, true, err, sizeof(err)), 0);
    back = pki_read_key(path("k.pem"), NULL, err, sizeof(err));
    ASSERT(back);
    EVP_PKEY_free(back);
    ASSERT(pki_read_key(path("missing.pem"), NULL, err, sizeof(err)) == NULL);
    ASSERT(strstr(err, "No such file"));
    EVP_PKEY_free(k);
}

TEST(crl_lists_revoked)
{
    EVP_PKEY *k = key(PKI_EC_P256);
    struct pki_cert_spec rs = {PKI_ROOT_CA, "Root", NULL, NULL, NULL, 0, NULL, 0, 30};
    X509 *ca = pki_cert_new(&rs, k, NULL, NULL, err, sizeof(err));
    struct pki_cert_spec cs = {PKI_CLIENT, "dev", NULL, "Devices", NULL, 0, NULL, 0, 30};
    X509 *c = pki_cert_new(&cs, k, ca, k, err, sizeof(err));
    char serial[64];
    pki_serial_hex(c, serial, sizeof(serial));
    struct pki_revoked r = {serial, time(NULL), pki_reason_code("keyCompromise")};
    X509_CRL *crl = pki_crl_new(ca, k, &r, 1, 7, err, sizeof(err));
    ASSERT(crl);
    ASSERT_EQ(X509_CRL_verify(crl, k), 1);
    X509_REVOKED *found = NULL;
    ASSERT_EQ(X509_CRL_get0_by_cert(crl, &found, c), 1);
    ASSERT_EQ(pki_write_crl(path("crl.pem"), crl, err, sizeof(err)), 0);
    /* An empty CRL is fine too. */
    X509_CRL *empty = pki_crl_new(ca, k, NULL, 0, 7, err, sizeof(err));
    ASSERT(empty);
    ASSERT_EQ(X509_CRL_get0_by_cert(empty, &found, c), 0);
    ASSERT_EQ(pki_reason_code("nonsense"), -1);
    ASSERT_STR_EQ(pki_reason_name(1), "keyCompromise");
    X509_CRL_free(empty);
    X509_CRL_free(crl);
    X509_free(c);
    X509_free(ca);
    EVP_PKEY_free(k);
}

TEST(reading_bad_files)
{
    FILE *f = fopen(path("junk.pem"), "w");
    fputs("hello\n", f);
    fclose(f);
    ASSERT(pki_read_cert(path("junk.pem"), err, sizeof(err)) == NULL);
    ASSERT(strstr(err, "no certificate found"));
    X509 *certs[2];
    ASSERT_EQ(pki_read_certs(path("junk.pem"), certs, 2, err, sizeof(err)), 0);
    ASSERT(pki_read_req(path("junk.pem"), err, sizeof(err)) == NULL);
    ASSERT(pki_read_key(path("junk.pem"), NULL, err, sizeof(err)) == NULL);
    ASSERT(strstr(err, "no private key found"));
    struct pki_key_spec weak = {PKI_RSA, 1024};
    ASSERT(pki_key_new(&weak, err, sizeof(err)) == NULL);
    ASSERT(strstr(err, "2048"));
}

TEST(fingerprints_and_formats)
{
    EVP_PKEY *k = key(PKI_EC_P256);
    struct pki_cert_spec rs = {PKI_ROOT_CA, "R", NULL, NULL, NULL, 0, NULL, 0, 1};
    X509 *c = pki_cert_new(&rs, k, NULL, NULL, err, sizeof(err));
    char fp[200], pfp[200];
    pki_fingerprint(c, fp, sizeof(fp));
    pki_pubkey_fingerprint(c, pfp, sizeof(pfp));
    ASSERT_EQ(strlen(fp), 32 * 3 - 1);
    ASSERT(strcmp(fp, pfp) != 0);
    ASSERT_EQ(pki_write_der(path("c.der"), c, false, err, sizeof(err)), 0);
    X509 *back = pki_read_cert(path("c.der"), err, sizeof(err));
    ASSERT(back && X509_cmp(back, c) == 0);
    X509_free(back);
    ASSERT_EQ(pki_write_p12(path("c.p12"), "r", k, c, NULL, 0, "pw", false, err, sizeof(err)), 0);
    X509_free(c);
    EVP_PKEY_free(k);
}

static void put(const char *p, const char *text)
{
    FILE *f = fopen(p, "w");
    ASSERT(f);
    fputs(text, f);
    fclose(f);
}

static bool holds(const char *p, const char *text)
{
    char buf[256] = "";
    FILE *f = fopen(p, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strcmp(buf, text) == 0;
}

TEST(writers_refuse_symlinks)
{
    EVP_PKEY *k = key(PKI_EC_P256);
    struct pki_cert_spec rs = {PKI_ROOT_CA, "R", NULL, NULL, NULL, 0, NULL, 0, 1};
    X509 *c = pki_cert_new(&rs, k, NULL, NULL, err, sizeof(err));
    put(path("victim"), "keep me");
    ASSERT_EQ(symlink(path("victim"), path("link.key")), 0);
    /* Without and with --force: never through the link. */
    for (int force = 0; force < 2; force++) {
        ASSERT_EQ(pki_write_key(path("link.key"), k, NULL, force, err, sizeof(err)), -1);
        ASSERT(strstr(err, path("link.key")) && strstr(err, "symbolic link"));
        ASSERT_EQ(pki_write_cert(path("link.key"), &c, 1, force, err, sizeof(err)), -1);
        ASSERT(strstr(err, "symbolic link"));
        ASSERT_EQ(pki_write_der(path("link.key"), c, force, err, sizeof(err)), -1);
        ASSERT_EQ(
            pki_write_p12(path("link.key"), "r", k, c, NULL, 0, "pw", force, err, sizeof(err)), -1);
    }
    put(path("src.key"), "key bytes");
    ASSERT_EQ(pki_copy_file(path("src.key"), path("link.key"), 0600, err, sizeof(err)), -1);
    ASSERT(strstr(err, path("link.key")) && strstr(err, "symbolic link"));
    ASSERT(holds(path("victim"), "keep me"));
    struct stat st;
    ASSERT_EQ(lstat(path("link.key"), &st), 0);
    ASSERT(S_ISLNK(st.st_mode));
    /* Nor read from one. */
    ASSERT_EQ(pki_copy_file(path("link.key"), path("copy"), 0600, err, sizeof(err)), -1);
    ASSERT(strstr(err, "link.key"));
    X509_free(c);
    EVP_PKEY_free(k);
}

TEST(files_get_their_mode_from_creation)
{
    /* With no umask at all, a key is still 0600: the mode is given to
     * open(), not applied after the key is in the file. */
    mode_t old = umask(0);
    EVP_PKEY *k = key(PKI_EC_P256);
    struct stat st;
    ASSERT_EQ(pki_write_key(path("m.key"), k, NULL, false, err, sizeof(err)), 0);
    ASSERT_EQ(stat(path("m.key"), &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    /* Copying over a 0644 file replaces it with a 0600 one. */
    put(path("old.key"), "old");
    ASSERT_EQ(chmod(path("old.key"), 0644), 0);
    ASSERT_EQ(pki_copy_file(path("m.key"), path("old.key"), 0600, err, sizeof(err)), 0);
    ASSERT_EQ(stat(path("old.key"), &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    EVP_PKEY *back = pki_read_key(path("old.key"), NULL, err, sizeof(err));
    ASSERT(back && EVP_PKEY_eq(back, k) == 1);
    EVP_PKEY_free(back);
    ASSERT_EQ(pki_copy_file(path("nothing"), path("x.key"), 0600, err, sizeof(err)), -1);
    ASSERT(strstr(err, "nothing") && strstr(err, "No such file"));
    umask(old);
    EVP_PKEY_free(k);
}

TEST(read_key_refuses_foreign_or_writable)
{
    EVP_PKEY *k = key(PKI_EC_P256);
    ASSERT_EQ(pki_write_key(path("o.key"), k, NULL, false, err, sizeof(err)), 0);
    static const mode_t bad_modes[] = {0666, 0620, 0602};
    for (size_t i = 0; i < sizeof(bad_modes) / sizeof(bad_modes[0]); i++) {
        ASSERT_EQ(chmod(path("o.key"), bad_modes[i]), 0);
        ASSERT(pki_read_key(path("o.key"), NULL, err, sizeof(err)) == NULL);
        ASSERT(strstr(err, "writable by group or others") && strstr(err, "chmod go-w"));
    }
    ASSERT_EQ(chmod(path("o.key"), 0640), 0); /* group-readable is a choice (ssl-cert) */
    EVP_PKEY *back = pki_read_key(path("o.key"), NULL, err, sizeof(err));
    ASSERT(back);
    EVP_PKEY_free(back);
    if (geteuid() == 0) { /* `make test` runs as root: a key of nobody's */
        ASSERT_EQ(chown(path("o.key"), 65534, 65534), 0);
        ASSERT(pki_read_key(path("o.key"), NULL, err, sizeof(err)) == NULL);
        ASSERT(strstr(err, "owned by uid 65534"));
    } else {
        printf("read_key_refuses_foreign_or_writable: not root, foreign owner not tested\n");
    }
    EVP_PKEY_free(k);
}

int main(void)
{
    ASSERT(mkdtemp(dir));
    RUN(chain_with_profiles_verifies);
    RUN(keys_written_private_and_encrypted);
    RUN(crl_lists_revoked);
    RUN(reading_bad_files);
    RUN(fingerprints_and_formats);
    RUN(writers_refuse_symlinks);
    RUN(files_get_their_mode_from_creation);
    RUN(read_key_refuses_foreign_or_writable);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    TEST_DONE();
}
