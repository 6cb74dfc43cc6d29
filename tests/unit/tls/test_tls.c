/* The TLS layer over socketpairs: contexts and their named failures, the
 * transport in each verification mode with the cause of each refusal
 * (unknown CA, expired, not yet valid, revoked, wrong key usage, no
 * certificate, host name and IP mismatch, protocol version, no shared
 * cipher, plaintext), the identity read from a client certificate, CRLs
 * and revocation after a reload, SNI, ALPN, expiry reports, client
 * contexts and resumption, reload keeping the old material on failure.
 * The PKI is made at run time with the openssl CLI (tests only): nothing
 * secret is committed. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "pki_fixture.h"
#include "scratch.h"
#include "test.h"
#include "tls/tls.h"

static char dir[] = "/tmp/ward-tls-XXXXXX";
static char err[1024];

static void make_pki(void)
{
    pki_fixture_ca();
    pki_fixture_csr("srv", "/CN=localhost");
    pki_fixture_sign("srv",
                     "subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n");
    pki_fixture_csr("cli", "/OU=Devices/CN=dev-7");
    pki_fixture_sign("cli",
                     "extendedKeyUsage=clientAuth\\nsubjectAltName=email:d7@x.test,URI:urn:d7\\n");
    scratch_sh("openssl req -x509 " PKI_EC
               " -keyout rogue.key -out rogue.crt -days 2 -subj /CN=rogue "
               "-addext extendedKeyUsage=clientAuth");
    scratch_sh("openssl pkey -in srv.key -aes256 -passout pass:pw -out srv-enc.key");
    /* An intermediate CA known only from the server's cafile bundle. */
    pki_fixture_csr("int", "/CN=TestInt");
    pki_fixture_sign(
        "int", "basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign,cRLSign\\n");
    scratch_sh("openssl x509 -req -in srv.csr -CA int.crt -CAkey int.key -CAcreateserial -days 2 "
               "-extfile srv.ext -out srv-int.crt && cat ca.crt int.crt > bundle.crt");
    scratch_sh("openssl x509 -req -in cli.csr -CA int.crt -CAkey int.key -CAcreateserial -days 2 "
               "-extfile cli.ext -out cli-int.crt");
    pki_fixture_ca_db("commonName=supplied\\n");
    scratch_sh(PKI_CA
               " -in cli.csr -startdate 200101000000Z -enddate 200102000000Z -extfile cli.ext "
               "-out expired.crt");
    scratch_sh(PKI_CA
               " -in cli.csr -startdate 20990101000000Z -enddate 20991231000000Z -extfile cli.ext "
               "-out future.crt");
    scratch_sh(PKI_CA
               " -in srv.csr -startdate 200101000000Z -enddate 200102000000Z -extfile srv.ext "
               "-out srv-expired.crt");
    scratch_sh(PKI_CA " -in cli.csr -days 2 -extfile cli.ext -out revoked.crt");
    scratch_sh(PKI_CA " -gencrl -crldays 2 -out empty.crl");
    scratch_sh(PKI_CA " -revoke revoked.crt && " PKI_CA " -gencrl -crldays 2 -out revoked.crl");
    scratch_sh(
        PKI_CA
        " -gencrl -crl_lastupdate 200101000000Z -crl_nextupdate 200102000000Z -out stale.crl");
    /* SNI certificates, and a CA directory for capath. */
    pki_fixture_csr("sni", "/CN=wild");
    pki_fixture_sign("sni", "subjectAltName=DNS:*.example.test\\n");
    pki_fixture_csr("sni2", "/CN=exact");
    pki_fixture_sign("sni2", "subjectAltName=DNS:mqtt.other.test\\n");
    scratch_sh("mkdir capath && cp ca.crt capath/ && openssl rehash capath");
    scratch_sh(
        "cat cli.crt cli.key > cli-combined.pem && openssl pkey -in cli.key -aes256 -passout "
        "pass:pw -out cli-enc.key");
}

static struct tls_server_config server_cfg(enum tls_verify v)
{
    return (struct tls_server_config){.certfile = scratch_path("srv.crt"),
                                      .keyfile = scratch_path("srv.key"),
                                      .cafile = scratch_path("ca.crt"),
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
    struct tls_client_config cc = {.cafile = scratch_path("ca.crt"),
                                   .certfile = scratch_path("cli.crt"),
                                   .keyfile = scratch_path("cli.key")};
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
    struct tls_client_config cc = {
        .cafile = scratch_path("ca.crt"), .certfile = cert, .keyfile = key};
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
    refused(TLS_VERIFY_REQUIRED, scratch_path("rogue.crt"), scratch_path("rogue.key"),
            "unknown CA");
    refused(TLS_VERIFY_OPTIONAL, scratch_path("rogue.crt"), scratch_path("rogue.key"),
            "unknown CA");
}

TEST(optional_without_certificate)
{
    struct tls_server_config sc = server_cfg(TLS_VERIFY_OPTIONAL);
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    struct tls_client_config cc = {.cafile = scratch_path("ca.crt")};
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
    struct tls_client_config cc = {.cafile = scratch_path("ca.crt"), .servername = "other.test"};
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
    sc.keyfile = scratch_path("srv-enc.key");
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
    sc.keyfile = scratch_path("cli.key");
    ASSERT(!tls_server_new(&sc, err, sizeof(err)));
    if (!strstr(err, "does not match"))
        TEST_FAIL_("err: %s", err);
    sc = server_cfg(TLS_VERIFY_REQUIRED);
    sc.cafile = NULL;
    ASSERT(!tls_server_new(&sc, err, sizeof(err)));
    ASSERT(strstr(err, "no cacertfile"));
    sc = server_cfg(TLS_VERIFY_NONE);
    sc.certfile = scratch_path("missing.crt");
    ASSERT(!tls_server_new(&sc, err, sizeof(err)));
    ASSERT(strstr(err, "missing.crt"));
    sc = server_cfg(TLS_VERIFY_NONE);
    sc.min_version = "1.1";
    ASSERT(!tls_server_new(&sc, err, sizeof(err)));
    ASSERT(strstr(err, "tls_version"));
    sc = server_cfg(TLS_VERIFY_REQUIRED);
    sc.crlfile = scratch_path("ca.crt"); /* not a CRL */
    ASSERT(!tls_server_new(&sc, err, sizeof(err)));
    ASSERT(strstr(err, "no CRL found"));
}

TEST(reload_keeps_old_on_failure)
{
    scratch_sh("cp srv.crt live.crt && cp srv.key live.key");
    struct tls_server_config sc = server_cfg(TLS_VERIFY_NONE);
    sc.certfile = scratch_path("live.crt");
    sc.keyfile = scratch_path("live.key");
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    ASSERT(s);
    ASSERT(!tls_server_files_changed(s));
    scratch_sh(
        "cp cli.key live.key && touch -d 2020-01-01 live.key"); /* a key that does not match */
    ASSERT(tls_server_files_changed(s));
    ASSERT_EQ(tls_server_reload(s, err, sizeof(err)), -1);
    ASSERT(strstr(err, "does not match"));
    struct tls_client_config cc = {.cafile = scratch_path("ca.crt")};
    struct tls_client *c = tls_client_new(&cc, err, sizeof(err));
    void *st, *ct;
    ssize_t rc;
    ASSERT_EQ(pair(s, c, &st, &ct, &rc), 1); /* still serving the old material */
    done(st, ct);
    scratch_sh("cp srv.key live.key");
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
    ASSERT_EQ(SSL_CTX_load_verify_locations(cx, scratch_path("ca.crt"), NULL), 1);
    ASSERT_EQ(SSL_CTX_use_certificate_file(cx, scratch_path("cli.crt"), SSL_FILETYPE_PEM), 1);
    ASSERT_EQ(SSL_CTX_use_PrivateKey_file(cx, scratch_path("cli.key"), SSL_FILETYPE_PEM), 1);
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
/* One byte each way after the handshake: the client's first, then the
 * server's answer (which a TLS 1.3 ticket precedes). */
static void exchange(void *st, SSL *c)
{
    char b[8];
    ASSERT_EQ(SSL_write(c, "x", 1), 1);
    ssize_t n = TRANSPORT_WANT_READ;
    for (int i = 0; i < 200 && n == TRANSPORT_WANT_READ; i++)
        n = tls_transport_ops.read(st, b, sizeof(b));
    ASSERT_EQ(n, 1);
    ASSERT_EQ(tls_transport_ops.write(st, "y", 1), 1);
    int r = -1;
    for (int i = 0; i < 200 && r <= 0; i++)
        r = SSL_read(c, b, sizeof(b));
    ASSERT_EQ(r, 1);
    ASSERT_EQ(b[0], 'y');
}

static struct raw_result raw_handshake_ex(struct tls_server *s, SSL_CTX *cx, SSL_SESSION *offer,
                                          bool talk)
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
    if (talk)
        exchange(st, c); /* the TLS 1.3 ticket comes with the server's answer */
    else {
        char b[8];
        ASSERT_EQ(SSL_read(c, b, sizeof(b)), -1); /* nothing came after the handshake */
        ASSERT_EQ(SSL_get_error(c, -1), SSL_ERROR_WANT_READ);
    }
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

static struct raw_result raw_handshake(struct tls_server *s, SSL_CTX *cx, SSL_SESSION *offer)
{
    return raw_handshake_ex(s, cx, offer, true);
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
    sc.certfile = scratch_path("srv-int.crt");
    sc.cafile = scratch_path("bundle.crt");
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

/* A TLS 1.3 ticket is made only for a client that sent application data
 * (it comes ahead of the server's answer): a client that hangs up after
 * the handshake (a health check, a scanner) costs no ticket, and has no
 * session to resume. */
TEST(ticket_only_after_application_data)
{
    struct tls_server_config sc = server_cfg(TLS_VERIFY_REQUIRED);
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    ASSERT(s);
    SSL_CTX *cx = raw_client();
    struct raw_result quiet = raw_handshake_ex(s, cx, NULL, false);
    ASSERT(quiet.session);
    ASSERT_EQ(SSL_SESSION_is_resumable(quiet.session), 0);
    struct raw_result talked = raw_handshake_ex(s, cx, NULL, true);
    ASSERT_EQ(SSL_SESSION_is_resumable(talked.session), 1);
    struct raw_result again = raw_handshake_ex(s, cx, talked.session, false);
    ASSERT(again.reused); /* and the resumed one, quiet, made none either */
    ASSERT_EQ(SSL_SESSION_is_resumable(again.session), 1); /* the offered one */
    SSL_SESSION_free(quiet.session);
    SSL_SESSION_free(talked.session);
    SSL_SESSION_free(again.session);
    SSL_CTX_free(cx);
    tls_server_free(s);
}

/* A thread making its copy of the context after the files changed, but
 * before the reload, serves what was loaded, like every other thread. */
TEST(threads_serve_loaded_files_until_reload)
{
    scratch_sh("cp srv.crt live2.crt");
    struct tls_server_config sc = server_cfg(TLS_VERIFY_REQUIRED);
    sc.certfile = scratch_path("live2.crt");
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    ASSERT(s);
    scratch_sh(
        "cp srv-int.crt live2.crt && touch -d 2020-01-01 live2.crt"); /* valid, issuer unknown */
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

/* The server refuses the client (cert/key, NULL for none) with a cause
 * containing `want`, counted once. */
static void refused_by(const struct tls_server_config *sc, const char *cert, const char *key,
                       const char *want)
{
    struct tls_server *s = tls_server_new(sc, err, sizeof(err));
    if (!s)
        TEST_FAIL_("tls_server_new: %s", err);
    struct tls_client_config cc = {
        .cafile = scratch_path("ca.crt"), .certfile = cert, .keyfile = key};
    struct tls_client *c = tls_client_new(&cc, err, sizeof(err));
    ASSERT(c);
    void *st, *ct;
    ssize_t rc;
    ssize_t rs = pair(s, c, &st, &ct, &rc);
    if (rs != TRANSPORT_ERROR) {
        char b[8];
        rs = tls_transport_ops.read(st, b, sizeof(b));
    }
    ASSERT(rs == TRANSPORT_ERROR);
    const char *cause = tls_transport_ops.cause(st);
    if (!strstr(cause, want))
        TEST_FAIL_("cause \"%s\" lacks \"%s\"", cause, want);
    uint64_t counts[TLS_NCAUSES], total = 0;
    tls_server_counters(s, counts);
    for (int i = 0; i < TLS_NCAUSES; i++)
        total += counts[i];
    ASSERT_EQ(total, 1);
    done(st, ct);
    tls_client_free(c);
    tls_server_free(s);
}

/* The server accepts the client; returns whether it holds the client's
 * certificate as verified, and named dev-7. */
static bool accepted_as_verified(const struct tls_server_config *sc, const char *cert,
                                 const char *key)
{
    struct tls_server *s = tls_server_new(sc, err, sizeof(err));
    if (!s)
        TEST_FAIL_("tls_server_new: %s", err);
    struct tls_client_config cc = {
        .cafile = scratch_path("ca.crt"), .certfile = cert, .keyfile = key};
    struct tls_client *c = tls_client_new(&cc, err, sizeof(err));
    if (!c)
        TEST_FAIL_("tls_client_new: %s", err);
    void *st, *ct;
    ssize_t rc;
    ASSERT_EQ(pair(s, c, &st, &ct, &rc), 1);
    ASSERT_EQ(rc, 1);
    char b[8];
    ASSERT_EQ(tls_transport_ops.read(st, b, sizeof(b)), TRANSPORT_WANT_READ); /* still up */
    const struct tls_identity *id = tls_transport_identity(st);
    ASSERT(id);
    bool verified = id->verified && strcmp(id->cn, "dev-7") == 0;
    done(st, ct);
    tls_client_free(c);
    tls_server_free(s);
    return verified;
}

static void accepted_by(const struct tls_server_config *sc, const char *cert, const char *key)
{
    ASSERT(accepted_as_verified(sc, cert, key));
}

/* Each way a client certificate fails has its own cause. */
TEST(certificate_causes)
{
    struct tls_server_config sc = server_cfg(TLS_VERIFY_REQUIRED);
    refused_by(&sc, scratch_path("expired.crt"), scratch_path("cli.key"), "certificate expired");
    refused_by(&sc, scratch_path("future.crt"), scratch_path("cli.key"),
               "certificate not yet valid");
    /* A server certificate (EKU serverAuth) presented by a client. */
    refused_by(&sc, scratch_path("srv.crt"), scratch_path("srv.key"), "wrong key usage");
    /* Revoked by the CRL in force; one not on it passes. */
    sc.crlfile = scratch_path("revoked.crl");
    refused_by(&sc, scratch_path("revoked.crt"), scratch_path("cli.key"), "certificate revoked");
    accepted_by(&sc, scratch_path("cli.crt"), scratch_path("cli.key"));
    /* An intermediate beyond verify_depth. */
    sc = server_cfg(TLS_VERIFY_REQUIRED);
    sc.cafile = scratch_path("bundle.crt");
    sc.verify_depth = 1;
    refused_by(&sc, scratch_path("cli-int.crt"), scratch_path("cli.key"),
               "certificate chain too long");
    sc.verify_depth = 2;
    accepted_by(&sc, scratch_path("cli-int.crt"), scratch_path("cli.key"));
}

/* A CRL past its next update warns and still checks, unless crl_strict. */
TEST(stale_crl)
{
    struct tls_server_config sc = server_cfg(TLS_VERIFY_REQUIRED);
    sc.crlfile = scratch_path("stale.crl");
    accepted_as_verified(&sc, scratch_path("cli.crt"),
                         scratch_path("cli.key")); /* see the test below */
    refused_by(&sc, scratch_path("revoked.crt"), scratch_path("cli.key"), "certificate revoked");
    sc.crl_strict = true;
    refused_by(&sc, scratch_path("cli.crt"), scratch_path("cli.key"), "CRL has expired");
}

/* BUG (src/tls/tls.c, fill_identity via tls_handshake): with a stale CRL
 * and crl_strict off, verify_cb accepts the client, but the handshake then
 * fills the identity with verified = (SSL_get_verify_result == X509_V_OK),
 * and the verify result still holds X509_V_ERR_CRL_HAS_EXPIRED. So the
 * accepted client is reported as unverified: the broker ignores its
 * certificate (no peer_cert_as_username / clientid, no cert_cn/cert_ou
 * for the ACL), and without a password it is refused as anonymous.
 * Disabled until that is fixed: run it with
 * `unit_tls_test_tls stale_crl_identity_is_verified`. */
TEST(stale_crl_identity_is_verified)
{
    struct tls_server_config sc = server_cfg(TLS_VERIFY_REQUIRED);
    sc.crlfile = scratch_path("stale.crl");
    accepted_by(&sc, scratch_path("cli.crt"), scratch_path("cli.key"));
}

/* Several CRLs in one file; a connection made before its certificate was
 * revoked is found by tls_transport_revoked after the reload. */
TEST(revoked_after_reload)
{
    scratch_sh("cat empty.crl > live.crl");
    struct tls_server_config sc = server_cfg(TLS_VERIFY_REQUIRED);
    sc.crlfile = scratch_path("live.crl");
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    ASSERT(s);
    struct tls_client_config cc = {.cafile = scratch_path("ca.crt"),
                                   .certfile = scratch_path("revoked.crt"),
                                   .keyfile = scratch_path("cli.key")};
    struct tls_client *c = tls_client_new(&cc, err, sizeof(err));
    void *st, *ct;
    ssize_t rc;
    ASSERT_EQ(pair(s, c, &st, &ct, &rc), 1);
    ASSERT(!tls_transport_revoked(st, s));
    scratch_sh("cat revoked.crl empty.crl > live.crl && touch -d 2020-01-01 live.crl");
    ASSERT(tls_server_files_changed(s));
    ASSERT_EQ(tls_server_reload(s, err, sizeof(err)), 0);
    ASSERT(!tls_server_files_changed(s));
    ASSERT(tls_transport_revoked(st, s));
    /* Not before its handshake, nor without a certificate. */
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    void *fresh = tls_transport_new(s, sv[0], "peer");
    ASSERT(!tls_transport_ready(fresh));
    ASSERT(tls_transport_identity(fresh) == NULL);
    ASSERT(!tls_transport_revoked(fresh, s));
    tls_transport_ops.destroy(fresh);
    close(sv[0]);
    close(sv[1]);
    ASSERT(tls_transport_ready(st));
    done(st, ct);
    tls_client_free(c);
    tls_server_free(s);
}

/* The client refuses the server with a cause containing want. */
static void client_refuses(const struct tls_server_config *sc, const struct tls_client_config *cc,
                           const char *host, const char *want)
{
    struct tls_server *s = tls_server_new(sc, err, sizeof(err));
    ASSERT(s);
    struct tls_client *c = tls_client_new(cc, err, sizeof(err));
    ASSERT(c);
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    void *st = tls_transport_new(s, sv[0], "peer");
    void *ct = tls_client_transport_new(c, sv[1], host);
    ssize_t rs = 0, rc = 0;
    for (int i = 0; i < 200 && rc != TRANSPORT_ERROR && rc != 1; i++) {
        if (rs != 1 && rs != TRANSPORT_ERROR)
            rs = tls_transport_ops.handshake(st);
        rc = tls_transport_ops.handshake(ct);
    }
    ASSERT_EQ(rc, TRANSPORT_ERROR);
    const char *cause = tls_transport_ops.cause(ct);
    if (!strstr(cause, want))
        TEST_FAIL_("cause \"%s\" lacks \"%s\"", cause, want);
    /* The server hears why (an alert) and counts it. */
    if (rs != TRANSPORT_ERROR)
        rs = tls_transport_ops.handshake(st);
    ASSERT_EQ(rs, TRANSPORT_ERROR);
    tls_transport_ops.destroy(st);
    tls_transport_ops.destroy(ct);
    close(sv[0]);
    close(sv[1]);
    tls_client_free(c);
    tls_server_free(s);
}

TEST(client_side_causes)
{
    struct tls_server_config sc = server_cfg(TLS_VERIFY_NONE);
    struct tls_client_config cc = {.cafile = scratch_path("rogue.crt")};
    client_refuses(&sc, &cc, "localhost", "unknown CA");
    /* An IP address is checked against the IP SANs (the cert has 127.0.0.1). */
    cc = (struct tls_client_config){.cafile = scratch_path("ca.crt")};
    client_refuses(&sc, &cc, "127.0.0.2", "does not name '127.0.0.2'");
    /* ...and passes for the right one, with ALPN "mqtt" offered. */
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    cc.alpn = "mqtt";
    struct tls_client *c = tls_client_new(&cc, err, sizeof(err));
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    void *st = tls_transport_new(s, sv[0], "peer");
    void *ct = tls_client_transport_new(c, sv[1], "127.0.0.1");
    ssize_t rs = 0, rc = 0;
    for (int i = 0; i < 200 && (rs != 1 || rc != 1); i++) {
        if (rs != 1)
            rs = tls_transport_ops.handshake(st);
        if (rc != 1)
            rc = tls_transport_ops.handshake(ct);
        ASSERT(rs != TRANSPORT_ERROR && rc != TRANSPORT_ERROR);
    }
    ASSERT_EQ(rs, 1);
    ASSERT_EQ(rc, 1);
    /* Without a client certificate the identity is empty, unverified. */
    const struct tls_identity *id = tls_transport_identity(st);
    ASSERT(id && !id->verified && !id->cn[0]);
    tls_transport_ops.destroy(st);
    tls_transport_ops.destroy(ct);
    close(sv[0]);
    close(sv[1]);
    tls_client_free(c);
    tls_server_free(s);
}

/* Handshakes a raw OpenSSL client, set up by the caller, against s. Returns
 * the server's result; *client gets the client's. */
static ssize_t raw_try(struct tls_server *s, SSL *c, void **st_out, int sv[2], int *client)
{
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    void *st = tls_transport_new(s, sv[0], "peer");
    SSL_set_fd(c, sv[1]);
    SSL_set_connect_state(c);
    ssize_t rs = 0;
    int rc = 0;
    for (int i = 0; i < 200; i++) {
        if (rs != 1 && rs != TRANSPORT_ERROR)
            rs = tls_transport_ops.handshake(st);
        if (rc != 1 && rc != -2) {
            rc = SSL_do_handshake(c);
            if (rc != 1 && SSL_get_error(c, rc) != SSL_ERROR_WANT_READ &&
                SSL_get_error(c, rc) != SSL_ERROR_WANT_WRITE)
                rc = -2;
        }
        if ((rs == 1 || rs == TRANSPORT_ERROR) && (rc == 1 || rc == -2))
            break;
    }
    *st_out = st;
    *client = rc;
    return rs;
}

static void raw_refused(struct tls_server_config *sc, SSL_CTX *cx, const char *want,
                        enum tls_cause counted)
{
    struct tls_server *s = tls_server_new(sc, err, sizeof(err));
    if (!s)
        TEST_FAIL_("tls_server_new: %s", err);
    SSL *c = SSL_new(cx);
    void *st;
    int sv[2], rc;
    ASSERT_EQ(raw_try(s, c, &st, sv, &rc), TRANSPORT_ERROR);
    const char *cause = tls_transport_ops.cause(st);
    if (!strstr(cause, want))
        TEST_FAIL_("cause \"%s\" lacks \"%s\"", cause, want);
    uint64_t counts[TLS_NCAUSES];
    tls_server_counters(s, counts);
    ASSERT_EQ(counts[counted], 1);
    SSL_free(c);
    tls_transport_ops.destroy(st);
    close(sv[0]);
    close(sv[1]);
    tls_server_free(s);
}

/* Protocol versions, ciphers, key exchange groups. */
TEST(negotiation_failures)
{
    SSL_CTX *cx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(cx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_max_proto_version(cx, TLS1_2_VERSION);
    struct tls_server_config sc = server_cfg(TLS_VERIFY_NONE);
    sc.min_version = "1.3";
    raw_refused(&sc, cx, "protocol version", TLS_CAUSE_PROTOCOL_VERSION);
    SSL_CTX_free(cx);
    cx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(cx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_min_proto_version(cx, TLS1_3_VERSION);
    ASSERT_EQ(SSL_CTX_set_ciphersuites(cx, "TLS_AES_128_GCM_SHA256"), 1);
    sc = server_cfg(TLS_VERIFY_NONE);
    sc.ciphersuites = "TLS_AES_256_GCM_SHA384";
    raw_refused(&sc, cx, "no shared cipher", TLS_CAUSE_NO_SHARED_CIPHER);
    SSL_CTX_free(cx);
    cx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(cx, SSL_VERIFY_NONE, NULL);
    ASSERT_EQ(SSL_CTX_set1_groups_list(cx, "P-384"), 1);
    sc = server_cfg(TLS_VERIFY_NONE);
    sc.groups = "X25519";
    raw_refused(&sc, cx, "TLS handshake failed", TLS_CAUSE_NO_SHARED_CIPHER);
    SSL_CTX_free(cx);
    /* TLS 1.2 with a configured cipher list works. */
    cx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(cx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_max_proto_version(cx, TLS1_2_VERSION);
    sc = server_cfg(TLS_VERIFY_NONE);
    sc.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256";
    sc.groups = "X25519:P-256";
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    ASSERT(s);
    SSL *c = SSL_new(cx);
    void *st;
    int sv[2], rc;
    ASSERT_EQ(raw_try(s, c, &st, sv, &rc), 1);
    ASSERT_EQ(rc, 1);
    ASSERT_STR_EQ(tls_transport_describe(st), "TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256");
    SSL_free(c);
    tls_transport_ops.destroy(st);
    close(sv[0]);
    close(sv[1]);
    tls_server_free(s);
    SSL_CTX_free(cx);
}

/* ALPN: "mqtt" is chosen when offered; other protocols go on without. */
TEST(alpn)
{
    struct tls_server_config sc = server_cfg(TLS_VERIFY_NONE);
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    SSL_CTX *cx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(cx, SSL_VERIFY_NONE, NULL);
    const struct {
        const char *offer;
        unsigned len;
        const char *want;
    } cases[] = {{"\x08http/1.1\x04mqtt", 14, "mqtt"}, {"\x08http/1.1", 9, ""}};
    for (size_t i = 0; i < 2; i++) {
        SSL *c = SSL_new(cx);
        ASSERT_EQ(SSL_set_alpn_protos(c, (const unsigned char *)cases[i].offer, cases[i].len), 0);
        void *st;
        int sv[2], rc;
        ASSERT_EQ(raw_try(s, c, &st, sv, &rc), 1);
        const unsigned char *sel;
        unsigned n;
        SSL_get0_alpn_selected(c, &sel, &n);
        ASSERT_EQ(n, strlen(cases[i].want));
        if (n)
            ASSERT_MEM_EQ(sel, cases[i].want, n);
        SSL_free(c);
        tls_transport_ops.destroy(st);
        close(sv[0]);
        close(sv[1]);
    }
    SSL_CTX_free(cx);
    tls_server_free(s);
}

/* What is not TLS at all is named before OpenSSL sees it. */
TEST(plaintext_on_tls_port)
{
    struct tls_server_config sc = server_cfg(TLS_VERIFY_NONE);
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    const struct {
        const char *bytes;
        const char *want;
    } cases[] = {{"\x10\x0c\x00\x04MQTT", "plaintext on a TLS port (an MQTT CONNECT)"},
                 {"GET / HTTP/1.1\r\n", "plaintext on a TLS port (HTTP?)"},
                 {"\x01\x02", "plaintext on a TLS port"}};
    for (size_t i = 0; i < 3; i++) {
        int sv[2];
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        fcntl(sv[0], F_SETFL, O_NONBLOCK);
        void *st = tls_transport_new(s, sv[0], "peer");
        /* Nothing yet: waits. */
        ASSERT_EQ(tls_transport_ops.handshake(st), TRANSPORT_WANT_READ);
        ASSERT(write(sv[1], cases[i].bytes, strlen(cases[i].bytes)) > 0);
        char b[8];
        ASSERT_EQ(tls_transport_ops.read(st, b, sizeof(b)), TRANSPORT_ERROR);
        if (!strstr(tls_transport_ops.cause(st), cases[i].want))
            TEST_FAIL_("cause \"%s\"", tls_transport_ops.cause(st));
        tls_transport_ops.destroy(st);
        close(sv[0]);
        close(sv[1]);
    }
    uint64_t counts[TLS_NCAUSES];
    tls_server_counters(s, counts);
    ASSERT_EQ(counts[TLS_CAUSE_PLAINTEXT], 3);
    /* Counted from outside (net refusing a connection when busy). */
    tls_server_count(s, TLS_CAUSE_BUSY);
    tls_server_count(s, (enum tls_cause)TLS_NCAUSES); /* ignored */
    tls_server_counters(s, counts);
    ASSERT_EQ(counts[TLS_CAUSE_BUSY], 1);
    /* A peer that goes away mid-handshake. */
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    void *st = tls_transport_new(s, sv[0], "peer");
    ASSERT(write(sv[1], "\x16\x03\x01", 3) == 3);
    close(sv[1]);
    ASSERT_EQ(tls_transport_ops.write(st, "x", 1), TRANSPORT_ERROR);
    ASSERT(strstr(tls_transport_ops.cause(st), "TLS handshake failed: closed by the peer"));
    tls_server_counters(s, counts);
    ASSERT_EQ(counts[TLS_CAUSE_PEER_CLOSED], 1);
    ASSERT_EQ(counts[TLS_CAUSE_OTHER], 0);
    tls_transport_ops.destroy(st);
    close(sv[0]);
    tls_server_free(s);
}

/* Server and client transports over a new socketpair, both handshakes
 * done. */
static void connected(struct tls_server *s, struct tls_client *c, int sv[2], void **st_out,
                      void **ct_out)
{
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    void *st = tls_transport_new(s, sv[0], "peer");
    void *ct = tls_client_transport_new(c, sv[1], "localhost");
    ssize_t a = 0, z = 0;
    for (int i = 0; i < 200 && (a != 1 || z != 1); i++) {
        if (a != 1)
            a = tls_transport_ops.handshake(st);
        if (z != 1)
            z = tls_transport_ops.handshake(ct);
    }
    ASSERT(a == 1 && z == 1);
    *st_out = st;
    *ct_out = ct;
}

/* After the handshake: data both ways, the peer's close_notify, bytes that
 * are not TLS records, a peer that vanishes. */
TEST(io_after_handshake)
{
    struct tls_server_config sc = server_cfg(TLS_VERIFY_NONE);
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    struct tls_client_config cc = {.cafile = scratch_path("ca.crt")};
    struct tls_client *c = tls_client_new(&cc, err, sizeof(err));
    void *st, *ct;
    int sv[2];
    char b[64];
    /* Data, then a clean close: EOF. */
    connected(s, c, sv, &st, &ct);
    ASSERT_EQ(tls_transport_ops.write(st, "hello", 5), 5);
    ssize_t n = 0;
    for (int i = 0; i < 50 && n <= 0; i++)
        n = tls_transport_ops.read(ct, b, sizeof(b));
    ASSERT_EQ(n, 5);
    ASSERT_MEM_EQ(b, "hello", 5);
    tls_transport_ops.destroy(ct); /* sends close_notify */
    ASSERT_EQ(tls_transport_ops.read(st, b, sizeof(b)), TRANSPORT_EOF);
    tls_transport_ops.destroy(st);
    close(sv[0]);
    close(sv[1]);
    /* Garbage where a record should be. */
    connected(s, c, sv, &st, &ct);
    ASSERT_EQ(write(sv[1], "\x17\x03\x03\x00\x05garbage", 12), 12);
    ASSERT_EQ(tls_transport_ops.read(st, b, sizeof(b)), TRANSPORT_ERROR);
    if (!strstr(tls_transport_ops.cause(st), "TLS error: "))
        TEST_FAIL_("cause \"%s\"", tls_transport_ops.cause(st));
    tls_transport_ops.destroy(ct);
    tls_transport_ops.destroy(st);
    close(sv[0]);
    close(sv[1]);
    /* The peer's socket closes without close_notify: reading ends, and
     * writing is an error with its cause. */
    connected(s, c, sv, &st, &ct);
    shutdown(sv[1], SHUT_RDWR);
    ASSERT_EQ(tls_transport_ops.write(st, "late", 4), TRANSPORT_ERROR);
    if (!strstr(tls_transport_ops.cause(st), "Broken pipe"))
        TEST_FAIL_("cause \"%s\"", tls_transport_ops.cause(st));
    n = tls_transport_ops.read(st, b, sizeof(b));
    ASSERT(n == TRANSPORT_EOF || n == TRANSPORT_ERROR);
    tls_transport_ops.destroy(st);
    tls_transport_ops.destroy(ct);
    close(sv[0]);
    close(sv[1]);
    tls_client_free(c);
    tls_server_free(s);
}

/* Certificates chosen by server name; no match or no name keeps the
 * listener's own. The client checks the name it asked for. */
TEST(sni)
{
    struct tls_server_config sc = server_cfg(TLS_VERIFY_NONE);
    sc.sni[0] =
        (struct tls_sni){"*.example.test", scratch_path("sni.crt"), scratch_path("sni.key")};
    sc.sni[1] =
        (struct tls_sni){"mqtt.other.test", scratch_path("sni2.crt"), scratch_path("sni2.key")};
    sc.nsni = 2;
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    if (!s)
        TEST_FAIL_("%s", err);
    const struct {
        const char *name;
        bool ok;
    } cases[] = {{"a.example.test", true},    {"MQTT.other.test", true}, {"example.test", false},
                 {"a.b.example.test", false}, {"nothing.test", false},   {"localhost", true}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tls_client_config cc = {.cafile = scratch_path("ca.crt"),
                                       .servername = cases[i].name};
        struct tls_client *c = tls_client_new(&cc, err, sizeof(err));
        void *st, *ct;
        ssize_t rc;
        pair(s, c, &st, &ct, &rc);
        if ((rc == 1) != cases[i].ok)
            TEST_FAIL_("%s: client result %zd (%s)", cases[i].name, rc,
                       tls_transport_ops.cause(ct));
        done(st, ct);
        tls_client_free(c);
    }
    ASSERT_STR_EQ(tls_server_config(s)->sni[0].host, "*.example.test");
    tls_server_free(s);
    /* A bad SNI certificate fails the whole listener. (Only the first:
     * see sni_second_certificate_bad.) */
    sc.sni[0].keyfile = scratch_path("missing.key");
    ASSERT(!tls_server_new(&sc, err, sizeof(err)));
    ASSERT(strstr(err, "missing.key"));
}

/* BUG (src/tls/tls.c, build_all): when the SNI context i > 0 fails to
 * load, build_all frees the contexts 0..i-1 it made but leaves their
 * pointers in s->sni_ctx; tls_server_new then calls tls_server_free, which
 * frees them again: a double free (glibc aborts: "free(): double free
 * detected in tcache 2", from SSL_CTX_free in tls_server_free). A config
 * with a good first and a bad second SNI certificate crashes `ward serve`
 * instead of naming the file. Disabled until fixed: run it with
 * `unit_tls_test_tls sni_second_certificate_bad`. */
TEST(sni_second_certificate_bad)
{
    struct tls_server_config sc = server_cfg(TLS_VERIFY_NONE);
    sc.sni[0] =
        (struct tls_sni){"*.example.test", scratch_path("sni.crt"), scratch_path("sni.key")};
    sc.sni[1] =
        (struct tls_sni){"mqtt.other.test", scratch_path("sni2.crt"), scratch_path("missing.key")};
    sc.nsni = 2;
    ASSERT(!tls_server_new(&sc, err, sizeof(err)));
    ASSERT(strstr(err, "missing.key"));
}

/* Everything that can expire, with the days left. */
TEST(expiries)
{
    struct tls_server_config sc = server_cfg(TLS_VERIFY_REQUIRED);
    sc.certfile = scratch_path("srv-int.crt");
    sc.cafile = scratch_path("bundle.crt");
    sc.crlfile = scratch_path("revoked.crl");
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    ASSERT(s);
    struct tls_expiry ex[16];
    int n = tls_server_expiries(s, ex, 16);
    ASSERT_EQ(n, 5);
    const char *want[] = {"server certificate 'localhost'", "chain certificate 'TestInt'",
                          "CA certificate 'TestCA'", "CA certificate 'TestInt'",
                          "CRL next update of 'TestCA'"};
    for (size_t w = 0; w < 5; w++) {
        bool found = false;
        for (int i = 0; i < n; i++)
            if (strstr(ex[i].what, want[w])) {
                found = true;
                ASSERT(ex[i].days >= 0 && ex[i].days <= 2);
            }
        if (!found)
            TEST_FAIL_("no expiry for %s", want[w]);
    }
    ASSERT_EQ(tls_server_expiries(s, ex, 2), 2);
    tls_server_free(s);
    /* A stale CRL reports negative days. */
    sc = server_cfg(TLS_VERIFY_REQUIRED);
    sc.crlfile = scratch_path("stale.crl");
    s = tls_server_new(&sc, err, sizeof(err));
    n = tls_server_expiries(s, ex, 16);
    bool stale = false;
    for (int i = 0; i < n; i++)
        if (strstr(ex[i].what, "CRL next update") && ex[i].days < 0)
            stale = true;
    ASSERT(stale);
    tls_server_free(s);
}

/* Server context failures, each naming its file or setting. */
TEST(more_context_errors)
{
    struct tls_server_config sc = server_cfg(TLS_VERIFY_NONE);
    sc.keyfile = NULL;
    ASSERT(!tls_server_new(&sc, err, sizeof(err)));
    ASSERT(strstr(err, "needs certfile and keyfile"));
    sc = server_cfg(TLS_VERIFY_NONE);
    sc.certfile = scratch_path("srv-expired.crt");
    ASSERT(!tls_server_new(&sc, err, sizeof(err)));
    ASSERT(strstr(err, "the certificate expired on 2020-01-02"));
    sc = server_cfg(TLS_VERIFY_NONE);
    sc.keyfile = scratch_path("missing.key");
    ASSERT(!tls_server_new(&sc, err, sizeof(err)));
    ASSERT(strstr(err, "missing.key: cannot read the private key"));
    sc = server_cfg(TLS_VERIFY_REQUIRED);
    sc.cafile = scratch_path("missing-ca.crt");
    ASSERT(!tls_server_new(&sc, err, sizeof(err)));
    ASSERT(strstr(err, "missing-ca.crt: cannot load trusted CAs"));
    sc = server_cfg(TLS_VERIFY_REQUIRED);
    sc.crlfile = scratch_path("missing.crl");
    ASSERT(!tls_server_new(&sc, err, sizeof(err)));
    ASSERT(strstr(err, "missing.crl: No such file"));
    sc = server_cfg(TLS_VERIFY_NONE);
    sc.ciphers = "NOPE";
    ASSERT(!tls_server_new(&sc, err, sizeof(err)));
    ASSERT(strstr(err, "ciphers: no usable cipher in 'NOPE'"));
    /* A real suite whose cipher the handshake context leaves out (3DES;
     * src/tls/provider.h) is refused the same way, not offered. */
    sc = server_cfg(TLS_VERIFY_NONE);
    sc.ciphers = "DES-CBC3-SHA";
    ASSERT(!tls_server_new(&sc, err, sizeof(err)));
    ASSERT(strstr(err, "ciphers: no usable cipher in 'DES-CBC3-SHA'"));
    sc = server_cfg(TLS_VERIFY_NONE);
    sc.ciphersuites = "NOPE";
    ASSERT(!tls_server_new(&sc, err, sizeof(err)));
    ASSERT(strstr(err, "ciphersuites: no usable suite in 'NOPE'"));
    sc = server_cfg(TLS_VERIFY_NONE);
    sc.groups = "NOPE";
    ASSERT(!tls_server_new(&sc, err, sizeof(err)));
    ASSERT(strstr(err, "groups: unknown group in 'NOPE'"));
    /* A CA directory instead of a file. */
    sc = server_cfg(TLS_VERIFY_REQUIRED);
    sc.cafile = NULL;
    sc.capath = scratch_path("capath");
    accepted_by(&sc, scratch_path("cli.crt"), scratch_path("cli.key"));
    /* A file that disappears is "not changed" (it is being replaced). */
    scratch_sh("cp ca.crt gone.crt");
    sc = server_cfg(TLS_VERIFY_REQUIRED);
    sc.cafile = scratch_path("gone.crt");
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    ASSERT(s);
    scratch_sh("rm gone.crt");
    ASSERT(!tls_server_files_changed(s));
    ASSERT_EQ(tls_server_reload(s, err, sizeof(err)), -1);
    ASSERT(strstr(err, "gone.crt"));
    tls_server_free(s);
}

/* Client contexts: each failure named; the system store by default; a key
 * in the certificate file; an encrypted key. */
TEST(client_context_errors)
{
    struct tls_client_config cc = {.cafile = scratch_path("ca.crt"), .min_version = "1.0"};
    ASSERT(!tls_client_new(&cc, err, sizeof(err)));
    ASSERT(strstr(err, "tls_version: '1.0'"));
    cc = (struct tls_client_config){.cafile = scratch_path("ca.crt"), .ciphers = "NOPE"};
    ASSERT(!tls_client_new(&cc, err, sizeof(err)));
    ASSERT(strstr(err, "--ciphers: no usable cipher in 'NOPE'"));
    cc = (struct tls_client_config){.cafile = scratch_path("missing-ca.crt")};
    ASSERT(!tls_client_new(&cc, err, sizeof(err)));
    ASSERT(strstr(err, "missing-ca.crt: cannot load trusted CAs"));
    cc = (struct tls_client_config){.capath = scratch_path("missing-dir")};
    struct tls_client *c = tls_client_new(&cc, err, sizeof(err)); /* a path is looked up later */
    tls_client_free(c);
    cc = (struct tls_client_config){.cafile = scratch_path("ca.crt"),
                                    .certfile = scratch_path("missing.crt")};
    ASSERT(!tls_client_new(&cc, err, sizeof(err)));
    ASSERT(strstr(err, "missing.crt: cannot read the certificate"));
    cc = (struct tls_client_config){.cafile = scratch_path("ca.crt"),
                                    .certfile = scratch_path("cli.crt"),
                                    .keyfile = scratch_path("missing.key")};
    ASSERT(!tls_client_new(&cc, err, sizeof(err)));
    ASSERT(strstr(err, "missing.key: cannot read the private key"));
    cc.keyfile = scratch_path("cli-enc.key");
    ASSERT(!tls_client_new(&cc, err, sizeof(err)));
    ASSERT(strstr(err, "the private key is encrypted: give --key-password"));
    cc.key_password = "nope";
    ASSERT(!tls_client_new(&cc, err, sizeof(err)));
    ASSERT(strstr(err, "cannot decrypt the private key: wrong password"));
    cc.key_password = "pw";
    c = tls_client_new(&cc, err, sizeof(err));
    if (!c)
        TEST_FAIL_("%s", err);
    tls_client_free(c);
    cc = (struct tls_client_config){.cafile = scratch_path("ca.crt"),
                                    .certfile = scratch_path("cli.crt"),
                                    .keyfile = scratch_path("srv.key")};
    ASSERT(!tls_client_new(&cc, err, sizeof(err)));
    /* Named as OpenSSL puts it: the server side says "does not match". */
    ASSERT(strstr(err, "srv.key") && strstr(err, "mismatch"));
    /* The key in the certificate file; the system trust store. */
    cc = (struct tls_client_config){.certfile = scratch_path("cli-combined.pem")};
    c = tls_client_new(&cc, err, sizeof(err));
    if (!c)
        TEST_FAIL_("%s", err);
    tls_client_free(c);
    tls_client_free(NULL);
    tls_server_free(NULL);
}

/* A client that keeps its session resumes with it: the server, which
 * verified the certificate on the full handshake, names the client the
 * same on the resumed one. */
TEST(client_resumes)
{
    struct tls_server_config sc = server_cfg(TLS_VERIFY_REQUIRED);
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    struct tls_client_config cc = {.cafile = scratch_path("ca.crt"),
                                   .certfile = scratch_path("cli.crt"),
                                   .keyfile = scratch_path("cli.key"),
                                   .resume = true};
    struct tls_client *c = tls_client_new(&cc, err, sizeof(err));
    for (int round = 0; round < 3; round++) {
        void *st, *ct;
        ssize_t rc;
        ASSERT_EQ(pair(s, c, &st, &ct, &rc), 1);
        ASSERT_EQ(rc, 1);
        char b[8];
        /* Takes in the ticket that followed the handshake. */
        ASSERT_EQ(tls_transport_ops.read(ct, b, sizeof(b)), TRANSPORT_WANT_READ);
        const struct tls_identity *id = tls_transport_identity(st);
        ASSERT(id->verified);
        ASSERT_STR_EQ(id->cn, "dev-7");
        done(st, ct);
    }
    tls_client_free(c);
    tls_server_free(s);
}

/* The identity and the description are worked out when asked, from the
 * connection asked about: calls for two connections, alternating, each
 * answer for their own. */
TEST(identity_worked_out_per_connection)
{
    struct tls_server_config sc = server_cfg(TLS_VERIFY_OPTIONAL);
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    ASSERT(s);
    struct tls_client_config with = {.cafile = scratch_path("ca.crt"),
                                     .certfile = scratch_path("cli.crt"),
                                     .keyfile = scratch_path("cli.key")};
    struct tls_client_config without = {.cafile = scratch_path("ca.crt")};
    struct tls_client *c1 = tls_client_new(&with, err, sizeof(err));
    struct tls_client *c2 = tls_client_new(&without, err, sizeof(err));
    ASSERT(c1 && c2);
    void *st1, *ct1, *st2, *ct2;
    ssize_t rc;
    ASSERT_EQ(pair(s, c1, &st1, &ct1, &rc), 1);
    ASSERT_EQ(pair(s, c2, &st2, &ct2, &rc), 1);
    for (int round = 0; round < 2; round++) {
        const struct tls_identity *id = tls_transport_identity(st1);
        ASSERT(id && id->verified && !id->ambiguous);
        ASSERT_STR_EQ(id->cn, "dev-7");
        ASSERT_STR_EQ(id->ou, "Devices");
        ASSERT_STR_EQ(id->san_email, "d7@x.test");
        ASSERT(id->serial[0]);
        id = tls_transport_identity(st2);
        ASSERT(id && !id->verified);
        ASSERT_STR_EQ(id->cn, "");
        ASSERT_STR_EQ(id->serial, "");
    }
    ASSERT(strncmp(tls_transport_describe(st1), "TLSv1.3 ", 8) == 0);
    done(st1, ct1);
    done(st2, ct2);
    /* Before its handshake a connection has neither. */
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    void *fresh = tls_transport_new(s, sv[0], "peer");
    ASSERT(fresh);
    ASSERT(tls_transport_identity(fresh) == NULL);
    ASSERT_STR_EQ(tls_transport_describe(fresh), "");
    ASSERT_STR_EQ(tls_transport_ops.cause(fresh), "TLS error");
    tls_transport_ops.destroy(fresh);
    close(sv[0]);
    close(sv[1]);
    tls_client_free(c1);
    tls_client_free(c2);
    tls_server_free(s);
}

/* The heap is trimmed once no handshake runs and trim_after have ended
 * (failed ones and ones closed before the end count); never with
 * UINT32_MAX. */
TEST(trim_after_handshakes)
{
    struct tls_server_config sc = server_cfg(TLS_VERIFY_REQUIRED);
    sc.trim_after = 3;
    struct tls_server *s = tls_server_new(&sc, err, sizeof(err));
    ASSERT(s);
    struct tls_client_config cc = {.cafile = scratch_path("ca.crt"),
                                   .certfile = scratch_path("cli.crt"),
                                   .keyfile = scratch_path("cli.key")};
    struct tls_client *c = tls_client_new(&cc, err, sizeof(err));
    ASSERT(c);
    /* One still in its handshake holds the trim back. */
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    void *waiting = tls_transport_new(s, sv[0], "peer");
    ASSERT(waiting);
    void *st, *ct;
    ssize_t rc;
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(pair(s, c, &st, &ct, &rc), 1);
        done(st, ct);
    }
    ASSERT_EQ(tls_server_trims(s), 0);
    tls_transport_ops.destroy(waiting); /* the last running one ends: 4 ended */
    close(sv[0]);
    close(sv[1]);
    ASSERT_EQ(tls_server_trims(s), 1);
    tls_server_free(s);

    /* A refused handshake counts as ended. */
    sc.trim_after = 1;
    s = tls_server_new(&sc, err, sizeof(err));
    ASSERT(s);
    struct tls_client_config nocert = {.cafile = scratch_path("ca.crt")};
    struct tls_client *c2 = tls_client_new(&nocert, err, sizeof(err));
    ASSERT_EQ(pair(s, c2, &st, &ct, &rc), TRANSPORT_ERROR);
    ASSERT_EQ(tls_server_trims(s), 1);
    done(st, ct);
    tls_client_free(c2);
    tls_server_free(s);

    sc.trim_after = UINT32_MAX;
    s = tls_server_new(&sc, err, sizeof(err));
    ASSERT(s);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(pair(s, c, &st, &ct, &rc), 1);
        done(st, ct);
    }
    ASSERT_EQ(tls_server_trims(s), 0);
    tls_server_free(s);
    tls_client_free(c);
}

/* The rule itself: enough ended since the last trim, in proportion to the
 * connections open, and a second since the last one. */
TEST(trim_rule)
{
    ASSERT(tls_trim_due(256, 0, 256, 1000));
    ASSERT(!tls_trim_due(255, 0, 256, 1000 * 60));      /* too few ended */
    ASSERT(!tls_trim_due(256, 0, 256, 999));            /* too soon */
    ASSERT(!tls_trim_due(2499, 10000, 256, 1000 * 60)); /* < a quarter of 10,000 open */
    ASSERT(tls_trim_due(2500, 10000, 256, 1000));
    ASSERT(tls_trim_due(300, 1000, 256, 5000));
    ASSERT(!tls_trim_due(UINT32_MAX - 1, 0, UINT32_MAX, 1000 * 60)); /* never */
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* a write to a closed peer is an error, not a signal */
    scratch_open(dir);
    make_pki();
    RUN(stale_crl_identity_is_verified);
    RUN(sni_second_certificate_bad);
    RUN(mtls_ok_with_identity);
    RUN(refusals_have_causes);
    RUN(optional_without_certificate);
    RUN(client_checks_host);
    RUN(context_errors_name_files);
    RUN(reload_keeps_old_on_failure);
    RUN(chain_built_without_root);
    RUN(tickets_resume_across_threads);
    RUN(ticket_only_after_application_data);
    RUN(threads_serve_loaded_files_until_reload);
    RUN(resumed_keeps_identity);
    RUN(names);
    RUN(certificate_causes);
    RUN(stale_crl);
    RUN(revoked_after_reload);
    RUN(client_side_causes);
    RUN(negotiation_failures);
    RUN(alpn);
    RUN(plaintext_on_tls_port);
    RUN(io_after_handshake);
    RUN(sni);
    RUN(expiries);
    RUN(more_context_errors);
    RUN(client_context_errors);
    RUN(client_resumes);
    RUN(identity_worked_out_per_connection);
    RUN(trim_after_handshakes);
    RUN(trim_rule);
    SCRATCH_DONE();
}
