/* The retained message store: at most one message per topic name.
 *
 * Not thread-safe: the broker calls it under its lock. */
#ifndef WARD_BROKER_RETAIN_H
#define WARD_BROKER_RETAIN_H

#include <stddef.h>
#include <stdint.h>

struct msg;
struct retain_store;

struct retain_store *retain_new(void);
void retain_free(struct retain_store *s);
/* Stores m as the retained message of its topic (taking a reference),
 * replacing any previous one; a message with an empty payload clears the
 * topic instead (MQTT-3.3.1-10/11). Returns 0, or -1 on allocation failure. */
int retain_set(struct retain_store *s, struct msg *m);
typedef void (*retain_match_fn)(void *ctx, struct msg *m);
/* Calls fn for each retained message whose topic matches the filter (plain
 * filter, no $share prefix), skipping and dropping expired ones. */
void retain_match(struct retain_store *s, const uint8_t *filter, size_t len, uint64_t now_ms,
                  retain_match_fn fn, void *ctx);
size_t retain_count(const struct retain_store *s);

#endif
