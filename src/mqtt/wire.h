/* Internal to src/mqtt: a bounds-checked reader and writer over a byte
 * range, and the property table. Not part of the codec's public API. */
#ifndef WARD_MQTT_WIRE_H
#define WARD_MQTT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/result.h"

#include "mqtt/mqtt.h"

/* A read cursor. Every read fails (returns false) rather than overrun. */
struct rd {
    const uint8_t *p;
    const uint8_t *end;
};

WARD_WUR bool rd_u8(struct rd *r, uint8_t *v);
WARD_WUR bool rd_u16(struct rd *r, uint16_t *v);
WARD_WUR bool rd_u32(struct rd *r, uint32_t *v);
WARD_WUR bool rd_vbi(struct rd *r, uint32_t *v);
/* A length-prefixed binary field. */
WARD_WUR bool rd_bin(struct rd *r, struct mqtt_bin *v);
/* A length-prefixed UTF-8 string; *utf8_ok says whether it is valid
 * MQTT UTF-8 (MQTT-1.5.4-1/2). */
WARD_WUR bool rd_str(struct rd *r, struct mqtt_str *v, bool *utf8_ok);
static inline size_t rd_left(const struct rd *r)
{
    return (size_t)(r->end - r->p);
}

/* A write cursor over a buffer known to be large enough (callers size it
 * with the matching *_size functions first). */
struct wr {
    uint8_t *p;
};

void wr_u8(struct wr *w, uint8_t v);
void wr_u16(struct wr *w, uint16_t v);
void wr_u32(struct wr *w, uint32_t v);
void wr_vbi(struct wr *w, uint32_t v);
void wr_bytes(struct wr *w, const void *p, size_t n);
void wr_str(struct wr *w, struct mqtt_str s);
void wr_bin(struct wr *w, struct mqtt_bin b);

/* Properties (props.c). `type` is the packet type the block belongs to;
 * will=true for the will properties of CONNECT. Decoding returns 0 or a
 * reason code. */
WARD_WUR int props_decode(struct rd *r, enum mqtt_type type, bool will, bool from_client,
                          struct mqtt_props *out);
/* Size of the property block's content (without its length prefix). */
size_t props_size(const struct mqtt_props *p);
/* Writes the length prefix and the properties. */
void props_write(struct wr *w, const struct mqtt_props *p);

#endif
