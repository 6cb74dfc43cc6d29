/* libFuzzer target for what `ward cert sign` checks in a certificate request
 * (src/pki/csr.c) and the certificate it then issues (pki_cert_from_req).
 *
 * The input is a DER request. Almost every mutation of one breaks its
 * signature, so an input that is not DER is read as a subject instead:
 * entries of [field selector][string type][length][value bytes], made into
 * a request signed by a throwaway key. That way the name checks see
 * arbitrary subjects with valid signatures, and the harness knows how many
 * CN and OU entries it put in.
 *
 * A request pki_csr_check accepts must have a non-empty CN without control
 * characters or path separators and an OU that is empty or a known role; it
 * must also pass with --ou naming its own OU and fail with --ou naming
 * another. Issued under a throwaway CA (made once, in memory), the
 * certificate's subject must hold exactly the checked CN and OU and nothing
 * else of the request. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "pki/csr.h"
#include "pki/x509.h"

static EVP_PKEY *ca_key;
static X509 *ca;

static void make_ca(void)
{
    char err[256];
    struct pki_key_spec ks = {PKI_EC_P256, 0};
    struct pki_cert_spec cs = {PKI_ROOT_CA, "fuzz CA", "ward", NULL, NULL, 0, NULL, 0, 1};
    ca_key = pki_key_new(&ks, err, sizeof(err));
    ca = ca_key ? pki_cert_new(&cs, ca_key, NULL, NULL, err, sizeof(err)) : NULL;
    if (!ca)
        abort();
}

static bool known(const char *ou)
{
    for (size_t i = 0; i < pki_known_roles_count; i++)
        if (strcmp(ou, pki_known_roles[i]) == 0)
            return true;
    return !*ou;
}

static void check_accepted(X509_REQ *req, const struct pki_csr_subject *s)
{
    char err[512], buf[300];
    struct pki_csr_subject again;
    if (!s->cn[0] || s->cn[0] == '.' || strpbrk(s->cn, "/\\") || !known(s->ou))
        abort();
    for (const unsigned char *c = (const unsigned char *)s->cn; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            abort();
    if (pki_csr_check(req, s->ou, &again, err, sizeof(err)) != 0 ||
        pki_csr_check(req, "Not-The-Role", &again, err, sizeof(err)) == 0)
        abort(); /* --ou must match the request's own OU exactly */
    struct pki_cert_spec spec = {PKI_CLIENT, s->cn, NULL, *s->ou ? s->ou : NULL, NULL, 0,
                                 NULL,       0,     1};
    X509 *c = pki_cert_from_req(req, &spec, ca, ca_key, err, sizeof(err));
    if (!c)
        abort(); /* the checks passed: issuing must not fail */
    X509_NAME *n = X509_get_subject_name(c);
    if (X509_NAME_entry_count(n) != (*s->ou ? 2 : 1))
        abort(); /* only the checked fields */
    pki_subject_field(c, NID_commonName, buf, sizeof(buf));
    if (strcmp(buf, s->cn) != 0)
        abort();
    X509_free(c);
}

static const int fields[] = {NID_commonName,  NID_organizationalUnitName, NID_organizationName,
                             NID_countryName, NID_pkcs9_emailAddress,     NID_serialNumber};
static const int types[] = {V_ASN1_UTF8STRING,  V_ASN1_BMPSTRING, V_ASN1_PRINTABLESTRING,
                            V_ASN1_IA5STRING,   V_ASN1_T61STRING, V_ASN1_UNIVERSALSTRING,
                            V_ASN1_OCTET_STRING};

/* A request for the subject described by data, signed by ca_key; the
 * number of CN and OU entries put in. NULL when data describes nothing. */
static X509_REQ *from_subject(const uint8_t *data, size_t size, int *ncn, int *nou)
{
    X509_NAME *name = X509_NAME_new();
    X509_REQ *req = X509_REQ_new();
    *ncn = *nou = 0;
    while (name && size >= 3) {
        int nid = fields[data[0] % (sizeof(fields) / sizeof(fields[0]))];
        int type = types[data[1] % (sizeof(types) / sizeof(types[0]))];
        size_t len = data[2] < size - 3 ? data[2] : size - 3;
        /* A type, not an MBSTRING_ flag: the bytes go in as given, with no
         * conversion or length limit, as a hostile request can carry them. */
        if (!X509_NAME_add_entry_by_NID(name, nid, type, (unsigned char *)data + 3, (int)len, -1,
                                        data[1] & 0x80 ? 1 : 0))
            break;
        *ncn += nid == NID_commonName;
        *nou += nid == NID_organizationalUnitName;
        data += 3 + len;
        size -= 3 + len;
    }
    bool ok = name && req && X509_REQ_set_subject_name(req, name) &&
              X509_REQ_set_pubkey(req, ca_key) && X509_REQ_sign(req, ca_key, EVP_sha256()) > 0;
    X509_NAME_free(name);
    if (!ok) {
        X509_REQ_free(req);
        return NULL;
    }
    return req;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ca)
        make_ca();
    const unsigned char *p = data;
    int ncn = -1, nou = -1;
    X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)size);
    if (!req) {
        ERR_clear_error();
        if (size > 4096 || !(req = from_subject(data, size, &ncn, &nou)))
            return 0;
    }
    struct pki_csr_subject s;
    char err[512] = "";
    if (pki_csr_check(req, NULL, &s, err, sizeof(err)) == 0) {
        if (ncn >= 0 && (ncn != 1 || nou > 1))
            abort(); /* accepted a subject with several CN or OU, or none */
        check_accepted(req, &s);
    } else if (!err[0]) {
        abort(); /* every refusal says why */
    }
    X509_REQ_free(req);
    ERR_clear_error();
    return 0;
}
