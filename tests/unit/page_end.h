/* Bytes that end exactly at a page boundary, before a page that cannot be
 * read: a parser given them that reads one byte too far crashes the test.
 * Every parser is tested this way (STYLE.md, Tests). */
#ifndef WARD_PAGE_END_H
#define WARD_PAGE_END_H

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test.h"

struct page_end {
    uint8_t *map;
    size_t page;
    uint8_t *end; /* one past the last readable byte */
};

/* Maps a readable page followed by an inaccessible one. */
static inline void page_end_open(struct page_end *pe)
{
    pe->page = (size_t)sysconf(_SC_PAGESIZE);
    pe->map = mmap(NULL, pe->page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT(pe->map != MAP_FAILED);
    ASSERT_EQ(mprotect(pe->map + pe->page, pe->page, PROT_NONE), 0);
    pe->end = pe->map + pe->page;
}

/* Copies n bytes so that they end at the boundary; returns where they start. */
static inline uint8_t *page_end_put(struct page_end *pe, const void *data, size_t n)
{
    ASSERT(n <= pe->page);
    memcpy(pe->end - n, data, n);
    return pe->end - n;
}

static inline void page_end_close(struct page_end *pe)
{
    munmap(pe->map, pe->page * 2);
}

#endif
