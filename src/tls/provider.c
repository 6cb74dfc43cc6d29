/* see provider.h */
#include "tls/provider.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_dispatch.h>
#include <openssl/err.h>
#include <openssl/provider.h>

#define FILTER_NAME "ward-handshake"
#define MAX_KEPT    64

/* What a TLS 1.2/1.3 server handshake and its SSL_CTX use, by operation:
 * the cipher suites' ciphers and MACs (ticket keys: AES-256-CBC and
 * HMAC), their PRF/HKDF, the key exchanges (ECDHE, X25519/X448, FFDHE,
 * TLS 1.2 RSA), the signatures of certificates and CertificateVerify, and
 * the key types those use. Matched against every alias, any case. */
static const char *const DIGESTS[] = {"SHA1", "SHA2-224", "SHA2-256", "SHA2-384", "SHA2-512", NULL};
static const char *const CIPHERS[] = {"AES-128-GCM",
                                      "AES-256-GCM",
                                      "ChaCha20-Poly1305",
                                      "AES-128-CCM",
                                      "AES-256-CCM",
                                      "AES-128-CBC",
                                      "AES-256-CBC",
                                      "AES-128-CBC-HMAC-SHA1",
                                      "AES-256-CBC-HMAC-SHA1",
                                      "AES-128-CBC-HMAC-SHA256",
                                      "AES-256-CBC-HMAC-SHA256",
                                      "ARIA-128-GCM",
                                      "ARIA-256-GCM",
                                      "CAMELLIA-128-CBC",
                                      "CAMELLIA-256-CBC",
                                      NULL};
static const char *const MACS[] = {"HMAC", NULL};
static const char *const KDFS[] = {"TLS13-KDF", "TLS1-PRF", "HKDF", NULL};
static const char *const KEYMGMTS[] = {"EC",    "RSA", "RSA-PSS", "X25519", "X448", "ED25519",
                                       "ED448", "DH",  "DHX",     "HMAC",   NULL};
static const char *const KEYEXCHS[] = {"ECDH", "X25519", "X448", "DH", NULL};
static const char *const SIGNATURES[] = {"ECDSA", "RSA", "ED25519", "ED448", "HMAC", NULL};
static const char *const ASYM_CIPHERS[] = {"RSA", NULL};
/* Certificate public keys decoded ("DER" is the generic
 * SubjectPublicKeyInfo step that comes before the typed one). */
static const char *const DECODERS[] = {"EC",      "RSA",   "RSA-PSS", "X25519", "X448",
                                       "ED25519", "ED448", "DER",     NULL};

/* The operations filtered; the others (RNGs, KEM, encoders, stores) are
 * offered whole. */
static const struct {
    int op;
    const char *const *names;
} KEPT[] = {
    {OSSL_OP_DIGEST, DIGESTS},
    {OSSL_OP_CIPHER, CIPHERS},
    {OSSL_OP_MAC, MACS},
    {OSSL_OP_KDF, KDFS},
    {OSSL_OP_KEYMGMT, KEYMGMTS},
    {OSSL_OP_KEYEXCH, KEYEXCHS},
    {OSSL_OP_SIGNATURE, SIGNATURES},
    {OSSL_OP_ASYM_CIPHER, ASYM_CIPHERS},
    {OSSL_OP_DECODER, DECODERS},
};
#define NKEPT (sizeof(KEPT) / sizeof(KEPT[0]))

/* The default provider's algorithm tables are static and the same for
 * every instance, so one template instance answers every query and the
 * filtered copies are made once. */
static struct {
    pthread_once_t once;
    OSSL_LIB_CTX *lib;
    OSSL_PROVIDER *deflt; /* NULL: could not be loaded */
    OSSL_ALGORITHM kept[NKEPT][MAX_KEPT + 1];
    unsigned nkept[NKEPT];
} tmpl = {.once = PTHREAD_ONCE_INIT};

/* Each loaded filter's own default provider, found again at teardown by
 * the provider context they share. */
struct inner {
    void *provctx;
    OSSL_LIB_CTX *lib;
    OSSL_PROVIDER *deflt;
    struct inner *next;
};
static pthread_mutex_t inners_lock = PTHREAD_MUTEX_INITIALIZER;
static struct inner *inners;

/* Each context made here, with the reference OSSL_PROVIDER_load gave:
 * it must be dropped before the context is freed, or the provider object
 * outlives it. Guarded by inners_lock. */
struct outer {
    OSSL_LIB_CTX *lib;
    OSSL_PROVIDER *prov;
    struct outer *next;
};
static struct outer *outers;

/* Whether one of the colon-separated names is in set. */
static bool named(const char *names, const char *const *set)
{
    for (const char *p = names; p && *p; p = strchr(p, ':') ? strchr(p, ':') + 1 : NULL) {
        size_t n = strcspn(p, ":");
        for (const char *const *s = set; *s; s++)
            if (strlen(*s) == n && strncasecmp(p, *s, n) == 0)
                return true;
    }
    return false;
}

static bool keep(int op, const char *const *names, const OSSL_ALGORITHM *a)
{
    if (!named(a->algorithm_names, names))
        return false;
    if (op != OSSL_OP_DECODER)
        return true;
    /* Decoders: certificate public keys only. */
    const char *props = a->property_definition ? a->property_definition : "";
    return strstr(props, "input=der") && strstr(props, "structure=SubjectPublicKeyInfo");
}

static void tmpl_init(void)
{
    tmpl.lib = OSSL_LIB_CTX_new();
    tmpl.deflt = tmpl.lib ? OSSL_PROVIDER_load(tmpl.lib, "default") : NULL;
    for (unsigned i = 0; tmpl.deflt && i < NKEPT; i++) {
        int no_cache = 0;
        unsigned n = 0;
        const OSSL_ALGORITHM *a = OSSL_PROVIDER_query_operation(tmpl.deflt, KEPT[i].op, &no_cache);
        for (; a && a->algorithm_names && n < MAX_KEPT; a++)
            if (keep(KEPT[i].op, KEPT[i].names, a))
                tmpl.kept[i][n++] = *a;
        tmpl.kept[i][n] = (OSSL_ALGORITHM){0};
        tmpl.nkept[i] = n;
    }
}

static int kept_index(int op)
{
    for (unsigned i = 0; i < NKEPT; i++)
        if (KEPT[i].op == op)
            return (int)i;
    return -1;
}

static const OSSL_ALGORITHM *filter_query(void *provctx, int op, int *no_cache)
{
    (void)provctx;
    int i = kept_index(op);
    if (i < 0)
        return OSSL_PROVIDER_query_operation(tmpl.deflt, op, no_cache);
    *no_cache = 0;
    return tmpl.kept[i];
}

static void filter_unquery(void *provctx, int op, const OSSL_ALGORITHM *algs)
{
    (void)provctx;
    if (kept_index(op) < 0)
        OSSL_PROVIDER_unquery_operation(tmpl.deflt, op, algs);
}

static const OSSL_PARAM *filter_gettable_params(void *provctx)
{
    (void)provctx;
    return OSSL_PROVIDER_gettable_params(tmpl.deflt);
}

static int filter_get_params(void *provctx, OSSL_PARAM params[])
{
    (void)provctx;
    return OSSL_PROVIDER_get_params(tmpl.deflt, params);
}

/* libssl learns the TLS groups it may offer from here ("TLS-GROUP"). */
static int filter_get_capabilities(void *provctx, const char *capability, OSSL_CALLBACK *cb,
                                   void *arg)
{
    (void)provctx;
    return OSSL_PROVIDER_get_capabilities(tmpl.deflt, capability, cb, arg);
}

static void filter_teardown(void *provctx)
{
    pthread_mutex_lock(&inners_lock);
    struct inner **pp = &inners;
    while (*pp && (*pp)->provctx != provctx)
        pp = &(*pp)->next;
    struct inner *in = *pp;
    if (in)
        *pp = in->next;
    pthread_mutex_unlock(&inners_lock);
    if (!in)
        return;
    OSSL_PROVIDER_unload(in->deflt);
    OSSL_LIB_CTX_free(in->lib);
    free(in);
}

static const OSSL_DISPATCH filter_dispatch[] = {
    {OSSL_FUNC_PROVIDER_TEARDOWN, (void (*)(void))filter_teardown},
    {OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, (void (*)(void))filter_gettable_params},
    {OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))filter_get_params},
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))filter_query},
    {OSSL_FUNC_PROVIDER_UNQUERY_OPERATION, (void (*)(void))filter_unquery},
    {OSSL_FUNC_PROVIDER_GET_CAPABILITIES, (void (*)(void))filter_get_capabilities},
    {0, NULL},
};

/* The provider context handed back is the inner default provider's: the
 * algorithms' functions are the default provider's and expect it. */
static int filter_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                       const OSSL_DISPATCH **out, void **provctx)
{
    (void)handle;
    (void)in;
    struct inner *n = calloc(1, sizeof(*n));
    if (!n)
        return 0;
    n->lib = OSSL_LIB_CTX_new();
    n->deflt = n->lib ? OSSL_PROVIDER_load(n->lib, "default") : NULL;
    if (!n->deflt) {
        OSSL_LIB_CTX_free(n->lib);
        free(n);
        return 0;
    }
    n->provctx = OSSL_PROVIDER_get0_provider_ctx(n->deflt);
    pthread_mutex_lock(&inners_lock);
    n->next = inners;
    inners = n;
    pthread_mutex_unlock(&inners_lock);
    *provctx = n->provctx;
    *out = filter_dispatch;
    return 1;
}

/* see provider.h */
OSSL_LIB_CTX *tls_provider_libctx_new(void)
{
    pthread_once(&tmpl.once, tmpl_init);
    for (unsigned i = 0; i < NKEPT; i++)
        if (!tmpl.nkept[i])
            return NULL; /* not the default provider this was written for */
    struct outer *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->lib = OSSL_LIB_CTX_new();
    if (!o->lib || OSSL_PROVIDER_add_builtin(o->lib, FILTER_NAME, filter_init) != 1 ||
        !(o->prov = OSSL_PROVIDER_load(o->lib, FILTER_NAME))) {
        OSSL_LIB_CTX_free(o->lib);
        free(o);
        ERR_clear_error();
        return NULL;
    }
    pthread_mutex_lock(&inners_lock);
    o->next = outers;
    outers = o;
    pthread_mutex_unlock(&inners_lock);
    return o->lib;
}

/* see provider.h */
void tls_provider_libctx_free(OSSL_LIB_CTX *lib)
{
    if (!lib)
        return;
    pthread_mutex_lock(&inners_lock);
    struct outer **pp = &outers;
    while (*pp && (*pp)->lib != lib)
        pp = &(*pp)->next;
    struct outer *o = *pp;
    if (o)
        *pp = o->next;
    pthread_mutex_unlock(&inners_lock);
    if (o)
        OSSL_PROVIDER_unload(o->prov);
    OSSL_LIB_CTX_free(lib);
    free(o);
}

/* see provider.h */
unsigned tls_provider_offered(int op)
{
    pthread_once(&tmpl.once, tmpl_init);
    int i = kept_index(op);
    return i < 0 ? 0 : tmpl.nkept[i];
}
