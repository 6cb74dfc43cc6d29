#include "core/result.h"

/* see result.h */
const char *ward_err_str(enum ward_err e)
{
    switch (e) {
    case WARD_OK:
        return "ok";
    case WARD_ERR_NOMEM:
        return "out of memory";
    case WARD_ERR_INVALID:
        return "invalid input";
    case WARD_ERR_IO:
        return "I/O error";
    case WARD_ERR_LIMIT:
        return "limit reached";
    case WARD_ERR_CLOSED:
        return "closed";
    case WARD_ERR_AGAIN:
        return "try again";
    default:
        return "unknown error";
    }
}
