/* The common start of a test PKI, made at run time with the openssl CLI in
 * the scratch directory (scratch.h): P-256 keys, certificates valid for two
 * days, each file named after what it is (ca.crt, srv.key, cli.csr...). */
#ifndef WARD_PKI_FIXTURE_H
#define WARD_PKI_FIXTURE_H

#include "scratch.h"

/* The `openssl req` options for a new, unencrypted P-256 key. */
#define PKI_EC "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"

/* `openssl ca` over the database pki_fixture_ca_db makes: it sets any
 * validity period and records what revocation and CRLs need. The caller
 * appends the request's options. */
#define PKI_CA "openssl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -notext"

/* A self-signed CA, CN=TestCA, allowed to sign certificates and CRLs:
 * ca.key and ca.crt. */
static inline void pki_fixture_ca(void)
{
    scratch_sh("openssl req -x509 " PKI_EC " -keyout ca.key -out ca.crt -days 2 -subj /CN=TestCA "
               "-addext basicConstraints=critical,CA:TRUE "
               "-addext keyUsage=critical,keyCertSign,cRLSign");
}

/* The database PKI_CA keeps (ca.cnf, index.txt, serials from 1000);
 * policy is the [p] section's lines, the subject fields that are kept. */
static inline void pki_fixture_ca_db(const char *policy)
{
    scratch_sh("printf '[ca]\\ndefault_ca=c\\n[c]\\ndatabase=index.txt\\nnew_certs_dir=.\\n"
               "serial=serial\\ndefault_md=sha256\\npolicy=p\\nunique_subject=no\\n[p]\\n%s' > "
               "ca.cnf && touch index.txt && echo 1000 > serial",
               policy);
}

/* A key and a certificate request for subject: name.key and name.csr. */
static inline void pki_fixture_csr(const char *name, const char *subject)
{
    scratch_sh("openssl req " PKI_EC " -keyout %s.key -out %s.csr -subj %s", name, name, subject);
}

/* Writes the extensions ext (printf text) to name.ext and has the CA sign
 * name.csr with them: name.crt. */
static inline void pki_fixture_sign(const char *name, const char *ext)
{
    scratch_sh("printf '%s' > %s.ext && openssl x509 -req -in %s.csr -CA ca.crt -CAkey ca.key "
               "-CAcreateserial -days 2 -extfile %s.ext -out %s.crt",
               ext, name, name, name, name);
}

#endif
