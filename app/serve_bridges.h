/* The configured bridges of `ward serve`: started after the listeners,
 * reloaded on SIGHUP, stopped before the broker, and published under
 * $SYS/broker/bridge/NAME/. */
#ifndef WARD_APP_SERVE_BRIDGES_H
#define WARD_APP_SERVE_BRIDGES_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"

struct broker;
struct net_server;
struct serve_bridges;

/* Checks every enabled bridge of cfg (server URL, topic rules, TLS files).
 * Returns 0, or -1 after printing each problem to stderr. */
int serve_bridges_check(const struct ward_config *cfg);
/* Starts every enabled bridge; cfg must outlive them. NULL on failure
 * (printed). With no bridges configured, an empty set. */
struct serve_bridges *serve_bridges_start(const struct ward_config *cfg, struct net_server *s,
                                          struct broker *b);
void serve_bridges_reload(struct serve_bridges *sb);
/* At shutdown, before serve_bridges_stop: waits until every connected
 * bridge has had the messages its session holds acknowledged upstream, at
 * most timeout_ms. True if none is left (a bridge whose link is down is
 * not waited for: its backlog stays in its stored session). */
bool serve_bridges_drain(struct serve_bridges *sb, struct broker *br, uint32_t timeout_ms);
/* Stops them all (NULL is fine); their status stays readable. */
void serve_bridges_stop(struct serve_bridges *sb);
/* Frees them, after the broker that publishes their status is gone. */
void serve_bridges_free(struct serve_bridges *sb);
/* The running bridges (for the admin API); *n is 0 with sb NULL. */
struct bridge *const *serve_bridges_list(const struct serve_bridges *sb, size_t *n);

#endif
