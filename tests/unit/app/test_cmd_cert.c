/* ward cert's command line: bad options are refused with status 2 and a
 * message naming them before any file is touched; positional arguments may
 * come before or after the options. */
#include <sys/stat.h>

#include "app/cli_fixture.h"
#include "app/commands.h"
#include "test.h"

#define RUN_CERT(...) cli_run(cmd_cert, CLI_ARGS("cert", __VA_ARGS__))

/* The PKI directory the commands are pointed at; never created. */
#define NO_PKI "/nonexistent/ward-unit-pki"

#define REFUSED(want, ...)                                                                         \
    CLI_REFUSED(2, want, RUN_CERT(__VA_ARGS__, "--dir", NO_PKI), #__VA_ARGS__)

TEST(refused)
{
    REFUSED("ward cert: unknown option '--bogus'", "init", "--bogus");
    REFUSED("ward cert: unknown option '-d'", "init", "-d", "x");
    REFUSED("ward cert: --days: '0' is not a number from 1 to 36500", "client", "x", "--days", "0");
    REFUSED("ward cert: --days: '36501' is not a number", "client", "x", "--days", "36501");
    REFUSED("ward cert: --rsa: '1024' is not a number from 2048 to 16384", "init", "--rsa", "1024");
    REFUSED("ward cert: --ec: 'P-999' (P-256 or P-384)", "init", "--ec", "P-999");
    REFUSED("ward cert: --ip: '300.1.1.1' is not an IPv4 or IPv6 address", "server", "h", "--ip",
            "300.1.1.1");
    REFUSED("ward cert: --format: 'pfx' (pem, der or p12)", "client", "x", "--format", "pfx");
    REFUSED("ward cert: --reason: unknown reason 'because'", "revoke", "x", "--reason", "because");
    REFUSED("ward cert: --count: '0' is not a number from 1 to 100000", "client", "x", "--count",
            "0");
    REFUSED("ward cert: --warn-days: 'soon' is not a number", "check", "--warn-days", "soon");
    /* an option's argument is the next word, whatever it looks like (as
     * with getopt): here --out takes "--dir", and NO_PKI is one CSR too many */
    REFUSED("usage: ward cert sign CSR", "sign", "x.csr", "--out");
    ASSERT_EQ(RUN_CERT("sign", "x.csr", "--out"), 2);
    ASSERT(strstr(err_text, "ward cert: --out: missing argument FILE"));
    REFUSED("ward cert: --force: takes no argument", "init", "--force=yes");
    REFUSED("ward cert: unknown command 'bogus'", "bogus");
    REFUSED("usage: ward cert client NAME", "client");
    struct stat st;
    ASSERT(stat(NO_PKI, &st) != 0); /* nothing was made */
}

TEST(positionals_around_options)
{
    /* show FILE: the file may come after the options or before them */
    ASSERT_EQ(RUN_CERT("show", "--dir", NO_PKI, "/nonexistent/a.crt"), 1);
    ASSERT(strstr(err_text, "ward cert show: /nonexistent/a.crt: "));
    ASSERT_EQ(RUN_CERT("show", "/nonexistent/b.crt", "--dir", NO_PKI), 1);
    ASSERT(strstr(err_text, "ward cert show: /nonexistent/b.crt: "));
    /* check takes any number of files */
    ASSERT_EQ(RUN_CERT("check", "/nonexistent/c.crt", "--warn-days", "5", "/nonexistent/d.crt"), 2);
    ASSERT(strstr(out_text, "INVALID  /nonexistent/c.crt: "));
    ASSERT(strstr(out_text, "INVALID  /nonexistent/d.crt: "));
}

TEST(help)
{
    ASSERT_EQ(RUN_CERT("--help"), 0);
    ASSERT(strncmp(out_text, "usage: ward cert COMMAND", 24) == 0);
    ASSERT(strstr(out_text, "\n      --k8s-secret NAME "));
    ASSERT_EQ(RUN_CERT("init", "--help"), 0);
    ASSERT(strstr(out_text, "\n      --rsa BITS "));
    ASSERT_EQ(cli_run(cmd_cert, CLI_ARGS("cert")), 2);
    ASSERT(strncmp(err_text, "usage: ward cert COMMAND", 24) == 0);
}

int main(void)
{
    RUN(refused);
    RUN(positionals_around_options);
    RUN(help);
    free(out_text);
    free(err_text);
    TEST_DONE();
}
