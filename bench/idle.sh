#!/usr/bin/env bash
# Idle connections (issue 17): ward, Debian's mosquitto and Debian's
# nats-server (its MQTT listener) each hold N idle MQTT 3.1.1 connections
# from `ward bench idle` (keep-alive pings answered, checked), one broker at
# a time, each started fresh with `ulimit -n 20000`. The broker's RSS growth
# per connection is measured once all are connected, then a QoS 1 pub/sub
# stream (`ward bench p2p -n 1 -r 100`, one publisher and one subscriber of
# its own) runs alongside and reports its latency. Then the same with mutual
# TLS (P-256 certificates from `ward cert dev`). Prints a markdown table.
#
#   IDLE_N          plain connections (default 2000; the issue's run: 18000)
#   IDLE_TLS_N      mutual TLS connections (default 2000; the issue's: 10000)
#   IDLE_KEEPALIVE  keep alive and ping period, seconds (default 10); the
#                   connections are held one period past the stream
#   IDLE_RATE       connections opened per second at first (default 1000)
#   IDLE_STREAM     seconds the stream runs while the connections are held (5)
#   IDLE_SOURCES    the generator's source addresses (127.0.0.2-127.0.0.9)
#   IDLE_ONLY       only these brokers ("ward mosquitto nats") and cases
#                   ("plain mtls"), e.g. IDLE_ONLY="ward plain"
#   BENCH_WORKERS   ward's worker threads (default 2)
#   WARD            the ward binary (default build/ward)
#
# The generator runs one process per 9,000 connections (--procs): a process
# may hold 20,000 descriptors here, like the broker.
set -euo pipefail
cd "$(dirname "$0")/.."
WARD=${WARD:-build/ward}
N=${IDLE_N:-2000}
TLS_N=${IDLE_TLS_N:-2000}
KA=${IDLE_KEEPALIVE:-10}
RATE=${IDLE_RATE:-1000}
STREAM=${IDLE_STREAM:-5}
SOURCES=${IDLE_SOURCES:-127.0.0.2-127.0.0.9}
ONLY=${IDLE_ONLY:-}
WORKERS=${BENCH_WORKERS:-2}
# shellcheck source=bench/lib.sh
. bench/lib.sh
need "$WARD" mosquitto nats-server

PKI="$TMP/pki"
"$WARD" cert dev "$PKI" 2>/dev/null
TLSC=(-h localhost --cafile "$PKI/ca.crt" --cert "$PKI/client.crt" --key "$PKI/client.key")

# shellcheck source=bench/scale_lib.sh
. bench/scale_lib.sh

jget() { /usr/bin/python3 -c 'import json,sys
try: d=json.loads(open(sys.argv[1]).read().splitlines()[-1])
except Exception: d={}
print(" ".join(str(d.get(k, "-")) for k in sys.argv[2:]))' "$@"; }

# measure BROKER CASE COUNT -> "kb_per_conn growth_mb connect_s pongs/pings missing p50 p99 lost"
measure() {
  local b=$1 c=$2 n=$3 tls=() procs rss0 rss1 gen
  [ "$c" = mtls ] && tls=("${TLSC[@]}")
  start "$b" "$c"
  # one short stream first: what any broker allocates for its first clients
  "$WARD" bench p2p -h 127.0.0.1 "${tls[@]}" -p "$BPORT" -n 1 -q 1 -c 100 >/dev/null 2>&1 || true
  sleep 1
  rss0=$(rss_kb "$BPID")
  procs=$(( (n + 8999) / 9000 ))
  "$WARD" bench idle -h 127.0.0.1 "${tls[@]}" -p "$BPORT" -n "$n" --procs "$procs" \
    --source "$SOURCES" --keepalive "$KA" --connect-rate "$RATE" --hold $((STREAM + KA + 3)) --json \
    >"$TMP/idle.out" 2>"$TMP/idle.err" &
  gen=$!
  if ! wait_line "$TMP/idle.out" connected "$gen" 150; then
    stop; wait "$gen" 2>/dev/null || true
    echo "- - - - - - - - $(head -c 120 "$TMP/idle.err" | tr '\n|' '  ')"
    return
  fi
  sleep 2 # what a broker does just after the last CONNACK settles
  rss1=$(rss_kb "$BPID")
  "$WARD" bench p2p -h 127.0.0.1 "${tls[@]}" -p "$BPORT" -n 1 -q 1 -r 100 -d "$STREAM" --json \
    >"$TMP/stream.out" 2>/dev/null || true
  wait "$gen" || echo "bench: $b $c: the generator: $(tail -c 300 "$TMP/idle.err")" >&2
  stop
  local kb mb
  kb=$(awk -v a="$rss0" -v b="$rss1" -v n="$n" 'BEGIN {printf "%.2f", (b - a) / n}')
  mb=$(awk -v a="$rss0" -v b="$rss1" 'BEGIN {printf "%.1f", (b - a) / 1024}')
  read -r cs pings pongs missing <<<"$(jget "$TMP/idle.out" connect_s pings pongs pings_missing)"
  read -r p50 p99 lost <<<"$(jget "$TMP/stream.out" p50_ms p99_ms lost)"
  local pct
  pct=$(awk -v a="$pongs" -v b="$pings" 'BEGIN {if (b + 0 > 0) printf "%.1f%%", 100 * a / b; else print "-"}')
  echo "$kb $mb $cs $pct $missing $p50 $p99 $lost"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 > 0 && a + 0 > 0) printf "%.2f", a / b; else print "-"}'; }

echo "# Idle connections: broker RSS growth per connection ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), MQTT 3.1.1, keep alive ${KA}s, ${RATE} connects/s, $(date -u '+%Y-%m-%d %H:%M') UTC)"
echo
echo "| case | connections | KB/conn ward | mosquitto | nats-server | ward/mosq | ward/nats | growth MB w/m/n | connect s w/m/n | pings answered w/m/n | missing w/m/n | stream p50 ms w/m/n | p99 ms w/m/n | stream lost w/m/n |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for c in plain mtls; do
  n=$N; [ "$c" = mtls ] && n=$TLS_N
  declare -A R=()
  for b in ward mosquitto nats; do
    if pick "$b" "$c"; then R[$b]=$(measure "$b" "$c" "$n"); else R[$b]="- - - - - - - -"; fi
  done
  pick ward "$c" || pick mosquitto "$c" || pick nats "$c" || continue
  read -r wk wm wc wp wx w5 w9 wl <<<"${R[ward]}"
  read -r mk mm mc mp mx m5 m9 ml <<<"${R[mosquitto]}"
  read -r nk nm nc np nx n5 n9 nl <<<"${R[nats]}"
  echo "| $c | $n | $wk | $mk | $nk | $(ratio "$wk" "$mk") | $(ratio "$wk" "$nk") | $wm/$mm/$nm | $wc/$mc/$nc | $wp/$mp/$np | $wx/$mx/$nx | $w5/$m5/$n5 | $w9/$m9/$n9 | $wl/$ml/$nl |"
done
