#include <stdlib.h>
#include <unistd.h>

#include "config/hocon.h"
#include "test.h"

static char err[512];

static struct hocon_doc parse_ok(const char *text)
{
    struct hocon_doc d;
    int r = hocon_parse_string("t.conf", text, strlen(text), &d, err, sizeof(err));
    if (r != 0)
        TEST_FAIL_("parse failed: %s", err);
    return d;
}

static void parse_bad(const char *text, const char *want)
{
    struct hocon_doc d;
    int r = hocon_parse_string("t.conf", text, strlen(text), &d, err, sizeof(err));
    if (r == 0)
        TEST_FAIL_("parse of <<%s>> succeeded, expected error %s", text, want);
    if (!strstr(err, want))
        TEST_FAIL_("error \"%s\" lacks \"%s\"", err, want);
}

TEST(scalars)
{
    struct hocon_doc d = parse_ok("a = 1\nb: \"two\" # comment\nc = true // c\nd = 10KB\n"
                                  "e = 0.0.0.0:1883\nf = null, g = -2.5\nh = off");
    ASSERT_EQ(hocon_path(d.root, "a")->type, HOCON_NUMBER);
    ASSERT_EQ(hocon_path(d.root, "a")->num, 1);
    ASSERT_STR_EQ(hocon_path(d.root, "b")->str, "two");
    ASSERT(hocon_path(d.root, "b")->quoted);
    ASSERT_EQ(hocon_path(d.root, "c")->type, HOCON_BOOL);
    ASSERT(hocon_path(d.root, "c")->b);
    ASSERT_EQ(hocon_path(d.root, "d")->type, HOCON_STRING);
    ASSERT_STR_EQ(hocon_path(d.root, "d")->str, "10KB");
    ASSERT_STR_EQ(hocon_path(d.root, "e")->str, "0.0.0.0:1883");
    ASSERT_EQ(hocon_path(d.root, "f")->type, HOCON_NULL);
    ASSERT(hocon_path(d.root, "g")->num == -2.5);
    ASSERT_EQ(hocon_path(d.root, "h")->type, HOCON_BOOL);
    ASSERT(!hocon_path(d.root, "h")->b);
    ASSERT_EQ(hocon_path(d.root, "c")->line, 3);
    hocon_doc_free(&d);
}

TEST(objects_merge_and_dotted_keys)
{
    struct hocon_doc d = parse_ok("listeners.tcp { bind = \"0.0.0.0:1883\" }\n"
                                  "listeners.ssl.mtls {\n  bind = \"0.0.0.0:8883\"\n"
                                  "  verify_peer = true\n}\n"
                                  "listeners { tcp { max = 3 } }\n"
                                  "x = 1\nx = 2\n");
    ASSERT_STR_EQ(hocon_path(d.root, "listeners.tcp.bind")->str, "0.0.0.0:1883");
    ASSERT_EQ(hocon_path(d.root, "listeners.tcp.max")->num, 3);
    ASSERT(hocon_path(d.root, "listeners.ssl.mtls.verify_peer")->b);
    ASSERT_EQ(hocon_path(d.root, "listeners.ssl.mtls.bind")->line, 3);
    ASSERT_EQ(hocon_path(d.root, "x")->num, 2);
    ASSERT(hocon_path(d.root, "listeners.nope") == NULL);
    hocon_doc_free(&d);
}

TEST(arrays_of_objects)
{
    struct hocon_doc d = parse_ok("forwards = [\n  { remote_topic = \"a/#\", qos = 1 },\n"
                                  "  {\n    remote_topic = \"b\"\n    qos = 2\n  }\n]\n"
                                  "list = [1, 2,\n 3,]\nempty = []");
    struct hocon_value *f = hocon_path(d.root, "forwards");
    ASSERT_EQ(f->type, HOCON_ARRAY);
    ASSERT_EQ(f->count, 2);
    ASSERT_STR_EQ(hocon_get(f->items[0], "remote_topic")->str, "a/#");
    ASSERT_EQ(hocon_get(f->items[1], "qos")->num, 2);
    ASSERT_EQ(hocon_path(d.root, "list")->count, 3);
    ASSERT_EQ(hocon_path(d.root, "empty")->count, 0);
    hocon_doc_free(&d);
}

TEST(root_braces_and_escapes)
{
    struct hocon_doc d = parse_ok("{\n a = \"x\\ty\\u00e9\\\"\"\n b = \"\"\"raw \\n\"\"\"\n}\n");
    ASSERT_STR_EQ(hocon_path(d.root, "a")->str, "x\ty\xc3\xa9\"");
    ASSERT_STR_EQ(hocon_path(d.root, "b")->str, "raw \\n");
    hocon_doc_free(&d);
}

TEST(env_substitution)
{
    setenv("WARD_TEST_PORT", "1999", 1);
    unsetenv("WARD_TEST_MISSING");
    struct hocon_doc d = parse_ok("bind = \"0.0.0.0:\"${WARD_TEST_PORT}\nport = ${WARD_TEST_PORT}\n"
                                  "opt = ${?WARD_TEST_MISSING}\n");
    ASSERT_STR_EQ(hocon_path(d.root, "bind")->str, "0.0.0.0:1999");
    ASSERT_STR_EQ(hocon_path(d.root, "port")->str, "1999");
    ASSERT(hocon_path(d.root, "opt") == NULL);
    hocon_doc_free(&d);
    parse_bad("x = ${WARD_TEST_MISSING}", "t.conf:1: environment variable WARD_TEST_MISSING");
}

TEST(includes)
{
    char dir[] = "/tmp/ward-hocon-XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    char main_path[256], acl_path[256], loop_path[256];
    snprintf(main_path, sizeof(main_path), "%s/main.conf", dir);
    snprintf(acl_path, sizeof(acl_path), "%s/acl.conf", dir);
    snprintf(loop_path, sizeof(loop_path), "%s/loop.conf", dir);
    FILE *f = fopen(acl_path, "w");
    fputs("rules = [{\"permit\": \"allow\", \"topics\": [\"a\"]}]\n", f);
    fclose(f);
    f = fopen(main_path, "w");
    fputs("auth {\n  acl = {include \"acl.conf\"}\n}\ninclude \"acl.conf\"\n", f);
    fclose(f);
    f = fopen(loop_path, "w");
    fputs("include \"loop.conf\"\n", f);
    fclose(f);
    struct hocon_doc d;
    ASSERT_EQ(hocon_parse_file(main_path, &d, err, sizeof(err)), 0);
    struct hocon_value *rules = hocon_path(d.root, "auth.acl.rules");
    ASSERT(rules && rules->type == HOCON_ARRAY);
    ASSERT_STR_EQ(hocon_get(rules->items[0], "permit")->str, "allow");
    ASSERT_STR_EQ(rules->file, acl_path);
    ASSERT(hocon_path(d.root, "rules") != NULL);
    hocon_doc_free(&d);
    ASSERT_EQ(hocon_parse_file(loop_path, &d, err, sizeof(err)), -1);
    ASSERT(strstr(err, "include cycle") != NULL);
    ASSERT_EQ(hocon_parse_file("/nonexistent/ward.conf", &d, err, sizeof(err)), -1);
    ASSERT(strstr(err, "/nonexistent/ward.conf: cannot read") != NULL);
    unlink(acl_path);
    unlink(main_path);
    unlink(loop_path);
    rmdir(dir);
}

TEST(errors_have_lines)
{
    parse_bad("a = 1\nb = \"open\n", "t.conf:2: unterminated string");
    parse_bad("a {\n b = 1\n", "unterminated object");
    parse_bad("a = [1, 2\n", "unterminated array");
    parse_bad("a = 1\n\nb c\n", "t.conf:3: expected '=', ':' or '{' after key 'b'");
    parse_bad("a = \"x\" }\n", "unexpected '}'");
    parse_bad("a = \n", "missing value");
    parse_bad("a += [1]\n", "'+=' is not supported");
    parse_bad("a = \"\\q\"\n", "unknown escape");
    parse_bad("include nothing\n", "include needs a quoted file name");
    parse_bad("= 3\n", "expected a key");
    parse_bad("{ a = 1 } b = 2\n", "text after the closing");
}

TEST(depth_is_bounded)
{
    char text[1024] = "a = ";
    for (int i = 0; i < 200; i++)
        strcat(text, "[");
    parse_bad(text, "nested more than");
}

TEST(nul_byte_refused)
{
    struct hocon_doc d;
    ASSERT_EQ(hocon_parse_string("t.conf", "a = 1\0b", 7, &d, err, sizeof(err)), -1);
    ASSERT(strstr(err, "NUL byte") != NULL);
}

int main(void)
{
    RUN(scalars);
    RUN(objects_merge_and_dotted_keys);
    RUN(arrays_of_objects);
    RUN(root_braces_and_escapes);
    RUN(env_substitution);
    RUN(includes);
    RUN(errors_have_lines);
    RUN(depth_is_bounded);
    RUN(nul_byte_refused);
    TEST_DONE();
}
