/* Running under systemd: readiness and state changes (sd_notify(3)), the
 * watchdog (sd_watchdog_enabled(3)) and socket activation
 * (sd_listen_fds(3)). Started any other way (no NOTIFY_SOCKET, no
 * WATCHDOG_USEC, no LISTEN_FDS in the environment) every call here does
 * nothing and fails nothing. */
#ifndef WARD_APP_SERVICE_H
#define WARD_APP_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct net_server;

/* READY=1 and STATUS=serving N listeners: call once every listener listens,
 * stored state is loaded and the bridges run; again after a reload. */
void service_ready(unsigned nlisteners);
/* RELOADING=1 with MONOTONIC_USEC=now (systemd 253's reload protocol; older
 * ones ignore the timestamp): call before a SIGHUP reload, and
 * service_ready() once it is done. */
void service_reloading(void);
/* STOPPING=1: call when shutdown begins (SIGTERM, SIGINT). */
void service_stopping(void);

/* Socket activation (a ward.socket unit): the listening sockets systemd
 * passed (LISTEN_FDS) are offered to s, whose listeners each use the one
 * with their address instead of binding (net_server_inherit). Call before
 * the listeners are added. Returns how many were passed (0: started some
 * other way), or -1 with why in err. */
int service_offer_listen_fds(struct net_server *s, char *err, size_t errlen);
/* After the listeners were added: a passed socket no listener took is an
 * error naming it (fd, its LISTEN_FDNAMES name, its address), since
 * connections to it would wait for ever. Returns 0, or -1 with err. */
int service_check_listen_fds(const struct net_server *s, char *err, size_t errlen);

/* The watchdog. When systemd asked for one (WatchdogSec=, so WATCHDOG_USEC
 * and WATCHDOG_PID in the environment), a thread sends WATCHDOG=1 every half
 * interval, but only while the broker is alive: every net worker of s has
 * gone round its event loop within the last half interval (at least
 * SERVICE_MIN_STALL_MS). A stalled worker stops the pings, so systemd
 * restarts ward, and is logged by number. Returns NULL when no watchdog was
 * asked for (or there is no NOTIFY_SOCKET to ping), or when the thread
 * cannot start (logged). s must outlive it. */
#define SERVICE_MIN_STALL_MS 1000u
struct service_watchdog;
struct service_watchdog *service_watchdog_start(struct net_server *s);
/* Stops and frees the watchdog; NULL is fine. Call before
 * net_server_stop(), so shutting workers down is not taken for a stall. */
void service_watchdog_stop(struct service_watchdog *wd);
/* For tests: pings sent, and checks that found a stalled worker. */
uint64_t service_watchdog_sent(const struct service_watchdog *wd);
uint64_t service_watchdog_withheld(const struct service_watchdog *wd);

#endif
