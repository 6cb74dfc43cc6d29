/* libFuzzer target for the MQTT codec (src/mqtt/).
 *
 * The first input byte picks the codec state (protocol version, which side is
 * decoding, a packet size limit); the rest is a byte stream decoded packet by
 * packet, the way a connection's read buffer is. Every packet that decodes is
 * walked with the iterators, encoded again and decoded again: the encoder
 * must agree with its own size function, and what it writes must decode. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/mqtt.h"

static const uint8_t versions[] = {0, MQTT_V31, MQTT_V311, MQTT_V5};

/* Decoded SUBSCRIBE/UNSUBSCRIBE packets keep their entries in the payload;
 * the encoder reads arrays. Walking the iterators into arrays checks that
 * they yield exactly `count` entries and lets the packet be encoded again.
 * The arrays are owned by the caller (freed after the round trip). */
static void *walk(struct mqtt_packet *p)
{
    size_t pos = 0;
    uint32_t n = 0;
    struct mqtt_str s, k;

    switch (p->type) {
    case MQTT_SUBSCRIBE: {
        struct mqtt_subscription *subs = calloc(p->u.subscribe.count + 1, sizeof *subs);
        while (n <= p->u.subscribe.count && mqtt_subscribe_next(&p->u.subscribe, &pos, &subs[n]))
            n++;
        if (n != p->u.subscribe.count)
            abort();
        p->u.subscribe.subs = subs;
        return subs;
    }
    case MQTT_UNSUBSCRIBE: {
        struct mqtt_str *filters = calloc(p->u.unsubscribe.count + 1, sizeof *filters);
        while (n <= p->u.unsubscribe.count &&
               mqtt_unsubscribe_next(&p->u.unsubscribe, &pos, &filters[n]))
            n++;
        if (n != p->u.unsubscribe.count)
            abort();
        p->u.unsubscribe.filters = filters;
        return filters;
    }
    case MQTT_PUBLISH:
        while (mqtt_props_next_user(&p->u.publish.props, &pos, &k, &s))
            ;
        break;
    default:
        break;
    }
    return NULL;
}

static void roundtrip(const struct mqtt_codec *codec, const struct mqtt_packet *p)
{
    size_t want = mqtt_encoded_size(codec, p);
    uint8_t *out = malloc(want ? want : 1);
    size_t n = mqtt_encode(codec, p, out, want);
    struct mqtt_packet again;
    size_t used = 0;

    if (n != 0 && n != want)
        abort(); /* the size function and the encoder disagree */
    if (n != 0 && mqtt_decode(codec, out, n, &again, &used) == 0 && used != n)
        abort(); /* a re-encoded packet must be consumed whole */
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct mqtt_codec codec = {
        .version = versions[data[0] & 3],
        .is_server = (data[0] & 4) != 0,
        .max_packet_size = (data[0] & 8) ? 64 : 0,
    };
    const uint8_t *p = data + 1;
    size_t left = size - 1;

    while (left > 0) {
        struct mqtt_packet pkt;
        size_t used = 0;
        int rc = mqtt_decode(&codec, p, left, &pkt, &used);
        if (rc != 0)
            break; /* incomplete or refused: a connection would stop here too */
        if (used == 0 || used > left)
            abort(); /* progress must be made, inside the buffer */
        if (pkt.type == MQTT_CONNECT && codec.version == 0)
            codec.version = pkt.u.connect.version;
        void *arrays = walk(&pkt);
        roundtrip(&codec, &pkt);
        free(arrays);
        p += used;
        left -= used;
    }
    return 0;
}
