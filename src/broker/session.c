/* Sessions: the table keyed by client id, the offline list and its deadline
 * heap, each session's subscriptions, outbound packet identifiers, delivery
 * lists and inbound QoS 2 state (see session.h). */
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"
#include "core/clock.h"
#include "core/hash.h"
#include "core/vec.h"

static size_t hash_id(const char *s)
{
    return (size_t)hash_fnv1a_str(s);
}

struct session *session_find(struct broker *b, const char *id)
{
    for (struct session *s = b->buckets[hash_id(id) % b->nbuckets]; s; s = s->hnext)
        if (strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

struct session *session_new(struct broker *b, const char *id)
{
    struct session *s = calloc(1, sizeof(*s));
    if (!s || !(s->id = strdup(id))) {
        free(s);
        return NULL;
    }
    s->next_pid = 1;
    size_t h = hash_id(id) % b->nbuckets;
    s->hnext = b->buckets[h];
    b->buckets[h] = s;
    b->nsessions++;
    return s;
}

/* ---- deadlines: a binary min-heap of offline sessions ---------------------
 * Each session keeps its position (heap_pos, 1-based), so one that comes back
 * online, is taken over or ends leaves the heap in O(log n) from anywhere. */

static void heap_set(struct session_heap *h, size_t i, struct session *s)
{
    h->v[i] = s;
    s->heap_pos = i + 1;
}

static void heap_up(struct session_heap *h, size_t i)
{
    struct session *s = h->v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->v[parent]->deadline <= s->deadline)
            break;
        heap_set(h, i, h->v[parent]);
        i = parent;
    }
    heap_set(h, i, s);
}

static void heap_down(struct session_heap *h, size_t i)
{
    struct session *s = h->v[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->n)
            break;
        if (child + 1 < h->n && h->v[child + 1]->deadline < h->v[child]->deadline)
            child++;
        if (s->deadline <= h->v[child]->deadline)
            break;
        heap_set(h, i, h->v[child]);
        i = child;
    }
    heap_set(h, i, s);
}

static void heap_remove(struct session_heap *h, struct session *s)
{
    if (!s->heap_pos)
        return;
    size_t i = s->heap_pos - 1;
    s->heap_pos = 0;
    struct session *last = h->v[--h->n];
    if (last == s)
        return;
    /* The last one fills the hole and goes whichever way its key says. */
    h->v[i] = last;
    last->heap_pos = i + 1;
    heap_up(h, i);
    heap_down(h, last->heap_pos - 1);
}

static bool heap_insert(struct session_heap *h, struct session *s)
{
    if (!ward_ok(VEC_RESERVE(h->v, h->cap, h->n + 1)))
        return false;
    h->v[h->n++] = s;
    heap_up(h, h->n - 1);
    return true;
}

/* see session.h */
uint64_t session_next_deadline(const struct session *s)
{
    uint64_t d = 0;
    if (s->will && s->will_at)
        d = s->will_at;
    if (s->expiry_s != SESSION_NEVER_EXPIRES && (!d || s->expire_at < d))
        d = s->expire_at ? s->expire_at : 1; /* 0 means none: an expiry at 0 is due */
    return d;
}

/* see session.h */
void session_deadline_update(struct broker *b, struct session *s)
{
    struct session_heap *h = &b->deadlines;
    uint64_t d = s->offline_listed ? session_next_deadline(s) : 0;
    if (!d) {
        heap_remove(h, s);
        return;
    }
    uint64_t old = s->deadline;
    s->deadline = d;
    if (!s->heap_pos) {
        if (!heap_insert(h, s))
            h->missed = true;
    } else if (d < old) {
        heap_up(h, s->heap_pos - 1);
    } else if (d > old) {
        heap_down(h, s->heap_pos - 1);
    }
}

/* After a failed insertion: files every offline session with a deadline
 * that is not in the heap. A walk, but only while memory was short. */
static void heap_refile(struct broker *b)
{
    b->deadlines.missed = false;
    for (struct session *s = b->offline; s; s = s->onext)
        if (!s->heap_pos)
            session_deadline_update(b, s);
}

/* see session.h */
struct session *session_deadline_due(struct broker *b, uint64_t now_ms)
{
    struct session_heap *h = &b->deadlines;
    if (h->missed)
        heap_refile(b);
    if (h->n == 0 || h->v[0]->deadline > now_ms)
        return NULL;
    return h->v[0];
}

/* see session.h */
void session_deadlines_free(struct broker *b)
{
    free(b->deadlines.v);
    b->deadlines = (struct session_heap){0};
}

void session_offline_add(struct broker *b, struct session *s)
{
    if (!s->offline_listed) {
        s->oprev = NULL;
        s->onext = b->offline;
        if (b->offline)
            b->offline->oprev = s;
        b->offline = s;
        s->offline_listed = true;
        b->noffline++;
    }
    session_deadline_update(b, s);
}

void session_offline_remove(struct broker *b, struct session *s)
{
    heap_remove(&b->deadlines, s);
    if (!s->offline_listed)
        return;
    if (s->oprev)
        s->oprev->onext = s->onext;
    else
        b->offline = s->onext;
    if (s->onext)
        s->onext->oprev = s->oprev;
    s->offline_listed = false;
    b->noffline--;
}

/* Frees a list's deliveries, taking them off the broker's count. */
static void drain(struct delivery_list *l, uint64_t *total)
{
    struct delivery *d;
    while ((d = delivery_pop(l))) {
        (*total)--;
        delivery_free(d);
    }
}

/* Room for one more subscription in subs and sub_opts, which share one
 * capacity: both grow the same way from it, and it is raised only once
 * both have grown, so after a failure each holds at least that much. */
static bool subs_reserve(struct session *s)
{
    size_t need = (size_t)s->nsubs + 1, cap_subs = s->capsubs, cap_opts = s->capsubs;
    if (!ward_ok(VEC_RESERVE(s->subs, cap_subs, need)) ||
        !ward_ok(VEC_RESERVE(s->sub_opts, cap_opts, need)))
        return false;
    s->capsubs = cap_subs < cap_opts ? cap_subs : cap_opts;
    return true;
}

/* see session.h */
int session_subscribe(struct broker *b, struct session *s, const uint8_t *filter, size_t len,
                      uint8_t options, uint32_t sub_id)
{
    if (!subs_reserve(s))
        return -1;
    char *copy = strndup((const char *)filter, len);
    if (!copy)
        return -1;
    int r = subtree_add(b->subs, filter, len, s, options, sub_id);
    if (r == 1) {
        s->sub_opts[s->nsubs] = options;
        s->subs[s->nsubs++] = copy;
        return r;
    }
    free(copy); /* replaced (already listed) or failed */
    for (uint32_t i = 0; r == 0 && i < s->nsubs; i++)
        if (strlen(s->subs[i]) == len && memcmp(s->subs[i], filter, len) == 0)
            s->sub_opts[i] = options;
    return r;
}

/* see session.h */
bool session_has_sub(const struct session *s, const uint8_t *filter, size_t len)
{
    for (uint32_t i = 0; i < s->nsubs; i++)
        if (strlen(s->subs[i]) == len && memcmp(s->subs[i], filter, len) == 0)
            return true;
    return false;
}

/* see session.h */
int session_unsubscribe(struct broker *b, struct session *s, const uint8_t *filter, size_t len)
{
    if (subtree_remove(b->subs, filter, len, s) == 0)
        return 0;
    for (uint32_t i = 0; i < s->nsubs; i++)
        if (strlen(s->subs[i]) == len && memcmp(s->subs[i], filter, len) == 0) {
            free(s->subs[i]);
            s->subs[i] = s->subs[--s->nsubs];
            s->sub_opts[i] = s->sub_opts[s->nsubs];
            break;
        }
    return 1;
}

void session_end(struct broker *b, struct session *s)
{
    if (s->will) {
        msg_unref(s->will);
        s->will = NULL;
    }
    if (s->stored_will) { /* persist.c's reference; its row is the caller's */
        msg_unref(s->stored_will);
        s->stored_will = NULL;
    }
    session_offline_remove(b, s);
    for (uint32_t i = 0; i < s->nsubs; i++) {
        subtree_remove(b->subs, (const uint8_t *)s->subs[i], strlen(s->subs[i]), s);
        free(s->subs[i]);
    }
    free(s->subs);
    free(s->sub_opts);
    struct session **pp = &b->buckets[hash_id(s->id) % b->nbuckets];
    while (*pp && *pp != s)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = s->hnext;
    b->nsessions--;
    drain(&s->inflight, &b->st.inflight);
    drain(&s->queue, &b->st.queued);
    free(s->pid_used);
    free(s->rel_ids);
    session_free_owner(s);
    free(s->username);
    free(s->cert_cn);
    free(s->cert_ou);
    free(s->id);
    free(s);
}

/* The owner of every anonymous session. */
static char anonymous[1];

/* see session.h */
bool session_set_owner(struct session *s, const char *owner)
{
    char *copy = owner[0] ? strdup(owner) : anonymous;
    if (!copy)
        return false;
    session_free_owner(s);
    s->owner = copy;
    return true;
}

/* see session.h */
void session_free_owner(struct session *s)
{
    if (s->owner != anonymous)
        free(s->owner);
    s->owner = NULL;
}

uint16_t session_pid_take(struct session *s)
{
    if (!s->pid_used && !(s->pid_used = calloc(8192, 1)))
        return 0;
    for (uint32_t tries = 0; tries < 65535; tries++) {
        uint16_t pid = s->next_pid;
        s->next_pid = (uint16_t)(pid == 65535 ? 1 : pid + 1);
        if (!(s->pid_used[pid >> 3] & (1u << (pid & 7)))) {
            s->pid_used[pid >> 3] |= (uint8_t)(1u << (pid & 7));
            return pid;
        }
    }
    return 0;
}

void session_pid_release(struct session *s, uint16_t pid)
{
    if (s->pid_used)
        s->pid_used[pid >> 3] &= (uint8_t) ~(1u << (pid & 7));
}

void delivery_append(struct delivery_list *l, struct delivery *d)
{
    d->next = NULL;
    if (l->tail)
        l->tail->next = d;
    else
        l->head = d;
    l->tail = d;
    l->count++;
}

struct delivery *delivery_pop(struct delivery_list *l)
{
    struct delivery *d = l->head;
    if (!d)
        return NULL;
    l->head = d->next;
    if (!l->head)
        l->tail = NULL;
    l->count--;
    d->next = NULL;
    return d;
}

struct delivery *delivery_find(struct delivery_list *l, uint16_t pid)
{
    for (struct delivery *d = l->head; d; d = d->next)
        if (d->pid == pid)
            return d;
    return NULL;
}

struct delivery *delivery_take(struct delivery_list *l, uint16_t pid)
{
    struct delivery *prev = NULL;
    for (struct delivery *d = l->head; d; prev = d, d = d->next) {
        if (d->pid != pid)
            continue;
        if (prev)
            prev->next = d->next;
        else
            l->head = d->next;
        if (l->tail == d)
            l->tail = prev;
        l->count--;
        d->next = NULL;
        return d;
    }
    return NULL;
}

/* see session.h */
void session_queue_add(struct broker *b, struct session *s, struct delivery *d)
{
    delivery_append(&s->queue, d);
    b->st.queued++;
}

/* see session.h */
struct delivery *session_queue_pop(struct broker *b, struct session *s)
{
    struct delivery *d = delivery_pop(&s->queue);
    if (d)
        b->st.queued--;
    return d;
}

/* see session.h */
void session_inflight_add(struct broker *b, struct session *s, struct delivery *d)
{
    delivery_append(&s->inflight, d);
    b->st.inflight++;
}

/* see session.h */
struct delivery *session_inflight_take(struct broker *b, struct session *s, uint16_t pid)
{
    struct delivery *d = delivery_take(&s->inflight, pid);
    if (d)
        b->st.inflight--;
    return d;
}

void delivery_free(struct delivery *d)
{
    msg_unref(d->m);
    free(d);
}

bool session_rel_has(const struct session *s, uint16_t pid)
{
    for (uint32_t i = 0; i < s->nrel; i++)
        if (s->rel_ids[i] == pid)
            return true;
    return false;
}

int session_rel_add(struct session *s, uint16_t pid)
{
    if (!ward_ok(VEC_RESERVE(s->rel_ids, s->caprel, (size_t)s->nrel + 1)))
        return -1;
    s->rel_ids[s->nrel++] = pid;
    return 0;
}

bool session_rel_remove(struct session *s, uint16_t pid)
{
    for (uint32_t i = 0; i < s->nrel; i++)
        if (s->rel_ids[i] == pid) {
            s->rel_ids[i] = s->rel_ids[--s->nrel];
            return true;
        }
    return false;
}

void session_identity(const struct session *s, struct acl_identity *id)
{
    id->username = s->username;
    id->client_id = s->id;
    id->cert_cn = s->cert_cn;
    id->cert_ou = s->cert_ou;
}

bool session_allowed(struct broker *b, const struct session *s, enum acl_action a,
                     const char *topic, size_t len)
{
    if (!b->auth || s->trusted)
        return true;
    struct acl_identity id;
    session_identity(s, &id);
    return auth_allowed(b->auth, &id, a, topic, len);
}
