#include "mqtt/wire.h"
#include "test.h"

TEST(vbi_boundaries)
{
    static const uint32_t vals[] = {0, 127, 128, 16383, 16384, 2097151, 2097152, 268435455};
    static const size_t sizes[] = {1, 1, 2, 2, 3, 3, 4, 4};
    for (size_t i = 0; i < 8; i++) {
        uint8_t b[4];
        uint32_t v;
        ASSERT_EQ(mqtt_vbi_encode(vals[i], b), sizes[i]);
        ASSERT_EQ(mqtt_vbi_size(vals[i]), sizes[i]);
        ASSERT_EQ(mqtt_vbi_decode(b, sizes[i], &v), (int)sizes[i]);
        ASSERT_EQ(v, vals[i]);
        ASSERT_EQ(mqtt_vbi_decode(b, sizes[i] - 1, &v), 0); /* incomplete */
    }
    uint8_t b[5];
    ASSERT_EQ(mqtt_vbi_encode(268435456u, b), 0);
    static const uint8_t five[] = {0x80, 0x80, 0x80, 0x80, 0x01};
    uint32_t v;
    ASSERT_EQ(mqtt_vbi_decode(five, 5, &v), -1);
}

TEST(utf8)
{
    ASSERT(mqtt_utf8_valid((const uint8_t *)"plain/ascii", 11));
    ASSERT(mqtt_utf8_valid((const uint8_t *)"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
    ASSERT(!mqtt_utf8_valid((const uint8_t *)"a\0b", 3));             /* U+0000 */
    ASSERT(!mqtt_utf8_valid((const uint8_t *)"\xc0\xaf", 2));         /* overlong */
    ASSERT(!mqtt_utf8_valid((const uint8_t *)"\xe0\x80\xaf", 3));     /* overlong */
    ASSERT(!mqtt_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));     /* surrogate D800 */
    ASSERT(!mqtt_utf8_valid((const uint8_t *)"\xed\xbf\xbf", 3));     /* surrogate DFFF */
    ASSERT(!mqtt_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    ASSERT(!mqtt_utf8_valid((const uint8_t *)"\xe2\x82", 2));         /* truncated */
    ASSERT(!mqtt_utf8_valid((const uint8_t *)"\xff", 1));
    ASSERT(!mqtt_utf8_valid((const uint8_t *)"\x80", 1)); /* lone continuation */
    ASSERT(mqtt_utf8_valid((const uint8_t *)"", 0));
}

TEST(reader_never_overruns)
{
    static const uint8_t b[] = {0, 5, 'a', 'b'};
    struct rd r = {b, b + sizeof(b)};
    struct mqtt_str s;
    bool ok;
    ASSERT(!rd_str(&r, &s, &ok)); /* says 5, has 2 */
    struct rd r2 = {b, b + 1};
    uint16_t h;
    ASSERT(!rd_u16(&r2, &h));
    uint32_t w;
    ASSERT(!rd_u32(&r2, &w));
    struct rd r3 = {b, b + 2};
    ASSERT(rd_u16(&r3, &h));
    ASSERT_EQ(h, 5);
    uint8_t c;
    ASSERT(!rd_u8(&r3, &c));
}

TEST(writer)
{
    uint8_t out[16];
    struct wr w = {out};
    wr_u16(&w, 0x0102);
    wr_u32(&w, 0x03040506);
    wr_vbi(&w, 200);
    wr_str(&w, (struct mqtt_str){(const uint8_t *)"x", 1});
    static const uint8_t want[] = {1, 2, 3, 4, 5, 6, 0xC8, 0x01, 0, 1, 'x'};
    ASSERT_EQ(w.p - out, sizeof(want));
    ASSERT_MEM_EQ(out, want, sizeof(want));
}

int main(void)
{
    RUN(vbi_boundaries);
    RUN(utf8);
    RUN(reader_never_overruns);
    RUN(writer);
    TEST_DONE();
}
