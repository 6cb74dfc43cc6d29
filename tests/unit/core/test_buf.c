#include "core/buf.h"
#include "test.h"

TEST(append_consume)
{
    struct buf b;
    buf_init(&b, 0);
    ASSERT(ward_ok(buf_append(&b, "hello", 5)));
    ASSERT_EQ(buf_len(&b), 5);
    buf_consume(&b, 2);
    ASSERT_MEM_EQ(buf_head(&b), "llo", 3);
    buf_consume(&b, 3);
    ASSERT_EQ(buf_len(&b), 0);
    ASSERT_EQ(b.rpos, 0);
    buf_free(&b);
}

TEST(limit_refuses_growth)
{
    struct buf b;
    buf_init(&b, 8);
    ASSERT(ward_ok(buf_append(&b, "12345678", 8)));
    struct ward_result r = buf_append(&b, "9", 1);
    ASSERT_EQ(r.err, WARD_ERR_LIMIT);
    ASSERT_EQ(buf_len(&b), 8);
    /* After consuming, the same capacity is reusable by compaction. */
    buf_consume(&b, 4);
    ASSERT(ward_ok(buf_append(&b, "abcd", 4)));
    ASSERT_MEM_EQ(buf_head(&b), "5678abcd", 8);
    buf_free(&b);
}

TEST(grows_large)
{
    struct buf b;
    buf_init(&b, 0);
    uint8_t chunk[1000];
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 100; i++)
        ASSERT(ward_ok(buf_append(&b, chunk, sizeof(chunk))));
    ASSERT_EQ(buf_len(&b), 100000);
    buf_free(&b);
}

TEST(reserve_commit)
{
    struct buf b;
    buf_init(&b, 0);
    ASSERT(ward_ok(buf_reserve(&b, 16)));
    ASSERT(buf_room(&b) >= 16);
    memcpy(buf_tail(&b), "abc", 3);
    buf_commit(&b, 3);
    ASSERT_EQ(buf_len(&b), 3);
    buf_reset(&b);
    ASSERT_EQ(buf_len(&b), 0);
    buf_free(&b);
}

TEST(release_frees_only_when_empty)
{
    struct buf b;
    buf_init(&b, 64);
    buf_release(&b); /* nothing allocated: a no-op */
    ASSERT(b.data == NULL);
    ASSERT(ward_ok(buf_append(&b, "abc", 3)));
    buf_release(&b); /* bytes queued: kept */
    ASSERT(b.data != NULL);
    ASSERT_MEM_EQ(buf_head(&b), "abc", 3);
    buf_consume(&b, 3);
    buf_release(&b);
    ASSERT(b.data == NULL);
    ASSERT_EQ(b.cap, 0);
    ASSERT_EQ(b.limit, 64); /* the bound survives the release */
    ASSERT(ward_ok(buf_append(&b, "xy", 2)));
    uint8_t big[63] = {0};
    ASSERT_EQ(buf_append(&b, big, sizeof(big)).err, WARD_ERR_LIMIT);
    buf_free(&b);
}

int main(void)
{
    RUN(append_consume);
    RUN(limit_refuses_growth);
    RUN(grows_large);
    RUN(reserve_commit);
    RUN(release_frees_only_when_empty);
    TEST_DONE();
}
