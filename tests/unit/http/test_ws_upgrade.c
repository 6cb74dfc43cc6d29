/* src/http/ws_upgrade.c: the RFC 6455 handshake on the server side: the
 * accept value of the RFC's sample, each refusal with its status (405,
 * 400, 426, 404, 403), subprotocol choice in the listener's order across
 * several fields, and the answers written for each. */
#include <string.h>

#include "http/http.h"
#include "test.h"

static const char *const mqtt_protos[] = {"mqtt", "mqttv3.1", "mqttv3.1.1", "mqttv5"};

static const struct ws_upgrade_rules mqtt_rules = {
    .path = "/mqtt",
    .protocols = mqtt_protos,
    .nprotocols = 4,
    .protocol_required = true,
};

static const struct ws_upgrade_rules any_rules = {0};

static struct http_request rq;
static char reqtext[2048];
static struct ws_upgrade u;

#define GOOD_KEY "dGhlIHNhbXBsZSBub25jZQ=="

/* Parses "GET target HTTP/1.1" with the usual upgrade fields and `more`. */
static void request(const char *method, const char *target, const char *more)
{
    snprintf(reqtext, sizeof(reqtext),
             "%s %s HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
             method, target, more);
    int st;
    const char *why;
    ASSERT_EQ(http_parse((const uint8_t *)reqtext, strlen(reqtext), NULL, &rq, &st, &why),
              HTTP_PARSE_DONE);
}

/* A request from text as it is. */
static void raw(const char *text)
{
    snprintf(reqtext, sizeof(reqtext), "%s", text);
    int st;
    const char *why;
    ASSERT_EQ(http_parse((const uint8_t *)reqtext, strlen(reqtext), NULL, &rq, &st, &why),
              HTTP_PARSE_DONE);
}

static const char *answer(void)
{
    static char s[1024];
    struct buf b;
    buf_init(&b, 0);
    ASSERT(ward_ok(ws_upgrade_response(&b, &u)));
    size_t n = buf_len(&b) < sizeof(s) - 1 ? buf_len(&b) : sizeof(s) - 1;
    memcpy(s, buf_head(&b), n);
    s[n] = '\0';
    buf_free(&b);
    return s;
}

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void expect(const struct ws_upgrade_rules *r, int status)
{
    bool ok = ws_upgrade_check(&rq, r, &u);
    if (u.status != status)
        TEST_FAIL_("status %d (%s), not %d", u.status, u.why ? u.why : "", status);
    ASSERT_EQ(ok, status == 101);
    if (status != 101)
        ASSERT(u.why != NULL && u.why[0] != '\0');
}

TEST(rfc6455_sample)
{
    /* RFC 6455 1.3 and 4.2.2: the sample key and its accept value. */
    request("GET", "/chat", "Sec-WebSocket-Key: " GOOD_KEY "\r\nOrigin: http://example.com\r\n");
    expect(&any_rules, 101);
    ASSERT_STR_EQ(u.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    ASSERT(u.protocol == NULL);
    ASSERT_STR_EQ(answer(), "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\n"
                            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
}

TEST(another_key)
{
    /* Computed independently: base64(sha1("x3JJHMbDL1EzLkh9GBhXDw==" GUID)). */
    request("GET", "/mqtt",
            "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\nSec-WebSocket-Protocol: mqtt\r\n");
    expect(&mqtt_rules, 101);
    ASSERT_STR_EQ(u.accept, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

TEST(lenient_field_forms)
{
    /* Tokens in lists, any case, where the RFC allows them. */
    raw("GET /mqtt HTTP/1.1\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\n"
        "sec-websocket-version: 13\r\nsec-websocket-key: " GOOD_KEY "\r\n"
        "sec-websocket-protocol: mqtt\r\n\r\n");
    expect(&mqtt_rules, 101);
    /* Absolute-form target, and a query after the path. */
    request("GET", "http://h:8083/mqtt?client=1",
            "Sec-WebSocket-Key: " GOOD_KEY "\r\nSec-WebSocket-Protocol: mqtt\r\n");
    expect(&mqtt_rules, 101);
}

TEST(method_and_version)
{
    request("POST", "/mqtt", "Sec-WebSocket-Key: " GOOD_KEY "\r\nSec-WebSocket-Protocol: mqtt\r\n");
    expect(&mqtt_rules, 405);
    request("get", "/mqtt", "Sec-WebSocket-Key: " GOOD_KEY "\r\nSec-WebSocket-Protocol: mqtt\r\n");
    expect(&mqtt_rules, 405);
    raw("GET /mqtt HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " GOOD_KEY "\r\n"
        "Sec-WebSocket-Protocol: mqtt\r\n\r\n");
    expect(&mqtt_rules, 400);
}

TEST(upgrade_and_connection)
{
    raw("GET /mqtt HTTP/1.1\r\nHost: h\r\n\r\n");
    expect(&mqtt_rules, 400);
    ASSERT_STR_EQ(u.why, "not a WebSocket upgrade");
    raw("GET /mqtt HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " GOOD_KEY "\r\n\r\n");
    expect(&mqtt_rules, 400);
    ASSERT_STR_EQ(u.why, "not a WebSocket upgrade");
    raw("GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " GOOD_KEY "\r\n\r\n");
    expect(&mqtt_rules, 400);
    raw("GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " GOOD_KEY "\r\n\r\n");
    expect(&mqtt_rules, 400);
}

TEST(version_426)
{
    raw("GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: " GOOD_KEY "\r\n\r\n");
    expect(&mqtt_rules, 426);
    const char *a = answer();
    ASSERT(starts(a, "HTTP/1.1 426 Upgrade Required\r\n"));
    ASSERT(strstr(a, "\r\nSec-WebSocket-Version: 13\r\n") != NULL);
    ASSERT(strstr(a, "\r\nConnection: close\r\n") != NULL);
    request("GET", "/mqtt", "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: " GOOD_KEY "\r\n");
    expect(&mqtt_rules, 426); /* two fields */
    raw("GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Version: 13, 8\r\nSec-WebSocket-Key: " GOOD_KEY "\r\n\r\n");
    expect(&mqtt_rules, 426);
    raw("GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: " GOOD_KEY "\r\n\r\n");
    expect(&mqtt_rules, 400); /* none at all is not a handshake */
}

TEST(keys)
{
    static const char *const bad[] = {
        "",                                                /* none */
        "Sec-WebSocket-Key: \r\n",                         /* empty */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n",   /* no padding */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n",  /* short padding */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZXM=\r\n", /* 17 bytes */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j\r\n",     /* 15 bytes */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n", /* leftover bits */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j-Q==\r\n", /* URL alphabet */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j*Q==\r\n", /* not base64 */
        "Sec-WebSocket-Key: " GOOD_KEY "\r\nSec-WebSocket-Key: " GOOD_KEY "\r\n", /* two */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        request("GET", "/", bad[i]);
        if (ws_upgrade_check(&rq, &any_rules, &u) || u.status != 400)
            TEST_FAIL_("key case %zu: status %d", i, u.status);
    }
}

TEST(paths)
{
    const char *offer = "Sec-WebSocket-Key: " GOOD_KEY "\r\nSec-WebSocket-Protocol: mqtt\r\n";
    request("GET", "/mqtt?x=1", offer);
    expect(&mqtt_rules, 101);
    static const char *const wrong[] = {"/", "/mqttx", "/mqtt/", "/MQTT", "/mq%74t", "*"};
    for (size_t i = 0; i < sizeof(wrong) / sizeof(*wrong); i++) {
        request("GET", wrong[i], offer);
        expect(&mqtt_rules, 404);
        ASSERT_STR_EQ(u.why, "no WebSocket endpoint at this path");
    }
    ASSERT_STR_EQ(answer(), "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
                            "Content-Length: 35\r\nConnection: close\r\n\r\n"
                            "no WebSocket endpoint at this path\n");
    /* No path, or an empty one: any path. */
    struct ws_upgrade_rules r = mqtt_rules;
    r.path = NULL;
    request("GET", "/anything", offer);
    expect(&r, 101);
    r.path = "";
    expect(&r, 101);
}

TEST(origins)
{
    static const char *const allowed[] = {"https://console.example", "http://localhost:3000"};
    struct ws_upgrade_rules r = {.origins = allowed, .norigins = 2};
    request("GET", "/", "Sec-WebSocket-Key: " GOOD_KEY "\r\nOrigin: https://console.example\r\n");
    expect(&r, 101);
    request("GET", "/", "Sec-WebSocket-Key: " GOOD_KEY "\r\nOrigin: HTTP://LOCALHOST:3000\r\n");
    expect(&r, 101);
    /* A native client sends no Origin: nothing to check. */
    request("GET", "/", "Sec-WebSocket-Key: " GOOD_KEY "\r\n");
    expect(&r, 101);
    static const char *const wrong[] = {
        "Origin: https://evil.example\r\n",
        "Origin: https://console.example.evil\r\n",
        "Origin: https://console.example:443\r\n",
        "Origin: null\r\n",
        "Origin: \r\n",
        "Origin: https://console.example\r\nOrigin: https://evil.example\r\n",
    };
    char more[256];
    for (size_t i = 0; i < sizeof(wrong) / sizeof(*wrong); i++) {
        snprintf(more, sizeof(more), "Sec-WebSocket-Key: " GOOD_KEY "\r\n%s", wrong[i]);
        request("GET", "/", more);
        expect(&r, 403);
    }
    ASSERT(starts(answer(), "HTTP/1.1 403 Forbidden\r\n"));
    /* Without a list, any Origin. */
    request("GET", "/", "Sec-WebSocket-Key: " GOOD_KEY "\r\nOrigin: https://evil.example\r\n");
    expect(&any_rules, 101);
}

/* The chosen protocol after offering `offer` (fields as written). */
static const char *chosen(const struct ws_upgrade_rules *r, const char *offer)
{
    char more[512];
    snprintf(more, sizeof(more), "Sec-WebSocket-Key: " GOOD_KEY "\r\n%s", offer);
    request("GET", "/mqtt", more);
    expect(r, 101);
    return u.protocol ? u.protocol : "(none)";
}

TEST(subprotocols)
{
    ASSERT_STR_EQ(chosen(&mqtt_rules, "Sec-WebSocket-Protocol: mqtt\r\n"), "mqtt");
    ASSERT_STR_EQ(chosen(&mqtt_rules, "Sec-WebSocket-Protocol: mqttv3.1\r\n"), "mqttv3.1");
    /* The listener's order wins over the client's. */
    ASSERT_STR_EQ(chosen(&mqtt_rules, "Sec-WebSocket-Protocol: mqttv5, mqttv3.1.1\r\n"),
                  "mqttv3.1.1");
    ASSERT_STR_EQ(chosen(&mqtt_rules, "Sec-WebSocket-Protocol: chat,  mqttv5 ,mqtt\r\n"), "mqtt");
    /* Several fields, each a list. */
    ASSERT_STR_EQ(chosen(&mqtt_rules, "Sec-WebSocket-Protocol: chat, superchat\r\n"
                                      "Sec-WebSocket-Protocol: mqttv5\r\n"),
                  "mqttv5");
    /* The answer carries exactly one, the chosen one. */
    const char *a = answer();
    const char *p = strstr(a, "Sec-WebSocket-Protocol: mqttv5\r\n");
    ASSERT(p != NULL);
    ASSERT(strstr(p + 1, "Sec-WebSocket-Protocol") == NULL);
    ASSERT(strstr(a, "Sec-WebSocket-Protocol") == p);
    /* Not required: none matching is no subprotocol, and no field. */
    struct ws_upgrade_rules r = mqtt_rules;
    r.protocol_required = false;
    ASSERT_STR_EQ(chosen(&r, "Sec-WebSocket-Protocol: chat\r\n"), "(none)");
    ASSERT(strstr(answer(), "Sec-WebSocket-Protocol") == NULL);
    ASSERT_STR_EQ(chosen(&r, ""), "(none)");
    /* No protocols (NATS): offers are ignored. */
    r.protocols = NULL;
    r.nprotocols = 0;
    r.protocol_required = true;
    ASSERT_STR_EQ(chosen(&r, "Sec-WebSocket-Protocol: mqtt\r\n"), "(none)");
    ASSERT(strstr(answer(), "Sec-WebSocket-Protocol") == NULL);
}

TEST(subprotocol_refused)
{
    /* Names are case-sensitive, and parts of a name are not the name. */
    static const char *const offers[][2] = {
        {"", "offered: none"},
        {"Sec-WebSocket-Protocol: MQTT\r\n", "offered: MQTT"},
        {"Sec-WebSocket-Protocol: mqttv3\r\n", "offered: mqttv3"},
        {"Sec-WebSocket-Protocol: mqtt5, chat\r\nSec-WebSocket-Protocol: x\r\n",
         "offered: mqtt5, chat, x"},
        {"Sec-WebSocket-Protocol: a\"<b>, c;d\r\n", "offered: ab, cd"},
        {"Sec-WebSocket-Protocol: mqtt;v=1\r\n", "offered: mqttv1"},
        {"Sec-WebSocket-Protocol: ,,\r\n", "offered: none"},
    };
    for (size_t i = 0; i < sizeof(offers) / sizeof(*offers); i++) {
        char more[512];
        snprintf(more, sizeof(more), "Sec-WebSocket-Key: " GOOD_KEY "\r\n%s", offers[i][0]);
        request("GET", "/mqtt", more);
        expect(&mqtt_rules, 400);
        ASSERT_STR_EQ(u.why, "no supported subprotocol");
        ASSERT_STR_EQ(u.detail, offers[i][1]);
    }
    const char *a = answer();
    ASSERT(strstr(a, "\r\n\r\nno supported subprotocol (offered: none)\n") != NULL);
    /* A long offer is cut to fit. */
    char more[2048] = "Sec-WebSocket-Key: " GOOD_KEY "\r\nSec-WebSocket-Protocol: ";
    size_t o = strlen(more);
    for (int i = 0; i < 300; i++)
        more[o++] = 'p';
    memcpy(more + o, "\r\n", 3);
    request("GET", "/mqtt", more);
    expect(&mqtt_rules, 400);
    ASSERT_EQ(strlen(u.detail), sizeof(u.detail) - 1);
    ASSERT(starts(answer(), "HTTP/1.1 400 Bad Request\r\n"));
}

TEST(refusal_bodies)
{
    request("POST", "/", "Sec-WebSocket-Key: " GOOD_KEY "\r\n");
    expect(&any_rules, 405);
    char want[256];
    snprintf(want, sizeof(want),
             "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
             strlen(u.why) + 1, u.why);
    ASSERT_STR_EQ(answer(), want);
    /* What is neither a 101 nor a refusal is not written. */
    struct buf b;
    buf_init(&b, 0);
    struct ws_upgrade w = {.status = 200};
    ASSERT_EQ(ws_upgrade_response(&b, &w).err, WARD_ERR_INVALID);
    w.status = 101; /* without an accept value */
    ASSERT_EQ(ws_upgrade_response(&b, &w).err, WARD_ERR_INVALID);
    ASSERT_EQ(buf_len(&b), 0);
    /* Out of room leaves nothing. */
    buf_free(&b);
    buf_init(&b, 64);
    request("GET", "/x", "Sec-WebSocket-Key: " GOOD_KEY "\r\n");
    expect(&mqtt_rules, 404);
    ASSERT_EQ(ws_upgrade_response(&b, &u).err, WARD_ERR_LIMIT);
    ASSERT_EQ(buf_len(&b), 0);
    buf_free(&b);
}

int main(void)
{
    RUN(rfc6455_sample);
    RUN(another_key);
    RUN(lenient_field_forms);
    RUN(method_and_version);
    RUN(upgrade_and_connection);
    RUN(version_426);
    RUN(keys);
    RUN(paths);
    RUN(origins);
    RUN(subprotocols);
    RUN(subprotocol_refused);
    RUN(refusal_bodies);
    TEST_DONE();
}
