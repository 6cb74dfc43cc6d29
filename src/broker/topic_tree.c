/* The subscription tree (see topic_tree.h): one node per topic level, with
 * the '+' and '#' children kept apart so matching never scans for them. */
#include "broker/topic_tree.h"

#include <stdlib.h>
#include <string.h>

#include "core/vec.h"
#include "mqtt/mqtt.h"

struct entry {
    void *owner;
    uint8_t options;
    uint32_t sub_id;
};

struct group {
    char *name;
    struct entry *members;
    size_t count;
    size_t cursor; /* round robin */
};

struct node {
    char *level;
    size_t level_len;
    char *filter; /* the plain filter ending here, for subtree_sub.filter */
    struct node *parent;
    struct node **children;
    size_t nchildren;
    struct node *plus;
    struct node *hash;
    struct entry *subs;
    size_t nsubs;
    struct group *groups;
    size_t ngroups;
};

struct subtree {
    struct node root;
    size_t count;
    uint64_t visits; /* subscriptions examined by removals */
};

struct subtree *subtree_new(void)
{
    return calloc(1, sizeof(struct subtree));
}

static void node_free(struct node *n)
{
    for (size_t i = 0; i < n->nchildren; i++)
        node_free(n->children[i]);
    if (n->plus)
        node_free(n->plus);
    if (n->hash)
        node_free(n->hash);
    for (size_t i = 0; i < n->ngroups; i++) {
        free(n->groups[i].name);
        free(n->groups[i].members);
    }
    free(n->groups);
    free(n->subs);
    free(n->children);
    free(n->level);
    free(n->filter);
    if (n->parent)
        free(n);
}

void subtree_free(struct subtree *t)
{
    if (!t)
        return;
    node_free(&t->root);
    free(t);
}

/* Splits "$share/GROUP/FILTER" with the codec's parser (mqtt_share_split);
 * false for a malformed shared filter, which the tree never holds. */
static bool split_share(const uint8_t **f, size_t *len, const uint8_t **group, size_t *glen)
{
    struct mqtt_share sh;
    if (!mqtt_share_split(*f, *len, &sh))
        return false;
    *group = sh.group;
    *glen = sh.group_len;
    *f = sh.filter;
    *len = sh.filter_len;
    return true;
}

static struct node *child(struct node *n, const uint8_t *lv, size_t len, bool create)
{
    struct node **slot = NULL;
    if (len == 1 && lv[0] == '+')
        slot = &n->plus;
    else if (len == 1 && lv[0] == '#')
        slot = &n->hash;
    if (slot && *slot)
        return *slot;
    if (!slot)
        for (size_t i = 0; i < n->nchildren; i++)
            if (n->children[i]->level_len == len && memcmp(n->children[i]->level, lv, len) == 0)
                return n->children[i];
    if (!create)
        return NULL;
    struct node *c = calloc(1, sizeof(*c));
    if (!c || !(c->level = malloc(len + 1))) {
        free(c);
        return NULL;
    }
    memcpy(c->level, lv, len);
    c->level[len] = '\0';
    c->level_len = len;
    c->parent = n;
    if (slot) {
        *slot = c;
        return c;
    }
    size_t cap = n->nchildren; /* children grow one at a time; freed slots are reused */
    if (!ward_ok(VEC_RESERVE_EXACT(n->children, cap, n->nchildren + 1))) {
        free(c->level);
        free(c);
        return NULL;
    }
    n->children[n->nchildren++] = c;
    return c;
}

/* Walks (creating when asked) to the node for a plain filter. */
static struct node *walk(struct subtree *t, const uint8_t *f, size_t len, bool create)
{
    struct node *n = &t->root;
    size_t pos = 0;
    struct mqtt_span lv;
    while (n && mqtt_level_next(f, len, &pos, &lv))
        n = child(n, lv.p, lv.len, create);
    if (n && create && !n->filter && (n->filter = malloc(len + 1))) {
        memcpy(n->filter, f, len);
        n->filter[len] = '\0';
    }
    return n;
}

static bool node_empty(const struct node *n)
{
    return !n->nchildren && !n->plus && !n->hash && !n->nsubs && !n->ngroups;
}

/* Frees empty nodes from n up towards the root. */
static void prune(struct node *n)
{
    while (n->parent && node_empty(n)) {
        struct node *p = n->parent;
        if (p->plus == n)
            p->plus = NULL;
        else if (p->hash == n)
            p->hash = NULL;
        else
            for (size_t i = 0; i < p->nchildren; i++)
                if (p->children[i] == n) {
                    p->children[i] = p->children[--p->nchildren];
                    break;
                }
        node_free(n);
        n = p;
    }
}

static int entry_put(struct entry **arr, size_t *n, void *owner, uint8_t options, uint32_t id)
{
    for (size_t i = 0; i < *n; i++)
        if ((*arr)[i].owner == owner) {
            (*arr)[i].options = options;
            (*arr)[i].sub_id = id;
            return 0;
        }
    size_t cap = *n; /* entries grow one at a time */
    if (!ward_ok(vec_reserve_exact(arr, &cap, *n + 1, sizeof(**arr))))
        return -1;
    (*arr)[(*n)++] = (struct entry){owner, options, id};
    return 1;
}

static struct group *group_get(struct node *n, const uint8_t *g, size_t glen, bool create)
{
    for (size_t i = 0; i < n->ngroups; i++)
        if (strlen(n->groups[i].name) == glen && memcmp(n->groups[i].name, g, glen) == 0)
            return &n->groups[i];
    if (!create)
        return NULL;
    size_t cap = n->ngroups; /* groups grow one at a time */
    if (!ward_ok(VEC_RESERVE_EXACT(n->groups, cap, n->ngroups + 1)))
        return NULL;
    struct group *gr = &n->groups[n->ngroups];
    memset(gr, 0, sizeof(*gr));
    if (!(gr->name = strndup((const char *)g, glen)))
        return NULL;
    n->ngroups++;
    return gr;
}

int subtree_add(struct subtree *t, const uint8_t *filter, size_t len, void *owner, uint8_t options,
                uint32_t sub_id)
{
    const uint8_t *g;
    size_t glen;
    if (!split_share(&filter, &len, &g, &glen))
        return -1;
    struct node *n = walk(t, filter, len, true);
    if (!n)
        return -1;
    int r;
    if (g) {
        struct group *gr = group_get(n, g, glen, true);
        r = gr ? entry_put(&gr->members, &gr->count, owner, options, sub_id) : -1;
    } else {
        r = entry_put(&n->subs, &n->nsubs, owner, options, sub_id);
    }
    if (r < 0)
        prune(n);
    if (r == 1)
        t->count++;
    return r;
}

static int entry_drop(struct entry *arr, size_t *n, void *owner)
{
    for (size_t i = 0; i < *n; i++)
        if (arr[i].owner == owner) {
            memmove(&arr[i], &arr[i + 1], (*n - i - 1) * sizeof(*arr));
            (*n)--;
            return 1;
        }
    return 0;
}

static void group_drop_empty(struct node *n, struct group *gr)
{
    if (gr->count)
        return;
    free(gr->name);
    free(gr->members);
    size_t i = (size_t)(gr - n->groups);
    memmove(gr, gr + 1, (n->ngroups - i - 1) * sizeof(*gr));
    n->ngroups--;
}

int subtree_remove(struct subtree *t, const uint8_t *filter, size_t len, void *owner)
{
    const uint8_t *g;
    size_t glen;
    if (!split_share(&filter, &len, &g, &glen))
        return 0;
    struct node *n = walk(t, filter, len, false);
    if (!n)
        return 0;
    int r = 0;
    if (g) {
        struct group *gr = group_get(n, g, glen, false);
        if (gr && (r = entry_drop(gr->members, &gr->count, owner))) {
            if (gr->cursor >= gr->count)
                gr->cursor = 0;
            group_drop_empty(n, gr);
        }
    } else {
        r = entry_drop(n->subs, &n->nsubs, owner);
    }
    t->visits++;
    t->count -= (size_t)r;
    prune(n);
    return r;
}

/* Removes owner everywhere below n; returns how many. A child left empty is
 * freed by its parent here (never by itself, so no node frees one that a
 * caller up the recursion is still iterating). */
static size_t drop_owner(struct node *n, void *owner, uint64_t *visits)
{
    size_t removed = 0;
    *visits += n->nsubs + n->ngroups;
    for (size_t i = n->nchildren; i-- > 0;) {
        struct node *c = n->children[i];
        removed += drop_owner(c, owner, visits);
        if (node_empty(c)) {
            n->children[i] = n->children[--n->nchildren];
            node_free(c);
        }
    }
    struct node **wild[2] = {&n->plus, &n->hash};
    for (int k = 0; k < 2; k++) {
        if (!*wild[k])
            continue;
        removed += drop_owner(*wild[k], owner, visits);
        if (node_empty(*wild[k])) {
            node_free(*wild[k]);
            *wild[k] = NULL;
        }
    }
    removed += (size_t)entry_drop(n->subs, &n->nsubs, owner);
    for (size_t i = n->ngroups; i-- > 0;) {
        struct group *gr = &n->groups[i];
        if (entry_drop(gr->members, &gr->count, owner)) {
            removed++;
            if (gr->cursor >= gr->count)
                gr->cursor = 0;
            group_drop_empty(n, gr);
        }
    }
    return removed;
}

size_t subtree_remove_owner(struct subtree *t, void *owner)
{
    size_t r = drop_owner(&t->root, owner, &t->visits);
    t->count -= r;
    return r;
}

struct match_ctx {
    subtree_match_fn fn;
    subtree_eligible_fn eligible;
    void *ctx;
};

static void report(struct node *n, struct match_ctx *m)
{
    for (size_t i = 0; i < n->nsubs; i++) {
        struct subtree_sub s = {n->subs[i].owner, n->subs[i].options, n->subs[i].sub_id, n->filter,
                                NULL};
        m->fn(m->ctx, &s);
    }
    for (size_t i = 0; i < n->ngroups; i++) {
        struct group *gr = &n->groups[i];
        if (!gr->count)
            continue;
        size_t pick = gr->cursor % gr->count;
        for (size_t k = 0; m->eligible && k < gr->count; k++) {
            size_t idx = (gr->cursor + k) % gr->count;
            if (m->eligible(m->ctx, gr->members[idx].owner)) {
                pick = idx;
                break;
            }
        }
        gr->cursor = (pick + 1) % gr->count;
        struct entry *e = &gr->members[pick];
        struct subtree_sub s = {e->owner, e->options, e->sub_id, n->filter, gr->name};
        m->fn(m->ctx, &s);
    }
}

/* Matches the topic's levels from pos on below n, splitting levels as
 * mqtt_topic_match does (tests/unit/broker/test_topic_tree.c checks that
 * both agree). */
static void match(struct node *n, const uint8_t *t, size_t len, size_t pos, struct match_ctx *m)
{
    /* MQTT-4.7.2-1: wildcards at the first level skip '$' topics. */
    bool wild_ok = !(pos == 0 && mqtt_topic_is_dollar(t, len));
    if (n->hash && wild_ok)
        report(n->hash, m);
    struct mqtt_span lv;
    if (!mqtt_level_next(t, len, &pos, &lv))
        return;
    /* Topic names have no wildcards; never treat a level as one. */
    bool wild = mqtt_level_is(&lv, '+') || mqtt_level_is(&lv, '#');
    struct node *cands[2] = {wild ? NULL : child(n, lv.p, lv.len, false), wild_ok ? n->plus : NULL};
    for (int i = 0; i < 2; i++) {
        struct node *x = cands[i];
        if (!x)
            continue;
        if (pos <= len) {
            match(x, t, len, pos, m);
        } else {
            report(x, m);
            if (x->hash) /* "a/#" matches "a" */
                report(x->hash, m);
        }
    }
}

void subtree_match(struct subtree *t, const uint8_t *topic, size_t len, subtree_match_fn fn,
                   subtree_eligible_fn eligible, void *ctx)
{
    struct match_ctx m = {fn, eligible, ctx};
    match(&t->root, topic, len, 0, &m);
}

size_t subtree_count(const struct subtree *t)
{
    return t->count;
}

static void each(struct node *n, subtree_match_fn fn, void *ctx)
{
    for (size_t i = 0; i < n->nsubs; i++) {
        struct subtree_sub s = {n->subs[i].owner, n->subs[i].options, n->subs[i].sub_id, n->filter,
                                NULL};
        fn(ctx, &s);
    }
    for (size_t g = 0; g < n->ngroups; g++)
        for (size_t i = 0; i < n->groups[g].count; i++) {
            struct entry *e = &n->groups[g].members[i];
            struct subtree_sub s = {e->owner, e->options, e->sub_id, n->filter, n->groups[g].name};
            fn(ctx, &s);
        }
    for (size_t i = 0; i < n->nchildren; i++)
        each(n->children[i], fn, ctx);
    if (n->plus)
        each(n->plus, fn, ctx);
    if (n->hash)
        each(n->hash, fn, ctx);
}

/* see topic_tree.h */
void subtree_each(struct subtree *t, subtree_match_fn fn, void *ctx)
{
    each(&t->root, fn, ctx);
}

uint64_t subtree_visits(const struct subtree *t)
{
    return t->visits;
}
