/* Growable arrays: the one place that grows a `T *items` with a capacity.
 *
 * An array is a pointer, a count kept by the caller and a capacity kept here:
 *
 *     GUARD(VEC_RESERVE(s->subs, s->capsubs, s->nsubs + 1));
 *     s->subs[s->nsubs++] = x;
 *
 * Both functions check `need * elem_size` for overflow and never lose the old
 * block: on failure `*items` and `*cap` are left as they were, so the caller
 * still owns (and frees) what it had. */
#ifndef WARD_CORE_VEC_H
#define WARD_CORE_VEC_H

#include <stddef.h>

#include "core/result.h"

/* The capacity a first growth gives. */
#define VEC_MIN_CAP 8

/* Makes room for at least `need` elements of `elem_size` bytes in the array
 * whose address is `items_ptr` (a `T **`), growing it geometrically (twice the
 * old capacity, VEC_MIN_CAP at first, at least `need`). Does nothing when
 * `*cap >= need`. Fails with WARD_ERR_LIMIT when the size overflows, with
 * WARD_ERR_NOMEM when allocation fails, with WARD_ERR_INVALID for a zero
 * `elem_size`. `items_ptr` is a `void *` rather than `void **` so that any
 * `T **` can be passed without a cast; the pointer is read and written with
 * memcpy, which is valid for every object pointer type. */
WARD_WUR struct ward_result vec_reserve(void *items_ptr, size_t *cap, size_t need,
                                        size_t elem_size);

/* As vec_reserve, but grows to exactly `need` elements: for buffers sized to
 * the largest thing they have held (a packet), where doubling would waste. */
WARD_WUR struct ward_result vec_reserve_exact(void *items_ptr, size_t *cap, size_t need,
                                              size_t elem_size);

/* The element size comes from the array's own type. */
#define VEC_RESERVE(items, cap, need) vec_reserve(&(items), &(cap), (need), sizeof(*(items)))
#define VEC_RESERVE_EXACT(items, cap, need)                                                        \
    vec_reserve_exact(&(items), &(cap), (need), sizeof(*(items)))

#endif
