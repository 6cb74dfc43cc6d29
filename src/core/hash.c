#include "core/hash.h"

/* see hash.h */
uint64_t hash_fnv1a_seeded(const void *p, size_t n, uint64_t seed)
{
    const uint8_t *b = p;
    uint64_t h = HASH_FNV1A_OFFSET ^ seed;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * HASH_FNV1A_PRIME;
    return h;
}

/* see hash.h */
uint64_t hash_fnv1a(const void *p, size_t n)
{
    return hash_fnv1a_seeded(p, n, 0);
}

/* see hash.h */
uint64_t hash_fnv1a_str(const char *s)
{
    uint64_t h = HASH_FNV1A_OFFSET;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * HASH_FNV1A_PRIME;
    return h;
}
