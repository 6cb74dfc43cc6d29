#!/usr/bin/env bash
# MQTT over WebSocket: ward and Debian's mosquitto (its websockets listener,
# libwebsockets) side by side on the same loopback load from `ward bench
# --ws /mqtt`, over ws:// and wss:// (server certificate from `ward cert
# dev`), with each broker's plain TCP and TLS figures from the same run.
# Prints a markdown table: delivered messages/s, ward/mosquitto, and ward's
# ws figure as a share of its own TCP figure, wss of its TLS figure (the
# target: >= 90%). About five minutes.
#
# Each case runs twice per broker, interleaved, and the better run is
# reported. "CPU us/msg" is the broker's CPU time per delivered message in
# that run: steadier than the rate on a shared machine.
#
#   BENCH_SECONDS   seconds per case (default 3)
#   BENCH_N         publishers/subscribers per case (default 20)
#   BENCH_WORKERS   ward's worker threads (default 2)
#   WARD            the ward binary (default build/ward)
#   BENCH_ONLY      only the loads whose name contains this text ("q1", "fan-in")
set -euo pipefail
cd "$(dirname "$0")/.."
WARD=${WARD:-build/ward}
SECS=${BENCH_SECONDS:-3}
N=${BENCH_N:-20}
WORKERS=${BENCH_WORKERS:-2}
ONLY=${BENCH_ONLY:-}
# shellcheck source=bench/lib.sh
. bench/lib.sh
need "$WARD" mosquitto

PKI="$TMP/pki"
"$WARD" cert dev "$PKI" 2>/dev/null
TLS_CLIENT=(-h localhost --cafile "$PKI/ca.crt")
WSS_CLIENT=(--ws /mqtt "${TLS_CLIENT[@]}")

start_ward() {
  WARD_PORT=$(free_port); WARD_WS=$(free_port); WARD_WSS=$(free_port); WARD_TLS=$(free_port)
  "$WARD" serve --workers "$WORKERS" -l "tcp://127.0.0.1:$WARD_PORT" \
    -l "ws://127.0.0.1:$WARD_WS/mqtt" -l "wss://127.0.0.1:$WARD_WSS/mqtt" \
    -l "tls://127.0.0.1:$WARD_TLS" \
    --certfile "$PKI/server.crt" --keyfile "$PKI/server.key" \
    --max-queued 1000000 --max-inflight 65535 --log-level warn >"$TMP/ward.log" 2>&1 &
  WARD_PID=$!; PIDS+=("$WARD_PID")
  wait_port "$WARD_PORT" && wait_port "$WARD_WS" && wait_port "$WARD_WSS" &&
    wait_port "$WARD_TLS" || {
    echo "bench: ward did not start its listeners:" >&2; cat "$TMP/ward.log" >&2; exit 1; }
}
start_mosquitto() {
  MOSQ_PORT=$(free_port); MOSQ_WS=$(free_port); MOSQ_WSS=$(free_port); MOSQ_TLS=$(free_port)
  cat >"$TMP/mosquitto.conf" <<CONF
user root
per_listener_settings false
allow_anonymous true
persistence false
max_queued_messages 1000000
max_inflight_messages 0
listener $MOSQ_PORT 127.0.0.1
listener $MOSQ_WS 127.0.0.1
protocol websockets
listener $MOSQ_WSS 127.0.0.1
protocol websockets
certfile $PKI/server.crt
keyfile $PKI/server.key
listener $MOSQ_TLS 127.0.0.1
certfile $PKI/server.crt
keyfile $PKI/server.key
CONF
  mosquitto -c "$TMP/mosquitto.conf" >"$TMP/mosquitto.log" 2>&1 &
  MOSQ_PID=$!; PIDS+=("$MOSQ_PID")
  wait_port "$MOSQ_PORT" && wait_port "$MOSQ_WS" && wait_port "$MOSQ_WSS" &&
    wait_port "$MOSQ_TLS" || {
    echo "bench: mosquitto did not start its listeners:" >&2; cat "$TMP/mosquitto.log" >&2; exit 1; }
}

# run_once PID PORT ARGS... -> "rate p50 p99 lost cpu_s cpu_us_per_msg"
run_once() {
  local pid=$1 port=$2; shift 2
  local c0 c1 out
  c0=$(cpu_ticks "$pid")
  out=$("$WARD" bench "$@" -p "$port" -d "$SECS" --json 2>/dev/null || true)
  c1=$(cpu_ticks "$pid")
  echo "$out" | /usr/bin/python3 -c 'import json,sys
cpu = (int(sys.argv[2]) - int(sys.argv[1])) / int(sys.argv[3])
try: d=json.load(sys.stdin)
except Exception: d={"rate":0,"p50_ms":0,"p99_ms":0,"lost":0,"received":0}
us = "%.2f" % (cpu * 1e6 / d["received"]) if d["received"] else "-"
print(int(d["rate"]), "%.2f" % d["p50_ms"], "%.2f" % d["p99_ms"], d["lost"], "%.2f" % cpu, us)' \
    "$c0" "$c1" "$TICK"
}

# The better of two runs of each case; the two runs of a load's six cases
# are interleaved (TCP, ws, wss, TLS, then again), so a change in the load
# others put on the machine touches every case alike.
declare -A BEST
keep() { # keep KEY "result": the result with the higher rate
  local old=${BEST[$1]:-"-1"}
  if [ "${2%% *}" -gt "${old%% *}" ]; then BEST[$1]=$2; fi
}

LOADS=(
  "p2p q0|p2p -n $N -q 0"
  "p2p q1|p2p -n $N -q 1"
  "fan-in q0|fanin -n $N -q 0"
  "fan-in q1|fanin -n $N -q 1"
)

start_ward; start_mosquitto
echo "# MQTT over WebSocket: ward vs mosquitto ($(nproc) cores, ${SECS}s per case, best of 2, 64-byte payloads, MQTT 3.1.1, $N clients)"
echo
echo "| case | ward msg/s | mosquitto | ward/mosq | ward vs its TCP/TLS | CPU us/msg w/m | p50 ms w/m | p99 ms w/m | CPU s w/m | lost w/m |"
echo "|---|---|---|---|---|---|---|---|---|---|"
ratio() { if [ "${2:-0}" -gt 0 ]; then awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; else echo "-"; fi; }
pct() { if [ "${2:-0}" -gt 0 ]; then awk -v a="$1" -v b="$2" 'BEGIN {printf "%.0f%%", 100 * a / b}'; else echo "-"; fi; }
wanted() { [ -z "$ONLY" ] || [[ "${1,,}" == *"${ONLY,,}"* ]]; }
row() { # row NAME TRANSPORT BASE: one line of the table from BEST
  local t
  read -r wr wp50 wp99 wl wc wus <<<"${BEST[w$2]}"
  read -r mr mp50 mp99 ml mc mus <<<"${BEST[m$2]}"
  t=${BEST[w$3]%% *}
  echo "| $1 $2 | $wr | $mr | $(ratio "$wr" "$mr") | $(pct "$wr" "$t") | $wus/$mus | $wp50/$mp50 | $wp99/$mp99 | $wc/$mc | $wl/$ml |"
}
for load in "${LOADS[@]}"; do
  name=${load%%|*}; args=${load#*|}
  wanted "$name" || continue
  BEST=()
  for _ in 1 2; do
    # shellcheck disable=SC2086
    keep wTCP "$(run_once "$WARD_PID" "$WARD_PORT" $args -h 127.0.0.1)"
    # shellcheck disable=SC2086
    keep wws "$(run_once "$WARD_PID" "$WARD_WS" $args -h 127.0.0.1 --ws /mqtt)"
    # shellcheck disable=SC2086
    keep wwss "$(run_once "$WARD_PID" "$WARD_WSS" $args "${WSS_CLIENT[@]}")"
    # shellcheck disable=SC2086
    keep wTLS "$(run_once "$WARD_PID" "$WARD_TLS" $args "${TLS_CLIENT[@]}")"
    # shellcheck disable=SC2086
    keep mTCP "$(run_once "$MOSQ_PID" "$MOSQ_PORT" $args -h 127.0.0.1)"
    # shellcheck disable=SC2086
    keep mws "$(run_once "$MOSQ_PID" "$MOSQ_WS" $args -h 127.0.0.1 --ws /mqtt)"
    # shellcheck disable=SC2086
    keep mwss "$(run_once "$MOSQ_PID" "$MOSQ_WSS" $args "${WSS_CLIENT[@]}")"
    # shellcheck disable=SC2086
    keep mTLS "$(run_once "$MOSQ_PID" "$MOSQ_TLS" $args "${TLS_CLIENT[@]}")"
  done
  row "$name" TCP TCP; row "$name" ws TCP; row "$name" TLS TLS; row "$name" wss TLS
done
echo
echo "Peak RSS (VmHWM): ward $(awk '/VmHWM/ {print $2}' "/proc/$WARD_PID/status") kB, mosquitto $(awk '/VmHWM/ {print $2}' "/proc/$MOSQ_PID/status") kB"
