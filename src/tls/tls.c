/* see tls.h */
#include "tls/tls.h"

#include "tls/provider.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/log.h"

#define MAX_FILES   5
#define MAX_THREADS 64

/* A worker thread's own copy of the listener's context, made in its own
 * OpenSSL library context. OpenSSL 3.0 takes read locks on a library
 * context's algorithm and name stores hundreds of times per handshake
 * (fetches, and the decoder lookup for the peer's public key); workers
 * sharing one library context keep moving those locks between cores. */
struct thread_ctx {
    OSSL_LIB_CTX *lib; /* made once, kept until tls_server_free: SSLs made
                          from an older ctx in it may still be open */
    SSL_CTX *ctx;      /* NULL: this thread uses the shared one */
    uint64_t gen;      /* the tls_server generation ctx was made for */
};

struct file_stamp {
    time_t mtime;
    off_t size;
    ino_t ino;
};

struct tls_server {
    struct tls_server_config cfg; /* strings owned (copies) */
    pthread_mutex_t lock;         /* guards ctx */
    /* The shared contexts' library context: the handshake filter
     * (provider.h), or the global one if OpenSSL refused it (not freed). */
    OSSL_LIB_CTX *lib;
    bool own_lib;
    SSL_CTX *ctx;
    SSL_CTX *sni_ctx[TLS_MAX_SNI]; /* guarded by lock too */
    struct file_stamp stamps[MAX_FILES];
    _Atomic uint64_t counters[TLS_NCAUSES];
    _Atomic uint64_t gen; /* bumped by every successful load */
    /* Handshakes running, ended since the allocator was last trimmed, and
     * when that was (ms, CLOCK_MONOTONIC): see handshake_ended(). */
    _Atomic uint32_t hs_running, hs_ended;
    _Atomic uint32_t conns; /* server connections open */
    _Atomic int64_t trimmed_ms;
    _Atomic uint64_t trims;
    /* Indexed by thread_slot(); each entry is touched by its thread only
     * (and by tls_server_free, once the threads are gone). */
    struct thread_ctx threads[MAX_THREADS];
};

static const char *const cause_names[TLS_NCAUSES] = {
    "no client certificate", "unknown CA",
    "certificate expired",   "certificate not yet valid",
    "certificate revoked",   "wrong key usage",
    "protocol version",      "no shared cipher",
    "handshake timeout",     "plaintext on a TLS port",
    "bad certificate",       "too many handshakes at once",
    "closed by the peer",    "other",
};

const char *tls_cause_name(enum tls_cause c)
{
    return (unsigned)c < TLS_NCAUSES ? cause_names[c] : "other";
}

/* ---- errors ---- */

static void ossl_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
    __attribute__((format(printf, 3, 0)));

static void ossl_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    unsigned long e = ERR_peek_last_error();
    char why[256] = "";
    if (e)
        ERR_error_string_n(e, why, sizeof(why));
    char head[512];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(head, sizeof(head), fmt, a, b); /* callers pass literals with two %s */
#pragma GCC diagnostic pop
    snprintf(err, errlen, "%s%s%s", head, e ? ": " : "", why);
    ERR_clear_error();
}

static bool file_says_encrypted(const char *path)
{
    FILE *f = fopen(path, "r");
    char buf[512] = "";
    if (f) {
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = '\0';
        fclose(f);
    }
    return strstr(buf, "ENCRYPTED") != NULL;
}

/* Never prompts on a terminal: the password is configured or absent. */
static int password_cb(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    if (!u)
        return -1;
    int n = (int)strlen(u);
    if (n > size)
        n = size;
    memcpy(buf, u, (size_t)n);
    return n;
}

/* ---- verification ---- */

static int ex_index = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

static void ex_init(void)
{
    ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* Where an SSL_CTX keeps its tls_server, for the verify callback. */
static int ctx_index(void)
{
    pthread_once(&ex_once, ex_init);
    return ex_index;
}

/* A stale CRL (past its next update) is reported loudly but, unless
 * crl_strict, does not lock every client out: the certificate is still
 * checked against it. Everything else is OpenSSL's verdict. */
static int verify_cb(int ok, X509_STORE_CTX *xs)
{
    if (ok)
        return 1;
    int e = X509_STORE_CTX_get_error(xs);
    if (e != X509_V_ERR_CRL_HAS_EXPIRED)
        return 0;
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct tls_server *s = ssl ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index()) : NULL;
    if (!s || s->cfg.crl_strict)
        return 0;
    static _Atomic uint64_t last;
    uint64_t now = (uint64_t)time(NULL);
    if (now - atomic_load(&last) > 60) {
        atomic_store(&last, now);
        log_warn("tls: the CRL in %s is past its next update; accepting anyway (set "
                 "crl_strict to refuse): refresh it (`ward cert crl`)",
                 s->cfg.crlfile ? s->cfg.crlfile : "(none)");
    }
    return 1;
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    for (unsigned i = 0; i < inlen; i += 1u + in[i])
        if (in[i] == 4 && i + 5 <= inlen && memcmp(in + i + 1, "mqtt", 4) == 0) {
            *out = in + i + 1;
            *outlen = 4;
            return SSL_TLSEXT_ERR_OK;
        }
    return SSL_TLSEXT_ERR_NOACK; /* other protocols: carry on without ALPN */
}

static int set_versions(SSL_CTX *ctx, const char *min, char *err, size_t errlen)
{
    int v = !min || strcmp(min, "1.2") == 0 ? TLS1_2_VERSION
            : strcmp(min, "1.3") == 0       ? TLS1_3_VERSION
                                            : 0;
    if (!v) {
        snprintf(err, errlen, "tls_version: '%s' (1.2 or 1.3)", min);
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, v);
    return 0;
}

static int load_crls(SSL_CTX *ctx, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    X509_STORE *st = SSL_CTX_get_cert_store(ctx);
    X509_CRL *crl;
    int n = 0;
    while ((crl = PEM_read_X509_CRL(f, NULL, NULL, NULL))) {
        X509_STORE_add_crl(st, crl);
        X509_CRL_free(crl);
        n++;
    }
    fclose(f);
    ERR_clear_error();
    if (!n) {
        snprintf(err, errlen, "%s: no CRL found", path);
        return -1;
    }
    /* Several CRLs: one per CA of the chain, so check them all. */
    X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK | (n > 1 ? X509_V_FLAG_CRL_CHECK_ALL : 0));
    return 0;
}

/* The private key is read in the global library context, not the
 * SSL_CTX's: a worker's context has no private-key decoders (provider.h).
 * OpenSSL moves the key into the context's provider on first use. */
static EVP_PKEY *read_key(const struct tls_server_config *c)
{
    BIO *in = BIO_new_file(c->keyfile, "r");
    if (!in)
        return NULL;
    EVP_PKEY *key = PEM_read_bio_PrivateKey_ex(in, NULL, password_cb, (void *)c->key_password,
                                               OSSL_LIB_CTX_get0_global_default(), NULL);
    BIO_free(in);
    return key;
}

static int load_identity(SSL_CTX *ctx, const struct tls_server_config *c, char *err, size_t errlen)
{
    if (SSL_CTX_use_certificate_chain_file(ctx, c->certfile) != 1) {
        ossl_err(err, errlen, "%s: cannot read the certificate chain%s", c->certfile, "");
        return -1;
    }
    EVP_PKEY *key = read_key(c);
    if (!key) {
        bool enc = file_says_encrypted(c->keyfile);
        ossl_err(err, errlen, "%s: %s", c->keyfile,
                 enc ? (c->key_password ? "cannot decrypt the private key: wrong key_password"
                                        : "the private key is encrypted: set key_password")
                     : "cannot read the private key");
        return -1;
    }
    int used = SSL_CTX_use_PrivateKey(ctx, key);
    EVP_PKEY_free(key); /* the context holds its own reference */
    if (used != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
            snprintf(err, errlen, "%s does not match %s", c->keyfile, c->certfile);
            ERR_clear_error();
            return -1;
        }
        ossl_err(err, errlen, "%s: %s", c->keyfile, "the private key cannot be used");
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "%s does not match %s", c->keyfile, c->certfile);
        ERR_clear_error();
        return -1;
    }
    X509 *x = SSL_CTX_get0_certificate(ctx);
    if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0) {
        char when[64];
        struct tm tm;
        ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm);
        strftime(when, sizeof(when), "%Y-%m-%d", &tm);
        snprintf(err, errlen, "%s: the certificate expired on %s", c->certfile, when);
        return -1;
    }
    return 0;
}

static int load_trust(SSL_CTX *ctx, const struct tls_server_config *c, char *err, size_t errlen)
{
    if (!c->cafile && !c->capath) {
        if (c->verify != TLS_VERIFY_NONE) {
            snprintf(err, errlen,
                     "client certificates are checked (verify_peer) but no "
                     "cacertfile or capath is set");
            return -1;
        }
        return 0;
    }
    if (SSL_CTX_load_verify_locations(ctx, c->cafile, c->capath) != 1) {
        ossl_err(err, errlen, "%s: cannot load trusted CAs%s", c->cafile ? c->cafile : c->capath,
                 "");
        return -1;
    }
    if (c->cafile) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(c->cafile);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
    }
    return c->crlfile ? load_crls(ctx, c->crlfile, err, errlen) : 0;
}

/* A certificate file without its chain would make OpenSSL build the chain
 * to send from the trust store on every handshake: a full verification of
 * our own certificate each time. Build it once here instead. The root is
 * left out (RFC 8446 4.4.2: the peer must have it already), which spares
 * the peer a certificate to parse. A chain that cannot be completed is sent
 * as far as it goes, as OpenSSL's per-handshake chain would be. */
static void build_chain(SSL_CTX *ctx)
{
    STACK_OF(X509) *chain = NULL;
    SSL_CTX_get0_chain_certs(ctx, &chain);
    if (!chain || sk_X509_num(chain) == 0)
        SSL_CTX_build_cert_chain(ctx, SSL_BUILD_CHAIN_FLAG_NO_ROOT |
                                          SSL_BUILD_CHAIN_FLAG_IGNORE_ERROR |
                                          SSL_BUILD_CHAIN_FLAG_CLEAR_ERROR);
    ERR_clear_error();
    SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
}

/* RFC 6125 6.4.3: "*.example.com" matches exactly one leftmost label. */
static bool sni_match(const char *pattern, const char *name)
{
    if (strncmp(pattern, "*.", 2) != 0)
        return strcasecmp(pattern, name) == 0;
    const char *dot = strchr(name, '.');
    return dot && dot != name && strcasecmp(pattern + 1, dot) == 0;
}

/* Picks the certificate for the name the client asked for; no match (or
 * no SNI) keeps the listener's own. */
static int sni_cb(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    struct tls_server *s = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name)
        return SSL_TLSEXT_ERR_OK;
    pthread_mutex_lock(&s->lock);
    for (unsigned i = 0; i < s->cfg.nsni; i++)
        if (s->sni_ctx[i] && sni_match(s->cfg.sni[i].host, name)) {
            SSL_set_SSL_CTX(ssl, s->sni_ctx[i]);
            break;
        }
    pthread_mutex_unlock(&s->lock);
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *build_server_ctx(struct tls_server *s, const struct tls_server_config *c,
                                 OSSL_LIB_CTX *lib, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new_ex(lib, NULL, TLS_server_method());
    if (!ctx) {
        ossl_err(err, errlen, "cannot create a TLS context%s%s", "", "");
        return NULL;
    }
    /* Idle connections give their buffers back; writes may be partial and
     * come from a buffer that moved (net compacts its output buffer). */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"ward", 4);
    /* One TLS 1.3 ticket per connection is enough to resume (OpenSSL's
     * default of two doubles the ticket work for nothing), and it is made
     * only once the client has sent application data (tls_read): a client
     * that hangs up after the handshake (a load balancer's health check, a
     * scanner, `openssl s_time -new`) never uses one, and a ticket costs
     * about a tenth of a handshake (the session is encoded, decoded and
     * encoded again, then encrypted): send_ticket. */
    SSL_CTX_set_num_tickets(ctx, 0);
    /* Resumption rides on stateless tickets: no server-side session cache,
     * whose lock every handshake would otherwise take. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
    SSL_CTX_set_ex_data(ctx, ctx_index(), s);
    int mode = c->verify == TLS_VERIFY_NONE ? SSL_VERIFY_NONE
               : c->verify == TLS_VERIFY_OPTIONAL
                   ? SSL_VERIFY_PEER
                   : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, verify_cb);
    /* Client certificates must be for client authentication (EKU). */
    X509_VERIFY_PARAM_set_purpose(SSL_CTX_get0_param(ctx), X509_PURPOSE_SSL_CLIENT);
    if (set_versions(ctx, c->min_version, err, errlen) < 0)
        goto fail;
    if (c->ciphers && SSL_CTX_set_cipher_list(ctx, c->ciphers) != 1) {
        ossl_err(err, errlen, "ciphers: no usable cipher in '%s'%s", c->ciphers, "");
        goto fail;
    }
    if (c->ciphersuites && SSL_CTX_set_ciphersuites(ctx, c->ciphersuites) != 1) {
        ossl_err(err, errlen, "ciphersuites: no usable suite in '%s'%s", c->ciphersuites, "");
        goto fail;
    }
    if (c->groups && SSL_CTX_set1_groups_list(ctx, c->groups) != 1) {
        ossl_err(err, errlen, "groups: unknown group in '%s'%s", c->groups, "");
        goto fail;
    }
    if (c->verify_depth) /* OpenSSL counts intermediates: 0 means none */
        SSL_CTX_set_verify_depth(ctx, (int)c->verify_depth - 1);
    if (load_identity(ctx, c, err, errlen) < 0 || load_trust(ctx, c, err, errlen) < 0)
        goto fail;
    build_chain(ctx);
    if (s->cfg.nsni)
        SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, s);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static void stamp_files(struct tls_server *s)
{
    const char *files[MAX_FILES] = {s->cfg.certfile, s->cfg.keyfile, s->cfg.cafile, s->cfg.crlfile,
                                    NULL};
    for (int i = 0; i < MAX_FILES; i++) {
        struct stat st;
        memset(&s->stamps[i], 0, sizeof(s->stamps[i]));
        if (files[i] && stat(files[i], &st) == 0)
            s->stamps[i] = (struct file_stamp){st.st_mtime, st.st_size, st.st_ino};
    }
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* The listener's context and one per SNI certificate (same trust and
 * protocol settings, another identity). All or nothing. */
static int build_all(struct tls_server *s, SSL_CTX **main, SSL_CTX **sni, char *err, size_t errlen)
{
    memset(sni, 0, TLS_MAX_SNI * sizeof(*sni));
    /* Named, not NULL: handshakes run with another default (server_handshake). */
    OSSL_LIB_CTX *lib = s->lib;
    if (!(*main = build_server_ctx(s, &s->cfg, lib, err, errlen)))
        return -1;
    for (unsigned i = 0; i < s->cfg.nsni && i < TLS_MAX_SNI; i++) {
        struct tls_server_config c = s->cfg;
        c.certfile = s->cfg.sni[i].certfile;
        c.keyfile = s->cfg.sni[i].keyfile;
        if (!(sni[i] = build_server_ctx(s, &c, lib, err, errlen))) {
            for (unsigned k = 0; k < i; k++) {
                SSL_CTX_free(sni[k]);
                sni[k] = NULL; /* sni may be the server's own array: no double free */
            }
            SSL_CTX_free(*main);
            *main = NULL;
            return -1;
        }
    }
    return 0;
}

/* see tls.h */
struct tls_server *tls_server_new(const struct tls_server_config *cfg, char *err, size_t errlen)
{
    if (!cfg->certfile || !cfg->keyfile) {
        snprintf(err, errlen, "a TLS listener needs certfile and keyfile");
        return NULL;
    }
    struct tls_server *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cfg = *cfg;
    s->cfg.certfile = dup_or_null(cfg->certfile);
    s->cfg.keyfile = dup_or_null(cfg->keyfile);
    s->cfg.key_password = dup_or_null(cfg->key_password);
    s->cfg.cafile = dup_or_null(cfg->cafile);
    s->cfg.capath = dup_or_null(cfg->capath);
    s->cfg.crlfile = dup_or_null(cfg->crlfile);
    s->cfg.min_version = dup_or_null(cfg->min_version);
    s->cfg.ciphers = dup_or_null(cfg->ciphers);
    s->cfg.ciphersuites = dup_or_null(cfg->ciphersuites);
    s->cfg.groups = dup_or_null(cfg->groups);
    if (!s->cfg.handshake_timeout_ms)
        s->cfg.handshake_timeout_ms = 10000;
    if (!s->cfg.max_handshakes)
        s->cfg.max_handshakes = 1000;
    if (!s->cfg.expiry_warn_days)
        s->cfg.expiry_warn_days = 30;
    pthread_mutex_init(&s->lock, NULL);
    for (unsigned i = 0; i < cfg->nsni && i < TLS_MAX_SNI; i++) {
        s->cfg.sni[i].host = dup_or_null(cfg->sni[i].host);
        s->cfg.sni[i].certfile = dup_or_null(cfg->sni[i].certfile);
        s->cfg.sni[i].keyfile = dup_or_null(cfg->sni[i].keyfile);
    }
    stamp_files(s);
    s->lib = tls_provider_libctx_new();
    s->own_lib = s->lib != NULL;
    if (!s->lib)
        s->lib = OSSL_LIB_CTX_get0_global_default();
    atomic_store(&s->gen, 1);
    if (build_all(s, &s->ctx, s->sni_ctx, err, errlen) < 0) {
        tls_server_free(s);
        return NULL;
    }
    return s;
}

/* see tls.h */
int tls_server_reload(struct tls_server *s, char *err, size_t errlen)
{
    SSL_CTX *fresh, *fresh_sni[TLS_MAX_SNI], *old_sni[TLS_MAX_SNI];
    if (build_all(s, &fresh, fresh_sni, err, errlen) < 0)
        return -1;
    pthread_mutex_lock(&s->lock);
    SSL_CTX *old = s->ctx;
    s->ctx = fresh;
    memcpy(old_sni, s->sni_ctx, sizeof(old_sni));
    memcpy(s->sni_ctx, fresh_sni, sizeof(old_sni));
    stamp_files(s);
    atomic_fetch_add(&s->gen, 1); /* each thread makes its copy anew */
    pthread_mutex_unlock(&s->lock);
    /* Connections made from the old contexts hold their own references. */
    SSL_CTX_free(old);
    for (unsigned i = 0; i < TLS_MAX_SNI; i++)
        SSL_CTX_free(old_sni[i]);
    return 0;
}

/* With s->lock held. */
static bool files_changed_locked(struct tls_server *s)
{
    const char *files[MAX_FILES] = {s->cfg.certfile, s->cfg.keyfile, s->cfg.cafile, s->cfg.crlfile,
                                    NULL};
    bool changed = false;
    for (int i = 0; i < MAX_FILES && !changed; i++) {
        struct stat st;
        if (!files[i])
            continue;
        if (stat(files[i], &st) != 0)
            continue; /* a file being replaced: look again next time */
        changed = st.st_mtime != s->stamps[i].mtime || st.st_size != s->stamps[i].size ||
                  st.st_ino != s->stamps[i].ino;
    }
    return changed;
}

/* see tls.h */
bool tls_server_files_changed(struct tls_server *s)
{
    pthread_mutex_lock(&s->lock);
    bool changed = files_changed_locked(s);
    pthread_mutex_unlock(&s->lock);
    return changed;
}

void tls_server_free(struct tls_server *s)
{
    if (!s)
        return;
    SSL_CTX_free(s->ctx);
    for (unsigned i = 0; i < MAX_THREADS; i++) {
        SSL_CTX_free(s->threads[i].ctx);
        tls_provider_libctx_free(s->threads[i].lib);
    }
    for (unsigned i = 0; i < TLS_MAX_SNI; i++) {
        SSL_CTX_free(s->sni_ctx[i]);
        free((char *)s->cfg.sni[i].host);
        free((char *)s->cfg.sni[i].certfile);
        free((char *)s->cfg.sni[i].keyfile);
    }
    if (s->own_lib)
        tls_provider_libctx_free(s->lib);
    free((char *)s->cfg.certfile);
    free((char *)s->cfg.keyfile);
    free((char *)s->cfg.key_password);
    free((char *)s->cfg.cafile);
    free((char *)s->cfg.capath);
    free((char *)s->cfg.crlfile);
    free((char *)s->cfg.min_version);
    free((char *)s->cfg.ciphers);
    free((char *)s->cfg.ciphersuites);
    free((char *)s->cfg.groups);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

const struct tls_server_config *tls_server_config(const struct tls_server *s)
{
    return &s->cfg;
}

void tls_server_counters(const struct tls_server *s, uint64_t out[TLS_NCAUSES])
{
    for (int i = 0; i < TLS_NCAUSES; i++)
        out[i] = atomic_load(&s->counters[i]);
}

uint64_t tls_server_trims(const struct tls_server *s)
{
    return atomic_load(&s->trims);
}

long tls_server_days_left(const struct tls_server *s)
{
    pthread_mutex_lock((pthread_mutex_t *)&s->lock);
    X509 *x = SSL_CTX_get0_certificate(s->ctx);
    int days = 0, secs = 0;
    if (x)
        ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x));
    pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
    return days;
}

/* ---- identity ---- */

static const char *const id_names[] = {"none", "cn", "dn", "san_dns", "san_email", "san_uri"};

int tls_id_field_parse(const char *s)
{
    for (int i = 0; i < (int)(sizeof(id_names) / sizeof(id_names[0])); i++)
        if (strcmp(s, id_names[i]) == 0)
            return i;
    return -1;
}

const char *tls_identity_get(const struct tls_identity *id, enum tls_id_field f)
{
    const char *v = NULL;
    switch (f) {
    case TLS_ID_CN:
        v = id->cn;
        break;
    case TLS_ID_DN:
        v = id->dn;
        break;
    case TLS_ID_SAN_DNS:
        v = id->san_dns;
        break;
    case TLS_ID_SAN_EMAIL:
        v = id->san_email;
        break;
    case TLS_ID_SAN_URI:
        v = id->san_uri;
        break;
    case TLS_ID_NONE:
    default:
        break;
    }
    return v && *v ? v : NULL;
}

/* Copies a name as UTF-8, whole or not at all: a NUL or control
 * character inside it, a string type that does not convert, or a name
 * longer than the field would make two certificates look alike ("admin\0x"
 * as "admin"). Returns false for such a name. */
static bool copy_name(const ASN1_STRING *s, char *out, size_t cap)
{
    unsigned char *u = NULL;
    int len = ASN1_STRING_to_UTF8(&u, s);
    bool ok = len >= 0 && (size_t)len < cap;
    for (int i = 0; ok && i < len; i++)
        ok = u[i] >= 0x20 && u[i] != 0x7f;
    if (ok) {
        memcpy(out, u, (size_t)len);
        out[len] = '\0';
    }
    OPENSSL_free(u);
    return ok;
}

/* The subject's one entry for nid ("" if none); false if it has several
 * (which one would be the identity?) or a name copy_name refuses. */
static bool subject_entry(X509_NAME *n, int nid, char *out, size_t cap)
{
    int i = X509_NAME_get_index_by_NID(n, nid, -1);
    if (i < 0)
        return true;
    if (X509_NAME_get_index_by_NID(n, nid, i) >= 0)
        return false;
    return copy_name(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i)), out, cap);
}

static bool first_san(GENERAL_NAMES *names, int type, char *out, size_t cap)
{
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type == type)
            return copy_name(g->d.ia5, out, cap);
    }
    return true;
}

/* Whether the handshake verified the peer's certificate. A certificate
 * accepted despite a stale CRL (crl_strict off: verify_cb let only that
 * error through) keeps its identity: letting it in with none would drop
 * every certificate-keyed rule, deny rules included. */
static bool verified(SSL *ssl)
{
    long r = SSL_get_verify_result(ssl);
    return r == X509_V_OK || r == X509_V_ERR_CRL_HAS_EXPIRED;
}

static void fill_identity(struct tls_identity *id, X509 *x, bool verified)
{
    memset(id, 0, sizeof(*id));
    if (!x)
        return;
    id->verified = verified;
    X509_NAME *n = X509_get_subject_name(x);
    bool ok = subject_entry(n, NID_commonName, id->cn, sizeof(id->cn)) &&
              subject_entry(n, NID_organizationalUnitName, id->ou, sizeof(id->ou));
    BIO *b = BIO_new(BIO_s_mem());
    if (b) { /* RFC 4514 one-line form */
        X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253);
        ok = ok && BIO_pending(b) < (int)sizeof(id->dn); /* never a cut DN */
        int len = BIO_read(b, id->dn, (int)sizeof(id->dn) - 1);
        id->dn[len > 0 ? len : 0] = '\0';
        BIO_free(b);
    }
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    ok = ok && first_san(names, GEN_DNS, id->san_dns, sizeof(id->san_dns)) &&
         first_san(names, GEN_EMAIL, id->san_email, sizeof(id->san_email)) &&
         first_san(names, GEN_URI, id->san_uri, sizeof(id->san_uri));
    GENERAL_NAMES_free(names);
    /* A verified certificate whose names cannot be read unambiguously
     * gives no identity at all, and says so: the broker refuses it rather
     * than let it in with fewer rules than its certificate carries. */
    if (!ok) {
        memset(id->cn, 0, sizeof(id->cn));
        memset(id->ou, 0, sizeof(id->ou));
        id->san_dns[0] = id->san_email[0] = id->san_uri[0] = '\0';
        id->ambiguous = true;
    }
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    snprintf(id->serial, sizeof(id->serial), "%s", hex ? hex : "");
    OPENSSL_free(hex);
    BN_free(bn);
}

/* ---- the transport ---- */

struct tls_client;

/* Kept small: a broker holds one per idle connection. What can be worked
 * out again from the SSL (the peer's identity, the protocol and cipher) is,
 * when asked; the cause of a failure is allocated when there is one; the
 * host name is a client's only (the one its server certificate must name). */
struct tls_conn {
    SSL *ssl;
    struct tls_client *owner; /* client side: where sessions are kept */
    struct tls_server *srv;
    char *cause; /* NULL until something failed */
    char *host;  /* client side */
    int fd;
    bool done, client;
    bool running;    /* counted in srv->hs_running */
    bool peeked;     /* the first byte was looked at */
    bool ticket_due; /* TLS 1.3 server: a ticket goes with the first answer */
};

/* Replaces t->cause; out of memory leaves the generic one (tls_cause()). */
static void set_cause(struct tls_conn *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_cause(struct tls_conn *t, const char *fmt, ...)
{
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    free(t->cause);
    t->cause = strdup(buf);
}

static enum tls_cause cause_of_verify(long v)
{
    switch (v) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        return TLS_CAUSE_UNKNOWN_CA;
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return TLS_CAUSE_EXPIRED;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return TLS_CAUSE_NOT_YET_VALID;
    case X509_V_ERR_CERT_REVOKED:
        return TLS_CAUSE_REVOKED;
    case X509_V_ERR_INVALID_PURPOSE:
    case X509_V_ERR_KEYUSAGE_NO_CERTSIGN:
        return TLS_CAUSE_BAD_USAGE;
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return TLS_CAUSE_BAD_CERT;
    default:
        return TLS_CAUSE_OTHER;
    }
}

static enum tls_cause cause_of_reason(int r)
{
    switch (r) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
        return TLS_CAUSE_NO_CERT;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_WRONG_SSL_VERSION:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
        return TLS_CAUSE_PROTOCOL_VERSION;
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SUITABLE_KEY_SHARE:
    case SSL_R_NO_SHARED_GROUPS:
    case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
        return TLS_CAUSE_NO_SHARED_CIPHER;
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
        return TLS_CAUSE_PLAINTEXT;
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
        return TLS_CAUSE_UNKNOWN_CA;
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
        return TLS_CAUSE_EXPIRED;
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
        return TLS_CAUSE_REVOKED;
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
        return TLS_CAUSE_BAD_CERT;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        return TLS_CAUSE_PEER_CLOSED;
    default:
        return TLS_CAUSE_OTHER;
    }
}

static void count(struct tls_conn *t, enum tls_cause c)
{
    if (t->srv)
        atomic_fetch_add(&t->srv->counters[c], 1);
}

/* Records why a handshake failed: the certificate verdict first (it is the
 * specific one), then OpenSSL's error queue. */
static ssize_t handshake_failed(struct tls_conn *t, int sslerr)
{
    long v = SSL_get_verify_result(t->ssl);
    unsigned long e = ERR_peek_last_error();
    enum tls_cause c;
    char detail[200] = "";
    if (v != X509_V_OK) {
        c = cause_of_verify(v);
        snprintf(detail, sizeof(detail), "%s", X509_verify_cert_error_string(v));
    } else if (e) {
        c = cause_of_reason(ERR_GET_REASON(e));
        ERR_error_string_n(e, detail, sizeof(detail));
    } else {
        c = sslerr == SSL_ERROR_SYSCALL ? TLS_CAUSE_PEER_CLOSED : TLS_CAUSE_OTHER;
        snprintf(detail, sizeof(detail), "%s",
                 sslerr == SSL_ERROR_SYSCALL ? "connection closed during the handshake"
                                             : "handshake failed");
    }
    if (v != X509_V_OK &&
        (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH))
        snprintf(detail, sizeof(detail), "the certificate does not name '%.160s'",
                 t->host ? t->host : "");
    set_cause(t, "TLS handshake failed: %s (%s)", tls_cause_name(c), detail);
    count(t, c);
    ERR_clear_error();
    return TRANSPORT_ERROR;
}

/* MQTT or HTTP sent to a TLS port: a TLS handshake starts with 0x16. */
static ssize_t check_plaintext(struct tls_conn *t)
{
    unsigned char b;
    if (t->peeked)
        return 0;
    ssize_t n = recv(t->fd, &b, 1, MSG_PEEK);
    if (n != 1)
        return 0; /* nothing yet: look at the first byte when it comes */
    t->peeked = true;
    if (b == 0x16)
        return 0;
    const char *looks = b == 0x10 ? " (an MQTT CONNECT)" : (b >= 'A' && b <= 'Z') ? " (HTTP?)" : "";
    set_cause(t, "TLS handshake failed: %s%s", tls_cause_name(TLS_CAUSE_PLAINTEXT), looks);
    count(t, TLS_CAUSE_PLAINTEXT);
    return TRANSPORT_ERROR;
}

/* A library context without algorithms (only OpenSSL's null provider). */
static OSSL_LIB_CTX *bare;
static pthread_once_t bare_once = PTHREAD_ONCE_INIT;

static void bare_init(void)
{
    OSSL_LIB_CTX *lib = OSSL_LIB_CTX_new();
    if (lib && OSSL_PROVIDER_load(lib, "null"))
        bare = lib;
    else
        OSSL_LIB_CTX_free(lib);
    ERR_clear_error();
}

/* Drives a server handshake with the thread's default library context set
 * to the bare one. Everything a handshake does goes through the context's
 * own library context but for one thing: OpenSSL 3.0 decodes a session
 * (d2i_SSL_SESSION: to make a ticket, it encodes the session and decodes
 * it again; to resume, it decodes the ticket's) in the default context,
 * and decoding the client certificate in it looks up a decoder for its
 * public key among all algorithms, about 90 us each time. Here the copy is
 * decoded without the key, which nothing reads: a resumed connection
 * verifies nothing, and its identity and revocation check use the names,
 * alternative names, issuer and serial. */
static int server_handshake(SSL *ssl)
{
    pthread_once(&bare_once, bare_init);
    if (!bare)
        return SSL_do_handshake(ssl);
    OSSL_LIB_CTX *prev = OSSL_LIB_CTX_set0_default(bare);
    int r = SSL_do_handshake(ssl);
    OSSL_LIB_CTX_set0_default(prev);
    return r;
}

/* see tls.h */
bool tls_trim_due(uint32_t ended, uint32_t conns, uint32_t after, int64_t since_ms)
{
    return after != UINT32_MAX && ended >= after && ended >= conns / 4 && since_ms >= 1000;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A server handshake is over (done, failed or closed). A handshake
 * allocates about 60 KB for a while (record buffers, key shares,
 * transcript, the client's chain being verified) between the few KB an
 * idle connection keeps; after a burst of them, glibc's heap holds those
 * freed pages between kept objects, resident, and only gives back its
 * top: 2,000 connections made at once left about 13 KB per connection
 * resident in freed chunks (bench/README.md). So after a burst the pages
 * the heap holds free go back to the kernel: when the last running
 * handshake of a listener ends, a second has passed since the last time
 * and at least trim_after handshakes, and a quarter as many as there are
 * connections open, have ended since. malloc_trim walks every free chunk
 * and advises each free page away, trimmed before or not: about 3 ms per
 * 1,000 connections held, on this thread, whatever was freed. Tying it
 * to the handshakes ended since, in proportion to the connections held,
 * bounds its share of the handshakes' CPU (about 1%) under steady
 * reconnects, while a storm gets one trim when it is over. */
static void handshake_ended(struct tls_conn *t)
{
    if (!t->running)
        return;
    t->running = false;
    struct tls_server *s = t->srv;
    uint32_t ended = atomic_fetch_add(&s->hs_ended, 1) + 1;
    if (atomic_fetch_sub(&s->hs_running, 1) != 1)
        return;
    uint32_t after = s->cfg.trim_after ? s->cfg.trim_after : TLS_TRIM_AFTER_DEFAULT;
    int64_t now = now_ms(), last = atomic_load(&s->trimmed_ms);
    if (!tls_trim_due(ended, atomic_load(&s->conns), after, now - last) ||
        !atomic_compare_exchange_strong(&s->trimmed_ms, &last, now))
        return;
    atomic_store(&s->hs_ended, 0);
    atomic_fetch_add(&s->trims, 1);
#ifdef __GLIBC__
    malloc_trim(0);
    log_debug("tls: freed handshake memory given back after %u handshakes (%lld ms)", ended,
              (long long)(now_ms() - now));
#endif
}

static ssize_t tls_handshake(void *arg)
{
    struct tls_conn *t = arg;
    if (t->done)
        return 1;
    if (!t->client && check_plaintext(t) < 0)
        return TRANSPORT_ERROR;
    ERR_clear_error();
    int r = t->client ? SSL_do_handshake(t->ssl) : server_handshake(t->ssl);
    if (r == 1) {
        t->done = true;
        t->ticket_due = !t->client && SSL_version(t->ssl) == TLS1_3_VERSION;
        handshake_ended(t);
        return 1;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return TRANSPORT_WANT_READ;
    if (e == SSL_ERROR_WANT_WRITE)
        return TRANSPORT_WANT_WRITE;
    ssize_t r2 = handshake_failed(t, e);
    handshake_ended(t);
    return r2;
}

/* One place maps OpenSSL's answers to the transport's. */
static ssize_t map_io(struct tls_conn *t, int r)
{
    int e = SSL_get_error(t->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return TRANSPORT_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TRANSPORT_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return TRANSPORT_EOF;
    case SSL_ERROR_SYSCALL:
        if (!ERR_peek_error() && errno == 0)
            return TRANSPORT_EOF; /* closed without close_notify */
        set_cause(t, "%s", errno ? strerror(errno) : "TLS I/O error");
        ERR_clear_error();
        return TRANSPORT_ERROR;
    default: {
        char why[200] = "";
        ERR_error_string_n(ERR_peek_last_error(), why, sizeof(why));
        set_cause(t, "TLS error: %s", why);
        ERR_clear_error();
        return TRANSPORT_ERROR;
    }
    }
}

/* The connection's TLS 1.3 ticket, written now through server_handshake
 * (which decodes the session copy the ticket is made from without the
 * client key's decoder search). A full socket buffer leaves it to the
 * next SSL_write, which sends it ahead of its data. */
static void send_ticket(struct tls_conn *t)
{
    t->ticket_due = false;
    ERR_clear_error();
    if (SSL_new_session_ticket(t->ssl) == 1)
        server_handshake(t->ssl);
    ERR_clear_error();
}

static ssize_t tls_read(void *arg, void *buf, size_t len)
{
    struct tls_conn *t = arg;
    if (!t->done) {
        ssize_t h = tls_handshake(t);
        if (h != 1)
            return h;
    }
    /* Drain what OpenSSL already decrypted too: epoll only sees the socket. */
    size_t got = 0;
    while (got < len) {
        errno = 0;
        ERR_clear_error();
        int r =
            SSL_read(t->ssl, (char *)buf + got, (int)(len - got > 1 << 30 ? 1 << 30 : len - got));
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        ssize_t m = map_io(t, r);
        if (got && (m == TRANSPORT_WANT_READ || m == TRANSPORT_WANT_WRITE))
            break;
        return got ? (ssize_t)got : m;
    }
    if (t->ticket_due) /* see build_server_ctx */
        send_ticket(t);
    return (ssize_t)got;
}

static ssize_t tls_write(void *arg, const void *buf, size_t len)
{
    struct tls_conn *t = arg;
    if (!t->done) {
        ssize_t h = tls_handshake(t);
        if (h != 1)
            return h;
    }
    errno = 0;
    ERR_clear_error();
    int r = SSL_write(t->ssl, buf, (int)(len > 1 << 30 ? 1 << 30 : len));
    return r > 0 ? r : map_io(t, r);
}

static const char *tls_cause(void *arg)
{
    struct tls_conn *t = arg;
    return t->cause ? t->cause : "TLS error";
}

static void keep_session(struct tls_conn *t);

static void tls_destroy(void *arg)
{
    struct tls_conn *t = arg;
    if (t->srv)
        atomic_fetch_sub(&t->srv->conns, 1);
    handshake_ended(t);
    keep_session(t);
    if (t->done)
        SSL_shutdown(t->ssl); /* best effort: send close_notify, don't wait */
    SSL_free(t->ssl);
    ERR_clear_error();
    free(t->cause);
    free(t->host);
    free(t);
}

const struct transport_ops tls_transport_ops = {
    .name = "tls",
    .handshake = tls_handshake,
    .read = tls_read,
    .write = tls_write,
    .cause = tls_cause,
    .destroy = tls_destroy,
};

/* This thread's index into tls_server.threads, -1 past MAX_THREADS. */
static int thread_slot(void)
{
    static _Atomic int next;
    static __thread int slot = -1;
    if (slot < 0) {
        int i = atomic_fetch_add(&next, 1);
        slot = i < MAX_THREADS ? i : MAX_THREADS;
    }
    return slot < MAX_THREADS ? slot : -1;
}

/* Makes this thread's copy of the context from the files of the last
 * successful load, with the shared context's ticket keys (a ticket made
 * by one worker resumes on any). The copy is only used if the files are
 * still those that were loaded: files changed since (and not reloaded yet)
 * leave the thread on the shared context until the next reload. */
static SSL_CTX *make_copy(struct tls_server *s, struct thread_ctx *tc, uint64_t gen)
{
    unsigned char keys[80];
    char err[256];
    if (!tc->lib && !(tc->lib = tls_provider_libctx_new()) && !(tc->lib = OSSL_LIB_CTX_new()))
        return NULL;
    if (tls_server_files_changed(s))
        return NULL;
    SSL_CTX *ctx = build_server_ctx(s, &s->cfg, tc->lib, err, sizeof(err));
    if (!ctx) {
        log_warn("tls: a worker's own TLS context: %s; it uses the shared one", err);
        return NULL;
    }
    pthread_mutex_lock(&s->lock);
    bool same = atomic_load(&s->gen) == gen && !files_changed_locked(s);
    bool ok = same && SSL_CTX_get_tlsext_ticket_keys(s->ctx, keys, sizeof(keys)) == 1 &&
              SSL_CTX_set_tlsext_ticket_keys(ctx, keys, sizeof(keys)) == 1;
    pthread_mutex_unlock(&s->lock);
    OPENSSL_cleanse(keys, sizeof(keys));
    ERR_clear_error();
    if (!ok) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* The context a new connection on this thread is made from: its own copy
 * when it has one for the current load, else the shared one (SNI switches
 * between shared contexts, so listeners with SNI certificates keep to those). */
static SSL *new_ssl(struct tls_server *s)
{
    int i = thread_slot();
    if (i >= 0 && !s->cfg.nsni) {
        struct thread_ctx *tc = &s->threads[i];
        uint64_t gen = atomic_load(&s->gen);
        if (tc->gen != gen) {
            SSL_CTX_free(tc->ctx); /* open connections hold their own references */
            tc->ctx = make_copy(s, tc, gen);
            tc->gen = gen;
        }
        if (tc->ctx)
            return SSL_new(tc->ctx);
    }
    pthread_mutex_lock(&s->lock);
    SSL *ssl = SSL_new(s->ctx); /* holds a reference to this context */
    pthread_mutex_unlock(&s->lock);
    return ssl;
}

/* see tls.h */
void *tls_transport_new(struct tls_server *s, int fd, const char *peer)
{
    struct tls_conn *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->ssl = new_ssl(s);
    if (!t->ssl) {
        free(t);
        return NULL;
    }
    (void)peer; /* net logs it; nothing here names it */
    t->fd = fd;
    t->srv = s;
    t->running = true;
    atomic_fetch_add(&s->hs_running, 1);
    atomic_fetch_add(&s->conns, 1);
    SSL_set_fd(t->ssl, fd);
    SSL_set_accept_state(t->ssl);
    return t;
}

/* see tls.h: worked out from the peer's certificate, which the session
 * keeps anyway, rather than kept per connection (1.7 KB). */
const struct tls_identity *tls_transport_identity(void *arg)
{
    static __thread struct tls_identity id;
    struct tls_conn *t = arg;
    if (!t->done)
        return NULL;
    X509 *peer = SSL_get0_peer_certificate(t->ssl);
    fill_identity(&id, peer, peer && verified(t->ssl));
    ERR_clear_error();
    return &id;
}

/* see tls.h */
const char *tls_transport_describe(void *arg)
{
    static __thread char desc[96];
    struct tls_conn *t = arg;
    if (!t->done)
        return "";
    snprintf(desc, sizeof(desc), "%s %s", SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl));
    return desc;
}

bool tls_transport_ready(void *arg)
{
    return ((struct tls_conn *)arg)->done;
}

/* see tls.h */
bool tls_transport_revoked(void *arg, struct tls_server *s)
{
    struct tls_conn *t = arg;
    X509 *peer = t->done ? SSL_get0_peer_certificate(t->ssl) : NULL;
    if (!peer)
        return false;
    bool revoked = false;
    pthread_mutex_lock(&s->lock);
    STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(SSL_CTX_get_cert_store(s->ctx));
    for (int i = 0; i < sk_X509_OBJECT_num(objs) && !revoked; i++) {
        X509_CRL *crl = X509_OBJECT_get0_X509_CRL(sk_X509_OBJECT_value(objs, i));
        X509_REVOKED *r;
        if (crl && X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_issuer_name(peer)) == 0)
            revoked = X509_CRL_get0_by_cert(crl, &r, peer) == 1;
    }
    pthread_mutex_unlock(&s->lock);
    return revoked;
}

/* ---- clients ---- */

struct tls_client {
    SSL_CTX *ctx;
    char *servername, *alpn;
    bool insecure, resume;
    pthread_mutex_t lock; /* guards last */
    SSL_SESSION *last;
};

/* A client connection that ends keeps its session for the next one (by
 * then a TLS 1.3 ticket has arrived with the first application data). */
static void keep_session(struct tls_conn *t)
{
    struct tls_client *c = t->owner;
    if (!c || !c->resume || !t->done)
        return;
    SSL_SESSION *s = SSL_get1_session(t->ssl);
    if (!s)
        return;
    if (!SSL_SESSION_is_resumable(s)) {
        SSL_SESSION_free(s);
        return;
    }
    pthread_mutex_lock(&c->lock);
    SSL_SESSION_free(c->last);
    c->last = s;
    pthread_mutex_unlock(&c->lock);
}

/* see tls.h */
struct tls_client *tls_client_new(const struct tls_client_config *c, char *err, size_t errlen)
{
    struct tls_client *tc = calloc(1, sizeof(*tc));
    SSL_CTX *ctx = tc ? SSL_CTX_new(TLS_client_method()) : NULL;
    if (!ctx) {
        free(tc);
        ossl_err(err, errlen, "cannot create a TLS context%s%s", "", "");
        return NULL;
    }
    tc->ctx = ctx;
    pthread_mutex_init(&tc->lock, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    X509_VERIFY_PARAM_set_purpose(SSL_CTX_get0_param(ctx), X509_PURPOSE_SSL_SERVER);
    if (set_versions(ctx, c->min_version, err, errlen) < 0)
        goto fail;
    if (c->ciphers && SSL_CTX_set_cipher_list(ctx, c->ciphers) != 1) {
        ossl_err(err, errlen, "--ciphers: no usable cipher in '%s'%s", c->ciphers, "");
        goto fail;
    }
    if ((c->cafile || c->capath) ? SSL_CTX_load_verify_locations(ctx, c->cafile, c->capath) != 1
                                 : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        ossl_err(err, errlen, "%s: cannot load trusted CAs%s",
                 c->cafile   ? c->cafile
                 : c->capath ? c->capath
                             : "system store",
                 "");
        goto fail;
    }
    if (c->certfile) {
        SSL_CTX_set_default_passwd_cb(ctx, password_cb);
        SSL_CTX_set_default_passwd_cb_userdata(ctx, (void *)c->key_password);
        if (SSL_CTX_use_certificate_chain_file(ctx, c->certfile) != 1) {
            ossl_err(err, errlen, "%s: cannot read the certificate%s", c->certfile, "");
            goto fail;
        }
        const char *kf = c->keyfile ? c->keyfile : c->certfile;
        if (SSL_CTX_use_PrivateKey_file(ctx, kf, SSL_FILETYPE_PEM) != 1) {
            bool enc = file_says_encrypted(kf);
            ossl_err(err, errlen, "%s: %s", kf,
                     enc ? (c->key_password ? "cannot decrypt the private key: wrong password"
                                            : "the private key is encrypted: give --key-password")
                         : "cannot read the private key");
            goto fail;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            snprintf(err, errlen, "%s does not match %s", kf, c->certfile);
            goto fail;
        }
        build_chain(ctx);
    }
    tc->servername = c->servername ? strdup(c->servername) : NULL;
    tc->alpn = c->alpn ? strdup(c->alpn) : NULL;
    tc->insecure = c->insecure;
    tc->resume = c->resume;
    return tc;
fail:
    tls_client_free(tc);
    return NULL;
}

void tls_client_free(struct tls_client *c)
{
    if (!c)
        return;
    SSL_CTX_free(c->ctx);
    SSL_SESSION_free(c->last);
    pthread_mutex_destroy(&c->lock);
    free(c->servername);
    free(c->alpn);
    free(c);
}

static bool is_ip(const char *h)
{
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(h);
    ASN1_OCTET_STRING_free(ip);
    ERR_clear_error();
    return ip != NULL;
}

/* see tls.h */
void *tls_client_transport_new(struct tls_client *c, int fd, const char *host)
{
    struct tls_conn *t = calloc(1, sizeof(*t));
    if (!t || !(t->ssl = SSL_new(c->ctx))) {
        free(t);
        return NULL;
    }
    t->fd = fd;
    t->client = true;
    t->owner = c;
    if (c->resume) {
        pthread_mutex_lock(&c->lock);
        if (c->last)
            SSL_set_session(t->ssl, c->last);
        pthread_mutex_unlock(&c->lock);
    }
    const char *name = c->servername ? c->servername : host;
    if (!(t->host = strdup(name))) {
        SSL_free(t->ssl);
        free(t);
        return NULL;
    }
    SSL_set_fd(t->ssl, fd);
    SSL_set_connect_state(t->ssl);
    if (!is_ip(name))
        SSL_set_tlsext_host_name(t->ssl, name);
    if (!c->insecure) { /* RFC 6125: the SAN must name the host we asked for */
        X509_VERIFY_PARAM *p = SSL_get0_param(t->ssl);
        if (is_ip(name))
            X509_VERIFY_PARAM_set1_ip_asc(p, name);
        else
            X509_VERIFY_PARAM_set1_host(p, name, 0);
    }
    if (c->alpn) {
        unsigned char proto[256];
        size_t n = strlen(c->alpn);
        if (n < sizeof(proto)) {
            proto[0] = (unsigned char)n;
            memcpy(proto + 1, c->alpn, n);
            SSL_set_alpn_protos(t->ssl, proto, (unsigned)(n + 1));
        }
    }
    return t;
}

void tls_server_count(struct tls_server *s, enum tls_cause c)
{
    if ((unsigned)c < TLS_NCAUSES)
        atomic_fetch_add(&s->counters[c], 1);
}

static long days_until(const ASN1_TIME *t)
{
    int days = 0, secs = 0;
    if (!t || !ASN1_TIME_diff(&days, &secs, NULL, t))
        return 0;
    return secs < 0 && days <= 0 ? days - 1 : days;
}

static void add_expiry(struct tls_expiry *out, int *n, int max, const char *kind, X509_NAME *name,
                       const char *file, long days)
{
    if (*n >= max)
        return;
    char cn[200] = "";
    if (name)
        X509_NAME_get_text_by_NID(name, NID_commonName, cn, sizeof(cn));
    snprintf(out[*n].what, sizeof(out[*n].what), "%s '%s' (%s)", kind, cn, file ? file : "");
    out[*n].days = days;
    (*n)++;
}

/* see tls.h */
int tls_server_expiries(struct tls_server *s, struct tls_expiry *out, int max)
{
    int n = 0;
    pthread_mutex_lock(&s->lock);
    X509 *x = SSL_CTX_get0_certificate(s->ctx);
    if (x)
        add_expiry(out, &n, max, "server certificate", X509_get_subject_name(x), s->cfg.certfile,
                   days_until(X509_get0_notAfter(x)));
    STACK_OF(X509) *chain = NULL;
    SSL_CTX_get0_chain_certs(s->ctx, &chain);
    for (int i = 0; chain && i < sk_X509_num(chain); i++) {
        X509 *c = sk_X509_value(chain, i);
        add_expiry(out, &n, max, "chain certificate", X509_get_subject_name(c), s->cfg.certfile,
                   days_until(X509_get0_notAfter(c)));
    }
    STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(SSL_CTX_get_cert_store(s->ctx));
    for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
        X509_OBJECT *o = sk_X509_OBJECT_value(objs, i);
        X509 *c = X509_OBJECT_get0_X509(o);
        X509_CRL *crl = X509_OBJECT_get0_X509_CRL(o);
        if (c)
            add_expiry(out, &n, max, "CA certificate", X509_get_subject_name(c), s->cfg.cafile,
                       days_until(X509_get0_notAfter(c)));
        else if (crl && X509_CRL_get0_nextUpdate(crl))
            add_expiry(out, &n, max, "CRL next update of", X509_CRL_get_issuer(crl), s->cfg.crlfile,
                       days_until(X509_CRL_get0_nextUpdate(crl)));
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}
