#include "admin/history.h"

#include <pthread.h>

#include "core/clock.h"
#include "test.h"

/* A source whose counters the test sets. */
struct fake {
    struct history_counters c;
    bool fail;
    unsigned calls;
    pthread_mutex_t lock;
    pthread_cond_t called;
};

static bool fake_read(void *ctx, struct history_counters *c)
{
    struct fake *f = ctx;
    pthread_mutex_lock(&f->lock);
    f->calls++;
    *c = f->c;
    bool ok = !f->fail;
    pthread_cond_broadcast(&f->called);
    pthread_mutex_unlock(&f->lock);
    return ok;
}

static void fake_init(struct fake *f)
{
    *f = (struct fake){0};
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->called, NULL);
}

TEST(no_source)
{
    ASSERT(history_new(NULL, NULL) == NULL);
}

TEST(rates_between_samples)
{
    struct fake f;
    fake_init(&f);
    struct history *h = history_new(fake_read, &f);
    struct history_point p[4];
    ASSERT_EQ(history_points(h, p, 4), 0);
    ASSERT(history_tick(h, 1000));
    ASSERT_EQ(history_points(h, p, 4), 0); /* one sample: no interval yet */
    ASSERT(!history_tick(h, 1000 + HISTORY_INTERVAL_MS - 1));
    f.c = (struct history_counters){.connections = 3,
                                    .msgs_in = 500,
                                    .msgs_out = 1000,
                                    .bytes_in = 50000,
                                    .bytes_out = 100000,
                                    .dropped = 7};
    ASSERT(history_tick(h, 1000 + HISTORY_INTERVAL_MS));
    ASSERT_EQ(history_points(h, p, 4), 1);
    ASSERT_EQ(p[0].connections, 3);
    ASSERT_EQ((long long)p[0].msgs_in, 100);
    ASSERT_EQ((long long)p[0].msgs_out, 200);
    ASSERT_EQ((long long)p[0].bytes_in, 10000);
    ASSERT_EQ((long long)p[0].bytes_out, 20000);
    ASSERT_EQ(p[0].dropped, 7);
    ASSERT(p[0].wall_ms > 1577836800000ull);
    /* A late sample: the rate is over the real gap (10 s here). */
    f.c.msgs_in += 1000;
    ASSERT(history_tick(h, 1000 + 3 * HISTORY_INTERVAL_MS));
    ASSERT_EQ(history_points(h, p, 4), 2);
    ASSERT_EQ((long long)p[1].msgs_in, 100);
    ASSERT_EQ(p[1].dropped, 0);
    history_free(h);
}

TEST(counter_going_down_counts_nothing)
{
    struct fake f;
    fake_init(&f);
    struct history *h = history_new(fake_read, &f);
    f.c.msgs_out = 100;
    f.c.dropped = 10;
    ASSERT(history_tick(h, 0));
    f.c.msgs_out = 50;
    f.c.dropped = 5;
    ASSERT(history_tick(h, HISTORY_INTERVAL_MS));
    struct history_point p;
    ASSERT_EQ(history_points(h, &p, 1), 1);
    ASSERT(p.msgs_out == 0.0);
    ASSERT_EQ(p.dropped, 0);
    history_free(h);
}

TEST(failed_read_takes_no_sample)
{
    struct fake f;
    fake_init(&f);
    f.fail = true;
    struct history *h = history_new(fake_read, &f);
    ASSERT(!history_tick(h, 0));
    f.fail = false;
    ASSERT(history_tick(h, 1)); /* still the first sample: taken at once */
    history_free(h);
}

TEST(ring_keeps_the_last_span)
{
    struct fake f;
    fake_init(&f);
    struct history *h = history_new(fake_read, &f);
    unsigned total = HISTORY_SAMPLES + 50;
    for (unsigned i = 0; i < total; i++) {
        f.c.msgs_in = (uint64_t)i * 5; /* 1 message a second throughout ... */
        f.c.connections = i;
        ASSERT(history_tick(h, (uint64_t)i * HISTORY_INTERVAL_MS));
    }
    static struct history_point p[HISTORY_SAMPLES + 10];
    unsigned n = history_points(h, p, HISTORY_SAMPLES + 10);
    ASSERT_EQ(n, HISTORY_SAMPLES - 1);
    ASSERT_EQ(n * HISTORY_INTERVAL_MS, HISTORY_SPAN_MS);
    /* ... oldest first, ending with the newest sample. */
    ASSERT_EQ(p[n - 1].connections, total - 1);
    ASSERT_EQ(p[0].connections, total - n);
    for (unsigned i = 0; i < n; i++)
        ASSERT_EQ((long long)(p[i].msgs_in * 1000), 1000);
    /* Fewer asked: the newest. */
    ASSERT_EQ(history_points(h, p, 2), 2);
    ASSERT_EQ(p[1].connections, total - 1);
    ASSERT_EQ(p[0].connections, total - 2);
    history_free(h);
}

TEST(thread_samples_at_once_and_stops)
{
    struct fake f;
    fake_init(&f);
    struct history *h = history_new(fake_read, &f);
    ASSERT_EQ(history_start(h), 0);
    ASSERT_EQ(history_start(h), 0); /* already running: nothing more */
    pthread_mutex_lock(&f.lock);
    while (f.calls == 0)
        pthread_cond_wait(&f.called, &f.lock);
    pthread_mutex_unlock(&f.lock);
    uint64_t t0 = clock_mono_ms();
    history_stop(h); /* wakes the sleeping thread: no 5 s wait */
    ASSERT(clock_mono_ms() - t0 < HISTORY_INTERVAL_MS);
    history_stop(h);
    ASSERT_EQ(f.calls, 1);
    history_free(h);
}

TEST(free_stops_a_running_thread)
{
    struct fake f;
    fake_init(&f);
    struct history *h = history_new(fake_read, &f);
    ASSERT_EQ(history_start(h), 0);
    history_free(h);
    history_free(NULL);
}

int main(void)
{
    RUN(no_source);
    RUN(rates_between_samples);
    RUN(counter_going_down_counts_nothing);
    RUN(failed_read_takes_no_sample);
    RUN(ring_keeps_the_last_span);
    RUN(thread_samples_at_once_and_stops);
    RUN(free_stops_a_running_thread);
    TEST_DONE();
}
