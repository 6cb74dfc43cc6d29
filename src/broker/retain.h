/* The retained message store: at most one message per topic name, kept in a
 * tree of topic levels so that matching a filter visits only the part of the
 * tree the filter can reach.
 *
 * Limits: a store made with max_messages and/or max_bytes refuses a message
 * for a new topic that would take it past either limit. Bytes are what the
 * stored messages carry: topic, payload and the v5 properties that travel
 * with them (content type, response topic, correlation data, user
 * properties). Messages on $SYS topics (the broker's own; clients cannot
 * publish there) are stored regardless and are not counted against the
 * limits, so a full store never hides the broker's status.
 *
 * Not thread-safe: the broker calls it under its lock. */
#ifndef WARD_BROKER_RETAIN_H
#define WARD_BROKER_RETAIN_H

#include <stddef.h>
#include <stdint.h>

struct msg;
struct retain_store;

/* retain_set results. */
enum {
    RETAIN_NOMEM = -1, /* allocation failure; the store is unchanged */
    RETAIN_OK = 0,     /* stored, replaced or cleared */
    RETAIN_FULL = 1,   /* refused: a limit would be exceeded */
};

/* A store holding at most max_messages messages and max_bytes bytes (0:
 * unlimited). NULL on allocation failure. */
struct retain_store *retain_new(size_t max_messages, size_t max_bytes);
void retain_free(struct retain_store *s);
/* Stores m as the retained message of its topic (taking a reference),
 * replacing any previous one; a message with an empty payload clears the
 * topic instead (MQTT-3.3.1-10/11), which is always RETAIN_OK.
 *
 * A message for a topic that has none is refused with RETAIN_FULL when one
 * more message or its bytes would exceed a limit (expired messages are swept
 * first, at most once a second by m->created_ms). Replacing a topic's message
 * is allowed while the bytes after the swap stay within max_bytes; when they
 * would not, the old message is removed as well (it is no longer the latest
 * for its topic, so new subscribers must not get it) and the result is
 * RETAIN_FULL. */
int retain_set(struct retain_store *s, struct msg *m);
/* fn must not change the store. */
typedef void (*retain_match_fn)(void *ctx, struct msg *m);
/* Calls fn for each retained message whose topic matches the filter (a valid
 * plain filter, no $share prefix), dropping expired ones met on the way
 * (MQTT-3.3.2-5). A literal level follows one child, '+' every child of its
 * level, '#' the whole subtree; topics starting with '$' are not matched by a
 * filter starting with '+' or '#' (MQTT-4.7.2-1). Recursion depth is the
 * number of filter levels. */
void retain_match(struct retain_store *s, const uint8_t *filter, size_t len, uint64_t now_ms,
                  retain_match_fn fn, void *ctx);
/* Messages and bytes held, $SYS included. */
size_t retain_count(const struct retain_store *s);
size_t retain_bytes(const struct retain_store *s);
/* Tree nodes examined by retain_match so far: a work counter independent of
 * machine speed. A literal filter of n levels costs n + 1 whatever the store
 * holds; '+' costs the children of its level. */
uint64_t retain_visits(const struct retain_store *s);

#endif
