/* The HOCON subset NanoMQ's configuration files use, parsed into a tree.
 *
 * Supported: `key = value`, `key : value`, `key { ... }`, dotted keys
 * (`listeners.ssl.mtls { ... }` nests), quoted ("...", with escapes) and bare
 * strings, numbers, booleans, null, arrays (of anything, objects included),
 * `#` and `//` comments, commas or newlines between members, `${ENV}` and
 * `${?ENV}` substitution from the environment (inside quoted strings too;
 * the ACL placeholders `${username}`, `${clientid}`, `${cert_cn}` and
 * `${cert_ou}` are kept as written),
 * `include "FILE"` at member level (merged in place) and `{include "FILE"}`
 * as a value (NanoMQ's `acl = {include "acl.conf"}`), both relative to the
 * including file. Objects with the same key merge; other values: last wins.
 *
 * Every value remembers the file and line it came from, for error messages
 * of the form `file:line: key: cause`. Bare values keep their text, so the
 * schema can read `10s` or `256KB` itself. */
#ifndef WARD_CONFIG_HOCON_H
#define WARD_CONFIG_HOCON_H

#include <stdbool.h>
#include <stddef.h>

#include "core/result.h"

enum hocon_type { HOCON_NULL, HOCON_BOOL, HOCON_NUMBER, HOCON_STRING, HOCON_ARRAY, HOCON_OBJECT };

struct hocon_value;

struct hocon_member {
    char *key;
    struct hocon_value *val;
};

struct hocon_value {
    enum hocon_type type;
    const char *file; /* owned by the document's file list */
    unsigned line;
    bool quoted; /* a string that was written in quotes */
    bool b;
    double num;
    char *str;                    /* strings; also the source text of bare numbers/booleans */
    struct hocon_value **items;   /* arrays */
    struct hocon_member *members; /* objects, in first-seen order */
    size_t count;
    size_t cap;
};

/* A parsed document: the root object plus the names of every file read. */
struct hocon_doc {
    struct hocon_value *root;
    char **files;
    size_t nfiles;
};

/* Parses `path` (and what it includes). Returns 0, or -1 with a message
 * "file:line: cause" in err (the first syntax error; parsing stops there). */
WARD_WUR int hocon_parse_file(const char *path, struct hocon_doc *doc, char *err, size_t errlen);
/* Parses text held in memory; `name` is used in messages and as the base for
 * relative includes (its directory). */
WARD_WUR int hocon_parse_string(const char *name, const char *text, size_t len,
                                struct hocon_doc *doc, char *err, size_t errlen);
void hocon_doc_free(struct hocon_doc *doc);

/* Looks up a member of an object by its exact (undotted) key. */
struct hocon_value *hocon_get(const struct hocon_value *obj, const char *key);
/* Looks up a dotted path ("listeners.ssl.bind") from an object. */
struct hocon_value *hocon_path(const struct hocon_value *obj, const char *path);
const char *hocon_type_name(enum hocon_type t);

#endif
