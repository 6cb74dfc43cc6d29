/* The transport interface: how a connection moves bytes, whatever carries
 * them (plain TCP today; TLS and WebSocket implement the same table).
 *
 * Results of read/write: n > 0 bytes moved; TRANSPORT_EOF (0) the peer
 * closed; TRANSPORT_WANT_READ / TRANSPORT_WANT_WRITE nothing can move until
 * the socket is readable / writable (a TLS transport may want to read in
 * order to write, and the reverse); TRANSPORT_ERROR with a cause available
 * from cause(). The net layer turns the two "want" answers into event-loop
 * interest in one place. */
#ifndef WARD_CORE_TRANSPORT_H
#define WARD_CORE_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>

#define TRANSPORT_EOF        0
#define TRANSPORT_WANT_READ  (-1)
#define TRANSPORT_WANT_WRITE (-2)
#define TRANSPORT_ERROR      (-3)

struct transport_ops {
    const char *name;
    /* Drives a handshake one step: 1 done, or a WANT/ERROR code. NULL for
     * transports with none. */
    ssize_t (*handshake)(void *t);
    ssize_t (*read)(void *t, void *buf, size_t len);
    ssize_t (*write)(void *t, const void *buf, size_t len);
    /* Why the last call failed ("connection reset by peer", "unknown CA"...). */
    const char *(*cause)(void *t);
    /* Releases the transport's state (not the socket, which net owns). */
    void (*destroy)(void *t);
};

#endif
