/* A growable byte buffer with a read cursor and a hard capacity limit.
 *
 * Bytes live in data[rpos, wpos). Appending grows the allocation up to `limit`
 * (0 = no limit) and fails with WARD_ERR_LIMIT beyond it, so a peer can never
 * make one buffer grow without bound. The caller owns the struct. */
#ifndef WARD_CORE_BUF_H
#define WARD_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "core/result.h"

struct buf {
    uint8_t *data;
    size_t rpos;
    size_t wpos;
    size_t cap;
    size_t limit;
};

void buf_init(struct buf *b, size_t limit);
void buf_free(struct buf *b);
/* Frees the storage of an empty buffer, keeping its limit: an idle
 * connection holds no buffer memory. Does nothing if bytes are queued. */
void buf_release(struct buf *b);

static inline size_t buf_len(const struct buf *b)
{
    return b->wpos - b->rpos;
}
static inline const uint8_t *buf_head(const struct buf *b)
{
    return b->data + b->rpos;
}

/* Ensures room for n more bytes after wpos; may compact. */
WARD_WUR struct ward_result buf_reserve(struct buf *b, size_t n);
WARD_WUR struct ward_result buf_append(struct buf *b, const void *p, size_t n);
/* Pointer to the writable tail (after buf_reserve) and its size. */
static inline uint8_t *buf_tail(struct buf *b)
{
    return b->data + b->wpos;
}
static inline size_t buf_room(const struct buf *b)
{
    return b->cap - b->wpos;
}
/* Marks n bytes written at the tail. */
void buf_commit(struct buf *b, size_t n);
/* Drops n bytes from the head; resets positions when empty. */
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);

#endif
