/* A recursive-descent parser for the HOCON subset described in hocon.h. */
#include "config/hocon.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/vec.h"

#define MAX_DEPTH   64 /* nesting of objects/arrays: bounds recursion */
#define MAX_INCLUDE 16 /* include nesting: also stops include cycles */
#define MAX_FILE    (16u << 20)

struct parser {
    const char *p;
    const char *end;
    const char *file;
    unsigned line;
    unsigned depth;
    unsigned includes;
    struct hocon_doc *doc;
    char *err;
    size_t errlen;
    bool failed;
};

static int fail(struct parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct parser *ps, const char *fmt, ...)
{
    if (ps->failed)
        return -1;
    ps->failed = true;
    int n = snprintf(ps->err, ps->errlen, "%s:%u: ", ps->file, ps->line);
    if (n < 0 || (size_t)n >= ps->errlen)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static struct hocon_value *value_new(struct parser *ps, enum hocon_type type)
{
    struct hocon_value *v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    v->type = type;
    v->file = ps->file;
    v->line = ps->line;
    return v;
}

static void value_free(struct hocon_value *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->count; i++) {
        if (v->type == HOCON_ARRAY) {
            value_free(v->items[i]);
        } else {
            free(v->members[i].key);
            value_free(v->members[i].val);
        }
    }
    free(v->items);
    free(v->members);
    free(v->str);
    free(v);
}

static int grow(struct hocon_value *v)
{
    /* items and members share one capacity: only one of them is in use */
    struct ward_result r = v->type == HOCON_ARRAY ? VEC_RESERVE(v->items, v->cap, v->count + 1)
                                                  : VEC_RESERVE(v->members, v->cap, v->count + 1);
    return ward_ok(r) ? 0 : -1;
}

/* see hocon.h */
struct hocon_value *hocon_get(const struct hocon_value *obj, const char *key)
{
    if (!obj || obj->type != HOCON_OBJECT)
        return NULL;
    for (size_t i = 0; i < obj->count; i++)
        if (strcmp(obj->members[i].key, key) == 0)
            return obj->members[i].val;
    return NULL;
}

/* see hocon.h */
struct hocon_value *hocon_path(const struct hocon_value *obj, const char *path)
{
    char seg[256];
    const struct hocon_value *cur = obj;
    while (cur && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof(seg))
            return NULL;
        memcpy(seg, path, n);
        seg[n] = '\0';
        cur = hocon_get(cur, seg);
        path += n + (dot ? 1 : 0);
    }
    return (struct hocon_value *)cur;
}

const char *hocon_type_name(enum hocon_type t)
{
    switch (t) {
    case HOCON_NULL:
        return "null";
    case HOCON_BOOL:
        return "boolean";
    case HOCON_NUMBER:
        return "number";
    case HOCON_STRING:
        return "string";
    case HOCON_ARRAY:
        return "array";
    case HOCON_OBJECT:
        return "object";
    default:
        return "unknown";
    }
}

/* Objects with the same key merge member by member; anything else replaces
 * (HOCON's rule). Takes ownership of key and val. */
static int object_set(struct hocon_value *obj, char *key, struct hocon_value *val)
{
    for (size_t i = 0; i < obj->count; i++) {
        struct hocon_member *m = &obj->members[i];
        if (strcmp(m->key, key) != 0)
            continue;
        free(key);
        if (m->val->type == HOCON_OBJECT && val->type == HOCON_OBJECT) {
            for (size_t j = 0; j < val->count; j++)
                if (object_set(m->val, val->members[j].key, val->members[j].val) < 0)
                    return -1;
            val->count = 0;
            value_free(val);
            return 0;
        }
        value_free(m->val);
        m->val = val;
        return 0;
    }
    if (grow(obj) < 0) {
        free(key);
        value_free(val);
        return -1;
    }
    obj->members[obj->count++] = (struct hocon_member){key, val};
    return 0;
}

static bool at(const struct parser *ps, const char *s)
{
    size_t n = strlen(s);
    return (size_t)(ps->end - ps->p) >= n && memcmp(ps->p, s, n) == 0;
}

static bool at_comment(const struct parser *ps)
{
    return ps->p < ps->end && (*ps->p == '#' || at(ps, "//"));
}

/* Skips blanks and comments; newlines too when `newlines`. */
static void skip_space(struct parser *ps, bool newlines)
{
    while (ps->p < ps->end) {
        char c = *ps->p;
        if (c == ' ' || c == '\t' || c == '\r' || (unsigned char)c == 0xEF) {
            /* 0xEF: tolerate a UTF-8 byte order mark's first byte only at start */
            if ((unsigned char)c == 0xEF) {
                if (!at(ps, "\xEF\xBB\xBF"))
                    return;
                ps->p += 2;
            }
            ps->p++;
        } else if (at_comment(ps)) {
            while (ps->p < ps->end && *ps->p != '\n')
                ps->p++;
        } else if (c == '\n' && newlines) {
            ps->line++;
            ps->p++;
        } else {
            return;
        }
    }
}

static bool is_key_char(char c)
{
    return c != '\0' && !strchr(" \t\r\n.=:{}[],#\"+$", c);
}

/* A growable string used while reading keys and values. */
struct sbuf {
    char *s;
    size_t len, cap;
};

static int sbuf_put(struct sbuf *b, const char *p, size_t n)
{
    if (!ward_ok(VEC_RESERVE(b->s, b->cap, b->len + n + 1)))
        return -1;
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* \uXXXX as UTF-8 (BMP only; surrogates refused). */
static int put_unicode(struct parser *ps, struct sbuf *b)
{
    if (ps->end - ps->p < 4)
        return fail(ps, "truncated \\u escape");
    unsigned cp = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(ps->p[i]);
        if (h < 0)
            return fail(ps, "bad \\u escape");
        cp = cp * 16 + (unsigned)h;
    }
    ps->p += 4;
    if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
        return fail(ps, "\\u%04X is not allowed in a string", cp);
    char u[3];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    }
    return sbuf_put(b, u, n);
}

static int read_escape(struct parser *ps, struct sbuf *b)
{
    static const char from[] = "\"\\/bfnrt";
    static const char to[] = "\"\\/\b\f\n\r\t";
    if (ps->p >= ps->end)
        return fail(ps, "unterminated string");
    char c = *ps->p++;
    if (c == 'u')
        return put_unicode(ps, b);
    const char *k = strchr(from, c);
    if (!k || c == '\0')
        return fail(ps, "unknown escape '\\%c' in string", c);
    return sbuf_put(b, &to[k - from], 1);
}

/* A "quoted" or """triple-quoted""" string appended to b. */
static int read_quoted(struct parser *ps, struct sbuf *b)
{
    if (at(ps, "\"\"\"")) {
        ps->p += 3;
        const char *start = ps->p;
        while (ps->p < ps->end && !at(ps, "\"\"\"")) {
            if (*ps->p == '\n')
                ps->line++;
            ps->p++;
        }
        if (ps->p >= ps->end)
            return fail(ps, "unterminated \"\"\" string");
        int r = sbuf_put(b, start, (size_t)(ps->p - start));
        ps->p += 3;
        return r;
    }
    ps->p++;
    while (ps->p < ps->end && *ps->p != '"') {
        char c = *ps->p++;
        if (c == '\n')
            return fail(ps, "unterminated string (newline before closing quote)");
        if (c == '\\') {
            if (read_escape(ps, b) < 0)
                return -1;
        } else if (sbuf_put(b, &c, 1) < 0) {
            return -1;
        }
    }
    if (ps->p >= ps->end)
        return fail(ps, "unterminated string");
    ps->p++;
    return 0;
}

/* A key path: segments (bare or quoted) separated by dots. Segments are
 * returned NUL-separated in b, *nseg of them. */
static int read_key(struct parser *ps, struct sbuf *b, size_t *nseg)
{
    *nseg = 0;
    for (;;) {
        if (ps->p < ps->end && *ps->p == '"') {
            if (read_quoted(ps, b) < 0)
                return -1;
        } else {
            const char *start = ps->p;
            while (ps->p < ps->end && is_key_char(*ps->p) && !at(ps, "//"))
                ps->p++;
            if (ps->p == start)
                return fail(ps, "expected a key");
            if (sbuf_put(b, start, (size_t)(ps->p - start)) < 0)
                return -1;
        }
        if (sbuf_put(b, "", 1) < 0)
            return -1;
        (*nseg)++;
        if (ps->p >= ps->end || *ps->p != '.')
            return 0;
        ps->p++;
    }
}

static struct hocon_value *parse_value(struct parser *ps, bool *skip);
static int parse_body(struct parser *ps, struct hocon_value *obj, char close);

/* `${NAME}` or `${?NAME}`: appends the variable's value. *missing is set for
 * an optional variable that is not set. */
static int read_subst(struct parser *ps, struct sbuf *b, bool *missing)
{
    ps->p += 2;
    bool optional = ps->p < ps->end && *ps->p == '?';
    if (optional)
        ps->p++;
    const char *start = ps->p;
    while (ps->p < ps->end && *ps->p != '}' && *ps->p != '\n')
        ps->p++;
    if (ps->p >= ps->end || *ps->p != '}')
        return fail(ps, "unterminated ${...} substitution");
    char name[256];
    size_t n = (size_t)(ps->p - start);
    ps->p++;
    if (n == 0 || n >= sizeof(name))
        return fail(ps, "bad substitution name");
    memcpy(name, start, n);
    name[n] = '\0';
    /* ACL topic placeholders (NanoMQ's `${clientid}`, `${username}` and
     * ward's certificate fields) are filled per client later, not from the
     * environment: they stay in the text as written. */
    static const char *const placeholders[] = {"username", "clientid", "cert_cn", "cert_ou"};
    for (size_t i = 0; i < sizeof(placeholders) / sizeof(placeholders[0]); i++)
        if (!optional && strcmp(name, placeholders[i]) == 0)
            return sbuf_put(b, start - 2, n + 3);
    const char *v = getenv(name);
    if (!v) {
        if (!optional)
            return fail(ps, "environment variable %s is not set (use ${?%s} if optional)", name,
                        name);
        *missing = true;
        return 0;
    }
    return sbuf_put(b, v, strlen(v));
}

static bool value_ends(const struct parser *ps)
{
    if (ps->p >= ps->end)
        return true;
    char c = *ps->p;
    return c == '\n' || c == ',' || c == '}' || c == ']' || at_comment(ps);
}

/* Classifies a lone bare token: boolean, null, number or string. */
static void classify_bare(struct hocon_value *v)
{
    static const struct {
        const char *word;
        bool val;
    } bools[] = {{"true", true}, {"false", false}, {"yes", true},
                 {"no", false},  {"on", true},     {"off", false}};
    for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++)
        if (strcmp(v->str, bools[i].word) == 0) {
            v->type = HOCON_BOOL;
            v->b = bools[i].val;
            return;
        }
    if (strcmp(v->str, "null") == 0) {
        v->type = HOCON_NULL;
        return;
    }
    char *endp;
    errno = 0;
    double d = strtod(v->str, &endp);
    if (*v->str && *endp == '\0' && errno == 0 &&
        strspn(v->str, "+-0123456789.eE") == strlen(v->str)) {
        v->type = HOCON_NUMBER;
        v->num = d;
    }
}

/* A simple value: a concatenation of quoted strings, bare text and
 * substitutions up to the end of the value. */
static struct hocon_value *parse_scalar(struct parser *ps, bool *skip)
{
    struct sbuf b = {0};
    struct hocon_value *v = value_new(ps, HOCON_STRING);
    bool missing = false, bare_only = true;
    size_t pieces = 0;
    if (!v)
        goto oom;
    while (!value_ends(ps)) {
        pieces++;
        if (*ps->p == '"') {
            bare_only = false;
            if (read_quoted(ps, &b) < 0)
                goto out;
        } else if (at(ps, "${")) {
            bare_only = false;
            if (read_subst(ps, &b, &missing) < 0)
                goto out;
        } else {
            const char *start = ps->p;
            while (!value_ends(ps) && *ps->p != '"' && !at(ps, "${") && *ps->p != '{' &&
                   *ps->p != '[')
                ps->p++;
            if (ps->p == start) {
                fail(ps, "unexpected '%c' in a value", *ps->p);
                goto out;
            }
            if (sbuf_put(&b, start, (size_t)(ps->p - start)) < 0)
                goto oom;
        }
    }
    if (pieces == 0) {
        fail(ps, "missing value");
        goto out;
    }
    /* Trailing blanks before a comment or newline are not part of a value. */
    while (b.len && (b.s[b.len - 1] == ' ' || b.s[b.len - 1] == '\t'))
        b.s[--b.len] = '\0';
    if (missing && pieces == 1) {
        *skip = true;
        free(b.s);
        value_free(v);
        return NULL;
    }
    v->str = b.s ? b.s : strdup("");
    v->quoted = !bare_only;
    if (!v->str)
        goto oom;
    if (bare_only)
        classify_bare(v);
    return v;
oom:
    fail(ps, "out of memory");
out:
    free(b.s);
    value_free(v);
    return NULL;
}

static struct hocon_value *parse_array(struct parser *ps)
{
    struct hocon_value *arr = value_new(ps, HOCON_ARRAY);
    if (!arr) {
        fail(ps, "out of memory");
        return NULL;
    }
    ps->p++; /* '[' */
    for (;;) {
        skip_space(ps, true);
        while (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            skip_space(ps, true);
        }
        if (ps->p >= ps->end) {
            fail(ps, "unterminated array (missing ']')");
            goto out;
        }
        if (*ps->p == ']') {
            ps->p++;
            return arr;
        }
        bool skip = false;
        struct hocon_value *item = parse_value(ps, &skip);
        if (!item && !skip)
            goto out;
        if (item) {
            if (grow(arr) < 0) {
                value_free(item);
                fail(ps, "out of memory");
                goto out;
            }
            arr->items[arr->count++] = item;
        }
    }
out:
    value_free(arr);
    return NULL;
}

static struct hocon_value *parse_object(struct parser *ps)
{
    struct hocon_value *obj = value_new(ps, HOCON_OBJECT);
    if (!obj) {
        fail(ps, "out of memory");
        return NULL;
    }
    ps->p++; /* '{' */
    if (parse_body(ps, obj, '}') < 0) {
        value_free(obj);
        return NULL;
    }
    return obj;
}

static struct hocon_value *parse_value(struct parser *ps, bool *skip)
{
    *skip = false;
    if (ps->depth >= MAX_DEPTH) {
        fail(ps, "nested more than %d levels deep", MAX_DEPTH);
        return NULL;
    }
    ps->depth++;
    struct hocon_value *v;
    if (ps->p < ps->end && *ps->p == '{')
        v = parse_object(ps);
    else if (ps->p < ps->end && *ps->p == '[')
        v = parse_array(ps);
    else
        v = parse_scalar(ps, skip);
    ps->depth--;
    return v;
}

/* Places val at the dotted key path (segments NUL-separated in segs). */
static int set_path(struct parser *ps, struct hocon_value *obj, const char *segs, size_t nseg,
                    struct hocon_value *val)
{
    for (size_t i = 0; i + 1 < nseg; i++) {
        struct hocon_value *child = value_new(ps, HOCON_OBJECT);
        char *k = strdup(segs);
        if (!child || !k || object_set(obj, k, child) < 0) {
            value_free(val);
            return fail(ps, "out of memory");
        }
        obj = hocon_get(obj, segs); /* the merged object, existing or new */
        segs += strlen(segs) + 1;
    }
    char *k = strdup(segs);
    if (!k) {
        value_free(val);
        return fail(ps, "out of memory");
    }
    return object_set(obj, k, val) < 0 ? fail(ps, "out of memory") : 0;
}

static int include_file(struct parser *ps, struct hocon_value *obj, const char *name);

/* `include "FILE"` or `include file("FILE")` / `required("FILE")`. */
static int parse_include(struct parser *ps, struct hocon_value *obj)
{
    ps->p += strlen("include");
    skip_space(ps, false);
    bool wrapped = false;
    if (at(ps, "file(") || at(ps, "required(")) {
        ps->p = memchr(ps->p, '(', (size_t)(ps->end - ps->p)) + 1;
        wrapped = true;
    }
    if (ps->p >= ps->end || *ps->p != '"')
        return fail(ps, "include needs a quoted file name");
    struct sbuf name = {0};
    if (read_quoted(ps, &name) < 0) {
        free(name.s);
        return -1;
    }
    if (wrapped && (ps->p >= ps->end || *ps->p++ != ')')) {
        free(name.s);
        return fail(ps, "missing ')' after include file name");
    }
    int r = include_file(ps, obj, name.s ? name.s : "");
    free(name.s);
    return r;
}

static bool at_include(const struct parser *ps)
{
    if (!at(ps, "include"))
        return false;
    const char *q = ps->p + strlen("include");
    return q < ps->end && (*q == ' ' || *q == '\t');
}

/* One member: key, then '=' / ':' and a value, or an object directly. */
static int parse_member(struct parser *ps, struct hocon_value *obj)
{
    struct sbuf key = {0};
    size_t nseg;
    int r = -1;
    unsigned line = ps->line;
    if (read_key(ps, &key, &nseg) < 0)
        goto out;
    skip_space(ps, false);
    if (ps->p < ps->end && (*ps->p == '=' || *ps->p == ':')) {
        ps->p++;
        skip_space(ps, false);
    } else if (at(ps, "+=")) {
        fail(ps, "'+=' is not supported; write the whole array");
        goto out;
    } else if (ps->p >= ps->end || *ps->p != '{') {
        fail(ps, "expected '=', ':' or '{' after key '%s'", key.s);
        goto out;
    }
    bool skip = false;
    struct hocon_value *val = parse_value(ps, &skip);
    if (!val) {
        r = skip ? 0 : -1;
        goto out;
    }
    val->line = line;
    r = set_path(ps, obj, key.s, nseg, val);
out:
    free(key.s);
    return r;
}

static int parse_body(struct parser *ps, struct hocon_value *obj, char close)
{
    for (;;) {
        skip_space(ps, true);
        while (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            skip_space(ps, true);
        }
        if (ps->p >= ps->end) {
            if (close)
                return fail(ps, "unterminated object (missing '%c')", close);
            return 0;
        }
        if (*ps->p == close) {
            ps->p++;
            return 0;
        }
        int r = at_include(ps) ? parse_include(ps, obj) : parse_member(ps, obj);
        if (r < 0)
            return -1;
        skip_space(ps, false);
        if (ps->p < ps->end && *ps->p != '\n' && *ps->p != ',' && *ps->p != close)
            return fail(ps, "unexpected '%c' after a value (missing newline or ','?)", *ps->p);
    }
}

static const char *remember_file(struct hocon_doc *doc, const char *name)
{
    size_t cap = doc->nfiles; /* included files grow one at a time */
    if (!ward_ok(VEC_RESERVE_EXACT(doc->files, cap, doc->nfiles + 1)))
        return NULL;
    char **n = doc->files;
    n[doc->nfiles] = strdup(name);
    return n[doc->nfiles] ? n[doc->nfiles++] : NULL;
}

static int parse_text(struct parser *ps, struct hocon_value *root, const char *text, size_t len)
{
    ps->p = text;
    ps->end = text + len;
    ps->line = 1;
    if (memchr(text, '\0', len))
        return fail(ps, "file contains a NUL byte");
    skip_space(ps, true);
    /* The root object may be written with or without braces. */
    if (ps->p < ps->end && *ps->p == '{') {
        ps->p++;
        if (parse_body(ps, root, '}') < 0)
            return -1;
        skip_space(ps, true);
        if (ps->p < ps->end)
            return fail(ps, "text after the closing '}' of the root object");
        return 0;
    }
    return parse_body(ps, root, '\0');
}

static char *read_whole(const char *path, size_t *len, char *why, size_t whylen)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    if (!f) {
        snprintf(why, whylen, "%s", strerror(errno));
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0 || ftell(f) < 0 || ftell(f) > (long)MAX_FILE) {
        snprintf(why, whylen, "not a regular file or larger than %u bytes", MAX_FILE);
        goto out;
    }
    long n = ftell(f);
    rewind(f);
    text = malloc((size_t)n + 1);
    if (!text || fread(text, 1, (size_t)n, f) != (size_t)n) {
        snprintf(why, whylen, "read failed");
        free(text);
        text = NULL;
        goto out;
    }
    text[n] = '\0';
    *len = (size_t)n;
out:
    fclose(f);
    return text;
}

/* Resolves name against the directory of the including file. */
static void resolve(const char *base, const char *name, char *out, size_t outlen)
{
    const char *slash = strrchr(base, '/');
    if (name[0] == '/' || !slash)
        snprintf(out, outlen, "%s", name);
    else
        snprintf(out, outlen, "%.*s/%s", (int)(slash - base), base, name);
}

static int include_file(struct parser *ps, struct hocon_value *obj, const char *name)
{
    char path[PATH_MAX], why[256];
    if (ps->includes >= MAX_INCLUDE)
        return fail(ps, "include nested more than %d deep (an include cycle?)", MAX_INCLUDE);
    resolve(ps->file, name, path, sizeof(path));
    size_t len = 0;
    char *text = read_whole(path, &len, why, sizeof(why));
    if (!text)
        return fail(ps, "cannot include \"%s\": %s", path, why);
    struct parser sub = *ps;
    sub.file = remember_file(ps->doc, path);
    sub.includes++;
    sub.failed = false;
    int r = sub.file ? parse_text(&sub, obj, text, len) : fail(ps, "out of memory");
    free(text);
    if (r < 0)
        ps->failed = true;
    return r;
}

static int parse_into(const char *name, const char *text, size_t len, struct hocon_doc *doc,
                      char *err, size_t errlen)
{
    memset(doc, 0, sizeof(*doc));
    struct parser ps = {.doc = doc, .err = err, .errlen = errlen};
    ps.file = remember_file(doc, name);
    if (!ps.file) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    doc->root = value_new(&ps, HOCON_OBJECT);
    if (!doc->root || parse_text(&ps, doc->root, text, len) < 0) {
        if (!doc->root)
            snprintf(err, errlen, "%s: out of memory", name);
        hocon_doc_free(doc);
        return -1;
    }
    return 0;
}

/* see hocon.h */
int hocon_parse_string(const char *name, const char *text, size_t len, struct hocon_doc *doc,
                       char *err, size_t errlen)
{
    return parse_into(name, text, len, doc, err, errlen);
}

/* see hocon.h */
int hocon_parse_file(const char *path, struct hocon_doc *doc, char *err, size_t errlen)
{
    char why[256];
    size_t len = 0;
    char *text = read_whole(path, &len, why, sizeof(why));
    if (!text) {
        memset(doc, 0, sizeof(*doc));
        snprintf(err, errlen, "%s: cannot read: %s", path, why);
        return -1;
    }
    int r = parse_into(path, text, len, doc, err, errlen);
    free(text);
    return r;
}

/* see hocon.h */
void hocon_doc_free(struct hocon_doc *doc)
{
    value_free(doc->root);
    for (size_t i = 0; i < doc->nfiles; i++)
        free(doc->files[i]);
    free(doc->files);
    memset(doc, 0, sizeof(*doc));
}
