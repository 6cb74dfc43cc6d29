/* For the fuzz targets whose parsers take C strings. */
#ifndef WARD_FUZZ_TEXT_H
#define WARD_FUZZ_TEXT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The input with a NUL after it, in memory of its own (free it); NULL if
 * there is no memory. A NUL inside the input stays where it is. */
static inline char *fuzz_text(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return NULL;
    memcpy(text, data, size);
    text[size] = '\0';
    return text;
}

#endif
