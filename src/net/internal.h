/* State shared by server.c (workers, connections) and listener.c
 * (listening sockets, their settings, limits and counters). Not an API. */
#ifndef WARD_NET_INTERNAL_H
#define WARD_NET_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "net/hsgate.h"
#include "net/net.h"
#include "net/proxy.h"
#include "net/tcp.h"
#include "net/ws.h"

#define MAX_LISTENERS 16

enum src_kind { SRC_LISTENER, SRC_CONN, SRC_WAKE };

/* At most one log line a second per listener and cause; what was held back
 * is counted and reported with the next line. */
struct ratelog {
    _Atomic uint64_t last_ms;
    _Atomic uint64_t held;
};

struct listener {
    enum src_kind kind; /* first: epoll data points here */
    int fd;
    uint16_t port;
    unsigned index;
    struct tls_server *tls; /* NULL: plain TCP */
    uint32_t max_conns;     /* 0: only the server's limit */
    _Atomic uint32_t nconns;
    bool proxy;
    struct proxy_cidr *trusted;
    size_t ntrusted;
    uint32_t hs_timeout_ms, hs_idle_ms;
    uint32_t hs_queue_ms;      /* longest wait for a handshake slot */
    size_t max_output;         /* 0: the server's */
    uint32_t slow_consumer_ms; /* 0: the server's */
    size_t max_input;          /* 0: the server's */
    /* WebSocket listeners: the upgrade's rules and the frame limits. */
    bool ws;
    struct ws_settings wss;
    char *ws_path;     /* NULL: any path */
    char **ws_origins; /* the allow-list's strings, owned */
    /* net_listen_opts.greeting; NULL: none, and none before the handshake
     * on a TLS listener with tls_handshake_first. */
    size_t (*greeting)(void *ctx, struct net_conn *c, uint8_t *buf, size_t cap);
    pthread_mutex_t gate_lock; /* guards gate and every conn's gate entry */
    struct hsgate gate;
    _Atomic uint64_t st[NET_NSTATS];
    struct ratelog rl[NET_NSTATS];
};

/* Where a connection is in its life (owner only). */
enum phase {
    PH_PROXY,     /* reading a PROXY header, or checking an untrusted peer sends none */
    PH_GREETING,  /* TLS: writing the greeting in plaintext before the handshake */
    PH_QUEUED,    /* TLS: waiting for a handshake slot */
    PH_HANDSHAKE, /* TLS: handshake running */
    PH_UPGRADE,   /* WebSocket: reading the upgrade request, writing the answer */
    PH_OPEN,      /* the handler has it */
    PH_LINGER,    /* graceful close: writing shut down, draining input */
};

struct worker;

/* How net_conn_peer_format() writes a connection's peer. */
enum peer_form {
    PEER_NAME, /* the text in name (NULL: "unknown"): an in-process connection's, a forwarded one */
    PEER_V4,   /* "a.b.c.d:port", from addr and port */
    PEER_V6,   /* "[v6]:port", from addr and port */
};

/* What a TLS connection needs only until its handshake is over: its entry
 * in the listener's handshake gate and the deadline for its first bytes.
 * Allocated at accept and freed once the connection is open, so an idle
 * open connection does not carry it. */
struct net_preopen {
    struct hsgate_entry gate; /* first: gate_conn() finds conn from it; guarded by l->gate_lock */
    struct net_conn *conn;
    uint64_t idle_deadline; /* handshake while nothing was received; 0: none */
};

/* Fields are ordered by size so the struct has no holes: an idle
 * connection costs this struct and nothing else in net (its buffers are
 * freed while empty). */
struct net_conn {
    enum src_kind kind;
    int fd;
    struct tcp_transport tcp;
    const struct transport_ops *ops; /* the outermost transport (tcp, tls or ws) */
    void *tstate;
    /* Under a WebSocket: the transport it runs over (tcp or tls); NULL
     * otherwise. */
    const struct transport_ops *under_ops;
    void *under;
    void *tls_t; /* the TLS transport's state, whatever runs over it; NULL: no TLS (any more) */
    struct worker *w;
    void *user;
    struct listener *l;
    struct net_conn *prev, *next; /* owner's list of connections */
    /* On the owner's watched list: something sweep() must check (owner
     * only, as is the list). */
    struct net_conn *wprev, *wnext;
    struct net_preopen *pre; /* a TLS listener's, before PH_OPEN; NULL otherwise */
    char *name;              /* PEER_NAME: the peer's text (owned) */
    const char *_Atomic why;
    struct buf in;
    pthread_mutex_t out_lock;
    struct buf out;          /* guarded by out_lock */
    _Atomic size_t out_len;  /* buf_len(&out), stored under out_lock, read without it */
    size_t out_limit;        /* the output bound (the buf itself is unbounded) */
    uint64_t out_full_since; /* guarded by out_lock: when a send was refused, 0 if not */
    uint64_t tag;            /* net_conn_set_tag */
    uint64_t close_deadline; /* flushing before a close */
    uint64_t deadline;       /* PROXY header, handshake (from accept), or drain */
    uint32_t linger_left;    /* input the drain may still read (LINGER_BYTES at most) */
    uint32_t slow_ms;        /* slow-consumer timeout, 0: none */
    uint32_t events;         /* registered with epoll */
    enum phase phase;        /* owner only, as are the fields from here to hs_wants_write */
    uint8_t addr[16];        /* the peer (after a PROXY header, the client) */
    uint16_t port;           /* the peer's, with addr (PEER_V4, PEER_V6) */
    uint8_t peer_form;       /* enum peer_form */
    bool opened;             /* on_open succeeded and on_close has not run */
    bool failed;             /* an error: no graceful close */
    bool in_gate;            /* has been through the handshake gate */
    bool trusted;            /* the socket peer is a trusted proxy */
    bool linger_done;        /* the peer closed, or the drain budget is spent */
    bool rd_eof;             /* the peer closed its sending side */
    bool released;           /* no longer counted in nconns */
    bool greeted;            /* the listener's greeting was queued or written */
    bool hs_wants_write;
    bool watched;
    bool held;               /* owner only: input held by net_conn_hold_input */
    bool flush_queued;       /* guarded by out_lock: on a flush list already */
    bool out_full;           /* guarded by out_lock: a send was refused since the last drain */
    _Atomic bool resume_req; /* net_conn_resume_input asked */
    _Atomic bool closing;
    _Atomic bool hs_go; /* given a handshake slot by another connection's exit */
};

struct worker {
    enum src_kind kind;
    struct net_server *s;
    unsigned index;
    pthread_t thread;
    int epfd;
    int evfd;
    int spare; /* a descriptor kept to accept-and-close when out of them */
    uint64_t paused_until[MAX_LISTENERS]; /* accepting paused after a failure */
    struct net_conn *conns;
    /* The connections sweep() looks at: before PH_OPEN (a deadline),
     * closing or lingering, or output refused with a slow-consumer
     * timeout. Idle open connections are not on it. */
    struct net_conn *watched;
    /* Where input is read before the handler takes it (READ_CHUNK bytes,
     * owner only); busy while a handler runs on it. */
    uint8_t *rbuf;
    bool rbuf_busy;
    /* Connections with output queued by this worker itself (owner only). */
    struct net_conn **dirty;
    size_t ndirty, capdirty;
    /* Connections other threads queued output for or asked to close. */
    pthread_mutex_t pending_lock;
    struct net_conn **pending;
    size_t npending, cappending;
    /* The pending list being serviced (owner only). */
    struct net_conn **serving;
    size_t nserving;
    /* Sockets handed over by net_server_adopt(), guarded by pending_lock. */
    struct adopted *adopt;
    /* clock_mono_ms() at the end of the last loop turn (net_server_alive). */
    _Atomic uint64_t last_loop_ms;
};

struct net_server {
    struct net_config cfg;
    const struct net_handler *h;
    void *ctx;
    struct listener listeners[MAX_LISTENERS];
    unsigned nlisteners;
    struct listener internal; /* the pseudo-listener of adopted sockets */
    /* Listening sockets passed in (socket activation, net_server_inherit);
     * taken by the listener with their address, -1 once taken. */
    int inherited[MAX_LISTENERS];
    unsigned ninherited;
    struct worker *workers;
    _Atomic bool stopping;
    _Atomic bool accept_stopped; /* net_server_stop_accepting */
    _Atomic uint32_t nconns;
    uint32_t fd_budget; /* connections the descriptor limit allows; 0: not known */
    bool started;
};

/* listener.c */
/* Frees what a listener allocated (not its socket). */
void listener_free(struct listener *l);
/* Counts st on l and logs `fmt` (with the peer) unless a line for the same
 * cause went out less than a second ago. */
void listener_note(struct listener *l, enum net_stat st, const char *peer, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Logs what listener_note held back, once its second is over. */
void listener_report_held(struct listener *l);
/* The accept loop of one listener on one worker (level-triggered). */
void listener_accept(struct worker *w, struct listener *l);
/* Re-arms listeners whose pause is over; returns ms until the next one
 * (or `max`). */
int listener_resume(struct worker *w, uint64_t now, int max);
/* Works out s->fd_budget after raising the soft descriptor limit. */
void listener_fd_budget(struct net_server *s);

/* server.c */
/* For tests: sweeps run, and connections they looked at (all workers). */
extern _Atomic uint64_t net_sweeps, net_sweep_visits;
void conn_open(struct worker *w, struct listener *l, int fd, const char *name,
               const struct sockaddr_storage *ss);
/* The peer as net_conn_peer_format() writes it: from an IPv4 or IPv6
 * socket address (false for another family, nothing changed), or a text
 * of its own (cut at NET_PEER_MAX - 1; false if out of memory, the old one
 * kept). */
bool conn_peer_from_sockaddr(struct net_conn *c, const struct sockaddr_storage *ss);
bool conn_peer_set_name(struct net_conn *c, const char *text);

#endif
