/* Authentication and authorization for the broker: the password file, the
 * ACL, anonymous access and certificate identities, behind one object that
 * can be reloaded while clients are connected.
 *
 * `auth_configure` loads new files and swaps them in only when all of them
 * load; a bad file leaves the running rules in place. Checks take a
 * reference to the rules current at that moment, so a reload never changes
 * rules under a check in progress. All functions are thread-safe.
 *
 * Password checks are slow on purpose (PBKDF2, tens of milliseconds), so a
 * server runs them on a small pool of hashing threads with a bounded queue
 * (auth_connect_async) and its I/O threads never hash. */
#ifndef WARD_AUTH_AUTH_H
#define WARD_AUTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/result.h"

#include "auth/acl.h"

struct auth;

struct auth_settings {
    bool allow_anonymous;      /* connections without credentials */
    bool no_match_allow;       /* ACL: when no rule applies */
    bool deny_disconnect;      /* ACL: a denied PUBLISH also disconnects */
    const char *password_file; /* NULL: no password users */
    const char *acl_file;      /* NULL: no rules (no_match decides) */
    /* The hashing pool of auth_connect_async; 0 takes the default. The
     * pool starts at the first asynchronous check with the thread count
     * then configured (a reload does not change it); max_pending applies
     * from the next check on. */
    uint32_t hash_threads;
    uint32_t max_pending; /* checks accepted and not yet answered */
};

/* Two threads: PBKDF2 is CPU-bound, so more threads than cores gains
 * nothing, and the reference machine has two; the I/O workers mostly sleep
 * and the scheduler wakes them between hashes. 64 pending checks at ~60 ms
 * each make a worst-case wait of about two seconds with two threads: well
 * inside the broker's connect timeout and common client timeouts. */
#define AUTH_DEFAULT_HASH_THREADS 2u
#define AUTH_DEFAULT_MAX_PENDING  64u

/* One CONNECT, as the broker saw it. */
struct auth_request {
    const char *client_id;
    const char *peer;        /* "ip:port", for rate limiting and logs */
    const uint8_t *username; /* NULL: none sent */
    size_t username_len;
    const uint8_t *password; /* NULL: none sent */
    size_t password_len;
    int listener_anonymous; /* -1 inherit, 0 no, 1 yes */
    bool cert_identity;     /* a verified client certificate named this client */
    bool cert_and_password; /* the listener wants a password as well */
    /* A secret the caller checks itself instead of the password file (a
     * NATS listener's bcrypt users and tokens): `password` is passed to
     * check(check_arg, ...), on the hashing pool like a password, since
     * it is as slow; rate limits and counters apply as to a password. */
    bool (*check)(const void *check_arg, const uint8_t *secret, size_t len);
    const void *check_arg;
    /* Out: set by auth_connect when the user name's password was checked
     * against the password file. Only such a user name may become an
     * identity for access control (docs/security.md). */
    bool user_verified;
};

/* Why a CONNECT was refused, for logs and counters. */
enum auth_cause {
    AUTH_OK,
    AUTH_NO_CREDENTIALS, /* anonymous, and anonymous is not allowed */
    AUTH_UNKNOWN_USER,
    AUTH_BAD_PASSWORD,
    AUTH_PASSWORD_REQUIRED, /* certificate alone is not enough here */
    AUTH_RATE_LIMITED,      /* too many failures from this address */
    AUTH_BUSY,              /* auth.max_pending checks already waiting */
    AUTH_NCAUSES
};

WARD_WUR struct auth *auth_new(void);
void auth_free(struct auth *a);

/* Loads and swaps in. Returns 0, or -1 with every error in err (the rules
 * in force do not change). */
WARD_WUR int auth_configure(struct auth *a, const struct auth_settings *s, char *err,
                            size_t errlen);

/* Authenticates a CONNECT; may be slow (password hashing): call it without
 * holding locks others need. Returns the cause (auth_reason() gives the
 * CONNACK reason for it) and sets req->user_verified.
 *
 * The rule: a user name counts only once its password was checked. With a
 * verified client certificate (and no password required on the listener)
 * the certificate is the login; a user name sent with a password is then
 * checked too (a wrong one is refused), a user name without one is ignored.
 * Without a password file a user name is only a label and never verified. */
WARD_WUR enum auth_cause auth_connect(struct auth *a, struct auth_request *req);

/* The verdict of an asynchronous check; user_verified as in auth_request. */
typedef void (*auth_done_fn)(void *ctx, enum auth_cause cause, bool user_verified);

/* auth_connect without hashing on the caller's thread. What the check
 * needs of req (user name, password, peer) is copied: the caller's buffers
 * may go as soon as this returns. Returns
 *    1  decided at once, no hash needed (anonymous, a certificate alone, an
 *       address blocked for its failures, no password sent ...): *now is
 *       the cause, req->user_verified is set, done is not called. An
 *       address whose failures in the window plus its pending checks reach
 *       what the failure limit allows gets AUTH_RATE_LIMITED here too, so
 *       concurrent guesses cannot outrun the limit;
 *    0  queued: done(ctx, ...) is called exactly once, on a hashing thread
 *       (or, for a check that never ran, from auth_free with AUTH_BUSY);
 *       the check counts as pending until done returns;
 *   -1  refused: max_pending checks are pending (or no hashing thread could
 *       be started). Counted as AUTH_BUSY and logged at most once a second;
 *       done is not called. */
WARD_WUR int auth_connect_async(struct auth *a, struct auth_request *req, auth_done_fn done,
                                void *ctx, enum auth_cause *now);

/* Password hashes computed since start, counted by where they ran, so tests
 * and $SYS can tell without measuring time. on_caller ran on the caller's
 * thread (auth_connect): in the broker that would be an I/O worker, and it
 * is always 0 there. A remembered good password computes none. */
struct auth_hash_counts {
    uint64_t total, on_pool, on_caller;
};
/* Zeros for a NULL auth. */
struct auth_hash_counts auth_hash_counts(struct auth *a);

/* MQTT 5 CONNACK reason for a cause (0x86, 0x87, 0x9F); 0 for AUTH_OK. */
uint8_t auth_reason(enum auth_cause c);
/* The MQTT 3.1.1 CONNACK return code for a refusal: 4 for credentials, 3
 * (server unavailable) for AUTH_BUSY, 5 (not authorized) otherwise. */
uint8_t auth_reason311(enum auth_cause c);
const char *auth_cause_text(enum auth_cause c);

/* True if the identity may publish to / subscribe to the topic. For a
 * subscription pass the filter without any `$share/GROUP/` prefix. */
bool auth_allowed(struct auth *a, const struct acl_identity *id, enum acl_action action,
                  const char *topic, size_t len);
/* Whether a client without credentials gets in on a listener whose
 * anonymous setting is listener_anonymous (-1 inherit, 0 no, 1 yes). */
bool auth_anonymous_ok(struct auth *a, int listener_anonymous);
/* True when an ACL or a deny default is in force (so callers can skip
 * per-message checks when every answer would be "allow"). */
bool auth_has_rules(struct auth *a);
bool auth_deny_disconnects(struct auth *a);

/* Counters of refused CONNECTs per cause since start. */
void auth_counters(struct auth *a, uint64_t out[AUTH_NCAUSES]);

#endif
