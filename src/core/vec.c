#include "core/vec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static struct ward_result grow_to(void *items_ptr, size_t *cap, size_t ncap, size_t elem_size)
{
    ENSURE(ncap <= SIZE_MAX / elem_size, WARD_ERR_LIMIT);
    void *old;
    memcpy(&old, items_ptr, sizeof(old));
    /* realloc's result goes to a new variable: on failure the old block stays ours. */
    void *p = realloc(old, ncap * elem_size);
    ENSURE(p != NULL, WARD_ERR_NOMEM);
    memcpy(items_ptr, &p, sizeof(p));
    *cap = ncap;
    return WARD_RESULT_OK;
}

/* see vec.h */
struct ward_result vec_reserve(void *items_ptr, size_t *cap, size_t need, size_t elem_size)
{
    ENSURE(elem_size > 0, WARD_ERR_INVALID);
    if (need <= *cap)
        return WARD_RESULT_OK;
    ENSURE(need <= SIZE_MAX / elem_size, WARD_ERR_LIMIT);
    size_t ncap = *cap ? *cap : VEC_MIN_CAP / 2;
    ncap = ncap <= SIZE_MAX / 2 / elem_size ? ncap * 2 : need;
    if (ncap < need)
        ncap = need;
    return grow_to(items_ptr, cap, ncap, elem_size);
}

/* see vec.h */
struct ward_result vec_reserve_exact(void *items_ptr, size_t *cap, size_t need, size_t elem_size)
{
    ENSURE(elem_size > 0, WARD_ERR_INVALID);
    if (need <= *cap)
        return WARD_RESULT_OK;
    return grow_to(items_ptr, cap, need, elem_size);
}
