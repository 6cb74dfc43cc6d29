/* The table-driven option engine: every argument kind, every spelling, and
 * an error that names the option for each way a command line can be wrong. */
#include "app/cli_fixture.h"
#include "app/opts.h"
#include "test.h"

struct t {
    bool flag, keep; /* keep starts true; -c clears it */
    const char *str;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    int i;
    double d;
    int colour;
    const char *k, *v;
    int calls;
};

static int pair(struct opts *p, void *ctx, const char *const *a)
{
    struct t *t = ctx;
    if (strcmp(a[0], "bad") == 0)
        return opts_fail(p, "'%s' is a bad key", a[0]);
    t->k = a[0];
    t->v = a[1];
    t->calls++;
    return 0;
}

static const struct opt_choice colours[] = {{"red", 1}, {"green", 2}, {NULL, 0}};

#define AT(m) OPT_AT(struct t, m)

static const struct opt table[] = {
    {"flag", 'f', OPT_SET, NULL, AT(flag), .help = "a flag"},
    {NULL, 'c', OPT_CLEAR, NULL, AT(keep), .help = "clears keep"},
    {"str", 's', OPT_STRING, "S", AT(str), .help = "a string"},
    {"u8", 0, OPT_UINT, "N", AT(u8), .lo = 1, .hi = 255, .help = "1 to 255"},
    {"u16", 0, OPT_UINT, "N", AT(u16), .hi = 65535, .help = "up to 65535"},
    {"u32", 'n', OPT_UINT, "N", AT(u32), .hi = 4294967295u, .help = "up to 2^32-1"},
    {"u64", 0, OPT_UINT, "N", AT(u64), .hi = UINT64_MAX, .help = "up to 2^64-1"},
    {"int", 0, OPT_UINT, "N", AT(i), .lo = 10, .hi = 1000, .help = "10 to 1000"},
    {"real", 'r', OPT_DOUBLE, "X", AT(d), .dlo = 0.5, .dhi = 2, .help = "0.5 to 2"},
    {"colour", 0, OPT_CHOICE, "C", AT(colour), .choices = colours,
     .help = "red | green, *not* blue"},
    {"pair", 'P', OPT_CALL, "KEY VALUE", .call = pair, .nargs = 2, .help = "two arguments"},
    {"only-a", 0, OPT_SET, NULL, AT(flag), .only = 1, .help = "for mask 1"},
    {"only-b", 0, OPT_SET, NULL, AT(flag), .only = 2, .help = "for mask 2"},
    {"hidden", 0, OPT_SET, NULL, AT(flag)},
    {.kind = OPT_SECTION, .help = "Section:"},
    {"a-very-long-option-name", 0, OPT_STRING, "VALUE", AT(str), .help = "first\nsecond"},
    {"help", 'h', OPT_HELP, .help = "this help"},
};

static struct opts opts_for(unsigned mask, size_t max_pos)
{
    return (struct opts){.prog = "ward t",
                         .table = table,
                         .n = sizeof(table) / sizeof(table[0]),
                         .mask = mask,
                         .usage = "usage: ward t [options]\n",
                         .footer = "the end\n",
                         .max_pos = max_pos};
}

/* Parses args (CLI_ARGS("t", ...)) into *t; *err gets what was printed
 * (free it), argv_out (if not NULL) the argv as the parse left it. */
static int parse_with(struct t *t, unsigned mask, size_t max_pos, char **err, int *npos,
                      char **argv_out, const char *const *args)
{
    char **argv;
    int argc = cli_argv(args, &argv);
    *t = (struct t){.keep = true};
    size_t len;
    struct opts p = opts_for(mask, max_pos);
    p.err = open_memstream(err, &len);
    p.out = p.err;
    int rc = opts_parse(&p, t, argc, argv, 1, npos);
    fclose(p.err);
    if (argv_out)
        memcpy(argv_out, argv, (size_t)(argc + 1) * sizeof(*argv));
    return rc;
}

#define PARSE(t, err, ...) parse_with(t, 1, 0, err, NULL, NULL, CLI_ARGS("t", __VA_ARGS__))

/* The command line fails with status 2 and a message holding `want`. */
static void fails(const char *want, const char *const *args)
{
    char **argv;
    int argc = cli_argv(args, &argv);
    struct t t = {0};
    char *err = NULL;
    size_t len;
    struct opts p = opts_for(1, 0);
    p.err = open_memstream(&err, &len);
    int rc = opts_parse(&p, &t, argc, argv, 1, NULL);
    fclose(p.err);
    if (rc != OPTS_USAGE || !strstr(err, want))
        TEST_FAIL_("%s ...: status %d, message \"%s\", wanted \"%s\"", argv[1], rc, err, want);
    ASSERT(strstr(err, "(ward t --help lists the options)\n"));
    free(err);
}

#define FAILS(want, ...) fails(want, CLI_ARGS("t", __VA_ARGS__))

TEST(every_kind_long_and_short)
{
    struct t t;
    char *err;
    ASSERT_EQ(PARSE(&t, &err, "-f", "-c", "-s", "hello", "--u8", "255", "--u16", "65535", "-n",
                    "4294967295", "--u64", "18446744073709551615", "--int", "10", "-r", "1.5",
                    "--colour", "green", "-P", "k", "v"),
              OPTS_OK);
    ASSERT_STR_EQ(err, "");
    free(err);
    ASSERT(t.flag);
    ASSERT(!t.keep);
    ASSERT_STR_EQ(t.str, "hello");
    ASSERT_EQ(t.u8, 255);
    ASSERT_EQ(t.u16, 65535);
    ASSERT_EQ(t.u32, 4294967295u);
    ASSERT(t.u64 == UINT64_MAX);
    ASSERT_EQ(t.i, 10);
    ASSERT(t.d == 1.5);
    ASSERT_EQ(t.colour, 2);
    ASSERT_STR_EQ(t.k, "k");
    ASSERT_STR_EQ(t.v, "v");
    ASSERT_EQ(t.calls, 1);
}

TEST(spellings)
{
    struct t t;
    char *err;
    /* -xVALUE, --name=VALUE, bundled flags ending in one with an argument */
    ASSERT_EQ(PARSE(&t, &err, "-n42", "--str=a=b", "-fcs", "x", "--pair", "k", "v"), OPTS_OK);
    free(err);
    ASSERT_EQ(t.u32, 42);
    ASSERT_STR_EQ(t.str, "x"); /* the last one given wins */
    ASSERT(t.flag && !t.keep);
    ASSERT_STR_EQ(t.k, "k");
    /* -fsVALUE: the rest of the bundle is the argument */
    ASSERT_EQ(PARSE(&t, &err, "-fsvalue"), OPTS_OK);
    free(err);
    ASSERT_STR_EQ(t.str, "value");
    /* An argument may start with a dash, and may be empty. */
    ASSERT_EQ(PARSE(&t, &err, "-s", "-f", "--str="), OPTS_OK);
    free(err);
    ASSERT_STR_EQ(t.str, "");
    ASSERT(!t.flag);
}

TEST(positionals_anywhere_and_after_double_dash)
{
    struct t t;
    char *err, *argv[32];
    int npos = -1;
    ASSERT_EQ(
        parse_with(&t, 1, 5, &err, &npos, argv, CLI_ARGS("t", "one", "-f", "two", "--", "-s", "-")),
        OPTS_OK);
    free(err);
    ASSERT_EQ(npos, 4);
    ASSERT_STR_EQ(argv[1], "one");
    ASSERT_STR_EQ(argv[2], "two");
    ASSERT_STR_EQ(argv[3], "-s"); /* after "--": not an option */
    ASSERT_STR_EQ(argv[4], "-");
    ASSERT(t.flag);
    ASSERT(t.str == NULL);
    /* one more than allowed */
    ASSERT_EQ(parse_with(&t, 1, 1, &err, &npos, NULL, CLI_ARGS("t", "one", "two")), OPTS_USAGE);
    ASSERT(strstr(err, "ward t: unexpected argument 'two'"));
    free(err);
}

TEST(errors_name_the_option)
{
    FAILS("ward t: unknown option '--bogus'", "--bogus");
    FAILS("ward t: unknown option '-z'", "-z");
    FAILS("ward t: unknown option '-z'", "-fz");      /* inside a bundle */
    FAILS("ward t: unknown option '--fla'", "--fla"); /* no abbreviations */
    FAILS("ward t: -s: missing argument S", "-s");
    FAILS("ward t: --str: missing argument S", "--str");
    FAILS("ward t: -P: missing arguments KEY VALUE", "-P", "k");
    FAILS("ward t: --flag: takes no argument", "--flag=yes");
    FAILS("ward t: --u8: '0' is not a number from 1 to 255", "--u8", "0");
    FAILS("ward t: --u8: '256' is not a number from 1 to 255", "--u8", "256");
    FAILS("ward t: --u8: 'x' is not a number from 1 to 255", "--u8", "x");
    FAILS("ward t: --u8: '' is not a number from 1 to 255", "--u8=");
    FAILS("ward t: --u8: '-1' is not a number from 1 to 255", "--u8", "-1");
    FAILS("ward t: --u8: '+1' is not a number from 1 to 255", "--u8", "+1");
    FAILS("ward t: --u8: ' 1' is not a number from 1 to 255", "--u8", " 1");
    FAILS("ward t: --u8: '12abc' is not a number from 1 to 255", "--u8", "12abc");
    FAILS("ward t: -n: '4294967296' is not a number from 0 to 4294967295", "-n", "4294967296");
    FAILS("ward t: --u64: '18446744073709551616' is not a number", "--u64", "18446744073709551616");
    FAILS("ward t: --int: '9' is not a number from 10 to 1000", "--int", "9");
    FAILS("ward t: -r: '2.5' is not a number from 0.5 to 2", "-r", "2.5");
    FAILS("ward t: -r: 'nan' is not a number from 0.5 to 2", "-r", "nan");
    FAILS("ward t: -r: '1x' is not a number from 0.5 to 2", "-r", "1x");
    FAILS("ward t: --colour: 'blue' is not one of red, green", "--colour", "blue");
    FAILS("ward t: -P: 'bad' is a bad key", "-P", "bad", "v");
    FAILS("ward t: unexpected argument 'extra'", "-f", "extra");
    FAILS("ward t: unknown option '--only-b'", "--only-b"); /* another mask's */
    FAILS("ward t: unknown option '--'", "--=x");
}

TEST(only_and_mask)
{
    struct t t;
    char *err;
    ASSERT_EQ(parse_with(&t, 2, 0, &err, NULL, NULL, CLI_ARGS("t", "--only-b")), OPTS_OK);
    free(err);
    ASSERT(t.flag);
    ASSERT_EQ(parse_with(&t, 2, 0, &err, NULL, NULL, CLI_ARGS("t", "--only-a")), OPTS_USAGE);
    ASSERT(strstr(err, "unknown option '--only-a'"));
    free(err);
}

TEST(help_from_the_table)
{
    struct t t;
    char *out;
    ASSERT_EQ(PARSE(&t, &out, "-f", "--help", "--bogus"), OPTS_HELP); /* stops at --help */
    ASSERT(strncmp(out, "usage: ward t [options]\n", 24) == 0);
    ASSERT(strstr(out, "\n  -f, --flag                a flag\n"));
    ASSERT(strstr(out, "\n  -c                        clears keep\n"));
    ASSERT(strstr(out, "\n      --u8 N                1 to 255\n"));
    ASSERT(strstr(out, "\n  -P, --pair KEY VALUE      two arguments\n"));
    ASSERT(strstr(out, "\nSection:\n"));
    /* too long for the column: the text starts on the next line; \n continues */
    ASSERT(strstr(out, "\n      --a-very-long-option-name VALUE\n"
                       "                            first\n"
                       "                            second\n"));
    ASSERT(strstr(out, "--only-a"));
    ASSERT(!strstr(out, "--only-b")); /* not this mask's */
    ASSERT(!strstr(out, "--hidden")); /* no help text: not listed */
    size_t len = strlen(out);
    ASSERT(len > 8 && strcmp(out + len - 8, "the end\n") == 0);
    free(out);
}

TEST(markdown_from_the_table)
{
    struct t t;
    char *out;
    ASSERT_EQ(PARSE(&t, &out, "--help-markdown"), OPTS_HELP); /* built in, not in the table */
    ASSERT(strncmp(out,
                   "## ward t\n\n```\nusage: ward t [options]\n```\n\n"
                   "| option | argument | meaning |\n|---|---|---|\n"
                   "| `-f`, `--flag` |  | a flag |\n| `-c` |  | clears keep |\n",
                   140) == 0);
    ASSERT(strstr(out, "\n| `-P`, `--pair` | KEY VALUE | two arguments |\n"));
    ASSERT(strstr(out, "\n| `--colour` | C | red \\| green, \\*not\\* blue |\n"));
    /* a section ends one table and starts another */
    ASSERT(strstr(out, "\n\nSection:\n\n| option | argument | meaning |\n|---|---|---|\n"
                       "| `--a-very-long-option-name` | VALUE | first second |\n"));
    ASSERT(!strstr(out, "only-b"));
    ASSERT(!strstr(out, "hidden"));
    ASSERT(strstr(out, "\nthe end\n"));
    free(out);
    /* and in --help the same text stays plain */
    ASSERT_EQ(PARSE(&t, &out, "-h"), OPTS_HELP);
    ASSERT(strstr(out, "\n      --colour C            red | green, *not* blue\n"));
    free(out);
}

TEST(man_from_the_table)
{
    struct t t;
    char *out;
    ASSERT_EQ(PARSE(&t, &out, "--help-man"), OPTS_HELP); /* built in, not in the table */
    ASSERT(strncmp(out, ".SS \"ward t\"\n.PP\n.nf\nusage: ward t [options]\n.fi\n", 46) == 0);
    ASSERT(strstr(out, "\n.TP\n\\fB\\-f\\fR, \\fB\\-\\-flag\\fR\na flag\n"));
    ASSERT(strstr(out, "\n.TP\n\\fB\\-c\\fR\nclears keep\n"));
    ASSERT(strstr(out, "\n.TP\n\\fB\\-P\\fR, \\fB\\-\\-pair\\fR \\fIKEY VALUE\\fR\n"));
    ASSERT(strstr(out, "\n.PP\nSection:\n.TP\n\\fB\\-\\-a\\-very\\-long\\-option\\-name\\fR "
                       "\\fIVALUE\\fR\nfirst\nsecond\n"));
    ASSERT(strstr(out, "\n.PP\n.nf\nthe end\n.fi\n"));
    ASSERT(!strstr(out, "only-b"));
    ASSERT(!strstr(out, "hidden"));
    free(out);
}

/* Help text is the author's, never roff: a line that starts with '.' or '\''
 * would be a request, and a backslash an escape; both print as written. */
TEST(man_escapes_roff)
{
    static const struct opt tab[] = {
        {"x", 0, OPT_STRING, "A\\B", OPT_AT(struct t, str),
         .help = ".so /etc/passwd\n'br\n\\fBback\\slash and a.dot"},
    };
    struct opts p = opts_for(1, 0);
    p.table = tab;
    p.n = 1;
    p.usage = ".usage\n";
    p.footer = NULL;
    char *out = NULL;
    size_t len;
    FILE *f = open_memstream(&out, &len);
    opts_man(&p, f);
    fclose(f);
    ASSERT(strstr(out, "\n.PP\n.nf\n\\&.usage\n.fi\n"));
    ASSERT(strstr(out, "\\fB\\-\\-x\\fR \\fIA\\eB\\fR\n"
                       "\\&.so /etc/passwd\n\\&'br\n\\efBback\\eslash and a.dot\n"));
    ASSERT(!strstr(out, "\n.so"));
    free(out);
    f = open_memstream(&out, &len);
    opts_roff(f, "-a.b\n-c", true);
    fclose(f);
    ASSERT_STR_EQ(out, "\\-a.b\n\\-c");
    free(out);
}

/* Parses "t" with a one- or two-entry table; returns what was printed. */
static char *with_table(const struct opt *tab, size_t n, int *rc)
{
    char *err = NULL, *argv[] = {"t", NULL};
    size_t len;
    struct t t = {0};
    struct opts p = opts_for(1, 0);
    p.table = tab;
    p.n = n;
    p.err = open_memstream(&err, &len);
    *rc = opts_parse(&p, &t, 1, argv, 1, NULL);
    fclose(p.err);
    return err;
}

static const struct opt_choice big[] = {{"big", 256}, {NULL, 0}};

TEST(broken_tables_are_refused)
{
    static const struct {
        struct opt o[2];
        const char *want;
    } cases[] = {
        {{{"x", 0, OPT_SET, NULL, AT(u32)}}, "--x: a flag needs a bool target"},
        {{{"x", 0, OPT_STRING, "S", AT(u8)}}, "--x: needs a const char * target"},
        {{{"x", 0, OPT_UINT, "N", AT(u8), .hi = 256}}, "--x: its range does not fit its target"},
        {{{"x", 0, OPT_UINT, "N", AT(u16), .lo = 5, .hi = 4}}, "--x: its range does not fit"},
        {{{"x", 0, OPT_UINT, "N", AT(u8), .hi = 1}}, NULL},
        {{{"x", 0, OPT_UINT, "N", 0, 3, .hi = 1}}, "--x: needs a target of 1, 2, 4 or 8 bytes"},
        {{{"x", 0, OPT_DOUBLE, "X", AT(u32)}}, "--x: needs a double"},
        {{{"x", 0, OPT_CALL, "X", .nargs = 1}}, "--x: needs a handler"},
        {{{"x", 0, OPT_CHOICE, "C", AT(colour)}}, "--x: has no choices"},
        {{{"x", 0, OPT_CHOICE, "C", AT(u8), .choices = big}},
         "--x: a value does not fit its target"},
        {{{NULL, 'x', OPT_SET, NULL, AT(flag)}, {"other", 'x', OPT_SET, NULL, AT(flag)}},
         "--other: is in the table twice"},
        {{{"x", 0, OPT_SET, NULL, AT(flag)}, {"x", 0, OPT_SET, NULL, AT(flag), .only = 1}},
         "--x: is in the table twice"},
        {{{"x", 'x', OPT_SET, NULL, AT(flag), .only = 2},
          {"x", 'x', OPT_SET, NULL, AT(flag), .only = 1}},
         NULL}, /* one per tool: fine */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc;
        size_t n = cases[i].o[1].kind || cases[i].o[1].name || cases[i].o[1].letter ? 2 : 1;
        char *err = with_table(cases[i].o, n, &rc);
        if (cases[i].want && (rc != OPTS_USAGE || !strstr(err, "ward t: option table: ") ||
                              !strstr(err, cases[i].want)))
            TEST_FAIL_("case %zu: status %d, \"%s\", wanted \"%s\"", i, rc, err, cases[i].want);
        if (!cases[i].want && (rc != OPTS_OK || *err))
            TEST_FAIL_("case %zu: status %d, \"%s\"", i, rc, err);
        free(err);
    }
}

TEST(uint_parser)
{
    uint64_t v = 7;
    ASSERT_EQ(opts_uint("0", 0, 10, &v), 0);
    ASSERT_EQ(v, 0);
    ASSERT_EQ(opts_uint("007", 0, 10, &v), 0);
    ASSERT_EQ(v, 7);
    ASSERT_EQ(opts_uint("18446744073709551615", 0, UINT64_MAX, &v), 0);
    ASSERT(v == UINT64_MAX);
    v = 3;
    ASSERT_EQ(opts_uint("18446744073709551616", 0, UINT64_MAX, &v), -1);
    ASSERT_EQ(opts_uint("99999999999999999999999", 0, UINT64_MAX, &v), -1);
    ASSERT_EQ(opts_uint("", 0, 10, &v), -1);
    ASSERT_EQ(opts_uint("11", 0, 10, &v), -1);
    ASSERT_EQ(opts_uint("4", 5, 10, &v), -1);
    ASSERT_EQ(opts_uint("0x5", 0, 10, &v), -1);
    ASSERT_EQ(v, 3); /* untouched on failure */
}

int main(void)
{
    RUN(every_kind_long_and_short);
    RUN(spellings);
    RUN(positionals_anywhere_and_after_double_dash);
    RUN(errors_name_the_option);
    RUN(only_and_mask);
    RUN(help_from_the_table);
    RUN(markdown_from_the_table);
    RUN(man_from_the_table);
    RUN(man_escapes_roff);
    RUN(broken_tables_are_refused);
    RUN(uint_parser);
    TEST_DONE();
}
