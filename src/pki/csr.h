/* What `ward cert sign` checks in a certificate request before it issues
 * anything, and the subject it then issues under.
 *
 * A request comes from somewhere else (a device, an HSM, a colleague), so
 * every field of it is untrusted input. The certificate's subject is built
 * from the fields checked here only (pki_cert_from_req); nothing else of the
 * request's subject is copied. */
#ifndef WARD_PKI_CSR_H
#define WARD_PKI_CSR_H

#include <stddef.h>

#include <openssl/x509.h>

#include "core/result.h"

/* The roles (OU) a request may ask for without --ou naming them. */
extern const char *const pki_known_roles[];
extern const size_t pki_known_roles_count;

/* RFC 5280 upper bounds for CN and OU, in characters. */
#define PKI_CSR_MAX_CHARS 64

struct pki_csr_subject {
    char cn[4 * PKI_CSR_MAX_CHARS + 1]; /* the one common name: also the file name under certs/ */
    char ou[4 * PKI_CSR_MAX_CHARS + 1]; /* the one OU (the role), or "" */
    unsigned dropped; /* other subject entries (O, C, emailAddress ...): not issued */
};

/* Checks req in this order, and fills out:
 *  - its subject has exactly one CN and at most one OU, each text of at
 *    most 64 characters (RFC 5280's bounds: a longer one could not be
 *    issued) without control characters (a NUL would make the name read
 *    differently to different software);
 *  - the CN is usable as a file name: no '/' or '\', not starting with '.';
 *  - the OU is empty, one of pki_known_roles, or equal to allow_ou; when
 *    allow_ou is given the OU must be exactly it;
 *  - its key gives at least 112 bits of security (RSA 2048 and up, EC
 *    P-256 and up, Ed25519) and its signature verifies with that key.
 * Returns 0, or -1 with the cause in err (the caller adds the file name). */
WARD_WUR int pki_csr_check(X509_REQ *req, const char *allow_ou, struct pki_csr_subject *out,
                           char *err, size_t errlen);

#endif
