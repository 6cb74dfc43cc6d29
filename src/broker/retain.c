/* The retained store (see retain.h): a chained hash table keyed by topic.
 * Matching a filter walks every retained message; a topic-level index is
 * the next step when retained sets grow large (docs/ARCHITECTURE.md). */
#include "broker/retain.h"

#include <stdlib.h>
#include <string.h>

#include "broker/msg.h"

struct slot {
    struct msg *m;
    struct slot *next;
};

struct retain_store {
    struct slot **buckets;
    size_t nbuckets;
    size_t count;
};

static size_t hash(const char *s, size_t len)
{
    size_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

struct retain_store *retain_new(void)
{
    struct retain_store *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->nbuckets = 1024;
    s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
    if (!s->buckets) {
        free(s);
        return NULL;
    }
    return s;
}

void retain_free(struct retain_store *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nbuckets; i++)
        for (struct slot *e = s->buckets[i], *n; e; e = n) {
            n = e->next;
            msg_unref(e->m);
            free(e);
        }
    free(s->buckets);
    free(s);
}

static void grow(struct retain_store *s)
{
    size_t nb = s->nbuckets * 4;
    struct slot **b = calloc(nb, sizeof(*b));
    if (!b)
        return; /* stay at the current size: slower, still correct */
    for (size_t i = 0; i < s->nbuckets; i++)
        for (struct slot *e = s->buckets[i], *n; e; e = n) {
            n = e->next;
            size_t h = hash(e->m->topic, e->m->topic_len) % nb;
            e->next = b[h];
            b[h] = e;
        }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = nb;
}

int retain_set(struct retain_store *s, struct msg *m)
{
    struct slot **pp = &s->buckets[hash(m->topic, m->topic_len) % s->nbuckets];
    for (; *pp; pp = &(*pp)->next) {
        struct slot *e = *pp;
        if (e->m->topic_len != m->topic_len || memcmp(e->m->topic, m->topic, m->topic_len))
            continue;
        msg_unref(e->m);
        if (m->payload_len == 0) { /* MQTT-3.3.1-10/11: clears, is not stored */
            *pp = e->next;
            free(e);
            s->count--;
        } else {
            e->m = msg_ref(m);
        }
        return 0;
    }
    if (m->payload_len == 0)
        return 0;
    struct slot *e = malloc(sizeof(*e));
    if (!e)
        return -1;
    e->m = msg_ref(m);
    e->next = *pp;
    *pp = e;
    if (++s->count > s->nbuckets * 2)
        grow(s);
    return 0;
}

void retain_match(struct retain_store *s, const uint8_t *filter, size_t len, uint64_t now_ms,
                  retain_match_fn fn, void *ctx)
{
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct slot **pp = &s->buckets[i];
        while (*pp) {
            struct slot *e = *pp;
            if (msg_expired(e->m, now_ms)) { /* MQTT-3.3.2-5 */
                *pp = e->next;
                msg_unref(e->m);
                free(e);
                s->count--;
                continue;
            }
            if (mqtt_topic_match(filter, len, (const uint8_t *)e->m->topic, e->m->topic_len))
                fn(ctx, e->m);
            pp = &e->next;
        }
    }
}

size_t retain_count(const struct retain_store *s)
{
    return s->count;
}
