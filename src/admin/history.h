/* The broker's recent rates for the status page: every HISTORY_INTERVAL_MS
 * a sample of its counters (connections; messages and bytes in and out;
 * messages dropped) goes into a ring covering the last HISTORY_SPAN_MS, and
 * the page draws the rates between consecutive samples.
 *
 * A sample is one call of the source callback (the admin API reads the
 * broker's counters through it, taking the broker lock briefly), made by a
 * small thread of the ring's own: the admin server's worker has no timers,
 * and the broker's housekeeping thread must not wait on anything outside
 * the broker. The thread sleeps between samples, so it costs a wake-up
 * every 5 s and 180 samples of memory (about 10 KiB). */
#ifndef WARD_ADMIN_HISTORY_H
#define WARD_ADMIN_HISTORY_H

#include <stdbool.h>
#include <stdint.h>

#include "core/result.h"

#define HISTORY_INTERVAL_MS 5000u
#define HISTORY_SPAN_MS     (15u * 60u * 1000u)
/* One more sample than intervals: the first rate needs a sample before it. */
#define HISTORY_SAMPLES (HISTORY_SPAN_MS / HISTORY_INTERVAL_MS + 1u)

/* Counters as the broker keeps them: since start, never reset, except
 * connections, which is the number open now. */
struct history_counters {
    uint64_t connections;
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out, dropped;
};

/* Fills c; false if there is nothing to read now (no sample is taken). */
typedef bool (*history_source_fn)(void *ctx, struct history_counters *c);

/* One interval: what happened between two samples, per second, ending at
 * wall_ms. */
struct history_point {
    uint64_t wall_ms;                              /* ms since the Unix epoch */
    uint64_t connections;                          /* at the end of the interval */
    double msgs_in, msgs_out, bytes_in, bytes_out; /* per second */
    uint64_t dropped;                              /* in the interval */
};

struct history;

/* NULL: out of memory or no source. */
WARD_WUR struct history *history_new(history_source_fn fn, void *ctx);
/* Stops the thread if it runs, then frees; NULL is a no-op. */
void history_free(struct history *h);
/* Takes a sample if none was taken yet or HISTORY_INTERVAL_MS have passed
 * since the last one (mono_ms: clock_mono_ms() or a test's clock). Returns
 * whether it took one. Thread-safe. */
bool history_tick(struct history *h, uint64_t mono_ms);
/* Starts the sampling thread (one sample at once, then one per interval).
 * Returns 0, or -1 (no thread). */
WARD_WUR int history_start(struct history *h);
/* Stops and joins the thread; idempotent. */
void history_stop(struct history *h);
/* The intervals held, oldest first, up to max; returns how many. A counter
 * that went down (it never should) counts as nothing in that interval. */
WARD_WUR unsigned history_points(struct history *h, struct history_point *out, unsigned max);

#endif
