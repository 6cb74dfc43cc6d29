/* see serve_bridges.h */
#include "serve_bridges.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bridge/bridge.h"
#include "broker/broker.h"
#include "broker/inspect.h"
#include "core/clock.h"
#include "core/log.h"
#include "net/net.h"

struct serve_bridges {
    struct bridge **b;
    size_t n;
};

int serve_bridges_check(const struct ward_config *cfg)
{
    int rc = 0;
    char err[1024];
    for (size_t i = 0; i < cfg->nbridges; i++)
        if (cfg->bridges[i].enable && bridge_check(&cfg->bridges[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "ward: %s\n", err);
            rc = -1;
        }
    return rc;
}

/* $SYS/broker/bridge/NAME/...: state, counters and the last error. */
static void publish_status(void *ctx, broker_sys_emit_fn emit, void *ectx)
{
    struct serve_bridges *sb = ctx;
    for (size_t i = 0; i < sb->n; i++) {
        struct bridge_status st;
        bridge_status(sb->b[i], &st);
        char topic[256], v[320];
        struct tm tm;
        time_t since = (time_t)st.since;
#define EMIT(key, ...)                                                                             \
    do {                                                                                           \
        snprintf(topic, sizeof(topic), "$SYS/broker/bridge/%s/" key, st.name);                     \
        snprintf(v, sizeof(v), __VA_ARGS__);                                                       \
        emit(ectx, topic, v);                                                                      \
    } while (0)
        EMIT("state", "%s", st.connected ? "connected" : "disconnected");
        EMIT("connected", "%d", st.connected);
        if (st.since && gmtime_r(&since, &tm)) {
            strftime(v, sizeof(v), "%Y-%m-%dT%H:%M:%SZ", &tm);
            snprintf(topic, sizeof(topic), "$SYS/broker/bridge/%s/since", st.name);
            emit(ectx, topic, v);
        }
        EMIT("server", "%s", st.server);
        EMIT("messages/sent", "%" PRIu64, st.sent);
        EMIT("messages/received", "%" PRIu64, st.received);
        EMIT("messages/dropped", "%" PRIu64, st.dropped);
        EMIT("queued", "%" PRIu32, st.queued);
        EMIT("connects", "%" PRIu64, st.connects);
        EMIT("last_error", "%s", st.last_error);
#undef EMIT
    }
}

/* Each bridge talks to the broker over a socketpair: one end is served
 * like any client connection (net_server_adopt), the bridge owns the other.
 * Returns the bridge's end, or -1. */
static int attach(void *ctx, const char *bridge_name)
{
    struct net_server *s = ctx;
    int sv[2];
    char name[160];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    snprintf(name, sizeof(name), "bridge %s", bridge_name);
    if (net_server_adopt(s, sv[0], name) < 0) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    return sv[1];
}

static struct bridge *start_one(const struct cfg_bridge *c, struct net_server *s)
{
    char err[1024];
    int fd = attach(s, c->name);
    if (fd < 0) {
        fprintf(stderr, "ward serve: bridge %s: cannot attach to the broker\n", c->name);
        return NULL;
    }
    struct bridge *b = bridge_new(c, fd, err, sizeof(err));
    if (!b) {
        fprintf(stderr, "ward serve: %s\n", err);
        return NULL;
    }
    bridge_set_reattach(b, attach, s);
    if (bridge_start(b) < 0) {
        fprintf(stderr, "ward serve: bridge %s: cannot start its thread\n", c->name);
        bridge_free(b);
        return NULL;
    }
    return b;
}

struct serve_bridges *serve_bridges_start(const struct ward_config *cfg, struct net_server *s,
                                          struct broker *br)
{
    struct serve_bridges *sb = calloc(1, sizeof(*sb));
    if (!sb || (cfg->nbridges && !(sb->b = calloc(cfg->nbridges, sizeof(*sb->b))))) {
        free(sb);
        fprintf(stderr, "ward serve: out of memory\n");
        return NULL;
    }
    for (size_t i = 0; i < cfg->nbridges; i++) {
        if (!cfg->bridges[i].enable) {
            log_notice("bridge %s: disabled (enable = false)", cfg->bridges[i].name);
            continue;
        }
        struct bridge *b = start_one(&cfg->bridges[i], s);
        if (!b) {
            serve_bridges_free(sb);
            return NULL;
        }
        sb->b[sb->n++] = b;
    }
    if (sb->n)
        broker_add_sys_source(br, publish_status, sb);
    return sb;
}

void serve_bridges_reload(struct serve_bridges *sb)
{
    for (size_t i = 0; sb && i < sb->n; i++)
        bridge_reload(sb->b[i]);
}

/* Messages the broker still waits for bridge b to have acknowledged
 * upstream (its session's queued and in-flight deliveries); 0 when its
 * link is down, as nothing would move then. */
static uint64_t backlog(struct bridge *b, struct broker *br)
{
    struct bridge_status st;
    bridge_status(b, &st);
    if (!st.connected)
        return 0;
    char id[160];
    snprintf(id, sizeof(id), "$bridge/%s", st.name);
    struct broker_session_info si = {0};
    if (broker_inspect_session(br, id, &si) != 0)
        return 0;
    uint64_t n = (uint64_t)si.queued + si.inflight;
    broker_session_info_clear(&si);
    return n;
}

/* see serve_bridges.h */
bool serve_bridges_drain(struct serve_bridges *sb, struct broker *br, uint32_t timeout_ms)
{
    uint64_t end = clock_mono_ms() + timeout_ms;
    for (;;) {
        uint64_t left = 0;
        for (size_t i = 0; sb && i < sb->n; i++)
            left += backlog(sb->b[i], br);
        if (left == 0)
            return true;
        if (clock_mono_ms() >= end) {
            log_warn("shutdown: bridges still had %" PRIu64 " message%s to deliver upstream; "
                     "they stay stored",
                     left, left == 1 ? "" : "s");
            return false;
        }
        /* A bridge tells nothing when an acknowledgement comes: looked at
         * every 10 ms, never past the deadline. */
        usleep(10 * 1000);
    }
}

void serve_bridges_stop(struct serve_bridges *sb)
{
    for (size_t i = 0; sb && i < sb->n; i++)
        bridge_stop(sb->b[i]);
}

void serve_bridges_free(struct serve_bridges *sb)
{
    if (!sb)
        return;
    for (size_t i = 0; i < sb->n; i++)
        bridge_free(sb->b[i]);
    free(sb->b);
    free(sb);
}

/* see serve_bridges.h */
struct bridge *const *serve_bridges_list(const struct serve_bridges *sb, size_t *n)
{
    *n = sb ? sb->n : 0;
    return sb ? sb->b : NULL;
}
