/* The retained store (see retain.h): one node per topic level. A node's
 * children are found through one hash table for the whole store, keyed by
 * (parent, level), so a level with 40,000 children costs one lookup; they
 * are also linked in a list so '+' and '#' can walk them. Nodes holding no
 * message and no children are freed as soon as they are left that way. */
#include "broker/retain.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "broker/msg.h"
#include "core/hash.h"

struct node {
    struct node *parent;
    struct node *hnext;       /* hash chain */
    struct node *kids;        /* first child */
    struct node *prev, *next; /* siblings */
    struct msg *m;
    size_t hash;
    uint16_t len;
    char name[]; /* the level, not NUL-terminated; may be empty */
};

struct retain_store {
    struct node *root; /* above the first level; never holds a message */
    struct node **tab;
    size_t cap; /* power of two */
    size_t nnodes;
    size_t count, bytes;         /* everything held */
    size_t sys_count, sys_bytes; /* the part on $SYS topics (not limited) */
    size_t nexpiring;            /* held messages with an expiry */
    size_t max_messages, max_bytes;
    uint64_t next_sweep_ms;
    uint64_t visits;
};

#define SWEEP_INTERVAL_MS 1000

/* ---- levels and the node table -------------------------------------------- */

/* Length of the first level of p: up to the first '/' or the end. */
static size_t level_len(const uint8_t *p, size_t len)
{
    const uint8_t *slash = memchr(p, '/', len);
    return slash ? (size_t)(slash - p) : len;
}

static size_t hash_level(const struct node *parent, const uint8_t *p, size_t len)
{
    uint64_t h = hash_fnv1a_seeded(p, len, (uint64_t)(uintptr_t)parent * 0x9e3779b97f4a7c15ull);
    return (size_t)(h ^ (h >> 32));
}

static struct node *lookup(const struct retain_store *s, const struct node *parent,
                           const uint8_t *p, size_t len)
{
    size_t h = hash_level(parent, p, len);
    for (struct node *n = s->tab[h & (s->cap - 1)]; n; n = n->hnext)
        if (n->hash == h && n->parent == parent && n->len == len && memcmp(n->name, p, len) == 0)
            return n;
    return NULL;
}

static void grow(struct retain_store *s)
{
    size_t cap = s->cap * 2;
    struct node **tab = calloc(cap, sizeof(*tab));
    if (!tab)
        return; /* longer chains: slower, still correct */
    for (size_t i = 0; i < s->cap; i++)
        for (struct node *n = s->tab[i], *next; n; n = next) {
            next = n->hnext;
            n->hnext = tab[n->hash & (cap - 1)];
            tab[n->hash & (cap - 1)] = n;
        }
    free(s->tab);
    s->tab = tab;
    s->cap = cap;
}

static struct node *add_child(struct retain_store *s, struct node *parent, const uint8_t *p,
                              size_t len)
{
    struct node *n = calloc(1, sizeof(*n) + len);
    if (!n)
        return NULL;
    n->parent = parent;
    n->len = (uint16_t)len; /* a topic is at most 65535 bytes */
    memcpy(n->name, p, len);
    n->hash = hash_level(parent, p, len);
    n->next = parent->kids;
    if (parent->kids)
        parent->kids->prev = n;
    parent->kids = n;
    if (s->nnodes >= s->cap)
        grow(s);
    n->hnext = s->tab[n->hash & (s->cap - 1)];
    s->tab[n->hash & (s->cap - 1)] = n;
    s->nnodes++;
    return n;
}

/* Frees n if it holds no message and has no children. The root stays. */
static void drop_if_empty(struct retain_store *s, struct node *n)
{
    if (n == s->root || n->m || n->kids)
        return;
    if (n->prev)
        n->prev->next = n->next;
    else
        n->parent->kids = n->next;
    if (n->next)
        n->next->prev = n->prev;
    struct node **pp = &s->tab[n->hash & (s->cap - 1)];
    while (*pp != n)
        pp = &(*pp)->hnext;
    *pp = n->hnext;
    s->nnodes--;
    free(n);
}

/* Frees n and then each ancestor left empty. */
static void prune(struct retain_store *s, struct node *n)
{
    while (n != s->root && !n->m && !n->kids) {
        struct node *parent = n->parent;
        drop_if_empty(s, n);
        n = parent;
    }
}

/* The node of a topic name, or NULL. */
static struct node *find(const struct retain_store *s, const uint8_t *t, size_t len)
{
    struct node *n = s->root;
    for (size_t pos = 0;; pos++) {
        size_t l = level_len(t + pos, len - pos);
        n = lookup(s, n, t + pos, l);
        pos += l;
        if (!n || pos == len)
            return n;
    }
}

/* The node of a topic name, made with its missing ancestors; NULL (nothing
 * left behind) on allocation failure. */
static struct node *make_path(struct retain_store *s, const uint8_t *t, size_t len)
{
    struct node *n = s->root;
    for (size_t pos = 0;; pos++) {
        size_t l = level_len(t + pos, len - pos);
        struct node *c = lookup(s, n, t + pos, l);
        if (!c)
            c = add_child(s, n, t + pos, l);
        if (!c) {
            prune(s, n);
            return NULL;
        }
        n = c;
        pos += l;
        if (pos == len)
            return n;
    }
}

/* ---- accounting ------------------------------------------------------------ */

static size_t msg_bytes(const struct msg *m)
{
    return (size_t)m->topic_len + m->payload_len + m->content_type_len + m->response_topic_len +
           m->correlation_len + m->user_raw_len;
}

static bool is_sys(const struct msg *m)
{
    return m->topic_len >= 4 && memcmp(m->topic, "$SYS", 4) == 0 &&
           (m->topic_len == 4 || m->topic[4] == '/');
}

/* sign is 1 (m comes in) or -1 (m leaves): size_t arithmetic wraps, so adding
 * (size_t)-1 * b subtracts b. */
static void account(struct retain_store *s, const struct msg *m, int sign)
{
    size_t b = msg_bytes(m);
    s->count += (size_t)sign;
    s->bytes += (size_t)sign * b;
    s->nexpiring += m->has_expiry ? (size_t)sign : 0;
    if (is_sys(m)) {
        s->sys_count += (size_t)sign;
        s->sys_bytes += (size_t)sign * b;
    }
}

static void hold(struct retain_store *s, struct node *n, struct msg *m)
{
    n->m = msg_ref(m);
    account(s, m, 1);
}

/* Removes n's message; the caller prunes. */
static void unhold(struct retain_store *s, struct node *n)
{
    account(s, n->m, -1);
    msg_unref(n->m);
    n->m = NULL;
}

/* Whether m fits when `old` (the message it replaces, or NULL) leaves. */
static bool fits(const struct retain_store *s, const struct msg *m, const struct msg *old)
{
    if (is_sys(m))
        return true;
    size_t count = s->count - s->sys_count + (old ? 0 : 1);
    size_t bytes = s->bytes - s->sys_bytes - (old ? msg_bytes(old) : 0) + msg_bytes(m);
    return (!s->max_messages || count <= s->max_messages) &&
           (!s->max_bytes || bytes <= s->max_bytes);
}

/* ---- walking ----------------------------------------------------------------- */

struct walk {
    struct retain_store *s;
    uint64_t now;
    retain_match_fn fn; /* NULL: only drop expired messages */
    void *ctx;
};

static void deliver(struct walk *w, struct node *n)
{
    if (!n->m)
        return;
    if (msg_expired(n->m, w->now)) { /* MQTT-3.3.2-5 */
        unhold(w->s, n);
        return;
    }
    if (w->fn)
        w->fn(w->ctx, n->m);
}

/* Delivers top and everything below it, without recursion (the tree may be
 * as deep as the longest topic). Descendants left empty are freed on the
 * way up; top is the caller's to free. */
static void each_below(struct walk *w, struct node *top)
{
    deliver(w, top);
    struct node *n = top->kids;
    while (n) {
        w->s->visits++;
        deliver(w, n);
        if (n->kids) {
            n = n->kids;
            continue;
        }
        /* Leave n, and each ancestor whose last child it was, up to top. */
        while (n != top) {
            struct node *next = n->next, *parent = n->parent;
            drop_if_empty(w->s, n);
            if (next) {
                n = next;
                break;
            }
            n = parent;
        }
        if (n == top)
            return;
    }
}

static bool skip_dollar(const struct walk *w, const struct node *parent, const struct node *c)
{
    /* MQTT-4.7.2-1: a filter starting with a wildcard does not match '$' topics. */
    return parent == w->s->root && c->len > 0 && c->name[0] == '$';
}

/* Matches the filter levels f (end: none left) against node n. */
static void match(struct walk *w, struct node *n, const uint8_t *f, size_t len, bool end)
{
    w->s->visits++;
    if (end) {
        deliver(w, n);
        return;
    }
    size_t l = level_len(f, len);
    const uint8_t *rest = l < len ? f + l + 1 : f + len;
    size_t rest_len = l < len ? len - l - 1 : 0;
    if (l == 1 && f[0] == '#') {
        if (n != w->s->root) { /* "a/#" matches "a" too (MQTT-4.7.1-2) */
            each_below(w, n);
            return;
        }
        for (struct node *c = n->kids, *next; c; c = next) {
            next = c->next;
            if (skip_dollar(w, n, c))
                continue;
            w->s->visits++;
            each_below(w, c);
            drop_if_empty(w->s, c);
        }
        return;
    }
    if (l == 1 && f[0] == '+') {
        for (struct node *c = n->kids, *next; c; c = next) {
            next = c->next;
            if (skip_dollar(w, n, c))
                continue;
            match(w, c, rest, rest_len, l == len);
            drop_if_empty(w->s, c);
        }
        return;
    }
    struct node *c = lookup(w->s, n, f, l);
    if (c) {
        match(w, c, rest, rest_len, l == len);
        drop_if_empty(w->s, c);
    }
}

/* Drops every expired message, at most once per SWEEP_INTERVAL_MS: a full
 * store must not stay full of messages nobody can receive any more. */
static void sweep(struct retain_store *s, uint64_t now)
{
    if (!s->nexpiring || now < s->next_sweep_ms)
        return;
    s->next_sweep_ms = now + SWEEP_INTERVAL_MS;
    uint64_t visits = s->visits; /* the counter is for matches */
    struct walk w = {s, now, NULL, NULL};
    for (struct node *c = s->root->kids, *next; c; c = next) {
        next = c->next;
        each_below(&w, c);
        drop_if_empty(s, c);
    }
    s->visits = visits;
}

/* ---- the interface ----------------------------------------------------------- */

struct retain_store *retain_new(size_t max_messages, size_t max_bytes)
{
    struct retain_store *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cap = 256;
    s->tab = calloc(s->cap, sizeof(*s->tab));
    s->root = calloc(1, sizeof(*s->root));
    if (!s->tab || !s->root) {
        free(s->tab);
        free(s->root);
        free(s);
        return NULL;
    }
    s->max_messages = max_messages;
    s->max_bytes = max_bytes;
    return s;
}

void retain_free(struct retain_store *s)
{
    if (!s)
        return;
    /* Every node but the root is in the table. */
    for (size_t i = 0; i < s->cap; i++)
        for (struct node *n = s->tab[i], *next; n; n = next) {
            next = n->hnext;
            if (n->m)
                msg_unref(n->m);
            free(n);
        }
    free(s->tab);
    free(s->root);
    free(s);
}

/* m replaces n's message if the bytes allow. */
static int replace(struct retain_store *s, struct node *n, struct msg *m)
{
    struct msg *old = n->m;
    if (!fits(s, m, old)) {
        unhold(s, n);
        prune(s, n);
        return RETAIN_FULL;
    }
    account(s, old, -1);
    msg_unref(old);
    hold(s, n, m);
    return RETAIN_OK;
}

int retain_set(struct retain_store *s, struct msg *m)
{
    const uint8_t *t = (const uint8_t *)m->topic;
    struct node *n = find(s, t, m->topic_len);
    if (m->payload_len == 0) { /* MQTT-3.3.1-10/11: clears, is not stored */
        if (n && n->m) {
            unhold(s, n);
            prune(s, n);
        }
        return RETAIN_OK;
    }
    if (n && n->m)
        return replace(s, n, m);
    if (!fits(s, m, NULL)) {
        sweep(s, m->created_ms); /* may free n */
        if (!fits(s, m, NULL))
            return RETAIN_FULL;
    }
    n = make_path(s, t, m->topic_len);
    if (!n)
        return RETAIN_NOMEM;
    hold(s, n, m);
    return RETAIN_OK;
}

void retain_match(struct retain_store *s, const uint8_t *filter, size_t len, uint64_t now_ms,
                  retain_match_fn fn, void *ctx)
{
    struct walk w = {s, now_ms, fn, ctx};
    match(&w, s->root, filter, len, false);
}

size_t retain_count(const struct retain_store *s)
{
    return s->count;
}

size_t retain_bytes(const struct retain_store *s)
{
    return s->bytes;
}

uint64_t retain_visits(const struct retain_store *s)
{
    return s->visits;
}
