/* The subscription tree: topic filters, level by level, with '+' and '#'
 * wildcards and shared subscriptions ($share/GROUP/FILTER).
 *
 * Not thread-safe: the broker calls it under its lock (docs/ARCHITECTURE.md).
 * Owners are opaque pointers (the broker's sessions). */
#ifndef WARD_BROKER_TOPIC_TREE_H
#define WARD_BROKER_TOPIC_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct subtree;

struct subtree_sub {
    void *owner;
    uint8_t options;    /* MQTT subscription options byte (mqtt.h MQTT_SUBOPT_*) */
    uint32_t sub_id;    /* v5 subscription identifier, 0 if none */
    const char *filter; /* the filter as subscribed (without $share/GROUP/), NUL-terminated */
    const char *group;  /* share group name, or NULL for a non-shared subscription */
};

struct subtree *subtree_new(void);
void subtree_free(struct subtree *t);

/* Adds owner's subscription to filter, or replaces its options and id if it
 * already exists (MQTT-3.8.4-3). filter is a valid topic filter, possibly
 * "$share/GROUP/FILTER". Returns 1 if added, 0 if replaced, -1 on allocation
 * failure (tree unchanged). */
int subtree_add(struct subtree *t, const uint8_t *filter, size_t len, void *owner, uint8_t options,
                uint32_t sub_id);
/* Removes owner's subscription to filter. Returns 1 if removed, 0 if it had none. */
int subtree_remove(struct subtree *t, const uint8_t *filter, size_t len, void *owner);
/* Removes every subscription of owner (session end). Returns how many. */
size_t subtree_remove_owner(struct subtree *t, void *owner);

typedef void (*subtree_match_fn)(void *ctx, const struct subtree_sub *sub);
/* Whether an owner can take a shared-subscription message now (online). */
typedef bool (*subtree_eligible_fn)(void *ctx, void *owner);

/* For a topic name, calls fn once for each matching non-shared subscription
 * (an owner with overlapping filters is reported once per filter; the broker
 * merges), and once for each matching share group with one member chosen in
 * turn (round robin), preferring members for which eligible() is true.
 * Topics starting with '$' are not matched by filters starting with a
 * wildcard (MQTT-4.7.2-1). eligible may be NULL. */
void subtree_match(struct subtree *t, const uint8_t *topic, size_t len, subtree_match_fn fn,
                   subtree_eligible_fn eligible, void *ctx);
/* Calls fn for every subscription held (shared ones with their group). fn
 * must not change the tree: collect, then remove. */
void subtree_each(struct subtree *t, subtree_match_fn fn, void *ctx);
/* Number of subscriptions held. */
size_t subtree_count(const struct subtree *t);
/* Subscriptions (or share groups) examined by removals so far: a session
 * ending with n subscriptions should cost n, whatever the tree holds. */
uint64_t subtree_visits(const struct subtree *t);

#endif
