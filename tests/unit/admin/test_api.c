/* src/admin/api.c: the /api/v4 handlers called directly with parsed
 * requests, on a real broker: pages and their bounds, bad parameters
 * (400), unknown ids (404), kicking, publishing, retained messages,
 * sessions, reload, and peer-chosen strings escaped. */
#include "api_fixture.h"

TEST(clients_paged_and_bounded)
{
    struct arig a;
    arig_start(&a);
    int fds[3] = {rig_connect(&a.r, "c0", 4), rig_connect(&a.r, "c1", 5),
                  rig_connect(&a.r, "c2", 4)};
    rig_client(&a.r, "c2");
    struct answer an = call(admin_api_clients, &a.src, "GET", "/api/v4/clients?_limit=2", NULL);
    ASSERT_EQ(an.status, 200);
    ASSERT_STR_EQ(an.content_type, "application/json");
    ASSERT_HAS(an.text, "\"code\":0");
    ASSERT_HAS(an.text, "\"client_id\":\"c2\"");
    ASSERT_HAS(an.text, "\"client_id\":\"c1\"");
    ASSERT(!strstr(an.text, "\"c0\""));
    ASSERT_HAS(an.text,
               "\"meta\":{\"page\":1,\"limit\":2,\"count\":3,\"hasnext\":true,\"last\":\"c1\"}");
    answer_free(&an);
    /* The cursor: the page after c1 holds c0 alone. */
    an = call(admin_api_clients, &a.src, "GET", "/api/v4/clients?_limit=2&after=c1", NULL);
    ASSERT_EQ(an.status, 200);
    ASSERT_HAS(an.text, "\"data\":[{\"client_id\":\"c0\"");
    ASSERT_HAS(an.text, "\"hasnext\":false,\"last\":\"c0\"}");
    answer_free(&an);
    an = call(admin_api_clients, &a.src, "GET", "/api/v4/clients?after=c0", NULL);
    ASSERT_HAS(an.text, "\"data\":[]");
    ASSERT(!strstr(an.text, "\"last\""));
    answer_free(&an);
    an = call(admin_api_clients, &a.src, "GET", "/api/v4/clients?after=gone", NULL);
    ASSERT_EQ(an.status, 410);
    answer_free(&an);
    an = call(admin_api_clients, &a.src, "GET", "/api/v4/clients?after=%zz", NULL);
    ASSERT_EQ(an.status, 400);
    answer_free(&an);
    an = call(admin_api_clients, &a.src, "GET", "/api/v4/clients?_page=2&_limit=2", NULL);
    ASSERT_HAS(an.text, "\"client_id\":\"c0\"");
    ASSERT_HAS(an.text, "\"proto_ver\":4");
    ASSERT_HAS(an.text, "\"recv_msg\":0,\"send_msg\":0,\"recv_oct\":");
    ASSERT_HAS(an.text, "\"hasnext\":false");
    answer_free(&an);
    an = call(admin_api_clients, &a.src, "GET", "/api/v4/clients?_page=9", NULL);
    ASSERT_EQ(an.status, 200);
    ASSERT_HAS(an.text, "\"data\":[]");
    answer_free(&an);
    static const char *const bad[] = {"_page=0",      "_page=-1",   "_limit=0",
                                      "_limit=10001", "_limit=abc", "_page=%zz",
                                      "_page=",       "_limit=1e3", "_page=99999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char target[64];
        snprintf(target, sizeof(target), "/api/v4/clients?%s", bad[i]);
        an = call(admin_api_clients, &a.src, "GET", target, NULL);
        if (an.status != 400)
            TEST_FAIL_("%s answered %d", target, an.status);
        ASSERT_HAS(an.text, "\"code\":400");
        answer_free(&an);
    }
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    arig_stop(&a);
}

TEST(client_one_kick_and_unknown)
{
    struct arig a;
    arig_start(&a);
    int fd = rig_connect(&a.r, "dev/1", 5);
    rig_client(&a.r, "dev/1");
    struct answer an = call(admin_api_client_one, &a.src, "GET", "/api/v4/clients/dev%2F1", NULL);
    ASSERT_EQ(an.status, 200);
    ASSERT_HAS(an.text, "\"data\":[{\"client_id\":\"dev/1\"");
    ASSERT_HAS(an.text, "\"proto_ver\":5");
    answer_free(&an);
    an = call(admin_api_client_one, &a.src, "GET", "/api/v4/clients/nobody", NULL);
    ASSERT_EQ(an.status, 404);
    answer_free(&an);
    an = call(admin_api_client_one, &a.src, "GET", "/api/v4/clients/%zz", NULL);
    ASSERT_EQ(an.status, 400);
    answer_free(&an);
    an = call(admin_api_client_one, &a.src, "GET", "/api/v4/clients/", NULL);
    ASSERT_EQ(an.status, 400);
    answer_free(&an);
    an = call(admin_api_client_one, &a.src, "DELETE", "/api/v4/clients/dev%2F1", NULL);
    ASSERT_EQ(an.status, 200);
    answer_free(&an);
    char d[3];
    ASSERT_EQ(read_n(fd, d, 3), 3u);
    ASSERT_EQ((uint8_t)d[0], 0xe0); /* DISCONNECT 0x98 */
    ASSERT_EQ((uint8_t)d[2], 0x98);
    an = call(admin_api_client_one, &a.src, "DELETE", "/api/v4/clients/nobody", NULL);
    ASSERT_EQ(an.status, 404);
    answer_free(&an);
    close(fd);
    arig_stop(&a);
}

TEST(peer_chosen_strings_are_escaped)
{
    struct arig a;
    arig_start(&a);
    int fd = rig_connect(&a.r, "a\"b\\c</script>", 4);
    rig_client(&a.r, "a\"b\\c</script>");
    struct answer an = call(admin_api_clients, &a.src, "GET", "/api/v4/clients", NULL);
    ASSERT_EQ(an.status, 200);
    ASSERT(!strstr(an.text, "a\"b"));
    ASSERT(!strstr(an.text, "</script>"));
    ASSERT_HAS(an.text, "a\\\"b\\\\c");
    answer_free(&an);
    close(fd);
    arig_stop(&a);
}

TEST(subscriptions_all_and_of_one_client)
{
    struct arig a;
    arig_start(&a);
    int s1 = rig_connect(&a.r, "s1", 4), s2 = rig_connect(&a.r, "s2", 4);
    arig_subscribe(s1, "a/+", 1);
    arig_subscribe(s2, "b/#", 2);
    arig_subscribe(s2, "c", 0);
    struct answer an = call(admin_api_subscriptions, &a.src, "GET", "/api/v4/subscriptions", NULL);
    ASSERT_EQ(an.status, 200);
    ASSERT_HAS(an.text, "\"count\":3");
    ASSERT_HAS(an.text, "{\"clientid\":\"s1\",\"topic\":\"a/+\",\"qos\":1,\"protocol\":\"mqtt\"}");
    answer_free(&an);
    an = call(admin_api_subscriptions, &a.src, "GET", "/api/v4/subscriptions?clientid=s2&_limit=1",
              NULL);
    ASSERT_HAS(an.text, "\"count\":2");
    ASSERT_HAS(an.text, "\"hasnext\":true");
    ASSERT(!strstr(an.text, "\"s1\""));
    answer_free(&an);
    an = call(admin_api_subscriptions, &a.src, "GET", "/api/v4/subscriptions?clientid=zz", NULL);
    ASSERT_HAS(an.text, "\"data\":[]");
    ASSERT_HAS(an.text, "\"count\":0");
    answer_free(&an);
    an = call(admin_api_subscriptions, &a.src, "GET", "/api/v4/subscriptions?clientid=%zz", NULL);
    ASSERT_EQ(an.status, 400);
    answer_free(&an);
    an = call(admin_api_subscriptions, &a.src, "GET", "/api/v4/subscriptions?_limit=x", NULL);
    ASSERT_EQ(an.status, 400);
    answer_free(&an);
    close(s1);
    close(s2);
    arig_stop(&a);
}

TEST(publish_plain_base64_and_refusals)
{
    struct arig a;
    arig_start(&a);
    int sub = rig_connect(&a.r, "sub", 4);
    arig_subscribe(sub, "p/#", 0);
    struct answer an = call(admin_api_publish, &a.src, "POST", "/api/v4/mqtt/publish",
                            "{\"topic\":\"p/\\u0071\",\"payload\":\"h\\u00e9\",\"qos\":0}");
    ASSERT_EQ(an.status, 200);
    answer_free(&an);
    char got[16];
    ASSERT_EQ(read_n(sub, got, 10), 10u); /* 0x30 8, "p/q", "h\xc3\xa9" */
    ASSERT_EQ((uint8_t)got[0], 0x30);
    ASSERT_MEM_EQ(got + 4, "p/q", 3);
    ASSERT_MEM_EQ(got + 7, "h\xc3\xa9", 3);
    an = call(admin_api_publish, &a.src, "POST", "/api/v4/mqtt/publish",
              " {\"topic\": \"p/b\", \"payload\": \"AAEC\", \"encoding\": \"base64\", "
              "\"retain\": false, \"clientid\": \"ignored\"} ");
    ASSERT_EQ(an.status, 200);
    answer_free(&an);
    ASSERT_EQ(read_n(sub, got, 10), 10u);
    ASSERT_MEM_EQ(got + 7, "\x00\x01\x02", 3);
    static const char *const bad[] = {
        "",
        "[]",
        "{\"topic\":\"p/+\",\"payload\":\"x\"}",
        "{\"topic\":\"$SYS/x\"}",
        "{\"payload\":\"x\"}",
        "{\"topic\":\"p\",\"qos\":3}",
        "{\"topic\":\"p\",\"qos\":\"1\"}",
        "{\"topic\":\"p\",\"retain\":1}",
        "{\"topic\":\"p\",\"payload\":\"!!\",\"encoding\":\"base64\"}",
        "{\"topic\":\"p\",\"encoding\":\"hex\"}",
        "{\"topic\":\"p\",\"x\":{\"nested\":1}}",
        "{\"topic\":\"p\"",
        "{\"topic\":\"p\"} trailing",
        "{\"topic\":\"p\\ud800\"}",
        "{\"topic\":\"a\\u0000b\"}",
        "{\"topic\":\"p\",}",
        "{\"topic\":\"p\\q\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        an = call(admin_api_publish, &a.src, "POST", "/api/v4/mqtt/publish", bad[i]);
        if (an.status != 400)
            TEST_FAIL_("'%s' answered %d: %s", bad[i], an.status, an.text);
        answer_free(&an);
    }
    close(sub);
    arig_stop(&a);
}

TEST(retained_list_get_delete)
{
    struct arig a;
    arig_start(&a);
    struct answer an = call(admin_api_publish, &a.src, "POST", "/api/v4/mqtt/publish",
                            "{\"topic\":\"r/1\",\"payload\":\"one\",\"qos\":1,\"retain\":true}");
    ASSERT_EQ(an.status, 200);
    answer_free(&an);
    ASSERT_EQ(broker_publish(a.r.b, "r/2", (const uint8_t *)"\xff", 1, 0, true), 0);
    an = call(admin_api_retained, &a.src, "GET", "/api/v4/retained", NULL);
    ASSERT_EQ(an.status, 200);
    ASSERT_HAS(an.text, "\"count\":2");
    ASSERT_HAS(an.text, "\"topic\":\"r/1\",\"qos\":1,\"payload_size\":3,\"encoding\":\"base64\","
                        "\"payload\":\"b25l\"");
    answer_free(&an);
    an = call(admin_api_retained, &a.src, "GET", "/api/v4/retained?encoding=plain&_limit=1", NULL);
    ASSERT_HAS(an.text, "\"encoding\":\"plain\"");
    ASSERT_HAS(an.text, "\"hasnext\":true");
    answer_free(&an);
    an = call(admin_api_retained, &a.src, "GET", "/api/v4/retained?encoding=hex", NULL);
    ASSERT_EQ(an.status, 400);
    answer_free(&an);
    an = call(admin_api_retained_one, &a.src, "GET", "/api/v4/retained/r%2F1?encoding=plain", NULL);
    ASSERT_EQ(an.status, 200);
    ASSERT_HAS(an.text, "\"payload\":\"one\"");
    answer_free(&an);
    an = call(admin_api_retained_one, &a.src, "DELETE", "/api/v4/retained/r%2F1", NULL);
    ASSERT_EQ(an.status, 200);
    answer_free(&an);
    an = call(admin_api_retained_one, &a.src, "GET", "/api/v4/retained/r%2F1", NULL);
    ASSERT_EQ(an.status, 404);
    answer_free(&an);
    an = call(admin_api_retained_one, &a.src, "DELETE", "/api/v4/retained/r%2F1", NULL);
    ASSERT_EQ(an.status, 404);
    answer_free(&an);
    an = call(admin_api_retained_one, &a.src, "GET", "/api/v4/retained/r%2F%2B", NULL);
    ASSERT_EQ(an.status, 400);
    answer_free(&an);
    an = call(admin_api_retained_one, &a.src, "DELETE", "/api/v4/retained/", NULL);
    ASSERT_EQ(an.status, 400);
    answer_free(&an);
    an = call(admin_api_retained, &a.src, "GET", "/api/v4/retained", NULL);
    ASSERT_HAS(an.text, "\"count\":1");
    answer_free(&an);
    /* A page that cannot fit the reply bound is refused whole, with advice. */
    static uint8_t big[100000];
    ASSERT_EQ(broker_publish(a.r.b, "r/big", big, sizeof(big), 0, true), 0);
    answer_limit = 64000;
    an = call(admin_api_retained, &a.src, "GET", "/api/v4/retained", NULL);
    answer_limit = 64u << 20;
    ASSERT_EQ(an.status, 500);
    ASSERT_HAS(an.text, "smaller _limit");
    answer_free(&an);
    arig_stop(&a);
}

TEST(sessions_listed_and_ended)
{
    struct arig a;
    arig_start(&a);
    int fd = rig_connect(&a.r, "live", 4);
    rig_client(&a.r, "live");
    struct answer an = call(admin_api_sessions, &a.src, "GET", "/api/v4/sessions", NULL);
    ASSERT_EQ(an.status, 200);
    ASSERT_HAS(an.text, "{\"clientid\":\"live\",\"owner\":\"\",\"connected\":true");
    ASSERT_HAS(an.text, "\"count\":1");
    answer_free(&an);
    an = call(admin_api_session_one, &a.src, "GET", "/api/v4/sessions/live", NULL);
    ASSERT_EQ(an.status, 200);
    ASSERT_HAS(an.text, "\"data\":{\"clientid\":\"live\"");
    answer_free(&an);
    an = call(admin_api_session_one, &a.src, "GET", "/api/v4/sessions/gone", NULL);
    ASSERT_EQ(an.status, 404);
    answer_free(&an);
    an = call(admin_api_session_one, &a.src, "DELETE", "/api/v4/sessions/live", NULL);
    ASSERT_EQ(an.status, 200);
    answer_free(&an);
    char c;
    ASSERT_EQ(read(fd, &c, 1), 0); /* disconnected */
    an = call(admin_api_session_one, &a.src, "DELETE", "/api/v4/sessions/live", NULL);
    ASSERT_EQ(an.status, 404);
    answer_free(&an);
    an = call(admin_api_sessions, &a.src, "GET", "/api/v4/sessions?_page=a", NULL);
    ASSERT_EQ(an.status, 400);
    answer_free(&an);
    an = call(admin_api_sessions, &a.src, "GET", "/api/v4/sessions?after=live", NULL);
    ASSERT_EQ(an.status, 410); /* ended above */
    answer_free(&an);
    close(fd);
    arig_stop(&a);
}

static int reload_calls;
static int reload_ok(void *ctx, char *err, size_t errlen)
{
    reload_calls++;
    return 0;
}
static int reload_bad(void *ctx, char *err, size_t errlen)
{
    snprintf(err, errlen, "ward.conf:3: bad key");
    return -1;
}

TEST(reload_brokers_bridges_tls)
{
    struct arig a;
    arig_start(&a);
    struct answer an = call(admin_api_reload, &a.src, "POST", "/api/v4/reload", NULL);
    ASSERT_EQ(an.status, 501);
    answer_free(&an);
    a.src.reload = reload_ok;
    an = call(admin_api_reload, &a.src, "POST", "/api/v4/reload", NULL);
    ASSERT_EQ(an.status, 200);
    ASSERT_EQ(reload_calls, 1);
    answer_free(&an);
    a.src.reload = reload_bad;
    an = call(admin_api_reload, &a.src, "POST", "/api/v4/reload", NULL);
    ASSERT_EQ(an.status, 500);
    ASSERT_HAS(an.text, "bad key");
    answer_free(&an);
    an = call(admin_api_brokers, &a.src, "GET", "/api/v4/brokers", NULL);
    ASSERT_EQ(an.status, 200);
    ASSERT_HAS(an.text, "\"version\":\"" WARD_VERSION "\"");
    ASSERT_HAS(an.text, "\"node_status\":\"Running\"");
    ASSERT_HAS(an.text, "\"uptime\":\"0 days, 0 hours, 0 minutes, ");
    answer_free(&an);
    an = call(admin_api_bridges, &a.src, "GET", "/api/v4/bridges", NULL);
    ASSERT_EQ(an.status, 200);
    ASSERT_STR_EQ(an.text, "{\"code\":0,\"data\":[]}");
    answer_free(&an);
    an = call(admin_api_tls, &a.src, "GET", "/api/v4/tls", NULL);
    ASSERT_STR_EQ(an.text, "{\"code\":0,\"data\":[]}");
    answer_free(&an);
    arig_stop(&a);
}

int main(void)
{
    RUN(clients_paged_and_bounded);
    RUN(client_one_kick_and_unknown);
    RUN(peer_chosen_strings_are_escaped);
    RUN(subscriptions_all_and_of_one_client);
    RUN(publish_plain_base64_and_refusals);
    RUN(retained_list_get_delete);
    RUN(sessions_listed_and_ended);
    RUN(reload_brokers_bridges_tls);
    TEST_DONE();
}
