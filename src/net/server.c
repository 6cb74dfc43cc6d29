/* Worker threads, each with an epoll loop that owns its connections; a
 * connection's life (PROXY header, waiting for a handshake slot, the TLS
 * handshake, open, graceful close), reading, batched writing, cross-thread
 * wakeups and closing. Listening sockets and limits are in listener.c.
 * Contracts in net.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/recent.h"
#include "core/vec.h"
#include "net/internal.h"
#include "tls/tls.h"

#define READ_CHUNK       65536
#define READS_PER_TURN   8    /* fairness: then let other connections run */
#define CLOSE_GRACE_MS   2000 /* how long a closing connection may drain its output */
#define LINGER_MS        1000 /* graceful close: how long input is drained */
#define LINGER_BYTES     (1u << 20)
#define PROXY_TIMEOUT_MS 5000 /* a PROXY header (or an untrusted peer's first byte) */
#define SWEEP_MS         100

/* An in-process client's socket waiting for its worker to take it. */
struct adopted {
    struct adopted *next;
    int fd;
    char name[64];
};

static __thread struct worker *tl_worker;

/* see internal.h */
_Atomic uint64_t net_sweeps, net_sweep_visits;

/* Owner only: sweep() looks at c from now on (until it finds nothing to
 * check). */
static void watch(struct net_conn *c)
{
    if (c->watched)
        return;
    struct worker *w = c->w;
    c->watched = true;
    c->wprev = NULL;
    c->wnext = w->watched;
    if (w->watched)
        w->watched->wprev = c;
    w->watched = c;
}

static void unwatch(struct net_conn *c)
{
    if (!c->watched)
        return;
    if (c->wprev)
        c->wprev->wnext = c->wnext;
    else
        c->w->watched = c->wnext;
    if (c->wnext)
        c->wnext->wprev = c->wprev;
    c->watched = false;
    c->wprev = c->wnext = NULL;
}

static void begin_handshake(struct net_conn *c);
static void fail(struct net_conn *c, const char *why);
static void read_ready(struct net_conn *c);
static bool flush(struct net_conn *c);
static void set_address(struct net_conn *c, int family, const void *addr);

static int push(struct net_conn ***arr, size_t *n, size_t *cap, struct net_conn *c)
{
    if (!ward_ok(vec_reserve(arr, cap, *n + 1, sizeof(**arr))))
        return -1;
    (*arr)[(*n)++] = c;
    return 0;
}

static void wake(struct worker *w)
{
    uint64_t one = 1;
    ssize_t r = write(w->evfd, &one, sizeof(one));
    (void)r;
}

/* Puts c on its owner's flush list: directly when we are the owner, else
 * through the pending list and an eventfd wakeup (only when the list was
 * empty, so a burst of sends costs one wakeup). */
static void schedule(struct net_conn *c)
{
    struct worker *w = c->w;
    if (tl_worker == w) {
        if (push(&w->dirty, &w->ndirty, &w->capdirty, c) < 0)
            log_error("net: out of memory scheduling a flush");
        return;
    }
    pthread_mutex_lock(&w->pending_lock);
    bool was_empty = w->npending == 0;
    if (push(&w->pending, &w->npending, &w->cappending, c) < 0)
        log_error("net: out of memory scheduling a flush");
    pthread_mutex_unlock(&w->pending_lock);
    if (was_empty)
        wake(w);
}

/* Appends under out_lock unless the queue is past `bound` (0: none); an
 * empty queue takes anything. A refusal starts the slow-consumer clock. */
/* Under out_lock, after the queue changed: the copy the lock-free
 * net_conn_writable reads. */
static void out_changed(struct net_conn *c)
{
    atomic_store_explicit(&c->out_len, buf_len(&c->out), memory_order_relaxed);
}

static int send_bounded(struct net_conn *c, const void *data, size_t len, size_t bound)
{
    pthread_mutex_lock(&c->out_lock);
    size_t queued = buf_len(&c->out);
    if ((bound && queued && queued + len > bound) || !ward_ok(buf_append(&c->out, data, len))) {
        c->out_full = true;
        bool started = !c->out_full_since;
        if (started)
            c->out_full_since = clock_mono_ms();
        pthread_mutex_unlock(&c->out_lock);
        if (started && c->slow_ms)
            schedule(c); /* its owner puts it on the watched list */
        return -1;
    }
    out_changed(c);
    bool need = !c->flush_queued;
    c->flush_queued = true;
    pthread_mutex_unlock(&c->out_lock);
    if (need)
        schedule(c);
    return 0;
}

/* see net.h */
int net_conn_send(struct net_conn *c, const void *data, size_t len)
{
    return send_bounded(c, data, len, c->out_limit);
}

/* see net.h */
int net_conn_send_control(struct net_conn *c, const void *data, size_t len)
{
    return send_bounded(c, data, len, c->out_limit ? c->out_limit * 2 : 0);
}

/* see net.h */
bool net_conn_writable(struct net_conn *c, size_t len)
{
    /* Asked for every receiver of every message: the common answer
     * ("yes, room") without the lock; a "no" is checked again under it. */
    size_t seen = atomic_load_explicit(&c->out_len, memory_order_relaxed);
    if (!c->out_limit || !seen || seen + len <= c->out_limit)
        return true;
    pthread_mutex_lock(&c->out_lock);
    size_t queued = buf_len(&c->out);
    bool ok = !c->out_limit || !queued || queued + len <= c->out_limit;
    bool started = false;
    if (!ok) { /* found full: as a refused send would */
        c->out_full = true;
        started = !c->out_full_since;
        if (started)
            c->out_full_since = clock_mono_ms();
    }
    pthread_mutex_unlock(&c->out_lock);
    if (started && c->slow_ms)
        schedule(c); /* its owner puts it on the watched list */
    return ok;
}

/* see net.h */
void net_conn_hold_input(struct net_conn *c)
{
    c->held = true;
}

/* see net.h */
void net_conn_resume_input(struct net_conn *c)
{
    if (atomic_exchange(&c->resume_req, true))
        return;
    pthread_mutex_lock(&c->out_lock);
    bool need = !c->flush_queued;
    c->flush_queued = true;
    pthread_mutex_unlock(&c->out_lock);
    if (need)
        schedule(c);
}

/* see net.h */
size_t net_conn_pending(struct net_conn *c)
{
    pthread_mutex_lock(&c->out_lock);
    size_t n = buf_len(&c->out);
    pthread_mutex_unlock(&c->out_lock);
    return n;
}

/* see net.h */
void net_conn_close(struct net_conn *c, const char *why)
{
    const char *expected = NULL;
    atomic_compare_exchange_strong(&c->why, &expected, why);
    if (atomic_exchange(&c->closing, true))
        return;
    pthread_mutex_lock(&c->out_lock);
    bool need = !c->flush_queued;
    c->flush_queued = true;
    pthread_mutex_unlock(&c->out_lock);
    if (need)
        schedule(c);
}

const struct tls_identity *net_conn_tls_identity(const struct net_conn *c)
{
    return c->tls_t ? tls_transport_identity(c->tls_t) : NULL;
}

struct tls_server *net_conn_tls_server(const struct net_conn *c)
{
    /* The listener's: the greeting hook asks before the handshake. */
    return c->l->tls;
}

bool net_conn_greeted(const struct net_conn *c)
{
    return c->greeted;
}

void net_conn_set_tag(struct net_conn *c, uint64_t tag)
{
    c->tag = tag;
}

uint64_t net_conn_tag(const struct net_conn *c)
{
    return c->tag;
}

bool net_conn_tls_revoked(const struct net_conn *c)
{
    return c->tls_t && tls_transport_revoked(c->tls_t, c->l->tls);
}

const char *net_conn_peer_format(const struct net_conn *c, char *buf)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    switch (c->peer_form) {
    case PEER_V4:
        inet_ntop(AF_INET, c->addr + 12, ip, INET_ADDRSTRLEN);
        snprintf(buf, NET_PEER_MAX, "%.*s:%u", INET_ADDRSTRLEN - 1, ip, c->port);
        break;
    case PEER_V6:
        /* inet_ntop writes at most 39 characters (eight groups of four and
         * seven colons; its dotted forms are shorter): "[v6]:port" fits. */
        inet_ntop(AF_INET6, c->addr, ip, sizeof(ip));
        snprintf(buf, NET_PEER_MAX, "[%.39s]:%u", ip, c->port);
        break;
    default:
        snprintf(buf, NET_PEER_MAX, "%s", c->name ? c->name : "unknown");
        break;
    }
    return buf;
}

bool net_conn_local(const struct net_conn *c, char *host, size_t cap, uint16_t *port)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof(a);
    if (getsockname(c->fd, (struct sockaddr *)&a, &len) < 0)
        return false;
    const void *addr = a.ss_family == AF_INET6
                           ? (const void *)&((struct sockaddr_in6 *)&a)->sin6_addr
                           : (const void *)&((struct sockaddr_in *)&a)->sin_addr;
    *port = ntohs(a.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&a)->sin6_port
                                          : ((struct sockaddr_in *)&a)->sin_port);
    return (a.ss_family == AF_INET || a.ss_family == AF_INET6) &&
           inet_ntop(a.ss_family, addr, host, (socklen_t)cap) != NULL;
}

unsigned net_conn_listener(const struct net_conn *c)
{
    return c->l->index;
}

uint32_t net_conn_slow_consumer_ms(const struct net_conn *c)
{
    return c->slow_ms;
}

unsigned net_conn_worker(const struct net_conn *c)
{
    return c->w->index;
}

static void set_events(struct net_conn *c, uint32_t events)
{
    if (c->events == events)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    c->events = events; /* also on failure: the connection is closed, not retried */
    if (epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
        log_error("%s: epoll_ctl(MOD): %s; closing the connection", net_conn_peer(c),
                  strerror(errno));
        fail(c, "epoll_ctl failed");
    }
}

/* Held input (flow control) is still read until the input buffer is full,
 * so the handler can look ahead in it; then the kernel holds the rest. */
static bool input_full(const struct net_conn *c)
{
    return c->held && c->in.limit && buf_len(&c->in) >= c->in.limit;
}

static void set_interest(struct net_conn *c, bool out)
{
    /* After the peer's FIN nothing more is read (a readable EOF would wake
     * the loop for ever), nor while held input fills its buffer. */
    set_events(c, (c->rd_eof || input_full(c) ? 0 : EPOLLIN) | (out ? EPOLLOUT : 0));
}

/* ---- the handshake gate ---- */

static struct net_conn *gate_conn(struct hsgate_entry *e)
{
    return ((struct net_preopen *)e)->conn; /* the entry is its first member */
}

/* Under l->gate_lock: `next` got a slot; its owner starts the handshake. */
static void gate_admitted(struct hsgate_entry *next)
{
    if (!next)
        return;
    struct net_conn *n = gate_conn(next);
    atomic_store(&n->hs_go, true);
    schedule(n);
}

/* Takes c out of the gate; the slot it held goes to the next in line. */
static void gate_leave(struct net_conn *c)
{
    if (!c->in_gate)
        return;
    pthread_mutex_lock(&c->l->gate_lock);
    gate_admitted(hsgate_leave(&c->l->gate, &c->pre->gate));
    pthread_mutex_unlock(&c->l->gate_lock);
}

/* The first bytes arrived: c is no longer an idle candidate for eviction. */
static void gate_not_idle(struct net_conn *c)
{
    c->pre->idle_deadline = 0;
    pthread_mutex_lock(&c->l->gate_lock);
    c->pre->gate.idle = false;
    pthread_mutex_unlock(&c->l->gate_lock);
}

static void fail(struct net_conn *c, const char *why)
{
    const char *expected = NULL;
    atomic_compare_exchange_strong(&c->why, &expected, why);
    atomic_store(&c->closing, true);
    c->failed = true;
    watch(c); /* owner only, as fail() is: the next sweep closes it */
    /* Nothing more can be written: drop what is queued. */
    pthread_mutex_lock(&c->out_lock);
    buf_reset(&c->out);
    out_changed(c);
    pthread_mutex_unlock(&c->out_lock);
}

/* Under l->gate_lock: v lost its slot or place to a fairer source. Its
 * owner (maybe another worker) closes it. */
static void gate_evict(struct listener *l, struct hsgate_entry *v)
{
    if (!v)
        return;
    struct net_conn *c = gate_conn(v);
    tls_server_count(l->tls, TLS_CAUSE_BUSY);
    listener_note(l, NET_ST_HS_EVICTED, net_conn_peer(c),
                  "TLS handshake slot given to a source with fewer (busy)");
    net_conn_close(c, "TLS handshake slot given to another source");
}

/* Slots held by silent handshakes of a source above its share go to the
 * waiting connections of sources below it, once the silence has lasted
 * (hsgate_rebalance): a newcomer that arrived while they were still young
 * is not left waiting for their idle timeout. A few per sweep. */
static void gate_rebalance(struct listener *l, uint64_t now)
{
    if (!l->tls)
        return;
    pthread_mutex_lock(&l->gate_lock);
    for (int i = 0; i < 64; i++) {
        struct hsgate_entry *evicted = NULL;
        struct hsgate_entry *next = hsgate_rebalance(&l->gate, (int64_t)now, &evicted);
        if (!next)
            break;
        gate_evict(l, evicted);
        gate_admitted(next);
    }
    pthread_mutex_unlock(&l->gate_lock);
}

/* The key for handshake fairness: the peer's address for IPv4, its /64
 * for IPv6 (one host commonly holds a whole /64). */
static void gate_source(struct net_conn *c)
{
    uint8_t *src = c->pre->gate.src;
    memcpy(src, c->addr, 16);
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    if (memcmp(c->addr, mapped, 12) != 0)
        memset(src + 8, 0, 8);
}

/* After any PROXY header: TLS connections ask the gate for a slot. */
static void gate_arrive(struct net_conn *c)
{
    struct listener *l = c->l;
    struct hsgate_entry *evicted = NULL;
    gate_source(c);
    c->pre->gate.idle = true;
    pthread_mutex_lock(&l->gate_lock);
    c->in_gate = true;
    enum hsgate_verdict v = hsgate_arrive(&l->gate, &c->pre->gate, clock_mono_ms(), &evicted);
    gate_evict(l, evicted);
    pthread_mutex_unlock(&l->gate_lock);
    if (v == HSGATE_ADMITTED) {
        begin_handshake(c);
        return;
    }
    if (v == HSGATE_QUEUED) {
        c->phase = PH_QUEUED;
        /* The wait has its own bound; the handshake's starts with its slot. */
        c->deadline = clock_mono_ms() + l->hs_queue_ms;
        /* Nothing is read while waiting: only the peer giving up is seen. */
        set_events(c, EPOLLRDHUP);
        atomic_fetch_add(&l->st[NET_ST_HS_QUEUED], 1);
        log_debug("%s: waiting for a TLS handshake slot", net_conn_peer(c));
        return;
    }
    tls_server_count(l->tls, TLS_CAUSE_BUSY);
    listener_note(l, NET_ST_HS_REFUSED, net_conn_peer(c), "TLS handshake refused: %s",
                  tls_cause_name(TLS_CAUSE_BUSY));
    fail(c, "TLS handshake refused: busy");
}

/* ---- a connection's life ---- */

/* Hands c to the layer above. */
static void open_conn(struct net_conn *c)
{
    const struct net_handler *h = c->w->s->h;
    c->phase = PH_OPEN;
    gate_leave(c); /* left already after the handshake; the entry goes now */
    c->in_gate = false;
    free(c->pre);
    c->pre = NULL;
    set_interest(c, false);
    c->user = h->on_open(c->w->s->ctx, c);
    if (!c->user) {
        fail(c, "refused");
        return;
    }
    c->opened = true;
    /* Bytes that came with the end of the handshake are waiting. */
    if (c->tls_t || c->under_ops)
        read_ready(c);
}

/* A WebSocket listener: the transport so far (tcp or tls) goes under a
 * WebSocket, whose upgrade runs before the handler sees the connection. */
static void begin_upgrade(struct net_conn *c)
{
    void *ws = ws_transport_new(&c->l->wss, c->ops, c->tstate);
    if (!ws) {
        log_error("net: out of memory for a WebSocket from %s", net_conn_peer(c));
        fail(c, "out of memory");
        return;
    }
    c->under_ops = c->ops;
    c->under = c->tstate;
    c->ops = &ws_transport_ops;
    c->tstate = ws;
    c->phase = PH_UPGRADE;
    c->hs_wants_write = false;
    set_interest(c, false);
    read_ready(c); /* TLS may hold the request already */
}

/* The transports are set up: the handler may have the connection. */
static void ready(struct net_conn *c)
{
    if (c->l->ws)
        begin_upgrade(c);
    else
        open_conn(c);
}

/* Queues the listener's greeting, if it has one, ahead of everything
 * else. Returns false if c was failed. */
static bool greet(struct net_conn *c)
{
    struct listener *l = c->l;
    if (!l->greeting)
        return true;
    uint8_t buf[NET_GREETING_MAX];
    size_t n = l->greeting(c->w->s->ctx, c, buf, sizeof(buf));
    if (n == 0)
        return true;
    if (n > sizeof(buf)) {
        log_error("%s: the greeting overran its buffer (%zu bytes); closing", net_conn_peer(c), n);
        fail(c, "greeting too long");
        return false;
    }
    pthread_mutex_lock(&c->out_lock);
    bool ok = ward_ok(buf_append(&c->out, buf, n));
    out_changed(c);
    bool need = ok && !c->flush_queued;
    c->flush_queued = c->flush_queued || need;
    pthread_mutex_unlock(&c->out_lock);
    c->greeted = ok;
    if (!ok) {
        log_error("net: out of memory for the greeting of %s", net_conn_peer(c));
        fail(c, "out of memory");
        return false;
    }
    if (need && (!l->tls || c->phase == PH_UPGRADE))
        schedule(c); /* plain, or after the upgrade: it simply goes first */
    return true;
}

/* TLS listeners with a greeting: it is written in plaintext, all of it,
 * before the handshake may start (the peer reads it, then sends its
 * ClientHello, whose first byte the plaintext check still sees). A short
 * write waits for EPOLLOUT; nothing is read meanwhile. */
static void greeting_flush(struct net_conn *c)
{
    if (flush(c)) {
        if (!c->failed)
            gate_arrive(c);
        return;
    }
    if (c->phase != PH_GREETING)
        log_debug("%s: the greeting waits for the peer to read (%zu bytes left)", net_conn_peer(c),
                  net_conn_pending(c));
    c->phase = PH_GREETING;
    set_events(c, EPOLLOUT | EPOLLRDHUP);
}

static void after_proxy(struct net_conn *c)
{
    /* From accept: the greeting, if any, must be read within the
     * handshake's time; waiting for a slot and the handshake itself get
     * their own deadlines (gate_arrive, begin_handshake). */
    c->deadline = c->deadline - PROXY_TIMEOUT_MS + c->l->hs_timeout_ms;
    /* On a WebSocket the greeting is the first frame after the upgrade. */
    if (!c->l->ws && !greet(c))
        return;
    if (c->l->tls && c->greeted)
        greeting_flush(c);
    else if (c->l->tls)
        gate_arrive(c);
    else
        ready(c);
}

static void begin_handshake(struct net_conn *c)
{
    struct listener *l = c->l;
    void *t = tls_transport_new(l->tls, c->fd, net_conn_peer(c));
    if (!t) {
        log_error("net: out of memory for a TLS connection from %s", net_conn_peer(c));
        fail(c, "out of memory");
        return;
    }
    c->ops = &tls_transport_ops;
    c->tstate = t;
    c->tls_t = t;
    c->phase = PH_HANDSHAKE;
    c->deadline = clock_mono_ms() + l->hs_timeout_ms;
    set_interest(c, false);
    log_debug("%s: TLS handshake slot taken", net_conn_peer(c));
    uint8_t b;
    if (recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1) {
        gate_not_idle(c);
        read_ready(c);
    } else {
        c->pre->idle_deadline = clock_mono_ms() + l->hs_idle_ms;
    }
}

/* A trusted proxy's X-Forwarded-For names the client. */
static void forwarded_for(struct net_conn *c)
{
    const char *f = ws_transport_forwarded(c->tstate);
    if (!f || !c->trusted)
        return;
    uint8_t a[16];
    const char *colon = strchr(f, ':');
    int family = colon ? AF_INET6 : AF_INET;
    const char *ip = f;
    char bare[64];
    if (f[0] == '[') { /* "[v6]" or "[v6]:port" */
        snprintf(bare, sizeof(bare), "%.*s", (int)strcspn(f + 1, "]"), f + 1);
        ip = bare;
    } else if (colon && !strchr(colon + 1, ':')) { /* "a.b.c.d:port" */
        snprintf(bare, sizeof(bare), "%.*s", (int)(colon - f), f);
        ip = bare;
        family = AF_INET;
    }
    if (inet_pton(family, ip, a) != 1) {
        char shown[64];
        log_escape(f, strlen(f), shown, sizeof(shown));
        log_notice("%s: X-Forwarded-For '%s' is not an address; ignored", net_conn_peer(c), shown);
        return;
    }
    log_info("%s: X-Forwarded-For: client %s", net_conn_peer(c), ip);
    /* Kept as the proxy wrote it (no port): the text is logged as it was. */
    if (!conn_peer_set_name(c, ip))
        return;
    set_address(c, family, a);
}

/* Drives a WebSocket upgrade. Returns true once done (never: the
 * connection is then open and open_conn read what was there). */
static bool upgrade(struct net_conn *c)
{
    struct listener *l = c->l;
    ssize_t r = c->ops->handshake(c->tstate);
    if (r == 1) {
        atomic_fetch_add(&l->st[NET_ST_WS_UPGRADES], 1);
        forwarded_for(c);
        const char *proto = ws_transport_protocol(c->tstate);
        log_debug("%s: WebSocket upgrade of %s%s%s", net_conn_peer(c), ws_transport_path(c->tstate),
                  proto ? ", subprotocol " : "", proto ? proto : "");
        if (!greet(c))
            return false;
        open_conn(c);
        return false;
    }
    if (r == TRANSPORT_WANT_READ || r == TRANSPORT_WANT_WRITE) {
        c->hs_wants_write = r == TRANSPORT_WANT_WRITE;
        set_interest(c, c->hs_wants_write);
        return false;
    }
    int status = ws_transport_status(c->tstate);
    const char *path = ws_transport_path(c->tstate);
    if (status)
        listener_note(l, NET_ST_WS_REFUSED, net_conn_peer(c), "%s%s%s%s", c->ops->cause(c->tstate),
                      *path ? " (" : "", path, *path ? ")" : "");
    else
        log_notice("%s: %s", net_conn_peer(c), c->ops->cause(c->tstate));
    fail(c, status ? "WebSocket upgrade refused" : "WebSocket upgrade failed");
    return false;
}

/* Drives a TLS handshake or WebSocket upgrade. Returns true once done (the
 * connection is open). */
static bool handshake(struct net_conn *c)
{
    if (c->phase == PH_UPGRADE)
        return upgrade(c);
    if (c->phase != PH_HANDSHAKE)
        return true;
    if (c->pre->idle_deadline)
        gate_not_idle(c);
    ssize_t r = c->ops->handshake(c->tstate);
    if (r == 1) {
        gate_leave(c);
        c->in_gate = false;
        log_debug("%s: %s", net_conn_peer(c), tls_transport_describe(c->tls_t));
        ready(c);
        return false; /* open_conn (or the upgrade) read what was there */
    }
    if (r == TRANSPORT_WANT_READ || r == TRANSPORT_WANT_WRITE) {
        c->hs_wants_write = r == TRANSPORT_WANT_WRITE;
        set_interest(c, c->hs_wants_write);
        return false;
    }
    /* Every failed handshake is logged with the peer and the cause. */
    log_notice("%s: %s", net_conn_peer(c), c->ops->cause(c->tstate));
    recent_refusal(c->l->index, net_conn_peer(c), c->ops->cause(c->tstate));
    fail(c, "TLS handshake failed");
    return false;
}

enum drain { DRAIN_MORE, DRAIN_EOF, DRAIN_STOP };

/* Reads and throws away input: a connection on its way out must not leave
 * bytes unread (closing would send a reset), nor spin on a readable socket.
 * DRAIN_EOF: the peer closed its side; DRAIN_STOP: an error, or the budget
 * is spent. */
static enum drain discard(struct net_conn *c)
{
    static __thread uint8_t sink[READ_CHUNK];
    for (int i = 0; i < READS_PER_TURN; i++) {
        ssize_t n = read(c->fd, sink, sizeof(sink));
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return DRAIN_MORE;
        if (n == 0) {
            c->rd_eof = true;
            return DRAIN_EOF;
        }
        if (n < 0 || (size_t)n >= c->linger_left) {
            c->linger_left = 0;
            return DRAIN_STOP;
        }
        c->linger_left -= (size_t)n;
    }
    return DRAIN_MORE;
}

static void read_ready(struct net_conn *c)
{
    const struct net_handler *h = c->w->s->h;
    if (atomic_load(&c->closing)) {
        /* The peer's EOF does not drop what is still to be written (it
         * may have shut down only its sending side). */
        enum drain d = discard(c);
        if (d == DRAIN_STOP)
            fail(c, "input while closing");
        else if (d == DRAIN_EOF)
            set_interest(c, (c->events & EPOLLOUT) != 0);
        return;
    }
    if (!handshake(c))
        return;
    struct worker *w = c->w;
    for (int i = 0; i < READS_PER_TURN && !atomic_load(&c->closing); i++) {
        size_t want = READ_CHUNK;
        if (c->in.limit && c->in.limit - buf_len(&c->in) < want)
            want = c->in.limit - buf_len(&c->in);
        if (want == 0 && c->held) { /* flow control: the kernel holds the rest */
            set_interest(c, c->events & EPOLLOUT);
            return;
        }
        /* With nothing kept from before, bytes are read into the worker's
         * buffer and handed over from there; only a partial packet (or
         * held input) is copied to the connection's own, which is freed
         * again once empty. An idle connection holds no input buffer. */
        bool direct = buf_len(&c->in) == 0 && w->rbuf && !w->rbuf_busy;
        uint8_t *dst;
        if (direct) {
            dst = w->rbuf;
        } else {
            if (want == 0 || !ward_ok(buf_reserve(&c->in, want))) {
                fail(c, "input limit");
                return;
            }
            dst = buf_tail(&c->in);
        }
        ssize_t n = c->ops->read(c->tstate, dst, want);
        if (n == TRANSPORT_EOF) {
            fail(c, "peer closed");
            return;
        }
        if (n == TRANSPORT_ERROR) {
            fail(c, c->ops->cause(c->tstate));
            return;
        }
        if (n < 0) {
            buf_release(&c->in);
            return; /* nothing more for now */
        }
        if (direct) {
            w->rbuf_busy = true;
            size_t used = h->on_data(c->user, dst, (size_t)n);
            w->rbuf_busy = false;
            if (used < (size_t)n && !ward_ok(buf_append(&c->in, dst + used, (size_t)n - used))) {
                fail(c, "input limit");
                return;
            }
        } else {
            buf_commit(&c->in, (size_t)n);
            size_t used = h->on_data(c->user, buf_head(&c->in), buf_len(&c->in));
            buf_consume(&c->in, used);
            buf_release(&c->in);
        }
        if (input_full(c)) { /* flow control: read no more until resumed */
            set_interest(c, c->events & EPOLLOUT);
            return;
        }
        /* A short read drained the socket, unless the transport holds
         * input of its own (a WebSocket's close behind the payload). */
        if ((size_t)n < want && !(c->ops->readable && c->ops->readable(c->tstate)))
            return;
    }
}

/* Owner only: input was held and may flow again. What is kept goes to the
 * handler first (it may hold again), then the socket is read as usual; a
 * TLS transport may have decrypted bytes no epoll event will announce. */
static void resume(struct net_conn *c)
{
    c->held = false;
    if (buf_len(&c->in)) {
        size_t used = c->w->s->h->on_data(c->user, buf_head(&c->in), buf_len(&c->in));
        buf_consume(&c->in, used);
        buf_release(&c->in);
        if (c->held)
            return;
    }
    set_interest(c, c->events & EPOLLOUT);
    read_ready(c);
}

/* The peer's address as 16 bytes in c->addr (IPv4 as ::ffff:a.b.c.d). */
static void set_address(struct net_conn *c, int family, const void *addr)
{
    memset(c->addr, 0, sizeof(c->addr));
    if (family == AF_INET) {
        c->addr[10] = c->addr[11] = 0xFF;
        memcpy(c->addr + 12, addr, 4);
    } else {
        memcpy(c->addr, addr, 16);
    }
}

/* The address and port of an IPv4 or IPv6 socket address; false for
 * another family. */
static bool sockaddr_address(struct net_conn *c, const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        set_address(c, AF_INET, &a->sin_addr);
        c->port = ntohs(a->sin_port);
        return true;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        set_address(c, AF_INET6, &a->sin6_addr);
        c->port = ntohs(a->sin6_port);
        return true;
    }
    return false;
}

/* see internal.h */
bool conn_peer_from_sockaddr(struct net_conn *c, const struct sockaddr_storage *ss)
{
    if (!sockaddr_address(c, ss))
        return false;
    free(c->name);
    c->name = NULL;
    c->peer_form = ss->ss_family == AF_INET ? PEER_V4 : PEER_V6;
    return true;
}

/* see internal.h */
bool conn_peer_set_name(struct net_conn *c, const char *text)
{
    char *copy = strndup(text, NET_PEER_MAX - 1);
    if (!copy)
        return false;
    free(c->name);
    c->name = copy;
    c->peer_form = PEER_NAME;
    return true;
}

/* The PROXY phase: a trusted proxy's header is read (peeked, then exactly
 * its bytes consumed, so what follows stays in the socket for TLS or
 * MQTT); from anyone else, a first byte that starts a header is refused. */
static void proxy_ready(struct net_conn *c)
{
    uint8_t buf[PROXY_MAX_LEN];
    ssize_t n = recv(c->fd, buf, c->trusted ? sizeof(buf) : 1, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        fail(c, n == 0 ? "peer closed" : strerror(errno));
        return;
    }
    if (!c->trusted) {
        if (!proxy_maybe_header(buf[0])) {
            after_proxy(c);
            return;
        }
        listener_note(c->l, NET_ST_PROXY_REFUSED, net_conn_peer(c),
                      "PROXY header refused: not from a trusted proxy");
        fail(c, "PROXY header from an untrusted address");
        return;
    }
    struct proxy_result r = proxy_parse(buf, (size_t)n);
    if (r.status == PROXY_INCOMPLETE)
        return; /* edge-triggered: woken when more arrives */
    if (r.status == PROXY_ERROR) {
        listener_note(c->l, NET_ST_PROXY_REFUSED, net_conn_peer(c), "PROXY header refused: %s",
                      r.error);
        fail(c, "bad PROXY header");
        return;
    }
    if (recv(c->fd, buf, r.consumed, 0) != (ssize_t)r.consumed) {
        fail(c, "PROXY header read failed");
        return;
    }
    atomic_fetch_add(&c->l->st[NET_ST_PROXY_ACCEPTED], 1);
    if (!r.local) {
        char real[64];
        proxy_addr_format(&r.src, real, sizeof(real));
        log_info("%s: PROXY v%d: client %s", net_conn_peer(c), r.version, real);
        set_address(c, r.src.family, r.src.addr);
        c->port = r.src.port;
        c->peer_form = r.src.family == AF_INET6 ? PEER_V6 : PEER_V4;
    }
    after_proxy(c);
}

/* Writes what is queued. Returns true if the queue is now empty. */
static bool flush(struct net_conn *c)
{
    bool empty;
    pthread_mutex_lock(&c->out_lock);
    c->flush_queued = false;
    while (buf_len(&c->out) > 0) {
        ssize_t n = c->ops->write(c->tstate, buf_head(&c->out), buf_len(&c->out));
        if (n > 0) {
            buf_consume(&c->out, (size_t)n);
            continue;
        }
        if (n == TRANSPORT_ERROR) {
            const char *cause = c->ops->cause(c->tstate);
            pthread_mutex_unlock(&c->out_lock);
            fail(c, cause);
            return true;
        }
        break; /* would block: wait for EPOLLOUT */
    }
    /* The transport's own output (a WebSocket pong or close), which may
     * wait behind net's queue but not for more of it. */
    bool own = false;
    if (buf_len(&c->out) == 0 && c->ops->pending && c->ops->pending(c->tstate)) {
        ssize_t r = c->ops->flush(c->tstate);
        if (r == TRANSPORT_ERROR) {
            const char *cause = c->ops->cause(c->tstate);
            pthread_mutex_unlock(&c->out_lock);
            fail(c, cause);
            return true;
        }
        own = r != 1;
    }
    out_changed(c);
    buf_release(&c->out); /* an idle connection holds no output buffer */
    empty = buf_len(&c->out) == 0 && !own;
    bool drained = c->out_full && buf_len(&c->out) <= c->out_limit / 2;
    if (drained) {
        c->out_full = false;
        c->out_full_since = 0;
    }
    pthread_mutex_unlock(&c->out_lock);
    if (drained && c->opened && c->w->s->h->on_drain && !atomic_load(&c->closing))
        c->w->s->h->on_drain(c->user);
    if (c->phase == PH_OPEN || c->phase == PH_HANDSHAKE || c->phase == PH_UPGRADE)
        /* A handshake waiting to write keeps its EPOLLOUT interest. */
        set_interest(c, !empty || (c->phase != PH_OPEN && c->hs_wants_write));
    return empty;
}

/* c no longer counts against max_connections (nor the descriptor budget,
 * whose margin covers the short drain of a graceful close). Done before
 * on_close, so whoever saw the close logged can connect again at once. */
static void release(struct net_conn *c)
{
    if (c->released)
        return;
    c->released = true;
    atomic_fetch_sub(&c->l->nconns, 1);
    atomic_fetch_sub(&c->w->s->nconns, 1);
}

/* Owner only: frees c, telling the layer above if it still has it. */
static void destroy(struct net_conn *c)
{
    struct worker *w = c->w;
    const char *why = atomic_load(&c->why);
    gate_leave(c);
    /* ENOENT: it was never added (epoll_ctl(ADD) failed, already logged). */
    if (epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL) < 0 && errno != ENOENT)
        log_warn("%s: epoll_ctl(DEL): %s", net_conn_peer(c), strerror(errno));
    release(c);
    if (c->opened)
        w->s->h->on_close(c->user, why ? why : "closed");
    pthread_mutex_lock(&w->pending_lock);
    for (size_t i = 0; i < w->npending; i++)
        if (w->pending[i] == c)
            w->pending[i] = NULL;
    pthread_mutex_unlock(&w->pending_lock);
    for (size_t i = 0; i < w->ndirty; i++)
        if (w->dirty[i] == c)
            w->dirty[i] = NULL;
    for (size_t i = 0; i < w->nserving; i++)
        if (w->serving[i] == c)
            w->serving[i] = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    unwatch(c);
    c->ops->destroy(c->tstate);
    if (c->under_ops)
        c->under_ops->destroy(c->under);
    close(c->fd);
    buf_free(&c->in);
    buf_free(&c->out);
    pthread_mutex_destroy(&c->out_lock);
    free(c->pre);
    free(c->name);
    free(c);
}

/* The graceful part of a close: everything was written; tell the layer
 * above it is over, send FIN, and read until the peer's FIN (bounded). */
static void start_linger(struct net_conn *c, uint64_t now)
{
    const char *why = atomic_load(&c->why);
    release(c);
    c->w->s->h->on_close(c->user, why ? why : "closed");
    c->opened = false;
    c->user = NULL;
    if (c->under_ops) { /* a close frame first (best effort), then what is under */
        ws_transport_close(c->tstate, 1000);
        c->ops->destroy(c->tstate);
        c->ops = c->under_ops;
        c->tstate = c->under;
        c->under_ops = NULL;
    }
    if (c->tls_t) {
        /* TLS ends first (close_notify, best effort); the drain reads raw. */
        c->ops->destroy(c->tstate);
        c->ops = &tcp_transport_ops;
        c->tstate = &c->tcp;
        c->tls_t = NULL;
    }
    /* Counted before the FIN: a peer that sees its end of file finds it
     * counted. */
    atomic_fetch_add(&c->l->st[NET_ST_GRACEFUL_CLOSES], 1);
    shutdown(c->fd, SHUT_WR);
    c->phase = PH_LINGER;
    c->deadline = now + LINGER_MS;
    c->linger_left = LINGER_BYTES;
    set_events(c, EPOLLIN | EPOLLRDHUP);
    if (c->rd_eof || discard(c) != DRAIN_MORE)
        c->linger_done = true;
}

/* Owner only: starts a handshake given a slot; flushes; finishes a close
 * once drained or out of time. */
static void service(struct net_conn *c, uint64_t now)
{
    if (c->phase == PH_LINGER) {
        if (c->linger_done || now >= c->deadline)
            destroy(c);
        return;
    }
    if (atomic_exchange(&c->hs_go, false) && c->phase == PH_QUEUED && !atomic_load(&c->closing))
        begin_handshake(c);
    /* Clear flush_queued before taking resume_req: a resume asked after
     * this point schedules the connection again instead of being lost
     * (it sees flush_queued false), and one asked before is taken here. */
    pthread_mutex_lock(&c->out_lock);
    c->flush_queued = false;
    /* A refused send schedules c when the slow-consumer clock starts. */
    bool full = c->out_full_since != 0;
    pthread_mutex_unlock(&c->out_lock);
    if (full && c->slow_ms)
        watch(c);
    if (atomic_exchange(&c->resume_req, false) && c->held && c->phase == PH_OPEN)
        resume(c);
    /* Read `closing` before flushing: whatever was queued before the close
     * was asked for (a DISCONNECT with its reason) is then written by this
     * flush. Read after, a close racing the flush could destroy the
     * connection with that last packet still queued. */
    bool closing = atomic_load(&c->closing);
    if (closing)
        watch(c); /* close_deadline, then the linger */
    bool empty = flush(c);
    if (!closing)
        return;
    if (!c->close_deadline)
        c->close_deadline = now + CLOSE_GRACE_MS;
    if (empty && c->opened && !c->failed && !atomic_load(&c->w->s->stopping)) {
        start_linger(c, now);
        if (c->linger_done)
            destroy(c);
        return;
    }
    if (empty || now >= c->close_deadline)
        destroy(c);
}

/* The peer: a name given (an in-process connection), else accept's
 * address, else the socket's own account of it. */
static void conn_peer_name(struct net_conn *c, int fd, const char *name,
                           const struct sockaddr_storage *ss)
{
    bool inet = ss && sockaddr_address(c, ss); /* for limits and fairness */
    if (inet && !name) {
        c->peer_form = ss->ss_family == AF_INET ? PEER_V4 : PEER_V6;
        return;
    }
    char text[NET_PEER_MAX];
    if (!name)
        tcp_peer_name(fd, text, sizeof(text));
    conn_peer_set_name(c, name ? name : text); /* out of memory, it reads "unknown" */
}

/* see internal.h */
void conn_open(struct worker *w, struct listener *l, int fd, const char *name,
               const struct sockaddr_storage *ss)
{
    struct net_server *s = w->s;
    struct net_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        atomic_fetch_sub(&l->nconns, 1);
        atomic_fetch_sub(&s->nconns, 1);
        return;
    }
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) /* still usable */
        log_debug("%s: TCP_NODELAY: %s", name ? name : "accepted connection", strerror(errno));
    c->kind = SRC_CONN;
    c->fd = fd;
    c->tcp.fd = fd;
    c->ops = &tcp_transport_ops;
    c->tstate = &c->tcp;
    c->w = w;
    c->l = l;
    if (l->tls && !(c->pre = calloc(1, sizeof(*c->pre)))) {
        free(c);
        close(fd);
        atomic_fetch_sub(&l->nconns, 1);
        atomic_fetch_sub(&s->nconns, 1);
        return;
    }
    if (c->pre)
        c->pre->conn = c;
    conn_peer_name(c, fd, name, ss);
    buf_init(&c->in, l->max_input ? l->max_input : s->cfg.max_input);
    buf_init(&c->out, 0); /* bounded by out_limit in send_bounded */
    c->out_limit = l->max_output ? l->max_output : s->cfg.max_output;
    /* In-process connections (a bridge's local side) are never cut off as
     * slow consumers: a slow uplink holds the producers (backpressure)
     * instead of losing what the bridge has not yet forwarded. */
    c->slow_ms = l == &s->internal     ? 0
                 : l->slow_consumer_ms ? l->slow_consumer_ms
                                       : s->cfg.slow_consumer_timeout_ms;
    pthread_mutex_init(&c->out_lock, NULL);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    watch(c); /* the PROXY header or handshake deadline; off once open */
    c->linger_left = LINGER_BYTES;
    /* The PROXY phase's deadline, which after_proxy() turns into the
     * handshake's: both count from accept, kept in this one field. */
    c->deadline = clock_mono_ms() + PROXY_TIMEOUT_MS;
    c->events = l->proxy ? EPOLLIN | EPOLLET : EPOLLIN;
    struct epoll_event ev = {.events = c->events, .data.ptr = c};
    atomic_fetch_add(&l->st[NET_ST_ACCEPTED], 1);
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        /* It is on w->conns: the next sweep closes it. */
        log_error("%s: epoll_ctl(ADD): %s; closing the connection", net_conn_peer(c),
                  strerror(errno));
        fail(c, "epoll_ctl failed");
        return;
    }
    for (size_t i = 0; i < l->ntrusted && !c->trusted; i++)
        c->trusted = proxy_cidr_match(&l->trusted[i], AF_INET6, c->addr);
    if (l->proxy) {
        c->phase = PH_PROXY;
        /* A peer waiting for a greeting sends nothing first: only a
         * trusted proxy's header is waited for (see net.h). */
        if (c->trusted || !l->greeting)
            return; /* the first bytes decide (proxy_ready) */
        set_events(c, EPOLLIN);
    }
    after_proxy(c);
}

/* ---- the loop ---- */

/* Flushes everything queued during this turn, by us or by other threads. */
static void flush_lists(struct worker *w)
{
    uint64_t now = clock_mono_ms();
    struct net_conn **list = NULL;
    size_t n = 0;
    pthread_mutex_lock(&w->pending_lock);
    list = w->pending;
    n = w->npending;
    w->pending = NULL;
    w->npending = w->cappending = 0;
    struct adopted *adopt = w->adopt;
    w->adopt = NULL;
    pthread_mutex_unlock(&w->pending_lock);
    while (adopt) {
        struct adopted *next = adopt->next;
        atomic_fetch_add(&w->s->internal.nconns, 1);
        conn_open(w, &w->s->internal, adopt->fd, adopt->name, NULL);
        free(adopt);
        adopt = next;
    }
    /* The list may name a connection twice (a flush and a handshake slot);
     * destroy() clears every entry of what it frees, this list's too. */
    w->serving = list;
    w->nserving = n;
    for (size_t i = 0; i < n; i++)
        if (list[i])
            service(list[i], now);
    w->serving = NULL;
    w->nserving = 0;
    free(list);
    /* service() may add to dirty (on_close handlers send); loop by index. */
    for (size_t i = 0; i < w->ndirty; i++)
        if (w->dirty[i])
            service(w->dirty[i], now);
    w->ndirty = 0;
}

/* A deadline passed: the PROXY header, the handshake, or a handshake that
 * has received nothing. Returns true if c was failed. */
static bool timed_out(struct net_conn *c, uint64_t now)
{
    struct listener *l = c->l;
    if (c->phase == PH_PROXY && now >= c->deadline) {
        listener_note(l, NET_ST_PROXY_REFUSED, net_conn_peer(c),
                      "no PROXY header or first byte in %u ms", PROXY_TIMEOUT_MS);
        fail(c, "PROXY header timeout");
        return true;
    }
    if (c->phase == PH_UPGRADE) {
        if (now < c->deadline)
            return false;
        listener_note(l, NET_ST_HS_TIMEOUTS, net_conn_peer(c),
                      "WebSocket upgrade not done within %u ms of accept", l->hs_timeout_ms);
        fail(c, "WebSocket upgrade timeout");
        return true;
    }
    if (c->phase != PH_GREETING && c->phase != PH_QUEUED && c->phase != PH_HANDSHAKE)
        return false;
    bool idle = c->phase == PH_HANDSHAKE && c->pre->idle_deadline && now >= c->pre->idle_deadline;
    if (!idle && now < c->deadline)
        return false;
    tls_server_count(l->tls, TLS_CAUSE_TIMEOUT);
    atomic_fetch_add(&l->st[idle ? NET_ST_HS_IDLE_TIMEOUTS : NET_ST_HS_TIMEOUTS], 1);
    if (idle)
        log_notice("%s: TLS handshake failed: %s (nothing received in %u ms)", net_conn_peer(c),
                   tls_cause_name(TLS_CAUSE_TIMEOUT), l->hs_idle_ms);
    else
        log_notice("%s: TLS handshake failed: %s%s", net_conn_peer(c),
                   tls_cause_name(TLS_CAUSE_TIMEOUT),
                   c->phase == PH_QUEUED     ? " (waiting for a slot: handshake_queue_timeout)"
                   : c->phase == PH_GREETING ? " (the peer did not read the greeting)"
                                             : "");
    fail(c, idle ? "TLS handshake idle timeout" : "TLS handshake timeout");
    return true;
}

/* An open connection whose output stayed over its bound for the
 * slow-consumer timeout is closed (nats-server's rule). True if it was. */
static bool slow_consumer(struct net_conn *c, uint64_t now)
{
    if (c->phase != PH_OPEN || !c->slow_ms)
        return false;
    pthread_mutex_lock(&c->out_lock);
    uint64_t since = c->out_full_since;
    size_t queued = buf_len(&c->out);
    pthread_mutex_unlock(&c->out_lock);
    if (!since || now - since < c->slow_ms)
        return false;
    listener_note(c->l, NET_ST_SLOW_CONSUMERS, net_conn_peer(c),
                  "slow consumer: output over its bound (%zu bytes queued) for %u ms; closing",
                  queued, c->slow_ms);
    net_conn_close(c, "slow consumer");
    return true;
}

/* Whether sweep() must keep looking at c: a deadline before PH_OPEN, a
 * close or linger under way, or a slow-consumer clock running. A clock
 * started later by another thread schedules c, and service() watches it
 * again. */
static bool needs_watch(struct net_conn *c)
{
    if (c->phase != PH_OPEN || atomic_load(&c->closing))
        return true;
    if (!c->slow_ms)
        return false;
    pthread_mutex_lock(&c->out_lock);
    bool full = c->out_full_since != 0;
    pthread_mutex_unlock(&c->out_lock);
    return full;
}

/* Deadlines: closing connections, drains, PROXY headers, handshakes, slow
 * consumers. Only watched connections are looked at, except at shutdown. */
static void sweep(struct worker *w, bool all)
{
    uint64_t now = clock_mono_ms();
    if (all) {
        struct net_conn *c = w->conns;
        while (c) {
            struct net_conn *next = c->next;
            const char *expected = NULL;
            atomic_compare_exchange_strong(&c->why, &expected, "server shutting down");
            atomic_store(&c->closing, true);
            if (c->phase != PH_LINGER)
                flush(c);
            destroy(c);
            c = next;
        }
    } else {
        atomic_fetch_add_explicit(&net_sweeps, 1, memory_order_relaxed);
        uint64_t visits = 0;
        /* service() destroys only the connection it is given, and watch()
         * adds at the head: `next` stays valid. */
        struct net_conn *c = w->watched;
        while (c) {
            struct net_conn *next = c->wnext;
            visits++;
            if (atomic_load(&c->closing) || c->phase == PH_LINGER || timed_out(c, now) ||
                slow_consumer(c, now))
                service(c, now);
            else if (!needs_watch(c))
                unwatch(c);
            c = next;
        }
        atomic_fetch_add_explicit(&net_sweep_visits, visits, memory_order_relaxed);
    }
    if (w->index == 0)
        for (unsigned i = 0; i < w->s->nlisteners; i++) {
            gate_rebalance(&w->s->listeners[i], now);
            listener_report_held(&w->s->listeners[i]);
        }
}

static void handle_conn(struct net_conn *c, uint32_t events)
{
    switch (c->phase) {
    case PH_PROXY:
        proxy_ready(c);
        break;
    case PH_QUEUED:
        if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            fail(c, "peer closed while waiting for a TLS handshake slot");
        break;
    case PH_GREETING:
        if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            fail(c, "peer closed before reading the greeting");
        else if (events & EPOLLOUT)
            greeting_flush(c);
        break;
    case PH_LINGER:
        if (discard(c) != DRAIN_MORE)
            c->linger_done = true;
        break;
    default:
        if (input_full(c) && (events & (EPOLLHUP | EPOLLERR))) {
            fail(c, "peer closed");
            break;
        }
        if ((c->phase == PH_HANDSHAKE || c->phase == PH_UPGRADE) && (events & EPOLLOUT) &&
            !(events & EPOLLIN))
            read_ready(c); /* a handshake that wanted to write can go on */
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            read_ready(c);
        break;
    }
    /* A transport's own output (a pong) goes out without waiting for more. */
    if (atomic_load(&c->closing) || c->phase == PH_LINGER || (events & EPOLLOUT) ||
        atomic_load(&c->hs_go) || (c->ops->pending && c->ops->pending(c->tstate)))
        service(c, clock_mono_ms());
}

static void handle_event(struct worker *w, struct epoll_event *ev)
{
    enum src_kind kind = *(enum src_kind *)ev->data.ptr;
    if (kind == SRC_WAKE) {
        uint64_t v;
        ssize_t r = read(w->evfd, &v, sizeof(v));
        (void)r;
        return;
    }
    if (kind == SRC_LISTENER) {
        listener_accept(w, ev->data.ptr);
        return;
    }
    handle_conn(ev->data.ptr, ev->events);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[256];
    uint64_t last_sweep = clock_mono_ms();
    tl_worker = w;
    while (!atomic_load(&w->s->stopping)) {
        int timeout = listener_resume(w, clock_mono_ms(), SWEEP_MS);
        int n = epoll_wait(w->epfd, evs, 256, timeout);
        /* Each connection has at most one event per batch, and only its
         * own event destroys it, so no event here refers to a freed one. */
        for (int i = 0; i < n; i++)
            handle_event(w, &evs[i]);
        flush_lists(w);
        uint64_t now = clock_mono_ms();
        atomic_store_explicit(&w->last_loop_ms, now, memory_order_relaxed);
        if (now - last_sweep >= SWEEP_MS) {
            sweep(w, false);
            last_sweep = now;
        }
    }
    flush_lists(w);
    sweep(w, true);
    return NULL;
}

struct net_server *net_server_new(const struct net_config *cfg, const struct net_handler *h,
                                  void *ctx)
{
    struct net_server *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cfg = *cfg;
    if (s->cfg.workers == 0)
        s->cfg.workers = 1;
    s->h = h;
    s->ctx = ctx;
    s->internal.kind = SRC_LISTENER;
    s->internal.fd = -1;
    s->internal.index = NET_LISTENER_INTERNAL;
    return s;
}

/* see net.h */
int net_server_adopt(struct net_server *s, int fd, const char *name)
{
    if (!s->workers || !s->started)
        return -1;
    struct adopted *a = calloc(1, sizeof(*a));
    if (!a)
        return -1;
    a->fd = fd;
    snprintf(a->name, sizeof(a->name), "%s", name);
    atomic_fetch_add(&s->nconns, 1);
    struct worker *w = &s->workers[0];
    pthread_mutex_lock(&w->pending_lock);
    a->next = w->adopt;
    w->adopt = a;
    pthread_mutex_unlock(&w->pending_lock);
    wake(w);
    return 0;
}

bool net_conn_internal(const struct net_conn *c)
{
    return c->l == &c->w->s->internal;
}

static int worker_init(struct net_server *s, struct worker *w, unsigned i)
{
    w->kind = SRC_WAKE;
    w->s = s;
    w->index = i;
    w->last_loop_ms = clock_mono_ms(); /* a fresh worker counts as alive */
    pthread_mutex_init(&w->pending_lock, NULL);
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    w->rbuf = malloc(READ_CHUNK);
    if (w->epfd < 0 || w->evfd < 0 || !w->rbuf)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev) < 0) {
        log_error("net: worker %u: epoll_ctl(ADD) of its wake-up descriptor: %s", i,
                  strerror(errno));
        return -1;
    }
    for (unsigned k = 0; k < s->nlisteners; k++) {
        /* EPOLLEXCLUSIVE: one worker wakes per incoming connection, so
         * accepted sockets spread across workers without a thundering herd. */
        struct epoll_event lev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &s->listeners[k]};
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, s->listeners[k].fd, &lev) < 0) {
            log_error("net: worker %u: epoll_ctl(ADD) of listener %u: %s", i, k, strerror(errno));
            return -1;
        }
    }
    return 0;
}

int net_server_start(struct net_server *s)
{
    s->workers = calloc(s->cfg.workers, sizeof(*s->workers));
    if (!s->workers)
        return -1;
    for (unsigned i = 0; i < s->cfg.workers; i++)
        if (worker_init(s, &s->workers[i], i) < 0)
            return -1;
    listener_fd_budget(s);
    for (unsigned i = 0; i < s->cfg.workers; i++)
        if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0)
            return -1;
    s->started = true;
    return 0;
}

/* see net.h */
void net_server_stop_accepting(struct net_server *s)
{
    if (atomic_exchange(&s->accept_stopped, true))
        return;
    /* epoll_ctl is safe while the worker waits; ENOENT: paused, and
     * listener_resume no longer adds it back. */
    for (unsigned i = 0; s->workers && i < s->cfg.workers; i++)
        for (unsigned k = 0; k < s->nlisteners; k++)
            (void)epoll_ctl(s->workers[i].epfd, EPOLL_CTL_DEL, s->listeners[k].fd, NULL);
    /* On Linux shutdown() takes a listening socket out of LISTEN: its
     * backlog is reset and new connections are refused at once, and the
     * descriptor number cannot be reused under a worker still holding it. */
    for (unsigned k = 0; k < s->nlisteners; k++)
        (void)shutdown(s->listeners[k].fd, SHUT_RDWR);
}

void net_server_stop(struct net_server *s)
{
    atomic_store(&s->stopping, true);
    if (!s->workers)
        return;
    for (unsigned i = 0; i < s->cfg.workers; i++)
        if (s->workers[i].evfd > 0)
            wake(&s->workers[i]);
}

void net_server_join(struct net_server *s)
{
    if (!s->started)
        return;
    for (unsigned i = 0; i < s->cfg.workers; i++)
        pthread_join(s->workers[i].thread, NULL);
    s->started = false;
}

void net_server_free(struct net_server *s)
{
    if (!s)
        return;
    for (unsigned i = 0; s->workers && i < s->cfg.workers; i++) {
        struct worker *w = &s->workers[i];
        if (w->epfd > 0)
            close(w->epfd);
        if (w->evfd > 0)
            close(w->evfd);
        if (w->spare >= 0)
            close(w->spare);
        free(w->rbuf);
        free(w->dirty);
        free(w->pending);
        while (w->adopt) {
            struct adopted *a = w->adopt;
            w->adopt = a->next;
            close(a->fd);
            free(a);
        }
        pthread_mutex_destroy(&w->pending_lock);
    }
    for (unsigned i = 0; i < s->nlisteners; i++) {
        struct listener *l = &s->listeners[i];
        close(l->fd);
        listener_free(l);
        pthread_mutex_destroy(&l->gate_lock);
    }
    free(s->workers);
    free(s);
}

/* see net.h */
bool net_server_alive(const struct net_server *s, uint64_t max_age_ms, unsigned *stalled,
                      uint64_t *age_ms)
{
    if (!s->started)
        return false;
    uint64_t now = clock_mono_ms();
    for (unsigned i = 0; i < s->cfg.workers; i++) {
        uint64_t t = atomic_load_explicit(&s->workers[i].last_loop_ms, memory_order_relaxed);
        uint64_t age = now > t ? now - t : 0; /* a stamp taken after `now` is fresh */
        if (age > max_age_ms) {
            if (stalled)
                *stalled = i;
            if (age_ms)
                *age_ms = age;
            return false;
        }
    }
    return true;
}

uint32_t net_server_conn_count(const struct net_server *s)
{
    return atomic_load(&((struct net_server *)s)->nconns);
}
