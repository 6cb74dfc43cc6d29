/* Listeners, connections and the worker threads that own them.
 *
 * A net_server runs N worker threads, each with its own epoll loop. Accepted
 * sockets are spread across workers; a connection lives on one worker for its
 * whole life and every net_handler callback for it runs on that worker.
 *
 * Bytes move through a transport (src/core/transport.h): plain TCP today,
 * TLS and WebSocket later; the layers above never know which.
 *
 * Output is batched: net_conn_send() appends to the connection's bounded
 * output queue and the owning worker writes everything queued once per loop
 * turn (writev), so many small packets become few system calls. */
#ifndef WARD_NET_NET_H
#define WARD_NET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct net_server;
struct tls_server;
struct tls_identity;
struct net_conn;

/* Callbacks into the layer above (the broker). All run on the connection's
 * owning worker thread; different workers call them concurrently. net never
 * holds one of its own locks while calling them. */
struct net_handler {
    /* A connection was accepted. Returns the upper layer's per-connection
     * pointer, passed to the other callbacks; NULL refuses the connection. */
    void *(*on_open)(void *ctx, struct net_conn *c);
    /* All unread input bytes. Returns how many were consumed; the rest stay
     * and are offered again, with more, when more arrive. */
    size_t (*on_data)(void *user, const uint8_t *data, size_t len);
    /* Exactly once per opened connection, when it is gone: the peer closed,
     * an I/O error, a limit, or net_conn_close(). `why` is a short reason for
     * logs ("peer closed", "connection reset", "output limit" ...). After it
     * returns the net_conn is freed: no other thread may use it any more. */
    void (*on_close)(void *user, const char *why);
};

struct net_config {
    unsigned workers;         /* >= 1 */
    uint32_t max_connections; /* 0 = unlimited; beyond it accept+close and log */
    size_t max_input;         /* bound on buffered unread input per connection */
    size_t max_output;        /* bound on queued output per connection */
};

struct net_server *net_server_new(const struct net_config *cfg, const struct net_handler *h,
                                  void *ctx);
/* Adds a listener. url: "tcp://HOST:PORT" (HOST may be a name, an IPv4
 * address, "[v6]" or "0.0.0.0"/"[::]"). Returns 0, or -1 with a message in
 * err. Must be called before net_server_start(). Port 0 picks a free port:
 * net_server_port() tells which. */
int net_server_listen(struct net_server *s, const char *url, char *err, size_t errlen);
/* Adds a TLS listener ("tls://HOST:PORT", also "ssl://", "mqtts://",
 * "mtls://"): every connection it accepts runs a TLS handshake (bounded by
 * the tls_server's handshake timeout) before the handler sees its bytes. The
 * tls_server must outlive the net_server. */
int net_server_listen_tls(struct net_server *s, const char *url, struct tls_server *tls, char *err,
                          size_t errlen);
/* The bound port of listener i (in the order added). */
uint16_t net_server_port(const struct net_server *s, unsigned i);
/* Starts the worker threads. Returns 0, or -1 (errno set). */
int net_server_start(struct net_server *s);
/* Asks the workers to stop: closes listeners and connections (on_close runs
 * for each). Async-signal-safe. */
void net_server_stop(struct net_server *s);
/* Waits for the workers to finish after net_server_stop(). */
void net_server_join(struct net_server *s);
void net_server_free(struct net_server *s);
/* Number of open connections (all workers). */
uint32_t net_server_conn_count(const struct net_server *s);

/* Queues bytes for sending. Thread-safe: any thread may call it, provided the
 * connection is still open from the caller's point of view (see on_close).
 * Returns 0, or -1 if the output bound would be exceeded (nothing queued;
 * the caller decides: drop a QoS 0 message, or close the connection). */
int net_conn_send(struct net_conn *c, const void *data, size_t len);
/* Bytes queued and not yet written. Thread-safe. */
size_t net_conn_pending(struct net_conn *c);
/* Closes the connection after what is already queued has been written (or
 * a short grace period has passed). Thread-safe; idempotent; on_close
 * follows on the owning worker with `why`. */
void net_conn_close(struct net_conn *c, const char *why);
/* "1.2.3.4:5678" or "[::1]:5678". Valid until on_close returns. */
const char *net_conn_peer(const struct net_conn *c);
/* The index of the listener that accepted the connection. */
unsigned net_conn_listener(const struct net_conn *c);
/* The peer's certificate identity on a TLS connection after its
 * handshake; NULL on plain TCP. */
const struct tls_identity *net_conn_tls_identity(const struct net_conn *c);
/* The TLS settings of the connection's listener, NULL on plain TCP. */
struct tls_server *net_conn_tls_server(const struct net_conn *c);
/* On a TLS connection: whether its peer certificate is now revoked by the
 * listener's CRL (after a reload). */
bool net_conn_tls_revoked(const struct net_conn *c);
/* In-process clients (bridges): takes over one end of a connected socket
 * (a socketpair) as a connection like any accepted one, on worker 0, with
 * `name` as its peer. Its listener index is NET_LISTENER_INTERNAL and
 * net_conn_internal() is true for it, so the layer above can trust it.
 * Call after net_server_start(); thread-safe. Returns 0, or -1 (fd not
 * taken). */
#define NET_LISTENER_INTERNAL 63u
int net_server_adopt(struct net_server *s, int fd, const char *name);
bool net_conn_internal(const struct net_conn *c);
/* The worker (0..workers-1) that owns the connection. */
unsigned net_conn_worker(const struct net_conn *c);

#endif
