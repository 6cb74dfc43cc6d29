/* see service.h */
#include "service.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    notify("WATCHDOG=1");
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
