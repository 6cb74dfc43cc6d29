/* libFuzzer target for certificate identity extraction (src/tls): how a
 * peer certificate becomes the struct tls_identity that ACLs and
 * `use_identity_as_username` see.
 *
 * The input is DER; what d2i_X509 parses goes through the same code the TLS
 * transport runs after a handshake. Mutated DER rarely parses (OpenSSL is
 * not instrumented, so libFuzzer cannot learn its grammar), so an input
 * that is not DER is read as entries of [selector][string type][length]
 * [bytes]: subject fields (CN, OU, O, C, emailAddress, serialNumber) and
 * subject alternative names (DNS, email, URI), built into a certificate.
 * Every field must come out NUL-terminated inside its array, and
 * tls_identity_get must give NULL or a non-empty string.
 *
 * The extraction is a static function of src/tls/tls.c (fill_identity), so
 * this file includes tls.c itself instead of linking ward_tls; when tls.h
 * exports it, link ward_tls and drop the include. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls/provider.c"
#include "tls/tls.c"

static void terminated(const char *field, size_t cap)
{
    if (!memchr(field, '\0', cap))
        abort();
}

static const int name_nids[] = {NID_commonName,  NID_organizationalUnitName, NID_organizationName,
                                NID_countryName, NID_pkcs9_emailAddress,     NID_serialNumber};
static const int san_types[] = {GEN_DNS, GEN_EMAIL, GEN_URI};
static const int str_types[] = {V_ASN1_UTF8STRING, V_ASN1_BMPSTRING,       V_ASN1_PRINTABLESTRING,
                                V_ASN1_IA5STRING,  V_ASN1_UNIVERSALSTRING, V_ASN1_T61STRING};

static bool add_san(GENERAL_NAMES *sans, int type, const uint8_t *v, size_t len)
{
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_IA5STRING *s = ASN1_IA5STRING_new();
    if (!g || !s || !ASN1_STRING_set(s, v, (int)len)) {
        GENERAL_NAME_free(g);
        ASN1_IA5STRING_free(s);
        return false;
    }
    GENERAL_NAME_set0_value(g, type, s);
    return sk_GENERAL_NAME_push(sans, g) > 0;
}

/* A certificate (unsigned: the extraction reads names, never checks
 * signatures) with the subject and SANs data describes. */
static X509 *from_entries(const uint8_t *data, size_t size)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    GENERAL_NAMES *sans = sk_GENERAL_NAME_new_null();
    const size_t nnames = sizeof(name_nids) / sizeof(name_nids[0]);
    bool ok = x && name && sans;
    while (ok && size >= 3) {
        size_t sel = data[0] % (nnames + 3), len = data[2] < size - 3 ? data[2] : size - 3;
        int type = str_types[data[1] % (sizeof(str_types) / sizeof(str_types[0]))];
        if (sel < nnames) /* a type, not MBSTRING_: the bytes as given */
            ok = X509_NAME_add_entry_by_NID(name, name_nids[sel], type, (unsigned char *)data + 3,
                                            (int)len, -1, data[1] & 0x80 ? 1 : 0);
        else
            ok = add_san(sans, san_types[sel - nnames], data + 3, len);
        data += 3 + len;
        size -= 3 + len;
    }
    ok = ok && X509_set_subject_name(x, name) &&
         (sk_GENERAL_NAME_num(sans) == 0 ||
          X509_add1_ext_i2d(x, NID_subject_alt_name, sans, 0, X509V3_ADD_DEFAULT) == 1);
    X509_NAME_free(name);
    GENERAL_NAMES_free(sans);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const unsigned char *p = data;
    X509 *x = d2i_X509(NULL, &p, (long)size);
    if (!x) {
        ERR_clear_error();
        if (size > 4096 || !(x = from_entries(data, size))) {
            ERR_clear_error();
            return 0;
        }
    }
    struct tls_identity id;
    fill_identity(&id, x, size & 1);
    terminated(id.cn, sizeof(id.cn));
    terminated(id.ou, sizeof(id.ou));
    terminated(id.dn, sizeof(id.dn));
    terminated(id.san_dns, sizeof(id.san_dns));
    terminated(id.san_email, sizeof(id.san_email));
    terminated(id.san_uri, sizeof(id.san_uri));
    terminated(id.serial, sizeof(id.serial));
    if (id.verified != (size & 1))
        abort();
    static const enum tls_id_field fields[] = {TLS_ID_NONE,    TLS_ID_CN,        TLS_ID_DN,
                                               TLS_ID_SAN_DNS, TLS_ID_SAN_EMAIL, TLS_ID_SAN_URI};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        const char *v = tls_identity_get(&id, fields[i]);
        if (v && !*v)
            abort();
    }
    X509_free(x);
    ERR_clear_error();
    return 0;
}
