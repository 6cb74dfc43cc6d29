#!/usr/bin/env bash
# Flow control (issue 12): what each broker does with more than one consumer
# can take. Runs ward (defaults, then mqtt.overload = drop from a config
# file), Debian's mosquitto and Debian's nats-server (MQTT listener) one at a
# time on the same loopback load from `ward bench`, and prints markdown
# tables:
#
#  1. fan-in at QoS 1: FLOW_PUBS publishers x FLOW_RATE msg/s (200-byte
#     payloads, MQTT 3.1.1) for FLOW_SECONDS into one QoS 1 subscriber that
#     holds each PUBACK FLOW_ACK_DELAY (a consumer with that round trip,
#     pipelined): delivered %, messages acknowledged to the publishers and
#     never delivered, p50/p99 latency, the broker's CPU seconds
#     (utime+stime from /proc/PID/stat over the case, connection set-up
#     included);
#  2. QoS 1 overload: FLOW_WINDOW_PUBS publishers as fast as they can (1024
#     in flight each) into the same kind of subscriber: delivered %, and
#     what was acknowledged to the publishers and never delivered;
#  3. a QoS 0 flood: FLOW_FLOOD_PUBS publishers as fast as they can for
#     FLOW_SECONDS into one subscriber: delivered %;
#  4. the window: one QoS 1 consumer with the same ack delay fed by
#     FLOW_WINDOW_PUBS publishers as fast as they can, against ward with
#     mqtt.max_inflight_window = each of FLOW_WINDOWS: delivered msg/s.
#
# Every broker runs with its defaults (queue lengths, windows) apart from
# what a row names: the point is what a deployment gets out of the box.
# A case's "lost" that was never acknowledged is a stall (messages held in
# the broker's socket buffers when the run ended), not a broken QoS 1
# promise; "acknowledged, never delivered" is.
#
#   FLOW_PUBS (2000)  FLOW_RATE (5)  FLOW_SECONDS (10)  FLOW_ACK_DELAY (10ms)
#   FLOW_FLOOD_PUBS (20)  FLOW_WINDOW_PUBS (8)  FLOW_WINDOWS ("64 256 1024 4096")
#   BENCH_WORKERS   ward's worker threads (default 2)
#   WARD            the ward binary (default build/ward)
#   BENCH_ONLY      only the parts whose name contains this: fanin, overload, flood, window
#   BENCH_KEEP_LOGS keep the brokers' logs (printed at the end with their folder)
set -euo pipefail
cd "$(dirname "$0")/.."
WARD=${WARD:-build/ward}
PUBS=${FLOW_PUBS:-2000}
RATE=${FLOW_RATE:-5}
SECS=${FLOW_SECONDS:-10}
DELAY=${FLOW_ACK_DELAY:-10ms}
FLOOD_PUBS=${FLOW_FLOOD_PUBS:-20}
WIN_PUBS=${FLOW_WINDOW_PUBS:-8}
WINDOWS=${FLOW_WINDOWS:-64 256 1024 4096}
WORKERS=${BENCH_WORKERS:-2}
ONLY=${BENCH_ONLY:-}
# shellcheck source=bench/lib.sh
. bench/lib.sh
need "$WARD" mosquitto nats-server
if [ -n "${BENCH_KEEP_LOGS:-}" ]; then # lib.sh's cleanup, keeping the folder
  cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "logs: $TMP" >&2
  }
fi
wanted() { [ -z "$ONLY" ] || [[ "${1,,}" == *"${ONLY,,}"* ]]; }

# Each start_* sets PORT and PID; stop_broker ends it.
start_ward() { # [CONFIG_TEXT]
  PORT=$(free_port)
  printf '%s\n' "${1:-}" >"$TMP/ward-$PORT.conf"
  "$WARD" serve -c "$TMP/ward-$PORT.conf" --workers "$WORKERS" -l "tcp://127.0.0.1:$PORT" \
    --log-level notice >"$TMP/ward-$PORT.log" 2>&1 &
  PID=$!; PIDS+=("$PID"); wait_port "$PORT"
}
start_mosquitto() {
  PORT=$(free_port)
  cat >"$TMP/mosquitto-$PORT.conf" <<CONF
user root
allow_anonymous true
persistence false
listener $PORT 127.0.0.1
CONF
  mosquitto -c "$TMP/mosquitto-$PORT.conf" >"$TMP/mosquitto-$PORT.log" 2>&1 &
  PID=$!; PIDS+=("$PID"); wait_port "$PORT"
}
start_nats() {
  PORT=$(free_port)
  local client; client=$(free_port)
  mkdir -p "$TMP/js-$PORT"
  cat >"$TMP/nats-$PORT.conf" <<CONF
server_name: flow
listen: 127.0.0.1:$client
jetstream { store_dir: "$TMP/js-$PORT" }
mqtt { listen: 127.0.0.1:$PORT }
CONF
  nats-server -c "$TMP/nats-$PORT.conf" >"$TMP/nats-$PORT.log" 2>&1 &
  PID=$!; PIDS+=("$PID"); wait_port "$PORT"
}
stop_broker() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }

# run ARGS... -> "delivered% acked acked_lost p50 p99 rate cpu_s error" for
# the broker PID/PORT; the JSON report is kept in $TMP/last.json.
run() {
  local c0 c1
  c0=$(cpu_ticks "$PID")
  "$WARD" bench "$@" -h 127.0.0.1 -p "$PORT" -s 200 --json >"$TMP/last.json" 2>/dev/null || true
  c1=$(cpu_ticks "$PID")
  /usr/bin/python3 - "$TMP/last.json" "$(awk -v a="$c0" -v b="$c1" -v t="$TICK" 'BEGIN {printf "%.2f", (b - a) / t}')" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception:
    d = {"sent": 0, "received": 0, "acked": 0, "acked_lost": 0, "p50_ms": 0, "p99_ms": 0,
         "rate": 0, "error": "no report"}
pct = 100.0 * d["received"] / d["sent"] if d["sent"] else 0.0
err = (d.get("error") or "-").replace(" ", "_")[:60]
print("%.2f %d %d %.2f %.2f %d %s %s" % (pct, d["acked"], d["acked_lost"], d["p50_ms"],
      d["p99_ms"], d["rate"], sys.argv[2], err))
PY
}

NAMES=("ward" "ward (overload = drop)" "mosquitto" "nats-server")
start_broker() {
  case $1 in
    0) start_ward ;;
    1) start_ward 'mqtt { overload = drop }' ;;
    2) start_mosquitto ;;
    3) start_nats ;;
    *) return 1 ;;
  esac
}

declare -A R
for b in 0 1 2 3; do
  start_broker "$b"
  if wanted fanin; then
    read -r R[fpct$b] R[facked$b] R[flost$b] R[fp50$b] R[fp99$b] R[frate$b] R[fcpu$b] R[ferr$b] \
      <<<"$(run fanin -n "$PUBS" -q 1 -r "$RATE" -d "$SECS" --ack-delay "$DELAY")"
  fi
  if wanted overload; then
    read -r R[opct$b] R[oacked$b] R[olost$b] _ R[op99$b] R[orate$b] R[ocpu$b] R[oerr$b] \
      <<<"$(run fanin -n "$WIN_PUBS" -q 1 -w 1024 -d "$SECS" --ack-delay "$DELAY")"
  fi
  if wanted flood; then
    read -r R[qpct$b] _ _ _ _ R[qrate$b] R[qcpu$b] R[qerr$b] \
      <<<"$(run fanin -n "$FLOOD_PUBS" -q 0 -d "$SECS")"
  fi
  stop_broker
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
row() { # NAME KEY
  local k=$2
  echo "| $1 | ${R[${k}0]} | ${R[${k}1]} | ${R[${k}2]} | ${R[${k}3]} | $(ratio "${R[${k}0]}" "${R[${k}2]}") | $(ratio "${R[${k}0]}" "${R[${k}3]}") |"
}
echo "# Flow control: ward vs mosquitto vs nats-server ($(nproc) cores, $(date -u +%F), MQTT 3.1.1, 200-byte payloads)"
echo
echo "| case | ward | ward, overload = drop | mosquitto | nats-server | ward/mosq | ward/nats |"
echo "|---|---|---|---|---|---|---|"
if wanted fanin; then
  f="fan-in q1, $PUBS pubs x $RATE/s, ${SECS}s, ack delay $DELAY"
  row "$f: delivered %" fpct
  row "$f: acknowledged to publishers" facked
  row "$f: acknowledged, never delivered" flost
  row "$f: delivered msg/s" frate
  row "$f: p50 ms" fp50
  row "$f: p99 ms" fp99
  row "$f: broker CPU s" fcpu
fi
if wanted overload; then
  f="q1 overload, $WIN_PUBS pubs flat out, ${SECS}s, ack delay $DELAY"
  row "$f: delivered %" opct
  row "$f: acknowledged to publishers" oacked
  row "$f: acknowledged, never delivered" olost
  row "$f: delivered msg/s" orate
  row "$f: broker CPU s" ocpu
fi
if wanted flood; then
  f="q0 flood, $FLOOD_PUBS pubs, ${SECS}s, 1 sub"
  row "$f: delivered %" qpct
  row "$f: delivered msg/s" qrate
  row "$f: broker CPU s" qcpu
fi
for b in 0 1 2 3; do
  for k in ferr oerr qerr; do
    if [ "${R[$k$b]:--}" != "-" ]; then echo; echo "${NAMES[$b]} ($k): ${R[$k$b]//_/ }"; fi
  done
done

if wanted window; then
  echo
  echo "## The window: one QoS 1 consumer, ack delay $DELAY, $WIN_PUBS publishers as fast as they can, ${SECS}s"
  echo
  echo "| mqtt.max_inflight_window | delivered msg/s | window / delay (the ceiling) | p99 ms | lost | ward CPU s |"
  echo "|---|---|---|---|---|---|"
  delay_s=$(/usr/bin/python3 -c 'import sys; s=sys.argv[1]
u={"us":1e-6,"ms":1e-3,"s":1.0}
for k in ("us","ms","s"):
    if s.endswith(k) and not (k=="s" and s.endswith(("us","ms"))): print(float(s[:-len(k)])*u[k]); break
else: print(float(s)*1e-3)' "$DELAY")
  for w in $WINDOWS; do
    start_ward "mqtt { max_inflight_window = $w }"
    read -r _ _ _ _ p99 rate cpu err <<<"$(run fanin -n "$WIN_PUBS" -q 1 -w 1024 -d "$SECS" --ack-delay "$DELAY")"
    lost=$(/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["lost"])' "$TMP/last.json" 2>/dev/null || echo "?")
    echo "| $w | $rate | $(awk -v w="$w" -v d="$delay_s" 'BEGIN {printf "%.0f", w / d}') | $p99 | $lost | $cpu |"
    [ "$err" = "-" ] || echo "(window $w: ${err//_/ })"
    stop_broker
  done
fi
