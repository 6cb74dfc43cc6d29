/* ward bench's statistics: latency buckets and quantiles, and the
 * loss / duplicate / order bookkeeping per publisher. */
#include "app/bench_stats.h"
#include "test.h"

static struct bench_hist h, h2;

#define MS(x) ((uint64_t)((x)*1e6)) /* milliseconds in nanoseconds */

/* Quantiles are bucket middles: compare with a tolerance well below the
 * bucket width. */
#define ASSERT_NEAR(a, b)                                                                          \
    do {                                                                                           \
        double a__ = (a), b__ = (b);                                                               \
        if (a__ - b__ > 1e-9 || b__ - a__ > 1e-9)                                                  \
            TEST_FAIL_("%s == %s: %.6f != %.6f", #a, #b, a__, b__);                                \
    } while (0)

TEST(empty)
{
    memset(&h, 0, sizeof(h));
    ASSERT_EQ(bench_hist_count(&h), 0);
    ASSERT_NEAR(bench_hist_quantile(&h, 0.5), 0);
    ASSERT_NEAR(bench_hist_quantile(&h, 1 - 1e-12), 0);
}

TEST(buckets)
{
    memset(&h, 0, sizeof(h));
    bench_hist_add(&h, 0);
    ASSERT_EQ(h.n[0], 1);
    bench_hist_add(&h, 9999); /* 9.999 us: still the first 10 us */
    ASSERT_EQ(h.n[0], 2);
    bench_hist_add(&h, 10000);
    ASSERT_EQ(h.n[1], 1);
    bench_hist_add(&h, MS(99.999));
    ASSERT_EQ(h.n[BENCH_HIST_FINE - 1], 1);
    bench_hist_add(&h, MS(100)); /* 1 ms buckets from here */
    ASSERT_EQ(h.n[BENCH_HIST_FINE], 1);
    bench_hist_add(&h, MS(100.999));
    ASSERT_EQ(h.n[BENCH_HIST_FINE], 2);
    bench_hist_add(&h, MS(101));
    ASSERT_EQ(h.n[BENCH_HIST_FINE + 1], 1);
    bench_hist_add(&h, MS(9999.5));
    ASSERT_EQ(h.n[BENCH_HIST_BUCKETS - 2], 1);
    bench_hist_add(&h, MS(10000)); /* 10 s and everything above: the last */
    bench_hist_add(&h, UINT64_MAX);
    ASSERT_EQ(h.n[BENCH_HIST_BUCKETS - 1], 2);
    ASSERT_EQ(bench_hist_count(&h), 10);
}

TEST(quantiles)
{
    /* 100 samples: 1 ms .. 100 ms */
    memset(&h, 0, sizeof(h));
    for (int i = 1; i <= 100; i++)
        bench_hist_add(&h, MS(i));
    ASSERT_EQ(bench_hist_count(&h), 100);
    /* rank 50 (from 0) is the 51st sample, 51 ms: bucket 5100, middle 51.005 */
    ASSERT_NEAR(bench_hist_quantile(&h, 0.5), 51.005);
    ASSERT_NEAR(bench_hist_quantile(&h, 0.99), 100.5); /* 100 ms: the first 1 ms bucket */
    ASSERT_NEAR(bench_hist_quantile(&h, 1 - 1e-12), 100.5);
    ASSERT_NEAR(bench_hist_quantile(&h, 0), 1.005);
    /* one sample: every quantile is it */
    memset(&h, 0, sizeof(h));
    bench_hist_add(&h, 250000); /* 0.25 ms */
    ASSERT_NEAR(bench_hist_quantile(&h, 0), 0.255);
    ASSERT_NEAR(bench_hist_quantile(&h, 0.5), 0.255);
    ASSERT_NEAR(bench_hist_quantile(&h, 0.99), 0.255);
    /* a slow tail moves p99 and max, not the median */
    memset(&h, 0, sizeof(h));
    for (int i = 0; i < 98; i++)
        bench_hist_add(&h, MS(1));
    bench_hist_add(&h, MS(2000));
    bench_hist_add(&h, MS(20000));
    ASSERT_NEAR(bench_hist_quantile(&h, 0.5), 1.005);
    ASSERT_NEAR(bench_hist_quantile(&h, 0.99), 10000.5); /* rank 99: the last bucket */
    ASSERT_NEAR(bench_hist_quantile(&h, 0.98), 2000.5);
}

TEST(merge)
{
    memset(&h, 0, sizeof(h));
    memset(&h2, 0, sizeof(h2));
    bench_hist_add(&h, MS(1));
    bench_hist_add(&h2, MS(1));
    bench_hist_add(&h2, MS(300));
    bench_hist_merge(&h, &h2);
    ASSERT_EQ(bench_hist_count(&h), 3);
    ASSERT_EQ(h.n[100], 2);
    ASSERT_EQ(bench_hist_count(&h2), 2); /* the source is unchanged */
    ASSERT_NEAR(bench_hist_quantile(&h, 0.9), 300.5);
}

TEST(seen_new_dup_late)
{
    struct bench_seen s = {0};
    ASSERT_EQ(bench_seen_add(&s, 0), BENCH_SEQ_NEW);
    ASSERT_EQ(bench_seen_add(&s, 1), BENCH_SEQ_NEW);
    ASSERT_EQ(bench_seen_add(&s, 1), BENCH_SEQ_DUP);
    ASSERT_EQ(bench_seen_add(&s, 5), BENCH_SEQ_NEW); /* a gap is not a fault here */
    ASSERT_EQ(bench_seen_add(&s, 3), BENCH_SEQ_LATE);
    ASSERT_EQ(bench_seen_add(&s, 3), BENCH_SEQ_DUP);
    ASSERT_EQ(bench_seen_add(&s, 4), BENCH_SEQ_LATE);
    ASSERT_EQ(bench_seen_add(&s, 6), BENCH_SEQ_NEW);
    ASSERT_EQ(bench_seen_add(&s, 0), BENCH_SEQ_DUP);
    bench_seen_free(&s);
    ASSERT(s.bits == NULL && s.cap == 0 && !s.any);
}

TEST(seen_grows)
{
    struct bench_seen s = {0};
    ASSERT_EQ(bench_seen_add(&s, 65535), BENCH_SEQ_NEW); /* the first block's last */
    uint64_t cap = s.cap;
    ASSERT_EQ(bench_seen_add(&s, 65536), BENCH_SEQ_NEW);
    ASSERT(s.cap > cap);
    ASSERT_EQ(bench_seen_add(&s, 1000000), BENCH_SEQ_NEW);
    ASSERT_EQ(bench_seen_add(&s, 65535), BENCH_SEQ_DUP); /* kept across growth */
    ASSERT_EQ(bench_seen_add(&s, 1000000), BENCH_SEQ_DUP);
    ASSERT_EQ(bench_seen_add(&s, 999999), BENCH_SEQ_LATE);
    bench_seen_free(&s);
}

/* A corrupt sequence number must not allocate 2^61 bytes (or loop). */
TEST(seen_bounded)
{
    struct bench_seen s = {0};
    ASSERT_EQ(bench_seen_add(&s, UINT64_MAX), BENCH_SEQ_NEW);
    ASSERT_EQ(bench_seen_add(&s, BENCH_SEQ_MAX + 1), BENCH_SEQ_NEW);
    ASSERT(s.cap == 0); /* nothing allocated, nothing remembered */
    ASSERT_EQ(bench_seen_add(&s, 7), BENCH_SEQ_NEW);
    bench_seen_free(&s);
}

TEST(seen_missing)
{
    struct bench_seen want = {0}, got = {0}, none = {0};
    ASSERT_EQ(bench_seen_missing(&none, &none), 0);
    for (uint64_t i = 0; i < 10; i++)
        bench_seen_add(&want, i);
    bench_seen_add(&want, 200000); /* in a later block than got has */
    ASSERT_EQ(bench_seen_missing(&want, &none), 11);
    ASSERT_EQ(bench_seen_missing(&none, &want), 0);
    bench_seen_add(&got, 0);
    bench_seen_add(&got, 7);
    bench_seen_add(&got, 9);
    bench_seen_add(&got, 12); /* received, never acknowledged: not missing */
    ASSERT_EQ(bench_seen_missing(&want, &got), 8);
    bench_seen_add(&got, 200000);
    ASSERT_EQ(bench_seen_missing(&want, &got), 7);
    ASSERT_EQ(bench_seen_missing(&got, &want), 1); /* 12 */
    ASSERT_EQ(bench_seen_missing(&want, &want), 0);
    bench_seen_free(&want);
    bench_seen_free(&got);
}

TEST(pid_seq)
{
    uint64_t seq = 99;
    ASSERT(!bench_pid_seq(0, 1, &seq)); /* nothing sent yet */
    ASSERT(!bench_pid_seq(5, 0, &seq)); /* 0 is no packet id */
    ASSERT(bench_pid_seq(1, 1, &seq));  /* message 0 went with id 1 */
    ASSERT_EQ(seq, 0);
    ASSERT(!bench_pid_seq(1, 2, &seq)); /* id 2 not used yet */
    ASSERT(bench_pid_seq(10, 10, &seq));
    ASSERT_EQ(seq, 9);
    ASSERT(bench_pid_seq(10, 3, &seq));
    ASSERT_EQ(seq, 2);
    /* around the wrap: message 65534 has id 65535, 65535 has id 1 again */
    ASSERT(bench_pid_seq(65535, 65535, &seq));
    ASSERT_EQ(seq, 65534);
    ASSERT(bench_pid_seq(65536, 1, &seq));
    ASSERT_EQ(seq, 65535);
    ASSERT(bench_pid_seq(65536, 65535, &seq));
    ASSERT_EQ(seq, 65534);
    ASSERT(bench_pid_seq(65536 + 100, 65500, &seq)); /* 135 back, before the wrap */
    ASSERT_EQ(seq, 65499);
    /* the latest message with that id wins */
    ASSERT(bench_pid_seq(3 * 65535 + 1, 1, &seq));
    ASSERT_EQ(seq, 3 * 65535);
}

TEST(acks_fifo)
{
    struct bench_acks q = {0};
    uint16_t pid = 0;
    ASSERT_EQ(bench_acks_next(&q), UINT64_MAX);
    ASSERT(!bench_acks_pop(&q, UINT64_MAX, &pid)); /* empty */
    ASSERT_EQ(bench_acks_push(&q, 100, 1), 0);
    ASSERT_EQ(bench_acks_push(&q, 150, 2), 0);
    ASSERT_EQ(bench_acks_next(&q), 100);
    ASSERT(!bench_acks_pop(&q, 99, &pid)); /* not due */
    ASSERT_EQ(pid, 0);
    ASSERT(bench_acks_pop(&q, 100, &pid));
    ASSERT_EQ(pid, 1);
    ASSERT(!bench_acks_pop(&q, 149, &pid));
    ASSERT(bench_acks_pop(&q, 1000, &pid));
    ASSERT_EQ(pid, 2);
    ASSERT(!bench_acks_pop(&q, 1000, &pid));
    ASSERT_EQ(q.len, 0);
    bench_acks_free(&q);
    ASSERT(q.a == NULL && q.cap == 0);
}

/* The ring grows while wrapped and keeps the order. */
TEST(acks_grow_wrapped)
{
    struct bench_acks q = {0};
    uint16_t pid;
    uint16_t next_in = 1, next_out = 1;
    for (int i = 0; i < 1000; i++, next_in++)
        ASSERT_EQ(bench_acks_push(&q, next_in, next_in), 0);
    for (int i = 0; i < 600; i++, next_out++) {
        ASSERT(bench_acks_pop(&q, UINT64_MAX - 1, &pid));
        ASSERT_EQ(pid, next_out);
    }
    size_t cap = q.cap;
    for (int i = 0; i < 5000; i++, next_in++) /* wraps, then grows */
        ASSERT_EQ(bench_acks_push(&q, next_in, next_in), 0);
    ASSERT(q.cap > cap);
    ASSERT_EQ(q.len, 5400);
    while (bench_acks_pop(&q, UINT64_MAX - 1, &pid)) {
        ASSERT_EQ(pid, next_out);
        next_out++;
    }
    ASSERT_EQ(next_out, next_in);
    ASSERT_EQ(bench_acks_next(&q), UINT64_MAX);
    bench_acks_free(&q);
}

int main(void)
{
    RUN(empty);
    RUN(buckets);
    RUN(quantiles);
    RUN(merge);
    RUN(seen_new_dup_late);
    RUN(seen_grows);
    RUN(seen_bounded);
    RUN(seen_missing);
    RUN(pid_seq);
    RUN(acks_fifo);
    RUN(acks_grow_wrapped);
    TEST_DONE();
}
