/* Topic names and filters (MQTT section 4.7), shared subscriptions (4.8.2). */
#include <string.h>

#include "mqtt/mqtt.h"

/* see mqtt.h */
bool mqtt_topic_name_valid(const uint8_t *p, size_t len)
{
    /* MQTT-4.7.3-1: at least one character; MQTT-3.3.2-2: no wildcards. */
    if (len == 0 || len > 65535)
        return false;
    return !memchr(p, '+', len) && !memchr(p, '#', len) && mqtt_utf8_valid(p, len);
}

/* see mqtt.h */
bool mqtt_topic_filter_valid(const uint8_t *p, size_t len)
{
    if (len == 0 || len > 65535 || !mqtt_utf8_valid(p, len))
        return false;
    for (size_t i = 0; i < len; i++) {
        bool level_start = i == 0 || p[i - 1] == '/';
        bool level_end = i + 1 == len || p[i + 1] == '/';
        /* MQTT-4.7.1-2: '#' alone in the last level. */
        if (p[i] == '#' && !(level_start && i + 1 == len))
            return false;
        /* MQTT-4.7.1-3: '+' occupies a whole level. */
        if (p[i] == '+' && !(level_start && level_end))
            return false;
    }
    return true;
}

/* see mqtt.h */
bool mqtt_level_next(const uint8_t *s, size_t len, size_t *pos, struct mqtt_span *level)
{
    if (*pos > len)
        return false;
    const uint8_t *slash = *pos < len ? memchr(s + *pos, '/', len - *pos) : NULL;
    size_t end = slash ? (size_t)(slash - s) : len;
    level->p = s + *pos;
    level->len = end - *pos;
    *pos = end + 1; /* past the end after the last level */
    return true;
}

/* see mqtt.h */
bool mqtt_level_is(const struct mqtt_span *level, char c)
{
    return level->len == 1 && level->p[0] == (uint8_t)c;
}

/* see mqtt.h */
bool mqtt_topic_is_dollar(const uint8_t *topic, size_t tlen)
{
    return tlen > 0 && topic[0] == '$';
}

static void capture_plus(struct mqtt_captures *cap, const struct mqtt_span *level)
{
    if (!cap)
        return;
    if (cap->nplus < cap->plus_cap)
        cap->plus[cap->nplus] = *level;
    cap->nplus++;
}

/* see mqtt.h */
bool mqtt_topic_match_capture(const uint8_t *filter, size_t flen, const uint8_t *topic, size_t tlen,
                              struct mqtt_captures *cap)
{
    if (cap) {
        cap->nplus = 0;
        cap->has_hash = false;
        cap->hash = (struct mqtt_span){topic + tlen, 0};
    }
    /* MQTT-4.7.2-1: a leading wildcard does not match a '$' topic. */
    if (mqtt_topic_is_dollar(topic, tlen) && flen > 0 && (filter[0] == '+' || filter[0] == '#'))
        return false;
    size_t fpos = 0, tpos = 0;
    struct mqtt_span f, t;
    while (mqtt_level_next(filter, flen, &fpos, &f)) {
        if (mqtt_level_is(&f, '#')) {
            /* This level and everything below; also the parent level itself
             * ("sport/#" matches "sport", MQTT-4.7.1-2). */
            if (cap) {
                cap->has_hash = true;
                if (tpos <= tlen)
                    cap->hash = (struct mqtt_span){topic + tpos, tlen - tpos};
            }
            return true;
        }
        if (!mqtt_level_next(topic, tlen, &tpos, &t))
            return false;
        if (mqtt_level_is(&f, '+'))
            capture_plus(cap, &t);
        else if (f.len != t.len || memcmp(f.p, t.p, f.len) != 0)
            return false;
    }
    return tpos > tlen; /* the topic has no levels left over */
}

/* see mqtt.h */
bool mqtt_topic_match(const uint8_t *filter, size_t flen, const uint8_t *topic, size_t tlen)
{
    return mqtt_topic_match_capture(filter, flen, topic, tlen, NULL);
}

/* see mqtt.h */
bool mqtt_share_split(const uint8_t *f, size_t len, struct mqtt_share *out)
{
    static const char prefix[] = "$share/";
    const size_t plen = sizeof(prefix) - 1;
    *out = (struct mqtt_share){NULL, 0, f, len};
    if (len < plen || memcmp(f, prefix, plen) != 0)
        return true; /* not a shared subscription */
    const uint8_t *name = f + plen;
    const uint8_t *slash = memchr(name, '/', len - plen);
    /* MQTT-4.8.2-1: a ShareName of at least one character, then a '/'. */
    if (!slash || slash == name)
        return false;
    size_t nlen = (size_t)(slash - name);
    /* MQTT-4.8.2-2: no '+' or '#' in it (no '/' by construction). */
    if (memchr(name, '+', nlen) || memchr(name, '#', nlen) || !mqtt_utf8_valid(name, nlen))
        return false;
    const uint8_t *plain = slash + 1;
    size_t plain_len = len - plen - nlen - 1;
    /* MQTT-4.8.2-2: the '/' is followed by a Topic Filter, which has at
     * least one character (MQTT-4.7.3-1). It may not be another share: the
     * prefix is then removed exactly once, wherever it is removed. */
    if (!mqtt_topic_filter_valid(plain, plain_len) ||
        (plain_len >= plen && memcmp(plain, prefix, plen) == 0))
        return false;
    *out = (struct mqtt_share){name, nlen, plain, plain_len};
    return true;
}
