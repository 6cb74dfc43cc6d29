/* see recent.h */
#include "core/recent.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"

struct recent {
    pthread_mutex_t lock;
    unsigned cap, next, count;
    uint64_t total;
    struct recent_entry *ring;
};

struct recent *recent_new(unsigned cap)
{
    if (cap == 0 || cap > RECENT_MAX)
        return NULL;
    struct recent *r = calloc(1, sizeof(*r));
    struct recent_entry *ring = calloc(cap, sizeof(*ring));
    if (!r || !ring) {
        free(r);
        free(ring);
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    r->cap = cap;
    r->ring = ring;
    return r;
}

void recent_free(struct recent *r)
{
    if (!r || r == recent_process())
        return;
    pthread_mutex_destroy(&r->lock);
    free(r->ring);
    free(r);
}

void recent_add(struct recent *r, unsigned listener, const char *peer, const char *cause)
{
    /* Escaped outside the lock: the copies are the only work inside it. */
    struct recent_entry e = {.wall_ms = clock_wall_ms(), .listener = listener};
    if (peer)
        log_escape(peer, strlen(peer), e.peer, sizeof(e.peer));
    if (cause)
        log_escape(cause, strlen(cause), e.cause, sizeof(e.cause));
    pthread_mutex_lock(&r->lock);
    r->ring[r->next] = e;
    r->next = (r->next + 1) % r->cap;
    if (r->count < r->cap)
        r->count++;
    r->total++;
    pthread_mutex_unlock(&r->lock);
}

unsigned recent_copy(struct recent *r, struct recent_entry *out, unsigned max)
{
    pthread_mutex_lock(&r->lock);
    unsigned n = r->count < max ? r->count : max;
    for (unsigned i = 0; i < n; i++)
        out[i] = r->ring[(r->next + r->cap - 1 - i) % r->cap];
    pthread_mutex_unlock(&r->lock);
    return n;
}

uint64_t recent_total(struct recent *r)
{
    pthread_mutex_lock(&r->lock);
    uint64_t t = r->total;
    pthread_mutex_unlock(&r->lock);
    return t;
}

static struct recent_entry process_ring[RECENT_DEFAULT];
static struct recent process = {
    .lock = PTHREAD_MUTEX_INITIALIZER, .cap = RECENT_DEFAULT, .ring = process_ring};

struct recent *recent_process(void)
{
    return &process;
}

void recent_refusal(unsigned listener, const char *peer, const char *cause)
{
    recent_add(&process, listener, peer, cause);
}
