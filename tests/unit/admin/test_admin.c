/* src/admin/admin.c: the admin HTTP server on loopback, driven with raw
 * HTTP/1.1 over TCP. */
#include <sys/stat.h>

#include "admin/admin.h"
#include "admin/apikey.h"
#include "core/base64.h"
#include "net_fixture.h"
#include "scratch.h"
#include "test.h"

static char read_key[APIKEY_LEN + 1], admin_key[APIKEY_LEN + 1];

static void hello(void *ctx, const struct http_request *rq, const char *who,
                  struct admin_reply *rep)
{
    char body[512];
    int n = snprintf(body, sizeof(body), "{\"who\":\"%s\",\"path\":\"%.*s\"}", who,
                     (int)rq->path.len, rq->path.p);
    ASSERT(ward_ok(buf_append(&rep->body, body, (size_t)n)));
}

static void teapot(void *ctx, const struct http_request *rq, const char *who,
                   struct admin_reply *rep)
{
    rep->status = 418;
    rep->content_type = "text/plain";
    snprintf(rep->extra, sizeof(rep->extra), "X-Ward: %s\r\n", (const char *)ctx);
    ASSERT(ward_ok(buf_append(&rep->body, "short and stout\n", 16)));
}

/* 256 KiB of 'x': larger than the output bound of the test below. */
static void big(void *ctx, const struct http_request *rq, const char *who, struct admin_reply *rep)
{
    static char chunk[4096];
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 64; i++)
        ASSERT(ward_ok(buf_append(&rep->body, chunk, sizeof(chunk))));
}

static void make_keys(void)
{
    struct apikey_db db;
    char err[256];
    apikey_db_init(&db);
    ASSERT_EQ(apikey_generate(read_key, sizeof(read_key)), 0);
    ASSERT_EQ(apikey_generate(admin_key, sizeof(admin_key)), 0);
    ASSERT_EQ(apikey_add(&db, "grafana", ADMIN_SCOPE_READ, read_key, err, sizeof(err)), 0);
    ASSERT_EQ(apikey_add(&db, "ops", ADMIN_SCOPE_ADMIN, admin_key, err, sizeof(err)), 0);
    ASSERT_EQ(apikey_save(&db, scratch_path("keys"), err, sizeof(err)), 0);
    apikey_db_free(&db);
}

static struct admin *start(struct admin_config *cfg)
{
    char err[512];
    cfg->bind = "127.0.0.1:0";
    struct admin *a = admin_new(cfg, err, sizeof(err));
    if (!a)
        TEST_FAIL_("admin_new: %s", err);
    ASSERT_EQ(admin_route(a, "GET", "/api/v4/hello", ADMIN_SCOPE_READ, hello, NULL), 0);
    ASSERT_EQ(admin_route(a, "POST", "/api/v4/hello", ADMIN_SCOPE_ADMIN, hello, NULL), 0);
    ASSERT_EQ(admin_route(a, "GET", "/api/v4/clients/", ADMIN_SCOPE_READ, hello, NULL), 0);
    ASSERT_EQ(admin_route(a, "GET", "/metrics", ADMIN_SCOPE_READ, hello, NULL), 0);
    ASSERT_EQ(admin_route(a, "GET", "/teapot", ADMIN_SCOPE_OPEN, teapot, "brewing"), 0);
    /* Negative: the same route twice, a path that is not one. */
    ASSERT_EQ(admin_route(a, "GET", "/teapot", ADMIN_SCOPE_OPEN, teapot, NULL), -1);
    ASSERT_EQ(admin_route(a, "GET", "teapot", ADMIN_SCOPE_OPEN, teapot, NULL), -1);
    if (admin_start(a, err, sizeof(err)) < 0)
        TEST_FAIL_("admin_start: %s", err);
    ASSERT_EQ(admin_route(a, "GET", "/late", ADMIN_SCOPE_OPEN, teapot, NULL), -1);
    return a;
}

struct answer {
    int status;
    char head[2048];
    char body[4096];
};

/* Reads one whole answer (head, then Content-Length bytes); false if the
 * connection closed first. */
static bool read_answer(int fd, struct answer *an)
{
    size_t n = 0;
    memset(an, 0, sizeof(*an));
    while (n < sizeof(an->head) - 1 && !strstr(an->head, "\r\n\r\n"))
        if (read(fd, an->head + n++, 1) != 1)
            return false;
    an->status = atoi(an->head + 9);
    const char *cl = strstr(an->head, "Content-Length: ");
    size_t len = cl ? strtoul(cl + 16, NULL, 10) : 0;
    ASSERT(len < sizeof(an->body));
    return read_n(fd, an->body, len) == len;
}

static void send_text(int fd, const char *text)
{
    ASSERT_EQ(write(fd, text, strlen(text)), (long long)strlen(text));
}

/* One request on a new connection. */
static int ask(uint16_t port, const char *text, struct answer *an)
{
    int fd = dial(port);
    send_text(fd, text);
    ASSERT(read_answer(fd, an));
    close(fd);
    return an->status;
}

static int get_with(uint16_t port, const char *path, const char *auth, struct answer *an)
{
    char req[1024];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n%s%s%s\r\n", path,
             auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "");
    return ask(port, req, an);
}

/* The peer closes: read gives 0 (before the 5 s read deadline). */
static void wait_closed(int fd)
{
    char c;
    ASSERT_EQ(read(fd, &c, 1), 0);
    close(fd);
}

TEST(health_and_readiness)
{
    struct admin_config cfg = {.open_health = true};
    struct admin *a = start(&cfg);
    struct answer an;
    uint16_t port = admin_port(a);
    ASSERT_EQ(get_with(port, "/healthz", NULL, &an), 200);
    ASSERT(strstr(an.head, "Content-Type: application/json"));
    ASSERT_STR_EQ(an.body, "{\"status\":\"ok\"}\n");
    ASSERT_EQ(get_with(port, "/readyz", NULL, &an), 503);
    admin_set_ready(a, true);
    ASSERT(admin_ready(a));
    ASSERT_EQ(get_with(port, "/readyz", NULL, &an), 200);
    admin_set_ready(a, false);
    ASSERT_EQ(get_with(port, "/readyz", NULL, &an), 503);
    ASSERT(strncmp(admin_url(a), "http://127.0.0.1:", 17) == 0);
    admin_free(a);
}

TEST(routes_404_405_and_prefixes)
{
    struct admin_config cfg = {.api_keys_file = scratch_path("keys")};
    struct admin *a = start(&cfg);
    struct answer an;
    uint16_t port = admin_port(a);
    ASSERT_EQ(get_with(port, "/nothing", NULL, &an), 404);
    ASSERT_STR_EQ(an.body, "{\"code\":404,\"message\":\"not found\"}\n");
    ASSERT_EQ(ask(port, "DELETE /api/v4/hello HTTP/1.1\r\nHost: t\r\n\r\n", &an), 405);
    ASSERT(strstr(an.head, "Allow: GET, POST\r\n"));
    ASSERT_EQ(ask(port, "POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &an),
              405);
    /* HEAD: GET's head, no body; the handler sees GET. */
    int fd = dial(port);
    send_text(fd, "HEAD /api/v4/hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    char head[1024] = "";
    ASSERT(read_n(fd, head, sizeof(head) - 1) > 0);
    close(fd);
    ASSERT(strncmp(head, "HTTP/1.1 401", 12) == 0); /* the route's scope applies to HEAD too */
    ASSERT_EQ(get_with(port, "/teapot", NULL, &an), 418);
    ASSERT(strstr(an.head, "X-Ward: brewing\r\n"));
    ASSERT(strstr(an.head, "Content-Type: text/plain\r\n"));
    /* A prefix route takes the paths below it, not the one beside it. */
    char auth[128];
    snprintf(auth, sizeof(auth), "Bearer %s", read_key);
    ASSERT_EQ(get_with(port, "/api/v4/clients/dev-1", auth, &an), 200);
    ASSERT(strstr(an.body, "\"path\":\"/api/v4/clients/dev-1\""));
    ASSERT_EQ(get_with(port, "/api/v4/clientsX", auth, &an), 404);
    char req[256];
    snprintf(req, sizeof(req),
             "HEAD /api/v4/clients/x HTTP/1.1\r\nAuthorization: %s\r\n"
             "Connection: close\r\n\r\n",
             auth);
    fd = dial(port);
    send_text(fd, req);
    memset(head, 0, sizeof(head));
    size_t n = read_n(fd, head, sizeof(head) - 1);
    close(fd);
    ASSERT(strncmp(head, "HTTP/1.1 200", 12) == 0);
    const char *cl = strstr(head, "Content-Length: ");
    ASSERT(cl && atoi(cl + 16) > 0);                  /* GET's length ... */
    ASSERT(strstr(head, "\r\n\r\n") + 4 == head + n); /* ... and no body */
    admin_free(a);
}

TEST(keys_scopes_bearer_and_basic)
{
    struct admin_config cfg = {.api_keys_file = scratch_path("keys")};
    struct admin *a = start(&cfg);
    struct answer an;
    uint16_t port = admin_port(a);
    char auth[400];
    /* No key: 401 with the challenge. */
    ASSERT_EQ(get_with(port, "/api/v4/hello", NULL, &an), 401);
    ASSERT(strstr(an.head, "WWW-Authenticate: Bearer realm=\"ward\", Basic realm=\"ward\""));
    /* Health needs a key when not opened. */
    ASSERT_EQ(get_with(port, "/healthz", NULL, &an), 401);
    snprintf(auth, sizeof(auth), "Bearer %s", read_key);
    ASSERT_EQ(get_with(port, "/api/v4/hello", auth, &an), 200);
    ASSERT(strstr(an.body, "\"who\":\"key grafana\""));
    ASSERT_EQ(get_with(port, "/healthz", auth, &an), 200);
    /* A read key on an admin route: 403. */
    ASSERT_EQ(ask(port,
                  "POST /api/v4/hello HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n"
                  "Authorization: Bearer wk_nope\r\n\r\n",
                  &an),
              401);
    char req[512];
    snprintf(req, sizeof(req),
             "POST /api/v4/hello HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n"
             "Authorization: Bearer %s\r\n\r\n",
             read_key);
    ASSERT_EQ(ask(port, req, &an), 403);
    snprintf(req, sizeof(req),
             "POST /api/v4/hello HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n"
             "Authorization: Bearer %s\r\n\r\n",
             admin_key);
    ASSERT_EQ(ask(port, req, &an), 200);
    ASSERT(strstr(an.body, "\"who\":\"key ops\""));
    /* HTTP Basic: the key's name and the key. */
    char cred[200], b64[300];
    snprintf(cred, sizeof(cred), "ops:%s", admin_key);
    base64_encode((const uint8_t *)cred, strlen(cred), b64);
    snprintf(auth, sizeof(auth), "Basic %s", b64);
    ASSERT_EQ(get_with(port, "/api/v4/hello", auth, &an), 200);
    snprintf(cred, sizeof(cred), "grafana:%s", admin_key); /* another entry's key */
    base64_encode((const uint8_t *)cred, strlen(cred), b64);
    snprintf(auth, sizeof(auth), "Basic %s", b64);
    ASSERT_EQ(get_with(port, "/api/v4/hello", auth, &an), 401);
    ASSERT_EQ(get_with(port, "/api/v4/hello", "Basic !!!notbase64", &an), 401);
    ASSERT_EQ(get_with(port, "/api/v4/hello", "Digest x", &an), 401);
    ASSERT_EQ(get_with(port, "/api/v4/hello", "Bearer ", &an), 401);
    struct admin_stats st;
    admin_get_stats(a, &st);
    ASSERT_EQ(st.unauthorized, 7);
    ASSERT_EQ(st.forbidden, 1);
    admin_free(a);
}

TEST(open_metrics_setting)
{
    struct admin_config cfg = {.api_keys_file = scratch_path("keys"), .open_metrics = true};
    struct admin *a = start(&cfg);
    struct answer an;
    ASSERT_EQ(get_with(admin_port(a), "/metrics", NULL, &an), 200);
    ASSERT(strstr(an.body, "\"who\":\"anonymous\""));
    ASSERT_EQ(get_with(admin_port(a), "/api/v4/hello", NULL, &an), 401);
    admin_free(a);
}

TEST(revoked_key_after_reload)
{
    char err[256];
    make_keys();
    struct admin_config cfg = {.api_keys_file = scratch_path("keys")};
    struct admin *a = start(&cfg);
    struct answer an;
    char auth[128];
    snprintf(auth, sizeof(auth), "Bearer %s", read_key);
    ASSERT_EQ(get_with(admin_port(a), "/api/v4/hello", auth, &an), 200);
    struct apikey_db db;
    apikey_db_init(&db);
    ASSERT_EQ(apikey_load(&db, scratch_path("keys"), false, err, sizeof(err)), 0);
    ASSERT(apikey_remove(&db, "grafana"));
    ASSERT_EQ(apikey_save(&db, scratch_path("keys"), err, sizeof(err)), 0);
    apikey_db_free(&db);
    ASSERT_EQ(admin_reload_keys(a, err, sizeof(err)), 0);
    ASSERT_EQ(get_with(admin_port(a), "/api/v4/hello", auth, &an), 401);
    /* A broken file keeps the keys in use. */
    scratch_write("keys.bad", "x:root:$hs256$a$b\n");
    rename(scratch_path("keys.bad"), scratch_path("keys"));
    ASSERT_EQ(admin_reload_keys(a, err, sizeof(err)), -1);
    snprintf(auth, sizeof(auth), "Bearer %s", admin_key);
    ASSERT_EQ(get_with(admin_port(a), "/api/v4/hello", auth, &an), 200);
    admin_free(a);
    make_keys();
}

TEST(pipelined_requests_answered_in_order)
{
    struct admin_config cfg = {.open_health = true};
    struct admin *a = start(&cfg);
    int fd = dial(admin_port(a));
    send_text(fd, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
                  "GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n"
                  "GET /teapot HTTP/1.1\r\nHost: t\r\n\r\n"
                  "GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    struct answer an;
    ASSERT(read_answer(fd, &an));
    ASSERT_EQ(an.status, 200);
    ASSERT(read_answer(fd, &an));
    ASSERT_EQ(an.status, 404);
    ASSERT(read_answer(fd, &an));
    ASSERT_EQ(an.status, 418);
    ASSERT(read_answer(fd, &an));
    ASSERT_EQ(an.status, 503);
    ASSERT(strstr(an.head, "Connection: close"));
    wait_closed(fd);
    admin_free(a);
}

TEST(limits_head_headers_body)
{
    struct admin_config cfg = {.open_health = true, .limits = {.max_body = 16}};
    struct admin *a = start(&cfg);
    uint16_t port = admin_port(a);
    struct answer an;
    /* 40 headers: over the default 32. */
    char req[8192] = "GET /healthz HTTP/1.1\r\n";
    for (int i = 0; i < 40; i++)
        snprintf(req + strlen(req), sizeof(req) - strlen(req), "X-H%d: v\r\n", i);
    strcat(req, "\r\n");
    int fd = dial(port);
    send_text(fd, req);
    ASSERT(read_answer(fd, &an));
    ASSERT_EQ(an.status, 431);
    wait_closed(fd);
    /* A head over 8 KiB. */
    fd = dial(port);
    char big[9000];
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /healthz HTTP/1.1\r\nX-Big: ", 30);
    ASSERT_EQ(write(fd, big, sizeof(big)), (long long)sizeof(big));
    ASSERT(read_answer(fd, &an));
    ASSERT_EQ(an.status, 431);
    wait_closed(fd);
    /* A body over max_body. */
    fd = dial(port);
    send_text(fd, "POST /api/v4/hello HTTP/1.1\r\nHost: t\r\nContent-Length: 17\r\n\r\n");
    ASSERT(read_answer(fd, &an));
    ASSERT_EQ(an.status, 413);
    wait_closed(fd);
    /* Binary garbage. */
    fd = dial(port);
    ASSERT_EQ(write(fd, "\x16\x03\x01\x00\xff\r\n\r\n", 9), 9);
    ASSERT(read_answer(fd, &an));
    ASSERT_EQ(an.status, 400);
    wait_closed(fd);
    struct admin_stats st;
    admin_get_stats(a, &st);
    ASSERT_EQ(st.refused, 4);
    /* Still answering. */
    ASSERT_EQ(get_with(port, "/healthz", NULL, &an), 200);
    admin_free(a);
}

TEST(slow_request_gets_408_idle_connection_closed)
{
    struct admin_config cfg = {
        .open_health = true, .request_timeout_ms = 300, .idle_timeout_ms = 300};
    struct admin *a = start(&cfg);
    uint16_t port = admin_port(a);
    /* Half a head, then nothing: 408 and closed. */
    int fd = dial(port);
    send_text(fd, "GET /healthz HTTP/1.1\r\nHost:");
    struct answer an;
    ASSERT(read_answer(fd, &an));
    ASSERT_EQ(an.status, 408);
    wait_closed(fd);
    /* A connection that never sends: closed too (408). */
    fd = dial(port);
    ASSERT(read_answer(fd, &an));
    ASSERT_EQ(an.status, 408);
    wait_closed(fd);
    /* Keep-alive after an answer, then idle: closed without a word. */
    fd = dial(port);
    send_text(fd, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    ASSERT(read_answer(fd, &an));
    ASSERT_EQ(an.status, 200);
    wait_closed(fd);
    struct admin_stats st;
    admin_get_stats(a, &st);
    ASSERT_EQ(st.timeouts, 2);
    admin_free(a);
}

TEST(output_bound_holds_pipelined_requests_until_read)
{
    struct admin_config cfg = {.open_health = true, .max_output = 65536};
    char err[256];
    cfg.bind = "127.0.0.1:0";
    struct admin *a = admin_new(&cfg, err, sizeof(err));
    ASSERT(a);
    ASSERT_EQ(admin_route(a, "GET", "/big", ADMIN_SCOPE_OPEN, big, NULL), 0);
    ASSERT_EQ(admin_start(a, err, sizeof(err)), 0);
    int fd = dial(admin_port(a));
    /* Eight answers of 256 KiB asked at once, none read yet: the server
     * queues one past its bound and waits; reading lets it go on. */
    char req[8 * 40] = "";
    for (int i = 0; i < 8; i++)
        strcat(req, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    send_text(fd, req);
    static char body[300000];
    for (int i = 0; i < 8; i++) {
        char head[512] = "";
        size_t n = 0;
        while (n < sizeof(head) - 1 && !strstr(head, "\r\n\r\n"))
            ASSERT_EQ(read(fd, head + n++, 1), 1);
        ASSERT(strncmp(head, "HTTP/1.1 200", 12) == 0);
        ASSERT(strstr(head, "Content-Length: 262144\r\n"));
        ASSERT_EQ(read_n(fd, body, 262144), 262144);
        ASSERT(body[0] == 'x' && body[262143] == 'x');
    }
    send_text(fd, "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
    struct answer an;
    ASSERT(read_answer(fd, &an));
    ASSERT_EQ(an.status, 200);
    wait_closed(fd);
    admin_free(a);
}

TEST(max_connections)
{
    struct admin_config cfg = {.open_health = true, .max_connections = 2};
    struct admin *a = start(&cfg);
    uint16_t port = admin_port(a);
    int f1 = dial(port), f2 = dial(port);
    struct answer an;
    /* Both are served (so both are counted), then a third is closed at once. */
    send_text(f1, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    ASSERT(read_answer(f1, &an));
    send_text(f2, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    ASSERT(read_answer(f2, &an));
    int f3 = dial(port);
    wait_closed(f3);
    close(f1);
    close(f2);
    admin_free(a);
}

TEST(local_key_file_for_ward_status)
{
    struct admin_config cfg = {.local_key_dir = scratch_path("")};
    char path[400];
    snprintf(path, sizeof(path), "%s/admin.key", scratch_path(""));
    struct admin *a = start(&cfg);
    struct stat st;
    ASSERT_EQ(stat(path, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    FILE *f = fopen(path, "r");
    char key[128] = "", url[128] = "";
    ASSERT(fgets(key, sizeof(key), f) && fgets(url, sizeof(url), f));
    fclose(f);
    key[strcspn(key, "\n")] = url[strcspn(url, "\n")] = '\0';
    ASSERT_STR_EQ(url, admin_url(a));
    char auth[200];
    snprintf(auth, sizeof(auth), "Bearer %s", key);
    struct answer an;
    ASSERT_EQ(ask(admin_port(a),
                  strcat(strcat(strcpy((char[512]){0},
                                       "POST /api/v4/hello HTTP/1.1\r\nContent-Length: 0\r\n"
                                       "Authorization: "),
                                auth),
                         "\r\n\r\n"),
                  &an),
              200);
    ASSERT(strstr(an.body, "\"who\":\"key local\""));
    admin_free(a);
    ASSERT_EQ(stat(path, &st), -1); /* gone with the server */
}

TEST(nanomq_basic_credential)
{
    struct admin_config cfg = {.basic_user = "admin", .basic_password = "s3cret-enough"};
    struct admin *a = start(&cfg);
    char b64[64];
    base64_encode((const uint8_t *)"admin:s3cret-enough", 19, b64);
    char auth[100];
    snprintf(auth, sizeof(auth), "Basic %s", b64);
    struct answer an;
    ASSERT_EQ(get_with(admin_port(a), "/api/v4/hello", auth, &an), 200);
    base64_encode((const uint8_t *)"admin:public", 12, b64);
    snprintf(auth, sizeof(auth), "Basic %s", b64);
    ASSERT_EQ(get_with(admin_port(a), "/api/v4/hello", auth, &an), 401);
    admin_free(a);
}

TEST(bad_bind_refused)
{
    char err[256] = "";
    struct admin_config cfg = {.bind = "999.1.1.1:80"};
    ASSERT(!admin_new(&cfg, err, sizeof(err)));
    ASSERT(err[0]);
    struct admin_config missing = {.bind = "127.0.0.1:0", .api_keys_file = "/nonexistent/k"};
    ASSERT(!admin_new(&missing, err, sizeof(err)));
    ASSERT(strstr(err, "/nonexistent/k"));
}

int main(void)
{
    char dir[] = "/tmp/ward-admin-XXXXXX";
    scratch_open(dir);
    make_keys();
    RUN(health_and_readiness);
    RUN(routes_404_405_and_prefixes);
    RUN(keys_scopes_bearer_and_basic);
    RUN(open_metrics_setting);
    RUN(revoked_key_after_reload);
    RUN(pipelined_requests_answered_in_order);
    RUN(limits_head_headers_body);
    RUN(slow_request_gets_408_idle_connection_closed);
    RUN(output_bound_holds_pipelined_requests_until_read);
    RUN(max_connections);
    RUN(local_key_file_for_ward_status);
    RUN(nanomq_basic_credential);
    RUN(bad_bind_refused);
    scratch_close();
    TEST_DONE();
}
