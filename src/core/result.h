/* Result type and the GUARD/ENSURE macros that keep the main path straight.
 *
 * A fallible function returns `struct ward_result`; the compiler refuses to let
 * a caller drop it. GUARD(x) returns x's failure to our caller; ENSURE(cond, e)
 * fails with e when cond is false. */
#ifndef WARD_CORE_RESULT_H
#define WARD_CORE_RESULT_H

#include <stdbool.h>

enum ward_err {
    WARD_OK = 0,
    WARD_ERR_NOMEM,
    WARD_ERR_INVALID, /* bad argument or input */
    WARD_ERR_IO,      /* system call failed; errno says why */
    WARD_ERR_LIMIT,   /* a configured bound was hit */
    WARD_ERR_CLOSED,  /* peer or object is gone */
    WARD_ERR_AGAIN,   /* try again later (would block) */
};

struct ward_result {
    enum ward_err err;
};

#define WARD_WUR __attribute__((warn_unused_result))

#define WARD_RESULT_OK     ((struct ward_result){WARD_OK})
#define WARD_RESULT_ERR(e) ((struct ward_result){(e)})

static inline bool ward_ok(struct ward_result r)
{
    return r.err == WARD_OK;
}

#define GUARD(x)                                                                                   \
    do {                                                                                           \
        struct ward_result guard__r = (x);                                                         \
        if (guard__r.err != WARD_OK)                                                               \
            return guard__r;                                                                       \
    } while (0)

#define ENSURE(cond, e)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return WARD_RESULT_ERR(e);                                                             \
    } while (0)

const char *ward_err_str(enum ward_err e);

#endif
