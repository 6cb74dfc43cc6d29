/* The TLS layer over socketpairs: contexts and their named failures, the
 * transport in each verification mode with the cause of each refusal, the
 * identity read from a client certificate, reload keeping the old material
 * on failure. The PKI is made at run time with the openssl CLI (tests only). */
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "test.h"
#include "tls/tls.h"

static char dir[] = "/tmp/ward-tls-XXXXXX";
static char err[1024];

static const char *f(const char *name)
{
    static char p[8][300];
    static int i;
    i = (i + 1) % 8;
    snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
    return p[i];
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char cmd[2048], full[2300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    snprintf(full, sizeof(full), "cd %s && (%s) >/dev/null 2>&1", dir, cmd);
    if (system(full) != 0)
        TEST_FAIL_("command failed: %s", cmd);
}

static void make_pki(void)
{
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
       "-out ca.crt -days 2 -subj /CN=TestCA -addext basicConstraints=critical,CA:TRUE "
       "-addext keyUsage=critical,keyCertSign,cRLSign");
    sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key -out "
       "srv.csr -subj /CN=localhost");
    sh("printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > "
       "srv.ext && openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days "
       "2 -extfile srv.ext -out srv.crt");
    sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout cli.key -out "
       "cli.csr -subj /OU=Devices/CN=dev-7");
    sh("printf 'extendedKeyUsage=clientAuth\\nsubjectAltName=email:d7@x.test,URI:urn:d7\\n' > "
       "cli.ext && openssl x509 -req -in cli.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
       "-days 2 -extfile cli.ext -out cli.crt");
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout rogue.key "
       "-out rogue.crt -days 2 -subj /CN=rogue -addext extendedKeyUsage=clientAuth");
    sh("openssl pkey -in srv.key -aes256 -passout pass:pw -out srv-enc.key");
    /* An intermediate CA known only from the server's cafile bundle. */
    sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout int.key -out "
       "int.csr -subj /CN=TestInt && printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage="
       "critical,keyCertSign,cRLSign\\n' > int.ext && openssl x509 -req -in int.csr -CA ca.crt "
       "-CAkey ca.key -CAcreateserial -days 2 -extfile int.ext -out int.crt");
    sh("openssl x509 -req -in srv.csr -CA int.crt -CAkey int.key -CAcreateserial -days 2 "
       "-extfile srv.ext -out srv-int.crt && cat ca.crt int.crt > bundle.crt");
}

static struct tls_server_config server_cfg(enum tls_verify v)
{
    return (struct tls_server_config){.certfile = f("srv.crt"),
                                      .keyfile = f("srv.key"),
                                      .cafile = f("ca.crt"),
                                      .verify = v,
                                      .as_username = TLS_ID_CN};
}

/* Runs both handshakes over a socketpair until each is done or failed.
 * Returns the server's result (1 or TRANSPORT_ERROR). */
static ssize_t pair(struct tls_server *s, struct tls_client *c, void **st_out, void **ct_out,
                    ssize_t *client_result)
{
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    void *st = tls_transport_new(s, sv[0], "peer");
    void *ct = tls_client_transport_new(c, sv[1], "localhost");
    ssize_t rs = 0, rc = 0;
    for (int i = 0; i < 200; i++) {
        if (rs != 1 && rs != TRANSPORT_ERROR)
            rs = tls_transport_ops.handshake(st);
        if (rc != 1 && rc != TRANSPORT_ERROR)
            rc = tls_transport_ops.handshake(ct);
        if ((rs == 1 || rs == TRANSPORT_ERROR) && (rc == 1 || rc == TRANSPORT_ERROR))
            break;
    }
    /* TLS 1.3: a refused client certificate shows on the server's side once
     * the client's first data arrives; give it some. */
    if (rs == 1 && rc == 1) {
        char b[8];
        tls_transport_ops.write(ct, "ping", 4);
        for (int i = 0; i < 50; i++)
            if (tls_transport_ops.read(st, b, sizeof(b)) > 0)
                break;
    }
    *st_out = st;
    *ct_out = ct;
    *client_result = rc;
    return rs;
}

static void done(void *st, void *ct)
{
    tls_transport_ops.destroy(st);
    tls_transport_ops.destroy(ct);
}

TEST(mtls_ok_with_identity)
{
    struct tls_server_config sc = server_cfg(TLS_VERIFY_REQUIRED);
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    ASSERT(s);
    struct tls_client_config cc = {
        .cafile = f("ca.crt"), .certfile = f("cli.crt"), .keyfile = f("cli.key")};
    struct tls_client *c = tls_client_new(&cc, err, sizeof(err));
    ASSERT(c);
    void *st, *ct;
    ssize_t rc;
    ASSERT_EQ(pair(s, c, &st, &ct, &rc), 1);
    ASSERT_EQ(rc, 1);
    const struct tls_identity *id = tls_transport_identity(st);
    ASSERT(id && id->verified);
    ASSERT_STR_EQ(id->cn, "dev-7");
    ASSERT_STR_EQ(id->ou, "Devices");
    ASSERT_STR_EQ(tls_identity_get(id, TLS_ID_SAN_EMAIL), "d7@x.test");
    ASSERT_STR_EQ(tls_identity_get(id, TLS_ID_SAN_URI), "urn:d7");
    ASSERT(strstr(tls_identity_get(id, TLS_ID_DN), "CN=dev-7"));
    ASSERT(tls_identity_get(id, TLS_ID_SAN_DNS) == NULL);
    ASSERT(strstr(tls_transport_describe(st), "TLSv1.3"));
    ASSERT(!tls_transport_revoked(st, s));
    done(st, ct);
    tls_client_free(c);
    tls_server_free(s);
}

static void refused(enum tls_verify mode, const char *cert, const char *key, const char *want)
{
    struct tls_server_config sc = server_cfg(mode);
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    ASSERT(s);
    struct tls_client_config cc = {.cafile = f("ca.crt"), .certfile = cert, .keyfile = key};
    struct tls_client *c = tls_client_new(&cc, err, sizeof(err));
    ASSERT(c);
    void *st, *ct;
    ssize_t rc;
    ssize_t rs = pair(s, c, &st, &ct, &rc);
    if (rs != TRANSPORT_ERROR) { /* the refusal may surface on the first read */
        char b[8];
        rs = tls_transport_ops.read(st, b, sizeof(b));
    }
    ASSERT(rs == TRANSPORT_ERROR || rs == TRANSPORT_WANT_READ);
    const char *cause = tls_transport_ops.cause(st);
    if (!strstr(cause, want))
        TEST_FAIL_("cause \"%s\" lacks \"%s\"", cause, want);
    uint64_t counts[TLS_NCAUSES];
    tls_server_counters(s, counts);
    uint64_t total = 0;
    for (int i = 0; i < TLS_NCAUSES; i++)
        total += counts[i];
    ASSERT_EQ(total, 1);
    done(st, ct);
    tls_client_free(c);
    tls_server_free(s);
}

TEST(refusals_have_causes)
{
    refused(TLS_VERIFY_REQUIRED, NULL, NULL, "no client certificate");
    refused(TLS_VERIFY_REQUIRED, f("rogue.crt"), f("rogue.key"), "unknown CA");
    refused(TLS_VERIFY_OPTIONAL, f("rogue.crt"), f("rogue.key"), "unknown CA");
}

TEST(optional_without_certificate)
{
    struct tls_server_config sc = server_cfg(TLS_VERIFY_OPTIONAL);
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    struct tls_client_config cc = {.cafile = f("ca.crt")};
    struct tls_client *c = tls_client_new(&cc, err, sizeof(err));
    void *st, *ct;
    ssize_t rc;
    ASSERT_EQ(pair(s, c, &st, &ct, &rc), 1);
    const struct tls_identity *id = tls_transport_identity(st);
    ASSERT(id && !id->verified);
    done(st, ct);
    tls_client_free(c);
    tls_server_free(s);
}

TEST(client_checks_host)
{
    struct tls_server_config sc = server_cfg(TLS_VERIFY_NONE);
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    struct tls_client_config cc = {.cafile = f("ca.crt"), .servername = "other.test"};
    struct tls_client *c = tls_client_new(&cc, err, sizeof(err));
    void *st, *ct;
    ssize_t rc;
    pair(s, c, &st, &ct, &rc);
    ASSERT_EQ(rc, TRANSPORT_ERROR);
    ASSERT(strstr(tls_transport_ops.cause(ct), "does not name 'other.test'"));
    done(st, ct);
    tls_client_free(c);
    cc.insecure = true;
    c = tls_client_new(&cc, err, sizeof(err));
    pair(s, c, &st, &ct, &rc);
    ASSERT_EQ(rc, 1);
    done(st, ct);
    tls_client_free(c);
    tls_server_free(s);
}

TEST(context_errors_name_files)
{
    struct tls_server_config sc = server_cfg(TLS_VERIFY_NONE);
    sc.keyfile = f("srv-enc.key");
    ASSERT(!tls_server_new(&sc, err, sizeof(err)));
    ASSERT(strstr(err, "srv-enc.key") && strstr(err, "set key_password"));
    sc.key_password = "wrong";
    ASSERT(!tls_server_new(&sc, err, sizeof(err)));
    ASSERT(strstr(err, "wrong key_password"));
    sc.key_password = "pw";
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    ASSERT(s);
    tls_server_free(s);
    sc = server_cfg(TLS_VERIFY_NONE);
    sc.keyfile = f("cli.key");
    ASSERT(!tls_server_new(&sc, err, sizeof(err)));
    if (!strstr(err, "does not match"))
        TEST_FAIL_("err: %s", err);
    sc = server_cfg(TLS_VERIFY_REQUIRED);
    sc.cafile = NULL;
    ASSERT(!tls_server_new(&sc, err, sizeof(err)));
    ASSERT(strstr(err, "no cacertfile"));
    sc = server_cfg(TLS_VERIFY_NONE);
    sc.certfile = f("missing.crt");
    ASSERT(!tls_server_new(&sc, err, sizeof(err)));
    ASSERT(strstr(err, "missing.crt"));
    sc = server_cfg(TLS_VERIFY_NONE);
    sc.min_version = "1.1";
    ASSERT(!tls_server_new(&sc, err, sizeof(err)));
    ASSERT(strstr(err, "tls_version"));
    sc = server_cfg(TLS_VERIFY_REQUIRED);
    sc.crlfile = f("ca.crt"); /* not a CRL */
    ASSERT(!tls_server_new(&sc, err, sizeof(err)));
    ASSERT(strstr(err, "no CRL found"));
}

TEST(reload_keeps_old_on_failure)
{
    sh("cp srv.crt live.crt && cp srv.key live.key");
    struct tls_server_config sc = server_cfg(TLS_VERIFY_NONE);
    sc.certfile = f("live.crt");
    sc.keyfile = f("live.key");
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    ASSERT(s);
    ASSERT(!tls_server_files_changed(s));
    sh("sleep 1.1 && cp cli.key live.key"); /* a key that does not match */
    ASSERT(tls_server_files_changed(s));
    ASSERT_EQ(tls_server_reload(s, err, sizeof(err)), -1);
    ASSERT(strstr(err, "does not match"));
    struct tls_client_config cc = {.cafile = f("ca.crt")};
    struct tls_client *c = tls_client_new(&cc, err, sizeof(err));
    void *st, *ct;
    ssize_t rc;
    ASSERT_EQ(pair(s, c, &st, &ct, &rc), 1); /* still serving the old material */
    done(st, ct);
    sh("cp srv.key live.key");
    ASSERT_EQ(tls_server_reload(s, err, sizeof(err)), 0);
    ASSERT(tls_server_days_left(s) >= 1);
    tls_client_free(c);
    tls_server_free(s);
}

/* A raw OpenSSL client trusting ca.crt only, to see what the server sends. */
static SSL_CTX *raw_client(void)
{
    SSL_CTX *cx = SSL_CTX_new(TLS_client_method());
    ASSERT(cx);
    ASSERT_EQ(SSL_CTX_load_verify_locations(cx, f("ca.crt"), NULL), 1);
    ASSERT_EQ(SSL_CTX_use_certificate_file(cx, f("cli.crt"), SSL_FILETYPE_PEM), 1);
    ASSERT_EQ(SSL_CTX_use_PrivateKey_file(cx, f("cli.key"), SSL_FILETYPE_PEM), 1);
    SSL_CTX_set_verify(cx, SSL_VERIFY_PEER, NULL);
    return cx;
}

struct raw_result {
    int certs;              /* certificates the server sent */
    bool reused;            /* the offered session was resumed */
    SSL_SESSION *session;   /* the client's session after the server's ticket */
    struct tls_identity id; /* the client as the server saw it */
};

/* Handshakes cx with s over a socketpair, offering `offer` if not NULL. */
static struct raw_result raw_handshake(struct tls_server *s, SSL_CTX *cx, SSL_SESSION *offer)
{
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    void *st = tls_transport_new(s, sv[0], "peer");
    ASSERT(st);
    SSL *c = SSL_new(cx);
    SSL_set_fd(c, sv[1]);
    SSL_set_connect_state(c);
    if (offer)
        SSL_set_session(c, offer);
    ssize_t rs = 0;
    int rc = 0;
    for (int i = 0; i < 200 && (rs != 1 || rc != 1); i++) {
        if (rs != 1 && rs != TRANSPORT_ERROR)
            rs = tls_transport_ops.handshake(st);
        if (rc != 1)
            rc = SSL_do_handshake(c);
    }
    ASSERT_EQ(rs, 1);
    ASSERT_EQ(rc, 1);
    ASSERT_EQ(SSL_get_verify_result(c), X509_V_OK);
    char b[8];
    SSL_read(c, b, sizeof(b)); /* takes in the TLS 1.3 ticket */
    struct raw_result r = {.certs = sk_X509_num(SSL_get_peer_cert_chain(c)),
                           .reused = SSL_session_reused(c) == 1,
                           .session = SSL_get1_session(c),
                           .id = *tls_transport_identity(st)};
    SSL_shutdown(c); /* freed without it, the session would be marked not resumable */
    SSL_free(c);
    tls_transport_ops.destroy(st);
    close(sv[0]);
    close(sv[1]);
    return r;
}

static int certs_sent(struct tls_server *s)
{
    SSL_CTX *cx = raw_client();
    struct raw_result r = raw_handshake(s, cx, NULL);
    SSL_SESSION_free(r.session);
    SSL_CTX_free(cx);
    return r.certs;
}

/* The chain to send is built once from the trust store: it holds the
 * intermediate the certificate file lacks and never the root. */
TEST(chain_built_without_root)
{
    struct tls_server_config sc = server_cfg(TLS_VERIFY_REQUIRED);
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    ASSERT(s);
    ASSERT_EQ(certs_sent(s), 1);
    tls_server_free(s);
    sc.certfile = f("srv-int.crt");
    sc.cafile = f("bundle.crt");
    s = tls_server_new(&sc, err, sizeof(err));
    ASSERT(s);
    ASSERT_EQ(certs_sent(s), 2);
    ASSERT_EQ(tls_server_reload(s, err, sizeof(err)), 0);
    ASSERT_EQ(certs_sent(s), 2);
    tls_server_free(s);
}

struct other_thread {
    struct tls_server *s;
    SSL_CTX *cx;
    SSL_SESSION *offer;
    struct raw_result r;
};

static void *handshake_thread(void *arg)
{
    struct other_thread *o = arg;
    o->r = raw_handshake(o->s, o->cx, o->offer);
    return NULL;
}

static struct raw_result on_other_thread(struct tls_server *s, SSL_CTX *cx, SSL_SESSION *offer)
{
    struct other_thread o = {.s = s, .cx = cx, .offer = offer};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, handshake_thread, &o), 0);
    ASSERT_EQ(pthread_join(th, NULL), 0);
    return o.r;
}

/* Each thread makes its connections from its own copy of the context; a
 * ticket issued on one thread resumes on another, and still does after a
 * reload only if it was issued after it (a reload makes new ticket keys). */
TEST(tickets_resume_across_threads)
{
    struct tls_server_config sc = server_cfg(TLS_VERIFY_REQUIRED);
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    ASSERT(s);
    SSL_CTX *cx = raw_client();
    struct raw_result a = on_other_thread(s, cx, NULL);
    ASSERT(a.session && !a.reused);
    struct raw_result b = raw_handshake(s, cx, a.session);
    ASSERT(b.reused);
    struct raw_result c = on_other_thread(s, cx, b.session);
    ASSERT(c.reused);
    ASSERT_EQ(tls_server_reload(s, err, sizeof(err)), 0);
    struct raw_result d = raw_handshake(s, cx, c.session);
    ASSERT(!d.reused);
    struct raw_result e = on_other_thread(s, cx, d.session);
    ASSERT(e.reused);
    SSL_SESSION *all[] = {a.session, b.session, c.session, d.session, e.session};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        SSL_SESSION_free(all[i]);
    SSL_CTX_free(cx);
    tls_server_free(s);
}

/* A thread making its copy of the context after the files changed, but
 * before the reload, serves what was loaded, like every other thread. */
TEST(threads_serve_loaded_files_until_reload)
{
    sh("cp srv.crt live2.crt");
    struct tls_server_config sc = server_cfg(TLS_VERIFY_REQUIRED);
    sc.certfile = f("live2.crt");
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    ASSERT(s);
    sh("sleep 1.1 && cp srv-int.crt live2.crt"); /* valid, but its issuer is unknown here */
    SSL_CTX *cx = raw_client();
    struct raw_result r = on_other_thread(s, cx, NULL); /* verified against ca.crt */
    ASSERT_EQ(r.certs, 1);
    SSL_SESSION_free(r.session);
    SSL_CTX_free(cx);
    tls_server_free(s);
}

/* A resumed connection names its client as the full handshake did: the
 * certificate decoded out of the ticket keeps names, alternative names and
 * serial (its public key is not decoded: nothing reads it). */
TEST(resumed_keeps_identity)
{
    struct tls_server_config sc = server_cfg(TLS_VERIFY_REQUIRED);
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    ASSERT(s);
    SSL_CTX *cx = raw_client();
    struct raw_result a = raw_handshake(s, cx, NULL);
    struct raw_result b = raw_handshake(s, cx, a.session);
    ASSERT(!a.reused && b.reused);
    ASSERT(b.id.verified);
    ASSERT_STR_EQ(b.id.cn, "dev-7");
    ASSERT_STR_EQ(b.id.dn, a.id.dn);
    ASSERT_STR_EQ(b.id.san_email, "d7@x.test");
    ASSERT_STR_EQ(b.id.san_uri, "urn:d7");
    ASSERT(b.id.serial[0]);
    ASSERT_STR_EQ(b.id.serial, a.id.serial);
    struct raw_result c = raw_handshake(s, cx, b.session); /* a ticket made on resumption */
    ASSERT(c.reused);
    ASSERT_STR_EQ(c.id.cn, "dev-7");
    SSL_SESSION_free(a.session);
    SSL_SESSION_free(b.session);
    SSL_SESSION_free(c.session);
    SSL_CTX_free(cx);
    tls_server_free(s);
}

TEST(names)
{
    ASSERT_EQ(tls_id_field_parse("cn"), TLS_ID_CN);
    ASSERT_EQ(tls_id_field_parse("san_uri"), TLS_ID_SAN_URI);
    ASSERT_EQ(tls_id_field_parse("none"), TLS_ID_NONE);
    ASSERT_EQ(tls_id_field_parse("CN"), -1);
    ASSERT_STR_EQ(tls_cause_name(TLS_CAUSE_REVOKED), "certificate revoked");
    ASSERT_STR_EQ(tls_cause_name((enum tls_cause)99), "other");
}

int main(void)
{
    ASSERT(mkdtemp(dir));
    make_pki();
    RUN(mtls_ok_with_identity);
    RUN(refusals_have_causes);
    RUN(optional_without_certificate);
    RUN(client_checks_host);
    RUN(context_errors_name_files);
    RUN(reload_keeps_old_on_failure);
    RUN(chain_built_without_root);
    RUN(tickets_resume_across_threads);
    RUN(threads_serve_loaded_files_until_reload);
    RUN(resumed_keeps_identity);
    RUN(names);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    TEST_DONE();
}
