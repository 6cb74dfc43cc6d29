/* see bench.h */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "bench_stats.h"
#include "mqtt/mqtt.h"
#include "net/tcp.h"
#include "tls/tls.h"

#define HDR_LEN       20           /* publisher id (4), sequence (8), send time (8) */
#define OUT_HIGH      (256u << 10) /* stop producing above this much unsent */
#define PRODUCE_BATCH 64           /* messages one publisher queues per pass */
/* Buffers start this big: 64 KiB for the streams, 4 KiB for the idle
 * connections (18,000 of them must not cost the generator 2 GiB). */
#define BUF_STREAM   65536u
#define BUF_IDLE     4096u
#define PING_TICK_NS 50000000ull /* pings due are sent at most this late (one pass per tick) */

enum phase { SETUP, RUN, DRAIN, STOP };
enum role { PUB, SUB, CONN, IDLE };
enum state { TCP, TLS, WSUP, CONNACK, SUBACK, READY, CLOSED };

struct bc {
    int fd;
    struct tcp_transport tcp;
    const struct transport_ops *ops;
    void *t;
    enum role role;
    enum state state;
    unsigned idx;
    struct worker *w;
    struct mqtt_codec codec;
    uint8_t *in, *out;
    size_t inlen, incap, outlen, outpos, outcap;
    char topic[48];
    uint64_t seq, next_ns;
    unsigned inflight;
    uint16_t next_pid;
    bool done;               /* PUB: sent its count */
    struct bench_seen acked; /* PUB: the messages the broker acknowledged */
    struct bench_seen *seen; /* SUB: per publisher */
    struct bench_acks held;  /* SUB: PUBACKs held back (--ack-delay) */
    /* --ws: the frame being written (masked out of out[]) and the reading
     * side's place in the broker's frames */
    uint8_t *wout;
    size_t wlen, wpos;
    uint32_t mask;
    struct bench_ws_in wsin;
    /* idle, storm */
    uint64_t connect_ns;   /* when this attempt began */
    uint64_t next_ping_ns; /* --keepalive: the next PINGREQ */
    uint64_t ping_ns;      /* ... the one waiting for its PINGRESP (0: none) */
    unsigned attempts;     /* storm: reconnect attempts */
    bool missed;           /* a ping of this connection went unanswered */
};

struct bench {
    const struct bench_opts *o;
    struct addrinfo *addr;
    struct addrinfo *sub_addr; /* --sub-port: a copy of addr with that port */
    struct sockaddr_storage sub_ss;
    struct addrinfo sub_ai;
    _Atomic int phase;
    atomic_uint ready, failed;
    atomic_uint_fast64_t sent, received, duplicates, out_of_order, connects, conn_errors;
    atomic_uint_fast64_t pubs_done, acked;
    atomic_uint quiet_workers; /* workers that saw the run end (produce no more) */
    atomic_uint_fast64_t pings, pongs, pings_late, pings_missing, refused;
    /* storm: set when the connections are to be dropped; workers that have
     * dropped theirs (all drop before any reconnects) */
    atomic_int storm;
    atomic_uint dropped_workers;
    uint64_t storm_ns;     /* when storm was set */
    uint64_t connected_ns; /* the last CONNACK before the storm */
    unsigned nworkers;
    uint64_t run_start_ns;
    char error[256];
    char last_refusal[160]; /* idle, storm: why the last attempt failed */
    pthread_mutex_t err_lock;
};

struct worker {
    struct bench *b;
    int ep;
    pthread_t th;
    struct bc **conns;
    size_t n;
    struct bench_hist hist;
    uint64_t last_rx_ns;
    uint64_t wake_ns; /* the next timer: a held PUBACK, a paced message */
    atomic_uint_fast64_t last_connack_ns;
    bool stormed;
    /* --connect-rate: connections opened so far, and when the next is */
    size_t opened;
    uint64_t open_next_ns, open_period_ns;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void set_error(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(struct bench *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&b->err_lock);
    if (!b->error[0])
        vsnprintf(b->error, sizeof(b->error), fmt, ap);
    pthread_mutex_unlock(&b->err_lock);
    va_end(ap);
}

/* Whether set_error() has run; under err_lock, as workers set it. */
static bool has_error(struct bench *b)
{
    pthread_mutex_lock(&b->err_lock);
    bool set = b->error[0] != '\0';
    pthread_mutex_unlock(&b->err_lock);
    return set;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* ---- WebSocket (--ws) ---- */

/* see bench.h */
size_t bench_ws_request(char *out, size_t cap, const char *host, const char *path)
{
    /* The key only has to be 16 bytes in base64: "ward bench key!!". */
    int n = snprintf(out, cap,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: d2FyZCBiZW5jaCBrZXkhIQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
                     path, host);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* see bench.h */
int bench_ws_response(const uint8_t *p, size_t n, size_t *head)
{
    static const char status[] = "HTTP/1.1 101 ";
    size_t k = strlen(status);
    if (memcmp(p, status, n < k ? n : k) != 0)
        return -1;
    for (size_t i = 3; i < n && i < 4096; i++) {
        if (memcmp(p + i - 3, "\r\n\r\n", 4) == 0) {
            *head = i + 1;
            return i + 1 > k ? 1 : -1;
        }
    }
    return n >= 4096 ? -1 : 0;
}

/* see bench.h */
size_t bench_ws_frame(uint8_t *out, const uint8_t *payload, size_t n, uint32_t key)
{
    size_t h = 2;
    out[0] = 0x82; /* FIN, binary */
    if (n < 126) {
        out[1] = (uint8_t)(0x80 | n);
    } else if (n < 65536) {
        out[1] = 0x80 | 126;
        out[2] = (uint8_t)(n >> 8);
        out[3] = (uint8_t)n;
        h = 4;
    } else {
        out[1] = 0x80 | 127;
        put64(out + 2, n);
        h = 10;
    }
    uint8_t k[8];
    for (int i = 0; i < 8; i++)
        k[i] = (uint8_t)(key >> (8 * (3 - i % 4)));
    memcpy(out + h, k, 4);
    h += 4;
    /* Eight bytes at a time: the mask repeats every four, so a doubled key
     * lines up with every aligned group of eight. */
    uint64_t k64;
    memcpy(&k64, k, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, payload + i, 8);
        v ^= k64;
        memcpy(out + h + i, &v, 8);
    }
    for (; i < n; i++)
        out[h + i] = payload[i] ^ k[i % 4];
    return h + n;
}

/* The header length the bytes so far call for (2 until the length byte). */
static size_t ws_head_need(const struct bench_ws_in *s)
{
    if (s->hlen < 2)
        return 2;
    uint8_t len = s->hdr[1] & 0x7f;
    return len == 127 ? 10 : len == 126 ? 4 : 2;
}

/* see bench.h */
long bench_ws_deframe(struct bench_ws_in *s, uint8_t *p, size_t n)
{
    size_t r = 0, w = 0;
    while (r < n) {
        if (s->rem) {
            size_t take = s->rem < n - r ? (size_t)s->rem : n - r;
            if (!s->skip && w != r)
                memmove(p + w, p + r, take);
            w += s->skip ? 0 : take;
            r += take;
            s->rem -= take;
            continue;
        }
        while (r < n && s->hlen < ws_head_need(s))
            s->hdr[s->hlen++] = p[r++];
        if (s->hlen < ws_head_need(s))
            break;
        uint8_t op = s->hdr[0] & 0x0f;
        if (op == 8 || (s->hdr[0] & 0x70) || (s->hdr[1] & 0x80))
            return -1; /* a close, or nothing a server may send */
        uint64_t len = s->hdr[1] & 0x7f;
        if (len == 126)
            len = (uint64_t)s->hdr[2] << 8 | s->hdr[3];
        else if (len == 127)
            len = get64(s->hdr + 2);
        s->rem = len;
        s->skip = op >= 8; /* ping, pong: never asked for, dropped */
        s->hlen = 0;
    }
    return (long)w;
}

/* Frames the queued packets (at most BENCH_WS_FRAME bytes of them). */
static int ws_frame_out(struct bc *c)
{
    size_t n = c->outlen - c->outpos;
    if (n > BENCH_WS_FRAME)
        n = BENCH_WS_FRAME;
    if (!c->wout && !(c->wout = malloc(BENCH_WS_FRAME + BENCH_WS_HEAD)))
        return -1;
    c->mask = c->mask * 1103515245u + 12345u; /* masks need not be strong here */
    c->wlen = bench_ws_frame(c->wout, c->out + c->outpos, n, c->mask);
    c->wpos = 0;
    c->outpos += n;
    return 0;
}

/* ---- output ---- */

/* Room for need more bytes in out. */
static int reserve_out(struct bc *c, size_t need)
{
    if (c->outlen + need > c->outcap) {
        if (c->outpos) { /* compact first */
            memmove(c->out, c->out + c->outpos, c->outlen - c->outpos);
            c->outlen -= c->outpos;
            c->outpos = 0;
        }
        if (c->outlen + need > c->outcap) {
            size_t cap = c->outcap ? c->outcap : c->role == IDLE ? BUF_IDLE : BUF_STREAM;
            while (cap < c->outlen + need)
                cap *= 2;
            uint8_t *n = realloc(c->out, cap);
            if (!n)
                return -1;
            c->out = n;
            c->outcap = cap;
        }
    }
    return 0;
}

static int queue_packet(struct bc *c, const struct mqtt_packet *p)
{
    if (reserve_out(c, mqtt_encoded_size(&c->codec, p)) < 0)
        return -1;
    size_t n = mqtt_encode(&c->codec, p, c->out + c->outlen, c->outcap - c->outlen);
    if (!n)
        return -1;
    c->outlen += n;
    return 0;
}

static void watch(struct bc *c, bool want_write)
{
    struct epoll_event ev = {.events = EPOLLIN | (want_write ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* --ws: writes the frame in progress, then frames what is queued. */
static int ws_flush(struct bc *c)
{
    for (;;) {
        if (c->wpos == c->wlen) {
            if (c->outpos == c->outlen) {
                c->outpos = c->outlen = 0;
                return 0;
            }
            if (ws_frame_out(c) < 0)
                return -1;
        }
        ssize_t n = c->ops->write(c->t, c->wout + c->wpos, c->wlen - c->wpos);
        if (n > 0) {
            c->wpos += (size_t)n;
            continue;
        }
        if (n == TRANSPORT_WANT_WRITE || n == TRANSPORT_WANT_READ) {
            watch(c, true);
            return 0;
        }
        return -1;
    }
}

/* Writes what is queued. Returns -1 if the connection failed. */
static int flush(struct bc *c)
{
    if (c->w->b->o->ws_path && c->state != WSUP)
        return ws_flush(c);
    while (c->outpos < c->outlen) {
        ssize_t n = c->ops->write(c->t, c->out + c->outpos, c->outlen - c->outpos);
        if (n > 0) {
            c->outpos += (size_t)n;
            continue;
        }
        if (n == TRANSPORT_WANT_WRITE || n == TRANSPORT_WANT_READ) {
            watch(c, true);
            return 0;
        }
        return -1;
    }
    c->outpos = c->outlen = 0;
    return 0;
}

/* ---- connections ---- */

static int open_socket(struct bc *c)
{
    struct addrinfo *a = c->role == SUB && c->w->b->sub_addr ? c->w->b->sub_addr : c->w->b->addr;
    const struct bench_opts *o = c->w->b->o;
    c->fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (o->src_count) { /* resolve() kept IPv4 addresses only */
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(o->src_first + (o->idx_base + c->idx) % o->src_count);
        /* the port is chosen at connect(), for this source and destination
         * pair, not at bind() among all of the address's ports */
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
            close(c->fd);
            c->fd = -1;
            return -1;
        }
    }
    c->connect_ns = now_ns();
    if (connect(c->fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    c->state = TCP;
    c->tcp = (struct tcp_transport){.fd = c->fd};
    c->ops = &tcp_transport_ops;
    c->t = &c->tcp;
    c->inlen = c->outlen = c->outpos = 0;
    c->wlen = c->wpos = 0;
    c->wsin = (struct bench_ws_in){0};
    c->mask = c->idx * 2654435761u + (uint32_t)getpid();
    c->codec = (struct mqtt_codec){.version = c->w->b->o->version, .is_server = false};
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    return epoll_ctl(c->w->ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void send_connect(struct bc *c)
{
    char id[64];
    static const char *const prefix[] = {"bench-pub-", "bench-sub-", "bench-conn-", "bench-idle-"};
    snprintf(id, sizeof(id), "%s%u-%d", prefix[c->role], c->idx, (int)getpid());
    struct mqtt_packet p = {.type = MQTT_CONNECT};
    p.u.connect.protocol_name = (struct mqtt_str){(const uint8_t *)"MQTT", 4};
    p.u.connect.version = c->codec.version;
    /* --persistent: the broker keeps the session (and, if it persists,
     * stores every QoS 1 message queued or in flight for it). */
    bool persistent = c->w->b->o->persistent && (c->role == PUB || c->role == SUB);
    p.u.connect.clean_start = !persistent;
    unsigned ka = c->w->b->o->keepalive_s;
    p.u.connect.keep_alive = (uint16_t)(ka ? ka : 120);
    p.u.connect.client_id = (struct mqtt_str){(const uint8_t *)id, strlen(id)};
    if (c->codec.version == MQTT_V5) { /* let the window be ours, not a default */
        p.u.connect.props.present = MQTT_HAS(MQTT_PROP_RECEIVE_MAX);
        p.u.connect.props.receive_max = 65535;
        if (persistent) {
            p.u.connect.props.present |= MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
            p.u.connect.props.session_expiry = BENCH_SESSION_EXPIRY_S;
        }
    }
    queue_packet(c, &p);
    c->state = CONNACK;
}

static void send_subscribe(struct bc *c)
{
    struct mqtt_subscription s = {{(const uint8_t *)c->topic, strlen(c->topic)}, c->w->b->o->qos};
    struct mqtt_packet p = {.type = MQTT_SUBSCRIBE, .flags = 2};
    p.u.subscribe.packet_id = 1;
    p.u.subscribe.count = 1;
    p.u.subscribe.subs = &s;
    queue_packet(c, &p);
    c->state = SUBACK;
}

static void conn_close(struct bc *c)
{
    if (c->t && c->t != &c->tcp)
        c->ops->destroy(c->t);
    c->t = NULL;
    if (c->fd >= 0) {
        epoll_ctl(c->w->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = CLOSED;
}

/* The transport is up: the WebSocket upgrade first (--ws), else CONNECT. */
static int start_session(struct bc *c)
{
    const struct bench_opts *o = c->w->b->o;
    if (!o->ws_path) {
        send_connect(c);
        return 0;
    }
    char req[1024];
    size_t n = bench_ws_request(req, sizeof(req), o->host, o->ws_path);
    if (!n || reserve_out(c, n) < 0)
        return -1;
    memcpy(c->out + c->outlen, req, n);
    c->outlen += n;
    c->state = WSUP;
    return 0;
}

/* --ws: the broker's answer to the upgrade, then the CONNECT. Returns how
 * many bytes of in[] the answer took (0: not complete), or -1. */
static long ws_upgraded(struct bc *c)
{
    size_t head;
    int r = bench_ws_response(c->in, c->inlen, &head);
    if (r < 0) {
        const uint8_t *eol = memchr(c->in, '\r', c->inlen);
        size_t len = eol ? (size_t)(eol - c->in) : c->inlen;
        set_error(c->w->b, "the broker refused the WebSocket upgrade: %.*s",
                  (int)(len > 80 ? 80 : len), (const char *)c->in);
        return -1;
    }
    if (r == 0)
        return 0;
    send_connect(c);
    return (long)head;
}

/* A connection that went wrong outside an attempt: the run fails. */
static void conn_lost(struct bc *c, const char *what)
{
    struct bench *b = c->w->b;
    if (atomic_load(&b->phase) < STOP && !has_error(b))
        set_error(b, "%s", what);
    atomic_fetch_add(&b->failed, 1);
    conn_close(c);
}

/* idle, storm: the broker refused or dropped an attempt to connect (a
 * broker may shed handshakes under load). It is counted (connect_errors
 * before a storm, refused in it) and tried again at once, as a client
 * would, at most BENCH_STORM_ATTEMPTS times per client; the last cause
 * is kept. Returns false for the other modes (the caller handles it). */
static bool retry_connect(struct bc *c, const char *cause)
{
    struct bench *b = c->w->b;
    if (c->role != IDLE)
        return false;
    atomic_fetch_add(atomic_load(&b->storm) ? &b->refused : &b->conn_errors, 1);
    if (cause) {
        pthread_mutex_lock(&b->err_lock);
        snprintf(b->last_refusal, sizeof(b->last_refusal), "%s", cause);
        pthread_mutex_unlock(&b->err_lock);
    }
    conn_close(c);
    if (++c->attempts >= BENCH_STORM_ATTEMPTS) {
        set_error(b, "a client was refused %u times (%s)", c->attempts,
                  cause ? cause : "closed before its CONNACK");
        atomic_fetch_add(&b->failed, 1);
    } else if (open_socket(c) < 0) {
        set_error(b, "cannot open a socket: %s", strerror(errno));
        atomic_fetch_add(&b->failed, 1);
    }
    return true;
}

/* storm: the connection goes as in a network blip: no DISCONNECT, no TLS
 * close_notify on the wire, a reset (linger 0). The TLS transport still
 * ends properly here, so it keeps its session for --resume: its socket is
 * swapped for /dev/null first, and what it writes on the way out goes
 * there. */
static void blip(struct bc *c)
{
    struct bench *b = c->w->b;
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    if (c->ping_ns) { /* never answered, never will be: not counted */
        atomic_fetch_sub(&b->pings, 1);
        c->ping_ns = 0;
    }
    if (c->t && c->t != &c->tcp) {
        epoll_ctl(c->w->ep, EPOLL_CTL_DEL, c->fd, NULL);
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, c->fd); /* closes the socket: the reset goes now */
            close(null);
        }
    }
    conn_close(c);
}

/* storm, in each worker: its connections dropped; once every worker has
 * dropped its own, all reconnected at once. */
static void storm_worker(struct worker *w)
{
    struct bench *b = w->b;
    w->stormed = true;
    for (size_t i = 0; i < w->n; i++)
        if (w->conns[i]->fd >= 0)
            blip(w->conns[i]);
    atomic_fetch_add(&b->dropped_workers, 1);
    for (int i = 0; i < 50000 && atomic_load(&b->dropped_workers) < b->nworkers; i++)
        usleep(100); /* 5 s at most */
    for (size_t i = 0; i < w->n; i++) {
        struct bc *c = w->conns[i];
        c->attempts = 0;
        if (open_socket(c) < 0) {
            set_error(b, "cannot open a socket: %s", strerror(errno));
            atomic_fetch_add(&b->failed, 1);
        }
    }
}

/* conn mode: one connect/CONNACK/DISCONNECT cycle done; start the next. */
static void conn_cycle(struct bc *c)
{
    struct bench *b = c->w->b;
    struct mqtt_packet p = {.type = MQTT_DISCONNECT};
    queue_packet(c, &p);
    flush(c);
    conn_close(c);
    atomic_fetch_add(&b->connects, 1);
    if (atomic_load(&b->phase) == RUN && open_socket(c) < 0)
        atomic_fetch_add(&b->conn_errors, 1);
}

/* ---- receiving ---- */

static void on_message(struct bc *c, const struct mqtt_publish *pub)
{
    struct bench *b = c->w->b;
    uint64_t t = now_ns();
    c->w->last_rx_ns = t;
    if (pub->qos == 1) {
        /* A consumer with a round trip: hold the PUBACK, keep reading. */
        uint64_t delay = b->o->ack_delay_ns;
        if (delay && bench_acks_push(&c->held, t + delay, pub->packet_id) == 0) {
            if (t + delay < c->w->wake_ns)
                c->w->wake_ns = t + delay;
        } else {
            struct mqtt_packet a = {.type = MQTT_PUBACK};
            a.u.ack.packet_id = pub->packet_id;
            queue_packet(c, &a);
        }
    }
    if (pub->payload.len < HDR_LEN)
        return;
    const uint8_t *p = pub->payload.p;
    uint32_t from = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    uint64_t seq = get64(p + 4), sent = get64(p + 12);
    if (from >= b->o->pubs)
        return;
    enum bench_seq r = bench_seen_add(&c->seen[from], seq);
    if (r == BENCH_SEQ_DUP) {
        atomic_fetch_add(&b->duplicates, 1);
        return;
    }
    if (r == BENCH_SEQ_LATE)
        atomic_fetch_add(&b->out_of_order, 1);
    atomic_fetch_add(&b->received, 1);
    bench_hist_add(&c->w->hist, t > sent ? t - sent : 0);
}

/* A publisher's message was acknowledged: remember which, once. */
static void on_puback(struct bc *c, uint16_t pid)
{
    uint64_t seq;
    if (c->inflight)
        c->inflight--;
    if (c->role == PUB && bench_pid_seq(c->seq, pid, &seq) &&
        bench_seen_add(&c->acked, seq) != BENCH_SEQ_DUP)
        atomic_fetch_add(&c->w->b->acked, 1);
}

/* idle, storm: a connection is up (again). */
static void idle_ready(struct bc *c)
{
    struct bench *b = c->w->b;
    uint64_t t = now_ns();
    if (!atomic_load(&b->storm))
        atomic_fetch_add(&b->connects, 1);
    else if (b->o->mode == BENCH_STORM)
        bench_hist_add(&c->w->hist, t - c->connect_ns);
    atomic_store(&c->w->last_connack_ns, t);
    if (b->o->keepalive_s) {
        c->ping_ns = 0;
        c->next_ping_ns = t + (uint64_t)b->o->keepalive_s * 1000000000ull;
        if (c->next_ping_ns < c->w->wake_ns)
            c->w->wake_ns = c->next_ping_ns;
    }
}

/* --keepalive: a PINGRESP. An answer to a ping already counted missing
 * (or never sent) is ignored. */
static void on_pingresp(struct bc *c)
{
    struct bench *b = c->w->b;
    if (!c->ping_ns)
        return;
    uint64_t rtt = now_ns() - c->ping_ns;
    c->ping_ns = 0;
    atomic_fetch_add(&b->pongs, 1);
    if (rtt > BENCH_PING_LATE_MS * 1000000ull)
        atomic_fetch_add(&b->pings_late, 1);
    if (b->o->mode == BENCH_IDLE)
        bench_hist_add(&c->w->hist, rtt);
}

/* Returns 1 if the connection was cycled (conn mode) or is being tried
 * again (storm), 0, or -1. */
static int on_connack(struct bc *c, const struct mqtt_connack *ack)
{
    struct bench *b = c->w->b;
    if (ack->reason) {
        char why[120];
        snprintf(why, sizeof(why), "the broker refused the connection: %s (0x%02x)",
                 mqtt_connack_name(c->codec.version, ack->reason), ack->reason);
        /* server unavailable (3.1.1), unavailable, busy, quota, rate (5):
         * a client tries again; a refusal of the client itself ends it */
        bool again = ack->reason == 3 || ack->reason == 0x88 || ack->reason == 0x89 ||
                     ack->reason == 0x97 || ack->reason == 0x9f;
        if (again && retry_connect(c, why))
            return 1;
        set_error(b, "%s", why);
        return -1;
    }
    if (c->role == CONN) {
        conn_cycle(c);
        return 1;
    }
    if (c->role == SUB) {
        send_subscribe(c);
        return 0;
    }
    c->state = READY;
    if (c->role == IDLE)
        idle_ready(c);
    atomic_fetch_add(&b->ready, 1);
    return 0;
}

static int on_packet(struct bc *c, struct mqtt_packet *p)
{
    struct bench *b = c->w->b;
    switch (p->type) {
    case MQTT_CONNACK:
        return on_connack(c, &p->u.connack);
    case MQTT_SUBACK:
        if (p->u.suback.reasons.len < 1 || p->u.suback.reasons.p[0] >= 0x80) {
            set_error(b, "the broker refused the subscription to %s", c->topic);
            return -1;
        }
        c->state = READY;
        atomic_fetch_add(&b->ready, 1);
        return 0;
    case MQTT_PUBLISH:
        on_message(c, &p->u.publish);
        return 0;
    case MQTT_PUBACK:
        on_puback(c, p->u.ack.packet_id);
        return 0;
    case MQTT_PINGRESP:
        on_pingresp(c);
        return 0;
    case MQTT_DISCONNECT:
        set_error(b, "the broker disconnected a client: %s", mqtt_rc_name(p->u.disconnect.reason));
        return -1;
    default:
        return 0;
    }
}

/* --ws: n bytes were read at in + inlen. Before the upgrade they are the
 * broker's answer (*off: where the frames after it start, already turned
 * into payload); after it, frames, turned into the MQTT byte stream in
 * place. Returns -1 if the connection must go. */
static int ws_input(struct bc *c, size_t n, size_t *off)
{
    size_t start = c->inlen;
    if (c->state == WSUP) {
        c->inlen += n;
        long head = ws_upgraded(c);
        if (head <= 0)
            return (int)head;
        start = (size_t)head;
        n = c->inlen - start;
        c->inlen = start;
        *off = start;
    }
    long got = bench_ws_deframe(&c->wsin, c->in + start, n);
    if (got < 0)
        return -1;
    c->inlen += (size_t)got;
    return 0;
}

static int on_readable(struct bc *c)
{
    for (;;) {
        size_t room = c->role == IDLE ? BUF_IDLE / 4 : 16384;
        if (c->incap - c->inlen < room) {
            size_t cap = c->incap ? c->incap * 2 : c->role == IDLE ? BUF_IDLE : BUF_STREAM;
            uint8_t *n = realloc(c->in, cap);
            if (!n)
                return -1;
            c->in = n;
            c->incap = cap;
        }
        ssize_t n = c->ops->read(c->t, c->in + c->inlen, c->incap - c->inlen);
        if (n == TRANSPORT_EOF || n == TRANSPORT_ERROR)
            return -1;
        if (n < 0)
            return 0;
        size_t off = 0, used;
        if (c->w->b->o->ws_path && ws_input(c, (size_t)n, &off) < 0)
            return -1;
        if (!c->w->b->o->ws_path)
            c->inlen += (size_t)n;
        if (c->state == WSUP)
            continue; /* the answer to the upgrade is not complete yet */
        struct mqtt_packet p;
        while (off < c->inlen) {
            int rc = mqtt_decode(&c->codec, c->in + off, c->inlen - off, &p, &used);
            if (rc == MQTT_INCOMPLETE)
                break;
            if (rc != 0)
                return -1;
            off += used;
            int r = on_packet(c, &p);
            if (r < 0)
                return -1;
            if (r > 0)
                return 0; /* the connection was recycled (conn mode, storm) */
        }
        memmove(c->in, c->in + off, c->inlen - off);
        c->inlen -= off;
    }
}

/* ---- publishing ---- */

/* The payload header: publisher id, sequence number, send time. */
static void stamp(uint8_t *payload, uint32_t idx, uint64_t seq)
{
    payload[0] = (uint8_t)(idx >> 24);
    payload[1] = (uint8_t)(idx >> 16);
    payload[2] = (uint8_t)(idx >> 8);
    payload[3] = (uint8_t)idx;
    put64(payload + 4, seq);
    put64(payload + 12, now_ns());
}

/* Whether c may publish now: its window, its output, its rate. */
static bool may_produce(struct bc *c, uint64_t t)
{
    const struct bench_opts *o = c->w->b->o;
    if (o->qos && c->inflight >= o->window)
        return false;
    if (c->outlen - c->outpos > OUT_HIGH)
        return false;
    if (o->rate > 0 && !c->next_ns) /* spread the publishers over one period */
        c->next_ns = t + 1 + (uint64_t)(1e9 / o->rate * c->idx / (o->pubs ? o->pubs : 1));
    return !(o->rate > 0 && t < c->next_ns);
}

/* Publishes what c may now. Returns how many messages it queued. */
static int produce(struct bc *c, uint64_t t)
{
    struct bench *b = c->w->b;
    const struct bench_opts *o = b->o;
    uint8_t payload[65536];
    size_t size = o->size < HDR_LEN ? HDR_LEN : o->size;
    if (size > sizeof(payload))
        size = sizeof(payload);
    if (!may_produce(c, t) && !(o->count && c->seq >= o->count))
        return 0; /* the common case with many rate-limited publishers: cheap */
    memset(payload + HDR_LEN, 'x', size - HDR_LEN);
    int batch = 0;
    for (; batch < PRODUCE_BATCH; batch++) {
        if (o->count && c->seq >= o->count) {
            c->done = true; /* the socket stays open for the last acks */
            atomic_fetch_add(&b->pubs_done, 1);
            break;
        }
        if (!may_produce(c, t))
            break;
        stamp(payload, c->idx, c->seq);
        struct mqtt_packet p = {.type = MQTT_PUBLISH};
        p.u.publish.topic = (struct mqtt_str){(const uint8_t *)c->topic, strlen(c->topic)};
        p.u.publish.payload = (struct mqtt_bin){payload, (uint32_t)size};
        p.u.publish.qos = o->qos;
        if (o->qos) {
            if (++c->next_pid == 0)
                c->next_pid = 1;
            p.u.publish.packet_id = c->next_pid;
            c->inflight++;
        }
        queue_packet(c, &p);
        c->seq++;
        atomic_fetch_add(&b->sent, 1);
        if (o->rate > 0)
            c->next_ns += (uint64_t)(1e9 / o->rate);
    }
    return batch;
}

/* ---- the loop ---- */

/* conn mode: the broker refused or dropped this attempt (a TLS alert can
 * arrive as a failed write as well as a failed read): count it, go again. */
static void conn_refused(struct bc *c)
{
    struct bench *b = c->w->b;
    atomic_fetch_add(&b->conn_errors, 1);
    if (c->t && c->t != &c->tcp)
        set_error(b, "%s", c->ops->cause(c->t));
    conn_close(c);
    if (atomic_load(&b->phase) == RUN)
        open_socket(c);
}

/* A connection attempt failed: conn mode counts it and tries again (naming
 * the cause if cause_in_conn); the other modes stop with the cause. */
static void attempt_failed(struct bc *c, const char *cause, bool cause_in_conn)
{
    struct bench *b = c->w->b;
    if (retry_connect(c, cause))
        return;
    if (c->role == CONN) {
        atomic_fetch_add(&b->conn_errors, 1);
        if (cause_in_conn)
            set_error(b, "%s", cause);
        conn_close(c);
        if (atomic_load(&b->phase) == RUN)
            open_socket(c);
        return;
    }
    set_error(b, "%s", cause);
    atomic_fetch_add(&b->failed, 1);
    conn_close(c);
}

/* The TCP connect finished: TLS next, or the CONNECT. Returns -1 if the
 * connection is gone. */
static int tcp_done(struct bc *c)
{
    struct bench *b = c->w->b;
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        char cause[160];
        snprintf(cause, sizeof(cause), "cannot connect: %s", strerror(err));
        attempt_failed(c, cause, false);
        return -1;
    }
    if (b->o->tls) {
        c->t = tls_client_transport_new(b->o->tls, c->fd, b->o->host);
        c->ops = &tls_transport_ops;
        c->state = TLS;
    } else if (start_session(c) < 0) {
        attempt_failed(c, "out of memory", false);
        return -1;
    }
    return 0;
}

/* One TLS handshake step. Returns 1 done (CONNECT queued), 0 in progress,
 * -1 if the connection is gone. */
static int tls_step(struct bc *c)
{
    ssize_t r = c->ops->handshake(c->t);
    if (r == TRANSPORT_ERROR) {
        attempt_failed(c, c->ops->cause(c->t), true);
        return -1;
    }
    if (r != 1) {
        watch(c, r == TRANSPORT_WANT_WRITE);
        return 0;
    }
    if (start_session(c) < 0) {
        attempt_failed(c, "out of memory", false);
        return -1;
    }
    return 1;
}

/* Reading failed: the broker closed the connection or sent garbage. */
static void read_failed(struct bc *c)
{
    struct bench *b = c->w->b;
    if (c->role == CONN && atomic_load(&b->phase) != RUN)
        return conn_close(c);
    if (c->role == CONN)
        return conn_refused(c);
    if (c->state != READY && retry_connect(c, "closed by the broker before its CONNACK"))
        return;
    static const char *const what[] = {"publisher", "subscriber", "", "idle"};
    char cause[80];
    snprintf(cause, sizeof(cause), "a%s %s connection was closed by the broker",
             c->role == IDLE ? "n" : "", what[c->role]);
    conn_lost(c, cause);
}

static void on_event(struct bc *c, uint32_t events)
{
    if (c->state == TCP && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && tcp_done(c) < 0)
        return;
    if (c->state == TLS) {
        if (tls_step(c) <= 0)
            return;
        events |= EPOLLOUT;
    }
    if ((events & EPOLLIN) && on_readable(c) < 0)
        return read_failed(c);
    if (c->fd >= 0 && flush(c) < 0) {
        if (c->role == CONN)
            return conn_refused(c);
        if (c->state != READY && retry_connect(c, "writing to the broker failed"))
            return;
        conn_lost(c, "writing to the broker failed");
    } else if (c->fd >= 0 && c->outpos == c->outlen && (events & EPOLLOUT)) {
        watch(c, false);
    }
}

/* A subscriber sends the PUBACKs it held that are due. Returns when its
 * next one falls due (UINT64_MAX: none held). */
static uint64_t release_acks(struct bc *c, uint64_t t)
{
    uint16_t pid;
    bool any = false;
    while (bench_acks_pop(&c->held, t, &pid)) {
        struct mqtt_packet a = {.type = MQTT_PUBACK};
        a.u.ack.packet_id = pid;
        queue_packet(c, &a);
        any = true;
    }
    if (any && flush(c) < 0)
        conn_close(c);
    return bench_acks_next(&c->held);
}

/* --keepalive: c's PINGREQ if it is due (the one before, still not
 * answered a whole period later, is counted missing). Returns when the next
 * is due. */
static uint64_t ping(struct bc *c, uint64_t t)
{
    struct bench *b = c->w->b;
    uint64_t period = (uint64_t)b->o->keepalive_s * 1000000000ull;
    if (t < c->next_ping_ns)
        return c->next_ping_ns;
    if (c->ping_ns) {
        atomic_fetch_add(&b->pings_missing, 1);
        c->ping_ns = 0;
        c->missed = true;
    }
    struct mqtt_packet p = {.type = MQTT_PINGREQ};
    if (queue_packet(c, &p) == 0) {
        c->ping_ns = t;
        atomic_fetch_add(&b->pings, 1);
    }
    c->next_ping_ns += period;
    if (c->next_ping_ns <= t)
        c->next_ping_ns = t + period;
    if (flush(c) < 0)
        conn_lost(c, "writing a PINGREQ failed");
    return c->next_ping_ns;
}

/* One pass over the worker's connections: due PUBACKs out, and (producing)
 * the publishers' next messages. Sets w->wake_ns: now if a publisher may
 * have more to send at once, else the next timer (a held PUBACK, a paced
 * publisher's next message; those at most every 1 ms, so 2,000 slow
 * publishers do not make 2,000 wake-ups), UINT64_MAX for none: then only
 * the sockets wake the loop (a PUBACK opening a window, a writable socket). */
static void tick(struct worker *w, bool producing)
{
    const struct bench_opts *o = w->b->o;
    uint64_t t = now_ns(), wake = UINT64_MAX, paced = UINT64_MAX, pings = UINT64_MAX;
    for (size_t i = 0; i < w->n; i++) {
        struct bc *c = w->conns[i];
        if (c->fd < 0 || c->state != READY)
            continue;
        if (c->role == IDLE && o->keepalive_s) {
            uint64_t d = ping(c, t);
            pings = d < pings ? d : pings;
            continue;
        }
        if (c->role == SUB && c->held.len) {
            uint64_t d = release_acks(c, t);
            wake = d < wake ? d : wake;
        }
        if (!producing || c->role != PUB || c->done)
            continue;
        int sent = produce(c, t);
        if ((sent > 0 && o->rate <= 0) || sent == PRODUCE_BATCH)
            wake = t; /* more may be due at once (a fast rate, or catching up) */
        if (o->rate > 0 && c->next_ns < paced)
            paced = c->next_ns;
        if (flush(c) < 0)
            conn_close(c);
    }
    if (paced != UINT64_MAX && paced < t + 1000000)
        paced = t + 1000000;
    if (pings != UINT64_MAX && pings < t + PING_TICK_NS)
        pings = t + PING_TICK_NS; /* one pass for all the pings due about then */
    wake = pings < wake ? pings : wake;
    w->wake_ns = paced < wake ? paced : wake;
}

/* Waits for socket events until w->wake_ns at the latest (and 20 ms, so a
 * change of phase is seen). */
static int wait_events(struct worker *w, struct epoll_event *evs, int max)
{
    uint64_t t = now_ns(), until = t + 20000000;
    if (w->wake_ns < until)
        until = w->wake_ns > t ? w->wake_ns : t;
    if (w->opened < w->n && w->open_next_ns < until)
        until = w->open_next_ns > t ? w->open_next_ns : t;
    uint64_t ns = until - t;
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    int n = epoll_pwait2(w->ep, evs, max, &ts, NULL);
    if (n < 0 && errno == ENOSYS) /* kernels before 5.11: millisecond timers */
        n = epoll_wait(w->ep, evs, max, (int)((ns + 999999) / 1000000));
    return n;
}

/* --connect-rate: opens the connections that are due. */
static void open_due(struct worker *w)
{
    uint64_t t = now_ns();
    while (w->opened < w->n && w->open_next_ns <= t) {
        if (open_socket(w->conns[w->opened++]) < 0)
            set_error(w->b, "cannot open a socket: %s", strerror(errno));
        w->open_next_ns += w->open_period_ns;
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct bench *b = w->b;
    struct epoll_event evs[256];
    w->wake_ns = UINT64_MAX;
    bool quiet = false;
    for (int phase; (phase = atomic_load(&b->phase)) != STOP;) {
        bool producing = phase == RUN && b->o->mode != BENCH_CONN;
        if (atomic_load(&b->storm) && !w->stormed)
            storm_worker(w);
        if (phase >= DRAIN && !quiet) { /* sent is final from here on */
            quiet = true;
            atomic_fetch_add(&b->quiet_workers, 1);
        }
        if (producing && w->wake_ns == UINT64_MAX && b->o->rate <= 0)
            w->wake_ns = 0; /* the first pass of the run */
        if (w->opened < w->n)
            open_due(w);
        int n = wait_events(w, evs, 256);
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
        /* a pass over every connection only when a timer is due: 9,000
         * idle connections are not walked for each batch of events */
        if (producing || (w->wake_ns != UINT64_MAX && now_ns() >= w->wake_ns))
            tick(w, producing);
    }
    return NULL;
}

/* ---- set-up and the run ---- */

static struct bc *make_conn(struct bench *b, struct worker *w, enum role role, unsigned idx)
{
    const struct bench_opts *o = b->o;
    struct bc *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->role = role;
    c->idx = idx;
    c->w = w;
    c->fd = -1;
    /* Persistent sessions outlive the run: a topic of this run's own keeps
     * an earlier run's sessions from queueing (and storing) this one's
     * messages. */
    char base[32] = "bench";
    if (o->persistent)
        snprintf(base, sizeof(base), "bench/p%d", (int)getpid());
    if (role == PUB)
        snprintf(c->topic, sizeof(c->topic), "%s/%u", base, o->mode == BENCH_FANOUT ? 0 : idx);
    if (role == SUB) {
        if (o->mode == BENCH_FANIN)
            snprintf(c->topic, sizeof(c->topic), "%s/+", base);
        else
            snprintf(c->topic, sizeof(c->topic), "%s/%u", base, o->mode == BENCH_FANOUT ? 0 : idx);
        c->seen = calloc(o->pubs ? o->pubs : 1, sizeof(struct bench_seen));
    }
    w->conns[w->n++] = c;
    return c;
}

static void free_conn(struct bc *c)
{
    if (c->t && c->t != &c->tcp)
        c->ops->destroy(c->t);
    if (c->fd >= 0)
        close(c->fd);
    if (c->seen) {
        for (unsigned i = 0; i < c->w->b->o->pubs; i++)
            bench_seen_free(&c->seen[i]);
        free(c->seen);
    }
    bench_seen_free(&c->acked);
    bench_acks_free(&c->held);
    free(c->in);
    free(c->out);
    free(c->wout);
    free(c);
}

/* QoS 1: the messages acknowledged to their publisher that a subscriber
 * which should have had them never received. */
static uint64_t acked_lost(struct bench *b, struct worker *ws, unsigned nw)
{
    const struct bench_opts *o = b->o;
    struct bc **pubs = calloc(o->pubs ? o->pubs : 1, sizeof(*pubs));
    uint64_t lost = 0;
    if (!pubs)
        return 0;
    for (unsigned i = 0; i < nw; i++)
        for (size_t j = 0; j < ws[i].n; j++)
            if (ws[i].conns[j]->role == PUB && ws[i].conns[j]->idx < o->pubs)
                pubs[ws[i].conns[j]->idx] = ws[i].conns[j];
    for (unsigned i = 0; i < nw; i++) {
        for (size_t j = 0; j < ws[i].n; j++) {
            struct bc *s = ws[i].conns[j];
            if (s->role != SUB)
                continue;
            /* p2p: publisher idx; fan-in: all of them; fan-out: publisher 0 */
            unsigned from = o->mode == BENCH_P2P ? s->idx : 0;
            unsigned to = o->mode == BENCH_FANIN ? o->pubs : from + 1;
            for (unsigned p = from; p < to && p < o->pubs; p++)
                if (pubs[p])
                    lost += bench_seen_missing(&pubs[p]->acked, &s->seen[p]);
        }
    }
    free(pubs);
    return lost;
}

/* The latest CONNACK any worker has seen. */
static uint64_t last_connack(struct worker *ws, unsigned nw)
{
    uint64_t last = 0;
    for (unsigned i = 0; i < nw; i++) {
        uint64_t t = atomic_load(&ws[i].last_connack_ns);
        last = t > last ? t : last;
    }
    return last;
}

static void summarize(struct bench *b, struct worker *ws, unsigned nw, struct bench_report *r,
                      uint64_t end_ns)
{
    const struct bench_opts *o = b->o;
    static struct bench_hist h;
    memset(&h, 0, sizeof(h));
    uint64_t last_rx = 0;
    for (unsigned i = 0; i < nw; i++) {
        bench_hist_merge(&h, &ws[i].hist);
        if (ws[i].last_rx_ns > last_rx)
            last_rx = ws[i].last_rx_ns;
    }
    r->sent = atomic_load(&b->sent);
    r->received = atomic_load(&b->received);
    r->duplicates = atomic_load(&b->duplicates);
    r->out_of_order = atomic_load(&b->out_of_order);
    r->acked = atomic_load(&b->acked);
    r->acked_lost = o->qos ? acked_lost(b, ws, nw) : 0;
    uint64_t factor = o->mode == BENCH_FANOUT ? o->subs : 1;
    r->expected = r->sent * factor;
    r->lost = r->expected > r->received ? r->expected - r->received : 0;
    r->connects = atomic_load(&b->connects);
    r->connect_errors = atomic_load(&b->conn_errors);
    r->pings = atomic_load(&b->pings);
    r->pongs = atomic_load(&b->pongs);
    r->pings_late = atomic_load(&b->pings_late);
    r->pings_missing = atomic_load(&b->pings_missing);
    for (unsigned i = 0; i < nw; i++) { /* pings still out at the end */
        for (size_t j = 0; j < ws[i].n; j++) {
            struct bc *c = ws[i].conns[j];
            uint64_t sent = c->ping_ns;
            /* as in the run: missing once a whole period went by. A
             * worker may still send a ping between end_ns and STOP: that
             * one is after the end, not 2^64 ns old. */
            if (sent && end_ns > sent && end_ns - sent > (uint64_t)o->keepalive_s * 1000000000ull) {
                r->pings_missing++;
                c->missed = true;
            } else if (sent) {
                r->pings--; /* too recent to judge, or sent after the end */
            }
            r->conns_missing += c->missed;
        }
    }
    r->refused = atomic_load(&b->refused);
    snprintf(r->last_refusal, sizeof(r->last_refusal), "%s", b->last_refusal);
    if (b->connected_ns > b->run_start_ns)
        r->connect_s = (double)(b->connected_ns - b->run_start_ns) / 1e9;
    uint64_t back = last_connack(ws, nw);
    if (o->mode == BENCH_STORM && b->storm_ns && back > b->storm_ns &&
        atomic_load(&b->ready) >= o->clients)
        r->reconnect_s = (double)(back - b->storm_ns) / 1e9;
    if (o->hist_out)
        bench_hist_merge(o->hist_out, &h);
    uint64_t stop = o->mode == BENCH_CONN ? end_ns : (last_rx ? last_rx : end_ns);
    r->elapsed_s = (double)(stop - b->run_start_ns) / 1e9;
    if (r->elapsed_s <= 0)
        r->elapsed_s = 1e-9;
    r->msgs_per_s =
        (double)(o->mode == BENCH_CONN || o->mode == BENCH_IDLE || o->mode == BENCH_STORM
                     ? r->connects
                     : r->received) /
        r->elapsed_s;
    r->p50_ms = bench_hist_quantile(&h, 0.50);
    r->p99_ms = bench_hist_quantile(&h, 0.99);
    r->max_ms = bench_hist_quantile(&h, 1.0 - 1e-12);
}

static void sleep_ms(unsigned ms)
{
    usleep(ms * 1000u);
}

/* Waits until every connection is ready (or one failed), at most secs. */
static int wait_ready(struct bench *b, unsigned want, unsigned secs)
{
    for (unsigned i = 0; i < secs * 100; i++) {
        if (atomic_load(&b->failed) || has_error(b))
            return -1;
        if (atomic_load(&b->ready) >= want)
            return 0;
        sleep_ms(10);
    }
    set_error(b, "timed out: %u of %u connections up after %u s", atomic_load(&b->ready), want,
              secs);
    return -1;
}

/* idle, storm: all connected. Says so (the caller measures the broker
 * now), or, a process of --procs, tells its parent and waits for the word
 * to go on. */
static int announce(struct bench *b, unsigned total)
{
    const struct bench_opts *o = b->o;
    if (o->ctl_fd < 0) {
        printf("connected %u\n", total);
        fflush(stdout);
        return 0;
    }
    char c = BENCH_CTL_CONNECTED;
    struct pollfd p = {.fd = o->ctl_fd, .events = POLLIN};
    if (write(o->ctl_fd, &c, 1) != 1 || poll(&p, 1, (int)BENCH_CONNECT_TIMEOUT_S * 2000) != 1 ||
        read(o->ctl_fd, &c, 1) != 1 || c != BENCH_CTL_GO) {
        set_error(b, "no word from the parent process");
        return -1;
    }
    return 0;
}

/* Holds the connections secs seconds; -1 as soon as one fails. */
static int hold(struct bench *b, double secs)
{
    uint64_t end = now_ns() + (uint64_t)(secs * 1e9);
    while (now_ns() < end) {
        if (atomic_load(&b->failed) || has_error(b))
            return -1;
        sleep_ms(10);
    }
    return atomic_load(&b->failed) || has_error(b) ? -1 : 0;
}

/* Lets what is in flight arrive (and, QoS 1, be acknowledged to its
 * publisher): until everything has, or after 3 s without progress, or
 * after 120 s whatever happens. */
static void drain(struct bench *b)
{
    const struct bench_opts *o = b->o;
    uint64_t factor = o->mode == BENCH_FANOUT ? o->subs : 1;
    uint64_t start = now_ns(), quiet_since = start, last = UINT64_MAX;
    /* Every worker finishes the pass it is in first, so that sent is final. */
    while (atomic_load(&b->quiet_workers) < b->nworkers && now_ns() - start < 1000000000ull)
        sleep_ms(1);
    while (o->mode != BENCH_CONN && now_ns() - start < 120000000000ull) {
        uint64_t rx = atomic_load(&b->received), acked = atomic_load(&b->acked);
        uint64_t sent = atomic_load(&b->sent);
        if (rx >= sent * factor && (!o->qos || acked >= sent))
            break;
        if (rx + acked != last) {
            last = rx + acked;
            quiet_since = now_ns();
        } else if (now_ns() - quiet_since > 3000000000ull) {
            break;
        }
        sleep_ms(5);
    }
}

static void run_phases(struct bench *b)
{
    const struct bench_opts *o = b->o;
    b->run_start_ns = now_ns();
    atomic_store(&b->phase, RUN);
    uint64_t end = b->run_start_ns + (uint64_t)(o->duration_s * 1e9);
    while (now_ns() < end || (o->count && o->mode != BENCH_CONN)) {
        if (o->count && atomic_load(&b->pubs_done) >= o->pubs)
            break;
        if (atomic_load(&b->failed) && o->mode != BENCH_CONN)
            break;
        if (o->count && now_ns() > b->run_start_ns + 300ull * 1000000000u)
            break; /* a bounded run, whatever the count */
        sleep_ms(5);
    }
    atomic_store(&b->phase, DRAIN);
    drain(b);
}

/* Resolves the broker and picks the first address that answers ("localhost"
 * may name ::1 and 127.0.0.1); with --sub-port, the same host on that port
 * for the subscribers. *res is for freeaddrinfo. */
static int resolve(struct bench *b, struct addrinfo **res, struct bench_report *r)
{
    const struct bench_opts *o = b->o;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    char port[8];
    snprintf(port, sizeof(port), "%u", o->port);
    int g = getaddrinfo(o->host, port, &hints, res);
    if (g != 0) {
        *res = NULL;
        snprintf(r->error, sizeof(r->error), "cannot resolve %s: %s", o->host, gai_strerror(g));
        return -1;
    }
    for (struct addrinfo *a = *res; a && !b->addr; a = a->ai_next) {
        if (o->src_count && a->ai_family != AF_INET)
            continue; /* --source addresses are IPv4 */
        int fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            b->addr = a;
        if (fd >= 0)
            close(fd);
    }
    if (!b->addr) {
        snprintf(r->error, sizeof(r->error), "cannot connect to %s port %u: %s", o->host, o->port,
                 strerror(errno));
        return -1;
    }
    if (o->sub_port) { /* the same host, another port: subscribers behind a bridge */
        memcpy(&b->sub_ss, b->addr->ai_addr, b->addr->ai_addrlen);
        b->sub_ai = *b->addr;
        b->sub_ai.ai_addr = (struct sockaddr *)&b->sub_ss;
        if (b->sub_ss.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&b->sub_ss)->sin6_port = htons(o->sub_port);
        else
            ((struct sockaddr_in *)&b->sub_ss)->sin_port = htons(o->sub_port);
        b->sub_addr = &b->sub_ai;
    }
    return 0;
}

/* The workers and, spread over them, every connection of the scenario
 * (subscribers first, so nothing is published before they listen). */
static struct worker *make_workers(struct bench *b, unsigned nw, unsigned total)
{
    const struct bench_opts *o = b->o;
    struct worker *ws = calloc(nw, sizeof(*ws));
    for (unsigned i = 0; ws && i < nw; i++) {
        ws[i].b = b;
        ws[i].ep = epoll_create1(EPOLL_CLOEXEC);
        ws[i].conns = calloc(total, sizeof(struct bc *));
    }
    if (!ws)
        return NULL;
    unsigned k = 0;
    for (unsigned i = 0; o->mode != BENCH_CONN && i < o->subs; i++, k++)
        make_conn(b, &ws[k % nw], SUB, i);
    for (unsigned i = 0; o->mode != BENCH_CONN && i < o->pubs; i++, k++)
        make_conn(b, &ws[k % nw], PUB, i);
    for (unsigned i = 0; o->mode == BENCH_CONN && i < o->clients; i++, k++)
        make_conn(b, &ws[k % nw], CONN, i);
    for (unsigned i = 0; (o->mode == BENCH_IDLE || o->mode == BENCH_STORM) && i < o->clients;
         i++, k++)
        make_conn(b, &ws[k % nw], IDLE, i);
    return ws;
}

static void free_workers(struct worker *ws, unsigned nw)
{
    for (unsigned i = 0; ws && i < nw; i++) {
        for (size_t j = 0; j < ws[i].n; j++)
            free_conn(ws[i].conns[j]);
        free(ws[i].conns);
        close(ws[i].ep);
    }
    free(ws);
}

/* Opens every socket before the workers start: a connection is then handed
 * to its worker by pthread_create, and never written by two threads. */
static void open_all(struct bench *b, struct worker *ws, unsigned nw)
{
    const struct bench_opts *o = b->o;
    b->run_start_ns = now_ns(); /* idle, storm: connect_s counts from here */
    if (o->mode == BENCH_CONN) {
        atomic_store(&b->phase, RUN); /* sockets open in RUN for conn mode */
        b->run_start_ns = now_ns();
    }
    if ((o->mode == BENCH_IDLE || o->mode == BENCH_STORM) && o->connect_rate > 0) {
        for (unsigned i = 0; i < nw; i++) { /* each worker opens its share at its pace */
            ws[i].open_next_ns = b->run_start_ns;
            ws[i].open_period_ns = (uint64_t)(1e9 * nw / o->connect_rate);
        }
        return;
    }
    for (unsigned i = 0; i < nw; i++) {
        for (size_t j = 0; j < ws[i].n; j++)
            if (open_socket(ws[i].conns[j]) < 0)
                set_error(b, "cannot open a socket: %s", strerror(errno));
        ws[i].opened = ws[i].n;
    }
}

/* Runs the scenario's phases on the open sockets. Returns 0, or -1. */
static int drive(struct bench *b, struct worker *ws, unsigned nw, unsigned total)
{
    const struct bench_opts *o = b->o;
    if (o->mode == BENCH_CONN) {
        sleep_ms((unsigned)(o->duration_s * 1000));
        return 0;
    }
    if (o->mode == BENCH_IDLE || o->mode == BENCH_STORM) {
        if (wait_ready(b, total, BENCH_CONNECT_TIMEOUT_S) < 0)
            return -1;
        b->connected_ns = last_connack(ws, nw);
        /* All connected: hold them idle (the caller measures the broker). */
        if (announce(b, total) < 0 || hold(b, o->hold_s) < 0)
            return -1;
        if (o->mode == BENCH_IDLE)
            return 0;
        atomic_store(&b->ready, 0);
        b->storm_ns = now_ns();
        atomic_store(&b->storm, 1);
        return wait_ready(b, total, BENCH_CONNECT_TIMEOUT_S);
    }
    if (wait_ready(b, total, 30) < 0)
        return -1;
    run_phases(b);
    return 0;
}

/* see bench.h */
int bench_run(const struct bench_opts *o, struct bench_report *r)
{
    memset(r, 0, sizeof(*r));
    struct bench b = {.o = o, .nworkers = o->threads ? o->threads : 2};
    struct addrinfo *res = NULL;
    unsigned nw = o->threads ? o->threads : 2;
    bool many = o->mode == BENCH_CONN || o->mode == BENCH_IDLE || o->mode == BENCH_STORM;
    unsigned total = many ? o->clients : o->pubs + o->subs;
    if (resolve(&b, &res, r) < 0) {
        if (res)
            freeaddrinfo(res);
        return -1;
    }
    pthread_mutex_init(&b.err_lock, NULL);
    struct worker *ws = make_workers(&b, nw, total);
    int rc = -1;
    if (ws)
        open_all(&b, ws, nw);
    for (unsigned i = 0; ws && i < nw; i++)
        pthread_create(&ws[i].th, NULL, worker_main, &ws[i]);
    if (ws)
        rc = drive(&b, ws, nw, total);
    uint64_t end = now_ns();
    atomic_store(&b.phase, STOP);
    for (unsigned i = 0; ws && i < nw; i++)
        pthread_join(ws[i].th, NULL);
    if (ws)
        summarize(&b, ws, nw, r, end);
    else
        set_error(&b, "out of memory");
    /* conn counts failed attempts and tries again; but when not one
     * succeeded, the run fails with the cause attempt_failed named (a TLS
     * handshake refused, say) instead of ending well with only a count. */
    if (o->mode == BENCH_CONN && rc == 0 && ws && r->connects == 0 && b.error[0])
        rc = -1;
    if (b.error[0] && (rc < 0 || o->mode != BENCH_CONN))
        snprintf(r->error, sizeof(r->error), "%s", b.error);
    if (b.error[0] && rc == 0 && o->mode != BENCH_CONN && atomic_load(&b.failed))
        rc = -1;
    free_workers(ws, nw);
    freeaddrinfo(res);
    pthread_mutex_destroy(&b.err_lock);
    return rc;
}
