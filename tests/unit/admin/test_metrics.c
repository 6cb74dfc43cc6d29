/* src/admin/metrics.c: the exposition is well formed (every sample's
 * family announced by HELP and TYPE first, counters named _total, label
 * values escaped), values move with real traffic, and a scrape costs the
 * same whatever the number of sessions. */
#include <fcntl.h>

#include "api_fixture.h"

/* The value of the sample whose line starts with `series` + ' '; fails the
 * test if there is none. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    TEST_FAIL_("no sample %s", series);
    return 0;
}

/* Every line is a comment (HELP/TYPE of the family that follows) or a
 * sample of the family last announced. */
static void check_format(const char *text)
{
    char family[128] = "", type[16] = "";
    int helps = 0;
    for (const char *p = text; *p;) {
        const char *end = strchr(p, '\n');
        ASSERT(end); /* every line ends with \n */
        size_t len = (size_t)(end - p);
        char line[1024];
        ASSERT(len < sizeof(line));
        memcpy(line, p, len);
        line[len] = '\0';
        if (strncmp(line, "# HELP ", 7) == 0) {
            ASSERT_EQ(sscanf(line + 7, "%127s", family), 1);
            helps++;
        } else if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[128];
            ASSERT_EQ(sscanf(line + 7, "%127s %15s", name, type), 2);
            ASSERT_STR_EQ(name, family);
            size_t fl = strlen(family);
            bool total = fl > 6 && strcmp(family + fl - 6, "_total") == 0;
            if (strcmp(type, "counter") == 0 && !total)
                TEST_FAIL_("counter %s does not end in _total", family);
            if (strcmp(type, "counter") != 0 && total)
                TEST_FAIL_("%s %s ends in _total", type, family);
        } else {
            size_t fl = strlen(family);
            if (strncmp(line, family, fl) != 0 || (line[fl] != ' ' && line[fl] != '{'))
                TEST_FAIL_("sample '%s' outside its family %s", line, family);
            ASSERT(strchr(line, ' '));
        }
        p = end + 1;
    }
    ASSERT(helps > 30);
}

static char *scrape(struct arig *a)
{
    struct answer an = call(admin_metrics, &a->src, "GET", "/metrics", NULL);
    ASSERT_EQ(an.status, 200);
    ASSERT_STR_EQ(an.content_type, "text/plain; version=0.0.4; charset=utf-8");
    check_format(an.text);
    return an.text;
}

TEST(well_formed_and_moves_with_traffic)
{
    struct arig a;
    arig_start(&a);
    char *m = scrape(&a);
    ASSERT_EQ(sample(m, "ward_messages_received_total{qos=\"1\"}"), 0);
    ASSERT_EQ(sample(m, "ward_clients_connected{protocol=\"mqtt\"}"), 0);
    /* The listener's name is the operator's: quote and backslash escaped. */
    ASSERT_EQ(sample(m, "ward_connections{listener=\"mqtt \\\"main\\\"\",protocol=\"mqtt\","
                        "transport=\"tcp\"}"),
              0);
    ASSERT(sample(m, "process_resident_memory_bytes") > 0);
    ASSERT(sample(m, "process_open_fds") > 0);
    ASSERT(sample(m, "process_start_time_seconds") > 1.7e9);
    free(m);

    int sub = rig_connect(&a.r, "sub", 4), pub = rig_connect(&a.r, "pub", 4);
    arig_subscribe(sub, "t", 1);
    /* PUBLISH QoS 1 "t" "x", then its PUBACK. */
    ASSERT_EQ(write(pub, "\x32\x06\x00\x01t\x00\x01x", 8), 8);
    char ack[4];
    ASSERT_EQ(read_n(pub, ack, 4), 4u);
    ASSERT_EQ(read_n(sub, ack, 2), 2u); /* the delivery */
    m = scrape(&a);
    ASSERT_EQ(sample(m, "ward_messages_received_total{qos=\"1\"}"), 1);
    ASSERT_EQ(sample(m, "ward_clients_connected{protocol=\"mqtt\"}"), 2);
    ASSERT_EQ(sample(m, "ward_connections{listener=\"mqtt \\\"main\\\"\",protocol=\"mqtt\","
                        "transport=\"tcp\"}"),
              2);
    ASSERT_EQ(sample(m, "ward_connections{listener=\"nats\",protocol=\"nats\",transport=\"tcp\"}"),
              0);
    ASSERT_EQ(sample(m, "ward_sessions{state=\"online\"}"), 2);
    ASSERT_EQ(sample(m, "ward_subscriptions"), 1);
    ASSERT(sample(m, "ward_received_bytes_total") > 0);
    ASSERT_EQ(sample(m, "ward_connects_total"), 2);
    ASSERT(sample(m, "ward_listener_connections_total{listener=\"mqtt \\\"main\\\"\","
                     "protocol=\"mqtt\",transport=\"tcp\"}") >= 2);
    free(m);
    close(sub);
    close(pub);
    arig_stop(&a);
}

TEST(no_store_no_bridges_no_tls_families)
{
    struct arig a;
    arig_start(&a);
    char *m = scrape(&a);
    ASSERT(!strstr(m, "ward_store_"));
    ASSERT(!strstr(m, "ward_bridge_"));
    ASSERT(!strstr(m, "ward_tls_"));
    ASSERT(!strstr(m, "ward_http_requests_total"));
    free(m);
    arig_stop(&a);
}

/* Offline sessions made directly in the broker's table: a scrape must not
 * walk them (its size stays the same, its values come from counters). */
TEST(scrape_does_not_walk_sessions)
{
    struct arig a;
    arig_start(&a);
    char *before = scrape(&a);
    size_t len_before = strlen(before);
    free(before);
    pthread_mutex_lock(&a.r.b->lock);
    for (int i = 0; i < 20000; i++) {
        char id[32];
        snprintf(id, sizeof(id), "off-%d", i);
        struct session *s = session_new(a.r.b, id);
        ASSERT(s);
        s->expiry_s = SESSION_NEVER_EXPIRES;
        session_offline_add(a.r.b, s);
    }
    pthread_mutex_unlock(&a.r.b->lock);
    uint64_t t0 = clock_mono_ms();
    char *m = scrape(&a);
    uint64_t took = clock_mono_ms() - t0;
    ASSERT_EQ(sample(m, "ward_sessions{state=\"offline\"}"), 20000);
    ASSERT(strlen(m) < len_before + 64); /* only numbers grew */
    ASSERT(took < 1000); /* generous: a walk of 20,000 sessions is not what it measures */
    free(m);
    arig_stop(&a);
}

/* process_open_fds counts descriptors: 100 more show as 100 more. */
TEST(open_fds_counted)
{
    struct arig a;
    arig_start(&a);
    char *m = scrape(&a);
    double before = sample(m, "process_open_fds");
    free(m);
    int fds[100];
    for (int i = 0; i < 100; i++)
        ASSERT((fds[i] = open("/dev/null", O_RDONLY)) >= 0);
    m = scrape(&a);
    ASSERT_EQ(sample(m, "process_open_fds"), before + 100);
    free(m);
    for (int i = 0; i < 100; i++)
        close(fds[i]);
    arig_stop(&a);
}

TEST(write_fails_cleanly_when_out_of_room)
{
    struct arig a;
    arig_start(&a);
    struct buf small;
    buf_init(&small, 512);
    ASSERT(!ward_ok(admin_metrics_write(&a.src, &small)));
    buf_free(&small);
    arig_stop(&a);
}

int main(void)
{
    RUN(well_formed_and_moves_with_traffic);
    RUN(no_store_no_bridges_no_tls_families);
    RUN(scrape_does_not_walk_sessions);
    RUN(open_fds_counted);
    RUN(write_fails_cleanly_when_out_of_room);
    TEST_DONE();
}
