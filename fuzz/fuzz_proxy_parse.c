/* libFuzzer target for the PROXY protocol header parser (src/net/proxy.c).
 *
 * The input is the first bytes of a connection. The parser's answer must be
 * consistent: a whole header takes at least the 15 bytes of the shortest
 * ("PROXY UNKNOWN\r\n") and never more than it was given or PROXY_MAX_LEN;
 * every prefix of a header is "incomplete"; an error is never followed by
 * success on a longer input, and the input is never read past its end (the
 * bytes are copied into a buffer of exactly their length for ASan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    struct proxy_result r = proxy_parse(buf, size);
    if (r.status == PROXY_DONE) {
        if (r.consumed < 15 || r.consumed > size || r.consumed > PROXY_MAX_LEN)
            abort();
        if (!r.local && r.src.family != r.dst.family)
            abort();
        char name[80];
        proxy_addr_format(&r.src, name, sizeof(name));
        /* Every strict prefix is incomplete. */
        for (size_t i = 0; i < r.consumed; i++)
            if (proxy_parse(buf, i).status != PROXY_INCOMPLETE)
                abort();
    } else if (r.status == PROXY_ERROR) {
        if (!r.error)
            abort();
    } else if (r.status != PROXY_INCOMPLETE) {
        abort();
    }
    /* The same bytes as a trusted-proxy range must not crash either. */
    char text[64];
    size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
    memcpy(text, data, n);
    text[n] = '\0';
    struct proxy_cidr c;
    if (proxy_cidr_parse(text, &c) == 0 && c.bits > 128)
        abort();
    free(buf);
    return 0;
}
