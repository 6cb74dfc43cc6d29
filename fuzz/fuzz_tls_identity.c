/* libFuzzer target for certificate identity extraction (src/tls): how a
 * peer certificate becomes the struct tls_identity that ACLs and
 * `use_identity_as_username` see.
 *
 * The input is DER; what d2i_X509 parses goes through the same code the TLS
 * transport runs after a handshake. Every field must come out NUL-terminated
 * inside its array, and tls_identity_get must give NULL or a non-empty
 * string.
 *
 * The extraction is a static function of src/tls/tls.c (fill_identity), so
 * this file includes tls.c itself instead of linking ward_tls; when tls.h
 * exports it, link ward_tls and drop the include. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls.c"

static void terminated(const char *field, size_t cap)
{
    if (!memchr(field, '\0', cap))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const unsigned char *p = data;
    X509 *x = d2i_X509(NULL, &p, (long)size);
    if (!x) {
        ERR_clear_error();
        return 0;
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
