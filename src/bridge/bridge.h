/* Bridges: outbound MQTT links from this broker to upstream brokers
 * (another ward, Mosquitto, EMQX, a NATS cluster's MQTT listener), over TCP,
 * TLS or mutual TLS, configured as NanoMQ's `bridges.mqtt.NAME` blocks.
 *
 * A bridge is two MQTT client connections joined by one thread: the local
 * side is an in-process MQTT 5 client of this broker over a socketpair
 * (net_server_adopt(): the broker needs no bridge code and applies its own
 * rules and QoS flows), the upstream side a TCP or TLS connection that is
 * re-established with exponential backoff and jitter whenever it drops.
 *
 * - forwards: the local side subscribes to each rule's local_topic (No
 *   Local, Retain As Published); each message goes upstream under the
 *   mapped topic (src/bridge/topic_map.h) at the rule's QoS.
 * - subscription: the upstream side subscribes to each remote_topic (MQTT
 *   5: No Local); each message is published here under the mapped topic.
 * - No loops: the local side never receives what it published (No Local);
 *   upstream, MQTT 5 No Local or, for 3.1.1, the bridge flag in CONNECT
 *   (protocol level 0x84, try_private) does the same.
 * - The backlog is the broker's own session "$bridge/NAME" (stored with
 *   persistence on, owner "internal"): a local QoS 1/2 message is
 *   acknowledged here only once the upstream acknowledged it (QoS 2 both
 *   ways: passed through end to end under the broker's packet id), so the
 *   broker keeps it until then, through a kill -9 too. The bridge holds at
 *   most min(512, max_send_queue_len) of them, in order, at most
 *   max_inflight unacknowledged upstream; after a reconnect what was in
 *   flight is sent again (DUP on a resumed session).
 * - While the link is down the local side disconnects: the broker queues
 *   for its offline session (bounded by mqtt.max_mqueue_len), and it
 *   resumes when the link is up. Messages from the upstream are
 *   acknowledged upstream only once the local broker acknowledged them.
 * - Credentials (certificate, key, CA) are read again at every connection
 *   attempt and on bridge_reload(); a set that fails to load is logged and
 *   the last good one stays in use.
 *
 * Threading: one thread per bridge; bridge_status() may be called from any
 * thread. */
#ifndef WARD_BRIDGE_BRIDGE_H
#define WARD_BRIDGE_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

struct bridge;

/* Checks a bridge block beyond what the schema checks: the server URL and
 * scheme, the topic rules, TLS files readable and loadable. Returns 0, or -1
 * with "bridges.mqtt.NAME: cause" in err. */
int bridge_check(const struct cfg_bridge *cfg, char *err, size_t errlen);

/* Creates the bridge (cfg must outlive it). local_fd is this side's end of
 * a connected socketpair whose other end the broker serves; the bridge
 * owns it from now on. Returns NULL with a reason in err. */
struct bridge *bridge_new(const struct cfg_bridge *cfg, int local_fd, char *err, size_t errlen);
/* How to get a new local socket if the connection to this broker ends
 * (the broker closed it: its output bound): fn returns this side's end of
 * a new socketpair the broker serves, or -1. Without it the bridge stops
 * then. Call before bridge_start(). */
void bridge_set_reattach(struct bridge *b, int (*fn)(void *ctx, const char *name), void *ctx);
/* Starts the bridge's thread. Returns 0 or -1. */
int bridge_start(struct bridge *b);
/* Re-reads the TLS files now (SIGHUP); the next connection uses them.
 * Thread-safe. */
void bridge_reload(struct bridge *b);
/* Disconnects from the upstream (DISCONNECT, normal) and stops the thread. */
void bridge_stop(struct bridge *b);
void bridge_free(struct bridge *b);

struct bridge_status {
    char name[128];
    char server[256];
    bool connected;
    uint64_t since;       /* unix time of the last connect or disconnect */
    uint64_t sent;        /* messages sent upstream and acknowledged (QoS 0: sent) */
    uint64_t received;    /* messages from the upstream published here */
    uint64_t dropped;     /* lost: queue full, QoS 0 while down, refused upstream */
    uint64_t connects;    /* successful connections */
    uint32_t queued;      /* QoS 1/2 messages waiting for (or in flight to) the upstream */
    char last_error[256]; /* the last failure, "" if none */
};
void bridge_status(struct bridge *b, struct bridge_status *out);

#endif
