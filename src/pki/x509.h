/* X.509 building blocks for `ward cert`, on OpenSSL 3's library API (never the
 * openssl binary): keys, certificates with the extensions TLS peers check,
 * CRLs, PEM/DER/PKCS#12 output, inspection.
 *
 * Errors: functions return NULL/-1 and write "cause" text into err; callers
 * add the file name. */
#ifndef WARD_PKI_X509_H
#define WARD_PKI_X509_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/result.h"

enum pki_key_type { PKI_EC_P256, PKI_EC_P384, PKI_RSA, PKI_ED25519 };

struct pki_key_spec {
    enum pki_key_type type;
    int rsa_bits; /* PKI_RSA: 2048 .. 8192 */
};

/* What a certificate is for; decides its extensions. */
enum pki_profile { PKI_ROOT_CA, PKI_INTERMEDIATE_CA, PKI_SERVER, PKI_CLIENT };

struct pki_cert_spec {
    enum pki_profile profile;
    const char *cn;
    const char *org;        /* O, may be NULL */
    const char *ou;         /* OU: the role (Devices, Services, Operators), may be NULL */
    const char *const *dns; /* server SANs */
    size_t ndns;
    const char *const *ips;
    size_t nips;
    int days;
};

WARD_WUR EVP_PKEY *pki_key_new(const struct pki_key_spec *spec, char *err, size_t errlen);

/* Builds and signs a certificate for `key` (its public half). issuer and
 * issuer_key are NULL for a self-signed root. The serial is random, 128 bits
 * (RFC 5280 4.1.2.2: positive, at most 20 octets). */
WARD_WUR X509 *pki_cert_new(const struct pki_cert_spec *spec, EVP_PKEY *key, X509 *issuer,
                            EVP_PKEY *issuer_key, char *err, size_t errlen);
/* The same for a certificate request's key, once its signature verifies.
 * The subject is built from spec (CN, OU, O) only, never copied from the
 * request; check the request with pki_csr_check first (pki/csr.h). */
WARD_WUR X509 *pki_cert_from_req(X509_REQ *req, const struct pki_cert_spec *spec, X509 *issuer,
                                 EVP_PKEY *issuer_key, char *err, size_t errlen);

/* Writes PEM to path, created with mode `mode` and O_EXCL unless `force`
 * (then replaced atomically). Returns 0 or -1 with the cause. */
WARD_WUR int pki_write_cert(const char *path, X509 *const *certs, size_t n, bool force, char *err,
                            size_t errlen);
/* A private key as PKCS#8 PEM, encrypted with AES-256-CBC when password is
 * given; mode 0600 from creation. Every writer refuses a path that is a
 * symbolic link ("PATH: is a symbolic link ..."). */
WARD_WUR int pki_write_key(const char *path, EVP_PKEY *key, const char *password, bool force,
                           char *err, size_t errlen);
WARD_WUR int pki_write_der(const char *path, X509 *cert, bool force, char *err, size_t errlen);
WARD_WUR int pki_write_p12(const char *path, const char *name, EVP_PKEY *key, X509 *cert,
                           X509 *const *chain, size_t nchain, const char *password, bool force,
                           char *err, size_t errlen);

/* Copies src to dst with mode `mode` from creation, replacing dst
 * atomically (temporary file, rename). Refuses when src or dst is a symbolic
 * link. */
WARD_WUR int pki_copy_file(const char *src, const char *dst, mode_t mode, char *err, size_t errlen);

/* Refuses what another user could change: a file or directory (its stat in
 * st) owned by someone other than this process's effective user or root, or
 * writable by group or others. `what` names it in the cause ("a PKI
 * directory", "a private key"). Returns 0, or -1 with the cause (the caller
 * adds the path, as everywhere here). */
WARD_WUR int pki_check_owner(const char *path, const struct stat *st, const char *what, char *err,
                             size_t errlen);

/* Reading: the first certificate of a PEM file; every certificate of a PEM
 * file (chain); a private key (PEM, PKCS#8, encrypted or not; refused, per
 * pki_check_owner, when another user owns or may write it); a request. */
WARD_WUR X509 *pki_read_cert(const char *path, char *err, size_t errlen);
WARD_WUR size_t pki_read_certs(const char *path, X509 **out, size_t cap, char *err, size_t errlen);
WARD_WUR EVP_PKEY *pki_read_key(const char *path, const char *password, char *err, size_t errlen);
WARD_WUR X509_REQ *pki_read_req(const char *path, char *err, size_t errlen);

/* A CRL signed by the issuer listing the given serials (hex) with their
 * revocation times and reasons (CRL reason codes, -1 none). */
struct pki_revoked {
    const char *serial_hex;
    time_t when;
    int reason;
};
WARD_WUR X509_CRL *pki_crl_new(X509 *issuer, EVP_PKEY *issuer_key, const struct pki_revoked *list,
                               size_t n, int days, char *err, size_t errlen);
WARD_WUR int pki_write_crl(const char *path, X509_CRL *crl, char *err, size_t errlen);

/* Helpers. */
void pki_serial_hex(X509 *cert, char *out, size_t cap);
/* Days from now until not-after (negative: expired). */
long pki_days_left(X509 *cert);
void pki_time_iso(const ASN1_TIME *t, char *out, size_t cap);
/* SHA-256 fingerprints, "AB:CD:..." */
void pki_fingerprint(X509 *cert, char *out, size_t cap);
void pki_pubkey_fingerprint(X509 *cert, char *out, size_t cap);
/* Subject fields (empty string when absent). */
void pki_subject_field(X509 *cert, int nid, char *out, size_t cap);
/* Verifies cert against the CA file (and untrusted intermediates in it).
 * Returns 0 or -1 with the verification error's text. */
WARD_WUR int pki_verify(X509 *cert, X509 *const *chain, size_t nchain, const char *cafile,
                        char *err, size_t errlen);
/* A CRL reason name ("keyCompromise" ...) to its code, -1 if unknown. */
WARD_WUR int pki_reason_code(const char *name);
const char *pki_reason_name(int code);

#endif
