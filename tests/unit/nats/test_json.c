/* src/nats/json.c: CONNECT's JSON as nats-server 2.9.10 reads it (the
 * accept/refuse cases were sent to one), and INFO as it writes it. */
#include <stdbool.h>

#include "nats/nats.h"
#include "page_end.h"
#include "test.h"

static struct nats_connect cn;
static char why[128];

static int parse(const char *json)
{
    return nats_connect_parse((const uint8_t *)json, strlen(json), &cn, why, sizeof why);
}

static void ok(const char *json)
{
    if (parse(json) != 0)
        TEST_FAIL_("%s: refused (%s)", json, why);
}

static void bad(const char *json)
{
    if (parse(json) != -1)
        TEST_FAIL_("%s: accepted", json);
    ASSERT(why[0] != '\0');
}

TEST(defaults)
{
    ok("{}");
    /* nats-server's defaults: verbose and pedantic on, echo on. */
    ASSERT(cn.verbose && cn.pedantic && cn.echo);
    ASSERT(!cn.tls_required && !cn.headers && !cn.no_responders);
    ASSERT_EQ(cn.protocol, 0);
    ASSERT(!cn.has_user && !cn.has_pass && !cn.has_token && !cn.has_nkey && !cn.has_sig &&
           !cn.has_jwt);
    ASSERT_STR_EQ(cn.name, "");
    ok(" \t\r\n{ \n} \r\n ");
}

TEST(fields)
{
    ok("{\"verbose\":false,\"pedantic\":false,\"tls_required\":true,\"echo\":false,"
       "\"headers\":true,\"no_responders\":true,\"protocol\":1,\"name\":\"svc\",\"lang\":\"go\","
       "\"version\":\"1.2.3\",\"user\":\"alice\",\"pass\":\"pw\",\"auth_token\":\"tok\","
       "\"nkey\":\"UABC\",\"sig\":\"c2ln\",\"jwt\":\"eyJ\"}");
    ASSERT(!cn.verbose && !cn.pedantic && cn.tls_required && !cn.echo && cn.headers &&
           cn.no_responders);
    ASSERT_EQ(cn.protocol, 1);
    ASSERT_STR_EQ(cn.name, "svc");
    ASSERT_STR_EQ(cn.lang, "go");
    ASSERT_STR_EQ(cn.version, "1.2.3");
    ASSERT_STR_EQ(cn.user, "alice");
    ASSERT_STR_EQ(cn.pass, "pw");
    ASSERT_STR_EQ(cn.auth_token, "tok");
    ASSERT_STR_EQ(cn.nkey, "UABC");
    ASSERT_STR_EQ(cn.sig, "c2ln");
    ASSERT_STR_EQ(cn.jwt, "eyJ");
    ASSERT(cn.has_user && cn.has_pass && cn.has_token && cn.has_nkey && cn.has_sig && cn.has_jwt);

    /* A present but empty field is present. */
    ok("{\"user\":\"\"}");
    ASSERT(cn.has_user);
    ASSERT_STR_EQ(cn.user, "");
}

TEST(as_go_reads_it)
{
    /* Keys match case-insensitively (nats-server took "VERBOSE":false). */
    ok("{\"VERBOSE\":false,\"User\":\"u\"}");
    ASSERT(!cn.verbose);
    ASSERT_STR_EQ(cn.user, "u");
    /* The last duplicate wins. */
    ok("{\"verbose\":true,\"verbose\":false,\"name\":\"a\",\"name\":\"b\"}");
    ASSERT(!cn.verbose);
    ASSERT_STR_EQ(cn.name, "b");
    /* null leaves the field alone (nats-server still said +OK). */
    ok("{\"verbose\":null,\"echo\":null,\"name\":null,\"protocol\":null}");
    ASSERT(cn.verbose && cn.echo);
    ASSERT(!cn.has_user);
    /* Unknown fields of any shape are skipped. */
    ok("{\"x\":{\"y\":[1,2,{\"z\":null}]},\"lang\":\"c\",\"arr\":[],\"o\":{},\"n\":-1.5e+3,"
       "\"s\":\"\\u00e9\",\"t\":true,\"f\":false,\"account\":\"A\",\"a_very_long_unknown_key_"
       "that_does_not_fit_our_key_buffer\":1}");
    ASSERT_STR_EQ(cn.lang, "c");
    /* A key longer than any field does not match a field by its prefix. */
    ok("{\"verbosexxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\":false}");
    ASSERT(cn.verbose);
    ok("{\"protocol\":-0}");
    ASSERT_EQ(cn.protocol, 0);
    ok("{\"protocol\":-1}"); /* a value nats-server refuses later, not as JSON */
    ASSERT_EQ(cn.protocol, -1);
}

TEST(wrong_types)
{
    /* nats-server closed the connection for each of these. */
    bad("{\"verbose\":\"yes\"}");
    bad("{\"name\":5}");
    bad("{\"protocol\":1.5}");
    bad("{\"protocol\":1e0}");
    bad("{\"protocol\":\"1\"}");
    bad("{\"protocol\":true}");
    bad("{\"protocol\":99999999999}");
    bad("{\"echo\":1}");
    bad("{\"user\":[\"a\"]}");
    bad("{\"pass\":{}}");
    bad("{\"headers\":tru}");
}

TEST(syntax)
{
    bad("");
    bad("   ");
    bad("[]");
    bad("null");
    bad("\"x\"");
    bad("{");
    bad("{\"a\"}");
    bad("{\"a\":}");
    bad("{\"a\":1,}");
    bad("{,}");
    bad("{\"a\":1 \"b\":2}");
    bad("{} x"); /* nats-server: "CONNECT {} x" closed */
    bad("{}{}");
    bad("{bad");
    bad("{'a':1}");
    bad("{\"a\":01}");
    bad("{\"a\":-}");
    bad("{\"a\":1.}");
    bad("{\"a\":1e}");
    bad("{\"a\":.5}");
    bad("{\"a\":+1}");
    bad("{\"a\":nul}");
    bad("{\"a\":[1,]}");
    bad("{\"a\":[1 2]}");
    bad("{\"a\":{\"b\"}}");
    bad("{\"a\":\"x}");
    bad("{\"a\":\"\x01\"}");  /* a raw control character */
    bad("{\"a\":\"\\x\"}");   /* no such escape */
    bad("{\"a\":\"\\u12\"}"); /* short \u */
    bad("{\"a\":\"\\u12g4\"}");
    bad("{\"name\":\"a\\u0000b\"}"); /* it would cut the C string short */
    ASSERT_EQ(nats_connect_parse(NULL, 0, &cn, why, sizeof why), -1);
    ASSERT_EQ(nats_connect_parse((const uint8_t *)"{}", 2, &cn, NULL, 0), 0);
    ASSERT_EQ(nats_connect_parse((const uint8_t *)"{", 1, &cn, NULL, 0), -1);
}

TEST(escapes_and_unicode)
{
    ok("{\"name\":\"q\\\"b\\\\s\\/n\\nr\\rt\\tb\\bf\\f\"}");
    ASSERT_STR_EQ(cn.name, "q\"b\\s/n\nr\rt\tb\bf\f");
    ok("{\"name\":\"\\u00e9\\u20AC\\ud83d\\ude00\"}");
    ASSERT_STR_EQ(cn.name, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    /* Raw UTF-8 is kept; a lone surrogate and invalid bytes become U+FFFD,
     * as Go decodes them. */
    ok("{\"name\":\"\xc3\xa9\"}");
    ASSERT_STR_EQ(cn.name, "\xc3\xa9");
    ok("{\"name\":\"\\ud800x\\udc00\"}");
    ASSERT_STR_EQ(cn.name, "\xef\xbf\xbdx\xef\xbf\xbd");
    ok("{\"name\":\"\\ud83d\\u0041\"}");
    ASSERT_STR_EQ(cn.name, "\xef\xbf\xbd"
                           "A");
    ok("{\"name\":\"\xff\xc3\"}");
    ASSERT_STR_EQ(cn.name, "\xef\xbf\xbd\xef\xbf\xbd");
    /* Escaped keys match. */
    ok("{\"\\u0076erbose\":false}");
    ASSERT(!cn.verbose);
}

static char *json_with(const char *key, size_t n)
{
    char *b = malloc(n + 64);
    ASSERT(b);
    int k = snprintf(b, 64, "{\"%s\":\"", key);
    memset(b + k, 'x', n);
    strcpy(b + k + n, "\"}");
    return b;
}

TEST(field_bounds)
{
    struct {
        const char *key;
        size_t cap;
    } f[] = {{"name", 256},        {"lang", 64},  {"version", 64}, {"user", 256}, {"pass", 1024},
             {"auth_token", 1024}, {"nkey", 128}, {"sig", 256},    {"jwt", 4096}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        char *fits = json_with(f[i].key, f[i].cap - 1);
        ok(fits);
        free(fits);
        char *over = json_with(f[i].key, f[i].cap);
        bad(over); /* an error, never truncated */
        free(over);
    }
    /* Multi-byte characters count as their bytes. */
    char big[600] = "{\"lang\":\"";
    for (int i = 0; i < 32; i++)
        strcat(big, "\\u00e9"); /* 64 bytes decoded: one too many with the NUL */
    strcat(big, "\"}");
    bad(big);
}

TEST(nesting_bound)
{
    char deep[256];
    size_t n = 0;
    deep[n++] = '{';
    memcpy(deep + n, "\"a\":", 4), n += 4;
    for (int i = 0; i < 31; i++)
        deep[n++] = '[';
    for (int i = 0; i < 31; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = '\0';
    ok(deep);
    /* One more level is past the bound. */
    n = 0;
    deep[n++] = '{';
    memcpy(deep + n, "\"a\":", 4), n += 4;
    for (int i = 0; i < 32; i++)
        deep[n++] = '[';
    for (int i = 0; i < 32; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = '\0';
    ASSERT_EQ(parse(deep), -1);
    ASSERT_STR_EQ(why, "nesting too deep");

    char *too = malloc(100000);
    ASSERT(too);
    strcpy(too, "{\"a\":");
    n = strlen(too);
    for (int i = 0; i < 50000; i++)
        too[n++] = '[';
    too[n] = '\0';
    bad(too); /* refused at the bound, long before the stack is at risk */
    free(too);
}

TEST(page_boundary)
{
    struct page_end pe;
    page_end_open(&pe);
    const char *docs[] = {"{\"name\":\"abc\"}", "{\"a\":[1,{\"b\":true}]}", "{\"p\":-1.5e3}",
                          "{\"s\":\"\\ud83d\\ude00\"}", "{\"protocol\":1}"};
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        size_t len = strlen(docs[i]);
        for (size_t k = 0; k <= len; k++) {
            const uint8_t *p = page_end_put(&pe, docs[i], k);
            int rc = nats_connect_parse(p, k, &cn, why, sizeof why);
            ASSERT_EQ(rc, k == len ? 0 : -1);
        }
    }
    page_end_close(&pe);
}

TEST(info_encode)
{
    const char *urls[] = {"10.0.0.1:4222", "[::1]:4222"};
    struct nats_info in = {
        .server_id = "NAHZL5",
        .server_name = "ward-1",
        .version = "2.9.10",
        .host = "127.0.0.1",
        .port = 4222,
        .headers = true,
        .auth_required = true,
        .max_payload = 1048576,
        .proto = 1,
        .client_id = 13496,
        .client_ip = "127.0.0.1",
        .nonce = "abc",
        .connect_urls = urls,
        .nconnect_urls = 2,
    };
    char buf[512];
    size_t n = nats_info_encode(&in, buf, sizeof buf);
    /* The order and spacing of nats-server 2.9.10's INFO (its "go" field
     * aside), with the line ending after a space. */
    const char *want = "INFO {\"server_id\":\"NAHZL5\",\"server_name\":\"ward-1\",\"version\":"
                       "\"2.9.10\",\"proto\":1,\"host\":\"127.0.0.1\",\"port\":4222,\"headers\":"
                       "true,\"auth_required\":true,\"max_payload\":1048576,\"client_id\":13496,"
                       "\"client_ip\":\"127.0.0.1\",\"nonce\":\"abc\",\"connect_urls\":[\"10.0.0."
                       "1:4222\",\"[::1]:4222\"]} \r\n";
    ASSERT_STR_EQ(buf, want);
    ASSERT_EQ(n, strlen(want));
    for (size_t cap = 0; cap <= n; cap++)
        ASSERT_EQ(nats_info_encode(&in, buf, cap), 0);

    /* Optional fields left out as nats-server omits them; NULL strings are "". */
    struct nats_info bare = {.max_payload = 5, .headers = false};
    ASSERT(nats_info_encode(&bare, buf, sizeof buf) > 0);
    ASSERT_STR_EQ(buf, "INFO {\"server_id\":\"\",\"server_name\":\"\",\"version\":\"\",\"proto\":0,"
                       "\"host\":\"\",\"port\":0,\"headers\":false,\"max_payload\":5} \r\n");
    bare.tls_required = bare.tls_verify = bare.tls_available = true;
    ASSERT(nats_info_encode(&bare, buf, sizeof buf) > 0);
    ASSERT(strstr(buf, "\"tls_required\":true,\"tls_verify\":true,\"tls_available\":true,"
                       "\"max_payload\":5"));
    /* Lame duck mode: "ldm":true last, as nats-server's Info orders it. */
    bare.ldm = true;
    ASSERT(nats_info_encode(&bare, buf, sizeof buf) > 0);
    ASSERT(strstr(buf, "\"max_payload\":5,\"ldm\":true} \r\n"));

    /* Strings escaped as Go writes them: nothing breaks the line. */
    struct nats_info evil = {.server_name = "a\"b\\c\r\n<x>&\x01\xe2\x80\xa8\xff\xc3\xa9"};
    ASSERT(nats_info_encode(&evil, buf, sizeof buf) > 0);
    ASSERT(strstr(buf, "\"server_name\":\"a\\\"b\\\\c\\r\\n\\u003cx\\u003e\\u0026\\u0001\\u2028"
                       "\\ufffd\xc3\xa9\""));
    ASSERT(strchr(buf, '\n') == buf + strlen(buf) - 1);

    /* What we write is JSON our reader accepts (the object part). */
    n = nats_info_encode(&in, buf, sizeof buf);
    ASSERT_EQ(nats_connect_parse((const uint8_t *)buf + 5, n - 7, &cn, why, sizeof why), 0);
}

int main(void)
{
    RUN(defaults);
    RUN(fields);
    RUN(as_go_reads_it);
    RUN(wrong_types);
    RUN(syntax);
    RUN(escapes_and_unicode);
    RUN(field_bounds);
    RUN(nesting_bound);
    RUN(page_boundary);
    RUN(info_encode);
    TEST_DONE();
}
