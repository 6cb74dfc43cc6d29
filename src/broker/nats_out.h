/* A NATS client as the broker keeps it, and delivering a message to one of
 * its subscriptions (src/broker/nats_out.c): the MQTT-form message turned
 * into MSG or HMSG. Below routing, beside conn.c: calls only net, nats and
 * log. Guarded by the broker lock.
 *
 * Each NATS subscription is an owner of its own in the subscription tree
 * (NATS delivers once per matching subscription, where MQTT merges a
 * session's overlapping ones): its pointer is stored tagged with the low
 * bit set, so routing tells it from a session (nats_sub_of). */
#ifndef WARD_BROKER_NATS_OUT_H
#define WARD_BROKER_NATS_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct broker_nats_opts;
struct auth_nats_perms;
struct auth_nats_entry;
struct nats_connect;
struct client;
struct msg;

struct nats_sub {
    struct client *c;
    struct nats_sub *next; /* the connection's list */
    char *filter;          /* as put in the tree: MQTT form, "$share/Q/..." for a queue group */
    char *subject;         /* as the client subscribed, NUL-terminated */
    char *queue;           /* NULL: not in a queue group */
    char *sid;
    uint16_t subject_len;
    uint8_t sid_len;
    bool gt_tail;       /* ends in '>': NATS wants one more token than MQTT's '#' */
    uint16_t gt_prefix; /* then the length of the MQTT filter before its "/#" */
    bool deny_filter;   /* wider than a subscribe deny entry: each subject is checked */
    uint64_t max;       /* UNSUB <sid> <max>: 0 none */
    uint64_t delivered;
};

/* A reply subject the client may publish to without a publish permission
 * (allow_responses): it received a request carrying it. */
struct nats_resp {
    char *subject;
    uint32_t left;
    uint64_t expires_ms; /* 0: never */
};

struct nats_state {
    const struct broker_nats_opts *o;
    uint64_t cid;
    bool verbose, pedantic, echo, headers, no_responders;
    bool got_connect;
    uint32_t pings_out;
    uint64_t next_ping_ms;
    struct nats_sub *subs;
    uint32_t nsubs;
    const struct auth_nats_perms *perms; /* NULL: the authorization block grants everything */
    const struct auth_nats_entry *entry; /* the listed user (or NKey) it logged in as */
    char user[256];                      /* the user name it logged in with */
    struct nats_connect *pending;        /* its CONNECT, read before the lock for the login */
    struct nats_resp *resp;
    uint32_t nresp;
    size_t capresp;
    char nonce[32];
};

static inline void *nats_owner(struct nats_sub *ns)
{
    return (void *)((uintptr_t)ns | 1u);
}

/* The NATS subscription a tree owner stands for, or NULL for a session. */
static inline struct nats_sub *nats_sub_of(void *owner)
{
    return ((uintptr_t)owner & 1u) ? (struct nats_sub *)((uintptr_t)owner & ~(uintptr_t)1u) : NULL;
}

/* Whether the subscription takes m at all: NATS's '>' needs one more
 * token, and with echo off a client does not hear itself (from is the
 * publisher's session). */
bool nats_out_accepts(const struct nats_sub *ns, const struct msg *m, const void *from);
/* Sends m to the subscription's client as MSG/HMSG. Returns false if the
 * client could not take it (too slow: it is closed as nats-server does).
 * Counts the delivery against an UNSUB maximum: *done is set when the
 * subscription has had its last message (the caller removes it). */
bool nats_out_deliver(struct broker *b, struct nats_sub *ns, const struct msg *m, bool *done);
/* Takes the subscription out of the tree and its client's list, frees it. */
void nats_sub_remove(struct broker *b, struct nats_sub *ns);
/* Writes "-ERR '...'" (and closes if close); text may be a nats_err text. */
void nats_out_err(struct client *c, const char *text, bool close);
/* Writes raw protocol bytes (PONG, +OK, INFO, PING). */
bool nats_out_raw(struct client *c, const void *p, size_t n);

#endif
