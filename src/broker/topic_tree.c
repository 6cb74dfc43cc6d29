/* The subscription tree (see topic_tree.h): one node per topic level, with
 * the '+' and '#' children kept apart so matching never scans for them, and
 * the other children found by hashing their level (struct node). */
#include "broker/topic_tree.h"

#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
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
    uint32_t count;
    uint32_t cursor; /* round robin */
};

/* A node's plain children (levels other than '+' and '#') are found by their
 * level. Up to KIDS_SMALL of them are kept as a short array (one child in the
 * pointer itself, the common case for a chain like dev/ID/cmd), scanned in
 * order; past that, an open-addressing table (linear probing, power-of-two
 * capacity, at most 3/4 full) indexed by the level's hash, so a level with
 * 100k children (dev/ID for 100k devices) costs one probe run per lookup, not
 * a scan. The hash is seeded by the parent's address (unknown to peers, who
 * choose levels) and kept in the child, so growing never rehashes strings. */
#define KIDS_SMALL     4
#define KIDS_TABLE_MIN 8

struct node {
    struct node *parent;
    char *filter; /* the plain filter ending here, for subtree_sub.filter */
    union {
        struct node *one;  /* capkids == 1 */
        struct node **arr; /* the short array, or the table */
    } kids;
    struct node *plus;
    struct node *hash;
    struct entry *subs;
    struct group *groups;
    uint32_t nkids, capkids;
    uint32_t nsubs, ngroups;
    uint32_t hval; /* hash of level, seeded by the parent */
    uint32_t level_len;
    char level[]; /* NUL-terminated */
};
/* Issue 17 holds a node per level for every client's filter: keep it small. */
_Static_assert(sizeof(void *) != 8 || sizeof(struct node) <= 80, "struct node grew");

struct subtree {
    struct node *root;
    size_t count;
    uint64_t visits; /* subscriptions examined by removals */
};

struct subtree *subtree_new(void)
{
    struct subtree *t = calloc(1, sizeof(*t));
    if (t && !(t->root = calloc(1, sizeof(struct node) + 1))) {
        free(t);
        return NULL;
    }
    return t;
}

static bool kids_table(const struct node *n)
{
    return n->capkids > KIDS_SMALL;
}

static struct node **kid_slots(struct node *n)
{
    return n->capkids == 1 ? &n->kids.one : n->kids.arr;
}

/* Slots to look at: the used prefix of the short array, or the whole table. */
static uint32_t kid_span(const struct node *n)
{
    return kids_table(n) ? n->capkids : n->nkids;
}

static uint32_t level_hash(const struct node *parent, const uint8_t *p, size_t len)
{
    uint64_t h = hash_fnv1a_seeded(p, len, (uint64_t)(uintptr_t)parent * 0x9e3779b97f4a7c15ull);
    return (uint32_t)(h ^ (h >> 32));
}

static bool kid_is(const struct node *c, uint32_t h, const uint8_t *lv, size_t len)
{
    return c->hval == h && c->level_len == len && memcmp(c->level, lv, len) == 0;
}

static struct node *kid_find(struct node *n, const uint8_t *lv, size_t len, uint32_t h)
{
    struct node **s = kid_slots(n);
    if (!kids_table(n)) {
        for (uint32_t i = 0; i < n->nkids; i++)
            if (kid_is(s[i], h, lv, len))
                return s[i];
        return NULL;
    }
    uint32_t mask = n->capkids - 1;
    for (uint32_t i = h & mask; s[i]; i = (i + 1) & mask)
        if (kid_is(s[i], h, lv, len))
            return s[i];
    return NULL;
}

static void table_put(struct node **tab, uint32_t cap, struct node *c)
{
    uint32_t i = c->hval & (cap - 1);
    while (tab[i])
        i = (i + 1) & (cap - 1);
    tab[i] = c;
}

/* Moves n's children into storage of capacity cap (a short array when cap <=
 * KIDS_SMALL, else a table); cap holds them all. On allocation failure n is
 * left as it was. */
static bool kids_resize(struct node *n, uint32_t cap)
{
    struct node **old = kid_slots(n);
    uint32_t span = kid_span(n);
    struct node **tab = NULL;
    struct node *one = NULL;
    if (cap > 1 && !(tab = calloc(cap, sizeof(*tab))))
        return false;
    uint32_t k = 0;
    for (uint32_t i = 0; i < span; i++) {
        if (!old[i])
            continue;
        if (cap == 1)
            one = old[i];
        else if (cap > KIDS_SMALL)
            table_put(tab, cap, old[i]);
        else
            tab[k] = old[i];
        k++;
    }
    if (n->capkids > 1)
        free(n->kids.arr);
    if (cap == 1)
        n->kids.one = one;
    else
        n->kids.arr = tab;
    n->capkids = cap;
    return true;
}

static bool kid_insert(struct node *n, struct node *c)
{
    uint32_t cap = n->capkids;
    if (!kids_table(n) ? n->nkids == cap : (uint64_t)(n->nkids + 1) * 4 > (uint64_t)cap * 3) {
        if (cap >= UINT32_MAX / 2)
            return false;
        if (!kids_resize(n, cap ? cap * 2 : 1))
            return false;
    }
    if (kids_table(n))
        table_put(n->kids.arr, n->capkids, c);
    else
        kid_slots(n)[n->nkids] = c;
    n->nkids++;
    return true;
}

/* Unlinks child c. The short array moves its last child into c's place; the
 * table shifts the rest of c's probe run back (no tombstones), so a slot that
 * held c may now hold a child from later in the run. Never reallocates:
 * drop_owner unlinks while it walks the slots (kids_shrink afterwards). */
static void kid_unlink(struct node *n, struct node *c)
{
    struct node **s = kid_slots(n);
    if (!kids_table(n)) {
        for (uint32_t i = 0; i < n->nkids; i++)
            if (s[i] == c) {
                s[i] = s[--n->nkids];
                s[n->nkids] = NULL;
                return;
            }
        return;
    }
    uint32_t mask = n->capkids - 1;
    uint32_t i = c->hval & mask;
    while (s[i] && s[i] != c)
        i = (i + 1) & mask;
    if (!s[i])
        return;
    for (uint32_t j = (i + 1) & mask; s[j]; j = (j + 1) & mask) {
        uint32_t home = s[j]->hval & mask;
        /* s[j] may fill the hole at i unless its home lies in (i, j]. */
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        s[i] = s[j];
        i = j;
    }
    s[i] = NULL;
    n->nkids--;
}

/* Gives back memory once few children are left: a quarter-full table halves
 * (growth at 3/4 keeps the two apart), no children frees the storage. Failure
 * to allocate the smaller table keeps the bigger one. */
static void kids_shrink(struct node *n)
{
    if (!n->nkids) {
        if (n->capkids > 1)
            free(n->kids.arr);
        n->kids.arr = NULL;
        n->capkids = 0;
        return;
    }
    if (!kids_table(n) || (uint64_t)n->nkids * 4 >= n->capkids)
        return;
    uint32_t cap = n->capkids / 2;
    if (cap < KIDS_TABLE_MIN) /* back to a short array */
        for (cap = 1; cap < n->nkids;)
            cap *= 2;
    (void)kids_resize(n, cap);
}

static void node_free(struct node *n)
{
    struct node **s = kid_slots(n);
    for (uint32_t i = 0, span = kid_span(n); i < span; i++)
        if (s[i])
            node_free(s[i]);
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
    if (n->capkids > 1)
        free(n->kids.arr);
    free(n->filter);
    free(n);
}

void subtree_free(struct subtree *t)
{
    if (!t)
        return;
    node_free(t->root);
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
    uint32_t h = slot ? 0 : level_hash(n, lv, len);
    if (!slot) {
        struct node *c = kid_find(n, lv, len, h);
        if (c)
            return c;
    }
    if (!create || len > UINT32_MAX)
        return NULL;
    struct node *c = calloc(1, sizeof(*c) + len + 1);
    if (!c)
        return NULL;
    memcpy(c->level, lv, len);
    c->level_len = (uint32_t)len;
    c->hval = h;
    c->parent = n;
    if (slot)
        *slot = c;
    else if (!kid_insert(n, c)) {
        free(c);
        return NULL;
    }
    return c;
}

/* Walks (creating when asked) to the node for a plain filter. */
static struct node *walk(struct subtree *t, const uint8_t *f, size_t len, bool create)
{
    struct node *n = t->root;
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
    return !n->nkids && !n->plus && !n->hash && !n->nsubs && !n->ngroups;
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
        else {
            kid_unlink(p, n);
            kids_shrink(p);
        }
        node_free(n);
        n = p;
    }
}

static int entry_put(struct entry **arr, uint32_t *n, void *owner, uint8_t options, uint32_t id)
{
    for (size_t i = 0; i < *n; i++)
        if ((*arr)[i].owner == owner) {
            (*arr)[i].options = options;
            (*arr)[i].sub_id = id;
            return 0;
        }
    size_t cap = *n; /* entries grow one at a time */
    if (*n == UINT32_MAX)
        return -1;
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
    if (n->ngroups == UINT32_MAX)
        return NULL;
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

static int entry_drop(struct entry *arr, uint32_t *n, void *owner)
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
    /* An emptied child is unlinked at once and its slot looked at again, as
     * kid_unlink may have moved a not yet visited child into it. A table's
     * backward shift can also bring one already visited there from the
     * wrapped start of the table; visiting it again removes nothing. */
    for (uint32_t i = 0; i < kid_span(n);) {
        struct node *c = kid_slots(n)[i];
        if (!c) {
            i++;
            continue;
        }
        removed += drop_owner(c, owner, visits);
        if (node_empty(c)) {
            kid_unlink(n, c);
            node_free(c);
        } else {
            i++;
        }
    }
    kids_shrink(n);
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
    size_t r = drop_owner(t->root, owner, &t->visits);
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
    match(t->root, topic, len, 0, &m);
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
    struct node **s = kid_slots(n);
    for (uint32_t i = 0, span = kid_span(n); i < span; i++)
        if (s[i])
            each(s[i], fn, ctx);
    if (n->plus)
        each(n->plus, fn, ctx);
    if (n->hash)
        each(n->hash, fn, ctx);
}

/* see topic_tree.h */
void subtree_each(struct subtree *t, subtree_match_fn fn, void *ctx)
{
    each(t->root, fn, ctx);
}

uint64_t subtree_visits(const struct subtree *t)
{
    return t->visits;
}
