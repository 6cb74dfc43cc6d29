/* A PKI directory: the CA, what it issued, and an index of it all.
 *
 *   DIR/ca.crt                 the root CA certificate (what peers trust)
 *   DIR/intermediate.crt       the issuing CA, when made with --intermediate
 *   DIR/private/ca.key         0600, like every key; DIR and private/ are 0700
 *   DIR/private/intermediate.key
 *   DIR/certs/NAME.crt         issued certificates (leaf first, then the chain)
 *   DIR/private/NAME.key
 *   DIR/crl.pem                the current CRL of the issuing CA
 *   DIR/index.txt              one line per issued certificate
 *
 * pki_open() takes an exclusive lock on DIR/.lock, so concurrent `ward cert`
 * runs serialise; the index is rewritten atomically (temporary file, rename)
 * and only after everything else of a change succeeded. */
#ifndef WARD_PKI_STORE_H
#define WARD_PKI_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "core/result.h"
#include "pki/x509.h"

struct pki_entry {
    char serial[64];
    char name[256];
    char role[128]; /* OU, or "-" */
    char kind[16];  /* root, intermediate, server, client */
    char not_after[32];
    char status; /* 'V' valid, 'R' revoked */
    long revoked_at;
    int reason;
};

struct pki_store {
    char dir[3072];
    int lock_fd;
    struct pki_entry *e;
    size_t n, cap;
    X509 *root, *issuer; /* issuer == root without an intermediate */
    EVP_PKEY *issuer_key;
};

/* Opens (create: makes) the directory and locks it. */
WARD_WUR int pki_open(struct pki_store *s, const char *dir, bool create, char *err, size_t errlen);
void pki_close(struct pki_store *s);
/* Loads the issuing CA and its key (password for an encrypted key). */
WARD_WUR int pki_load_ca(struct pki_store *s, const char *password, char *err, size_t errlen);
WARD_WUR int pki_save_index(struct pki_store *s, char *err, size_t errlen);
/* By name (the newest valid one) or by serial. */
struct pki_entry *pki_find(struct pki_store *s, const char *name_or_serial);
WARD_WUR int pki_record(struct pki_store *s, X509 *cert, const char *name, const char *role,
                        const char *kind);
/* A path under the directory: pki_path(s, "certs/x.crt", buf). */
const char *pki_path(const struct pki_store *s, const char *rel, char *buf, size_t cap);
/* Writes DIR/crl.pem from the index. */
WARD_WUR int pki_write_current_crl(struct pki_store *s, int days, char *err, size_t errlen);

#endif
