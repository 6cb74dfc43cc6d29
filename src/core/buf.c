#include "core/buf.h"

#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t limit)
{
    memset(b, 0, sizeof(*b));
    b->limit = limit;
}

void buf_free(struct buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

void buf_release(struct buf *b)
{
    if (buf_len(b) || !b->data)
        return;
    free(b->data);
    b->data = NULL;
    b->rpos = b->wpos = b->cap = 0;
}

struct ward_result buf_reserve(struct buf *b, size_t n)
{
    if (b->cap - b->wpos >= n)
        return WARD_RESULT_OK;
    size_t len = buf_len(b);
    ENSURE(b->limit == 0 || (len <= b->limit && n <= b->limit - len), WARD_ERR_LIMIT);
    /* Compact first: cheaper than growing when the head has been consumed. */
    if (b->rpos > 0 && b->cap - len >= n) {
        memmove(b->data, b->data + b->rpos, len);
        b->rpos = 0;
        b->wpos = len;
        return WARD_RESULT_OK;
    }
    size_t want = len + n;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < want)
        ncap *= 2;
    if (b->limit && ncap > b->limit)
        ncap = b->limit;
    if (b->rpos > 0) {
        memmove(b->data, b->data + b->rpos, len);
        b->rpos = 0;
        b->wpos = len;
    }
    uint8_t *p = realloc(b->data, ncap);
    ENSURE(p != NULL, WARD_ERR_NOMEM);
    b->data = p;
    b->cap = ncap;
    return WARD_RESULT_OK;
}

struct ward_result buf_append(struct buf *b, const void *p, size_t n)
{
    GUARD(buf_reserve(b, n));
    if (n)
        memcpy(b->data + b->wpos, p, n);
    b->wpos += n;
    return WARD_RESULT_OK;
}

void buf_commit(struct buf *b, size_t n)
{
    b->wpos += n;
}

void buf_consume(struct buf *b, size_t n)
{
    b->rpos += n;
    if (b->rpos >= b->wpos)
        b->rpos = b->wpos = 0;
}

void buf_reset(struct buf *b)
{
    b->rpos = b->wpos = 0;
}
