#!/usr/bin/env bash
# Runs ward, Debian's mosquitto and Debian's nats-server (MQTT listener) side by
# side on the same loopback load, with `ward bench` as the load generator, and
# prints a markdown table with each broker's delivered messages/s, latency,
# CPU time and peak RSS, and the ratios ward/mosquitto and ward/nats-server.
#
# Each case runs twice per broker and the better run is reported (the
# machine is shared, so the better of two is the steadier figure).
#
#   BENCH_SECONDS   seconds per case (default 5)
#   BENCH_N         publishers/subscribers per case (default 20)
#   BENCH_RATE      per-publisher rate for the latency rows (default 2000/s)
#   BENCH_WORKERS   ward's worker threads (default 2)
#   WARD            the ward binary (default build/ward)
#   BENCH_ONLY      run only the rows whose name contains this text, any case
#                   ("tls": the mutual TLS rows; "handshakes": the two handshake rows)
set -euo pipefail
cd "$(dirname "$0")/.."
WARD=${WARD:-build/ward}
SECS=${BENCH_SECONDS:-5}
N=${BENCH_N:-20}
RATE=${BENCH_RATE:-2000}
WORKERS=${BENCH_WORKERS:-2}
ONLY=${BENCH_ONLY:-}
# shellcheck source=bench/lib.sh
. bench/lib.sh
need "$WARD" mosquitto nats-server

PKI="$TMP/pki"
"$WARD" cert dev "$PKI" 2>/dev/null
TLSC=(--cafile "$PKI/ca.crt" --cert "$PKI/client.crt" --key "$PKI/client.key")

start_ward() {
  WARD_PORT=$(free_port); WARD_TLS=$(free_port)
  "$WARD" serve --workers "$WORKERS" -l "tcp://127.0.0.1:$WARD_PORT" --max-queued 1000000 \
    -l "mtls://127.0.0.1:$WARD_TLS" --certfile "$PKI/server.crt" --keyfile "$PKI/server.key" \
    --cafile "$PKI/ca.crt" \
    --max-inflight 65535 --log-level warn >"$TMP/ward.log" 2>&1 &
  WARD_PID=$!; PIDS+=("$WARD_PID"); wait_port "$WARD_PORT"
}
start_mosquitto() {
  MOSQ_PORT=$(free_port); MOSQ_TLS=$(free_port)
  cat >"$TMP/mosquitto.conf" <<CONF
user root
per_listener_settings false
allow_anonymous true
persistence false
max_queued_messages 1000000
max_inflight_messages 0
listener $MOSQ_PORT 127.0.0.1
listener $MOSQ_TLS 127.0.0.1
cafile $PKI/ca.crt
certfile $PKI/server.crt
keyfile $PKI/server.key
require_certificate true
CONF
  mosquitto -c "$TMP/mosquitto.conf" >"$TMP/mosquitto.log" 2>&1 &
  MOSQ_PID=$!; PIDS+=("$MOSQ_PID"); wait_port "$MOSQ_PORT"
}
start_nats() {
  NATS_PORT=$(free_port); NATS_MQTT=$(free_port)
  mkdir -p "$TMP/js"
  cat >"$TMP/nats.conf" <<CONF
server_name: bench
listen: 127.0.0.1:$NATS_PORT
jetstream { store_dir: "$TMP/js" }
mqtt { listen: 127.0.0.1:$NATS_MQTT }
CONF
  nats-server -c "$TMP/nats.conf" >"$TMP/nats.log" 2>&1 &
  NATS_PID=$!; PIDS+=("$NATS_PID"); wait_port "$NATS_MQTT"
  # nats-server has one MQTT listener: a second server for the mTLS rows.
  NATS2_PORT=$(free_port); NATS_TLS=$(free_port)
  mkdir -p "$TMP/js2"
  cat >"$TMP/nats2.conf" <<CONF
server_name: bench2
listen: 127.0.0.1:$NATS2_PORT
jetstream { store_dir: "$TMP/js2" }
mqtt {
  listen: 127.0.0.1:$NATS_TLS
  tls { cert_file: "$PKI/server.crt", key_file: "$PKI/server.key", ca_file: "$PKI/ca.crt", verify: true }
}
CONF
  nats-server -c "$TMP/nats2.conf" >"$TMP/nats2.log" 2>&1 &
  NATS2_PID=$!; PIDS+=("$NATS2_PID"); wait_port "$NATS_TLS"
}

peak_rss() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

# case NAME PID PORT ARGS... -> "rate p50 p99 cpu_s lost" (better of two runs)
run_case() {
  local pid=$1 port=$2; shift 2
  local best="" best_rate=-1
  for _ in 1 2; do
    local c0 c1 out rate
    c0=$(cpu_ticks "$pid")
    out=$("$WARD" bench "$@" -p "$port" -h 127.0.0.1 -d "$SECS" --json 2>/dev/null || true)
    c1=$(cpu_ticks "$pid")
    rate=$(echo "$out" | /usr/bin/python3 -c 'import json,sys
try: d=json.load(sys.stdin); print(int(d["rate"]))
except Exception: print(0)')
    if [ "$rate" -gt "$best_rate" ]; then
      best_rate=$rate
      best=$(echo "$out" | /usr/bin/python3 -c 'import json,sys
try: d=json.load(sys.stdin)
except Exception: d={"rate":0,"p50_ms":0,"p99_ms":0,"lost":0,"connects":0}
print(int(d["rate"]), "%.2f" % d["p50_ms"], "%.2f" % d["p99_ms"], d["lost"])')
      best="$best $(awk -v a="$c0" -v b="$c1" -v t="$TICK" 'BEGIN {printf "%.2f", (b - a) / t}')"
    fi
  done
  echo "$best"
}

# rss PID PORT -> the broker's VmRSS (kB) while 2000 idle mTLS clients are connected
idle_rss() {
  local pid=$1 port=$2 out
  out=$(mktemp)
  "$WARD" bench idle -h localhost -p "$port" "${TLSC[@]}" -n 2000 --hold 3 >"$out" 2>&1 &
  local bp=$!
  for _ in $(seq 300); do grep -q connected "$out" && break; sleep 0.1; done
  awk '/VmRSS/ {print $2}' "/proc/$pid/status"
  wait "$bp" || true
  rm -f "$out"
}

ROWS=(
  "p2p q0|p2p -n $N -q 0"
  "p2p q1|p2p -n $N -q 1"
  "fan-in q0|fanin -n $N -q 0"
  "fan-in q1|fanin -n $N -q 1"
  "fan-out q0|fanout -n $N -q 0"
  "fan-out q1|fanout -n $N -q 1"
  "p2p q1 @${RATE}/s (latency)|p2p -n $N -q 1 -r $RATE"
  "connects/s|conn -n $N"
)
TLS_ROWS=(
  "mTLS p2p q0|p2p -n $N -q 0"
  "mTLS p2p q1|p2p -n $N -q 1"
  "mTLS full handshakes/s|conn -n $N"
  "mTLS resumed handshakes/s|conn -n $N --resume"
)

start_ward; start_mosquitto; start_nats
echo "# ward vs mosquitto vs nats-server ($(nproc) cores, ${SECS}s per case, best of 2, 64-byte payloads, MQTT 3.1.1)"
echo
echo "| case | ward msg/s | mosquitto | nats-server | ward/mosq | ward/nats | p50 ms w/m/n | p99 ms w/m/n | CPU s w/m/n | lost w/m/n |"
echo "|---|---|---|---|---|---|---|---|---|---|"
ratio() { if [ "${2:-0}" -gt 0 ]; then awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; else echo "-"; fi; }
wanted() { [ -z "$ONLY" ] || [[ "${1,,}" == *"${ONLY,,}"* ]]; }
for row in "${ROWS[@]}"; do
  name=${row%%|*}; args=${row#*|}
  wanted "$name" || continue
  # shellcheck disable=SC2086
  read -r wr wp50 wp99 wl wc <<<"$(run_case "$WARD_PID" "$WARD_PORT" $args)"
  # shellcheck disable=SC2086
  read -r mr mp50 mp99 ml mc <<<"$(run_case "$MOSQ_PID" "$MOSQ_PORT" $args)"
  # shellcheck disable=SC2086
  read -r nr np50 np99 nl nc <<<"$(run_case "$NATS_PID" "$NATS_MQTT" $args)"
  echo "| $name | $wr | $mr | $nr | $(ratio "$wr" "$mr") | $(ratio "$wr" "$nr") | $wp50/$mp50/$np50 | $wp99/$mp99/$np99 | $wc/$mc/$nc | $wl/$ml/$nl |"
done
for row in "${TLS_ROWS[@]}"; do
  name=${row%%|*}; args=${row#*|}
  wanted "$name" || continue
  # shellcheck disable=SC2086
  read -r wr wp50 wp99 wl wc <<<"$(run_case "$WARD_PID" "$WARD_TLS" $args -h localhost "${TLSC[@]}")"
  # shellcheck disable=SC2086
  read -r mr mp50 mp99 ml mc <<<"$(run_case "$MOSQ_PID" "$MOSQ_TLS" $args -h localhost "${TLSC[@]}")"
  # shellcheck disable=SC2086
  read -r nr np50 np99 nl nc <<<"$(run_case "$NATS2_PID" "$NATS_TLS" $args -h localhost "${TLSC[@]}")"
  echo "| $name | $wr | $mr | $nr | $(ratio "$wr" "$mr") | $(ratio "$wr" "$nr") | $wp50/$mp50/$np50 | $wp99/$mp99/$np99 | $wc/$mc/$nc | $wl/$ml/$nl |"
done
if wanted "RSS kB, 2000 idle mTLS clients"; then
  wi=$(idle_rss "$WARD_PID" "$WARD_TLS"); mi=$(idle_rss "$MOSQ_PID" "$MOSQ_TLS"); ni=$(idle_rss "$NATS2_PID" "$NATS_TLS")
  echo "| RSS kB, 2000 idle mTLS clients (lower is better) | $wi | $mi | $ni | $(ratio "$wi" "$mi") | $(ratio "$wi" "$ni") | | | | |"
fi
echo
echo "Peak RSS (VmHWM): ward $(peak_rss "$WARD_PID") kB, mosquitto $(peak_rss "$MOSQ_PID") kB, nats-server $(peak_rss "$NATS_PID") kB"
