/* ward check: secrets in the file never reach the output; its command line
 * refuses what it cannot use. */
#include <fcntl.h>

#include "app/cli_fixture.h"
#include "app/commands.h"
#include "test.h"

#define RUN_CHECK(...) cli_run(cmd_check, CLI_ARGS("check", __VA_ARGS__))

static const char secrets_conf[] =
    "listeners.ssl {\n"
    "  bind = \"0.0.0.0:8883\"\n"
    "  certfile = \"/nonexistent/server.crt\"\n"
    "  keyfile = \"/nonexistent/server.key\"\n"
    "  key_password = \"listener-key-SECRET\"\n"
    "}\n"
    "bridges.mqtt.up {\n"
    "  server = \"mqtt-tcp://127.0.0.1:1883\"\n"
    "  username = \"bridge-user\"\n"
    "  password = \"bridge-login-SECRET\"\n"
    "  ssl { key_password = \"bridge-key-SECRET\" }\n"
    "  forwards = [ { remote_topic = \"a/#\", local_topic = \"a/#\", qos = 0 } ]\n"
    "}\n";

static int count(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

TEST(secrets_are_masked)
{
    char path[] = "/tmp/ward-unit-check-XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    ASSERT_EQ(write(fd, secrets_conf, sizeof(secrets_conf) - 1), (long)sizeof(secrets_conf) - 1);
    close(fd);
    int rc = RUN_CHECK("-c", path);
    unlink(path);
    if (rc != 0)
        TEST_FAIL_("ward check -c: %d: %s", rc, err_text);
    ASSERT(!strstr(out_text, "SECRET"));
    ASSERT(!strstr(err_text, "SECRET"));
    /* a secret that is set shows as set, masked */
    ASSERT_EQ(count(out_text, "  key_password = \"******\"\n"), 2);
    ASSERT_EQ(count(out_text, "  password = \"******\"\n"), 1);
    ASSERT_EQ(count(out_text, "key_password"), 2);
    ASSERT(strstr(out_text, "  username = \"bridge-user\"\n")); /* only secrets */
    ASSERT(strstr(out_text, "  certfile = \"/nonexistent/server.crt\"\n"));
}

/* -q: the exit status and the errors only (ward.service's ExecReload, the
 * package's postinst). */
TEST(quiet)
{
    char path[] = "/tmp/ward-unit-check-XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    ASSERT_EQ(write(fd, secrets_conf, sizeof(secrets_conf) - 1), (long)sizeof(secrets_conf) - 1);
    close(fd);
    int rc = RUN_CHECK("-q", "-c", path);
    ASSERT_EQ(rc, 0);
    ASSERT_STR_EQ(out_text, "");
    ASSERT_STR_EQ(err_text, "");
    fd = open(path, O_WRONLY | O_APPEND);
    ASSERT(fd >= 0);
    ASSERT_EQ(write(fd, "mqtt.max_qos = 7\n", 17), 17);
    close(fd);
    rc = RUN_CHECK("-c", path, "--quiet");
    unlink(path);
    ASSERT_EQ(rc, 1);
    ASSERT_STR_EQ(out_text, "");
    ASSERT(strstr(err_text, "mqtt.max_qos: 7 is out of range"));
}

/* system.user and system.group must exist, or `ward serve` would refuse
 * to start as root: the check says so now, not at the next restart. */
static int check_text(const char *conf)
{
    char path[] = "/tmp/ward-unit-check-XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    ASSERT_EQ(write(fd, conf, strlen(conf)), (long)strlen(conf));
    close(fd);
    int rc = RUN_CHECK("-q", "-c", path);
    unlink(path);
    return rc;
}

TEST(system_user_must_exist)
{
    ASSERT_EQ(check_text("system.user = \"root\"\n"), 0);
    ASSERT_EQ(check_text("system.user = \"0\"\nsystem.group = \"0\"\n"), 0);
    ASSERT_EQ(check_text("system.user = \"no-such-user-w4rd\"\n"), 1);
    ASSERT(strstr(err_text, "system.user: no user 'no-such-user-w4rd' on this system"));
    ASSERT_EQ(check_text("system.user = \"root\"\nsystem.group = \"no-such-group-w4rd\"\n"), 1);
    ASSERT(strstr(err_text, "system.group: no group 'no-such-group-w4rd' on this system"));
}

/* --print-reference --man: ward.conf(5), every table of the reference in it. */
TEST(reference_as_man_page)
{
    ASSERT_EQ(RUN_CHECK("--print-reference", "--man"), 0);
    ASSERT(strncmp(out_text, ".TH WARD.CONF 5 ", 16) == 0);
    ASSERT(strstr(out_text, "\n.TP\n\\fBmqtt.max_packet_size\\fR ("));
    ASSERT(strstr(out_text, "\n.SH SEE ALSO\n"));
    ASSERT(!strstr(out_text, "\n| "));
}

TEST(command_line)
{
    ASSERT_EQ(RUN_CHECK("--bogus"), 2);
    ASSERT(strstr(err_text, "ward check: unknown option '--bogus'"));
    ASSERT_EQ(cli_run(cmd_check, CLI_ARGS("check")), 2);
    ASSERT(strstr(err_text, "ward check: a configuration file is needed (-c FILE)"));
    ASSERT_EQ(RUN_CHECK("-c", "x.conf", "-p", "0"), 2);
    ASSERT(strstr(err_text, "ward check: -p: '0' is not a number from 1 to 65535"));
    ASSERT_EQ(RUN_CHECK("-c", "x.conf", "--status", "-p", "80x"), 2);
    ASSERT(strstr(err_text, "-p: '80x' is not a number"));
    ASSERT_EQ(RUN_CHECK("-c"), 2);
    ASSERT(strstr(err_text, "ward check: -c: missing argument FILE"));
    ASSERT_EQ(RUN_CHECK("-c", "a.conf", "b.conf"), 2);
    ASSERT(strstr(err_text, "unexpected argument 'b.conf'"));
    ASSERT_EQ(RUN_CHECK("-c", "/nonexistent/ward.conf"), 1);
    ASSERT_EQ(RUN_CHECK("-h"), 0);
    ASSERT(strstr(out_text, "usage: ward check -c FILE"));
    ASSERT_EQ(RUN_CHECK("--help"), 0);
    ASSERT(strstr(out_text, "--print-reference"));
    ASSERT_EQ(RUN_CHECK("--print-reference"), 0);
    ASSERT(strlen(out_text) > 1000);
}

int main(void)
{
    RUN(secrets_are_masked);
    RUN(quiet);
    RUN(system_user_must_exist);
    RUN(reference_as_man_page);
    RUN(command_line);
    free(out_text);
    free(err_text);
    TEST_DONE();
}
