/* Topic remapping for bridges, as NanoMQ and EMQX Edge configure it: a
 * message matched by a rule's source filter gets a topic made from the
 * rule's target, prefix and suffix. Pure functions; no I/O, no allocation. */
#ifndef WARD_BRIDGE_TOPIC_MAP_H
#define WARD_BRIDGE_TOPIC_MAP_H

#include <stdbool.h>
#include <stddef.h>

/* Maps `topic` (tlen bytes), which `filter` must match, onto `target`:
 * - target NULL or "" keeps the topic as it is;
 * - a target without wildcards replaces it;
 * - otherwise each '+' of target takes the level that the next '+' of
 *   filter matched, and a '#' of target takes what filter's '#' matched
 *   (a '#' that matched nothing takes its '/' with it).
 * Then prefix and suffix (NULL: none) are added exactly as written.
 * Writes a NUL-terminated topic name to out and returns its length; 0 if
 * the filter does not match, the result is empty or not a valid topic
 * name, or it does not fit in cap. */
size_t bridge_map_topic(const char *filter, const char *target, const char *prefix,
                        const char *suffix, const char *topic, size_t tlen, char *out, size_t cap);

/* Checks a rule before use: filter is a valid filter, target (if set) is a
 * valid filter whose wildcards filter can fill. Returns true, or false
 * with the reason in err. */
bool bridge_map_valid(const char *filter, const char *target, char *err, size_t errlen);

#endif
