/* Command-line options as tables. Each ward command describes its options
 * once, as an array of struct opt (name, short name, argument kind, where
 * the value goes, help text); opts_parse() parses argv with it and
 * opts_help() prints --help from it, so the two cannot drift apart.
 *
 * Accepted spellings, as getopt_long accepts them: -x VALUE, -xVALUE, bundled
 * flags (-cd), --name VALUE, --name=VALUE, and "--" to end the options.
 * Long names must be given in full (no abbreviations). Positional arguments
 * may appear between options. Every error names the option and the cause. */
#ifndef WARD_APP_OPTS_H
#define WARD_APP_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* opts_parse() results; also the process exit statuses they lead to. */
#define OPTS_OK    0
#define OPTS_HELP  (-1) /* --help was printed: exit 0 */
#define OPTS_USAGE 2    /* an error was printed: exit 2 */

enum opt_kind {
    OPT_SECTION, /* no option: a heading in --help (the help text) */
    OPT_SET,     /* no argument: the bool target becomes true */
    OPT_CLEAR,   /* no argument: the bool target becomes false */
    OPT_STRING,  /* the argument itself (const char *) */
    OPT_UINT,    /* a whole number in [lo, hi], stored in a field of .size bytes */
    OPT_DOUBLE,  /* a decimal number in [dlo, dhi] (double) */
    OPT_CHOICE,  /* one of .choices by name; its value stored as OPT_UINT does */
    OPT_CALL,    /* .call is given .nargs arguments (0 for a flag) */
    OPT_HELP,    /* prints opts_help() to standard output */
};

struct opts;
struct opt;

/* An OPT_CALL handler: ctx is what opts_parse() was given, args the option's
 * arguments. Returns 0, or the result of opts_fail(). */
typedef int (*opt_fn)(struct opts *p, void *ctx, const char *const *args);

struct opt_choice {
    const char *name;
    uint64_t value;
};

struct opt {
    const char *name; /* long name without "--", or NULL */
    char letter;      /* short name, or 0 */
    enum opt_kind kind;
    const char *arg;  /* the argument's name(s) in --help and errors: "HOST", "KEY VALUE" */
    size_t off, size; /* the target: a field of the ctx struct (OPT_AT) */
    uint64_t lo, hi;  /* OPT_UINT range */
    double dlo, dhi;  /* OPT_DOUBLE range */
    const struct opt_choice *choices; /* OPT_CHOICE, ended by a NULL name */
    opt_fn call;                      /* OPT_CALL */
    unsigned nargs;                   /* OPT_CALL: arguments taken (0 or more) */
    unsigned only;                    /* 0: always; else accepted when it shares a bit with
                                         opts.mask (pub-only and sub-only options) */
    const char *help; /* one line, or several separated by \n; NULL hides the option */
};

/* The target of an option: a member of the struct given to opts_parse(). */
#define OPT_AT(type, member) .off = offsetof(type, member), .size = sizeof(((type *)0)->member)

/* One command's options and how to report about them. */
struct opts {
    const char *prog; /* "ward pub": starts every message */
    const struct opt *table;
    size_t n;
    unsigned mask;      /* which .only options apply */
    const char *usage;  /* the first lines of --help */
    const char *footer; /* the last lines of --help, or NULL */
    size_t max_pos;     /* positional arguments allowed */
    FILE *out, *err;    /* --help and errors; NULL: stdout and stderr */
    /* While parsing: the option as written (for messages) and its entry. */
    const char *spelled;
    const struct opt *cur;
    char spelled_buf[48];
};

/* Parses argv[first..argc) into ctx. The table is checked first (targets
 * that fit their kind and range, no name or letter twice where both apply):
 * a broken table fails every parse, so any test that parses finds it.
 * Positional arguments are moved, in order, to argv[first..first + *npos)
 * (npos may be NULL when max_pos is 0).
 * Returns OPTS_OK, OPTS_HELP after printing the help, or OPTS_USAGE after
 * printing an error that names the option or argument at fault. */
int opts_parse(struct opts *p, void *ctx, int argc, char **argv, int first, int *npos);

/* Prints usage, every option of the table (those .mask selects) and footer. */
void opts_help(const struct opts *p, FILE *out);

/* The same as Markdown (a usage block and a table of the options), for
 * docs/cli.md: `ward help --markdown` prints it for every command. Every
 * command also accepts --help-markdown, which prints it and ends like
 * --help. */
void opts_markdown(const struct opts *p, FILE *out);

/* The same as a roff section for the ward(1) man page (.SS PROG, the usage
 * verbatim, one .TP per option): `ward help --man` prints the whole page.
 * Every command also accepts --help-man, which prints it and ends like
 * --help. Text is escaped for roff, so a line of help that starts with '.'
 * or holds a '\' prints as written. */
void opts_man(const struct opts *p, FILE *out);

/* Prints s as roff text: a backslash as \e, \& before a '.' or '\'' that
 * would start a line (roff would take the line as a request), and, with
 * minus, each '-' as \- (option names: a minus that can be copied, never a
 * hyphen). Each \n in s starts a new output line. */
void opts_roff(FILE *out, const char *s, bool minus);

/* Prints "PROG: OPTION: message" (OPTION while an option is being parsed)
 * and a line pointing to --help. Returns OPTS_USAGE. */
int opts_fail(struct opts *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A whole number in [lo, hi]: digits only (no sign, no spaces). Returns 0,
 * or -1. */
int opts_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);

#endif
