/* The latest refusals (a failed TLS handshake, a refused login), kept in a
 * small ring for the status page (src/admin/page.c): an operator sees at a
 * glance who was turned away, where and why, without reading the log.
 *
 * Thread-safe: net's workers and the broker add while the admin worker
 * copies. A refusal costs one short mutex hold and a few bounded copies,
 * never an allocation, so a flood of refusals costs the ring nothing more
 * than it costs the log. The oldest entry gives way to the newest. */
#ifndef WARD_CORE_RECENT_H
#define WARD_CORE_RECENT_H

#include <stddef.h>
#include <stdint.h>

#include "core/result.h"

#define RECENT_MAX           256 /* most entries a ring may hold */
#define RECENT_DEFAULT       32  /* the process ring's size */
#define RECENT_PEER_MAX      160
#define RECENT_CAUSE_MAX     200
#define RECENT_LISTENER_NONE 0xffffffffu

struct recent_entry {
    uint64_t wall_ms;  /* when, ms since the Unix epoch */
    unsigned listener; /* net's listener index; RECENT_LISTENER_NONE if unknown */
    /* Both escaped with log_escape on the way in (a client id or a
     * certificate name inside them is the peer's choice) and cut to fit. */
    char peer[RECENT_PEER_MAX];
    char cause[RECENT_CAUSE_MAX];
};

struct recent;

/* A ring of cap entries (1..RECENT_MAX). NULL: out of memory or a bad cap. */
WARD_WUR struct recent *recent_new(unsigned cap);
void recent_free(struct recent *r);
/* Adds a refusal; NULL peer or cause are taken as "". */
void recent_add(struct recent *r, unsigned listener, const char *peer, const char *cause);
/* Copies up to max entries, newest first; returns how many. */
WARD_WUR unsigned recent_copy(struct recent *r, struct recent_entry *out, unsigned max);
/* Refusals added since the ring was made (including those that gave way). */
uint64_t recent_total(struct recent *r);

/* The process's ring, which net (failed TLS handshakes) and the broker
 * (refused logins) feed and the admin API reads: one ring per process is
 * what an operator looks at, and it saves threading a pointer through
 * layers that do not otherwise know about the admin server. */
struct recent *recent_process(void);
/* recent_add on the process ring: the one call at each place a refusal is
 * decided. */
void recent_refusal(unsigned listener, const char *peer, const char *cause);

#endif
