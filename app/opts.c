/* see opts.h */
#include "opts.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NARGS 8
#define HELP_COL  28 /* where the help text starts */

static FILE *err_stream(const struct opts *p)
{
    return p->err ? p->err : stderr;
}

/* see opts.h */
int opts_fail(struct opts *p, const char *fmt, ...)
{
    FILE *f = err_stream(p);
    va_list ap;
    va_start(ap, fmt);
    fprintf(f, "%s: ", p->prog);
    if (p->spelled)
        fprintf(f, "%s: ", p->spelled);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fprintf(f, "\n(%s --help lists the options)\n", p->prog);
    return OPTS_USAGE;
}

/* see opts.h */
int opts_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s || strlen(s) > 20)
        return -1;
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9' || v > (UINT64_MAX - (uint64_t)(*c - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*c - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Stores v in a field of `size` bytes (uint8_t up to uint64_t; an int or an
 * unsigned is 4 bytes and v fits it: the ranges in the tables see to that). */
static void store_uint(void *field, size_t size, uint64_t v)
{
    switch (size) {
    case 1: {
        uint8_t x = (uint8_t)v;
        memcpy(field, &x, 1);
        return;
    }
    case 2: {
        uint16_t x = (uint16_t)v;
        memcpy(field, &x, 2);
        return;
    }
    case 4: {
        uint32_t x = (uint32_t)v;
        memcpy(field, &x, 4);
        return;
    }
    default:
        memcpy(field, &v, 8);
        return;
    }
}

static int take_choice(struct opts *p, const struct opt *o, void *field, const char *arg)
{
    char names[256] = "";
    for (const struct opt_choice *c = o->choices; c->name; c++) {
        if (strcmp(arg, c->name) == 0) {
            store_uint(field, o->size, c->value);
            return 0;
        }
        size_t l = strlen(names);
        snprintf(names + l, sizeof(names) - l, "%s%s", l ? ", " : "", c->name);
    }
    return opts_fail(p, "'%s' is not one of %s", arg, names);
}

/* Applies one option with its arguments to ctx. */
static int take(struct opts *p, void *ctx, const struct opt *o, const char *const *args)
{
    void *field = (char *)ctx + o->off;
    uint64_t u;
    double d;
    char *end;
    switch (o->kind) {
    case OPT_SET:
    case OPT_CLEAR:
        *(bool *)field = o->kind == OPT_SET;
        return 0;
    case OPT_STRING:
        *(const char **)field = args[0];
        return 0;
    case OPT_UINT:
        if (opts_uint(args[0], o->lo, o->hi, &u) < 0)
            return opts_fail(p, "'%s' is not a number from %llu to %llu", args[0],
                             (unsigned long long)o->lo, (unsigned long long)o->hi);
        store_uint(field, o->size, u);
        return 0;
    case OPT_DOUBLE:
        d = strtod(args[0], &end);
        if (!*args[0] || *end || !(d >= o->dlo && d <= o->dhi))
            return opts_fail(p, "'%s' is not a number from %g to %g", args[0], o->dlo, o->dhi);
        *(double *)field = d;
        return 0;
    case OPT_CHOICE:
        return take_choice(p, o, field, args[0]);
    case OPT_CALL:
        return o->call(p, ctx, args);
    case OPT_HELP:
        opts_help(p, p->out ? p->out : stdout);
        return OPTS_HELP;
    default:
        return opts_fail(p, "%s", "not an option");
    }
}

static unsigned nargs(const struct opt *o)
{
    switch (o->kind) {
    case OPT_STRING:
    case OPT_UINT:
    case OPT_DOUBLE:
    case OPT_CHOICE:
        return 1;
    case OPT_CALL:
        return o->nargs < MAX_NARGS ? o->nargs : MAX_NARGS;
    default:
        return 0;
    }
}

static bool applies(const struct opts *p, const struct opt *o)
{
    return o->kind != OPT_SECTION && (!o->only || (o->only & p->mask));
}

static const struct opt *find_long(const struct opts *p, const char *name, size_t len)
{
    for (size_t i = 0; i < p->n; i++) {
        const struct opt *o = &p->table[i];
        if (applies(p, o) && o->name && strlen(o->name) == len && !strncmp(o->name, name, len))
            return o;
    }
    return NULL;
}

static const struct opt *find_short(const struct opts *p, char c)
{
    for (size_t i = 0; i < p->n; i++)
        if (applies(p, &p->table[i]) && p->table[i].letter == c)
            return &p->table[i];
    return NULL;
}

/* Gathers o's arguments: `first` (attached to the option) if not NULL, then
 * argv[*i + 1 ...]; then applies o. */
static int run(struct opts *p, void *ctx, const struct opt *o, const char *first, int argc,
               char **argv, int *i)
{
    const char *args[MAX_NARGS] = {0};
    unsigned want = nargs(o), have = 0;
    if (first && want == 0)
        return opts_fail(p, "%s", "takes no argument");
    if (first)
        args[have++] = first;
    while (have < want && *i + 1 < argc)
        args[have++] = argv[++*i];
    if (have < want)
        return opts_fail(p, "missing argument%s %s", want > 1 ? "s" : "",
                         o->arg ? o->arg : "VALUE");
    p->cur = o;
    return take(p, ctx, o, args);
}

static int parse_long(struct opts *p, void *ctx, int argc, char **argv, int *i)
{
    const char *name = argv[*i] + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const struct opt *o = find_long(p, name, len);
    if (!o && strcmp(name, "help-markdown") == 0) {
        opts_markdown(p, p->out ? p->out : stdout);
        return OPTS_HELP;
    }
    if (!o && strcmp(name, "help-man") == 0) {
        opts_man(p, p->out ? p->out : stdout);
        return OPTS_HELP;
    }
    if (!o)
        return opts_fail(p, "unknown option '--%.*s'", (int)len, name);
    snprintf(p->spelled_buf, sizeof(p->spelled_buf), "--%.*s", (int)len, name);
    p->spelled = p->spelled_buf;
    return run(p, ctx, o, eq ? eq + 1 : NULL, argc, argv, i);
}

/* -abc: flags a and b, then c (with "the rest" as its argument if it
 * takes one). */
static int parse_shorts(struct opts *p, void *ctx, int argc, char **argv, int *i)
{
    for (const char *c = argv[*i] + 1; *c; c++) {
        const struct opt *o = find_short(p, *c);
        if (!o)
            return opts_fail(p, "unknown option '-%c'", *c);
        snprintf(p->spelled_buf, sizeof(p->spelled_buf), "-%c", *c);
        p->spelled = p->spelled_buf;
        bool with_arg = nargs(o) > 0;
        int rc = run(p, ctx, o, with_arg && c[1] ? c + 1 : NULL, argc, argv, i);
        p->spelled = NULL;
        if (rc || with_arg)
            return rc;
    }
    return 0;
}

static bool fits(uint64_t v, size_t size)
{
    return size >= 8 || v >> (size * 8) == 0;
}

/* What is wrong with one entry's target, or NULL. */
static const char *target_fault(const struct opt *o)
{
    switch (o->kind) {
    case OPT_SET:
    case OPT_CLEAR:
        return o->size == sizeof(bool) ? NULL : "a flag needs a bool target";
    case OPT_STRING:
        return o->size == sizeof(char *) ? NULL : "needs a const char * target";
    case OPT_DOUBLE:
        return o->size == sizeof(double) && o->dlo <= o->dhi ? NULL : "needs a double and a range";
    case OPT_UINT:
        if (o->size != 1 && o->size != 2 && o->size != 4 && o->size != 8)
            return "needs a target of 1, 2, 4 or 8 bytes";
        return o->lo <= o->hi && fits(o->hi, o->size) ? NULL : "its range does not fit its target";
    case OPT_CHOICE:
        for (const struct opt_choice *c = o->choices; c && c->name; c++)
            if (!fits(c->value, o->size) || o->size == 0 || o->size > 8)
                return "a value does not fit its target";
        return o->choices ? NULL : "has no choices";
    case OPT_CALL:
        return o->call && o->nargs <= MAX_NARGS ? NULL
                                                : "needs a handler (and at most 8 arguments)";
    default:
        return NULL;
    }
}

/* Two entries that can both apply must not share a name or a letter. */
static bool clash(const struct opt *a, const struct opt *b)
{
    if (a->kind == OPT_SECTION || b->kind == OPT_SECTION)
        return false;
    if (a->only && b->only && !(a->only & b->only))
        return false;
    return (a->letter && a->letter == b->letter) ||
           (a->name && b->name && strcmp(a->name, b->name) == 0);
}

/* A broken table is a programming error; every test that parses with a
 * table checks it this way. */
static int check_table(struct opts *p)
{
    for (size_t i = 0; i < p->n; i++) {
        const struct opt *o = &p->table[i];
        const char *fault = target_fault(o);
        for (size_t j = 0; !fault && j < i; j++)
            if (clash(o, &p->table[j]))
                fault = "is in the table twice";
        if (!fault)
            continue;
        if (o->name)
            return opts_fail(p, "option table: --%s: %s", o->name, fault);
        return opts_fail(p, "option table: -%c: %s", o->letter, fault);
    }
    return 0;
}

/* see opts.h */
int opts_parse(struct opts *p, void *ctx, int argc, char **argv, int first, int *npos)
{
    int pos = first, rc = check_table(p);
    bool options = true;
    for (int i = first; i < argc && rc == 0; i++) {
        const char *a = argv[i];
        p->spelled = NULL;
        if (options && strcmp(a, "--") == 0)
            options = false;
        else if (options && a[0] == '-' && a[1] == '-')
            rc = parse_long(p, ctx, argc, argv, &i);
        else if (options && a[0] == '-' && a[1])
            rc = parse_shorts(p, ctx, argc, argv, &i);
        else if ((size_t)(pos - first) < p->max_pos)
            argv[pos++] = argv[i];
        else
            rc = opts_fail(p, "unexpected argument '%s'", a);
    }
    p->spelled = NULL;
    p->cur = NULL;
    if (npos)
        *npos = pos - first;
    return rc;
}

/* "  -p, --port PORT" */
static void left_column(const struct opt *o, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "  ");
    if (o->letter)
        n += snprintf(buf + n, cap - (size_t)n, "-%c%s", o->letter, o->name ? ", " : "");
    else
        n += snprintf(buf + n, cap - (size_t)n, "    ");
    if (o->name)
        n += snprintf(buf + n, cap - (size_t)n, "--%s", o->name);
    if (o->arg && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, " %s", o->arg);
}

static void help_line(const struct opt *o, FILE *out)
{
    char left[128];
    left_column(o, left, sizeof(left));
    int w = fprintf(out, "%s", left);
    const char *h = o->help;
    if (w >= HELP_COL) {
        fprintf(out, "\n");
        w = 0;
    }
    while (*h) {
        const char *nl = strchr(h, '\n');
        int len = nl ? (int)(nl - h) : (int)strlen(h);
        fprintf(out, "%*s%.*s\n", HELP_COL - w, "", len, h);
        w = 0;
        h += len + (nl != NULL);
    }
}

/* see opts.h */
void opts_help(const struct opts *p, FILE *out)
{
    if (p->usage)
        fprintf(out, "%s", p->usage);
    for (size_t i = 0; i < p->n; i++) {
        const struct opt *o = &p->table[i];
        if (o->kind == OPT_SECTION && (!o->only || (o->only & p->mask)))
            fprintf(out, "%s\n", o->help);
        else if (applies(p, o) && o->help)
            help_line(o, out);
    }
    if (p->footer)
        fprintf(out, "%s", p->footer);
}

/* Text for a Markdown table cell: | and * escaped, line breaks as spaces. */
static void md_cell(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|' || *s == '*')
            fprintf(out, "\\%c", *s);
        else
            fputc(*s == '\n' ? ' ' : *s, out);
    }
}

static void md_row(const struct opt *o, FILE *out)
{
    fputs("| ", out);
    if (o->letter)
        fprintf(out, "`-%c`%s", o->letter, o->name ? ", " : "");
    if (o->name)
        fprintf(out, "`--%s`", o->name);
    fputs(" | ", out);
    if (o->arg)
        md_cell(out, o->arg);
    fputs(" | ", out);
    md_cell(out, o->help);
    fputs(" |\n", out);
}

/* see opts.h */
void opts_markdown(const struct opts *p, FILE *out)
{
    fprintf(out, "## %s\n\n", p->prog);
    if (p->usage)
        fprintf(out, "```\n%s```\n\n", p->usage);
    bool head = false;
    for (size_t i = 0; i < p->n; i++) {
        const struct opt *o = &p->table[i];
        if (o->kind == OPT_SECTION && (!o->only || (o->only & p->mask))) {
            fprintf(out, "%s%s\n\n", head ? "\n" : "", o->help);
            head = false;
        } else if (applies(p, o) && o->help) {
            if (!head)
                fputs("| option | argument | meaning |\n|---|---|---|\n", out);
            head = true;
            md_row(o, out);
        }
    }
    if (p->footer)
        fprintf(out, "\n%s", p->footer);
    fputs("\n", out);
}

/* see opts.h */
void opts_roff(FILE *out, const char *s, bool minus)
{
    bool bol = true;
    for (; *s; s++) {
        if (bol && (*s == '.' || *s == '\''))
            fputs("\\&", out);
        bol = *s == '\n';
        if (*s == '\\')
            fputs("\\e", out);
        else if (*s == '-' && minus)
            fputs("\\-", out);
        else
            fputc(*s, out);
    }
}

/* .TP, then "\fB-p\fR, \fB--port\fR \fIPORT\fR", then the help text. */
static void man_item(const struct opt *o, FILE *out)
{
    fputs(".TP\n", out);
    if (o->letter) {
        char l[3] = {'-', o->letter, 0};
        fputs("\\fB", out);
        opts_roff(out, l, true);
        fputs(o->name ? "\\fR, " : "\\fR", out);
    }
    if (o->name) {
        fputs("\\fB\\-\\-", out);
        opts_roff(out, o->name, true);
        fputs("\\fR", out);
    }
    if (o->arg) {
        fputs(" \\fI", out);
        opts_roff(out, o->arg, false);
        fputs("\\fR", out);
    }
    fputs("\n", out);
    opts_roff(out, o->help, false);
    fputs("\n", out);
}

/* Verbatim lines (usage, footer): no filling, no adjusting. */
static void man_verbatim(FILE *out, const char *s)
{
    fputs(".PP\n.nf\n", out);
    opts_roff(out, s, false);
    if (*s && s[strlen(s) - 1] != '\n')
        fputs("\n", out);
    fputs(".fi\n", out);
}

/* see opts.h */
void opts_man(const struct opts *p, FILE *out)
{
    fputs(".SS \"", out);
    opts_roff(out, p->prog, false);
    fputs("\"\n", out);
    if (p->usage)
        man_verbatim(out, p->usage);
    for (size_t i = 0; i < p->n; i++) {
        const struct opt *o = &p->table[i];
        if (o->kind == OPT_SECTION && (!o->only || (o->only & p->mask))) {
            fputs(".PP\n", out);
            opts_roff(out, o->help, false);
            fputs("\n", out);
        } else if (applies(p, o) && o->help) {
            man_item(o, out);
        }
    }
    if (p->footer)
        man_verbatim(out, p->footer);
}
