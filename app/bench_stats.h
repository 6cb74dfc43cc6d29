/* The statistics of `ward bench`: a latency histogram, and per publisher
 * the sequence numbers a subscriber has seen (loss, duplicates, order).
 * No I/O and no locking: each generator thread owns its own and they are
 * merged at the end. */
#ifndef WARD_APP_BENCH_STATS_H
#define WARD_APP_BENCH_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_HIST_FINE   10000 /* 10 us buckets up to 100 ms */
#define BENCH_HIST_COARSE 9900  /* then 1 ms buckets up to 10 s */
/* The last bucket holds everything from 10 s up. */
#define BENCH_HIST_BUCKETS (BENCH_HIST_FINE + BENCH_HIST_COARSE + 1)

struct bench_hist {
    uint64_t n[BENCH_HIST_BUCKETS];
};

/* Counts one latency of ns nanoseconds. */
void bench_hist_add(struct bench_hist *h, uint64_t ns);
/* Adds from's counts to to's. */
void bench_hist_merge(struct bench_hist *to, const struct bench_hist *from);
uint64_t bench_hist_count(const struct bench_hist *h);
/* The q-quantile (0 <= q < 1) in milliseconds: the middle of the bucket that
 * holds the sample with rank floor(count * q) (counting from 0), so 0.5 is
 * the median and 1 - 1e-12 the largest. 0 for an empty histogram. */
double bench_hist_quantile(const struct bench_hist *h, double q);

/* Sequence numbers above this are not tracked (a corrupt payload must not
 * make a subscriber allocate without bound). */
#define BENCH_SEQ_MAX (1ull << 36)

enum bench_seq {
    BENCH_SEQ_NEW,  /* first time, in order */
    BENCH_SEQ_LATE, /* first time, but after a higher one: out of order */
    BENCH_SEQ_DUP,  /* seen before */
};

/* One publisher as one subscriber has seen it. Zero-initialise. */
struct bench_seen {
    uint8_t *bits;
    uint64_t cap; /* in sequence numbers */
    uint64_t max;
    bool any;
};

/* Records seq. Without memory (or above BENCH_SEQ_MAX) it is reported as
 * NEW and not remembered. */
enum bench_seq bench_seen_add(struct bench_seen *s, uint64_t seq);
/* How many sequence numbers want holds that got does not: the messages a
 * publisher had acknowledged that a subscriber never received. */
uint64_t bench_seen_missing(const struct bench_seen *want, const struct bench_seen *got);
void bench_seen_free(struct bench_seen *s);

/* The sequence number of a publisher's QoS 1 message from the packet id in
 * its PUBACK. A publisher numbers its messages 0, 1, 2 ... and gives message
 * s the packet id s % 65535 + 1 (ids wrap skipping 0); next is the number its
 * next message will get. With at most 65535 in flight the answer is unique:
 * the latest message sent with that id. Returns false if none was sent. */
bool bench_pid_seq(uint64_t next, uint16_t pid, uint64_t *seq);

/* The PUBACKs a subscriber holds back (--ack-delay), in the order they fall
 * due: the delay is the same for every message, so a FIFO ring is enough.
 * Zero-initialise; it grows as needed. */
struct bench_acks {
    struct bench_ack {
        uint64_t due_ns;
        uint16_t pid;
    } * a;
    size_t cap, head, len;
};

/* Holds pid until due_ns. Returns -1 without memory (nothing held). */
int bench_acks_push(struct bench_acks *q, uint64_t due_ns, uint16_t pid);
/* Takes the oldest ack if it is due at now_ns. Returns true with *pid set,
 * or false (nothing due). */
bool bench_acks_pop(struct bench_acks *q, uint64_t now_ns, uint16_t *pid);
/* When the oldest held ack falls due; UINT64_MAX when none is held. */
uint64_t bench_acks_next(const struct bench_acks *q);
void bench_acks_free(struct bench_acks *q);

#endif
