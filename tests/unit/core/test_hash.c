#include <stdint.h>

#include "core/hash.h"
#include "test.h"

TEST(known_vectors)
{
    /* Published FNV-1a 64-bit test vectors. */
    ASSERT(hash_fnv1a("", 0) == 0xcbf29ce484222325ull);
    ASSERT(hash_fnv1a(NULL, 0) == 0xcbf29ce484222325ull);
    ASSERT(hash_fnv1a("a", 1) == 0xaf63dc4c8601ec8cull);
    ASSERT(hash_fnv1a("foobar", 6) == 0x85944171f73967e8ull);
}

TEST(string_form_matches)
{
    ASSERT(hash_fnv1a_str("foobar") == hash_fnv1a("foobar", 6));
    ASSERT(hash_fnv1a_str("") == hash_fnv1a("", 0));
}

TEST(seeded)
{
    ASSERT(hash_fnv1a_seeded("abc", 3, 0) == hash_fnv1a("abc", 3));
    ASSERT(hash_fnv1a_seeded("abc", 3, 1) != hash_fnv1a("abc", 3));
    ASSERT(hash_fnv1a_seeded("abc", 3, 1) != hash_fnv1a_seeded("abc", 3, 2));
}

TEST(length_matters)
{
    /* Embedded NUL bytes count; a prefix hashes differently. */
    ASSERT(hash_fnv1a("a\0", 2) != hash_fnv1a("a", 1));
    ASSERT(hash_fnv1a("ab", 1) == hash_fnv1a("a", 1));
}

int main(void)
{
    RUN(known_vectors);
    RUN(string_form_matches);
    RUN(seeded);
    RUN(length_matters);
    TEST_DONE();
}
