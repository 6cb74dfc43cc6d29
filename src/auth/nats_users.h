/* NATS authentication material: users with bcrypt passwords, NKey users, a
 * single token, and the per-user publish/subscribe permissions that go with
 * them.
 *
 * A `struct auth_nats` is built once from the configuration (add_user,
 * add_nkey, set_token), then only read: lookups and checks are thread-safe
 * because nothing changes after it is built. A reload builds a new one.
 *
 * bcrypt checks are slow on purpose (cost 11 is ~100 ms): they must never run
 * on an I/O worker; the broker runs them on its hashing pool. NKey signature
 * checks (Ed25519) and permission checks are fast. */
#ifndef WARD_AUTH_NATS_USERS_H
#define WARD_AUTH_NATS_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/result.h"

/* Permissions of one user or NKey, as nats-server's "permissions" block.
 * Each list is `n` subjects (wildcards allowed); a subscribe entry may be
 * "subject queue" (one space), which applies to queue subscriptions of that
 * queue group only. A NULL list with n == 0 is "not given". */
struct auth_nats_perms {
    const char *const *pub_allow, *const *pub_deny, *const *sub_allow, *const *sub_deny;
    size_t npub_allow, npub_deny, nsub_allow, nsub_deny;
    /* allow_responses: a client may publish to the reply subject of a
     * message it received, responses_max times (default 1) within
     * responses_expires_ms (0: no expiry). The broker tracks the reply
     * subjects; these fields only carry the configuration. */
    bool allow_responses;
    uint32_t responses_max;
    uint32_t responses_expires_ms;
};

#define AUTH_NATS_RESPONSES_MAX_DEFAULT 1u

struct auth_nats_user {
    const char *user;
    const char *password; /* a bcrypt hash: $2a$, $2b$ or $2y$; NULL: none (certificate or
                             no_auth_user only) */
    const struct auth_nats_perms *perms; /* NULL: everything allowed */
};

struct auth_nats; /* immutable once built; thread-safe to read */

/* NULL when out of memory. */
WARD_WUR struct auth_nats *auth_nats_new(void);
void auth_nats_free(struct auth_nats *a);

/* Copies u (and its permissions). Refuses, with a sentence in err: a
 * plaintext password ("... is not a bcrypt hash: make one with `ward passwd
 * --bcrypt`"), a cost over AUTH_BCRYPT_MAX_COST, an empty or duplicate user
 * name, an invalid subject in the
 * permissions (NATS subject rules; wildcards allowed). 0 or -1. */
WARD_WUR int auth_nats_add_user(struct auth_nats *a, const struct auth_nats_user *u, char *err,
                                size_t errlen);
/* pubkey must be a valid NKey user public key ("U..."); p may be NULL
 * (everything allowed) and is copied. Duplicates are refused. 0 or -1. */
WARD_WUR int auth_nats_add_nkey(struct auth_nats *a, const char *pubkey,
                                const struct auth_nats_perms *p, char *err, size_t errlen);
/* The one token of the configuration: plaintext or a bcrypt hash (cost at
 * most AUTH_BCRYPT_MAX_COST). A second call replaces the first. An empty
 * token is refused. 0 or -1. */
WARD_WUR int auth_nats_set_token(struct auth_nats *a, const char *token, char *err, size_t errlen);

/* Lookups: NULL when absent. An entry lives as long as its auth_nats. */
struct auth_nats_entry;
const struct auth_nats_entry *auth_nats_find_user(const struct auth_nats *a, const char *user);
const struct auth_nats_entry *auth_nats_find_nkey(const struct auth_nats *a, const char *pubkey);
/* NULL: everything allowed. */
const struct auth_nats_perms *auth_nats_entry_perms(const struct auth_nats_entry *e);
/* The user name, or the NKey public key. */
const char *auth_nats_entry_name(const struct auth_nats_entry *e);
bool auth_nats_has_users(const struct auth_nats *a);
bool auth_nats_has_token(const struct auth_nats *a);
bool auth_nats_has_nkeys(const struct auth_nats *a);

/* SLOW (bcrypt): never call on an I/O worker. False for an NKey entry or a
 * NULL password. */
bool auth_nats_check_password(const struct auth_nats_entry *e, const char *password);
/* Slow when the token is a bcrypt hash; a plaintext token is compared in
 * constant time. False when no token is configured. */
bool auth_nats_check_token(const struct auth_nats *a, const char *token);

/* Ed25519, fast. sig is base64url without padding (what nats.go and nats.c
 * send) or padded standard base64, over exactly the nonce bytes as sent in
 * INFO. pubkey is an NKey user public key. False on any malformed input. */
bool auth_nkey_verify(const char *pubkey, const uint8_t *nonce, size_t nonce_len, const char *sig);
/* A user public key: base32 (no padding), prefix 'U', 32-byte Ed25519 key,
 * CRC16 that checks. */
bool auth_nkey_valid_user_key(const char *pubkey);

/* Permission checks, nats-server semantics. p NULL allows everything; a
 * malformed subject or queue is refused whatever p says. A list with n == 0
 * counts as absent.
 *
 * Publish: with an allow list the subject must match one of its entries; any
 * deny match refuses. allow_responses without a publish allow list refuses
 * every subject here (as nats-server, where it implicitly denies all other
 * publishing): the broker grants the replies themselves from its own
 * tracking of reply subjects before asking this.
 *
 * Subscribe: subj is the filter. With an allow list the filter must be a
 * subset of an allowed entry ("foo.*" under "foo.>" yes, "foo.>" under
 * "foo.*" no). An entry "subject queue" concerns queue subscriptions only:
 * for a queue subscription, when entries with a queue cover the filter, one
 * of them must name the queue (queue names compare literally, and an entry's
 * queue with wildcards is also a pattern over queue names), otherwise an
 * entry without a queue must cover it. Deny: the filter is refused when a
 * deny entry without a queue covers it, or one with a matching queue does;
 * there a "*" of the entry also takes a ">" of the filter, as in
 * nats-server (deny "foo.*" refuses "foo.>"). qlen 0: not a queue
 * subscription.
 *
 * Where this differs from nats-server 2.9 it is stricter: a filter "foo.>"
 * is not allowed by "foo.*", and a queue deny entry naming another queue does
 * not cancel a plain deny that covers the filter. */
bool auth_nats_may_publish(const struct auth_nats_perms *p, const uint8_t *subj, size_t len);
bool auth_nats_may_subscribe(const struct auth_nats_perms *p, const uint8_t *subj, size_t len,
                             const uint8_t *queue, size_t qlen);
/* A subscription allowed by auth_nats_may_subscribe may still be wider than
 * a subscribe deny entry ("foo.>" with "foo.secret" denied): nats-server
 * accepts it and drops the denied subjects at delivery. The broker asks
 * auth_nats_sub_needs_filter once at SUB time, and for such subscriptions
 * auth_nats_may_receive(literal subject of each message, the subscription's
 * queue) before delivering. */
bool auth_nats_sub_needs_filter(const struct auth_nats_perms *p, const uint8_t *subj, size_t len);
bool auth_nats_may_receive(const struct auth_nats_perms *p, const uint8_t *subj, size_t len,
                           const uint8_t *queue, size_t qlen);

/* bcrypt through libxcrypt's crypt_r. $2a$ and $2y$ hashes are verified as
 * $2b$: the same algorithm for passwords under 256 bytes, so with those
 * variants a longer password is refused ($2b$ takes any length; bcrypt reads
 * the first 72 bytes). False on any malformed hash. SLOW. */
bool auth_bcrypt_verify(const char *hash, const char *password);
/* A $2b$ hash of password with cost (0: AUTH_BCRYPT_DEFAULT_COST; 4..31) and
 * a random salt from getrandom, into out (cap >= AUTH_BCRYPT_HASH_LEN + 1).
 * 0 or -1. SLOW. */
#define AUTH_BCRYPT_DEFAULT_COST 11u
/* Users and tokens with a higher cost are refused: each doubling doubles the
 * time a hashing thread spends per connect (cost 11 is about 0.1 s, 16 about
 * 3 s), and a typo of 31 would hold a thread for days. */
#define AUTH_BCRYPT_MAX_COST 16u
#define AUTH_BCRYPT_HASH_LEN 60u
WARD_WUR int auth_bcrypt_hash(const char *password, unsigned cost, char *out, size_t cap);
/* The cost of a hash that auth_is_bcrypt accepts, else 0. */
unsigned auth_bcrypt_cost(const char *hash);
/* The shape of a bcrypt hash: "$2a$", "$2b$" or "$2y$", two cost digits,
 * "$", 53 characters of bcrypt's base64. */
bool auth_is_bcrypt(const char *s);

#endif
