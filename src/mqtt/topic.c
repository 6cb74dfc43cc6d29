/* Topic names and filters (MQTT section 4.7). */
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
bool mqtt_topic_match(const uint8_t *filter, size_t flen, const uint8_t *topic, size_t tlen)
{
    size_t f = 0, t = 0;
    /* MQTT-4.7.2-1: a leading wildcard does not match a '$' topic. */
    if (tlen > 0 && topic[0] == '$' && flen > 0 && (filter[0] == '+' || filter[0] == '#'))
        return false;
    for (;;) {
        if (f < flen && filter[f] == '#')
            return true; /* matches this level and everything below, or the parent */
        if (f < flen && filter[f] == '+') {
            while (t < tlen && topic[t] != '/')
                t++;
            f++;
        } else {
            while (f < flen && t < tlen && filter[f] != '/' && topic[t] != '/') {
                if (filter[f] != topic[t])
                    return false;
                f++;
                t++;
            }
            if ((f < flen && filter[f] != '/') || (t < tlen && topic[t] != '/'))
                return false;
        }
        /* Both at a level end: '/' or the end of the string. */
        if (f == flen && t == tlen)
            return true;
        if (t == tlen) {
            /* "sport/#" matches "sport": the filter continues with "/#". */
            return f + 2 == flen && filter[f] == '/' && filter[f + 1] == '#';
        }
        if (f == flen)
            return false;
        f++;
        t++;
    }
}
