/* Plain TCP: the first transport, listening sockets, and listen URLs. */
#ifndef WARD_NET_TCP_H
#define WARD_NET_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/result.h"

#include "core/transport.h"

/* The TCP transport; its state is a struct tcp_transport. */
extern const struct transport_ops tcp_transport_ops;

struct tcp_transport {
    int fd;
    int err; /* errno of the last failure */
};

/* Splits "tcp://HOST:PORT" (also "mqtt-tcp://", "[v6]:PORT", or a bare
 * "HOST:PORT") into scheme, host and port. Returns 0, or -1 with a message. */
WARD_WUR int tcp_parse_url(const char *url, char *scheme, size_t slen, char *host, size_t hlen,
                           uint16_t *port, char *err, size_t errlen);
/* Creates a non-blocking listening socket. Returns the fd, or -1 with a
 * message naming the address. *bound receives the bound port. */
WARD_WUR int tcp_listen(const char *host, uint16_t port, uint16_t *bound, char *err, size_t errlen);
/* Socket activation: whether fd, a socket someone else bound (systemd),
 * has the address tcp_listen(host, port) would bind: the same family,
 * address and port ("" takes either family's wildcard). Port 0 matches
 * nothing. */
bool tcp_listener_matches(int fd, const char *host, uint16_t port);
/* Takes over such a socket: it must be a listening stream socket; made
 * non-blocking and close-on-exec. Returns 0 with its port in *bound, or -1
 * with why in err. */
int tcp_adopt_listener(int fd, uint16_t *bound, char *err, size_t errlen);
/* Connects to host:port (a name, IPv4 or IPv6 address; every address the
 * name resolves to is tried in turn) within timeout_ms per address. Returns
 * a connected non-blocking socket with TCP_NODELAY, or -1 with a message
 * naming the host and the cause. */
WARD_WUR int tcp_connect(const char *host, uint16_t port, int timeout_ms, char *err, size_t errlen);
/* Formats a peer address as "1.2.3.4:5678" or "[::1]:5678". */
void tcp_peer_name(int fd, char *out, size_t len);

#endif
