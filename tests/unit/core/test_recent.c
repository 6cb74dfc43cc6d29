#include "core/recent.h"

#include <pthread.h>

#include "core/clock.h"
#include "test.h"

TEST(bad_capacity)
{
    ASSERT(recent_new(0) == NULL);
    ASSERT(recent_new(RECENT_MAX + 1) == NULL);
    struct recent *r = recent_new(RECENT_MAX);
    ASSERT(r != NULL);
    recent_free(r);
}

TEST(empty)
{
    struct recent *r = recent_new(4);
    struct recent_entry e[4];
    ASSERT_EQ(recent_copy(r, e, 4), 0);
    ASSERT_EQ(recent_total(r), 0);
    recent_free(r);
}

TEST(newest_first_and_wraps)
{
    struct recent *r = recent_new(3);
    uint64_t before = clock_wall_ms();
    char cause[16];
    for (unsigned i = 0; i < 5; i++) {
        snprintf(cause, sizeof(cause), "cause %u", i);
        recent_add(r, i, "127.0.0.1:1000", cause);
    }
    struct recent_entry e[8];
    ASSERT_EQ(recent_copy(r, e, 8), 3);
    ASSERT_STR_EQ(e[0].cause, "cause 4");
    ASSERT_STR_EQ(e[1].cause, "cause 3");
    ASSERT_STR_EQ(e[2].cause, "cause 2");
    ASSERT_EQ(e[0].listener, 4);
    ASSERT_STR_EQ(e[2].peer, "127.0.0.1:1000");
    ASSERT(e[0].wall_ms >= before && e[0].wall_ms <= clock_wall_ms());
    ASSERT_EQ(recent_total(r), 5);
    /* Fewer than held: the newest. */
    ASSERT_EQ(recent_copy(r, e, 1), 1);
    ASSERT_STR_EQ(e[0].cause, "cause 4");
    ASSERT_EQ(recent_copy(r, e, 0), 0);
    recent_free(r);
}

TEST(peer_chosen_text_is_escaped_and_cut)
{
    struct recent *r = recent_new(2);
    recent_add(r, 0, "client 'a\nb\x1b[31m' (1.2.3.4:5)", "bad\\pass\r");
    char big[1000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    recent_add(r, RECENT_LISTENER_NONE, big, big);
    struct recent_entry e[2];
    ASSERT_EQ(recent_copy(r, e, 2), 2);
    ASSERT_EQ(strlen(e[0].peer), RECENT_PEER_MAX - 1);
    ASSERT_EQ(strlen(e[0].cause), RECENT_CAUSE_MAX - 1);
    ASSERT_EQ(e[0].listener, RECENT_LISTENER_NONE);
    ASSERT(strchr(e[1].peer, '\n') == NULL && strchr(e[1].peer, 0x1b) == NULL);
    ASSERT(strstr(e[1].peer, "\\x0a") != NULL);
    ASSERT(strchr(e[1].cause, '\r') == NULL);
    recent_free(r);
}

TEST(null_text)
{
    struct recent *r = recent_new(1);
    recent_add(r, 1, NULL, NULL);
    struct recent_entry e;
    ASSERT_EQ(recent_copy(r, &e, 1), 1);
    ASSERT_STR_EQ(e.peer, "");
    ASSERT_STR_EQ(e.cause, "");
    recent_free(r);
}

#define THREADS 4
#define EACH    5000

static void *adder(void *arg)
{
    struct recent *r = arg;
    for (int i = 0; i < EACH; i++)
        recent_add(r, 2, "[::1]:4000", "TLS handshake failed: unknown CA");
    return NULL;
}

TEST(concurrent_adds_all_counted)
{
    struct recent *r = recent_new(8);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        ASSERT_EQ(pthread_create(&t[i], NULL, adder, r), 0);
    struct recent_entry e[8];
    for (int i = 0; i < 100; i++) /* a reader alongside the writers */
        ASSERT(recent_copy(r, e, 8) <= 8);
    for (int i = 0; i < THREADS; i++)
        ASSERT_EQ(pthread_join(t[i], NULL), 0);
    ASSERT_EQ(recent_total(r), THREADS * EACH);
    ASSERT_EQ(recent_copy(r, e, 8), 8);
    ASSERT_STR_EQ(e[7].cause, "TLS handshake failed: unknown CA");
    recent_free(r);
}

TEST(process_ring)
{
    struct recent *p = recent_process();
    ASSERT(p == recent_process());
    uint64_t before = recent_total(p);
    for (int i = 0; i < RECENT_DEFAULT + 3; i++)
        recent_refusal(7, "10.0.0.1:1", "not authorized");
    ASSERT_EQ(recent_total(p), before + RECENT_DEFAULT + 3);
    struct recent_entry e[RECENT_DEFAULT + 3];
    ASSERT_EQ(recent_copy(p, e, RECENT_DEFAULT + 3), RECENT_DEFAULT);
    ASSERT_EQ(e[0].listener, 7);
    recent_free(p); /* the process ring is never freed */
    ASSERT_EQ(recent_total(p), before + RECENT_DEFAULT + 3);
}

int main(void)
{
    RUN(bad_capacity);
    RUN(empty);
    RUN(newest_first_and_wraps);
    RUN(peer_chosen_text_is_escaped_and_cut);
    RUN(null_text);
    RUN(concurrent_adds_all_counted);
    RUN(process_ring);
    TEST_DONE();
}
