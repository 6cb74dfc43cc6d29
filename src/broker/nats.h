/* The NATS client protocol on the broker's NATS listeners
 * (src/broker/nats.c), beside broker.c's MQTT: broker.c's net callbacks
 * hand a NATS listener's connections to these. Calls route.c, nats_out.c,
 * login.c and session.c, never broker.c. */
#ifndef WARD_BROKER_NATS_H
#define WARD_BROKER_NATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct client;

/* A new connection on a NATS listener: its NATS state and the session
 * that carries its identity (never stored, never in the session table);
 * sends INFO unless net sent it before the TLS handshake. Returns false
 * on allocation failure (the caller refuses the connection). Without the
 * broker lock. */
bool nats_open(struct broker *b, struct client *c);
/* on_data for a NATS connection (takes the broker lock itself). */
size_t nats_data(struct client *c, const uint8_t *data, size_t len);
/* Under the broker lock, at shutdown: sends nats-server's lame duck INFO
 * ("ldm":true) and closes the connection once it is written. */
void nats_lame_duck(struct client *c);
/* Under the broker lock, when the connection is gone: its subscriptions
 * leave the tree. */
void nats_closed(struct client *c);
/* After the lock: frees what nats_open made. */
void nats_free(struct client *c);
/* Housekeeping, under the broker lock: server PINGs, the stale
 * connection rule and the authentication timeout. */
void nats_tick(struct broker *b, struct client *c, uint64_t now);

#endif
