/* ward status against an admin server in this process whose API answers
 * are fixed: the figures read from the Prometheus text, --json, the exit
 * statuses (ready, not ready, refused, unreachable). */
#include "admin/admin.h"
#include "admin/apikey.h"
#include "app/cli_fixture.h"
#include "app/commands.h"
#include "test.h"

#define RUN_STATUS(...) cli_run(cmd_status, CLI_ARGS("status", __VA_ARGS__))

static const char metrics[] =
    "# HELP ward_clients_connected x\n"
    "ward_clients_connected{protocol=\"mqtt\"} 5\n"
    "ward_clients_connected{protocol=\"nats\"} 2\n"
    "ward_clients_connected_max 9\n"
    "ward_sessions{state=\"online\"} 7\n"
    "ward_sessions{state=\"offline\"} 3\n"
    "ward_subscriptions 11\n"
    "ward_messages_received_total{qos=\"0\"} 100\n"
    "ward_messages_received_total{qos=\"1\"} 20\n"
    "ward_messages_sent_total{qos=\"0\"} 300\n"
    "ward_messages_dropped_total{reason=\"queue_full\"} 4\n"
    "ward_retained_messages 6\n"
    "ward_retained_bytes 600\n"
    "ward_connections{listener=\"1883\",protocol=\"mqtt\",transport=\"tcp\"} 5\n"
    "ward_connections{listener=\"4222\",protocol=\"nats\",transport=\"tls\"} 2\n"
    "ward_bridge_up{bridge=\"cloud\"} 0\n";

static void answer(void *ctx, const struct http_request *rq, const char *who,
                   struct admin_reply *rep)
{
    const char *text = ctx;
    rep->content_type = "text/plain";
    ASSERT(ward_ok(buf_append(&rep->body, text, strlen(text))));
}

static char key[APIKEY_LEN + 1], keys_path[300], url[64];

static struct admin *server(void)
{
    char err[256];
    struct admin_config cfg = {.bind = "127.0.0.1:0", .api_keys_file = keys_path};
    struct admin *a = admin_new(&cfg, err, sizeof(err));
    ASSERT(a);
    ASSERT_EQ(
        admin_route(a, "GET", "/api/v4/prometheus", ADMIN_SCOPE_READ, answer, (void *)metrics), 0);
    ASSERT_EQ(admin_route(a, "GET", "/api/v4/brokers", ADMIN_SCOPE_READ, answer,
                          "{\"code\":0,\"data\":{\"uptime\":\"1 days\",\"version\":\"9.9\"}}"),
              0);
    ASSERT_EQ(admin_start(a, err, sizeof(err)), 0);
    snprintf(url, sizeof(url), "%s", admin_url(a));
    return a;
}

TEST(summary_from_the_api)
{
    struct admin *a = server();
    ASSERT_EQ(RUN_STATUS("--url", url, "--key", key), 1); /* not ready yet */
    ASSERT(strstr(out_text, "alive, not ready"));
    admin_set_ready(a, true);
    ASSERT_EQ(RUN_STATUS("--url", url, "--key", key), 0);
    ASSERT(strstr(out_text, ": alive, ready\n"));
    ASSERT(strstr(out_text, "version 9.9, up 1 days\n"));
    ASSERT(strstr(out_text, "connections: 7 (mqtt 5, nats 2)\n"));
    ASSERT(strstr(out_text, "sessions: 7 online, 3 offline; subscriptions: 11\n"));
    ASSERT(strstr(out_text, "messages: 120 in, 300 out, 4 dropped"));
    ASSERT(strstr(out_text, "retained: 6 messages, 600 bytes\n"));
    ASSERT(strstr(out_text, "listener 4222: nats over tls, 2 connections\n"));
    ASSERT(strstr(out_text, "bridge cloud: down\n"));
    ASSERT_EQ(RUN_STATUS("--url", url, "--key", key, "--json"), 0);
    ASSERT(strstr(out_text, "\"ready\":true"));
    ASSERT(strstr(out_text, "\"connections_mqtt\":5"));
    ASSERT(strstr(out_text, "\"messages_received\":120"));
    ASSERT(strstr(out_text, "{\"listener\":\"1883\",\"protocol\":\"mqtt\",\"transport\":\"tcp\","
                            "\"connections\":5}"));
    admin_free(a);
}

TEST(refused_and_unreachable)
{
    struct admin *a = server();
    admin_set_ready(a, true);
    /* open_health is off here: without a key nothing is told. */
    ASSERT_EQ(RUN_STATUS("--url", url), 3);
    ASSERT(strstr(out_text, "refused"));
    ASSERT_EQ(RUN_STATUS("--url", url, "--key", "wk_wrong", "--json"), 3);
    ASSERT(strstr(out_text, "\"reachable\":true"));
    admin_free(a);
    ASSERT_EQ(RUN_STATUS("--url", url, "--key", key, "--timeout", "2"), 1);
    ASSERT(strstr(out_text, "unreachable"));
    ASSERT_EQ(RUN_STATUS("--key", "a", "--key-file", "b"), 2);
    ASSERT_EQ(RUN_STATUS("--key-file", "/nonexistent/admin.key"), 1);
    ASSERT(strstr(err_text, "/nonexistent/admin.key"));
}

int main(void)
{
    char dir[] = "/tmp/ward-unit-status-XXXXXX", err[256];
    ASSERT(mkdtemp(dir));
    snprintf(keys_path, sizeof(keys_path), "%s/keys", dir);
    struct apikey_db db;
    apikey_db_init(&db);
    ASSERT_EQ(apikey_generate(key, sizeof(key)), 0);
    ASSERT_EQ(apikey_add(&db, "ro", ADMIN_SCOPE_READ, key, err, sizeof(err)), 0);
    ASSERT_EQ(apikey_save(&db, keys_path, err, sizeof(err)), 0);
    apikey_db_free(&db);
    RUN(summary_from_the_api);
    RUN(refused_and_unreachable);
    unlink(keys_path);
    rmdir(dir);
    TEST_DONE();
}
