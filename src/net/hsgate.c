/* Handshake slots, a bounded queue and per-source fairness; see hsgate.h. */
#include "net/hsgate.h"

#include <stdlib.h>
#include <string.h>

#include "core/hash.h"

struct hsgate_src {
    uint8_t key[16];
    uint32_t active, waiting;
    bool used;
};

/* ---- the per-source table: open addressing, linear probing ---- */

static size_t hash(const uint8_t *k)
{
    uint64_t h = hash_fnv1a(k, 16);
    return (size_t)(h ^ (h >> 29));
}

static struct hsgate_src *find(const struct hsgate *g, const uint8_t *k)
{
    if (!g->tabcap)
        return NULL;
    for (size_t i = hash(k) & (g->tabcap - 1);; i = (i + 1) & (g->tabcap - 1)) {
        if (!g->tab[i].used)
            return NULL;
        if (memcmp(g->tab[i].key, k, 16) == 0)
            return &g->tab[i];
    }
}

static struct hsgate_src *slot_for(struct hsgate_src *tab, size_t cap, const uint8_t *k)
{
    size_t i = hash(k) & (cap - 1);
    while (tab[i].used && memcmp(tab[i].key, k, 16) != 0)
        i = (i + 1) & (cap - 1);
    return &tab[i];
}

static int grow(struct hsgate *g)
{
    size_t ncap = g->tabcap ? g->tabcap * 2 : 64;
    struct hsgate_src *t = calloc(ncap, sizeof(*t));
    if (!t)
        return -1;
    for (size_t i = 0; i < g->tabcap; i++)
        if (g->tab[i].used)
            *slot_for(t, ncap, g->tab[i].key) = g->tab[i];
    free(g->tab);
    g->tab = t;
    g->tabcap = ncap;
    return 0;
}

static struct hsgate_src *add(struct hsgate *g, const uint8_t *k)
{
    struct hsgate_src *s = find(g, k);
    if (s)
        return s;
    if ((g->nsrc + 1) * 2 > g->tabcap && grow(g) < 0)
        return NULL;
    s = slot_for(g->tab, g->tabcap, k);
    memset(s, 0, sizeof(*s));
    memcpy(s->key, k, 16);
    s->used = true;
    g->nsrc++;
    return s;
}

/* Removes a source with nothing left, shifting later entries of its probe
 * run back so lookups need no tombstones. */
static void drop_if_empty(struct hsgate *g, struct hsgate_src *s)
{
    if (s->active || s->waiting)
        return;
    size_t mask = g->tabcap - 1, hole = (size_t)(s - g->tab);
    g->tab[hole].used = false;
    g->nsrc--;
    for (size_t i = (hole + 1) & mask; g->tab[i].used; i = (i + 1) & mask) {
        size_t home = hash(g->tab[i].key) & mask;
        /* Move i into the hole unless its home lies cyclically in (hole, i]. */
        bool stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (stays)
            continue;
        g->tab[hole] = g->tab[i];
        g->tab[i].used = false;
        hole = i;
    }
}

/* ---- lists ---- */

static void link_tail(struct hsgate_entry **head, struct hsgate_entry **tail,
                      struct hsgate_entry *e)
{
    e->next = NULL;
    e->prev = *tail;
    if (*tail)
        (*tail)->next = e;
    else
        *head = e;
    *tail = e;
}

static void unlink_entry(struct hsgate_entry **head, struct hsgate_entry **tail,
                         struct hsgate_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        *head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        *tail = e->prev;
    e->prev = e->next = NULL;
}

static void admit(struct hsgate *g, struct hsgate_entry *e, struct hsgate_src *s)
{
    link_tail(&g->act_head, &g->act_tail, e);
    e->state = HSGATE_ACTIVE;
    s->active++;
    g->active++;
}

/* Takes e off whichever list it is on; its source may disappear. */
static void remove_entry(struct hsgate *g, struct hsgate_entry *e)
{
    struct hsgate_src *s = find(g, e->src);
    if (e->state == HSGATE_ACTIVE) {
        unlink_entry(&g->act_head, &g->act_tail, e);
        g->active--;
        s->active--;
    } else {
        unlink_entry(&g->q_head, &g->q_tail, e);
        g->waiting--;
        s->waiting--;
    }
    e->state = HSGATE_OUT;
    drop_if_empty(g, s);
}

/* ---- fairness ---- */

static uint32_t share(const struct hsgate *g)
{
    uint32_t n = g->nsrc ? (uint32_t)g->nsrc : 1;
    return g->cap / n ? g->cap / n : 1;
}

/* The oldest running handshake of a source above its share that has sent
 * nothing for evict_idle_ms. One that is under way is never cut short: in
 * a reconnect storm every client sends its ClientHello at once, and a
 * newcomer waits for the next freed slot (which goes to the source holding
 * the fewest) instead of costing another client its handshake. */
static struct hsgate_entry *victim_active(const struct hsgate *g, uint32_t fair, int64_t now_ms)
{
    for (struct hsgate_entry *e = g->act_head; e; e = e->next)
        if (e->idle && now_ms - e->since >= (int64_t)g->evict_idle_ms &&
            find(g, e->src)->active > fair)
            return e;
    return NULL;
}

/* The oldest waiting connection of the source with the most waiting, if
 * that is more than `mine` + 1 (so that taking its place is fairer). */
static struct hsgate_entry *victim_waiting(const struct hsgate *g, uint32_t mine)
{
    struct hsgate_entry *best = NULL;
    uint32_t most = mine + 1;
    for (struct hsgate_entry *e = g->q_head; e; e = e->next) {
        uint32_t w = find(g, e->src)->waiting;
        if (w > most) {
            most = w;
            best = e;
        }
    }
    return best;
}

/* The oldest waiting connection of the source holding the fewest slots. */
static struct hsgate_entry *next_waiting(const struct hsgate *g)
{
    struct hsgate_entry *best = NULL;
    uint32_t fewest = UINT32_MAX;
    for (struct hsgate_entry *e = g->q_head; e && fewest; e = e->next) {
        uint32_t a = find(g, e->src)->active;
        if (a < fewest) {
            fewest = a;
            best = e;
        }
    }
    return best;
}

/* ---- the interface ---- */

void hsgate_init(struct hsgate *g, uint32_t cap, uint32_t qcap, uint32_t evict_idle_ms)
{
    memset(g, 0, sizeof(*g));
    g->cap = cap ? cap : 1;
    g->qcap = qcap;
    g->evict_idle_ms = evict_idle_ms;
}

void hsgate_free(struct hsgate *g)
{
    free(g->tab);
    g->tab = NULL;
    g->tabcap = g->nsrc = 0;
}

static enum hsgate_verdict enqueue(struct hsgate *g, struct hsgate_entry *e,
                                   struct hsgate_entry **evicted)
{
    struct hsgate_src *s = find(g, e->src);
    if (g->waiting >= g->qcap) {
        /* With half the queue or more its own, no other source can have
         * two more than it: refuse without a scan (a flood's common case). */
        struct hsgate_entry *v =
            2 * s->waiting >= g->waiting ? NULL : victim_waiting(g, s->waiting);
        if (!v) {
            drop_if_empty(g, s);
            return HSGATE_REFUSED;
        }
        remove_entry(g, v);
        *evicted = v;
        s = find(g, e->src); /* the table may have shifted */
    }
    link_tail(&g->q_head, &g->q_tail, e);
    e->state = HSGATE_WAITING;
    s->waiting++;
    g->waiting++;
    return HSGATE_QUEUED;
}

/* see hsgate.h */
enum hsgate_verdict hsgate_arrive(struct hsgate *g, struct hsgate_entry *e, int64_t now_ms,
                                  struct hsgate_entry **evicted)
{
    *evicted = NULL;
    e->prev = e->next = NULL;
    e->state = HSGATE_OUT;
    e->since = now_ms;
    struct hsgate_src *s = add(g, e->src);
    if (!s)
        return HSGATE_REFUSED;
    if (g->active < g->cap) {
        admit(g, e, s);
        return HSGATE_ADMITTED;
    }
    /* Contended: a source below its share takes a slot from one above. */
    uint32_t fair = share(g);
    if (s->active < fair) {
        struct hsgate_entry *v = victim_active(g, fair, now_ms);
        if (v) {
            remove_entry(g, v);
            *evicted = v;
            admit(g, e, find(g, e->src));
            return HSGATE_ADMITTED;
        }
    }
    return enqueue(g, e, evicted);
}

/* see hsgate.h */
struct hsgate_entry *hsgate_leave(struct hsgate *g, struct hsgate_entry *e)
{
    if (e->state == HSGATE_OUT)
        return NULL;
    bool was_active = e->state == HSGATE_ACTIVE;
    remove_entry(g, e);
    if (!was_active || !g->waiting || g->active >= g->cap)
        return NULL;
    struct hsgate_entry *next = next_waiting(g);
    struct hsgate_src *s = find(g, next->src);
    unlink_entry(&g->q_head, &g->q_tail, next);
    g->waiting--;
    s->waiting--;
    admit(g, next, s);
    return next;
}

/* see hsgate.h */
struct hsgate_entry *hsgate_rebalance(struct hsgate *g, int64_t now_ms,
                                      struct hsgate_entry **evicted)
{
    *evicted = NULL;
    if (!g->waiting || g->active < g->cap)
        return NULL;
    uint32_t fair = share(g);
    struct hsgate_entry *next = next_waiting(g); /* of the source holding the fewest */
    if (find(g, next->src)->active >= fair)
        return NULL;
    struct hsgate_entry *v = victim_active(g, fair, now_ms);
    if (!v)
        return NULL;
    remove_entry(g, v);
    *evicted = v;
    struct hsgate_src *s = find(g, next->src); /* the table may have shifted */
    unlink_entry(&g->q_head, &g->q_tail, next);
    g->waiting--;
    s->waiting--;
    admit(g, next, s);
    return next;
}

/* see hsgate.h */
void hsgate_source(const struct hsgate *g, const uint8_t src[16], uint32_t *active,
                   uint32_t *waiting)
{
    const struct hsgate_src *s = find(g, src);
    *active = s ? s->active : 0;
    *waiting = s ? s->waiting : 0;
}
