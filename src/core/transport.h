/* The transport interface: how a connection moves bytes, whatever carries
 * them (plain TCP, TLS, and WebSocket over either implement the same
 * table).
 *
 * Results of read/write: n > 0 bytes moved; TRANSPORT_EOF (0) the peer
 * closed; TRANSPORT_WANT_READ / TRANSPORT_WANT_WRITE nothing can move until
 * the socket is readable / writable (a TLS transport may want to read in
 * order to write, and the reverse); TRANSPORT_ERROR with a cause available
 * from cause(). The net layer turns the two "want" answers into event-loop
 * interest in one place. */
#ifndef WARD_CORE_TRANSPORT_H
#define WARD_CORE_TRANSPORT_H

#include <stdbool.h>
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
    /* Optional (NULL in transports with no output of their own). A
     * transport may have to send something the layer above never queued
     * (a WebSocket pong or close answer): pending() says so, and flush()
     * writes it, returning 1 once all is written or a WANT/ERROR code, so
     * it goes out even while net's own queue is empty. write() sends it
     * first too, where the framing allows. */
    bool (*pending)(void *t);
    ssize_t (*flush)(void *t);
    /* Optional: whether the next read() has something to return (bytes or
     * the end of the stream) that no socket event would announce, because
     * the transport already took it from the socket. */
    bool (*readable)(void *t);
};

#endif
