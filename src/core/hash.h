/* FNV-1a, the one non-cryptographic hash for ward's in-memory tables (session
 * ids, retained topic levels, handshake sources, failed-login hosts). Not for
 * anything an attacker may choose to collide where that matters: tables keyed
 * by peer input bound their chains or evict on collision. */
#ifndef WARD_CORE_HASH_H
#define WARD_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_FNV1A_OFFSET 14695981039346656037ull
#define HASH_FNV1A_PRIME  1099511628211ull

/* 64-bit FNV-1a of `n` bytes at `p` (`p` may be NULL when `n` is 0). */
uint64_t hash_fnv1a(const void *p, size_t n);

/* As hash_fnv1a, starting from the offset basis xor `seed`: a per-table or
 * per-parent seed separates otherwise equal keys. A zero seed gives hash_fnv1a. */
uint64_t hash_fnv1a_seeded(const void *p, size_t n, uint64_t seed);

/* hash_fnv1a of a NUL-terminated string, without its NUL. */
uint64_t hash_fnv1a_str(const char *s);

#endif
