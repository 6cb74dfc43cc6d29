/* The NATS client protocol on the broker's listeners: CONNECT and its
 * authentication, PUB/HPUB into the shared message space, SUB/UNSUB with
 * queue groups, server PINGs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"

void broker_nats_opts_defaults(struct broker_nats_opts *o)
{
    *o = (struct broker_nats_opts){
        .max_payload = 1u << 20,
        .max_control_line = 4096,
        .ping_interval_ms = 120000,
        .ping_max = 2,
        .auth_timeout_ms = 2000,
    };
}

int broker_set_listener_nats(struct broker *b, unsigned listener, const struct broker_nats_opts *o,
                             char *err, size_t errlen)
{
    if (listener >= 64) {
        snprintf(err, errlen, "too many listeners (at most 64)");
        return -1;
    }
    if (o->max_payload == 0 || o->max_payload > 64u << 20) {
        snprintf(err, errlen, "max_payload must be between 1 byte and 64 MiB");
        return -1;
    }
    struct broker_nats_opts *copy = malloc(sizeof *copy);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *copy = *o;
    free(b->nats[listener]);
    b->nats[listener] = copy;
    return 0;
}

size_t broker_nats_greeting(void *ctx, struct net_conn *c, uint8_t *buf, size_t cap)
{
    (void)ctx, (void)c, (void)buf, (void)cap;
    return 0;
}
