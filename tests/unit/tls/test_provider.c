/* The handshake library context (src/tls/provider.c): what it offers and
 * what it leaves out, certificate public keys decoded in it (and the key
 * types it does not decode), no private-key decoding, and complete
 * handshakes through it in memory: TLS 1.3 with mutual authentication for
 * EC, RSA and Ed25519 certificates, and TLS 1.2 with GCM and CBC-HMAC
 * suites (the HMAC key type and signature). Keys and certificates are
 * made in memory at run time. */
#include <stdbool.h>

#include <openssl/core_dispatch.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "test.h"
#include "tls/provider.h"

/* A self-signed certificate for key (made in the global context). */
static X509 *self_signed(EVP_PKEY *key, const char *cn)
{
    X509 *x = X509_new();
    ASSERT(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509_set_pubkey(x, key);
    const EVP_MD *md = EVP_PKEY_get_id(key) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
    ASSERT(X509_sign(x, key, md) > 0);
    return x;
}

/* The certificate re-read from DER in lib, as libssl reads a peer's. */
static X509 *reread(X509 *x, OSSL_LIB_CTX *lib)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    ASSERT(n > 0);
    const unsigned char *p = der;
    X509 *y = X509_new_ex(lib, NULL);
    ASSERT(y && d2i_X509(&y, &p, n));
    OPENSSL_free(der);
    return y;
}

static EVP_PKEY *ec_key(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ASSERT(k);
    return k;
}

TEST(offers_fewer_decoders_and_the_rest_whole)
{
    unsigned dec = tls_provider_offered(OSSL_OP_DECODER);
    ASSERT(dec >= 8 && dec < 20); /* the default provider has 40 */
    ASSERT(tls_provider_offered(OSSL_OP_KEYMGMT) >= 10);
    ASSERT(tls_provider_offered(OSSL_OP_CIPHER) >= 7);
    ASSERT_EQ(tls_provider_offered(OSSL_OP_RAND), 0); /* offered whole */
    OSSL_LIB_CTX *lib = tls_provider_libctx_new();
    ASSERT(lib);
    EVP_MD *sha = EVP_MD_fetch(lib, "SHA256", NULL);
    EVP_CIPHER *gcm = EVP_CIPHER_fetch(lib, "AES-128-GCM", NULL);
    EVP_CIPHER *des = EVP_CIPHER_fetch(lib, "DES-EDE3-CBC", NULL);
    EVP_MD *md5 = EVP_MD_fetch(lib, "MD5", NULL);
    ASSERT(sha && gcm);
    ASSERT(!des && !md5); /* no cipher suite ward offers uses them */
    EVP_MD_free(sha);
    EVP_CIPHER_free(gcm);
    ERR_clear_error();
    unsigned char r[16] = {0}, zero[16] = {0};
    ASSERT_EQ(RAND_bytes_ex(lib, r, sizeof(r), 0), 1);
    ASSERT(memcmp(r, zero, sizeof(r)) != 0);
    tls_provider_libctx_free(lib);
}

TEST(certificate_keys_decoded)
{
    OSSL_LIB_CTX *lib = tls_provider_libctx_new();
    EVP_PKEY *keys[] = {ec_key(), EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048),
                        EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        ASSERT(keys[i]);
        X509 *x = self_signed(keys[i], "k");
        X509 *y = reread(x, lib);
        EVP_PKEY *pub = X509_get0_pubkey(y);
        ASSERT(pub);
        ASSERT_EQ(EVP_PKEY_eq(pub, keys[i]), 1);
        ASSERT_EQ(X509_verify(y, pub), 1); /* the signature checks in lib too */
        X509_free(y);
        X509_free(x);
        EVP_PKEY_free(keys[i]);
    }
    tls_provider_libctx_free(lib);
}

TEST(dsa_keys_and_private_keys_are_not_decoded)
{
    OSSL_LIB_CTX *lib = tls_provider_libctx_new();
    /* A DSA certificate parses but its key stays undecoded (and so the
     * certificate cannot verify anything): no TLS 1.3 signature uses DSA. */
    EVP_PKEY *params = NULL, *dsa = NULL;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "DSA", NULL);
    ASSERT(pc && EVP_PKEY_paramgen_init(pc) == 1);
    ASSERT(EVP_PKEY_CTX_set_dsa_paramgen_bits(pc, 1024) == 1);
    ASSERT(EVP_PKEY_paramgen(pc, &params) == 1);
    EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_from_pkey(NULL, params, NULL);
    ASSERT(kc && EVP_PKEY_keygen_init(kc) == 1 && EVP_PKEY_keygen(kc, &dsa) == 1);
    EVP_PKEY_CTX_free(kc);
    EVP_PKEY_CTX_free(pc);
    EVP_PKEY_free(params);
    X509 *x = self_signed(dsa, "d");
    X509 *y = reread(x, lib);
    ASSERT(!X509_get0_pubkey(y));
    X509_free(y);
    X509_free(x);
    EVP_PKEY_free(dsa);
    /* No private-key decoders: tls.c reads private keys in the global
     * context (OpenSSL's PEM reader would fall back to its legacy path). */
    EVP_PKEY *k = NULL;
    OSSL_DECODER_CTX *d =
        OSSL_DECODER_CTX_new_for_pkey(&k, "PEM", NULL, "EC", EVP_PKEY_KEYPAIR, lib, NULL);
    ASSERT(d);
    ASSERT_EQ(OSSL_DECODER_CTX_get_num_decoders(d), 0);
    OSSL_DECODER_CTX_free(d);
    d = OSSL_DECODER_CTX_new_for_pkey(&k, "DER", "SubjectPublicKeyInfo", "EC", EVP_PKEY_PUBLIC_KEY,
                                      lib, NULL);
    ASSERT(d && OSSL_DECODER_CTX_get_num_decoders(d) > 0);
    OSSL_DECODER_CTX_free(d);
    ERR_clear_error();
    tls_provider_libctx_free(lib);
}

/* Runs both sides over a BIO pair until both are done or one fails. */
static bool handshake(SSL *c, SSL *s)
{
    BIO *cb, *sb;
    ASSERT(BIO_new_bio_pair(&cb, 0, &sb, 0) == 1);
    SSL_set_bio(c, cb, cb);
    SSL_set_bio(s, sb, sb);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    for (int i = 0; i < 20; i++) {
        int rc = SSL_do_handshake(c), rs = SSL_do_handshake(s);
        if (rc == 1 && rs == 1)
            return true;
        int ec = SSL_get_error(c, rc), es = SSL_get_error(s, rs);
        if ((rc != 1 && ec != SSL_ERROR_WANT_READ) || (rs != 1 && es != SSL_ERROR_WANT_READ))
            return false;
    }
    return false;
}

struct case_ {
    const char *name;
    EVP_PKEY *server_key;
    int version;         /* TLS1_2_VERSION or TLS1_3_VERSION */
    const char *ciphers; /* TLS 1.2 */
};

/* A server context in the handshake library context (key from the global
 * one, as tls.c loads it) against a client in the global context, the
 * client presenting an EC certificate the server trusts. */
static void run_case(const struct case_ *k)
{
    OSSL_LIB_CTX *lib = tls_provider_libctx_new();
    X509 *scrt = self_signed(k->server_key, "server");
    EVP_PKEY *ckey = ec_key();
    X509 *ccrt = self_signed(ckey, "client");

    SSL_CTX *sctx = SSL_CTX_new_ex(lib, NULL, TLS_server_method());
    ASSERT(sctx);
    ASSERT_EQ(SSL_CTX_use_certificate(sctx, scrt), 1);
    ASSERT_EQ(SSL_CTX_use_PrivateKey(sctx, k->server_key), 1);
    ASSERT_EQ(SSL_CTX_check_private_key(sctx), 1);
    ASSERT_EQ(X509_STORE_add_cert(SSL_CTX_get_cert_store(sctx), ccrt), 1);
    SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_max_proto_version(sctx, k->version);
    if (k->ciphers)
        ASSERT_EQ(SSL_CTX_set_cipher_list(sctx, k->ciphers), 1);

    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    ASSERT_EQ(SSL_CTX_use_certificate(cctx, ccrt), 1);
    ASSERT_EQ(SSL_CTX_use_PrivateKey(cctx, ckey), 1);
    ASSERT_EQ(X509_STORE_add_cert(SSL_CTX_get_cert_store(cctx), scrt), 1);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);

    SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
    if (!handshake(c, s)) {
        ERR_print_errors_fp(stderr);
        TEST_FAIL_("%s: the handshake failed", k->name);
    }
    ASSERT_EQ(SSL_version(s), k->version);
    X509 *peer = SSL_get1_peer_certificate(s);
    ASSERT(peer && X509_get0_pubkey(peer)); /* decoded in lib */
    X509_free(peer);
    /* Application data both ways. */
    char buf[8];
    ASSERT_EQ(SSL_write(c, "ping", 4), 4);
    ASSERT_EQ(SSL_read(s, buf, sizeof(buf)), 4);
    ASSERT_EQ(SSL_write(s, "pong", 4), 4);
    ASSERT_EQ(SSL_read(c, buf, sizeof(buf)), 4);
    ASSERT_MEM_EQ(buf, "pong", 4);

    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    X509_free(ccrt);
    X509_free(scrt);
    EVP_PKEY_free(ckey);
    tls_provider_libctx_free(lib);
}

TEST(handshakes)
{
    EVP_PKEY *ec = ec_key(), *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048),
             *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    ASSERT(rsa && ed);
    const struct case_ cases[] = {
        {"TLS 1.3, EC", ec, TLS1_3_VERSION, NULL},
        {"TLS 1.3, RSA (RSA-PSS signatures)", rsa, TLS1_3_VERSION, NULL},
        {"TLS 1.3, Ed25519", ed, TLS1_3_VERSION, NULL},
        {"TLS 1.2, ECDHE-ECDSA GCM", ec, TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256"},
        {"TLS 1.2, ECDHE-RSA CBC-HMAC", rsa, TLS1_2_VERSION, "ECDHE-RSA-AES256-SHA384"},
        {"TLS 1.2, ChaCha20", ec, TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&cases[i]);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ed);
}

/* A suite whose cipher the context does not offer is refused by name,
 * as an unknown one would be (tls.c reports "no usable cipher"). */
TEST(suite_without_its_cipher_is_refused)
{
    OSSL_LIB_CTX *lib = tls_provider_libctx_new();
    SSL_CTX *ctx = SSL_CTX_new_ex(lib, NULL, TLS_server_method());
    ASSERT(ctx);
    ASSERT_EQ(SSL_CTX_set_cipher_list(ctx, "DES-CBC3-SHA"), 0);
    ERR_clear_error();
    SSL_CTX_free(ctx);
    tls_provider_libctx_free(lib);
}

/* Each context has its own inner default provider, torn down with it. */
TEST(many_contexts_made_and_freed)
{
    for (int i = 0; i < 20; i++) {
        OSSL_LIB_CTX *lib = tls_provider_libctx_new();
        ASSERT(lib);
        EVP_MD *md = EVP_MD_fetch(lib, "SHA256", NULL);
        ASSERT(md);
        EVP_MD_free(md);
        tls_provider_libctx_free(lib);
    }
}

int main(void)
{
    RUN(offers_fewer_decoders_and_the_rest_whole);
    RUN(certificate_keys_decoded);
    RUN(dsa_keys_and_private_keys_are_not_decoded);
    RUN(handshakes);
    RUN(suite_without_its_cipher_is_refused);
    RUN(many_contexts_made_and_freed);
    TEST_DONE();
}
