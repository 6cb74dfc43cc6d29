/* Base64 (RFC 4648), for the few places a protocol carries binary as text:
 * NKey signatures, MQTT correlation data in a NATS header. */
#ifndef WARD_CORE_BASE64_H
#define WARD_CORE_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Characters base64_encode writes for n bytes (padding included), without
 * the terminating NUL. */
#define BASE64_LEN(n) ((((n) + 2) / 3) * 4)

/* The standard alphabet with padding, NUL-terminated; out holds
 * BASE64_LEN(n) + 1. Returns the length. */
size_t base64_encode(const uint8_t *in, size_t n, char *out);
/* Either alphabet (standard or URL), padding optional but, if present,
 * right; leftover bits must be zero, so each value has one spelling.
 * Returns the decoded length, or -1 if the text is not base64 or does not
 * fit in cap. */
long base64_decode(const char *in, size_t n, uint8_t *out, size_t cap);

#endif
