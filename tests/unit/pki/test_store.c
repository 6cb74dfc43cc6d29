#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pki/store.h"
#include "test.h"

static char dir[] = "/tmp/ward-store-XXXXXX";
static char err[512];

TEST(open_missing)
{
    struct pki_store s;
    char d[300];
    snprintf(d, sizeof(d), "%s/none", dir);
    ASSERT_EQ(pki_open(&s, d, false, err, sizeof(err)), -1);
    ASSERT(strstr(err, "no PKI here"));
    pki_close(&s);
}

TEST(index_roundtrip_find_crl)
{
    char d[300], p[600];
    snprintf(d, sizeof(d), "%s/pki", dir);
    struct pki_store s;
    ASSERT_EQ(pki_open(&s, d, true, err, sizeof(err)), 0);
    struct stat st;
    ASSERT_EQ(stat(d, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0700);
    struct pki_key_spec ks = {PKI_EC_P256, 0};
    EVP_PKEY *k = pki_key_new(&ks, err, sizeof(err));
    struct pki_cert_spec rs = {PKI_ROOT_CA, "Root CA", NULL, NULL, NULL, 0, NULL, 0, 30};
    X509 *ca = pki_cert_new(&rs, k, NULL, NULL, err, sizeof(err));
    ASSERT_EQ(pki_write_key(pki_path(&s, "private/ca.key", p, sizeof(p)), k, NULL, false, err,
                            sizeof(err)),
              0);
    ASSERT_EQ(pki_write_cert(pki_path(&s, "ca.crt", p, sizeof(p)), &ca, 1, false, err, sizeof(err)),
              0);
    ASSERT_EQ(pki_record(&s, ca, "Root CA", NULL, "root"), 0);
    struct pki_cert_spec cs = {PKI_CLIENT, "dev one", NULL, "Field Devices", NULL, 0, NULL, 0, 5};
    X509 *c = pki_cert_new(&cs, k, ca, k, err, sizeof(err));
    ASSERT_EQ(pki_record(&s, c, "dev one", "Field Devices", "client"), 0);
    ASSERT_EQ(pki_save_index(&s, err, sizeof(err)), 0);
    pki_close(&s);

    ASSERT_EQ(pki_open(&s, d, false, err, sizeof(err)), 0);
    ASSERT_EQ(s.n, 2);
    struct pki_entry *e = pki_find(&s, "dev one"); /* names may have spaces */
    ASSERT(e && e->status == 'V');
    ASSERT_STR_EQ(e->kind, "client");
    ASSERT_STR_EQ(e->role, "Field_Devices");
    char serial[64];
    pki_serial_hex(c, serial, sizeof(serial));
    ASSERT(pki_find(&s, serial) == e);
    ASSERT(pki_find(&s, "nobody") == NULL);
    ASSERT_EQ(pki_load_ca(&s, NULL, err, sizeof(err)), 0);
    e->status = 'R';
    e->revoked_at = (long)time(NULL);
    e->reason = 1;
    ASSERT_EQ(pki_write_current_crl(&s, 7, err, sizeof(err)), 0);
    pki_close(&s);
    X509_free(c);
    X509_free(ca);
    EVP_PKEY_free(k);
}

TEST(bad_index_line)
{
    char d[300], p[600];
    snprintf(d, sizeof(d), "%s/bad", dir);
    struct pki_store s;
    ASSERT_EQ(pki_open(&s, d, true, err, sizeof(err)), 0);
    pki_close(&s);
    snprintf(p, sizeof(p), "%s/index.txt", d);
    FILE *f = fopen(p, "w");
    fputs("# header\nABC X 2030 0 -1 client - x\n", f);
    fclose(f);
    ASSERT_EQ(pki_open(&s, d, false, err, sizeof(err)), -1);
    ASSERT(strstr(err, "index.txt:2: malformed index line"));
    pki_close(&s);
    /* A CA that is missing is named. */
    f = fopen(p, "w");
    fclose(f);
    ASSERT_EQ(pki_open(&s, d, false, err, sizeof(err)), 0);
    ASSERT_EQ(pki_load_ca(&s, NULL, err, sizeof(err)), -1);
    ASSERT(strstr(err, "ca.crt") && strstr(err, "ward cert init"));
    pki_close(&s);
}

/* A fresh PKI directory with a CA in it, for the ownership checks. */
static void make_pki(const char *d)
{
    char p[600];
    struct pki_store s;
    ASSERT_EQ(pki_open(&s, d, true, err, sizeof(err)), 0);
    struct pki_key_spec ks = {PKI_EC_P256, 0};
    EVP_PKEY *k = pki_key_new(&ks, err, sizeof(err));
    struct pki_cert_spec rs = {PKI_ROOT_CA, "Root CA", NULL, NULL, NULL, 0, NULL, 0, 30};
    X509 *ca = pki_cert_new(&rs, k, NULL, NULL, err, sizeof(err));
    ASSERT_EQ(pki_write_key(pki_path(&s, "private/ca.key", p, sizeof(p)), k, NULL, false, err,
                            sizeof(err)),
              0);
    ASSERT_EQ(pki_write_cert(pki_path(&s, "ca.crt", p, sizeof(p)), &ca, 1, false, err, sizeof(err)),
              0);
    pki_close(&s);
    X509_free(ca);
    EVP_PKEY_free(k);
}

/* pki_open(d) fails and the error names `named` and says `why`. */
static void refused(const char *d, bool create, const char *named, const char *why)
{
    struct pki_store s;
    err[0] = '\0';
    ASSERT_EQ(pki_open(&s, d, create, err, sizeof(err)), -1);
    if (!strstr(err, named) || !strstr(err, why))
        TEST_FAIL_("error \"%s\" should name %s and say \"%s\"", err, named, why);
    pki_close(&s);
}

TEST(refuses_writable_or_foreign_directories)
{
    char d[300], priv[400], certs[400], elsewhere[400];
    snprintf(d, sizeof(d), "%s/own", dir);
    snprintf(priv, sizeof(priv), "%s/private", d);
    snprintf(certs, sizeof(certs), "%s/certs", d);
    make_pki(d);
    ASSERT_EQ(chmod(d, 0777), 0);
    refused(d, false, d, "writable by group or others");
    refused(d, true, d, "writable by group or others");
    ASSERT_EQ(chmod(d, 0755), 0); /* readable by others is the user's choice */
    struct pki_store s;
    ASSERT_EQ(pki_open(&s, d, false, err, sizeof(err)), 0);
    pki_close(&s);
    ASSERT_EQ(chmod(priv, 0770), 0);
    refused(d, false, priv, "chmod go-w");
    ASSERT_EQ(chmod(priv, 0700), 0);
    /* certs/ replaced by a link to somewhere else. */
    snprintf(elsewhere, sizeof(elsewhere), "%s/elsewhere", dir);
    ASSERT_EQ(rename(certs, elsewhere), 0);
    ASSERT_EQ(symlink(elsewhere, certs), 0);
    refused(d, false, certs, "symbolic link");
    ASSERT_EQ(unlink(certs), 0);
    ASSERT_EQ(rename(elsewhere, certs), 0);
    if (geteuid() == 0) { /* `make test` runs as root */
        ASSERT_EQ(chown(d, 65534, 65534), 0);
        refused(d, false, d, "owned by uid 65534");
        refused(d, true, d, "owned by uid 65534");
        ASSERT_EQ(chown(d, 0, 0), 0);
        ASSERT_EQ(chown(priv, 65534, 65534), 0);
        refused(d, false, priv, "owned by uid 65534");
        ASSERT_EQ(chown(priv, 0, 0), 0);
    } else {
        printf("refuses_writable_or_foreign_directories: not root, foreign owner not tested\n");
    }
    ASSERT_EQ(pki_open(&s, d, false, err, sizeof(err)), 0);
    pki_close(&s);
}

TEST(load_ca_refuses_an_exposed_key)
{
    char d[300], p[600];
    snprintf(d, sizeof(d), "%s/exposed", dir);
    make_pki(d);
    snprintf(p, sizeof(p), "%s/private/ca.key", d);
    struct pki_store s;
    ASSERT_EQ(chmod(p, 0666), 0);
    ASSERT_EQ(pki_open(&s, d, false, err, sizeof(err)), 0);
    ASSERT_EQ(pki_load_ca(&s, NULL, err, sizeof(err)), -1);
    ASSERT(strstr(err, p) && strstr(err, "writable by group or others"));
    pki_close(&s);
    ASSERT_EQ(chmod(p, 0600), 0);
    ASSERT_EQ(pki_open(&s, d, false, err, sizeof(err)), 0);
    ASSERT_EQ(pki_load_ca(&s, NULL, err, sizeof(err)), 0);
    pki_close(&s);
    /* The lock file and the index are not followed through links either. */
    char lock[600], target[600];
    snprintf(lock, sizeof(lock), "%s/.lock", d);
    snprintf(target, sizeof(target), "%s/target", dir);
    ASSERT_EQ(unlink(lock), 0);
    ASSERT_EQ(symlink(target, lock), 0);
    refused(d, false, ".lock", "cannot lock");
    struct stat st;
    ASSERT_EQ(lstat(target, &st), -1); /* nothing was created through it */
}

int main(void)
{
    ASSERT(mkdtemp(dir));
    RUN(open_missing);
    RUN(index_roundtrip_find_crl);
    RUN(bad_index_line);
    RUN(refuses_writable_or_foreign_directories);
    RUN(load_ca_refuses_an_exposed_key);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    TEST_DONE();
}
