/* see bench_stats.h */
#include "bench_stats.h"

#include <stdlib.h>
#include <string.h>

/* see bench_stats.h */
void bench_hist_add(struct bench_hist *h, uint64_t ns)
{
    uint64_t us = ns / 1000;
    uint64_t i = us < 100000 ? us / 10 : BENCH_HIST_FINE + (us - 100000) / 1000;
    h->n[i < BENCH_HIST_BUCKETS - 1 ? i : BENCH_HIST_BUCKETS - 1]++;
}

/* see bench_stats.h */
void bench_hist_merge(struct bench_hist *to, const struct bench_hist *from)
{
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++)
        to->n[i] += from->n[i];
}

/* see bench_stats.h */
uint64_t bench_hist_count(const struct bench_hist *h)
{
    uint64_t total = 0;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++)
        total += h->n[i];
    return total;
}

/* see bench_stats.h */
double bench_hist_quantile(const struct bench_hist *h, double q)
{
    uint64_t want = (uint64_t)((double)bench_hist_count(h) * q), acc = 0;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        acc += h->n[i];
        if (acc > want)
            return i < BENCH_HIST_FINE ? (double)i * 0.01 + 0.005
                                       : 100.0 + (double)(i - BENCH_HIST_FINE) + 0.5;
    }
    return 0;
}

static bool grow(struct bench_seen *s, uint64_t seq)
{
    uint64_t cap = s->cap ? s->cap : 65536;
    while (cap <= seq)
        cap *= 2;
    uint8_t *n = realloc(s->bits, cap / 8);
    if (!n)
        return false;
    memset(n + s->cap / 8, 0, (cap - s->cap) / 8);
    s->bits = n;
    s->cap = cap;
    return true;
}

/* see bench_stats.h */
enum bench_seq bench_seen_add(struct bench_seen *s, uint64_t seq)
{
    if (seq > BENCH_SEQ_MAX || (seq >= s->cap && !grow(s, seq)))
        return BENCH_SEQ_NEW;
    uint8_t bit = (uint8_t)(1u << (seq % 8));
    if (s->bits[seq / 8] & bit)
        return BENCH_SEQ_DUP;
    s->bits[seq / 8] |= bit;
    bool late = s->any && seq < s->max;
    if (!s->any || seq > s->max)
        s->max = seq;
    s->any = true;
    return late ? BENCH_SEQ_LATE : BENCH_SEQ_NEW;
}

/* see bench_stats.h */
void bench_seen_free(struct bench_seen *s)
{
    free(s->bits);
    memset(s, 0, sizeof(*s));
}

/* see bench_stats.h */
uint64_t bench_seen_missing(const struct bench_seen *want, const struct bench_seen *got)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < want->cap / 8; i++) {
        uint8_t g = i < got->cap / 8 ? got->bits[i] : 0;
        n += (uint64_t)__builtin_popcount((unsigned)(want->bits[i] & (uint8_t)~g));
    }
    return n;
}

/* see bench_stats.h */
bool bench_pid_seq(uint64_t next, uint16_t pid, uint64_t *seq)
{
    if (next == 0 || pid == 0)
        return false;
    uint64_t last = next - 1;
    uint64_t back = (last % 65535 + 1 + 65535 - pid) % 65535;
    if (back > last)
        return false;
    *seq = last - back;
    return true;
}

/* see bench_stats.h */
int bench_acks_push(struct bench_acks *q, uint64_t due_ns, uint16_t pid)
{
    if (q->len == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 1024;
        struct bench_ack *n = malloc(cap * sizeof(*n));
        if (!n)
            return -1;
        for (size_t i = 0; i < q->len; i++) /* unwrap into the new ring */
            n[i] = q->a[(q->head + i) % q->cap];
        free(q->a);
        q->a = n;
        q->cap = cap;
        q->head = 0;
    }
    q->a[(q->head + q->len) % q->cap] = (struct bench_ack){due_ns, pid};
    q->len++;
    return 0;
}

/* see bench_stats.h */
bool bench_acks_pop(struct bench_acks *q, uint64_t now_ns, uint16_t *pid)
{
    if (!q->len || q->a[q->head].due_ns > now_ns)
        return false;
    *pid = q->a[q->head].pid;
    q->head = (q->head + 1) % q->cap;
    q->len--;
    return true;
}

/* see bench_stats.h */
uint64_t bench_acks_next(const struct bench_acks *q)
{
    return q->len ? q->a[q->head].due_ns : UINT64_MAX;
}

/* see bench_stats.h */
void bench_acks_free(struct bench_acks *q)
{
    free(q->a);
    memset(q, 0, sizeof(*q));
}
