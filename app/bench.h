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

enum bench_mode { BENCH_P2P, BENCH_FANIN, BENCH_FANOUT, BENCH_CONN, BENCH_IDLE };

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
};

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
    uint64_t connects, connect_errors; /* conn mode */
    char error[256];
};

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
