/* Durable state in SQLite: one database file, one store thread, group commit.
 *
 * The store knows rows, not the broker: messages, sessions, subscriptions,
 * deliveries (a message's place in a session's queue), inbound QoS 2 packet
 * ids awaiting PUBREL, retained entries and bridge queues. The broker loads
 * them once at start (store_load), then starts the thread (store_start) and
 * only appends operations; the thread applies them in order, one transaction
 * per batch, and reports each commit through the commit hook so the broker
 * can release the acknowledgements that waited for it.
 *
 * The schema is documented in docs/persistence.md. */
#ifndef WARD_STORE_STORE_H
#define WARD_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/result.h"

enum store_mode {
    STORE_OFF,
    STORE_PROCESS, /* survives kill -9 */
    STORE_FSYNC,   /* survives power loss */
};
enum store_on_damage {
    STORE_DAMAGE_MOVE_ASIDE, /* default */
    STORE_DAMAGE_REFUSE,
};

/* When max_size is 0: 1 GiB. */
#define STORE_DEFAULT_MAX_SIZE (UINT64_C(1) << 30)

struct store_config {
    enum store_mode mode;
    const char *dir;
    uint64_t max_size; /* bytes, database plus WAL; 0: STORE_DEFAULT_MAX_SIZE */
    enum store_on_damage on_damage;
};
struct store;

/* Opens (creates) DIR/ward.db: WAL, prepared statements, schema version check (PRAGMA
 * user_version), in-place migration of older versions, refusal of a newer one ("written by a newer
 * ward (schema N, this ward knows up to M)"). A damaged file (not a database, integrity_check
 * fails, torn) is moved aside to ward.db.damaged-YYYYmmddTHHMMSS (with its -wal/-shm) and a fresh
 * store made, with one clear log line naming both files; with STORE_DAMAGE_REFUSE it is an error
 * instead. Never silent. STORE_OFF is refused here (the broker does not open a store then). */
WARD_WUR struct store *store_open(const struct store_config *cfg, char *err, size_t errlen);
/* Commits what is pending (calling the commit hook), stops the threads, closes. NULL is a no-op.
 * Not to be called holding a lock the commit hook takes: it waits for the store thread. */
void store_close(struct store *st);

/* Rows, as the broker hands them over and gets them back. Strings NUL-terminated; blobs with
 * lengths. Wall-clock times in ms since the epoch (the broker converts). */
struct store_msg {
    uint64_t id;
    const char *topic;
    const uint8_t *payload;
    uint32_t payload_len;
    uint8_t qos;
    bool retain;
    /* The caller's promise that no row has this id yet (a new id): a put
     * and a delete of it within one commit then write nothing at all. */
    bool fresh;
    uint64_t expire_at; /* 0: never */
    const char *origin;
    const uint8_t *props; /* opaque to the store (the broker's encoding of v5 properties and NATS
                             headers) */
    uint32_t props_len;
};
struct store_session {
    const char *id, *owner, *username, *cert_cn, *cert_ou; /* NULL allowed */
    uint32_t expiry_s;
    uint64_t expire_at; /* 0: not counting (online) */
    uint8_t protocol;
    bool bridge;
    uint64_t will_msg_id; /* 0: none */
    uint32_t will_delay_s;
};
struct store_sub {
    const char *filter; /* as subscribed, $share/G/ included */
    uint8_t options;
    uint32_t sub_id;
};
struct store_delivery {
    uint64_t msg_id;
    uint64_t seq; /* order within the session */
    uint8_t qos;
    bool retain;
    uint16_t pid;  /* 0: queued, not in flight */
    uint8_t state; /* 0 queued, 1 in flight (PUBLISH sent), 2 PUBREL sent */
    const uint32_t *sub_ids;
    uint8_t nsub;
    bool fresh; /* no row for (session, msg_id) yet: as store_msg.fresh */
};

/* Loading, single-threaded, before store_start. Calls, in this order: every msg, every session,
 * every sub, every delivery (per session in seq order), every rel (inbound QoS 2 ids awaiting
 * PUBREL), every retained entry, every bridge entry (per bridge in seq order). Views are valid
 * during the call only. Messages no row refers to are deleted during load (garbage). A callback
 * returning -1 stops the load with an error. A NULL callback skips that kind. Returns 0 or -1 with
 * err. */
struct store_load_fns {
    int (*msg)(void *ctx, const struct store_msg *m);
    int (*session)(void *ctx, const struct store_session *s);
    int (*sub)(void *ctx, const char *session_id, const struct store_sub *sub);
    int (*delivery)(void *ctx, const char *session_id, const struct store_delivery *d);
    int (*rel)(void *ctx, const char *session_id, uint16_t pid);
    int (*retained)(void *ctx, const char *topic, uint64_t msg_id);
    int (*bridge)(void *ctx, const char *bridge, uint64_t seq, uint64_t msg_id);
};
WARD_WUR int store_load(struct store *st, const struct store_load_fns *fns, void *ctx, char *err,
                        size_t errlen);
/* Starts the store thread (it owns the database connection from here on). Returns 0 or -1. */
WARD_WUR int store_start(struct store *st);

/* Writes. Thread-safe, O(1) amortized, NEVER touch the disk on the caller's thread: each appends an
 * operation (copying what it needs) to the pending batch; the store thread applies batches in
 * order, one transaction each (group commit: everything that arrived while the previous commit ran
 * goes in the next). They are called under the broker's lock, so they must be cheap (a
 * mutex-protected append). Out of memory: the operation is dropped, logged and counted as a
 * failure, and the next commit hook reports ok=false. */
void store_msg_put(struct store *st, const struct store_msg *m);
void store_msg_del(struct store *st, uint64_t msg_id);
void store_session_put(struct store *st, const struct store_session *s); /* insert or replace */
void store_session_del(struct store *st, const char *id); /* with its subs, deliveries and rels */
void store_sub_put(struct store *st, const char *session_id,
                   const struct store_sub *sub); /* replace by filter */
void store_sub_del(struct store *st, const char *session_id, const char *filter);
void store_delivery_put(struct store *st, const char *session_id,
                        const struct store_delivery *d); /* replace by (session, msg_id) */
void store_delivery_del(struct store *st, const char *session_id, uint64_t msg_id);
void store_rel_put(struct store *st, const char *session_id, uint16_t pid);
void store_rel_del(struct store *st, const char *session_id, uint16_t pid);
void store_retained_put(struct store *st, const char *topic, uint64_t msg_id);
void store_retained_del(struct store *st, const char *topic);
void store_bridge_put(struct store *st, const char *bridge, uint64_t seq, uint64_t msg_id);
void store_bridge_del(struct store *st, const char *bridge, uint64_t seq);
/* A fresh message id (monotonic, continues after a load). */
uint64_t store_next_id(struct store *st);

/* Acknowledgements wait for commits. store_barrier() returns a ticket number: everything appended
 * before the call is in a commit whose number is >= the ticket. After every commit (synced first in
 * STORE_FSYNC mode: PRAGMA synchronous=FULL; STORE_PROCESS: synchronous=NORMAL in WAL), the store
 * thread calls the commit hook once with the highest committed ticket; the broker then releases the
 * acknowledgements waiting for tickets <= it. ok=false: the commit failed (disk full, I/O error):
 * logged once per cause; the hook is told so the broker can refuse (0x97/0x80) instead of acking.
 * The hook runs on the store thread, never with a store lock held; set it before store_start.
 * A barrier with nothing pending still gets its hook call (an empty commit, when all is committed).
 */
typedef void (*store_commit_fn)(void *ctx, uint64_t committed_ticket, bool ok);
void store_set_commit_hook(struct store *st, store_commit_fn fn, void *ctx);
uint64_t store_barrier(struct store *st);
/* Over max_size (file size incl. WAL, checked by the store thread after commits; cheap to read):
 * new QoS 1/2 messages are refused with 0x97 by the broker. */
bool store_full(const struct store *st);
struct store_stats {
    uint64_t commits, ops, syncs, failures, bytes;
    uint64_t last_commit_us, max_commit_us;
    uint64_t pending_ops;
    uint64_t cancelled; /* puts not written: deleted again within the same commit */
};
void store_get_stats(const struct store *st, struct store_stats *out);

#endif
