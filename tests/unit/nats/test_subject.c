/* src/nats/subject.c: subject rules and matching as nats-server's, and the
 * MQTT mapping: nats-server's own conversion examples (server/mqtt_test.go),
 * the table in docs/nats.md, and round trips over every short name. */
#include <stdbool.h>

#include "nats/nats.h"
#include "page_end.h"
#include "test.h"

static bool valid(const char *s, bool filter)
{
    return nats_subject_valid((const uint8_t *)s, strlen(s), filter);
}

static bool match(const char *f, const char *s)
{
    return nats_subject_match((const uint8_t *)f, strlen(f), (const uint8_t *)s, strlen(s));
}

TEST(subject_valid)
{
    const char *good[] = {"foo", "foo.bar", "a.b.c.d", "$SYS.x",   "_INBOX.abc",
                          "a*",  "*a",      "a>b",     "foo.a*.b", "\xc3\xa9",
                          "/",   "a./.b",   "a//b",    "-",        "0"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        ASSERT(valid(good[i], false));
        ASSERT(valid(good[i], true));
    }
    const char *filters[] = {"*", ">", "foo.*", "foo.>", "*.*", "*.>", "foo.*.bar", "*.foo.>"};
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++) {
        ASSERT(valid(filters[i], true));
        ASSERT(!valid(filters[i], false));
    }
    /* nats-server answered "Invalid Subject" to SUB >.a and SUB a.\t (split
     * to "a."), and "Invalid Publish Subject" to PUB a.. and PUB a.*. */
    const char *never[] = {"",      ".",     "a.",   ".a",   "a..b",   ">.a",
                           "a.>.b", "a b",   "a\tb", "a\rb", "a\nb",   "a\fb",
                           "a\x01", "a\x7f", "a.> ", ">.>",  "foo..>", "a. .b"};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
        ASSERT(!valid(never[i], true));
        ASSERT(!valid(never[i], false));
    }
    ASSERT(!nats_subject_valid((const uint8_t *)"a\0b", 3, true));
}

TEST(queue_valid)
{
    /* nats-server takes any queue name the line splits out: SUB a q.* 1
     * passed. We refuse only what cannot be on a line or in a log. */
    ASSERT(nats_queue_valid((const uint8_t *)"workers", 7));
    ASSERT(nats_queue_valid((const uint8_t *)"q.*", 3));
    ASSERT(nats_queue_valid((const uint8_t *)"g-1_x", 5));
    ASSERT(!nats_queue_valid((const uint8_t *)"", 0));
    ASSERT(!nats_queue_valid((const uint8_t *)"a b", 3));
    ASSERT(!nats_queue_valid((const uint8_t *)"a\tb", 3));
    ASSERT(!nats_queue_valid((const uint8_t *)"a\r", 2));
    ASSERT(!nats_queue_valid((const uint8_t *)"a\x7f", 2));
}

TEST(subject_match)
{
    ASSERT(match("foo", "foo"));
    ASSERT(!match("foo", "foo.bar"));
    ASSERT(!match("foo.bar", "foo"));
    ASSERT(match("foo.*", "foo.bar"));
    ASSERT(!match("foo.*", "foo"));
    ASSERT(!match("foo.*", "foo.bar.baz"));
    ASSERT(match("foo.>", "foo.bar"));
    ASSERT(match("foo.>", "foo.bar.baz"));
    ASSERT(!match("foo.>", "foo")); /* '>' needs at least one more token */
    ASSERT(match(">", "foo"));
    ASSERT(match(">", "foo.bar"));
    ASSERT(match("*", "foo"));
    ASSERT(!match("*", "foo.bar"));
    ASSERT(match("*.*", "a.b"));
    ASSERT(match("*.bar.>", "foo.bar.baz.qux"));
    ASSERT(!match("*.bar.>", "foo.baz.baz"));
    ASSERT(!match("foo.bar", "foo.baz"));
    ASSERT(!match("foo.ba", "foo.bar"));
    ASSERT(!match("foo.bar", "foo.ba"));
    ASSERT(match("a*.b", "a*.b")); /* a literal token */
    ASSERT(!match("a*.b", "ax.b"));
    ASSERT(!match("", "a"));
    ASSERT(!match("a", ""));
    ASSERT(match("$SYS.>", "$SYS.x"));
}

static int to_nats(const char *mqtt, bool filter, char *out, size_t cap)
{
    return mqtt_to_nats((const uint8_t *)mqtt, strlen(mqtt), filter, out, cap);
}

static int to_mqtt(const char *nats, bool filter, char *out, size_t cap)
{
    return nats_to_mqtt((const uint8_t *)nats, strlen(nats), filter, out, cap);
}

/* Both directions, and back. */
static void pair(const char *mqtt, const char *nats, bool filter)
{
    char out[512];
    int n = to_nats(mqtt, filter, out, sizeof out);
    if (n < 0 || (size_t)n != strlen(nats) || memcmp(out, nats, (size_t)n) != 0)
        TEST_FAIL_("MQTT \"%s\" -> \"%.*s\" (%d), want \"%s\"", mqtt, n < 0 ? 0 : n, out, n, nats);
    n = to_mqtt(nats, filter, out, sizeof out);
    if (n < 0 || (size_t)n != strlen(mqtt) || memcmp(out, mqtt, (size_t)n) != 0)
        TEST_FAIL_("NATS \"%s\" -> \"%.*s\" (%d), want \"%s\"", nats, n < 0 ? 0 : n, out, n, mqtt);
    /* A topic maps the same as a filter. */
    if (!filter)
        pair(mqtt, nats, true);
}

TEST(mapping_nats_server_examples)
{
    /* The pairs of nats-server's TestMQTTTopicAndSubjectConversion. */
    static const char *topics[][2] = {
        {"/", "/./"},
        {"//", "/././"},
        {"///", "/./././"},
        {"////", "/././././"},
        {"foo", "foo"},
        {"/foo", "/.foo"},
        {"//foo", "/./.foo"},
        {"///foo", "/././.foo"},
        {"///foo/", "/././.foo./"},
        {"///foo//", "/././.foo././"},
        {"///foo///", "/././.foo./././"},
        {"//.foo.//", "/././/foo//././"},
        {"foo/bar", "foo.bar"},
        {"/foo/bar", "/.foo.bar"},
        {"/foo/bar/", "/.foo.bar./"},
        {"foo/bar/baz", "foo.bar.baz"},
        {"/foo/bar/baz", "/.foo.bar.baz"},
        {"/foo/bar/baz/", "/.foo.bar.baz./"},
        {"bar/", "bar./"},
        {"bar//", "bar././"},
        {"bar///", "bar./././"},
        {"foo//bar", "foo./.bar"},
        {"foo///bar", "foo././.bar"},
        {"foo////bar", "foo./././.bar"},
        {".", "//"},
        {"..", "////"},
        {"...", "//////"},
        {"./", "//./"},
        {".//.", "//././/"},
        {"././.", "//.//.//"},
        {"././/.", "//.//././/"},
        {".foo", "//foo"},
        {"foo.", "foo//"},
        {".foo.", "//foo//"},
        {"foo../bar/", "foo////.bar./"},
        {"foo../bar/.", "foo////.bar.//"},
        {"/foo/", "/.foo./"},
        {"./foo/.", "//.foo.//"},
        {"foo.bar/baz", "foo//bar.baz"},
    };
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
        pair(topics[i][0], topics[i][1], false);
    /* Its TestMQTTFilterConversion, wildcards included. */
    static const char *filters[][2] = {
        {"+", "*"},
        {"/+", "/.*"},
        {"+/", "*./"},
        {"/+/", "/.*./"},
        {"foo/+", "foo.*"},
        {"foo/+/", "foo.*./"},
        {"foo/+/bar", "foo.*.bar"},
        {"foo/+/+", "foo.*.*"},
        {"foo/+/+/", "foo.*.*./"},
        {"foo/+/+/bar", "foo.*.*.bar"},
        {"foo//+", "foo./.*"},
        {"foo//+/", "foo./.*./"},
        {"foo//+//", "foo./.*././"},
        {"foo//+//bar", "foo./.*./.bar"},
        {"foo///+///bar", "foo././.*././.bar"},
        {"foo.bar///+///baz", "foo//bar././.*././.baz"},
        {"#", ">"},
        {"/#", "/.>"},
        {"/foo/#", "/.foo.>"},
        {"foo/#", "foo.>"},
        {"foo//#", "foo./.>"},
        {"foo///#", "foo././.>"},
        {"foo/bar/#", "foo.bar.>"},
        {"foo/bar.baz/#", "foo.bar//baz.>"},
        {"foo*/bar", "foo*.bar"},
        {"foo>/bar", "foo>.bar"},
    };
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
        pair(filters[i][0], filters[i][1], true);
    /* Where nats-server makes a literal MQTT "*" or ">" level a NATS
     * wildcard, and errors it gives: refused here. */
    char out[64];
    const char *refused[] = {"foo/*/bar", "foo/*/bar/*", "foo/>",   "foo/*/bar/>",
                             "foo bar",   "foo\177bar",  "foo\tbar"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        ASSERT_EQ(to_nats(refused[i], true, out, sizeof out), -1);
        ASSERT_EQ(to_nats(refused[i], false, out, sizeof out), -1);
    }
    ASSERT_EQ(to_nats("foo/+", false, out, sizeof out), -1);
    ASSERT_EQ(to_nats("foo/#", false, out, sizeof out), -1);
}

TEST(mapping_refused)
{
    char out[64];
    const char *mqtt_filters[] = {"",     "foo/#/bar", "#/a",       "foo+/bar", "foo/+bar",
                                  "a/b#", "\xff",      "a\xc0\x80", "a\x01"};
    for (size_t i = 0; i < sizeof mqtt_filters / sizeof mqtt_filters[0]; i++)
        ASSERT_EQ(to_nats(mqtt_filters[i], true, out, sizeof out), -1);
    ASSERT_EQ(mqtt_to_nats((const uint8_t *)"a\0b", 3, true, out, sizeof out), -1);
    const char *nats[] = {"foo/bar", "/a",   "a/",    "foo.///", "a.b/", "foo+bar",
                          "foo#",    "a..b", "a.>.b", "",        "a b",  "\xff"};
    for (size_t i = 0; i < sizeof nats / sizeof nats[0]; i++)
        ASSERT_EQ(to_mqtt(nats[i], true, out, sizeof out), -1);
    ASSERT_EQ(to_mqtt("foo.*", false, out, sizeof out), -1);
    ASSERT_EQ(to_mqtt("foo.>", false, out, sizeof out), -1);

    /* A NATS filter a.> is MQTT a/#, which also matches "a": the caller
     * checks the NATS filter after the MQTT one (docs/nats.md). */
    ASSERT_EQ(to_mqtt("a.>", true, out, sizeof out), 3);
    ASSERT_MEM_EQ(out, "a/#", 3);
    ASSERT(!match("a.>", "a"));

    /* Output that does not fit, at every size. */
    for (size_t cap = 0; cap < 11; cap++) {
        ASSERT_EQ(to_nats("foo.bar/baz", false, out, cap), -1);  /* 12 bytes */
        ASSERT_EQ(to_mqtt("foo//bar.baz", false, out, cap), -1); /* 11 bytes */
    }
    ASSERT_EQ(to_nats("foo.bar/baz", false, out, 12), 12);
    ASSERT_EQ(to_mqtt("foo//bar.baz", false, out, 11), 11);
}

/* The table in docs/nats.md, row by row: the documentation cannot drift
 * from the code. */
static const char *cell(char *c)
{
    while (*c == ' ')
        c++;
    char *e = c + strlen(c);
    while (e > c && e[-1] == ' ')
        *--e = '\0';
    if (strcmp(c, "\xe2\x80\x94") == 0) /* an em dash: refused */
        return NULL;
    if (*c != '`' || e - c < 2 || e[-1] != '`')
        TEST_FAIL_("docs/nats.md: cell \"%s\" is neither `name` nor an em dash", c);
    e[-1] = '\0';
    return c + 1;
}

TEST(mapping_docs_table)
{
    /* DATA_DIR is <repo>/tests/unit/nats/data (which need not exist). */
    char path[1024];
    snprintf(path, sizeof path, "%s", DATA_DIR);
    char *tail = strstr(path, "/tests/unit/nats/data");
    ASSERT(tail);
    snprintf(tail, sizeof path - (size_t)(tail - path), "/docs/nats.md");
    FILE *f = fopen(path, "r");
    ASSERT(f);
    char line[512];
    bool in_section = false;
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "## ", 3) == 0)
            in_section = strcmp(line, "## Subject mapping") == 0;
        if (!in_section || line[0] != '|' || strstr(line, "---") || strstr(line, "| MQTT |"))
            continue;
        char *cols[5] = {0};
        int n = 0;
        for (char *p = strtok(line + 1, "|"); p && n < 5; p = strtok(NULL, "|"))
            cols[n++] = p;
        ASSERT(n >= 3);
        const char *mqtt = cell(cols[0]), *nats = cell(cols[1]);
        bool filter = strstr(cols[2], "filter") != NULL;
        char out[256];
        if (mqtt && nats)
            pair(mqtt, nats, filter);
        else if (mqtt)
            ASSERT_EQ(to_nats(mqtt, filter, out, sizeof out), -1);
        else if (nats)
            ASSERT_EQ(to_mqtt(nats, filter, out, sizeof out), -1);
        rows++;
    }
    fclose(f);
    ASSERT(rows >= 30);
}

/* Every name up to 6 characters over an alphabet with each special
 * character: what maps comes back unchanged, and is valid on the other side. */
static void all_names(const char *alpha, size_t na, size_t len, char *buf, size_t at,
                      bool from_mqtt)
{
    if (at == len) {
        char out[64], back[64];
        for (int filter = 0; filter < 2; filter++) {
            int n = from_mqtt ? mqtt_to_nats((uint8_t *)buf, len, filter, out, sizeof out)
                              : nats_to_mqtt((uint8_t *)buf, len, filter, out, sizeof out);
            if (n < 0)
                continue;
            if (from_mqtt)
                ASSERT(nats_subject_valid((uint8_t *)out, (size_t)n, filter));
            int m = from_mqtt ? nats_to_mqtt((uint8_t *)out, (size_t)n, filter, back, sizeof back)
                              : mqtt_to_nats((uint8_t *)out, (size_t)n, filter, back, sizeof back);
            if (m != (int)len || memcmp(back, buf, len) != 0)
                TEST_FAIL_("\"%.*s\" -> \"%.*s\" -> \"%.*s\"", (int)len, buf, n, out, m < 0 ? 0 : m,
                           back);
        }
        return;
    }
    for (size_t i = 0; i < na; i++) {
        buf[at] = alpha[i];
        all_names(alpha, na, len, buf, at + 1, from_mqtt);
    }
}

TEST(mapping_round_trips)
{
    char buf[8];
    for (size_t len = 1; len <= 6; len++) {
        all_names("a/.+#*", 6, len, buf, 0, true);
        all_names("a/.*>+", 6, len, buf, 0, false);
    }
}

TEST(page_boundary)
{
    struct page_end pe;
    page_end_open(&pe);
    const char *names[] = {"foo.bar", "a./.b", "foo.>", "//", "foo/+/#"};
    char out[64];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t n = strlen(names[i]);
        for (size_t k = 0; k <= n; k++) {
            const uint8_t *p = page_end_put(&pe, names[i], k);
            bool v = nats_subject_valid(p, k, true);
            bool q = nats_queue_valid(p, k);
            bool m = nats_subject_match(p, k, p, k);
            int a = nats_to_mqtt(p, k, true, out, sizeof out);
            int b = mqtt_to_nats(p, k, true, out, sizeof out);
            ASSERT(m == (k > 0)); /* a name matches itself */
            ASSERT(!v || k > 0);
            ASSERT(q == (k > 0));
            ASSERT(a >= -1 && b >= -1);
        }
    }
    page_end_close(&pe);
}

int main(void)
{
    RUN(subject_valid);
    RUN(queue_valid);
    RUN(subject_match);
    RUN(mapping_nats_server_examples);
    RUN(mapping_refused);
    RUN(mapping_docs_table);
    RUN(mapping_round_trips);
    RUN(page_boundary);
    TEST_DONE();
}
