/* Bounds-checked primitives, variable byte integers and UTF-8 validation. */
#include "mqtt/wire.h"

#include <string.h>

bool rd_u8(struct rd *r, uint8_t *v)
{
    if (r->p >= r->end)
        return false;
    *v = *r->p++;
    return true;
}

bool rd_u16(struct rd *r, uint16_t *v)
{
    if (rd_left(r) < 2)
        return false;
    *v = (uint16_t)((r->p[0] << 8) | r->p[1]);
    r->p += 2;
    return true;
}

bool rd_u32(struct rd *r, uint32_t *v)
{
    if (rd_left(r) < 4)
        return false;
    *v = ((uint32_t)r->p[0] << 24) | ((uint32_t)r->p[1] << 16) | ((uint32_t)r->p[2] << 8) | r->p[3];
    r->p += 4;
    return true;
}

bool rd_vbi(struct rd *r, uint32_t *v)
{
    int n = mqtt_vbi_decode(r->p, rd_left(r), v);
    if (n <= 0)
        return false;
    r->p += n;
    return true;
}

bool rd_bin(struct rd *r, struct mqtt_bin *v)
{
    uint16_t len;
    if (!rd_u16(r, &len) || rd_left(r) < len)
        return false;
    v->p = r->p;
    v->len = len;
    r->p += len;
    return true;
}

bool rd_str(struct rd *r, struct mqtt_str *v, bool *utf8_ok)
{
    struct mqtt_bin b;
    if (!rd_bin(r, &b))
        return false;
    v->p = b.p;
    v->len = (uint16_t)b.len;
    *utf8_ok = mqtt_utf8_valid(b.p, b.len);
    return true;
}

void wr_u8(struct wr *w, uint8_t v)
{
    *w->p++ = v;
}

void wr_u16(struct wr *w, uint16_t v)
{
    w->p[0] = (uint8_t)(v >> 8);
    w->p[1] = (uint8_t)v;
    w->p += 2;
}

void wr_u32(struct wr *w, uint32_t v)
{
    w->p[0] = (uint8_t)(v >> 24);
    w->p[1] = (uint8_t)(v >> 16);
    w->p[2] = (uint8_t)(v >> 8);
    w->p[3] = (uint8_t)v;
    w->p += 4;
}

void wr_vbi(struct wr *w, uint32_t v)
{
    w->p += mqtt_vbi_encode(v, w->p);
}

void wr_bytes(struct wr *w, const void *p, size_t n)
{
    if (n)
        memcpy(w->p, p, n);
    w->p += n;
}

void wr_str(struct wr *w, struct mqtt_str s)
{
    wr_u16(w, s.len);
    wr_bytes(w, s.p, s.len);
}

void wr_bin(struct wr *w, struct mqtt_bin b)
{
    wr_u16(w, (uint16_t)b.len);
    wr_bytes(w, b.p, b.len);
}

/* see mqtt.h */
size_t mqtt_vbi_size(uint32_t v)
{
    return v < 128u ? 1 : v < 16384u ? 2 : v < 2097152u ? 3 : 4;
}

/* see mqtt.h */
size_t mqtt_vbi_encode(uint32_t v, uint8_t *out)
{
    if (v > 268435455u)
        return 0;
    size_t n = 0;
    do {
        uint8_t b = v % 128;
        v /= 128;
        out[n++] = (uint8_t)(b | (v ? 0x80 : 0));
    } while (v);
    return n;
}

/* see mqtt.h */
int mqtt_vbi_decode(const uint8_t *p, size_t len, uint32_t *v)
{
    uint32_t val = 0, mult = 1;
    for (size_t i = 0; i < 4; i++) {
        if (i >= len)
            return 0;
        val += (uint32_t)(p[i] & 0x7F) * mult;
        if (!(p[i] & 0x80)) {
            /* MQTT-1.5.5-1: the minimum number of bytes; an overlong zero
             * continuation is tolerated as the specification only says
             * "MUST use the minimum" of the sender, not reject. */
            *v = val;
            return (int)i + 1;
        }
        mult *= 128;
    }
    return -1;
}

/* see mqtt.h */
bool mqtt_utf8_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = p[i];
        uint32_t cp;
        size_t n;
        if (c < 0x80) {
            /* MQTT-1.5.4-2: U+0000 is not allowed. */
            if (c == 0)
                return false;
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            cp = c & 0x1F;
            n = 1;
        } else if ((c & 0xF0) == 0xE0) {
            cp = c & 0x0F;
            n = 2;
        } else if ((c & 0xF8) == 0xF0) {
            cp = c & 0x07;
            n = 3;
        } else {
            return false;
        }
        if (len - i - 1 < n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        /* Overlong forms, surrogates (MQTT-1.5.4-1) and beyond U+10FFFF. */
        static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[n] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return false;
        i += n + 1;
    }
    return true;
}
