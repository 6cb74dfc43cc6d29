/* see acl.h */
#include "auth/acl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/hocon.h"
#include "core/vec.h"
#include "mqtt/mqtt.h"

static const char *const field_names[ACL_NFIELDS] = {"username", "clientid", "cert_cn", "cert_ou"};

/* Errors accumulate, one "file:line: cause" per line, so a user fixes every
 * problem of a file in one pass. */
struct errs {
    char *buf;
    size_t cap, len;
    int n;
};

static void report(struct errs *e, const struct hocon_value *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(struct errs *e, const struct hocon_value *at, const char *fmt, ...)
{
    if (e->len + 1 >= e->cap)
        return;
    int k = snprintf(e->buf + e->len, e->cap - e->len, "%s%s:%u: ", e->n ? "\n" : "",
                     at ? at->file : "?", at ? at->line : 0);
    if (k > 0)
        e->len += (size_t)k < e->cap - e->len ? (size_t)k : e->cap - e->len - 1;
    va_list ap;
    va_start(ap, fmt);
    k = vsnprintf(e->buf + e->len, e->cap - e->len, fmt, ap);
    va_end(ap);
    if (k > 0)
        e->len += (size_t)k < e->cap - e->len ? (size_t)k : e->cap - e->len - 1;
    e->n++;
}

static int field_of(const char *key)
{
    for (int i = 0; i < ACL_NFIELDS; i++)
        if (strcmp(key, field_names[i]) == 0)
            return i;
    return -1;
}

static int add_cond(struct acl_rule *r, enum acl_field f, const char *value)
{
    size_t cap = r->nconds; /* a rule's conditions grow one at a time */
    if (!ward_ok(VEC_RESERVE_EXACT(r->conds, cap, r->nconds + 1)))
        return -1;
    r->conds[r->nconds].field = f;
    if (!(r->conds[r->nconds].value = strdup(value)))
        return -1;
    r->nconds++;
    return 0;
}

/* The members of an `and`/`or` list: objects of who-fields. */
static void parse_conds(struct acl_rule *r, const struct hocon_value *list, struct errs *e)
{
    if (list->type != HOCON_ARRAY)
        return report(e, list, "expected an array of {field: value} objects");
    for (size_t i = 0; i < list->count; i++) {
        const struct hocon_value *o = list->items[i];
        if (o->type != HOCON_OBJECT) {
            report(e, o, "expected an object such as {\"username\": \"alice\"}");
            continue;
        }
        for (size_t j = 0; j < o->count; j++) {
            int f = field_of(o->members[j].key);
            if (f < 0 || o->members[j].val->type != HOCON_STRING)
                report(e, o->members[j].val,
                       "%s: expected one of username, clientid, cert_cn, "
                       "cert_ou with a string value",
                       o->members[j].key);
            else if (add_cond(r, (enum acl_field)f, o->members[j].val->str) < 0)
                report(e, o, "out of memory");
        }
    }
}

static void parse_topics(struct acl_rule *r, const struct hocon_value *v, struct errs *e)
{
    if (v->type != HOCON_ARRAY)
        return report(e, v, "topics: expected an array of strings");
    r->topics = calloc(v->count ? v->count : 1, sizeof(char *));
    for (size_t i = 0; r->topics && i < v->count; i++) {
        const struct hocon_value *t = v->items[i];
        const char *s = t->type == HOCON_STRING ? t->str : NULL;
        const char *f = s && strncmp(s, "eq ", 3) == 0 ? s + 3 : s;
        /* Placeholders are checked after substitution; here the filter
         * syntax must hold with them in place. */
        if (!s || !*f || !mqtt_topic_filter_valid((const uint8_t *)f, strlen(f)))
            report(e, t, "topics: \"%s\" is not a valid topic filter", s ? s : "(not a string)");
        else
            r->topics[r->ntopics++] = strdup(s);
    }
}

static const struct {
    const char *name;
    uint8_t bits;
} actions[] = {{"publish", ACL_PUBLISH},
               {"subscribe", ACL_SUBSCRIBE},
               {"pubsub", ACL_PUBLISH | ACL_SUBSCRIBE}};

static void parse_member(struct acl_rule *r, const struct hocon_member *m, struct errs *e,
                         bool *permit_seen)
{
    const struct hocon_value *v = m->val;
    int f = field_of(m->key);
    if (strcmp(m->key, "permit") == 0) {
        *permit_seen = true;
        if (v->type == HOCON_STRING && strcmp(v->str, "allow") == 0)
            r->allow = true;
        else if (!(v->type == HOCON_STRING && strcmp(v->str, "deny") == 0))
            report(e, v, "permit: expected \"allow\" or \"deny\"");
    } else if (strcmp(m->key, "action") == 0) {
        r->actions = 0;
        for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
            if (v->type == HOCON_STRING && strcmp(v->str, actions[i].name) == 0)
                r->actions = actions[i].bits;
        if (!r->actions)
            report(e, v, "action: expected \"publish\", \"subscribe\" or \"pubsub\"");
    } else if (strcmp(m->key, "topics") == 0) {
        parse_topics(r, v, e);
    } else if (strcmp(m->key, "and") == 0 || strcmp(m->key, "or") == 0) {
        if (r->nconds)
            return report(e, v, "%s: cannot be combined with other who-fields in one rule", m->key);
        r->any_of = m->key[0] == 'o';
        parse_conds(r, v, e);
    } else if (f >= 0) {
        if (v->type != HOCON_STRING)
            report(e, v, "%s: expected a string", m->key);
        else if (r->any_of)
            report(e, v, "%s: cannot be combined with an `or` list in one rule", m->key);
        else if (add_cond(r, (enum acl_field)f, v->str) < 0)
            report(e, v, "out of memory");
    } else {
        report(e, v,
               "unknown rule field \"%s\" (permit, action, topics, username, clientid, "
               "cert_cn, cert_ou, and, or)",
               m->key);
    }
}

static void rule_free(struct acl_rule *r)
{
    for (size_t i = 0; i < r->nconds; i++)
        free(r->conds[i].value);
    free(r->conds);
    for (size_t i = 0; i < r->ntopics; i++)
        free(r->topics[i]);
    free(r->topics);
}

/* see acl.h */
void acl_free(struct acl *acl)
{
    for (size_t i = 0; i < acl->count; i++)
        rule_free(&acl->rules[i]);
    free(acl->rules);
    acl->rules = NULL;
    acl->count = 0;
}

/* see acl.h */
int acl_load_value(struct acl *acl, const struct hocon_value *root, char *err, size_t errlen)
{
    struct errs e = {err, errlen, 0, 0};
    err[0] = '\0';
    const struct hocon_value *rules = hocon_get(root, "rules");
    memset(acl, 0, sizeof(*acl));
    if (!rules || rules->type != HOCON_ARRAY) {
        report(&e, rules ? rules : root, "expected `rules = [ {...}, ... ]`");
        return -1;
    }
    acl->rules = calloc(rules->count ? rules->count : 1, sizeof(struct acl_rule));
    if (!acl->rules)
        return -1;
    for (size_t i = 0; i < rules->count; i++) {
        const struct hocon_value *o = rules->items[i];
        struct acl_rule *r = &acl->rules[acl->count++];
        r->actions = ACL_PUBLISH | ACL_SUBSCRIBE;
        r->line = o->line;
        if (o->type != HOCON_OBJECT) {
            report(&e, o, "rule %zu: expected an object", i + 1);
            continue;
        }
        bool permit = false;
        for (size_t j = 0; j < o->count; j++)
            parse_member(r, &o->members[j], &e, &permit);
        if (!permit)
            report(&e, o, "rule %zu: \"permit\" is required", i + 1);
    }
    if (e.n) {
        acl_free(acl);
        return -1;
    }
    return 0;
}

/* see acl.h */
int acl_load(struct acl *acl, const char *path, char *err, size_t errlen)
{
    struct hocon_doc doc;
    memset(acl, 0, sizeof(*acl));
    if (hocon_parse_file(path, &doc, err, errlen) < 0)
        return -1;
    int rc = acl_load_value(acl, doc.root, err, errlen);
    hocon_doc_free(&doc);
    return rc;
}

static const char *field_value(const struct acl_identity *id, enum acl_field f)
{
    switch (f) {
    case ACL_USERNAME:
        return id->username;
    case ACL_CLIENTID:
        return id->client_id;
    case ACL_CERT_CN:
        return id->cert_cn;
    case ACL_CERT_OU:
        return id->cert_ou;
    default:
        return NULL;
    }
}

static bool cond_holds(const struct acl_cond *c, const struct acl_identity *id)
{
    const char *v = field_value(id, c->field);
    return v && (strcmp(c->value, "#") == 0 || strcmp(c->value, v) == 0);
}

static bool applies_to(const struct acl_rule *r, const struct acl_identity *id)
{
    if (r->nconds == 0)
        return true;
    for (size_t i = 0; i < r->nconds; i++) {
        bool ok = cond_holds(&r->conds[i], id);
        if (r->any_of && ok)
            return true;
        if (!r->any_of && !ok)
            return false;
    }
    return !r->any_of;
}

/* Expands placeholders into out. Returns the length, or -1 when the client
 * lacks a value the pattern needs, or the value would change the pattern's
 * shape (a '/', '+' or '#' in a user name must not widen a rule). */
static int expand(const char *pat, const struct acl_identity *id, char *out, size_t cap)
{
    static const struct {
        const char *tok;
        enum acl_field f;
    } subs[] = {{"${username}", ACL_USERNAME}, {"${clientid}", ACL_CLIENTID},
                {"${cert_cn}", ACL_CERT_CN},   {"${cert_ou}", ACL_CERT_OU},
                {"%u", ACL_USERNAME},          {"%c", ACL_CLIENTID}};
    size_t n = 0;
    while (*pat) {
        const char *v = NULL;
        size_t toklen = 0;
        for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]) && !toklen; i++)
            if (strncmp(pat, subs[i].tok, strlen(subs[i].tok)) == 0) {
                toklen = strlen(subs[i].tok);
                v = field_value(id, subs[i].f);
            }
        if (toklen) {
            if (!v || !*v || strpbrk(v, "/+#"))
                return -1;
            size_t vl = strlen(v);
            if (n + vl >= cap)
                return -1;
            memcpy(out + n, v, vl);
            n += vl;
            pat += toklen;
        } else {
            if (n + 1 >= cap)
                return -1;
            out[n++] = *pat++;
        }
    }
    out[n] = '\0';
    return (int)n;
}

static bool level_eq(const struct mqtt_span *a, const struct mqtt_span *b)
{
    return a->len == b->len && memcmp(a->p, b->p, a->len) == 0;
}

/* see acl.h */
bool acl_filter_covers(const char *pattern, size_t plen, const char *filter, size_t flen)
{
    const uint8_t *p = (const uint8_t *)pattern, *f = (const uint8_t *)filter;
    /* A filter without wildcards is a topic name: the reference matcher. */
    if (!memchr(f, '+', flen) && !memchr(f, '#', flen))
        return mqtt_topic_match(p, plen, f, flen);
    /* MQTT-4.7.2-1: leading wildcards do not reach $-topics. */
    if (mqtt_topic_is_dollar(f, flen) && plen > 0 && (p[0] == '+' || p[0] == '#'))
        return false;
    size_t ppos = 0, fpos = 0;
    struct mqtt_span pl, fl;
    while (mqtt_level_next(p, plen, &ppos, &pl)) {
        if (mqtt_level_is(&pl, '#'))
            return true; /* `a/#` covers `a` as well (MQTT-4.7.1-2) */
        if (!mqtt_level_next(f, flen, &fpos, &fl) || mqtt_level_is(&fl, '#'))
            return false; /* only '#' covers '#' */
        if (!mqtt_level_is(&pl, '+') && !level_eq(&pl, &fl))
            return false; /* a literal level covers only itself, not '+' */
    }
    return fpos > flen;
}

static bool topic_matches(const char *pat, const struct acl_identity *id, enum acl_action action,
                          const char *topic, size_t len)
{
    char buf[1024];
    bool eq = strncmp(pat, "eq ", 3) == 0;
    int n = expand(eq ? pat + 3 : pat, id, buf, sizeof(buf));
    if (n < 0)
        return false;
    if (eq)
        return (size_t)n == len && memcmp(buf, topic, len) == 0;
    if (action == ACL_SUBSCRIBE)
        return acl_filter_covers(buf, (size_t)n, topic, len);
    return mqtt_topic_match((const uint8_t *)buf, (size_t)n, (const uint8_t *)topic, len);
}

/* see acl.h */
int acl_check(const struct acl *acl, const struct acl_identity *id, enum acl_action action,
              const char *topic, size_t len)
{
    if (action == ACL_SUBSCRIBE) {
        /* Rules are about topics, not share groups: check the plain filter
         * of "$share/GROUP/FILTER", and refuse a malformed one outright
         * rather than check a filter it does not have (MQTT-4.8.2). */
        struct mqtt_share sh;
        if (!mqtt_share_split((const uint8_t *)topic, len, &sh))
            return 0;
        topic = (const char *)sh.filter;
        len = sh.filter_len;
    }
    for (size_t i = 0; i < acl->count; i++) {
        const struct acl_rule *r = &acl->rules[i];
        if (!(r->actions & action) || !applies_to(r, id))
            continue;
        bool hit = r->ntopics == 0;
        for (size_t t = 0; t < r->ntopics && !hit; t++)
            hit = topic_matches(r->topics[t], id, action, topic, len);
        if (hit)
            return r->allow ? 1 : 0;
    }
    return -1;
}
