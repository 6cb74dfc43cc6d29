/* The PROXY protocol header (haproxy's proxy-protocol.txt, versions 1 and
 * 2) that a load balancer sends before the client's own bytes, and the
 * address ranges (CIDR) that say which peers may send one.
 *
 * The parser is sans-I/O: it takes the bytes received so far and says
 * "incomplete", "error" or how many bytes the header took; it never reads a
 * socket and never allocates. The caller keeps the rest of the bytes for
 * the protocol that follows (TLS or MQTT). */
#ifndef WARD_NET_PROXY_H
#define WARD_NET_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/result.h"

/* A version 1 header is at most 107 bytes; a version 2 header is 16 bytes
 * and up to 65535 more, but ward refuses any longer than this (a load
 * balancer's address block and usual TLVs take well under 300). */
#define PROXY_V1_MAX  107
#define PROXY_MAX_LEN 1024

enum proxy_status {
    PROXY_DONE,       /* a whole header: `consumed` bytes */
    PROXY_INCOMPLETE, /* a valid prefix; give more bytes */
    PROXY_ERROR,      /* not a PROXY header, or a malformed one; `error` says why */
};

struct proxy_addr {
    int family; /* AF_INET or AF_INET6; AF_UNSPEC: not given */
    uint8_t addr[16];
    uint16_t port;
};

struct proxy_result {
    enum proxy_status status;
    size_t consumed; /* PROXY_DONE: header length */
    int version;     /* 1 or 2 once known */
    bool local;      /* v2 LOCAL or v1 UNKNOWN: keep the socket's address */
    struct proxy_addr src, dst;
    const char *error; /* PROXY_ERROR: a static description */
};

/* Parses the header at the start of buf[0..len). Returns PROXY_INCOMPLETE
 * while buf is a valid prefix shorter than a whole header (including len 0),
 * PROXY_ERROR as soon as the bytes cannot be a valid header (garbage, a bad
 * field, a header longer than PROXY_MAX_LEN). A header that carries an
 * address family ward does not use (v2 AF_UNIX or UNSPEC, v1 UNKNOWN) is
 * PROXY_DONE with `local` set. */
WARD_WUR struct proxy_result proxy_parse(const uint8_t *buf, size_t len);

/* True if the first byte could start a PROXY header ('P' for version 1,
 * '\r' for version 2). Neither is a valid first byte of TLS or MQTT. */
bool proxy_maybe_header(uint8_t first);

/* An address range: "10.0.0.0/8", "::1/128", or a bare address (/32, /128). */
struct proxy_cidr {
    int family;
    uint8_t addr[16];
    unsigned bits;
};

/* Parses one range. Returns 0, or -1 if malformed. Host bits are cleared. */
WARD_WUR int proxy_cidr_parse(const char *s, struct proxy_cidr *out);
/* Whether addr (4 bytes for AF_INET, 16 for AF_INET6) is in the range. An
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches IPv4 ranges. */
bool proxy_cidr_match(const struct proxy_cidr *r, int family, const uint8_t *addr);

/* Formats an address and port as net_conn_peer() does: "1.2.3.4:5678" or
 * "[::1]:5678". */
void proxy_addr_format(const struct proxy_addr *a, char *out, size_t len);

#endif
