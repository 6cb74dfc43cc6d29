/* Access control rules: NanoMQ's ACL file format, extended with
 * certificate identities.
 *
 *     rules = [
 *       {"permit": "allow", "cert_ou": "Devices", "action": "publish",
 *        "topics": ["devices/${cert_cn}/#"]}
 *       {"permit": "allow", "cert_ou": "Devices", "action": "subscribe",
 *        "topics": ["commands/${cert_cn}/#"]}
 *       {"permit": "deny", "username": "#", "action": "subscribe", "topics": ["eq #"]}
 *       {"permit": "allow"}
 *     ]
 *
 * A rule applies to a client when every "who" field it names matches
 * (`username`, `clientid`, `cert_cn`, `cert_ou`; "#" matches anyone who has
 * the field at all), or any of an `or` list, or all of an `and` list; to an
 * action when `action` (publish, subscribe or pubsub, the default) includes
 * it; and to a topic when one of `topics` matches (no `topics`: every topic).
 * Rules are tried in order and the first that applies decides; when none
 * does, the configured default (auth.no_match) decides.
 *
 * Topic patterns substitute `${username}`, `${clientid}`, `${cert_cn}`,
 * `${cert_ou}` (Mosquitto's `%u` and `%c` too); a pattern whose placeholder
 * the client lacks (no username, no certificate) never matches. `eq T`
 * matches the literal T only (EMQX's form: `eq #` is the filter "#" itself).
 * For PUBLISH the pattern is a filter matched against the topic name. For
 * SUBSCRIBE the pattern must cover the requested filter: every topic the
 * filter can match must match the pattern (`a/#` covers `a/+/b`, not `#`).
 * A deny rule on `secret/#` therefore does not stop a subscription to `#`;
 * the broker also checks each delivered message against the subscribe rules
 * of its receiver, so nothing under `secret/` reaches it that way. */
#ifndef WARD_AUTH_ACL_H
#define WARD_AUTH_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/result.h"

struct hocon_value;

enum acl_action { ACL_PUBLISH = 1, ACL_SUBSCRIBE = 2 };

/* Who is asking. Absent fields are NULL. */
struct acl_identity {
    const char *username;
    const char *client_id;
    const char *cert_cn;
    const char *cert_ou;
};

enum acl_field { ACL_USERNAME, ACL_CLIENTID, ACL_CERT_CN, ACL_CERT_OU, ACL_NFIELDS };

struct acl_cond {
    enum acl_field field;
    char *value; /* "#": anyone who has the field */
};

struct acl_rule {
    bool allow;
    uint8_t actions; /* ACL_PUBLISH | ACL_SUBSCRIBE */
    bool any_of;     /* conds joined by OR (an `or` list) rather than AND */
    struct acl_cond *conds;
    size_t nconds;
    char **topics; /* NULL: every topic */
    size_t ntopics;
    unsigned line;
};

struct acl {
    struct acl_rule *rules;
    size_t count;
};

/* Reads an ACL file. Returns 0, or -1 with every problem found in err as
 * "file:line: cause" lines (the acl is then empty). */
WARD_WUR int acl_load(struct acl *acl, const char *path, char *err, size_t errlen);
/* The same from a parsed document root (an object with `rules`). */
WARD_WUR int acl_load_value(struct acl *acl, const struct hocon_value *root, char *err,
                            size_t errlen);
void acl_free(struct acl *acl);

/* Decides one request. Returns 1 allow, 0 deny, -1 no rule applies. For
 * ACL_SUBSCRIBE, `topic` is the filter requested (or, when checking a
 * message before delivery, the message's topic name). A shared filter
 * "$share/GROUP/FILTER" is checked as FILTER (the same in MQTT 3.1.1 and
 * 5); one that mqtt_share_split rejects ("$share/g", "$share//t") is
 * denied (0), never checked as some other filter. */
WARD_WUR int acl_check(const struct acl *acl, const struct acl_identity *id, enum acl_action action,
                       const char *topic, size_t len);

/* True if every topic that `filter` matches is matched by `pattern` too. */
bool acl_filter_covers(const char *pattern, size_t plen, const char *filter, size_t flen);

#endif
