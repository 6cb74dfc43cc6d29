/* see service.h */
#include "service.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "core/log.h"
#include "net/net.h"

/* sd_notify() is 0 without NOTIFY_SOCKET (nothing to do, not an error) and
 * negative only when there was a socket to tell and telling it failed. */
static void notify(const char *state)
{
    int rc = sd_notify(0, state);
    if (rc < 0)
        log_warn("systemd: cannot send %.*s: %s", (int)strcspn(state, "\n"), state, strerror(-rc));
}

void service_ready(unsigned nlisteners)
{
    char state[128];
    snprintf(state, sizeof(state), "READY=1\nSTATUS=serving %u listener%s", nlisteners,
             nlisteners == 1 ? "" : "s");
    notify(state);
}

void service_reloading(void)
{
    struct timespec ts;
    char state[128];
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t usec = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    snprintf(state, sizeof(state), "RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=%" PRIu64, usec);
    notify(state);
}

void service_stopping(void)
{
    notify("STOPPING=1\nSTATUS=shutting down");
}

/* ---- socket activation ---- */

/* A unix socket's address: its path, "@name" when abstract. */
static void unix_addr(const struct sockaddr_un *a, socklen_t sl, char *out, size_t cap)
{
    size_t len = sl > offsetof(struct sockaddr_un, sun_path)
                     ? (size_t)sl - offsetof(struct sockaddr_un, sun_path)
                     : 0;
    if (len == 0)
        snprintf(out, cap, "unix, unbound");
    else if (a->sun_path[0] == '\0')
        snprintf(out, cap, "unix @%.*s", (int)(len - 1), a->sun_path + 1);
    else
        snprintf(out, cap, "unix %.*s", (int)strnlen(a->sun_path, len), a->sun_path);
}

static void sock_addr(int fd, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        snprintf(out, cap, "not a socket");
    } else if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        snprintf(out, cap, "%s:%u", host, ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        snprintf(out, cap, "[%s]:%u", host, ntohs(a->sin6_port));
    } else if (ss.ss_family == AF_UNIX) {
        unix_addr((struct sockaddr_un *)&ss, sl, out, cap);
    } else {
        snprintf(out, cap, "address family %u", ss.ss_family);
    }
}

/* "fd 3 (ward.socket): 127.0.0.1:1883, listening" and the like. */
static size_t describe_fd(int fd, const char *name, char *out, size_t cap)
{
    char addr[300];
    sock_addr(fd, addr, sizeof(addr));
    bool listening = sd_is_socket(fd, AF_UNSPEC, 0, 1) > 0;
    int n = snprintf(out, cap, "fd %d (%s): %s%s", fd, name ? name : "unnamed", addr,
                     listening ? ", listening" : "");
    return n < 0 ? 0 : (size_t)n;
}

/* LISTEN_FDNAMES, kept for naming a socket no listener took. */
static char **passed_names;
static int npassed;

static void free_names(void)
{
    for (int i = 0; passed_names && i < npassed; i++)
        free(passed_names[i]);
    free(passed_names);
    passed_names = NULL;
}

/* see service.h */
int service_offer_listen_fds(struct net_server *s, char *err, size_t errlen)
{
    /* unset_environment: programs ward starts must not take them for theirs */
    int n = sd_listen_fds_with_names(1, &passed_names);
    if (n < 0) {
        snprintf(err, errlen, "LISTEN_FDS: %s", strerror(-n));
        return -1;
    }
    npassed = n;
    int fds[64];
    unsigned k = 0;
    for (int i = 0; i < n && k < sizeof(fds) / sizeof(fds[0]); i++)
        fds[k++] = SD_LISTEN_FDS_START + i;
    net_server_inherit(s, fds, k);
    if (n > 0)
        log_notice("systemd passed %d listening socket%s", n, n == 1 ? "" : "s");
    return n;
}

/* see service.h */
int service_check_listen_fds(const struct net_server *s, char *err, size_t errlen)
{
    int fds[64];
    unsigned n = net_server_inherited_unused(s, fds, sizeof(fds) / sizeof(fds[0]));
    int offered = npassed < 16 ? npassed : 16; /* net takes at most MAX_LISTENERS */
    if (n == 0 && npassed <= offered) {
        free_names();
        return 0;
    }
    size_t len = (size_t)snprintf(err, errlen,
                                  "systemd passed socket%s no listener of the configuration "
                                  "has the address of; add the listener or remove it from the "
                                  ".socket unit:",
                                  n == 1 ? "" : "s");
    for (unsigned i = 0; i < n && len + 2 < errlen; i++) {
        int idx = fds[i] - SD_LISTEN_FDS_START;
        len += (size_t)snprintf(err + len, errlen - len, "%s", i ? "; " : " ");
        len += describe_fd(fds[i], passed_names && idx < npassed ? passed_names[idx] : NULL,
                           err + len, errlen - len);
    }
    for (int i = offered; i < npassed && len + 2 < errlen; i++)
        len += (size_t)snprintf(err + len, errlen - len, "; fd %d: more than 16 listeners",
                                SD_LISTEN_FDS_START + i);
    free_names();
    return -1;
}

/* ---- the watchdog ---- */

struct service_watchdog {
    struct net_server *s;
    uint64_t period_ms;    /* between checks: half systemd's interval */
    uint64_t max_stall_ms; /* a worker not turning this long is stalled */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* on CLOCK_MONOTONIC */
    bool stop;           /* under lock */
    bool stalled;        /* the last check found a stall (watchdog thread only) */
    bool send_failed;    /* the last ping could not be sent (watchdog thread only) */
    _Atomic uint64_t sent, withheld;
};

/* One check: a ping if every worker turns, else a log line when the stall
 * starts (and one when it ends), not one per check. */
static void check(struct service_watchdog *wd)
{
    unsigned worker = 0;
    uint64_t age = 0;
    if (!net_server_alive(wd->s, wd->max_stall_ms, &worker, &age)) {
        if (!wd->stalled)
            log_error("watchdog: net worker %u has not gone round its event loop for %" PRIu64
                      " ms; WATCHDOG=1 withheld, so systemd restarts ward if it stays stuck",
                      worker, age);
        wd->stalled = true;
        atomic_fetch_add(&wd->withheld, 1);
        return;
    }
    if (wd->stalled)
        log_notice("watchdog: every net worker turns again; WATCHDOG=1 resumed");
    wd->stalled = false;
    int rc = sd_notify(0, "WATCHDOG=1");
    if (rc < 0 && !wd->send_failed) /* once, not every half interval */
        log_warn("systemd: cannot send WATCHDOG=1: %s", strerror(-rc));
    wd->send_failed = rc < 0;
    if (rc >= 0)
        atomic_fetch_add(&wd->sent, 1);
}

static void *watchdog_main(void *arg)
{
    struct service_watchdog *wd = arg;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    pthread_mutex_lock(&wd->lock);
    while (!wd->stop) {
        pthread_mutex_unlock(&wd->lock);
        check(wd);
        pthread_mutex_lock(&wd->lock);
        uint64_t ns = (uint64_t)next.tv_nsec + wd->period_ms * 1000000u;
        next.tv_sec += (time_t)(ns / 1000000000u);
        next.tv_nsec = (long)(ns % 1000000000u);
        while (!wd->stop && pthread_cond_timedwait(&wd->wake, &wd->lock, &next) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&wd->lock);
    return NULL;
}

static void watchdog_free(struct service_watchdog *wd)
{
    pthread_cond_destroy(&wd->wake);
    pthread_mutex_destroy(&wd->lock);
    free(wd);
}

struct service_watchdog *service_watchdog_start(struct net_server *s)
{
    uint64_t usec = 0;
    /* Pings nobody receives would only cost a thread. */
    if (!getenv("NOTIFY_SOCKET") || sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return NULL;
    struct service_watchdog *wd = calloc(1, sizeof(*wd));
    if (!wd) {
        log_error("watchdog: out of memory; no WATCHDOG=1 will be sent");
        return NULL;
    }
    wd->s = s;
    wd->period_ms = usec / 2000u ? usec / 2000u : 1;
    wd->max_stall_ms = wd->period_ms > SERVICE_MIN_STALL_MS ? wd->period_ms : SERVICE_MIN_STALL_MS;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wd->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&wd->lock, NULL);
    int rc = pthread_create(&wd->thread, NULL, watchdog_main, wd);
    if (rc != 0) {
        log_error("watchdog: cannot start its thread: %s; no WATCHDOG=1 will be sent",
                  strerror(rc));
        watchdog_free(wd);
        return NULL;
    }
    log_notice("watchdog: WATCHDOG=1 every %" PRIu64 " ms while no net worker stalls for %" PRIu64
               " ms",
               wd->period_ms, wd->max_stall_ms);
    return wd;
}

void service_watchdog_stop(struct service_watchdog *wd)
{
    if (!wd)
        return;
    pthread_mutex_lock(&wd->lock);
    wd->stop = true;
    pthread_cond_signal(&wd->wake);
    pthread_mutex_unlock(&wd->lock);
    pthread_join(wd->thread, NULL);
    watchdog_free(wd);
}

uint64_t service_watchdog_sent(const struct service_watchdog *wd)
{
    return atomic_load(&((struct service_watchdog *)wd)->sent);
}

uint64_t service_watchdog_withheld(const struct service_watchdog *wd)
{
    return atomic_load(&((struct service_watchdog *)wd)->withheld);
}
