/* src/admin/natsmon.c: /varz, /connz and /subsz with nats-server's field
 * names, on a broker with real NATS clients; connz paging and its bad
 * parameters. */
#include "api_fixture.h"

static void send_str(int fd, const char *s)
{
    ASSERT_EQ(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* A NATS client: INFO read, CONNECT and SUBs sent, a PONG back (so all of
 * it was handled). */
static int nats_client(struct arig *a, const char *subs)
{
    int fd = dial(a->nats_port);
    char line[4096];
    read_crlf_line(fd, line, sizeof(line));
    ASSERT(strncmp(line, "INFO {", 6) == 0);
    send_str(fd, "CONNECT {\"verbose\":false,\"name\":\"probe\",\"lang\":\"c\"}\r\n");
    send_str(fd, subs);
    send_str(fd, "PING\r\n");
    read_crlf_line(fd, line, sizeof(line));
    ASSERT_STR_EQ(line, "PONG");
    return fd;
}

TEST(varz_fields)
{
    struct arig a;
    arig_start(&a);
    int fd = nats_client(&a, "SUB foo.> 1\r\n");
    send_str(fd, "PUB foo.x 2\r\nhi\r\n");
    char line[256];
    read_crlf_line(fd, line, sizeof(line)); /* its own MSG (echo) */
    ASSERT(strncmp(line, "MSG foo.x 1 2", 13) == 0);
    struct answer an = call(admin_natsmon_varz, &a.src, "GET", "/varz", NULL);
    ASSERT_EQ(an.status, 200);
    char want[128];
    snprintf(want, sizeof(want), "\"server_id\":\"%s\"", broker_nats_server_id());
    ASSERT_HAS(an.text, want);
    snprintf(want, sizeof(want), "\"port\":%u", a.nats_port);
    ASSERT_HAS(an.text, want);
    static const char *const fields[] = {"\"version\":\"",
                                         "\"proto\":1",
                                         "\"max_payload\":1048576",
                                         "\"ping_interval\":",
                                         "\"max_control_line\":",
                                         "\"start\":\"20",
                                         "\"now\":\"20",
                                         "\"uptime\":\"",
                                         "\"mem\":",
                                         "\"cores\":",
                                         "\"cpu\":",
                                         "\"connections\":1",
                                         "\"total_connections\":",
                                         "\"in_msgs\":1",
                                         "\"out_msgs\":1",
                                         "\"in_bytes\":",
                                         "\"out_bytes\":",
                                         "\"slow_consumers\":0",
                                         "\"subscriptions\":1",
                                         "\"http_req_stats\":{}"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        ASSERT_HAS(an.text, fields[i]);
    answer_free(&an);
    close(fd);
    arig_stop(&a);
}

TEST(connz_pages_and_subscriptions)
{
    struct arig a;
    arig_start(&a);
    int f1 = nats_client(&a, "SUB a 1\r\nSUB b q 2\r\n"), f2 = nats_client(&a, "");
    int mq = rig_connect(&a.r, "mqtt-one", 4); /* not listed: /connz is NATS only */
    rig_client(&a.r, "mqtt-one");
    send_str(f2, "PUB a 2\r\nhi\r\n");
    char line[256];
    read_crlf_line(f1, line, sizeof(line));
    ASSERT_STR_EQ(line, "MSG a 1 2");
    struct answer an = call(admin_natsmon_connz, &a.src, "GET", "/connz", NULL);
    ASSERT_EQ(an.status, 200);
    ASSERT_HAS(an.text, "\"num_connections\":2");
    ASSERT_HAS(an.text, "\"total\":2");
    ASSERT_HAS(an.text, "\"offset\":0");
    ASSERT_HAS(an.text, "\"limit\":1024");
    ASSERT_HAS(an.text, "\"kind\":\"Client\",\"type\":\"nats\",\"ip\":\"127.0.0.1\",\"port\":");
    ASSERT_HAS(an.text, "\"subscriptions\":2");
    /* Each connection's own counts: f2 sent one message, f1 got it. */
    ASSERT_HAS(an.text, "\"in_msgs\":1,\"out_msgs\":0,\"in_bytes\":2,");
    ASSERT_HAS(an.text, "\"in_msgs\":0,\"out_msgs\":1,\"in_bytes\":0,");
    ASSERT(!strstr(an.text, "subscriptions_list"));
    ASSERT(!strstr(an.text, "mqtt-one"));
    answer_free(&an);
    an = call(admin_natsmon_connz, &a.src, "GET", "/connz?subs=1&offset=1&limit=1", NULL);
    ASSERT_HAS(an.text, "\"num_connections\":1");
    ASSERT_HAS(an.text, "\"total\":2");
    ASSERT_HAS(an.text, "\"subscriptions_list\":[");
    ASSERT_HAS(an.text, "\"a\"");
    answer_free(&an);
    an = call(admin_natsmon_connz, &a.src, "GET", "/connz?subs=detail&offset=1", NULL);
    ASSERT_HAS(an.text, "\"subscriptions_list_detail\":[{\"subject\":\"");
    answer_free(&an);
    an = call(admin_natsmon_connz, &a.src, "GET", "/connz?offset=5", NULL);
    ASSERT_HAS(an.text, "\"num_connections\":0");
    ASSERT_HAS(an.text, "\"connections\":[]");
    answer_free(&an);
    static const char *const bad[] = {"/connz?limit=-1", "/connz?limit=x", "/connz?offset=1x",
                                      "/connz?limit=100000", "/connz?offset="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        an = call(admin_natsmon_connz, &a.src, "GET", bad[i], NULL);
        if (an.status != 400)
            TEST_FAIL_("%s answered %d", bad[i], an.status);
        answer_free(&an);
    }
    close(f1);
    close(f2);
    close(mq);
    arig_stop(&a);
}

TEST(subsz_counts)
{
    struct arig a;
    arig_start(&a);
    int fd = nats_client(&a, "SUB x 1\r\nSUB y 2\r\n");
    struct answer an = call(admin_natsmon_subsz, &a.src, "GET", "/subsz", NULL);
    ASSERT_EQ(an.status, 200);
    ASSERT_HAS(an.text, "{\"num_subscriptions\":2,\"num_cache\":0,");
    ASSERT_HAS(an.text, "\"avg_fanout\":0}");
    answer_free(&an);
    close(fd);
    arig_stop(&a);
}

int main(void)
{
    RUN(varz_fields);
    RUN(connz_pages_and_subscriptions);
    RUN(subsz_counts);
    TEST_DONE();
}
