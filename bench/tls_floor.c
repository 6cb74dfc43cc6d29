/* OpenSSL's own memory floor for an idle server-side TLS 1.3 connection:
 * what any broker built on OpenSSL pays per connection at the least, for
 * comparison with ward's TLS layer (src/tls/tls.c). Links only OpenSSL.
 *
 *   build/tls_floor [-n N] [--server-only] [--cache] [--keep-buffers] [--tickets N]
 *                   [--cert F --key F --cafile F --client-cert F --client-key F]
 *
 * It makes N connections over AF_UNIX socketpairs, one at a time, in one
 * thread: an OpenSSL client on its defaults (TLS 1.3 only here, default
 * groups: X25519 is its key share) and a server with an EC P-256
 * certificate. Without --server-only the server requires a client
 * certificate and verifies it against the CA (mutual TLS). The
 * certificates are made in memory (a P-256 CA, a server and a client
 * certificate it signs) unless all five files are given.
 *
 * For each connection the handshake is completed, the client sends 2 bytes
 * of application data that the server reads (so the server has processed
 * the client's Finished and sent its session tickets, and its state is an
 * idle connection's), then the client's SSL and its end of the socketpair
 * are freed. The server keeps its SSL and its socket. The server context
 * has SSL_MODE_RELEASE_BUFFERS and SSL_free_buffers is called after the
 * read (--keep-buffers: neither).
 *
 * Method: mallinfo2().uordblks (bytes handed out by malloc, every arena) is
 * read before the first connection and after the last one, once every
 * client object is freed. Everything a handshake allocates for a while
 * (key shares, transcript, verification) is freed by then, so the growth
 * divided by N is what the N server SSL objects hold: the SSL, its
 * session, the peer's certificate and chain (mutual TLS), the socket BIO,
 * per-SSL copies the SSL_CTX hands out (verify parameters, cipher lists).
 * It is heap in use, not RSS: the RSS growth is printed too; it is larger
 * by the allocator's fragmentation (freed handshake memory between kept
 * objects), which depends on the allocator and on how many handshakes run
 * at once, not on OpenSSL. Contexts and certificates are made before the
 * first reading, so they are not counted (a server shares them).
 *
 * The server's session cache is off, as in ward; --cache leaves OpenSSL's
 * default (a TLS 1.3 server with stateless tickets adds no session to it;
 * the number held is printed either way). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static void die(const char *what)
{
    fprintf(stderr, "tls_floor: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static EVP_PKEY *p256(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    if (!k)
        die("EC key generation");
    return k;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (!e || !X509_add_ext(x, e, -1))
        die("certificate extension");
    X509_EXTENSION_free(e);
}

/* A certificate for key named cn, signed by ca_key (ca NULL: self-signed). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *ca, EVP_PKEY *ca_key, int kind)
{
    static long serial = 1;
    X509 *x = X509_new();
    if (!x)
        die("X509_new");
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 30);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : n);
    X509_set_pubkey(x, key);
    X509 *issuer = ca ? ca : x;
    if (kind == 0) {
        add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(x, issuer, NID_key_usage, "critical,digitalSignature");
        add_ext(x, issuer, NID_ext_key_usage, kind == 1 ? "serverAuth" : "clientAuth");
        if (kind == 1)
            add_ext(x, issuer, NID_subject_alt_name, "DNS:localhost");
    }
    add_ext(x, issuer, NID_subject_key_identifier, "hash");
    if (!X509_sign(x, ca_key, EVP_sha256()))
        die("X509_sign");
    return x;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static double server_cpu_us; /* CPU time spent in the server's calls */

static double thread_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Drives both ends of a socketpair until their handshakes are done. */
static void handshake(SSL *c, SSL *s)
{
    int cd = 0, sd = 0;
    for (int i = 0; i < 1000 && !(cd && sd); i++) { /* bounded: a few rounds suffice */
        if (!cd) {
            int r = SSL_do_handshake(c);
            if (r == 1)
                cd = 1;
            else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ)
                die("client handshake");
        }
        if (!sd) {
            double t0 = thread_cpu_us();
            int r = SSL_do_handshake(s);
            server_cpu_us += thread_cpu_us() - t0;
            if (r == 1)
                sd = 1;
            else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ)
                die("server handshake");
        }
    }
    if (!(cd && sd))
        die("handshake did not finish");
}

int main(int argc, char **argv)
{
    long n = 2000;
    int mtls = 1, cache = 0, release = 1, tickets = 2;
    const char *certf = NULL, *keyf = NULL, *caf = NULL, *ccertf = NULL, *ckeyf = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-n") && v)
            n = atol(argv[++i]);
        else if (!strcmp(a, "--server-only"))
            mtls = 0;
        else if (!strcmp(a, "--cache"))
            cache = 1;
        else if (!strcmp(a, "--keep-buffers"))
            release = 0;
        else if (!strcmp(a, "--tickets") && v)
            tickets = atoi(argv[++i]);
        else if (!strcmp(a, "--cert") && v)
            certf = argv[++i];
        else if (!strcmp(a, "--key") && v)
            keyf = argv[++i];
        else if (!strcmp(a, "--cafile") && v)
            caf = argv[++i];
        else if (!strcmp(a, "--client-cert") && v)
            ccertf = argv[++i];
        else if (!strcmp(a, "--client-key") && v)
            ckeyf = argv[++i];
        else {
            fprintf(
                stderr,
                "usage: tls_floor [-n N] [--server-only] [--cache] [--keep-buffers] [--tickets N]\n"
                "                 [--cert F --key F --cafile F --client-cert F "
                "--client-key F]\n");
            return 2;
        }
    }
    if (n < 1 || n > 100000)
        die("-n: 1 to 100000");

    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    if (!sctx || !cctx)
        die("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(sctx, TLS1_3_VERSION);
    SSL_CTX_set_min_proto_version(cctx, TLS1_3_VERSION);
    if (release)
        SSL_CTX_set_mode(sctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_num_tickets(sctx, (size_t)(tickets < 0 ? 0 : tickets));
    if (!cache)
        SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
    if (certf && keyf && caf && ccertf && ckeyf) {
        if (SSL_CTX_use_certificate_chain_file(sctx, certf) != 1 ||
            SSL_CTX_use_PrivateKey_file(sctx, keyf, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_load_verify_locations(sctx, caf, NULL) != 1 ||
            SSL_CTX_load_verify_locations(cctx, caf, NULL) != 1 ||
            SSL_CTX_use_certificate_chain_file(cctx, ccertf) != 1 ||
            SSL_CTX_use_PrivateKey_file(cctx, ckeyf, SSL_FILETYPE_PEM) != 1)
            die("loading the files");
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(caf);
        if (names)
            SSL_CTX_set_client_CA_list(sctx, names);
    } else if (certf || keyf || caf || ccertf || ckeyf) {
        die("give all five files or none");
    } else {
        EVP_PKEY *cak = p256(), *sk = p256(), *ck = p256();
        X509 *ca = make_cert(cak, "floor CA", NULL, cak, 0);
        X509 *sc = make_cert(sk, "localhost", ca, cak, 1);
        X509 *cc = make_cert(ck, "floor client", ca, cak, 2);
        if (SSL_CTX_use_certificate(sctx, sc) != 1 || SSL_CTX_use_PrivateKey(sctx, sk) != 1 ||
            SSL_CTX_use_certificate(cctx, cc) != 1 || SSL_CTX_use_PrivateKey(cctx, ck) != 1 ||
            X509_STORE_add_cert(SSL_CTX_get_cert_store(sctx), ca) != 1 ||
            X509_STORE_add_cert(SSL_CTX_get_cert_store(cctx), ca) != 1 ||
            SSL_CTX_add_client_CA(sctx, ca) != 1)
            die("using the certificates");
        X509_free(ca), X509_free(sc), X509_free(cc);
        EVP_PKEY_free(cak), EVP_PKEY_free(sk), EVP_PKEY_free(ck);
    }
    if (mtls)
        SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);

    SSL **servers = calloc((size_t)n, sizeof(*servers));
    if (!servers)
        die("out of memory");
    char group[64] = "?", suite[64] = "?";
    /* One connection first, not counted: lazily made shared state (fetched
     * algorithms, the first use of a context) is not per connection. */
    for (long i = -1; i < n; i++) {
        static size_t heap0;
        static long rss0;
        if (i == 0) {
            server_cpu_us = 0;
            heap0 = mallinfo2().uordblks;
            rss0 = rss_kb();
        }
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
            die("socketpair (raise the open files limit: ulimit -n)");
        SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
        if (!s || !c || !SSL_set_fd(s, sv[0]) || !SSL_set_fd(c, sv[1]))
            die("SSL_new");
        SSL_set_accept_state(s);
        SSL_set_connect_state(c);
        handshake(c, s);
        char buf[8];
        if (SSL_write(c, "hi", 2) != 2)
            die("application data");
        double t0 = thread_cpu_us();
        if (SSL_read(s, buf, sizeof(buf)) != 2)
            die("application data");
        server_cpu_us += thread_cpu_us() - t0;
        if (release)
            SSL_free_buffers(s);
        if (i < 0) {
            int nid = SSL_get_negotiated_group(s);
            snprintf(group, sizeof(group), "%s", OBJ_nid2sn(nid & ~TLSEXT_nid_unknown));
            snprintf(suite, sizeof(suite), "%s", SSL_get_cipher_name(s));
        }
        SSL_free(c);
        close(sv[1]);
        if (i < 0) {
            SSL_free(s);
            close(sv[0]);
        } else {
            servers[i] = s;
        }
        if (i == n - 1) {
            size_t heap1 = mallinfo2().uordblks;
            long rss1 = rss_kb();
            printf("tls_floor: %ld %s connections, TLS 1.3 %s, group %s, buffers %s, "
                   "session cache %s (%ld sessions held)\n",
                   n, mtls ? "mutual TLS" : "server-only TLS", suite, group,
                   release ? "released" : "kept", cache ? "default" : "off",
                   SSL_CTX_sess_number(sctx));
            printf("heap in use: %.0f bytes per connection (%.1f KB)\n",
                   (double)(heap1 - heap0) / (double)n, (double)(heap1 - heap0) / (double)n / 1024);
            printf("RSS growth:  %.0f bytes per connection\n", (double)(rss1 - rss0) * 1024 / n);
            printf("server CPU:  %.0f us per handshake (SSL_do_handshake and the first SSL_read, "
                   "%d session ticket%s)\n",
                   server_cpu_us / (double)n, tickets, tickets == 1 ? "" : "s");
        }
    }
    for (long i = 0; i < n; i++) {
        close(SSL_get_fd(servers[i]));
        SSL_free(servers[i]);
    }
    free(servers);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    return 0;
}
