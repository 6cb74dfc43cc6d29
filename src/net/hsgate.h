/* Admission to a TLS listener's handshake slots: at most `cap` handshakes
 * run at once; connections beyond wait in a bounded queue instead of being
 * refused. While the slots are contended, every source address gets a fair
 * share (cap / number of sources with a connection running or waiting):
 *
 * - a newcomer from a source below its share takes the slot of the oldest
 *   handshake of a source above its share that has sent nothing yet (a
 *   handshake under way is never cut short), which the caller closes;
 * - a freed slot goes to the oldest waiting connection of the source that
 *   holds the fewest slots;
 * - when the queue is full, a newcomer takes the place of the oldest waiting
 *   connection of the source with the most waiting, if that is more than
 *   its own source has; otherwise the newcomer is refused.
 *
 * No I/O and no locking: the caller holds a lock around every call and owns
 * the entries (embedded in its connections). Time-outs are the caller's:
 * it removes an entry with hsgate_leave(). */
#ifndef WARD_NET_HSGATE_H
#define WARD_NET_HSGATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/result.h"

enum hsgate_state { HSGATE_OUT, HSGATE_ACTIVE, HSGATE_WAITING };

struct hsgate_entry {
    struct hsgate_entry *prev, *next; /* on the active list or the queue */
    uint8_t src[16];                  /* the source address (IPv4 as ::ffff:a.b.c.d) */
    enum hsgate_state state;
    bool idle;     /* the caller's: nothing received yet (preferred for eviction) */
    int64_t since; /* when it arrived (the caller's clock, ms) */
};

struct hsgate_src; /* per-source counts, in an open-addressing table */

struct hsgate {
    uint32_t cap, qcap;
    uint32_t evict_idle_ms; /* how long a slot's holder must have been silent to lose it */
    uint32_t active, waiting;
    struct hsgate_entry *act_head, *act_tail; /* oldest first */
    struct hsgate_entry *q_head, *q_tail;     /* oldest first */
    struct hsgate_src *tab;
    size_t tabcap, nsrc;
};

enum hsgate_verdict {
    HSGATE_ADMITTED, /* start the handshake */
    HSGATE_QUEUED,   /* wait: a later hsgate_leave() returns it */
    HSGATE_REFUSED,  /* the queue is full (or out of memory): close it */
};

/* cap >= 1; qcap may be 0 (no queue). A running handshake that has sent
 * nothing may lose its slot to a source below its share only once
 * evict_idle_ms have passed since it arrived: in a reconnect storm a
 * client's ClientHello can take a while to leave a busy host, and that
 * is not a slow-loris. */
void hsgate_init(struct hsgate *g, uint32_t cap, uint32_t qcap, uint32_t evict_idle_ms);
void hsgate_free(struct hsgate *g);

/* A new connection from e->src, arriving at now_ms. On HSGATE_ADMITTED or
 * HSGATE_QUEUED, *evicted may name an entry that lost its slot or its
 * place (now HSGATE_OUT): the caller closes that connection. */
WARD_WUR enum hsgate_verdict hsgate_arrive(struct hsgate *g, struct hsgate_entry *e, int64_t now_ms,
                                           struct hsgate_entry **evicted);

/* Called now and then (at now_ms): if a source below its share has a
 * connection waiting and a slot's holder above its share has now been
 * silent long enough, the holder loses the slot (*evicted: the caller
 * closes it) and the waiting connection gets it (returned: the caller
 * starts its handshake). NULL when nothing changed hands. */
struct hsgate_entry *hsgate_rebalance(struct hsgate *g, int64_t now_ms,
                                      struct hsgate_entry **evicted);

/* e's handshake ended or it gave up waiting (any state; HSGATE_OUT is a
 * no-op). Returns the waiting entry that now holds the freed slot (the
 * caller starts its handshake), or NULL. */
struct hsgate_entry *hsgate_leave(struct hsgate *g, struct hsgate_entry *e);

/* The slots source `src` holds and the connections it has waiting. */
void hsgate_source(const struct hsgate *g, const uint8_t src[16], uint32_t *active,
                   uint32_t *waiting);

#endif
