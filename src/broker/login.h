/* A connection's login, before the broker lock (src/broker/login.c):
 * the certificate it presented and its password check, which runs on
 * auth's hashing threads while the connection's input is held. Only the
 * connection's own worker calls these. */
#ifndef WARD_BROKER_LOGIN_H
#define WARD_BROKER_LOGIN_H

#include <stdbool.h>

struct auth_request;
struct client;

/* Reads the verified client certificate (c->has_cert, c->cert and what
 * peer_cert_as_username/_clientid make of it) unless it is read already.
 * c->cert is a copy (the TLS layer works the identity out per call), kept
 * only while a CONNECT is handled: client_drop_cert frees it after, so an
 * idle mTLS connection holds no copy; has_cert stays, and a later CONNECT
 * reads the certificate again. */
void client_read_cert(struct client *c);
void client_drop_cert(struct client *c);
/* What peer_cert_as_username / peer_cert_as_clientid make of the
 * certificate read: NULL without one, when not configured, or when it has
 * no such field. Kept with the copy, not in every client. */
const char *client_cert_user(const struct client *c);
const char *client_cert_clientid(const struct client *c);
/* Hands a check to auth's hashing threads. Returns true when the verdict
 * is in c already (c->auth_cause, c->user_verified: no hash was needed,
 * or the queue is full), false when it will come: the caller holds the
 * connection's input, and the check resumes it. */
bool client_auth_start(struct client *c, struct auth_request *q);
/* The connection lets go of its check: on a verdict, or when it closes
 * (the check then finishes into nothing). Returns whether the check had
 * finished, with its verdict in c. */
bool client_auth_end(struct client *c, bool closing);

#endif
