/* A library context for TLS servers: OpenSSL's default provider behind a
 * filter that offers only the algorithms a TLS 1.2/1.3 server uses.
 *
 * Why: OpenSSL 3.0 decodes the public key of every certificate a peer
 * sends (d2i_X509, during the handshake) through OSSL_DECODER_CTX_new_for_pkey,
 * which walks every decoder and key manager of the library context, and
 * copies its method store (every algorithm fetched so far), uncached,
 * each time. In a context with the whole default provider (40 decoders,
 * 18 key managers, 124 ciphers...) that walk was about a third of the CPU
 * a mutual-TLS handshake cost ward (perf, bench/handshake.sh). Through the
 * filter (8 decoders, 10 key managers, 15 ciphers) the same decode takes
 * about half the time.
 *
 * What the context can and cannot do:
 *  - the default provider's implementations of what the cipher suites,
 *    key exchanges and certificate signatures of TLS 1.2 and 1.3 need:
 *    SHA-1 and SHA-2; AES-GCM/CCM/CBC (with the stitched CBC-HMAC
 *    ciphers), ChaCha20-Poly1305, ARIA-GCM, Camellia-CBC; HMAC; the TLS
 *    PRF, TLS 1.3 KDF and HKDF; ECDH, X25519, X448, DH; ECDSA, RSA,
 *    Ed25519, Ed448; RSA decryption; all its RNGs, KEMs, encoders and
 *    stores. Anything else (3DES, SEED, MD5, DSA, SM2...) cannot be
 *    fetched, so OpenSSL leaves suites that need it out of a cipher list;
 *  - public keys of type EC, RSA, RSA-PSS, X25519, X448, ED25519 and ED448
 *    decoded from certificates (DSA, DH and SM2 certificate keys are left
 *    undecoded: no TLS 1.3 signature uses them);
 *  - no private-key decoders (OpenSSL's PEM reader would fall back to its
 *    legacy path): tls.c reads private keys in the global library context
 *    and gives the EVP_PKEY to the SSL_CTX; OpenSSL moves it across
 *    providers once.
 *
 * The filter's provider context is the inner default provider's own, so
 * the algorithms it hands out run exactly as they would in a context
 * that loaded "default" itself. */
#ifndef WARD_TLS_PROVIDER_H
#define WARD_TLS_PROVIDER_H

#include <openssl/types.h>

/* A new library context with only the filter loaded (each has its own
 * inner default provider, so contexts share no locks). NULL if OpenSSL
 * refuses; the caller then falls back to OSSL_LIB_CTX_new(). */
OSSL_LIB_CTX *tls_provider_libctx_new(void);

/* Frees a context made by tls_provider_libctx_new (and its inner one), or
 * any other context with OSSL_LIB_CTX_free (never the global default). */
void tls_provider_libctx_free(OSSL_LIB_CTX *lib);

/* How many algorithms of operation op (OSSL_OP_*) the filter offers; 0
 * for an operation offered whole (tests, docs). */
unsigned tls_provider_offered(int op);

#endif
