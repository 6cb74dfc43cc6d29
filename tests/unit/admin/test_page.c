#include "admin/page.h"

#include "admin/admin.h"
#include "admin/apikey.h"
#include "broker_rig.h"
#include "core/recent.h"
#include "pki_fixture.h"
#include "test.h"
#include "tls/tls.h"

static char out_text[1 << 17];

/* The JSON of /api/status as a string (bounded by out_text). */
static const char *status_of(struct admin_page *p)
{
    struct buf b;
    buf_init(&b, sizeof(out_text) - 1);
    ASSERT_EQ(admin_page_status_json(p, &b), 0);
    memcpy(out_text, buf_head(&b), buf_len(&b));
    out_text[buf_len(&b)] = '\0';
    buf_free(&b);
    return out_text;
}

TEST(page_is_self_contained)
{
    size_t len = 0;
    const char *html = (const char *)admin_page_html(&len);
    ASSERT(len > 1000);
    ASSERT_EQ(html[len], '\0'); /* embed.cmake ends it, so strstr stops there */
    ASSERT_MEM_EQ(html, "<!DOCTYPE html>", 15);
    /* Nothing fetched from elsewhere: no external script, style, image or
     * font, and the only fetch is the server's own api/status. */
    ASSERT(strstr(html, "<link") == NULL);
    ASSERT(strstr(html, " src=") == NULL);
    ASSERT(strstr(html, "@import") == NULL);
    ASSERT(strstr(html, "url(") == NULL);
    ASSERT(strstr(html, "https://") == NULL);
    for (const char *p = html; (p = strstr(p, "http://")) != NULL; p++)
        ASSERT(strncmp(p, "http://www.w3.org/2000/svg", 26) == 0); /* a namespace name */
    ASSERT(strstr(html, "fetch(\"api/status\"") != NULL);
    /* Broker values go in as text, never as markup. */
    ASSERT(strstr(html, "innerHTML") == NULL);
    ASSERT(strstr(html, "sessionStorage") != NULL);
    /* One script, whose hash the CSP names; no handlers in attributes,
     * which a hash does not cover. */
    const char *script = strstr(html, "<script>");
    ASSERT(script && strstr(script + 1, "<script") == NULL);
    ASSERT(strstr(html, " onclick=") == NULL && strstr(html, " onload=") == NULL);
}

TEST(csp_names_the_script_by_its_hash)
{
    const char *h = admin_page_headers();
    ASSERT(h == admin_page_headers());
    ASSERT(strncmp(h, "Content-Security-Policy: default-src 'none'; script-src 'sha256-", 64) == 0);
    const char *b64 = h + 64;
    ASSERT_EQ(strcspn(b64, "'"), 44); /* 32 bytes in base64 */
    ASSERT(strstr(h, "script-src 'unsafe-inline'") == NULL);
    ASSERT(strstr(h, "connect-src 'self';") != NULL);
    ASSERT(strstr(h, "frame-ancestors 'none'\r\n") != NULL);
    ASSERT(strstr(h, "X-Content-Type-Options: nosniff\r\n") != NULL);
    ASSERT(strlen(h) < sizeof(((struct admin_reply *)0)->extra));
}

TEST(status_without_sources)
{
    struct admin_page_sources src = {0};
    struct recent *r = recent_new(4);
    src.recent = r;
    struct admin_page *p = admin_page_new(&src);
    ASSERT(p);
    const char *j = status_of(p);
    ASSERT(strstr(j, "{\"version\":\"" WARD_VERSION "\"") == j);
    ASSERT(strstr(j, "\"connections\":0,") != NULL);
    ASSERT(strstr(j, "\"listeners\":[]") != NULL);
    ASSERT(strstr(j, "\"bridges\":[]") != NULL);
    ASSERT(strstr(j, "\"history\":{\"interval_s\":5,\"span_s\":900,\"points\":[]}") != NULL);
    ASSERT(strstr(j, "\"refusals\":{\"total\":0,\"latest\":[]}") != NULL);
    /* No broker: nothing to sample. */
    ASSERT_EQ(admin_page_start(p), 0);
    admin_page_free(p);
    admin_page_free(NULL);
    recent_free(r);
}

TEST(output_bound_is_an_error)
{
    struct admin_page_sources src = {0};
    struct admin_page *p = admin_page_new(&src);
    struct buf b;
    buf_init(&b, 64);
    ASSERT_EQ(admin_page_status_json(p, &b), -1);
    buf_free(&b);
    admin_page_free(p);
}

TEST(status_of_a_running_broker)
{
    struct broker_config cfg;
    broker_config_defaults(&cfg);
    struct rig rig;
    rig_start(&rig, &cfg, 1 << 20, 0);
    struct recent *r = recent_new(4);
    struct admin_page_sources src = {.broker = rig.b, .net = rig.s, .nlisteners = 1, .recent = r};
    src.listeners[0] = (struct admin_page_listener){
        .url = "tcp://127.0.0.1:0", .protocol = "mqtt", .transport = "tcp"};
    struct admin_page *p = admin_page_new(&src);
    int a = rig_connect(&rig, "one", 4), b = rig_connect(&rig, "two", 5);
    /* Peer-chosen text, escaped twice over: by the ring for logs, by the
     * JSON writer for the page (</script> cannot end a script). */
    recent_add(r, 0, "client '</script>\"x' (127.0.0.1:9)", "bad user name or password");
    recent_add(r, NET_LISTENER_INTERNAL, "bridge", "other");
    recent_add(r, 9, "10.0.0.1:1", "TLS handshake failed: unknown CA");
    const char *j = status_of(p);
    ASSERT(strstr(j, "\"connections\":2,") != NULL);
    char want[200];
    snprintf(want, sizeof(want),
             "{\"index\":0,\"url\":\"tcp://127.0.0.1:0\",\"port\":%u,\"protocol\":\"mqtt\","
             "\"transport\":\"tcp\",\"connections\":2,\"tls\":null}",
             rig.port);
    ASSERT(strstr(j, want) != NULL);
    ASSERT(strstr(j, "\"total\":3,") != NULL);
    ASSERT(strstr(j, "</script>") == NULL);
    ASSERT(strstr(j, "\"peer\":\"client '\\u003c/script\\u003e\\\"x' (127.0.0.1:9)\"") != NULL);
    /* Newest first; listeners by their configured name. */
    const char *tls = strstr(j, "\"listener\":\"#9\"");
    const char *internal = strstr(j, "\"listener\":\"internal\"");
    const char *first = strstr(j, "\"listener\":\"tcp://127.0.0.1:0\"");
    ASSERT(tls && internal && first && tls < internal && internal < first);
    close(a);
    close(b);
    admin_page_free(p);
    recent_free(r);
    rig_stop(&rig);
}

TEST(tls_listener_state_and_expiry)
{
    pki_fixture_ca();
    pki_fixture_csr("srv", "/CN=broker");
    pki_fixture_sign("srv", "subjectAltName=DNS:localhost\\nextendedKeyUsage=serverAuth\\n");
    char err[512];
    struct tls_server_config sc = {.certfile = scratch_path("srv.crt"),
                                   .keyfile = scratch_path("srv.key"),
                                   .cafile = scratch_path("ca.crt"),
                                   .verify = TLS_VERIFY_REQUIRED};
    struct tls_server *ts = tls_server_new(&sc, err, sizeof(err));
    if (!ts)
        TEST_FAIL_("tls_server_new: %s", err);
    struct admin_page_sources src = {.nlisteners = 2};
    src.listeners[0] = (struct admin_page_listener){.url = "tcp://0.0.0.0:1883"};
    src.listeners[1] = (struct admin_page_listener){
        .url = "mtls://0.0.0.0:8883", .protocol = "mqtt", .transport = "tls", .tls = ts};
    tls_server_count(ts, TLS_CAUSE_UNKNOWN_CA);
    tls_server_count(ts, TLS_CAUSE_BUSY);
    struct admin_page *p = admin_page_new(&src);
    const char *j = status_of(p);
    /* Defaults for what the listener left out. */
    ASSERT(strstr(j, "\"url\":\"tcp://0.0.0.0:1883\",\"port\":0,\"protocol\":\"mqtt\","
                     "\"transport\":\"tcp\",\"connections\":0,\"tls\":null") != NULL);
    const char *t = strstr(j, "\"tls\":{\"verify\":\"required\",\"days_left\":");
    ASSERT(t != NULL);
    long days = strtol(t + strlen("\"tls\":{\"verify\":\"required\",\"days_left\":"), NULL, 10);
    ASSERT(days >= 1 && days <= 2); /* the fixture's certificates last two days */
    ASSERT(strstr(t, "\"handshake_failures\":2,\"expiries\":[{\"what\":\"") != NULL);
    ASSERT(strstr(t, "{\"what\":\"server certificate 'broker' (") != NULL);
    ASSERT(strstr(t, "{\"what\":\"CA certificate 'TestCA' (") != NULL);
    admin_page_free(p);
    tls_server_free(ts);
}

/* One request on a fresh connection; the whole answer (Connection: close). */
static void get(uint16_t port, const char *path, const char *auth, char *resp, size_t cap)
{
    int fd = dial(port);
    char rq[512];
    int n =
        snprintf(rq, sizeof(rq), "GET %s HTTP/1.1\r\nHost: x\r\n%s%s%sConnection: close\r\n\r\n",
                 path, auth ? "Authorization: Bearer " : "", auth ? auth : "", auth ? "\r\n" : "");
    ASSERT_EQ(write(fd, rq, (size_t)n), n);
    size_t got = read_n(fd, resp, cap - 1);
    resp[got] = '\0';
    close(fd);
}

TEST(served_by_the_admin_server)
{
    char key[APIKEY_LEN + 1], err[256];
    struct apikey_db db;
    apikey_db_init(&db);
    ASSERT_EQ(apikey_generate(key, sizeof(key)), 0);
    ASSERT_EQ(apikey_add(&db, "ops", ADMIN_SCOPE_READ, key, err, sizeof(err)), 0);
    ASSERT_EQ(apikey_save(&db, scratch_path("keys"), err, sizeof(err)), 0);
    apikey_db_free(&db);

    struct admin_config ac = {.bind = "127.0.0.1:0", .api_keys_file = scratch_path("keys")};
    struct admin *adm = admin_new(&ac, err, sizeof(err));
    ASSERT(adm);
    struct admin_page_sources src = {0};
    struct admin_page *p = admin_page_new(&src);
    ASSERT_EQ(admin_page_register(adm, p), 0);
    ASSERT_EQ(admin_page_register(adm, p), -1); /* the same routes twice */
    ASSERT_EQ(admin_start(adm, err, sizeof(err)), 0);
    static char resp[1 << 16];
    /* The page needs no key: it holds no data, and it asks for the key. */
    get(admin_port(adm), "/", NULL, resp, sizeof(resp));
    ASSERT(strncmp(resp, "HTTP/1.1 200", 12) == 0);
    ASSERT(strstr(resp, "Content-Type: text/html; charset=utf-8\r\n") != NULL);
    ASSERT(strstr(resp, "Content-Security-Policy: default-src 'none';") != NULL);
    ASSERT(strstr(resp, "frame-ancestors 'none'") != NULL);
    ASSERT(strstr(resp, "<!DOCTYPE html>") != NULL);
    /* Its data does. */
    get(admin_port(adm), "/api/status", NULL, resp, sizeof(resp));
    ASSERT(strncmp(resp, "HTTP/1.1 401", 12) == 0);
    get(admin_port(adm), "/api/status", "wk_wrong", resp, sizeof(resp));
    ASSERT(strncmp(resp, "HTTP/1.1 401", 12) == 0);
    get(admin_port(adm), "/api/status", key, resp, sizeof(resp));
    ASSERT(strncmp(resp, "HTTP/1.1 200", 12) == 0);
    ASSERT(strstr(resp, "Cache-Control: no-store\r\n") != NULL);
    ASSERT(strstr(resp, "\r\n\r\n{\"version\":") != NULL);
    /* "/" is the page only, not every path below it. */
    get(admin_port(adm), "/index.html", NULL, resp, sizeof(resp));
    ASSERT(strncmp(resp, "HTTP/1.1 404", 12) == 0 || strncmp(resp, "HTTP/1.1 401", 12) == 0);
    admin_free(adm);
    admin_page_free(p);
}

int main(void)
{
    char dir[] = "/tmp/ward_test_page_XXXXXX";
    scratch_open(dir);
    RUN(page_is_self_contained);
    RUN(csp_names_the_script_by_its_hash);
    RUN(status_without_sources);
    RUN(output_bound_is_an_error);
    RUN(status_of_a_running_broker);
    RUN(tls_listener_state_and_expiry);
    RUN(served_by_the_admin_server);
    ASSERT_EQ(scratch_close(), 0);
    TEST_DONE();
}
