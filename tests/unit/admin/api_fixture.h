/* A real broker with an MQTT listener (index 0) and a NATS listener (index
 * 1) on loopback, the admin_sources the endpoints read, and a way to call
 * a handler with a request parsed from its raw bytes, for the tests of
 * api.c, metrics.c and natsmon.c. */
#ifndef WARD_ADMIN_API_FIXTURE_H
#define WARD_ADMIN_API_FIXTURE_H

#include <stdlib.h>
#include <string.h>

#include "admin/api.h"
#include "broker/inspect.h"
#include "broker_rig.h"
#include "core/clock.h"

struct arig {
    struct rig r;
    uint16_t nats_port;
    struct admin_listener listeners[2];
    struct admin_sources src;
};

static inline void arig_start(struct arig *a)
{
    struct broker_config cfg;
    broker_config_defaults(&cfg);
    cfg.sys_interval_s = 0;
    struct rig *r = &a->r;
    ASSERT((r->b = broker_new(&cfg)));
    struct net_config nc = {
        .workers = 1, .max_connections = 100, .max_input = 1 << 16, .max_output = 1 << 20};
    ASSERT((r->s = net_server_new(&nc, broker_net_handler(), r->b)));
    char err[256];
    ASSERT_EQ(net_server_listen(r->s, "tcp://127.0.0.1:0", err, sizeof(err)), 0);
    struct net_listen_opts lo = {.greeting = broker_nats_greeting};
    ASSERT_EQ(net_server_listen_opts(r->s, "tcp://127.0.0.1:0", NULL, &lo, err, sizeof(err)), 0);
    struct broker_nats_opts o;
    broker_nats_opts_defaults(&o);
    ASSERT_EQ(broker_set_listener_nats(r->b, 1, &o, err, sizeof(err)), 0);
    r->port = net_server_port(r->s, 0);
    a->nats_port = net_server_port(r->s, 1);
    ASSERT_EQ(broker_start(r->b), 0);
    ASSERT_EQ(net_server_start(r->s), 0);
    a->listeners[0] = (struct admin_listener){"mqtt \"main\"", 0, "mqtt", "tcp", NULL};
    a->listeners[1] = (struct admin_listener){"nats", 1, "nats", "tcp", NULL};
    a->src = (struct admin_sources){.broker = r->b,
                                    .net = r->s,
                                    .listeners = a->listeners,
                                    .nlisteners = 2,
                                    .start_time_ms = clock_wall_ms()};
}

static inline void arig_stop(struct arig *a)
{
    rig_stop(&a->r);
}

/* A handler's answer, its body NUL-terminated in `text`. */
struct answer {
    int status;
    const char *content_type;
    char *text;
};

static inline void answer_free(struct answer *an)
{
    free(an->text);
    an->text = NULL;
}

/* The bound of a handler's answer body (the server's is 64 MiB). */
static size_t answer_limit = 64u << 20;

/* Parses raw (a whole request) and calls fn with ctx. */
static inline struct answer call_raw(admin_fn fn, void *ctx, const char *raw)
{
    struct http_request rq;
    struct http_limits lim;
    http_limits_defaults(&lim);
    lim.max_body = 1 << 20;
    int status = 0;
    const char *why = NULL;
    if (http_parse((const uint8_t *)raw, strlen(raw), &lim, &rq, &status, &why) != HTTP_PARSE_DONE)
        TEST_FAIL_("the test's request does not parse: %s", raw);
    struct admin_reply rep;
    memset(&rep, 0, sizeof(rep));
    rep.status = 200;
    buf_init(&rep.body, answer_limit);
    fn(ctx, &rq, "test", &rep);
    struct answer an = {.status = rep.status, .content_type = rep.content_type};
    an.text = calloc(1, buf_len(&rep.body) + 1);
    ASSERT(an.text);
    memcpy(an.text, buf_head(&rep.body), buf_len(&rep.body));
    buf_free(&rep.body);
    return an;
}

/* METHOD TARGET with an optional JSON body. */
static inline struct answer call(admin_fn fn, void *ctx, const char *method, const char *target,
                                 const char *body)
{
    size_t blen = body ? strlen(body) : 0;
    size_t cap = strlen(target) + blen + 256;
    char *raw = malloc(cap);
    ASSERT(raw);
    snprintf(raw, cap, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s", method, target,
             blen, body ? body : "");
    struct answer an = call_raw(fn, ctx, raw);
    free(raw);
    return an;
}

/* SUBSCRIBE (3.1.1) to one filter at qos on a rig_connect()ed socket;
 * waits for the SUBACK. */
static inline void arig_subscribe(int fd, const char *filter, uint8_t qos)
{
    uint8_t pkt[128];
    size_t flen = strlen(filter), n = 0;
    pkt[n++] = 0x82;
    pkt[n++] = (uint8_t)(2 + 2 + flen + 1);
    pkt[n++] = 0;
    pkt[n++] = 1;
    pkt[n++] = 0;
    pkt[n++] = (uint8_t)flen;
    memcpy(pkt + n, filter, flen);
    n += flen;
    pkt[n++] = qos;
    ASSERT_EQ(write(fd, pkt, n), (ssize_t)n);
    char ack[5];
    ASSERT_EQ(read_n(fd, ack, 5), 5u);
    ASSERT_EQ((uint8_t)ack[0], 0x90);
}

#define ASSERT_HAS(text, needle)                                                                   \
    do {                                                                                           \
        if (!strstr((text), (needle)))                                                             \
            TEST_FAIL_("'%s' not in: %s", (needle), (text));                                       \
    } while (0)

#endif
