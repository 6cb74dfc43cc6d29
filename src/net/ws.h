/* WebSocket (RFC 6455) as a transport over another one (TCP or TLS), so
 * the MQTT and NATS code above net never knows.
 *
 * The transport first serves the HTTP/1.1 upgrade (its handshake op): it
 * reads the request from the inner transport, bounded by the listener's
 * http_limits, checks it (src/http/http.h: ws_upgrade_check, plus
 * same_origin) and writes the 101, or a refusal with its reason. Then its
 * read op returns the payload bytes of the peer's binary frames as one byte
 * stream (fragments and frame boundaries do not matter to MQTT or NATS) and
 * its write op sends what it is given as one unmasked binary frame; a frame
 * partly written is continued by the next write call, which net makes with
 * the unsent bytes still at the head of its queue.
 *
 * Frames are encoded and decoded here, not with libwslay (measured in
 * docs/ARCHITECTURE.md): its decoder copied twice and unmasked a byte at a
 * time (a fifth of the broker's CPU under load), and its context, kept per
 * connection only to format a 2-10 byte header, carries a 4 KiB receive
 * buffer (4.2 KB of a WebSocket connection's ~10 KB). Incoming payload is
 * unmasked a word at a time straight into net's input buffer.
 * Refused: text frames (close 1003), unmasked
 * client frames, reserved bits, unknown opcodes, a continuation out of
 * place (close 1002), a message beyond max_message across its fragments
 * (close 1009). A ping is answered with a pong carrying its payload; a close
 * is answered with a close carrying its code, then read returns
 * TRANSPORT_EOF. Such answers are the transport's own output: pending()
 * says there is some, flush() writes it, so nothing waits for net's queue.
 */
#ifndef WARD_NET_WS_H
#define WARD_NET_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/result.h"
#include "core/transport.h"
#include "http/http.h"

/* The subprotocols of MQTT over WebSocket, most preferred first. */
extern const char *const ws_mqtt_protocols[];
#define WS_MQTT_NPROTOCOLS 4

#define WS_DEFAULT_MAX_HEADER (8u * 1024)

/* A listener's rules; must outlive its connections. */
struct ws_settings {
    struct ws_upgrade_rules rules;
    /* nats-server's same_origin: a browser's Origin must name the host the
     * request was sent to (its Host header). */
    bool same_origin;
    struct http_limits http; /* the upgrade request's bounds */
    uint64_t max_message;    /* payload of one message, all fragments (> 0) */
};

extern const struct transport_ops ws_transport_ops;

/* A WebSocket over inner (whose state net keeps owning). NULL: no memory. */
WARD_WUR void *ws_transport_new(const struct ws_settings *s, const struct transport_ops *inner_ops,
                                void *inner);
/* A close the server starts (net closing an open connection): queues a
 * close frame with code and writes what it can of it at once. */
void ws_transport_close(void *t, unsigned code);
/* After the upgrade: the status answered (101, or the refusal's code), 0
 * if no complete request was seen. */
int ws_transport_status(void *t);
/* The request path the client asked for, escaped for a log line ("" if no
 * request was parsed). */
const char *ws_transport_path(void *t);
/* The last address of the request's X-Forwarded-For (the one the nearest
 * proxy added), or NULL if it had none; net decides whether to believe it
 * (only from a trusted proxy). */
const char *ws_transport_forwarded(void *t);
/* The subprotocol chosen, NULL if none. */
const char *ws_transport_protocol(void *t);

#endif
