/* NATS users, NKeys, the token and per-user permissions: see auth/nats_users.h.
 *
 * Subject matching here is deliberately local and small (auth must not depend
 * on src/nats yet); it works on (bytes, length) tokens split at '.'. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/hash.h"
#include "core/log.h"
#include "core/vec.h"

#include "auth/nats_users.h"

/* Longer names and subjects are refused: they are configuration, and these
 * bounds keep error messages and hashing cheap. */
#define NAME_MAX_LEN    1024u
#define SUBJECT_MAX_LEN 4096u

struct auth_nats_entry {
    char *name;
    char *hash; /* bcrypt; NULL for an NKey */
    struct auth_nats_perms *perms;
};

/* Entries are allocated one by one so a pointer handed out stays valid while
 * the array grows; `slots` is an open-addressing index (entry number + 1). */
struct table {
    struct auth_nats_entry **items;
    size_t n, cap;
    uint32_t *slots;
    size_t nslots; /* a power of two, at least twice n */
};

struct auth_nats {
    struct table users, nkeys;
    char *token;
    bool token_bcrypt;
};

/* ---- subjects ---- */

struct tok {
    const uint8_t *p;
    size_t len;
};

/* The next token of s[0..n) from *pos; false at the end. */
static bool next_tok(const uint8_t *s, size_t n, size_t *pos, struct tok *t)
{
    if (*pos > n)
        return false;
    const uint8_t *dot = memchr(s + *pos, '.', n - *pos);
    size_t end = dot ? (size_t)(dot - s) : n;
    t->p = s + *pos;
    t->len = end - *pos;
    *pos = end + 1;
    return true;
}

static bool tok_is(const struct tok *t, char c)
{
    return t->len == 1 && t->p[0] == (uint8_t)c;
}

static bool is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* NATS subject rules: non-empty tokens without white space (or NUL); with
 * wildcards, "*" and ">" are tokens of their own and ">" comes last. A '*'
 * or '>' inside a longer token is an ordinary character. */
static bool subject_valid(const uint8_t *s, size_t n, bool wildcards)
{
    if (!s || n == 0 || n > SUBJECT_MAX_LEN)
        return false;
    size_t pos = 0;
    struct tok t;
    bool after_fwc = false;
    while (next_tok(s, n, &pos, &t)) {
        if (t.len == 0 || after_fwc)
            return false;
        for (size_t i = 0; i < t.len; i++)
            if (is_space(t.p[i]) || t.p[i] == 0)
                return false;
        if (!wildcards && (tok_is(&t, '*') || tok_is(&t, '>')))
            return false;
        after_fwc = tok_is(&t, '>');
    }
    return true;
}

static bool tok_eq(const struct tok *a, const struct tok *b)
{
    return a->len == b->len && memcmp(a->p, b->p, a->len) == 0;
}

/* Whether every subject that `sub` matches is matched by `pat` (both valid,
 * wildcards allowed). For a literal `sub` it is plain matching. `loose` also
 * lets a "*" of pat take a ">" of sub, as nats-server's subscription list
 * does: looser for an allow entry, so only deny entries use it (deny "foo.*"
 * refuses "foo.>"). */
static bool covers(const uint8_t *pat, size_t plen, const uint8_t *sub, size_t slen, bool loose)
{
    size_t pp = 0, sp = 0;
    struct tok pt, st;
    for (;;) {
        bool hp = next_tok(pat, plen, &pp, &pt), hs = next_tok(sub, slen, &sp, &st);
        if (!hp || !hs)
            return hp == hs;
        if (tok_is(&pt, '>'))
            return true;
        if (tok_is(&pt, '*') && (loose || !tok_is(&st, '>')))
            continue;
        if (tok_is(&st, '>') || tok_is(&st, '*') || !tok_eq(&pt, &st))
            return false;
    }
}

static bool pattern_covers(const uint8_t *pat, size_t plen, const uint8_t *sub, size_t slen)
{
    return covers(pat, plen, sub, slen, false);
}

/* Whether some literal subject is matched by both patterns. */
static bool pattern_intersects(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t ap = 0, bp = 0;
    struct tok at, bt;
    for (;;) {
        bool ha = next_tok(a, alen, &ap, &at), hb = next_tok(b, blen, &bp, &bt);
        if (!ha || !hb)
            return ha == hb;
        if (tok_is(&at, '>') || tok_is(&bt, '>'))
            return true;
        if (tok_is(&at, '*') || tok_is(&bt, '*'))
            continue;
        if (!tok_eq(&at, &bt))
            return false;
    }
}

/* A permission entry: "subject" or, for subscribe lists, "subject queue"
 * (stored normalised with one space). */
struct perm {
    const uint8_t *subj, *queue;
    size_t slen, qlen; /* qlen 0: applies to every subscription */
};

static struct perm perm_split(const char *e)
{
    struct perm p = {(const uint8_t *)e, NULL, strlen(e), 0};
    const char *sp = strchr(e, ' ');
    if (sp) {
        p.slen = (size_t)(sp - e);
        p.queue = (const uint8_t *)sp + 1;
        p.qlen = strlen(sp + 1);
    }
    return p;
}

/* Queue names are compared literally first ("*" is a valid queue name); an
 * entry's queue with wildcards is also a pattern over queue names. */
static bool queue_matches(const struct perm *e, const uint8_t *q, size_t qlen)
{
    if (e->qlen == qlen && memcmp(e->queue, q, qlen) == 0)
        return true;
    return subject_valid(e->queue, e->qlen, true) && subject_valid(q, qlen, true) &&
           pattern_covers(e->queue, e->qlen, q, qlen);
}

/* ---- permission checks ---- */

static bool any_covers(const char *const *list, size_t n, const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        struct perm e = perm_split(list[i]);
        if (pattern_covers(e.subj, e.slen, s, len))
            return true;
    }
    return false;
}

static bool any_intersects(const char *const *list, size_t n, const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        struct perm e = perm_split(list[i]);
        if (pattern_intersects(e.subj, e.slen, s, len))
            return true;
    }
    return false;
}

/* see nats_users.h */
bool auth_nats_may_publish(const struct auth_nats_perms *p, const uint8_t *subj, size_t len)
{
    if (!subject_valid(subj, len, true))
        return false;
    if (!p)
        return true;
    /* allow_responses without an allow list denies every other subject:
     * the broker's reply tracking grants the responses themselves. */
    if ((p->npub_allow || p->allow_responses) &&
        !any_covers(p->pub_allow, p->npub_allow, subj, len))
        return false;
    /* Intersects, not matches: a subject with wildcard tokens (which the
     * codec should refuse anyway) must not slip past a narrower deny. */
    return !any_intersects(p->pub_deny, p->npub_deny, subj, len);
}

/* What a subscribe list says about a filter: whether an entry without a
 * queue covers it, whether entries with a queue cover it, and whether one
 * of those names the subscription's queue. */
struct sub_hits {
    bool plain, queued, queue_hit;
};

static struct sub_hits sub_list_hits(const char *const *list, size_t n, const uint8_t *subj,
                                     size_t len, const uint8_t *queue, size_t qlen, bool loose)
{
    struct sub_hits h = {false, false, false};
    for (size_t i = 0; i < n; i++) {
        struct perm e = perm_split(list[i]);
        if (!covers(e.subj, e.slen, subj, len, loose))
            continue;
        if (e.qlen == 0) {
            h.plain = true;
        } else {
            h.queued = true;
            h.queue_hit = h.queue_hit || (qlen && queue_matches(&e, queue, qlen));
        }
    }
    return h;
}

static bool queue_valid(const uint8_t *q, size_t qlen)
{
    if (qlen == 0)
        return true;
    if (!q || qlen > SUBJECT_MAX_LEN)
        return false;
    for (size_t i = 0; i < qlen; i++)
        if (is_space(q[i]) || q[i] == 0)
            return false;
    return true;
}

/* see nats_users.h */
bool auth_nats_may_subscribe(const struct auth_nats_perms *p, const uint8_t *subj, size_t len,
                             const uint8_t *queue, size_t qlen)
{
    if (!subject_valid(subj, len, true) || !queue_valid(queue, qlen))
        return false;
    if (!p)
        return true;
    /* Allow, as nats-server: for a queue subscription, entries with a queue
     * that cover the filter decide by the queue name, else entries without. */
    if (p->nsub_allow) {
        struct sub_hits a =
            sub_list_hits(p->sub_allow, p->nsub_allow, subj, len, queue, qlen, false);
        if (!((qlen && a.queued) ? a.queue_hit : a.plain))
            return false;
    }
    /* Deny: any hit refuses. nats-server lets a queue entry that does not
     * name the queue cancel a plain deny; that widens access, so not here. */
    struct sub_hits d = sub_list_hits(p->sub_deny, p->nsub_deny, subj, len, queue, qlen, true);
    return !d.plain && !d.queue_hit;
}

/* see nats_users.h */
bool auth_nats_sub_needs_filter(const struct auth_nats_perms *p, const uint8_t *subj, size_t len)
{
    if (!p || !subject_valid(subj, len, true))
        return false;
    return any_intersects(p->sub_deny, p->nsub_deny, subj, len);
}

/* see nats_users.h */
bool auth_nats_may_receive(const struct auth_nats_perms *p, const uint8_t *subj, size_t len,
                           const uint8_t *queue, size_t qlen)
{
    if (!subject_valid(subj, len, false) || !queue_valid(queue, qlen))
        return false;
    if (!p)
        return true;
    for (size_t i = 0; i < p->nsub_deny; i++) {
        struct perm e = perm_split(p->sub_deny[i]);
        if (!pattern_covers(e.subj, e.slen, subj, len))
            continue;
        if (e.qlen == 0 || (qlen && queue_matches(&e, queue, qlen)))
            return false;
    }
    return true;
}

/* ---- building ---- */

static void esc(const char *in, char *out, size_t cap)
{
    log_escape(in, strnlen(in, NAME_MAX_LEN), out, cap);
}

static void list_free(const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((void *)list[i]);
    free((void *)list);
}

static void perms_free(struct auth_nats_perms *p)
{
    if (!p)
        return;
    list_free(p->pub_allow, p->npub_allow);
    list_free(p->pub_deny, p->npub_deny);
    list_free(p->sub_allow, p->nsub_allow);
    list_free(p->sub_deny, p->nsub_deny);
    free(p);
}

/* One entry, checked and normalised: "subject" or, where queues are
 * allowed, "subject queue" from two fields separated by white space. NULL
 * with a sentence in err when invalid or out of memory. */
static char *perm_copy(const char *in, bool queues, const char *what, char *err, size_t errlen)
{
    char e[96];
    const uint8_t *s = (const uint8_t *)(in ? in : "");
    size_t n = strnlen((const char *)s, SUBJECT_MAX_LEN + 1);
    size_t b = 0;
    while (b < n && is_space(s[b]))
        b++;
    size_t se = b;
    while (se < n && !is_space(s[se]))
        se++;
    size_t qb = se;
    while (qb < n && is_space(s[qb]))
        qb++;
    size_t qe = qb;
    while (qe < n && !is_space(s[qe]))
        qe++;
    size_t end = qe;
    while (end < n && is_space(s[end]))
        end++;
    bool has_q = qe > qb;
    if (!subject_valid(s + b, se - b, true) || end != n || n > SUBJECT_MAX_LEN ||
        (has_q && !queues)) {
        esc((const char *)s, e, sizeof e);
        snprintf(err, errlen, "%s: \"%s\" is not a valid subject%s", what, e,
                 queues ? " (or \"subject queue\")" : "");
        return NULL;
    }
    char *out = malloc(n + 2);
    if (!out) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (has_q)
        snprintf(out, n + 2, "%.*s %.*s", (int)(se - b), s + b, (int)(qe - qb), s + qb);
    else
        snprintf(out, n + 2, "%.*s", (int)(se - b), s + b);
    return out;
}

static int list_copy(const char *const *src, size_t n, const char *const **dst, bool queues,
                     const char *what, char *err, size_t errlen)
{
    *dst = NULL;
    if (n == 0)
        return 0;
    if (!src) {
        snprintf(err, errlen, "%s: %zu entries but no list", what, n);
        return -1;
    }
    const char **out = calloc(n, sizeof *out);
    if (!out) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = perm_copy(src[i], queues, what, err, errlen);
        if (!out[i]) {
            list_free(out, i);
            return -1;
        }
    }
    *dst = out;
    return 0;
}

/* A deep copy of p with every subject checked; NULL for NULL (everything
 * allowed) and on error, told apart by the return value. */
static int perms_copy(const struct auth_nats_perms *p, struct auth_nats_perms **out, char *err,
                      size_t errlen)
{
    *out = NULL;
    if (!p)
        return 0;
    struct auth_nats_perms *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *c = (struct auth_nats_perms){.allow_responses = p->allow_responses,
                                  .responses_max = p->responses_max,
                                  .responses_expires_ms = p->responses_expires_ms};
    if (c->responses_max == 0)
        c->responses_max = AUTH_NATS_RESPONSES_MAX_DEFAULT;
    struct {
        const char *const *src;
        size_t n;
        const char *const **dst;
        size_t *ndst;
        bool queues;
        const char *what;
    } lists[] = {
        {p->pub_allow, p->npub_allow, &c->pub_allow, &c->npub_allow, false, "publish allow"},
        {p->pub_deny, p->npub_deny, &c->pub_deny, &c->npub_deny, false, "publish deny"},
        {p->sub_allow, p->nsub_allow, &c->sub_allow, &c->nsub_allow, true, "subscribe allow"},
        {p->sub_deny, p->nsub_deny, &c->sub_deny, &c->nsub_deny, true, "subscribe deny"},
    };
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        if (list_copy(lists[i].src, lists[i].n, lists[i].dst, lists[i].queues, lists[i].what, err,
                      errlen) != 0) {
            perms_free(c);
            return -1;
        }
        *lists[i].ndst = lists[i].n;
    }
    *out = c;
    return 0;
}

/* ---- tables ---- */

static void entry_free(struct auth_nats_entry *e)
{
    if (!e)
        return;
    if (e->hash) {
        OPENSSL_cleanse(e->hash, strlen(e->hash));
        free(e->hash);
    }
    perms_free(e->perms);
    free(e->name);
    free(e);
}

static void table_free(struct table *t)
{
    for (size_t i = 0; i < t->n; i++)
        entry_free(t->items[i]);
    free(t->items);
    free(t->slots);
}

static const struct auth_nats_entry *table_find(const struct table *t, const char *name)
{
    if (!name || t->nslots == 0)
        return NULL;
    size_t mask = t->nslots - 1;
    for (size_t i = (size_t)hash_fnv1a_str(name) & mask;; i = (i + 1) & mask) {
        uint32_t s = t->slots[i];
        if (s == 0)
            return NULL;
        if (strcmp(t->items[s - 1]->name, name) == 0)
            return t->items[s - 1];
    }
}

static void slot_put(uint32_t *slots, size_t nslots, const char *name, uint32_t v)
{
    size_t mask = nslots - 1;
    size_t i = (size_t)hash_fnv1a_str(name) & mask;
    while (slots[i] != 0)
        i = (i + 1) & mask;
    slots[i] = v;
}

/* Takes e on success. The index keeps at most half its slots full, so a
 * probe always ends at an empty slot. */
static int table_add(struct table *t, struct auth_nats_entry *e)
{
    if (t->n >= UINT32_MAX - 1 || !ward_ok(VEC_RESERVE(t->items, t->cap, t->n + 1)))
        return -1;
    if ((t->n + 1) * 2 > t->nslots) {
        size_t ns = t->nslots ? t->nslots * 2 : 16;
        uint32_t *slots = calloc(ns, sizeof *slots);
        if (!slots)
            return -1;
        for (size_t i = 0; i < t->n; i++)
            slot_put(slots, ns, t->items[i]->name, (uint32_t)(i + 1));
        free(t->slots);
        t->slots = slots;
        t->nslots = ns;
    }
    t->items[t->n] = e;
    slot_put(t->slots, t->nslots, e->name, (uint32_t)(t->n + 1));
    t->n++;
    return 0;
}

/* ---- the object ---- */

/* see nats_users.h */
struct auth_nats *auth_nats_new(void)
{
    return calloc(1, sizeof(struct auth_nats));
}

/* see nats_users.h */
void auth_nats_free(struct auth_nats *a)
{
    if (!a)
        return;
    table_free(&a->users);
    table_free(&a->nkeys);
    if (a->token) {
        OPENSSL_cleanse(a->token, strlen(a->token));
        free(a->token);
    }
    free(a);
}

/* Builds the entry, then adds it; on any failure nothing is kept. */
static int add_entry(struct table *t, const char *name, const char *hash,
                     const struct auth_nats_perms *p, char *err, size_t errlen)
{
    struct auth_nats_entry *e = calloc(1, sizeof *e);
    if (!e || !(e->name = strdup(name)) || (hash && !(e->hash = strdup(hash)))) {
        entry_free(e);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (perms_copy(p, &e->perms, err, errlen) != 0) {
        entry_free(e);
        return -1;
    }
    if (table_add(t, e) != 0) {
        entry_free(e);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static bool name_ok(const char *name)
{
    size_t n = name ? strnlen(name, NAME_MAX_LEN + 1) : 0;
    return n > 0 && n <= NAME_MAX_LEN;
}

/* see nats_users.h */
int auth_nats_add_user(struct auth_nats *a, const struct auth_nats_user *u, char *err,
                       size_t errlen)
{
    char e[96];
    if (!a || !u || !name_ok(u->user)) {
        snprintf(err, errlen, "a NATS user needs a name (1 to %u bytes)", NAME_MAX_LEN);
        return -1;
    }
    esc(u->user, e, sizeof e);
    /* A user without a password logs in only by its certificate
     * (verify_and_map) or as no_auth_user. */
    if (u->password && !auth_is_bcrypt(u->password)) {
        snprintf(err, errlen,
                 "user \"%s\": the password is not a bcrypt hash: make one with `ward passwd "
                 "--bcrypt`",
                 e);
        return -1;
    }
    if (u->password && auth_bcrypt_cost(u->password) > AUTH_BCRYPT_MAX_COST) {
        snprintf(err, errlen, "user \"%s\": the bcrypt cost %u is over the limit of %u", e,
                 auth_bcrypt_cost(u->password), AUTH_BCRYPT_MAX_COST);
        return -1;
    }
    if (table_find(&a->users, u->user)) {
        snprintf(err, errlen, "user \"%s\" is defined twice", e);
        return -1;
    }
    char why[256];
    if (add_entry(&a->users, u->user, u->password, u->perms, why, sizeof why) != 0) {
        snprintf(err, errlen, "user \"%s\": %s", e, why);
        return -1;
    }
    return 0;
}

/* see nats_users.h */
int auth_nats_add_nkey(struct auth_nats *a, const char *pubkey, const struct auth_nats_perms *p,
                       char *err, size_t errlen)
{
    char e[96];
    if (!a || !name_ok(pubkey)) {
        snprintf(err, errlen, "an NKey user needs a public key");
        return -1;
    }
    esc(pubkey, e, sizeof e);
    if (!auth_nkey_valid_user_key(pubkey)) {
        snprintf(err, errlen,
                 "nkey \"%s\" is not an NKey user public key (56 base32 characters starting "
                 "with U, checksum included)",
                 e);
        return -1;
    }
    if (table_find(&a->nkeys, pubkey)) {
        snprintf(err, errlen, "nkey \"%s\" is defined twice", e);
        return -1;
    }
    char why[256];
    if (add_entry(&a->nkeys, pubkey, NULL, p, why, sizeof why) != 0) {
        snprintf(err, errlen, "nkey \"%s\": %s", e, why);
        return -1;
    }
    return 0;
}

/* see nats_users.h */
int auth_nats_set_token(struct auth_nats *a, const char *token, char *err, size_t errlen)
{
    size_t n = token ? strnlen(token, NAME_MAX_LEN + 1) : 0;
    if (!a || n == 0 || n > NAME_MAX_LEN) {
        snprintf(err, errlen, "the NATS token must be 1 to %u bytes", NAME_MAX_LEN);
        return -1;
    }
    if (auth_bcrypt_cost(token) > AUTH_BCRYPT_MAX_COST) {
        snprintf(err, errlen, "the NATS token's bcrypt cost %u is over the limit of %u",
                 auth_bcrypt_cost(token), AUTH_BCRYPT_MAX_COST);
        return -1;
    }
    char *t = strdup(token);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (a->token) {
        OPENSSL_cleanse(a->token, strlen(a->token));
        free(a->token);
    }
    a->token = t;
    a->token_bcrypt = auth_is_bcrypt(t);
    return 0;
}

/* ---- lookups and checks ---- */

/* see nats_users.h */
const struct auth_nats_entry *auth_nats_find_user(const struct auth_nats *a, const char *user)
{
    return a ? table_find(&a->users, user) : NULL;
}

/* see nats_users.h */
const struct auth_nats_entry *auth_nats_find_nkey(const struct auth_nats *a, const char *pubkey)
{
    return a ? table_find(&a->nkeys, pubkey) : NULL;
}

/* see nats_users.h */
const struct auth_nats_perms *auth_nats_entry_perms(const struct auth_nats_entry *e)
{
    return e ? e->perms : NULL;
}

/* see nats_users.h */
const char *auth_nats_entry_name(const struct auth_nats_entry *e)
{
    return e ? e->name : NULL;
}

/* see nats_users.h */
bool auth_nats_has_users(const struct auth_nats *a)
{
    return a && a->users.n > 0;
}

/* see nats_users.h */
bool auth_nats_has_token(const struct auth_nats *a)
{
    return a && a->token;
}

/* see nats_users.h */
bool auth_nats_has_nkeys(const struct auth_nats *a)
{
    return a && a->nkeys.n > 0;
}

/* see nats_users.h */
bool auth_nats_check_password(const struct auth_nats_entry *e, const char *password)
{
    return e && e->hash && password && auth_bcrypt_verify(e->hash, password);
}

/* Equal strings, in time that depends on neither's contents nor on where
 * they differ: both are hashed first, so lengths are not compared directly. */
static bool secret_eq(const char *a, const char *b)
{
    uint8_t ha[EVP_MAX_MD_SIZE], hb[EVP_MAX_MD_SIZE];
    unsigned la = 0, lb = 0;
    if (EVP_Digest(a, strlen(a), ha, &la, EVP_sha256(), NULL) != 1 ||
        EVP_Digest(b, strlen(b), hb, &lb, EVP_sha256(), NULL) != 1 || la != lb)
        return false;
    return CRYPTO_memcmp(ha, hb, la) == 0;
}

/* see nats_users.h */
bool auth_nats_check_token(const struct auth_nats *a, const char *token)
{
    if (!a || !a->token || !token)
        return false;
    if (a->token_bcrypt)
        return auth_bcrypt_verify(a->token, token);
    return secret_eq(a->token, token);
}
