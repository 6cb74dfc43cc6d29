/* Handshake slots, queue and fairness (src/net/hsgate.c). */
#include "net/hsgate.h"
#include "test.h"

static void src(struct hsgate_entry *e, uint32_t addr)
{
    memset(e, 0, sizeof(*e));
    e->src[10] = e->src[11] = 0xFF;
    e->src[12] = (uint8_t)(addr >> 24);
    e->src[13] = (uint8_t)(addr >> 16);
    e->src[14] = (uint8_t)(addr >> 8);
    e->src[15] = (uint8_t)addr;
}

static enum hsgate_verdict arrive(struct hsgate *g, struct hsgate_entry *e)
{
    struct hsgate_entry *ev = NULL;
    enum hsgate_verdict v = hsgate_arrive(g, e, 0, &ev);
    ASSERT(ev == NULL);
    return v;
}

/* Once every entry has left, no slot, no place in the queue and no source
 * is still counted; then frees the gate. */
static void drained_free(struct hsgate *g)
{
    ASSERT_EQ(g->active, 0u);
    ASSERT_EQ(g->waiting, 0u);
    ASSERT_EQ(g->nsrc, 0u);
    hsgate_free(g);
}

TEST(cap_then_queue_then_refuse)
{
    struct hsgate g;
    hsgate_init(&g, 2, 2, 0);
    struct hsgate_entry e[5];
    for (int i = 0; i < 5; i++)
        src(&e[i], 1);
    ASSERT_EQ(arrive(&g, &e[0]), HSGATE_ADMITTED);
    ASSERT_EQ(arrive(&g, &e[1]), HSGATE_ADMITTED);
    ASSERT_EQ(arrive(&g, &e[2]), HSGATE_QUEUED);
    ASSERT_EQ(arrive(&g, &e[3]), HSGATE_QUEUED);
    /* One source only: nobody to take a place from. */
    ASSERT_EQ(arrive(&g, &e[4]), HSGATE_REFUSED);
    ASSERT_EQ(e[4].state, HSGATE_OUT);
    /* A freed slot goes to the oldest waiting. */
    ASSERT(hsgate_leave(&g, &e[0]) == &e[2]);
    ASSERT_EQ(e[2].state, HSGATE_ACTIVE);
    /* Leaving the queue frees no slot. */
    ASSERT(hsgate_leave(&g, &e[3]) == NULL);
    ASSERT(hsgate_leave(&g, &e[3]) == NULL); /* idempotent */
    ASSERT(hsgate_leave(&g, &e[1]) == NULL);
    ASSERT(hsgate_leave(&g, &e[2]) == NULL);
    drained_free(&g);
}

/* One address holds every slot; another arrives: it takes the slot of the
 * flooder's oldest idle handshake. */
TEST(newcomer_takes_a_slot_from_the_flooder)
{
    struct hsgate g;
    hsgate_init(&g, 4, 4, 0);
    struct hsgate_entry f[4], real;
    for (int i = 0; i < 4; i++) {
        src(&f[i], 7);
        f[i].idle = i != 0; /* f[0] has sent a ClientHello */
        ASSERT_EQ(arrive(&g, &f[i]), HSGATE_ADMITTED);
    }
    src(&real, 9);
    struct hsgate_entry *ev = NULL;
    ASSERT_EQ(hsgate_arrive(&g, &real, 0, &ev), HSGATE_ADMITTED);
    ASSERT(ev == &f[1]); /* the oldest idle one, not f[0] */
    ASSERT_EQ(f[1].state, HSGATE_OUT);
    uint32_t a, w;
    hsgate_source(&g, real.src, &a, &w);
    ASSERT_EQ(a, 1u);
    hsgate_source(&g, f[0].src, &a, &w);
    ASSERT_EQ(a, 3u);
    /* A second newcomer from the same address: share is 4/2 = 2, it has 1,
     * the flooder 3 > 2: another slot changes hands. */
    struct hsgate_entry real2;
    src(&real2, 9);
    ASSERT_EQ(hsgate_arrive(&g, &real2, 0, &ev), HSGATE_ADMITTED);
    ASSERT(ev == &f[2]);
    /* Now 2 and 2: a third from 9 waits. */
    struct hsgate_entry real3;
    src(&real3, 9);
    ASSERT_EQ(arrive(&g, &real3), HSGATE_QUEUED);
    hsgate_free(&g);
}

/* A silent handshake loses its slot only once it has been silent for
 * evict_idle_ms since it arrived: a newcomer arriving before that waits (a
 * storm's ClientHello may be slow to come); rebalancing later, once the
 * silence has lasted, gives it the slot; one that spoke in time keeps it. */
TEST(a_slot_changes_hands_only_after_the_silence_lasted)
{
    struct hsgate g;
    hsgate_init(&g, 2, 4, 1000);
    struct hsgate_entry f[2], real;
    struct hsgate_entry *ev = NULL;
    for (int i = 0; i < 2; i++) {
        src(&f[i], 7);
        f[i].idle = true;
        ASSERT_EQ(hsgate_arrive(&g, &f[i], 5000 + i * 500, &ev), HSGATE_ADMITTED);
        ASSERT(ev == NULL);
    }
    src(&real, 9);
    ASSERT_EQ(hsgate_arrive(&g, &real, 5999, &ev), HSGATE_QUEUED); /* f[0] silent 999 ms */
    ASSERT(ev == NULL);
    ASSERT(hsgate_rebalance(&g, 5999, &ev) == NULL);
    ASSERT(ev == NULL);
    ASSERT(hsgate_rebalance(&g, 6000, &ev) == &real); /* 1000 ms: the slot changes hands */
    ASSERT(ev == &f[0]);
    ASSERT_EQ(f[0].state, HSGATE_OUT);
    ASSERT_EQ(real.state, HSGATE_ACTIVE);
    ASSERT_EQ(f[1].state, HSGATE_ACTIVE);
    /* Now 1 and 1 of 2: nobody is above the share, nothing moves. */
    ASSERT(hsgate_rebalance(&g, 9000, &ev) == NULL);
    hsgate_leave(&g, &real);
    hsgate_leave(&g, &f[1]);
    drained_free(&g);
}

/* A source at its share waiting, or a holder that has spoken: rebalancing
 * changes nothing. */
TEST(rebalance_leaves_fair_and_busy_slots_alone)
{
    struct hsgate g;
    hsgate_init(&g, 2, 4, 0);
    struct hsgate_entry a, b, c;
    struct hsgate_entry *ev = NULL;
    src(&a, 7);
    src(&b, 9);
    src(&c, 9);
    a.idle = b.idle = true;
    ASSERT_EQ(arrive(&g, &a), HSGATE_ADMITTED);
    ASSERT_EQ(arrive(&g, &b), HSGATE_ADMITTED);
    ASSERT_EQ(arrive(&g, &c), HSGATE_QUEUED); /* 9 already holds its share of 1 */
    ASSERT(hsgate_rebalance(&g, 100000, &ev) == NULL);
    ASSERT(ev == NULL);
    hsgate_leave(&g, &a); /* the freed slot goes to c */
    ASSERT_EQ(c.state, HSGATE_ACTIVE);
    hsgate_leave(&g, &b);
    hsgate_leave(&g, &c);
    drained_free(&g);
}

/* Every handshake of the busy source is under way (a reconnect storm, not
 * a slow-loris): the newcomer waits instead of cutting one short, and the
 * next freed slot is its. */
TEST(handshakes_under_way_are_not_cut_short)
{
    struct hsgate g;
    hsgate_init(&g, 2, 4, 0);
    struct hsgate_entry f[2], real;
    for (int i = 0; i < 2; i++) {
        src(&f[i], 7);
        f[i].idle = false;
        ASSERT_EQ(arrive(&g, &f[i]), HSGATE_ADMITTED);
    }
    struct hsgate_entry more;
    src(&more, 7);
    more.idle = false;
    ASSERT_EQ(arrive(&g, &more), HSGATE_QUEUED);
    src(&real, 9);
    struct hsgate_entry *ev = NULL;
    ASSERT_EQ(hsgate_arrive(&g, &real, 0, &ev), HSGATE_QUEUED);
    ASSERT(ev == NULL);
    ASSERT_EQ(f[0].state, HSGATE_ACTIVE);
    ASSERT_EQ(f[1].state, HSGATE_ACTIVE);
    /* A slot frees: the source holding the fewest (9, none) gets it, ahead
     * of 7's older waiter. */
    ASSERT(hsgate_leave(&g, &f[0]) == &real);
    ASSERT_EQ(real.state, HSGATE_ACTIVE);
    ASSERT(hsgate_leave(&g, &f[1]) == &more);
    hsgate_free(&g);
}

/* A full queue of one source's connections: a newcomer from another source
 * takes the oldest place of the source with the most waiting. */
TEST(full_queue_evicts_the_biggest_waiter)
{
    struct hsgate g;
    hsgate_init(&g, 1, 3, 0);
    struct hsgate_entry busy, q[3], other;
    src(&busy, 5);
    ASSERT_EQ(arrive(&g, &busy), HSGATE_ADMITTED);
    for (int i = 0; i < 3; i++) {
        src(&q[i], 7);
        ASSERT_EQ(arrive(&g, &q[i]), HSGATE_QUEUED);
    }
    src(&other, 9);
    struct hsgate_entry *ev = NULL;
    /* Source 9 has no slot, share is 1/3 -> 1; 5 holds 1 (not above): wait. */
    ASSERT_EQ(hsgate_arrive(&g, &other, 0, &ev), HSGATE_QUEUED);
    ASSERT(ev == &q[0]);
    ASSERT_EQ(q[0].state, HSGATE_OUT);
    /* The freed slot goes to the source with the fewest slots: all hold 0
     * now that 5 left, so the oldest waiting (q[1]). */
    ASSERT(hsgate_leave(&g, &busy) == &q[1]);
    /* Both waiting sources hold no slot now: the oldest goes first. */
    ASSERT(hsgate_leave(&g, &q[1]) == &q[2]);
    ASSERT(hsgate_leave(&g, &q[2]) == &other);
    ASSERT(hsgate_leave(&g, &other) == NULL);
    drained_free(&g);
}

/* A freed slot goes to the waiting source that holds the fewest slots,
 * even when another source's connection has waited longer. */
TEST(freed_slot_goes_to_fewest_slots)
{
    struct hsgate g;
    hsgate_init(&g, 2, 4, 0);
    struct hsgate_entry a7, a9, w7, w9;
    src(&a7, 7);
    src(&a9, 9);
    src(&w7, 7);
    src(&w9, 9);
    ASSERT_EQ(arrive(&g, &a7), HSGATE_ADMITTED);
    ASSERT_EQ(arrive(&g, &a9), HSGATE_ADMITTED);
    ASSERT_EQ(arrive(&g, &w7), HSGATE_QUEUED);
    ASSERT_EQ(arrive(&g, &w9), HSGATE_QUEUED);
    ASSERT(hsgate_leave(&g, &a9) == &w9); /* 9 holds 0, 7 holds 1 */
    ASSERT(hsgate_leave(&g, &a7) == &w7);
    hsgate_leave(&g, &w7);
    hsgate_leave(&g, &w9);
    drained_free(&g);
}

/* Many sources come and go: the table grows and shrinks and every count
 * stays right (backward-shift deletion). */
TEST(table_churn)
{
    enum { N = 3000 };
    static struct hsgate_entry e[N];
    struct hsgate g;
    hsgate_init(&g, N, 0, 0);
    for (uint32_t i = 0; i < N; i++) {
        src(&e[i], i % 1000);
        ASSERT_EQ(arrive(&g, &e[i]), HSGATE_ADMITTED);
    }
    ASSERT_EQ(g.nsrc, 1000u);
    for (uint32_t i = 0; i < N; i += 2)
        ASSERT(hsgate_leave(&g, &e[i]) == NULL);
    for (uint32_t k = 0; k < 1000; k++) {
        uint32_t a, w;
        hsgate_source(&g, e[k].src, &a, &w);
        /* i = k, k+1000, k+2000: the even ones left. */
        uint32_t want = 0;
        for (uint32_t i = k; i < N; i += 1000)
            want += i % 2;
        ASSERT_EQ(a, want);
    }
    for (uint32_t i = 1; i < N; i += 2)
        ASSERT(hsgate_leave(&g, &e[i]) == NULL);
    drained_free(&g);
}

TEST(no_queue)
{
    struct hsgate g;
    hsgate_init(&g, 1, 0, 0);
    struct hsgate_entry a, b;
    src(&a, 1);
    src(&b, 1);
    ASSERT_EQ(arrive(&g, &a), HSGATE_ADMITTED);
    ASSERT_EQ(arrive(&g, &b), HSGATE_REFUSED);
    ASSERT_EQ(g.nsrc, 1u);
    hsgate_leave(&g, &a);
    hsgate_free(&g);
}

int main(void)
{
    RUN(cap_then_queue_then_refuse);
    RUN(newcomer_takes_a_slot_from_the_flooder);
    RUN(handshakes_under_way_are_not_cut_short);
    RUN(a_slot_changes_hands_only_after_the_silence_lasted);
    RUN(rebalance_leaves_fair_and_busy_slots_alone);
    RUN(full_queue_evicts_the_biggest_waiter);
    RUN(freed_slot_goes_to_fewest_slots);
    RUN(table_churn);
    RUN(no_queue);
    TEST_DONE();
}
