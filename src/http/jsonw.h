/* A JSON writer into a buf, for the admin API's answers. It tracks nesting
 * and commas itself, escapes every string (control characters, quotes,
 * backslashes, and bytes that are not valid UTF-8 as U+FFFD), and
 * remembers the first failure (out of memory, nesting deeper than
 * JSONW_MAX_DEPTH, a key outside an object) so callers check once at the
 * end. */
#ifndef WARD_HTTP_JSONW_H
#define WARD_HTTP_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/result.h"

#define JSONW_MAX_DEPTH 32

struct jsonw {
    struct buf *out;
    unsigned depth;
    bool need_comma[JSONW_MAX_DEPTH + 1];
    bool in_object[JSONW_MAX_DEPTH + 1];
    bool after_key;
    bool failed;
};

void jsonw_init(struct jsonw *w, struct buf *out);
void jsonw_object_begin(struct jsonw *w);
void jsonw_object_end(struct jsonw *w);
void jsonw_array_begin(struct jsonw *w);
void jsonw_array_end(struct jsonw *w);
/* Inside an object, each value is preceded by its key. */
void jsonw_key(struct jsonw *w, const char *key);
void jsonw_string(struct jsonw *w, const char *s);
void jsonw_string_n(struct jsonw *w, const char *s, size_t n);
void jsonw_u64(struct jsonw *w, uint64_t v);
void jsonw_i64(struct jsonw *w, int64_t v);
/* Finite values only; NaN and infinities are written as null. */
void jsonw_double(struct jsonw *w, double v);
void jsonw_bool(struct jsonw *w, bool v);
void jsonw_null(struct jsonw *w);
/* Shorthands for a key and its value. */
void jsonw_kv_string(struct jsonw *w, const char *key, const char *s);
void jsonw_kv_u64(struct jsonw *w, const char *key, uint64_t v);
void jsonw_kv_bool(struct jsonw *w, const char *key, bool v);
/* Whether everything so far was written and every object and array is
 * closed. */
WARD_WUR bool jsonw_done(const struct jsonw *w);

#endif
