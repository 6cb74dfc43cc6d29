/* PROXY protocol headers and CIDR ranges; see proxy.h. */
#include "net/proxy.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[] = "PROXY ";

static struct proxy_result fail(int version, const char *why)
{
    return (struct proxy_result){.status = PROXY_ERROR, .version = version, .error = why};
}

static struct proxy_result incomplete(int version)
{
    return (struct proxy_result){.status = PROXY_INCOMPLETE, .version = version};
}

bool proxy_maybe_header(uint8_t first)
{
    return first == (uint8_t)v1_sig[0] || first == v2_sig[0];
}

/* ---- version 1: "PROXY TCP4 1.2.3.4 5.6.7.8 1234 80\r\n" ---- */

/* A port: 1 to 5 digits, no leading zero, at most 65535. */
static bool v1_port(const char *s, uint16_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return false;
    unsigned long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

/* Splits the line (NUL-terminated, no CRLF) at single spaces. Returns the
 * number of fields, or -1 if there are more than max or an empty field. */
static int v1_split(char *line, char **f, int max)
{
    int n = 0;
    for (char *p = line;; p++) {
        if (n == max)
            return -1;
        f[n++] = p;
        p = strchr(p, ' ');
        if (!p)
            break;
        *p = '\0';
    }
    for (int i = 0; i < n; i++)
        if (!*f[i])
            return -1;
    return n;
}

static struct proxy_result v1_fields(char *line, size_t consumed)
{
    struct proxy_result r = {.status = PROXY_DONE, .consumed = consumed, .version = 1};
    char *f[6];
    if (strncmp(line, "PROXY UNKNOWN", 13) == 0 && (line[13] == '\0' || line[13] == ' ')) {
        r.local = true; /* the rest of the line is ignored (spec 2.1) */
        return r;
    }
    int n = v1_split(line, f, 6);
    if (n != 6)
        return fail(1, "v1: expected PROXY, protocol, two addresses and two ports");
    int fam = strcmp(f[1], "TCP4") == 0 ? AF_INET : strcmp(f[1], "TCP6") == 0 ? AF_INET6 : 0;
    if (!fam)
        return fail(1, "v1: protocol is not TCP4, TCP6 or UNKNOWN");
    if (inet_pton(fam, f[2], r.src.addr) != 1 || inet_pton(fam, f[3], r.dst.addr) != 1)
        return fail(1, "v1: bad address");
    if (!v1_port(f[4], &r.src.port) || !v1_port(f[5], &r.dst.port))
        return fail(1, "v1: bad port");
    r.src.family = r.dst.family = fam;
    return r;
}

static struct proxy_result parse_v1(const uint8_t *buf, size_t len)
{
    size_t n = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
    for (size_t i = 0; i < n; i++) {
        if (i < sizeof(v1_sig) - 1 && buf[i] != (uint8_t)v1_sig[i])
            return fail(1, "not a PROXY header");
        if (buf[i] == '\n')
            return fail(1, "v1: line feed without carriage return");
        if (buf[i] == '\0')
            return fail(1, "v1: NUL byte");
        if (buf[i] != '\r')
            continue;
        if (i + 1 == len)
            return incomplete(1);
        if (buf[i + 1] != '\n')
            return fail(1, "v1: carriage return without line feed");
        char line[PROXY_V1_MAX];
        memcpy(line, buf, i);
        line[i] = '\0';
        return v1_fields(line, i + 2);
    }
    return len >= PROXY_V1_MAX ? fail(1, "v1: header longer than 107 bytes") : incomplete(1);
}

/* ---- version 2: binary ---- */

static struct proxy_result v2_inet(const uint8_t *b, size_t alen, int fam, size_t total)
{
    struct proxy_result r = {.status = PROXY_DONE, .consumed = total, .version = 2};
    size_t a = fam == AF_INET ? 4 : 16;
    if (alen < 2 * a + 4)
        return fail(2, "v2: address block too short for its family");
    r.src.family = r.dst.family = fam;
    memcpy(r.src.addr, b, a);
    memcpy(r.dst.addr, b + a, a);
    r.src.port = (uint16_t)(b[2 * a] << 8 | b[2 * a + 1]);
    r.dst.port = (uint16_t)(b[2 * a + 2] << 8 | b[2 * a + 3]);
    return r;
}

static struct proxy_result parse_v2(const uint8_t *buf, size_t len)
{
    size_t n = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
    if (memcmp(buf, v2_sig, n) != 0)
        return fail(2, "not a PROXY header");
    if (len < 16)
        return incomplete(2);
    if (buf[12] >> 4 != 2)
        return fail(2, "v2: unknown version");
    size_t alen = (size_t)buf[14] << 8 | buf[15], total = 16 + alen;
    if (total > PROXY_MAX_LEN)
        return fail(2, "v2: header longer than ward accepts");
    unsigned cmd = buf[12] & 0x0F, fam = buf[13] >> 4, proto = buf[13] & 0x0F;
    if (cmd > 1)
        return fail(2, "v2: unknown command");
    if (fam > 3 || proto > 2)
        return fail(2, "v2: unknown address family or transport");
    if (len < total)
        return incomplete(2);
    struct proxy_result local = {
        .status = PROXY_DONE, .consumed = total, .version = 2, .local = true};
    /* LOCAL: the proxy's own connection (a health check); the addresses, if
     * any, are ignored. UNSPEC and UNIX carry nothing ward can use. */
    if (cmd == 0 || fam == 0 || fam == 3)
        return local;
    if (proto != 1)
        return fail(2, "v2: not a stream (TCP) connection");
    return v2_inet(buf + 16, alen, fam == 1 ? AF_INET : AF_INET6, total);
}

/* see proxy.h */
struct proxy_result proxy_parse(const uint8_t *buf, size_t len)
{
    if (len == 0)
        return incomplete(0);
    if (buf[0] == (uint8_t)v1_sig[0])
        return parse_v1(buf, len);
    if (buf[0] == v2_sig[0])
        return parse_v2(buf, len);
    return fail(0, "not a PROXY header");
}

/* ---- address ranges ---- */

/* see proxy.h */
int proxy_cidr_parse(const char *s, struct proxy_cidr *out)
{
    char host[64];
    const char *slash = strchr(s, '/');
    size_t hl = slash ? (size_t)(slash - s) : strlen(s);
    if (hl == 0 || hl >= sizeof(host))
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    memset(out, 0, sizeof(*out));
    out->family = strchr(host, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(out->family, host, out->addr) != 1)
        return -1;
    unsigned max = out->family == AF_INET ? 32 : 128;
    out->bits = max;
    if (slash) {
        char *end;
        unsigned long b = strtoul(slash + 1, &end, 10);
        if (!slash[1] || *end || slash[1] < '0' || slash[1] > '9' || b > max)
            return -1;
        out->bits = (unsigned)b;
    }
    for (unsigned i = out->bits; i < max; i++)
        out->addr[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
    return 0;
}

/* see proxy.h */
bool proxy_cidr_match(const struct proxy_cidr *r, int family, const uint8_t *addr)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    if (family == AF_INET6 && r->family == AF_INET && memcmp(addr, mapped, 12) == 0) {
        family = AF_INET;
        addr += 12;
    }
    if (family != r->family)
        return false;
    unsigned full = r->bits / 8, rest = r->bits % 8;
    if (memcmp(addr, r->addr, full) != 0)
        return false;
    if (!rest)
        return true;
    uint8_t mask = (uint8_t)(0xFF00u >> rest);
    return (addr[full] & mask) == r->addr[full];
}

/* see proxy.h */
void proxy_addr_format(const struct proxy_addr *a, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (a->family == AF_INET || a->family == AF_INET6)
        inet_ntop(a->family, a->addr, host, sizeof(host));
    if (a->family == AF_INET6)
        snprintf(out, len, "[%s]:%u", host, a->port);
    else
        snprintf(out, len, "%s:%u", host, a->port);
}
