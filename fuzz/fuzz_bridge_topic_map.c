/* libFuzzer target for bridge topic remapping: the input is split at NUL
 * bytes into filter, target, prefix, suffix and topic. A rule that
 * bridge_map_valid accepts must map a topic its filter matches (per
 * mqtt_topic_match) to a valid topic name or to nothing, never past the
 * output buffer; a filter that does not match maps nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/topic_map.h"
#include "fuzz_text.h"
#include "mqtt/mqtt.h"

static const char *field(const char **p, const char *end)
{
    const char *s = *p;
    const char *z = memchr(s, '\0', (size_t)(end - s));
    *p = z ? z + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 4096)
        return 0;
    char *buf = fuzz_text(data, size);
    if (!buf)
        return 0;
    const char *p = buf, *end = buf + size;
    const char *filter = field(&p, end), *target = field(&p, end), *prefix = field(&p, end);
    const char *suffix = field(&p, end), *topic = p < end ? p : "";
    size_t tlen = strlen(topic);
    char err[256], out[512];
    if (bridge_map_valid(filter, *target ? target : NULL, err, sizeof(err)) &&
        mqtt_topic_name_valid((const uint8_t *)topic, tlen)) {
        size_t n = bridge_map_topic(filter, *target ? target : NULL, *prefix ? prefix : NULL,
                                    *suffix ? suffix : NULL, topic, tlen, out, sizeof(out));
        bool matches =
            mqtt_topic_match((const uint8_t *)filter, strlen(filter), (const uint8_t *)topic, tlen);
        if (n && (!matches || n >= sizeof(out) || strlen(out) != n ||
                  !mqtt_topic_name_valid((const uint8_t *)out, n)))
            abort();
    }
    free(buf);
    return 0;
}
