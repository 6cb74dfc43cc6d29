/* Worker threads, each with an epoll loop that owns its connections;
 * accepting, reading, batched writing, cross-thread wakeups and closing.
 * Contracts in net.h. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "net/net.h"
#include "net/tcp.h"
#include "tls/tls.h"

#define MAX_LISTENERS  16
#define READ_CHUNK     65536
#define READS_PER_TURN 8    /* fairness: then let other connections run */
#define CLOSE_GRACE_MS 2000 /* how long a closing connection may drain */

enum src_kind { SRC_LISTENER, SRC_CONN, SRC_WAKE };

struct listener {
    enum src_kind kind; /* first: epoll data points here */
    int fd;
    uint16_t port;
    unsigned index;
    struct tls_server *tls;       /* NULL: plain TCP */
    _Atomic uint32_t handshaking; /* TLS handshakes in progress */
};

struct worker;

struct net_conn {
    enum src_kind kind;
    int fd;
    struct tcp_transport tcp;
    const struct transport_ops *ops;
    void *tstate;
    struct worker *w;
    void *user;
    unsigned listener;
    char peer[64];
    struct buf in;
    pthread_mutex_t out_lock;
    struct buf out;    /* guarded by out_lock */
    bool flush_queued; /* guarded by out_lock: on a flush list already */
    _Atomic bool closing;
    const char *_Atomic why;
    uint64_t close_deadline;     /* owner only */
    uint64_t handshake_deadline; /* owner only: 0 once the handshake is done */
    struct tls_server *tls;
    struct listener *l;
    bool hs_wants_write;          /* owner only: the handshake waits to write */
    bool want_out;                /* owner only: EPOLLOUT registered */
    struct net_conn *prev, *next; /* owner's list of connections */
};

struct worker {
    enum src_kind kind;
    struct net_server *s;
    unsigned index;
    pthread_t thread;
    int epfd;
    int evfd;
    struct net_conn *conns;
    /* Connections with output queued by this worker itself (owner only). */
    struct net_conn **dirty;
    size_t ndirty, capdirty;
    /* Connections other threads queued output for or asked to close. */
    pthread_mutex_t pending_lock;
    struct net_conn **pending;
    size_t npending, cappending;
    /* Sockets handed over by net_server_adopt(), guarded by pending_lock. */
    struct adopted *adopt;
};

/* An in-process client's socket waiting for its worker to take it. */
struct adopted {
    struct adopted *next;
    int fd;
    char name[64];
};

struct net_server {
    struct net_config cfg;
    const struct net_handler *h;
    void *ctx;
    struct listener listeners[MAX_LISTENERS];
    unsigned nlisteners;
    struct listener internal; /* the pseudo-listener of adopted sockets */
    struct worker *workers;
    _Atomic bool stopping;
    _Atomic uint32_t nconns;
    _Atomic uint64_t last_limit_log;
    bool started;
};

static __thread struct worker *tl_worker;

static int push(struct net_conn ***arr, size_t *n, size_t *cap, struct net_conn *c)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        struct net_conn **a = realloc(*arr, ncap * sizeof(*a));
        if (!a)
            return -1;
        *arr = a;
        *cap = ncap;
    }
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

/* see net.h */
int net_conn_send(struct net_conn *c, const void *data, size_t len)
{
    pthread_mutex_lock(&c->out_lock);
    if (c->out.limit && buf_len(&c->out) + len > c->out.limit) {
        pthread_mutex_unlock(&c->out_lock);
        return -1;
    }
    if (!ward_ok(buf_append(&c->out, data, len))) {
        pthread_mutex_unlock(&c->out_lock);
        return -1;
    }
    bool need = !c->flush_queued;
    c->flush_queued = true;
    pthread_mutex_unlock(&c->out_lock);
    if (need)
        schedule(c);
    return 0;
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
    return c->tls ? tls_transport_identity(c->tstate) : NULL;
}

struct tls_server *net_conn_tls_server(const struct net_conn *c)
{
    return c->tls;
}

bool net_conn_tls_revoked(const struct net_conn *c)
{
    return c->tls && tls_transport_revoked(c->tstate, c->tls);
}

const char *net_conn_peer(const struct net_conn *c)
{
    return c->peer;
}

unsigned net_conn_listener(const struct net_conn *c)
{
    return c->listener;
}

unsigned net_conn_worker(const struct net_conn *c)
{
    return c->w->index;
}

static void set_interest(struct net_conn *c, bool out)
{
    if (c->want_out == out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = out;
}

/* Owner only: frees c after telling the layer above. Removes c from the
 * pending list so no stale pointer survives it. */
static void destroy(struct net_conn *c)
{
    struct worker *w = c->w;
    const char *why = atomic_load(&c->why);
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->handshake_deadline)
        atomic_fetch_sub(&c->l->handshaking, 1);
    w->s->h->on_close(c->user, why ? why : "closed");
    pthread_mutex_lock(&w->pending_lock);
    for (size_t i = 0; i < w->npending; i++)
        if (w->pending[i] == c)
            w->pending[i] = NULL;
    pthread_mutex_unlock(&w->pending_lock);
    for (size_t i = 0; i < w->ndirty; i++)
        if (w->dirty[i] == c)
            w->dirty[i] = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->ops->destroy(c->tstate);
    close(c->fd);
    buf_free(&c->in);
    buf_free(&c->out);
    pthread_mutex_destroy(&c->out_lock);
    atomic_fetch_sub(&w->s->nconns, 1);
    free(c);
}

static void fail(struct net_conn *c, const char *why)
{
    const char *expected = NULL;
    atomic_compare_exchange_strong(&c->why, &expected, why);
    atomic_store(&c->closing, true);
    /* Nothing more can be written: drop what is queued. */
    pthread_mutex_lock(&c->out_lock);
    buf_reset(&c->out);
    pthread_mutex_unlock(&c->out_lock);
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
    empty = buf_len(&c->out) == 0;
    pthread_mutex_unlock(&c->out_lock);
    /* A handshake waiting to write keeps its EPOLLOUT interest. */
    set_interest(c, !empty || (c->handshake_deadline && c->hs_wants_write));
    return empty;
}

/* Owner only: flushes, and finishes a close once drained or out of time. */
static void service(struct net_conn *c, uint64_t now)
{
    /* Read `closing` before flushing: whatever was queued before the close
     * was asked for (a DISCONNECT with its reason) is then written by this
     * flush. Read after, a close racing the flush could destroy the
     * connection with that last packet still queued. */
    bool closing = atomic_load(&c->closing);
    bool empty = flush(c);
    if (!closing)
        return;
    if (!c->close_deadline)
        c->close_deadline = now + CLOSE_GRACE_MS;
    if (empty || now >= c->close_deadline)
        destroy(c);
}

/* Drives a TLS handshake. Returns true once done (then reading goes on). */
static bool handshake(struct net_conn *c)
{
    if (!c->handshake_deadline)
        return true;
    ssize_t r = c->ops->handshake(c->tstate);
    if (r == 1) {
        c->handshake_deadline = 0;
        atomic_fetch_sub(&c->l->handshaking, 1);
        log_debug("%s: %s", c->peer, tls_transport_describe(c->tstate));
        set_interest(c, false);
        return true;
    }
    if (r == TRANSPORT_WANT_READ || r == TRANSPORT_WANT_WRITE) {
        c->hs_wants_write = r == TRANSPORT_WANT_WRITE;
        set_interest(c, c->hs_wants_write);
        return false;
    }
    /* Every failed handshake is logged with the peer and the cause. */
    log_notice("%s: %s", c->peer, c->ops->cause(c->tstate));
    fail(c, "TLS handshake failed");
    return false;
}

static void read_ready(struct net_conn *c)
{
    const struct net_handler *h = c->w->s->h;
    if (!handshake(c))
        return;
    for (int i = 0; i < READS_PER_TURN && !atomic_load(&c->closing); i++) {
        size_t want = READ_CHUNK;
        if (c->in.limit && c->in.limit - buf_len(&c->in) < want)
            want = c->in.limit - buf_len(&c->in);
        if (want == 0 || !ward_ok(buf_reserve(&c->in, want))) {
            fail(c, "input limit");
            return;
        }
        ssize_t n = c->ops->read(c->tstate, buf_tail(&c->in), want);
        if (n == TRANSPORT_EOF) {
            fail(c, "peer closed");
            return;
        }
        if (n == TRANSPORT_ERROR) {
            fail(c, c->ops->cause(c->tstate));
            return;
        }
        if (n < 0)
            return; /* nothing more for now */
        buf_commit(&c->in, (size_t)n);
        size_t used = h->on_data(c->user, buf_head(&c->in), buf_len(&c->in));
        buf_consume(&c->in, used);
        if ((size_t)n < want)
            return;
    }
}

static void limit_log(struct net_server *s)
{
    uint64_t now = clock_mono_ms(), last = atomic_load(&s->last_limit_log);
    if (now - last >= 1000 && atomic_compare_exchange_strong(&s->last_limit_log, &last, now))
        log_warn("net: max_connections (%u) reached; refusing new connections",
                 s->cfg.max_connections);
}

static void conn_open(struct worker *w, struct listener *l, int fd, const char *name)
{
    struct net_server *s = w->s;
    struct net_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->kind = SRC_CONN;
    c->fd = fd;
    c->tcp.fd = fd;
    c->ops = &tcp_transport_ops;
    c->tstate = &c->tcp;
    c->w = w;
    c->listener = l->index;
    if (name)
        snprintf(c->peer, sizeof(c->peer), "%s", name);
    else
        tcp_peer_name(fd, c->peer, sizeof(c->peer));
    c->l = l;
    if (l->tls) {
        /* A cap on handshakes in progress: a flood of half-open TLS
         * connections cannot take every worker's time. */
        if (atomic_fetch_add(&l->handshaking, 1) >= tls_server_config(l->tls)->max_handshakes) {
            atomic_fetch_sub(&l->handshaking, 1);
            tls_server_count(l->tls, TLS_CAUSE_BUSY);
            log_warn("%s: TLS handshake refused: %s", c->peer, tls_cause_name(TLS_CAUSE_BUSY));
            close(fd);
            free(c);
            atomic_fetch_sub(&s->nconns, 1);
            return;
        }
        void *t = tls_transport_new(l->tls, fd, c->peer);
        if (!t) {
            atomic_fetch_sub(&l->handshaking, 1);
            log_error("net: out of memory for a TLS connection from %s", c->peer);
            close(fd);
            free(c);
            atomic_fetch_sub(&s->nconns, 1);
            return;
        }
        c->tls = l->tls;
        c->ops = &tls_transport_ops;
        c->tstate = t;
        c->handshake_deadline = clock_mono_ms() + tls_server_config(l->tls)->handshake_timeout_ms;
    }
    buf_init(&c->in, s->cfg.max_input);
    buf_init(&c->out, s->cfg.max_output);
    pthread_mutex_init(&c->out_lock, NULL);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev);
    c->user = s->h->on_open(s->ctx, c);
    if (!c->user) {
        c->user = NULL;
        fail(c, "refused");
    }
}

static void accept_ready(struct worker *w, struct listener *l)
{
    struct net_server *s = w->s;
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                log_warn("net: accept on port %u: %s", l->port, strerror(errno));
            return;
        }
        uint32_t n = atomic_fetch_add(&s->nconns, 1);
        if (s->cfg.max_connections && n >= s->cfg.max_connections) {
            atomic_fetch_sub(&s->nconns, 1);
            limit_log(s);
            close(fd);
            continue;
        }
        conn_open(w, l, fd, NULL);
    }
}

/* Flushes everything queued during this turn, by us or by other threads. */
static void flush_lists(struct worker *w)
{
    uint64_t now = clock_mono_ms();
    struct net_conn **list = NULL;
    size_t n = 0, cap = 0;
    pthread_mutex_lock(&w->pending_lock);
    list = w->pending;
    n = w->npending;
    cap = w->cappending;
    w->pending = NULL;
    w->npending = w->cappending = 0;
    struct adopted *adopt = w->adopt;
    w->adopt = NULL;
    pthread_mutex_unlock(&w->pending_lock);
    while (adopt) {
        struct adopted *next = adopt->next;
        conn_open(w, &w->s->internal, adopt->fd, adopt->name);
        free(adopt);
        adopt = next;
    }
    for (size_t i = 0; i < n; i++)
        if (list[i])
            service(list[i], now);
    free(list);
    (void)cap;
    /* service() may add to dirty (on_close handlers send); loop by index. */
    for (size_t i = 0; i < w->ndirty; i++)
        if (w->dirty[i])
            service(w->dirty[i], now);
    w->ndirty = 0;
}

/* Closing connections still draining are revisited until their deadline. */
static void sweep_closing(struct worker *w, bool all)
{
    uint64_t now = clock_mono_ms();
    struct net_conn *c = w->conns;
    while (c) {
        struct net_conn *next = c->next;
        if (all) {
            const char *expected = NULL;
            atomic_compare_exchange_strong(&c->why, &expected, "server shutting down");
            atomic_store(&c->closing, true);
            flush(c);
            destroy(c);
        } else if (atomic_load(&c->closing)) {
            service(c, now);
        } else if (c->handshake_deadline && now >= c->handshake_deadline) {
            log_notice("%s: TLS handshake failed: %s", c->peer, tls_cause_name(TLS_CAUSE_TIMEOUT));
            fail(c, "TLS handshake timeout");
            service(c, now);
        }
        c = next;
    }
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
        accept_ready(w, ev->data.ptr);
        return;
    }
    struct net_conn *c = ev->data.ptr;
    if (c->handshake_deadline && (ev->events & EPOLLOUT) && !(ev->events & EPOLLIN))
        read_ready(c); /* a handshake that wanted to write can go on */
    if (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        read_ready(c);
    if (atomic_load(&c->closing) || (ev->events & EPOLLOUT))
        service(c, clock_mono_ms());
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[256];
    uint64_t last_sweep = clock_mono_ms();
    tl_worker = w;
    while (!atomic_load(&w->s->stopping)) {
        int n = epoll_wait(w->epfd, evs, 256, 250);
        /* Each connection has at most one event per batch, and only its
         * own event destroys it, so no event here refers to a freed one. */
        for (int i = 0; i < n; i++)
            handle_event(w, &evs[i]);
        flush_lists(w);
        uint64_t now = clock_mono_ms();
        if (now - last_sweep >= 250) {
            sweep_closing(w, false);
            last_sweep = now;
        }
    }
    flush_lists(w);
    sweep_closing(w, true);
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

static int listen_any(struct net_server *s, const char *url, struct tls_server *tls, char *err,
                      size_t errlen);

int net_server_listen(struct net_server *s, const char *url, char *err, size_t errlen)
{
    return listen_any(s, url, NULL, err, errlen);
}

int net_server_listen_tls(struct net_server *s, const char *url, struct tls_server *tls, char *err,
                          size_t errlen)
{
    return listen_any(s, url, tls, err, errlen);
}

static bool scheme_is(const char *scheme, const char *const *names)
{
    for (; *names; names++)
        if (strcmp(scheme, *names) == 0)
            return true;
    return false;
}

static int listen_any(struct net_server *s, const char *url, struct tls_server *tls, char *err,
                      size_t errlen)
{
    static const char *const plain[] = {"tcp", "mqtt-tcp", "mqtt", NULL};
    static const char *const secure[] = {"tls", "ssl", "mqtts", "mtls", "tls+mqtt-tcp", NULL};
    char scheme[32], host[256];
    uint16_t port;
    if (s->nlisteners >= MAX_LISTENERS) {
        snprintf(err, errlen, "%s: at most %d listeners", url, MAX_LISTENERS);
        return -1;
    }
    if (tcp_parse_url(url, scheme, sizeof(scheme), host, sizeof(host), &port, err, errlen) < 0)
        return -1;
    if (!scheme_is(scheme, tls ? secure : plain)) {
        snprintf(err, errlen, "%s: unsupported scheme '%s' (%s)", url, scheme,
                 tls ? "tls://, mtls:// or ssl://" : "tcp://, or tls:// with certificates");
        return -1;
    }
    struct listener *l = &s->listeners[s->nlisteners];
    l->fd = tcp_listen(host, port, &l->port, err, errlen);
    if (l->fd < 0)
        return -1;
    l->kind = SRC_LISTENER;
    l->tls = tls;
    l->index = s->nlisteners++;
    log_notice("listening on %s://%s:%u", tls ? scheme : "tcp", *host ? host : "*", l->port);
    return 0;
}

uint16_t net_server_port(const struct net_server *s, unsigned i)
{
    return i < s->nlisteners ? s->listeners[i].port : 0;
}

static int worker_init(struct net_server *s, struct worker *w, unsigned i)
{
    w->kind = SRC_WAKE;
    w->s = s;
    w->index = i;
    pthread_mutex_init(&w->pending_lock, NULL);
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->epfd < 0 || w->evfd < 0)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev);
    for (unsigned k = 0; k < s->nlisteners; k++) {
        /* EPOLLEXCLUSIVE: one worker wakes per incoming connection, so
         * accepted sockets spread across workers without a thundering herd. */
        struct epoll_event lev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &s->listeners[k]};
        epoll_ctl(w->epfd, EPOLL_CTL_ADD, s->listeners[k].fd, &lev);
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
    for (unsigned i = 0; i < s->cfg.workers; i++)
        if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0)
            return -1;
    s->started = true;
    return 0;
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
    for (unsigned i = 0; i < s->nlisteners; i++)
        close(s->listeners[i].fd);
    free(s->workers);
    free(s);
}

uint32_t net_server_conn_count(const struct net_server *s)
{
    return atomic_load(&((struct net_server *)s)->nconns);
}
