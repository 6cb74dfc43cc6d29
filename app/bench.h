/* `ward bench`: the load generator (see cmd_bench.c for the command line).
 *
 * A few threads each run an epoll loop over many non-blocking MQTT
 * connections (never a thread per connection), so the generator stays cheap
 * next to the broker it measures. Publishers stamp each payload with their
 * id, a sequence number and a send time; subscribers check loss,
 * duplicates and per-publisher order, and sample latency. */
#ifndef WARD_APP_BENCH_H
#define WARD_APP_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum bench_mode { BENCH_P2P, BENCH_FANIN, BENCH_FANOUT, BENCH_CONN, BENCH_IDLE, BENCH_STORM };

struct bench_hist;

struct tls_client;
struct tls_client_config;

struct bench_opts {
    enum bench_mode mode;
    const char *host;
    uint16_t port;
    uint16_t sub_port; /* subscribers elsewhere (through a bridge); 0: port */
    unsigned pubs, subs, clients;
    uint8_t qos;
    uint8_t version;
    size_t size;
    double rate;       /* messages/s per publisher; 0: as fast as the window allows */
    double duration_s; /* publish for this long ... */
    uint64_t count;    /* ... or this many per publisher (when non-zero) */
    unsigned threads;
    unsigned window; /* QoS 1 messages in flight per publisher */
    bool json;
    struct tls_client *tls; /* NULL: plain TCP */
    const char *ws_path;    /* MQTT over WebSocket on this path (wss with tls); NULL: none */
    double hold_s;          /* idle mode: keep the connections this long */
    uint64_t ack_delay_ns;  /* subscribers hold each PUBACK this long (pipelined) */
    bool persistent;        /* clean session false (3.1.1), session expiry (5) */
    /* --source: connection i binds to address src_first + i % src_count
     * (IPv4, host order), so one address's ephemeral ports (about 28,000)
     * do not bound a run and several generators can share the machine.
     * src_count 0: the kernel picks. */
    uint32_t src_first, src_count;
    unsigned keepalive_s; /* idle, storm: PINGREQ this often (and CONNECT's keep alive); 0: none */
    unsigned procs;       /* generator processes (cmd_bench forks them); 0 or 1: this one */
    double connect_rate;  /* idle, storm: connections opened per second at first; 0: all at once */
    /* Set by cmd_bench for each process of --procs: */
    unsigned idx_base;           /* the process's first connection index */
    int ctl_fd;                  /* the socket to the parent (bench_ctl_*); -1: none */
    struct bench_hist *hist_out; /* non-NULL: the run's latency samples are added here */
};

/* How long idle and storm wait for all their connections (connect or
 * reconnect) before giving up. */
#define BENCH_CONNECT_TIMEOUT_S 120u

/* --procs: a child process tells its parent over ctl_fd that all its
 * connections are up (BENCH_CTL_CONNECTED), then waits for the parent's
 * BENCH_CTL_GO before holding them (idle) or dropping them (storm), so all
 * processes measure the same moment. At the end it sends BENCH_CTL_REPORT,
 * its struct bench_report and its struct bench_hist. */
#define BENCH_CTL_CONNECTED 'C'
#define BENCH_CTL_GO        'G'
#define BENCH_CTL_REPORT    'R'

/* --persistent with MQTT 5: the session expiry asked for, long enough to
 * outlast any run and a broker restart between runs. */
#define BENCH_SESSION_EXPIRY_S 3600u

struct bench_report {
    uint64_t sent, received, expected, lost, duplicates, out_of_order;
    /* QoS 1: messages the broker acknowledged to their publishers, and how
     * many of those a subscriber that should have had them never got. */
    uint64_t acked, acked_lost;
    double elapsed_s;
    double msgs_per_s;
    double p50_ms, p99_ms, max_ms;
    /* conn mode; idle and storm: connect_errors counts the attempts the
     * broker refused or dropped before the storm (each tried again) */
    uint64_t connects, connect_errors;
    /* idle and storm: from the first connect to the last CONNACK. The
     * latency figures above are the ping round trips (idle --keepalive) or
     * the reconnects' CONNACK latencies (storm). */
    double connect_s;
    /* --keepalive: PINGREQs sent, answered, answered after more than
     * BENCH_PING_LATE_MS, and not answered within one period (a ping still
     * out at the end, sent less than a period before, is not counted). */
    uint64_t pings, pongs, pings_late, pings_missing;
    uint64_t conns_missing; /* connections with at least one ping missing */
    /* storm: from the drop to the last CONNACK, and the attempts the broker
     * refused or dropped (each tried again, at most BENCH_STORM_ATTEMPTS
     * times per client) */
    double reconnect_s;
    uint64_t refused;
    char last_refusal[160]; /* idle, storm: the cause of the last refused attempt */
    char error[256];
};

#define BENCH_PING_LATE_MS   1000u
#define BENCH_STORM_ATTEMPTS 50u

/* MQTT over WebSocket (--ws PATH): after the upgrade, each flush of a
 * connection's queued packets goes out as one masked binary frame (at most
 * BENCH_WS_FRAME payload bytes), and what the broker sends is turned back
 * into a byte stream in place, whatever its framing. */
#define BENCH_WS_FRAME 65536u
#define BENCH_WS_HEAD  14u /* the longest client frame header: 2 + 8 + mask */

/* Where the reading side is in the broker's frames. Zeroed to start. */
struct bench_ws_in {
    uint64_t rem; /* payload bytes left in the frame being read */
    bool skip;    /* ... of a control frame: dropped */
    uint8_t hlen; /* header bytes kept from an earlier read */
    uint8_t hdr[10];
};

/* The upgrade request for `path` on `host` into out (NUL-terminated).
 * Returns its length, 0 if it does not fit. */
size_t bench_ws_request(char *out, size_t cap, const char *host, const char *path);

/* Looks at the broker's answer to the upgrade in p[0..n): 1 with *head
 * the length of a "101" head, 0 if the head is not complete yet, -1 for
 * any other answer (or a head over 4 KiB). */
int bench_ws_response(const uint8_t *p, size_t n, size_t *head);

/* One binary frame of payload[0..n), masked with key, into out (room for
 * n + BENCH_WS_HEAD). Returns the frame's length. */
size_t bench_ws_frame(uint8_t *out, const uint8_t *payload, size_t n, uint32_t key);

/* Replaces the frames in p[0..n) (continuing s) by their data payloads,
 * in place. Returns how many payload bytes p now starts with, or -1: a
 * close frame, a masked or a reserved-bit frame from the broker. */
long bench_ws_deframe(struct bench_ws_in *s, uint8_t *p, size_t n);

/* Parses `ward bench SCENARIO [options]` (argv[0] is "bench"). Returns 0
 * with *o and *tls filled (o->tls is NULL: the caller makes it from *tls),
 * OPTS_HELP after printing the help, or OPTS_USAGE (2) after an error. */
int bench_parse(int argc, char **argv, struct bench_opts *o, struct tls_client_config *tls);

/* --source: "A.B.C.D", "A.B.C.D-A.B.C.D" (ascending, at most 65536
 * addresses) or a count N from 1 to 254 (127.0.0.2 to 127.0.0.N+1: loopback
 * addresses other than 127.0.0.1, which other programs use). Returns 0 with
 * *first (host order) and *count set, or -1. */
int bench_parse_source(const char *s, uint32_t *first, uint32_t *count);

/* A duration for --ack-delay: a decimal number with the unit us, ms (the
 * default when none is written) or s, from 0 to 60 s. Returns 0 with *ns
 * set, or -1. */
int bench_parse_delay(const char *s, uint64_t *ns);

/* The report: a table for people, or one JSON object (--json). */
void bench_print(FILE *out, const struct bench_opts *o, const struct bench_report *r,
                 const char *name);

/* Runs one scenario. Returns 0, or -1 with report->error set. */
int bench_run(const struct bench_opts *o, struct bench_report *report);

#endif
