/* see csr.h */
#include "pki/csr.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

const char *const pki_known_roles[] = {"Devices", "Services", "Operators"};
const size_t pki_known_roles_count = sizeof(pki_known_roles) / sizeof(pki_known_roles[0]);

/* Characters in UTF-8 text: every byte that does not continue one. */
static size_t utf8_chars(const unsigned char *s, size_t n)
{
    size_t chars = 0;
    for (size_t i = 0; i < n; i++)
        chars += (s[i] & 0xc0) != 0x80;
    return chars;
}

/* The one entry of nid in name as UTF-8 into out: 0 none, 1 found, -1 with
 * the cause in err (several, too long, not text). */
static int one_entry(const X509_NAME *name, int nid, const char *label, char *out, size_t cap,
                     char *err, size_t errlen)
{
    out[0] = '\0';
    int i = X509_NAME_get_index_by_NID(name, nid, -1);
    if (i < 0)
        return 0;
    if (X509_NAME_get_index_by_NID(name, nid, i) >= 0) {
        snprintf(err, errlen, "the request's subject has more than one %s", label);
        return -1;
    }
    unsigned char *utf8 = NULL;
    ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    int n = ASN1_STRING_to_UTF8(&utf8, data);
    int rc = -1;
    if (n < 0)
        snprintf(err, errlen, "the request's %s is not text", label);
    else if ((size_t)n >= cap || utf8_chars(utf8, (size_t)n) > PKI_CSR_MAX_CHARS)
        /* RFC 5280 A.1: ub-common-name and ub-organizational-unit-name are
         * 64; the certificate could not be issued with more. */
        snprintf(err, errlen, "the request's %s is longer than %d characters", label,
                 PKI_CSR_MAX_CHARS);
    else
        rc = 1;
    for (int k = 0; rc == 1 && k < n; k++) {
        if (utf8[k] < 0x20 || utf8[k] == 0x7f) {
            snprintf(err, errlen, "the request's %s contains a control character", label);
            rc = -1;
        }
    }
    if (rc == 1)
        memcpy(out, utf8, (size_t)n + 1);
    OPENSSL_free(utf8);
    return rc;
}

static int check_names(X509_REQ *req, struct pki_csr_subject *out, char *err, size_t errlen)
{
    const X509_NAME *name = X509_REQ_get_subject_name(req);
    int cn =
        one_entry(name, NID_commonName, "common name (CN)", out->cn, sizeof(out->cn), err, errlen);
    if (cn < 0)
        return -1;
    int ou = one_entry(name, NID_organizationalUnitName, "organizational unit (OU)", out->ou,
                       sizeof(out->ou), err, errlen);
    if (ou < 0)
        return -1;
    if (cn == 0 || !out->cn[0]) {
        snprintf(err, errlen, "the request has no common name");
        return -1;
    }
    /* The CN names certs/CN.crt and private/CN.key: a path in it would
     * write outside the PKI. */
    if (out->cn[0] == '.' || strpbrk(out->cn, "/\\")) {
        snprintf(err, errlen, "the request's common name '%s' is not usable as a file name",
                 out->cn);
        return -1;
    }
    out->dropped = (unsigned)X509_NAME_entry_count(name) - (unsigned)cn - (unsigned)ou;
    return 0;
}

static int check_role(const char *ou, const char *allow_ou, char *err, size_t errlen)
{
    if (allow_ou) {
        if (strcmp(allow_ou, ou) == 0)
            return 0;
        snprintf(err, errlen, "requests role '%s', but --ou %s was given", *ou ? ou : "(none)",
                 allow_ou);
        return -1;
    }
    if (!*ou)
        return 0;
    for (size_t i = 0; i < pki_known_roles_count; i++)
        if (strcmp(ou, pki_known_roles[i]) == 0)
            return 0;
    snprintf(err, errlen, "unknown role '%s' (Devices, Services, Operators; --ou %s accepts it)",
             ou, ou);
    return -1;
}

static int check_key(X509_REQ *req, char *err, size_t errlen)
{
    EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
    if (!pub) {
        ERR_clear_error();
        snprintf(err, errlen, "the request carries no usable public key");
        return -1;
    }
    /* SP 800-57: 112 bits is the floor for anything issued today. */
    int bits = EVP_PKEY_get_security_bits(pub);
    if (bits < 112) {
        snprintf(err, errlen, "the request's %s key is too weak (%d bits of security, 112 needed)",
                 EVP_PKEY_get0_type_name(pub) ? EVP_PKEY_get0_type_name(pub) : "unknown", bits);
        return -1;
    }
    if (X509_REQ_verify(req, pub) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "the request's signature is invalid");
        return -1;
    }
    return 0;
}

/* see csr.h */
int pki_csr_check(X509_REQ *req, const char *allow_ou, struct pki_csr_subject *out, char *err,
                  size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (check_names(req, out, err, errlen) < 0 || check_role(out->ou, allow_ou, err, errlen) < 0 ||
        check_key(req, err, errlen) < 0)
        return -1;
    return 0;
}
