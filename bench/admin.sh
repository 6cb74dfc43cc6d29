#!/usr/bin/env bash
# The admin listener under load (issue 16): what a Prometheus scrape costs
# the broker, and what scraping costs pub/sub throughput.
#
#  1. ward serves ADMIN_CLIENTS idle MQTT connections (`ward bench idle`, a
#     process of its own: the generator's and ward's descriptors each fit
#     the 20,000 a process may open); ADMIN_SCRAPES scrapes of /metrics
#     over one keep-alive connection, as Prometheus makes them; the broker's
#     CPU time (utime+stime from /proc/PID/stat) over the scrapes, less what
#     it spent over the same wall time without them, per scrape. The run
#     fails (exit 1) above ADMIN_MAX_MS per scrape.
#  2. pub/sub throughput (p2p, ADMIN_N pairs, QoS 0, ADMIN_SECONDS) with the
#     idle clients still connected: without scrapes and with a scrape
#     every second, alternating, ADMIN_ROUNDS times each, in the same run;
#     the best delivered messages/s of each and their ratio.
#
#   ADMIN_CLIENTS (10000)  ADMIN_SCRAPES (200)  ADMIN_MAX_MS (50)
#   ADMIN_N (20)  ADMIN_SECONDS (5)  ADMIN_ROUNDS (3)  BENCH_WORKERS (2)  WARD (build/ward)
#   ADMIN_PATH (/metrics): the endpoint scraped (/api/status: the status page's)
#   ADMIN_OFFLINE (0): offline sessions in the store at start (the issue's 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
WARD=${WARD:-build/ward}
CLIENTS=${ADMIN_CLIENTS:-10000}
SCRAPES=${ADMIN_SCRAPES:-200}
MAX_MS=${ADMIN_MAX_MS:-50}
N=${ADMIN_N:-20}
SECS=${ADMIN_SECONDS:-5}
WORKERS=${BENCH_WORKERS:-2}
SCRAPE_PATH=${ADMIN_PATH:-/metrics}
ROUNDS=${ADMIN_ROUNDS:-3}
OFFLINE=${ADMIN_OFFLINE:-0}
# shellcheck source=bench/lib.sh
. bench/lib.sh
need "$WARD" curl

PORT=$(free_port); HTTP=$(free_port)
# A read key, as a Prometheus job would be given (open_metrics would do for
# /metrics; the key lets ADMIN_PATH name any read endpoint).
KEY=$("$WARD" apikey add "$TMP/keys" bench --scope read 2>/dev/null | head -1)
cat >"$TMP/ward.conf" <<CONF
listeners.tcp { bind = "127.0.0.1:$PORT" }
http {
  bind = "127.0.0.1:$HTTP"
  api_keys = {include "$TMP/keys"}
}
CONF
# ADMIN_OFFLINE offline sessions (persistent, a day to live) loaded from the
# store at start: a scrape must not walk them. They are written straight into
# a store the broker created (its schema), as a restart would find them.
DATA=()
if [ "$OFFLINE" -gt 0 ]; then
  need sqlite3
  DATA=(--data "$TMP/data")
  "$WARD" serve -l "tcp://127.0.0.1:$PORT" "${DATA[@]}" --log-level notice >"$TMP/seed.log" 2>&1 &
  seed_pid=$!
  for _ in $(seq 100); do grep -q serving "$TMP/seed.log" && break; sleep 0.1; done
  kill "$seed_pid"; wait "$seed_pid" || true
  at=$(($(date +%s%3N) + 86400000))
  sqlite3 "$TMP/data/ward.db" "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i < $OFFLINE-1)
    INSERT INTO sessions(id,owner,username,cert_cn,cert_ou,expiry_s,expire_at,protocol,bridge,will_msg_id,will_delay_s)
    SELECT 'offline-'||i,'',NULL,NULL,NULL,86400,$at+i,5,0,0,0 FROM n;"
fi
"$WARD" serve -c "$TMP/ward.conf" "${DATA[@]}" --workers "$WORKERS" --log-level warn >"$TMP/ward.log" 2>&1 &
WARD_PID=$!; PIDS+=("$WARD_PID")
wait_port "$PORT" && wait_port "$HTTP" || { cat "$TMP/ward.log" >&2; exit 2; }
URL="http://127.0.0.1:$HTTP$SCRAPE_PATH"
AUTH=(-H "Authorization: Bearer $KEY")

# The idle clients, held well past both parts.
: >"$TMP/idle.out"
"$WARD" bench idle -h 127.0.0.1 -p "$PORT" -n "$CLIENTS" --hold 3600 >"$TMP/idle.out" 2>&1 &
IDLE_PID=$!; PIDS+=("$IDLE_PID")
for _ in $(seq 600); do grep -q connected "$TMP/idle.out" && break; sleep 0.1; done
grep -q connected "$TMP/idle.out" || { echo "bench: the idle clients did not connect" >&2; cat "$TMP/idle.out" >&2; exit 1; }
open=$(curl -sf "${AUTH[@]}" "http://127.0.0.1:$HTTP/api/status" |
  /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["connections"])')

# ms of broker CPU from tick counts
ms() { awk -v t="$1" -v k="$TICK" 'BEGIN {printf "%.0f", t * 1000 / k}'; }

# Part 1: the scrapes, one keep-alive connection, one after the other.
urls=(); for _ in $(seq "$SCRAPES"); do urls+=("$URL"); done
t0=$(date +%s%N); c0=$(cpu_ticks "$WARD_PID")
curl -sf "${AUTH[@]}" "${urls[@]}" >"$TMP/scrapes"
c1=$(cpu_ticks "$WARD_PID"); t1=$(date +%s%N)
wall_ns=$((t1 - t0))
# The same wall time without scrapes: what the idle clients cost anyway.
c2=$(cpu_ticks "$WARD_PID")
sleep "$(awk -v n="$wall_ns" 'BEGIN {printf "%.3f", n / 1e9}')"
c3=$(cpu_ticks "$WARD_PID")
bytes=$(wc -c <"$TMP/scrapes")
per=$(awk -v a=$((c1 - c0)) -v b=$((c3 - c2)) -v k="$TICK" -v n="$SCRAPES" \
  'BEGIN {d = a - b; if (d < 0) d = 0; printf "%.2f", d * 1000 / k / n}')
wall_per=$(awk -v n="$wall_ns" -v s="$SCRAPES" 'BEGIN {printf "%.2f", n / 1e6 / s}')

# Part 2: throughput without, then with a scrape every second.
run_p2p() {
  "$WARD" bench p2p -h 127.0.0.1 -p "$PORT" -n "$N" -q 0 -d "$SECS" --json 2>/dev/null |
    /usr/bin/python3 -c 'import json,sys; print(int(json.load(sys.stdin)["rate"]))'
}
# Alternating, best of ADMIN_ROUNDS each: the machine is shared, and a
# single pair of runs moves with whatever else runs.
best() { if [ "$1" -gt "$2" ]; then echo "$1"; else echo "$2"; fi; }
scraping() {
  ( while :; do curl -sf "${AUTH[@]}" -o /dev/null "$URL" || true; sleep 1; done ) &
  SCRAPER=$!; PIDS+=("$SCRAPER")
}
quiet=0; scraped=0
for _ in $(seq "$ROUNDS"); do
  quiet=$(best "$quiet" "$(run_p2p)")
  scraping
  scraped=$(best "$scraped" "$(run_p2p)")
  kill "$SCRAPER" 2>/dev/null || true; wait "$SCRAPER" 2>/dev/null || true
done

echo "# Admin listener: $SCRAPE_PATH scrape cost, $CLIENTS idle clients (ward, $WORKERS workers, $(nproc) cores)"
echo
echo "| figure | value |"
echo "|---|---|"
echo "| idle MQTT clients connected (/api/status) | $open |"
offline=$(grep -m1 "^ward_sessions{state=\"offline\"}" "$TMP/scrapes" | awk "{print \$2}")
echo "| offline sessions (seeded; ward_sessions{state=\"offline\"}) | $OFFLINE; ${offline:-?} |"
echo "| scrapes of $SCRAPE_PATH (one keep-alive connection) | $SCRAPES, $((bytes / SCRAPES)) bytes each |"
echo "| broker CPU over the scrapes | $(ms $((c1 - c0))) ms |"
echo "| broker CPU over the same wall time, no scrapes | $(ms $((c3 - c2))) ms |"
echo "| **broker CPU ms per scrape** (threshold $MAX_MS) | **$per** |"
echo "| wall ms per scrape (client side) | $wall_per |"
echo "| p2p q0 msg/s ($N pairs, best of $ROUNDS), no scrapes | $quiet |"
echo "| p2p q0 msg/s ($N pairs, best of $ROUNDS), a scrape every second | $scraped |"
echo "| ratio with/without | $(awk -v a="$scraped" -v b="$quiet" 'BEGIN {printf "%.2f", b ? a / b : 0}') |"
if awk -v p="$per" -v m="$MAX_MS" 'BEGIN {exit !(p > m)}'; then
  echo "bench: a scrape cost $per ms of broker CPU, over the threshold of $MAX_MS ms" >&2
  exit 1
fi
