/* Listeners, connections and the worker threads that own them.
 *
 * A net_server runs N worker threads, each with its own epoll loop. Accepted
 * sockets are spread across workers; a connection lives on one worker for its
 * whole life and every net_handler callback for it runs on that worker.
 *
 * Bytes move through a transport (src/core/transport.h): plain TCP, TLS,
 * or WebSocket over either (src/net/ws.h); the layers above never know
 * which.
 *
 * Output is batched: net_conn_send() appends to the connection's bounded
 * output queue and the owning worker writes everything queued once per loop
 * turn (writev), so many small packets become few system calls. */
#ifndef WARD_NET_NET_H
#define WARD_NET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/result.h"

struct net_server;
struct tls_server;
struct tls_identity;
struct net_conn;

/* Callbacks into the layer above (the broker). All run on the connection's
 * owning worker thread; different workers call them concurrently. net never
 * holds one of its own locks while calling them. */
struct net_handler {
    /* A connection is ready: accepted, its PROXY header (if any) read,
     * its TLS handshake (if any) done and its WebSocket upgrade (if any)
     * answered with 101, so net_conn_peer() and the TLS
     * identity are final. Returns the upper layer's per-connection
     * pointer, passed to the other callbacks; NULL refuses the connection
     * (on_close is then not called). */
    void *(*on_open)(void *ctx, struct net_conn *c);
    /* All unread input bytes. Returns how many were consumed; the rest stay
     * and are offered again, with more, when more arrive. */
    size_t (*on_data)(void *user, const uint8_t *data, size_t len);
    /* Exactly once per opened connection, when it is gone: the peer closed,
     * an I/O error, a limit, or net_conn_close(). `why` is a short reason for
     * logs ("peer closed", "connection reset", "output limit" ...). After it
     * returns no other thread may use the net_conn any more (net frees it,
     * at once or after a graceful close's drain). */
    void (*on_close)(void *user, const char *why);
    /* Optional. The output queue, after refusing a send (net_conn_send
     * returned -1), has drained to half its bound or less: the layer above
     * may send again (pump its queues, let its producers go). */
    void (*on_drain)(void *user);
};

struct net_config {
    unsigned workers; /* >= 1 */
    /* 0 = unlimited. Beyond it, or beyond what the file-descriptor limit
     * allows (net_server_start raises the soft RLIMIT_NOFILE to the hard one
     * and keeps a margin), a new connection is accepted and closed at once,
     * counted, and logged at most once a second per listener and cause. */
    uint32_t max_connections;
    size_t max_input;  /* bound on buffered unread input per connection */
    size_t max_output; /* bound on queued output per connection (a listener may override) */
    /* A connection whose output stays over its bound this long is closed as
     * a slow consumer (logged, counted); 0: never. A listener may override. */
    uint32_t slow_consumer_timeout_ms;
};

WARD_WUR struct net_server *net_server_new(const struct net_config *cfg,
                                           const struct net_handler *h, void *ctx);
/* Per-listener settings. Zero values take the defaults said here. */
struct net_listen_opts {
    uint32_t max_connections; /* most at once on this listener; 0: only the server's */
    /* PROXY protocol (v1 and v2): a peer in trusted_proxies must begin with
     * a PROXY header, whose source address then stands for the peer in
     * logs, fairness and limits; a PROXY header from any other peer is
     * refused. trusted_proxies: comma-separated CIDR ranges, required. */
    bool proxy_protocol;
    const char *trusted_proxies;
    /* TLS listeners; 0 takes the tls_server's setting. */
    /* From the start of the handshake (at accept, or when a connection that
     * waited gets its slot) to its end. */
    uint32_t handshake_timeout_ms;
    uint32_t max_handshakes; /* handshakes running at once */
    /* A connection that has sent nothing yet is closed after this (0: a
     * quarter of handshake_timeout). */
    uint32_t handshake_idle_timeout_ms;
    /* Connections waiting for a handshake slot (0: 16 x max_handshakes:
     * a waiting connection holds no TLS state, only its socket), and how
     * long one may wait (0: 60 s). */
    uint32_t handshake_queue;
    uint32_t handshake_queue_timeout_ms;
    /* Output bound and slow-consumer timeout (0: the server's). */
    size_t max_output_bytes;
    uint32_t slow_consumer_timeout_ms;
    /* Called on the owning worker right after accept (and after a PROXY
     * header), before any TLS handshake: the bytes it writes to buf (at most
     * cap, which is NET_GREETING_MAX) go to the peer in plaintext before
     * anything else (NATS's INFO). ctx is the server's handler ctx. Returning
     * 0 writes nothing; more than cap closes the connection. NULL: no
     * greeting. On a TLS listener the handshake starts only once the whole
     * greeting is written (a short write waits for the socket, never
     * blocking the worker; the handshake deadline keeps running). On a
     * listener with proxy_protocol, a peer that is not a trusted proxy is
     * greeted at once (it waits for the greeting before it sends anything,
     * so its first byte cannot be waited for); what it sends is then the
     * protocol's to judge. */
    size_t (*greeting)(void *ctx, struct net_conn *c, uint8_t *buf, size_t cap);
    /* TLS listeners: no greeting before the handshake (nats.js
     * handshakeFirst): the layer above sends its greeting from on_open
     * instead (net_conn_greeted() is false there). */
    bool tls_handshake_first;
    /* Bound on buffered unread input for this listener (0: the server's
     * max_input). NATS needs max_payload + max_control_line. */
    size_t max_input;
    /* WebSocket listeners (ws://HOST:PORT/PATH, wss://, nats+ws://,
     * nats+wss://). Each connection, after its TLS handshake if any, stays
     * in the handshake phase until its HTTP upgrade is answered (within
     * handshake_timeout from accept; no handshake slot is taken for it),
     * and a greeting goes as the first frame after the 101. ws:// and
     * wss:// require an MQTT subprotocol (mqtt, mqttv3.1, mqttv3.1.1,
     * mqttv5) and serve the URL's path, "/mqtt" by default; nats+ws(s)://
     * negotiates none and serves any path unless the URL names one. With
     * trusted_proxies (no proxy_protocol needed), the last address of an
     * X-Forwarded-For from such a proxy stands for the peer. */
    const char *ws_path;     /* overrides the URL's path; "" serves any */
    const char *ws_origins;  /* allowed Origins, comma-separated; NULL: any */
    bool ws_same_origin;     /* nats-server's same_origin */
    uint64_t ws_max_message; /* one message's payload, fragments included (0: max_input) */
    size_t ws_max_header;    /* the upgrade request's head (0: 8 KiB) */
};
#define NET_GREETING_MAX 4096

/* Adds a listener. url: "tcp://HOST:PORT" (HOST may be a name, an IPv4
 * address, "[v6]" or "0.0.0.0"/"[::]"), optionally followed by listener
 * settings as a query: "?max_connections=100&proxy_protocol=true&
 * trusted_proxies=10.0.0.0/8,127.0.0.1&handshake_timeout=5s&
 * handshake_idle_timeout=1s&max_handshakes=100&handshake_queue=500&
 * handshake_queue_timeout=30s"
 * (durations as 500ms, 5s, 2m or seconds). Values in opts, when given,
 * win over the query. Returns 0, or -1 with a message in err. Must be
 * called before net_server_start(). Port 0 picks a free port:
 * net_server_port() tells which. */
WARD_WUR int net_server_listen(struct net_server *s, const char *url, char *err, size_t errlen);
/* Adds a TLS listener ("tls://HOST:PORT", also "ssl://", "mqtts://",
 * "mtls://", "nats+tls://", "nats+mtls://", and the WebSocket ones
 * "wss://HOST:PORT/PATH" and "nats+wss://"; plain listeners also take
 * "nats://", "ws://HOST:PORT/PATH" and "nats+ws://"): every connection it accepts runs a TLS
 * handshake (bounded by handshake_timeout) before the handler sees it. At most max_handshakes run
 * at once; more wait in a bounded queue (handshake_queue), and while the slots are contended every
 * source address gets a fair share of them (src/net/hsgate.h). The tls_server must outlive the
 * net_server. */
WARD_WUR int net_server_listen_tls(struct net_server *s, const char *url, struct tls_server *tls,
                                   char *err, size_t errlen);
/* Either of the above (tls NULL: plain TCP) with settings; opts may be NULL. */
WARD_WUR int net_server_listen_opts(struct net_server *s, const char *url, struct tls_server *tls,
                                    const struct net_listen_opts *opts, char *err, size_t errlen);
/* The bound port of listener i (in the order added). */
uint16_t net_server_port(const struct net_server *s, unsigned i);
/* Starts the worker threads. Returns 0, or -1 (errno set). Also raises the
 * soft RLIMIT_NOFILE to the hard limit and works out how many connections
 * the descriptors allow (logged if fewer than max_connections). */
WARD_WUR int net_server_start(struct net_server *s);
/* Stops accepting on every listener at once: no worker accepts any more,
 * connections waiting in a listener's backlog are reset and new ones are
 * refused (the sockets stop listening; their descriptors stay open until
 * net_server_free). Open connections go on. Idempotent; call from one
 * thread (the one that stops the server), after net_server_start(). */
void net_server_stop_accepting(struct net_server *s);
/* Asks the workers to stop: closes listeners and connections (on_close runs
 * for each). Async-signal-safe. */
void net_server_stop(struct net_server *s);
/* Waits for the workers to finish after net_server_stop(). */
void net_server_join(struct net_server *s);
void net_server_free(struct net_server *s);
/* Whether every worker has gone round its event loop within the last
 * max_age_ms (an idle worker turns every 100 ms, a busy one after each
 * batch of events): a liveness check for a service watchdog. false before
 * net_server_start() and after net_server_join(); on false, *stalled (if
 * not NULL) is the first worker found stalled and *age_ms (if not NULL) how
 * long since its last turn. Any thread may call it between
 * net_server_start() and net_server_stop(). */
bool net_server_alive(const struct net_server *s, uint64_t max_age_ms, unsigned *stalled,
                      uint64_t *age_ms);
/* Number of open connections (all workers). */
uint32_t net_server_conn_count(const struct net_server *s);
/* Connections the file-descriptor limit allows (after net_server_start). */
uint32_t net_server_fd_budget(const struct net_server *s);
/* Socket activation: listening sockets someone else bound (systemd's
 * LISTEN_FDS; at most MAX_LISTENERS, the rest are ignored), offered to the
 * listeners added after this call: a listener whose host and port one of
 * them has uses it instead of binding its own. Call before any
 * net_server_listen*. */
void net_server_inherit(struct net_server *s, const int *fds, unsigned n);
/* The offered sockets no listener took (their descriptors in fds, at most
 * cap); they stay open and are the caller's. Returns how many. */
unsigned net_server_inherited_unused(const struct net_server *s, int *fds, unsigned cap);

/* Counters per listener, for $SYS and tests. */
enum net_stat {
    NET_ST_ACCEPTED,         /* connections taken on */
    NET_ST_REFUSED_LIMIT,    /* closed at once: max_connections (listener or server) */
    NET_ST_REFUSED_FDS,      /* closed at once: beyond what descriptors allow */
    NET_ST_ACCEPT_ERRORS,    /* accept() failed (EMFILE, ENFILE, ENOBUFS ...) */
    NET_ST_ACCEPT_PAUSES,    /* accepting paused a moment on a worker after a failure */
    NET_ST_HS_QUEUED,        /* TLS: waited for a handshake slot */
    NET_ST_HS_EVICTED,       /* TLS: gave its slot or place to a fairer source */
    NET_ST_HS_REFUSED,       /* TLS: slots and queue full */
    NET_ST_HS_IDLE_TIMEOUTS, /* TLS: sent nothing within handshake_idle_timeout */
    NET_ST_HS_TIMEOUTS,      /* TLS: not done within handshake_timeout */
    NET_ST_PROXY_ACCEPTED,   /* PROXY headers taken from trusted proxies */
    NET_ST_PROXY_REFUSED,    /* PROXY header untrusted, malformed, or missing */
    NET_ST_GRACEFUL_CLOSES,  /* closes that shut down writing, then drained input */
    NET_ST_SLOW_CONSUMERS,   /* closed: output over its bound for slow_consumer_timeout */
    NET_ST_WS_UPGRADES,      /* WebSocket: upgrades answered with 101 */
    NET_ST_WS_REFUSED,       /* WebSocket: upgrades refused (400, 403, 404 ...) */
    NET_NSTATS
};
/* "accepted", "refused/max_connections", ... as used under $SYS. */
const char *net_stat_name(enum net_stat st);
/* Copies listener i's counters; false if there is no listener i. */
bool net_server_listener_stats(const struct net_server *s, unsigned i, uint64_t out[NET_NSTATS]);
/* A $SYS source (broker_add_sys_source's shape): for each listener, every
 * counter as $SYS/broker/listeners/PORT/NAME, plus .../connections and, on
 * TLS listeners, .../handshakes/active and .../handshakes/waiting. */
void net_server_sys(void *server, void (*emit)(void *ectx, const char *topic, const char *value),
                    void *ectx);

/* Queues bytes for sending. Thread-safe: any thread may call it, provided the
 * connection is still open from the caller's point of view (see on_close).
 * Returns 0, or -1 if the output bound would be exceeded (nothing queued;
 * the caller decides: drop a QoS 0 message, keep a QoS 1 one queued, and
 * wait for on_drain). An empty queue takes any one message, however large,
 * so a message never waits forever for a bound it can never fit. While the
 * output stays over its bound for slow_consumer_timeout the connection is
 * closed as a slow consumer. */
WARD_WUR int net_conn_send(struct net_conn *c, const void *data, size_t len);
/* The same for the protocol's own small replies (acknowledgements, PINGRESP,
 * DISCONNECT), which must not be lost: they may pass the bound, up to twice
 * it; past that the peer is not reading at all and -1 is returned. */
WARD_WUR int net_conn_send_control(struct net_conn *c, const void *data, size_t len);
/* Whether net_conn_send of len bytes would be taken now. A "no" counts as
 * a refused send: on_drain follows when the output drains, and the
 * slow-consumer clock runs. Thread-safe. */
bool net_conn_writable(struct net_conn *c, size_t len);
/* Bytes queued and not yet written. Thread-safe. */
size_t net_conn_pending(struct net_conn *c);
/* Closes the connection after what is already queued has been written (or
 * a short grace period has passed). Thread-safe; idempotent; on_close
 * follows on the owning worker with `why`.
 *
 * The close is graceful: once the output is written, writing is shut down
 * (FIN) and input is read and discarded for a short, bounded time (1 s, at
 * most 1 MiB) until the peer closes too, so a peer still sending does not
 * turn the close into a reset that destroys the last packet (a DISCONNECT
 * with its reason) before the peer read it. on_close runs when writing is
 * shut down; nothing reaches the handler after it. */
void net_conn_close(struct net_conn *c, const char *why);
/* Flow control on input. Called by the owner from within on_data: the
 * unconsumed input is kept; reading goes on only until the input buffer is
 * full (each read offers everything to on_data again, so the handler can
 * look ahead for what it must not leave waiting), then the peer meets
 * TCP's own backpressure. */
void net_conn_hold_input(struct net_conn *c);
/* Thread-safe: the owner offers the kept input to on_data again and goes
 * back to reading. */
void net_conn_resume_input(struct net_conn *c);
/* The connection's slow-consumer timeout (its listener's, else the
 * server's; 0 for in-process connections and when there is none), for the
 * layer above's own stalls. */
uint32_t net_conn_slow_consumer_ms(const struct net_conn *c);
/* The peer as text: "1.2.3.4:5678" or "[::1]:5678" (at most
 * NET_PEER_MAX - 1 characters), an in-process connection's name, or the
 * address a trusted proxy forwarded. It is written into buf (NET_PEER_MAX
 * bytes) when asked for, not kept per connection; returns buf. Call until
 * on_close returns. */
#define NET_PEER_MAX 48
const char *net_conn_peer_format(const struct net_conn *c, char *buf);
/* net_conn_peer_format into a buffer that lives until the end of the
 * enclosing block, for use as an argument: copy what you keep longer. */
#define net_conn_peer(c) net_conn_peer_format((c), (char[NET_PEER_MAX]){0})
/* Whether a greeting (net_listen_opts.greeting) was written to the peer
 * before its TLS handshake, or first on a plain connection. */
bool net_conn_greeted(const struct net_conn *c);
/* A value the layer above keeps on the connection (NATS: the client id the
 * greeting announced), set from the greeting hook or on_open (owner
 * thread); read like net_conn_peer(), until on_close returns. 0 until set. */
void net_conn_set_tag(struct net_conn *c, uint64_t tag);
uint64_t net_conn_tag(const struct net_conn *c);
/* The local address the connection was accepted on ("127.0.0.1" or
 * "::1", without brackets) and its port; false if the socket cannot say. */
bool net_conn_local(const struct net_conn *c, char *host, size_t cap, uint16_t *port);
/* The index of the listener that accepted the connection. */
unsigned net_conn_listener(const struct net_conn *c);
/* The peer's certificate identity on a TLS connection after its
 * handshake, worked out per call into the calling thread's storage (valid
 * until its next call: copy what you keep); NULL on plain TCP. */
const struct tls_identity *net_conn_tls_identity(const struct net_conn *c);
/* The TLS settings of the connection's listener, NULL on plain TCP (also
 * in the greeting hook, before the handshake). */
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
WARD_WUR int net_server_adopt(struct net_server *s, int fd, const char *name);
bool net_conn_internal(const struct net_conn *c);
/* The worker (0..workers-1) that owns the connection. */
unsigned net_conn_worker(const struct net_conn *c);

#endif
