/* see history.h */
#include "admin/history.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "core/clock.h"

struct sample {
    uint64_t mono_ms, wall_ms;
    struct history_counters c;
};

struct history {
    history_source_fn fn;
    void *ctx;
    pthread_mutex_t lock; /* guards the ring */
    struct sample ring[HISTORY_SAMPLES];
    unsigned next, count;
    uint64_t last_mono;
    /* The sampling thread. */
    pthread_mutex_t run_lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool running, stop;
};

struct history *history_new(history_source_fn fn, void *ctx)
{
    if (!fn)
        return NULL;
    struct history *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->fn = fn;
    h->ctx = ctx;
    pthread_mutex_init(&h->lock, NULL);
    pthread_mutex_init(&h->run_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->wake, &ca);
    pthread_condattr_destroy(&ca);
    return h;
}

void history_free(struct history *h)
{
    if (!h)
        return;
    history_stop(h);
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->run_lock);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

bool history_tick(struct history *h, uint64_t mono_ms)
{
    pthread_mutex_lock(&h->lock);
    bool due = h->count == 0 || mono_ms >= h->last_mono + HISTORY_INTERVAL_MS;
    pthread_mutex_unlock(&h->lock);
    if (!due)
        return false;
    /* The source runs outside the ring's lock: it takes the broker's. */
    struct sample s = {.mono_ms = mono_ms, .wall_ms = clock_wall_ms()};
    if (!h->fn(h->ctx, &s.c))
        return false;
    pthread_mutex_lock(&h->lock);
    /* Two callers may both have found it due: the second one's sample is
     * dropped, so intervals never shrink to nothing. */
    bool take = h->count == 0 || mono_ms >= h->last_mono + HISTORY_INTERVAL_MS;
    if (take) {
        h->ring[h->next] = s;
        h->next = (h->next + 1) % HISTORY_SAMPLES;
        if (h->count < HISTORY_SAMPLES)
            h->count++;
        h->last_mono = mono_ms;
    }
    pthread_mutex_unlock(&h->lock);
    return take;
}

static void *sampler(void *arg)
{
    struct history *h = arg;
    pthread_mutex_lock(&h->run_lock);
    while (!h->stop) {
        pthread_mutex_unlock(&h->run_lock);
        history_tick(h, clock_mono_ms());
        pthread_mutex_lock(&h->run_lock);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += HISTORY_INTERVAL_MS / 1000;
        while (!h->stop && pthread_cond_timedwait(&h->wake, &h->run_lock, &ts) == 0)
            ;
    }
    pthread_mutex_unlock(&h->run_lock);
    return NULL;
}

int history_start(struct history *h)
{
    pthread_mutex_lock(&h->run_lock);
    int rc = 0;
    if (!h->running) {
        h->stop = false;
        rc = pthread_create(&h->thread, NULL, sampler, h) == 0 ? 0 : -1;
        h->running = rc == 0;
    }
    pthread_mutex_unlock(&h->run_lock);
    return rc;
}

void history_stop(struct history *h)
{
    pthread_mutex_lock(&h->run_lock);
    bool was = h->running;
    h->stop = true;
    h->running = false;
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->run_lock);
    if (was)
        pthread_join(h->thread, NULL);
}

static uint64_t delta(uint64_t from, uint64_t to)
{
    return to >= from ? to - from : 0;
}

static void interval(const struct sample *a, const struct sample *b, struct history_point *p)
{
    double secs = (double)delta(a->mono_ms, b->mono_ms) / 1000.0;
    if (secs <= 0)
        secs = 1;
    *p = (struct history_point){
        .wall_ms = b->wall_ms,
        .connections = b->c.connections,
        .msgs_in = (double)delta(a->c.msgs_in, b->c.msgs_in) / secs,
        .msgs_out = (double)delta(a->c.msgs_out, b->c.msgs_out) / secs,
        .bytes_in = (double)delta(a->c.bytes_in, b->c.bytes_in) / secs,
        .bytes_out = (double)delta(a->c.bytes_out, b->c.bytes_out) / secs,
        .dropped = delta(a->c.dropped, b->c.dropped),
    };
}

unsigned history_points(struct history *h, struct history_point *out, unsigned max)
{
    pthread_mutex_lock(&h->lock);
    unsigned have = h->count > 0 ? h->count - 1 : 0;
    unsigned n = have < max ? have : max;
    /* The newest n intervals: samples count-1-n .. count-1, oldest first. */
    unsigned first = (h->next + HISTORY_SAMPLES - h->count) % HISTORY_SAMPLES;
    for (unsigned i = 0; i < n; i++) {
        unsigned k = h->count - 1 - n + i;
        interval(&h->ring[(first + k) % HISTORY_SAMPLES],
                 &h->ring[(first + k + 1) % HISTORY_SAMPLES], &out[i]);
    }
    pthread_mutex_unlock(&h->lock);
    return n;
}
