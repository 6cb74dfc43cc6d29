/* see topic_map.h */
#include "bridge/topic_map.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mqtt/mqtt.h"

#define MAX_CAPTURES 32

struct out {
    char *p;
    size_t len, cap;
    bool overflow;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->len + n >= o->cap) {
        o->overflow = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

/* see topic_map.h */
size_t bridge_map_topic(const char *filter, const char *target, const char *prefix,
                        const char *suffix, const char *topic, size_t tlen, char *out, size_t cap)
{
    struct mqtt_span plus[MAX_CAPTURES];
    struct mqtt_captures cp = {plus, MAX_CAPTURES, 0, {NULL, 0}, false};
    size_t used = 0;
    /* The reference matcher, '$' rule (MQTT-4.7.2-1) included. */
    if (!cap || !mqtt_topic_match_capture((const uint8_t *)filter, strlen(filter),
                                          (const uint8_t *)topic, tlen, &cp))
        return 0;
    size_t nplus = cp.nplus < MAX_CAPTURES ? cp.nplus : MAX_CAPTURES;
    struct out o = {out, 0, cap, false};
    if (prefix)
        put(&o, prefix, strlen(prefix));
    size_t start = o.len; /* the prefix stays as written */
    if (!target || !*target) {
        put(&o, topic, tlen);
    } else {
        for (const char *c = target; *c; c++) {
            bool level_start = c == target || c[-1] == '/';
            bool level_end = c[1] == '\0' || c[1] == '/';
            if (*c == '+' && level_start && level_end) {
                if (used == nplus)
                    return 0;
                put(&o, (const char *)plus[used].p, plus[used].len);
                used++;
            } else if (*c == '#' && level_start && level_end) {
                if (!cp.has_hash)
                    return 0;
                if (cp.hash.len == 0 && o.len > start && o.p[o.len - 1] == '/')
                    o.len--;
                put(&o, (const char *)cp.hash.p, cp.hash.len);
            } else {
                put(&o, c, 1);
            }
        }
    }
    if (suffix)
        put(&o, suffix, strlen(suffix));
    if (o.overflow || o.len == 0 || o.len > 65535 ||
        !mqtt_topic_name_valid((const uint8_t *)o.p, o.len))
        return 0;
    o.p[o.len] = '\0';
    return o.len;
}

static void count_wildcards(const char *f, size_t *plus, size_t *hash)
{
    *plus = *hash = 0;
    for (const char *c = f; *c; c++) {
        *plus += *c == '+';
        *hash += *c == '#';
    }
}

/* see topic_map.h */
bool bridge_map_valid(const char *filter, const char *target, char *err, size_t errlen)
{
    if (!filter || !mqtt_topic_filter_valid((const uint8_t *)filter, strlen(filter))) {
        snprintf(err, errlen, "'%s' is not a valid topic filter", filter ? filter : "");
        return false;
    }
    if (!target || !*target)
        return true;
    if (!mqtt_topic_filter_valid((const uint8_t *)target, strlen(target))) {
        snprintf(err, errlen, "'%s' is not a valid topic or pattern", target);
        return false;
    }
    size_t fp, fh, tp, th;
    count_wildcards(filter, &fp, &fh);
    count_wildcards(target, &tp, &th);
    if (tp > MAX_CAPTURES) {
        snprintf(err, errlen, "'%s' has more than %d '+' levels", target, MAX_CAPTURES);
        return false;
    }
    if (tp > fp || th > fh) {
        snprintf(err, errlen, "'%s' has a wildcard that '%s' does not fill", target, filter);
        return false;
    }
    return true;
}
