#!/usr/bin/env bash
# Messages/s through a bridge over mutual TLS: ward's bridge against
# Debian's mosquitto bridging the same way, side by side on the same load.
#
#   publishers --> edge broker (ward or mosquitto) ==mTLS bridge==> upstream --> subscribers
#
# The upstream is one ward (mTLS listener requiring a client certificate,
# plus a plain listener for the subscribers), the same for both edges, so
# the figures differ by the edge's bridge alone. The load generator is
# `ward bench p2p` with its subscribers on the upstream (--sub-port); each
# case runs twice per edge and the better run is reported. QoS 1 runs
# check that nothing is lost, duplicated or reordered end to end.
#
#   BENCH_SECONDS   seconds per case (default 5)
#   BENCH_N         publishers/subscribers per case (default 20)
#   BENCH_RATE      per-publisher rate for the rate-limited rows (default 2000/s)
#   WARD            the ward binary (default build/ward)
#   BENCH_ONLY      only the rows whose name contains this ("q1", "/s")
#   BENCH_KEEP_LOGS append the edges' logs to this file
set -euo pipefail
cd "$(dirname "$0")/.."
WARD=${WARD:-build/ward}
SECS=${BENCH_SECONDS:-5}
N=${BENCH_N:-20}
# shellcheck source=bench/lib.sh
. bench/lib.sh
need "$WARD" mosquitto

PKI="$TMP/pki"
"$WARD" cert dev "$PKI" >/dev/null 2>&1

UP_TCP=$(free_port); UP_TLS=$(free_port)
"$WARD" serve --workers 2 -l "tcp://127.0.0.1:$UP_TCP" -l "mtls://127.0.0.1:$UP_TLS" \
  --certfile "$PKI/server.crt" --keyfile "$PKI/server.key" --cafile "$PKI/ca.crt" \
  --max-queued 1000000 --max-inflight 65535 --log-level warn >"$TMP/upstream.log" 2>&1 &
PIDS+=("$!"); wait_port "$UP_TCP"

# start_edge KIND QOS -> sets EDGE_PID, EDGE_PORT
start_edge() {
  EDGE_PORT=$(free_port)
  if [ "$1" = ward ]; then
    cat >"$TMP/edge.conf" <<CONF
listeners.tcp { bind = "127.0.0.1:$EDGE_PORT" }
mqtt { max_mqueue_len = 1000000, max_inflight_window = 65535 }
log { level = warn }
bridges.mqtt.up {
  server = "tls+mqtt-tcp://localhost:$UP_TLS"
  proto_ver = 4
  clientid = "edge-ward"
  clean_start = true
  max_send_queue_len = 1000000
  max_inflight = 1000
  ssl { certfile = "$PKI/client.crt", keyfile = "$PKI/client.key", cacertfile = "$PKI/ca.crt" }
  forwards = [ { remote_topic = "bench/#", local_topic = "bench/#", qos = $2 } ]
}
CONF
    "$WARD" serve -c "$TMP/edge.conf" --workers 2 >"$TMP/edge-ward.log" 2>&1 &
  else
    cat >"$TMP/edge-mosq.conf" <<CONF
user root
allow_anonymous true
persistence false
max_queued_messages 1000000
max_inflight_messages 0
listener $EDGE_PORT 127.0.0.1
connection up
address localhost:$UP_TLS
clientid edge-mosquitto
cleansession true
bridge_protocol_version mqttv311
bridge_cafile $PKI/ca.crt
bridge_certfile $PKI/client.crt
bridge_keyfile $PKI/client.key
bridge_max_packet_size 0
topic bench/# out $2
CONF
    mosquitto -c "$TMP/edge-mosq.conf" >"$TMP/edge-mosq.log" 2>&1 &
  fi
  EDGE_PID=$!; PIDS+=("$EDGE_PID"); wait_port "$EDGE_PORT"
  # The bridge must be up before the load starts.
  for _ in $(seq 100); do
    grep -qiE "connected to|connecting bridge" "$TMP"/edge-*.log 2>/dev/null && break
    sleep 0.1
  done
  sleep 1
}
stop_edge() { kill "$EDGE_PID" 2>/dev/null || true; wait "$EDGE_PID" 2>/dev/null || true; [ -z "${BENCH_KEEP_LOGS:-}" ] || cat "$TMP"/edge-*.log >>"$BENCH_KEEP_LOGS"; rm -f "$TMP"/edge-*.log; }

# run_case QOS [ARGS] -> "rate p50 p99 lost cpu_s" for the running edge (better of two)
run_case() {
  local q=$1; shift
  local best="" best_rate=-1
  for _ in 1 2; do
    local c0 c1 out rate
    c0=$(cpu_ticks "$EDGE_PID")
    out=$("$WARD" bench p2p -n "$N" -q "$q" "$@" -h 127.0.0.1 -p "$EDGE_PORT" --sub-port "$UP_TCP" \
      -d "$SECS" --json 2>/dev/null || true)
    c1=$(cpu_ticks "$EDGE_PID")
    rate=$(echo "$out" | /usr/bin/python3 -c 'import json,sys
try: print(int(json.load(sys.stdin)["rate"]))
except Exception: print(0)')
    if [ "$rate" -gt "$best_rate" ]; then
      best_rate=$rate
      best=$(echo "$out" | /usr/bin/python3 -c 'import json,sys
try: d=json.load(sys.stdin)
except Exception: d={"rate":0,"p50_ms":0,"p99_ms":0,"lost":0}
print(int(d["rate"]), "%.2f" % d["p50_ms"], "%.2f" % d["p99_ms"], d["lost"])')
      best="$best $(awk -v a="$c0" -v b="$c1" -v t="$TICK" 'BEGIN {printf "%.2f", (b - a) / t}')"
    fi
  done
  echo "$best"
}

ratio() { if [ "${2:-0}" -gt 0 ]; then awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; else echo "-"; fi; }
echo "# ward bridge vs mosquitto bridge over mTLS ($(nproc) cores, ${SECS}s per case, best of 2, $N publishers -> edge -> ward upstream -> $N subscribers, 64-byte payloads, MQTT 3.1.1)"
echo
echo "| case | ward bridge msg/s | mosquitto bridge | ward/mosq | p50 ms w/m | p99 ms w/m | edge CPU s w/m | lost w/m |"
echo "|---|---|---|---|---|---|---|---|"
# The floods measure what each edge gets through when publishers outrun the
# link; the rate-limited rows (RATE per publisher) measure loss and latency
# under a load both can carry.
RATE=${BENCH_RATE:-2000}
ROWS=("bridge p2p q0|0|" "bridge p2p q0 @${RATE}/s|0|-r $RATE" "bridge p2p q1|1|" "bridge p2p q1 @${RATE}/s|1|-r $RATE")
for row in "${ROWS[@]}"; do
  IFS='|' read -r name q args <<<"$row"
  [ -z "${BENCH_ONLY:-}" ] || [[ "$name" == *"$BENCH_ONLY"* ]] || continue
  # shellcheck disable=SC2086
  { start_edge ward "$q"; read -r wr wp50 wp99 wl wc <<<"$(run_case "$q" $args)"; stop_edge; }
  # shellcheck disable=SC2086
  { start_edge mosquitto "$q"; read -r mr mp50 mp99 ml mc <<<"$(run_case "$q" $args)"; stop_edge; }
  echo "| $name | $wr | $mr | $(ratio "$wr" "$mr") | $wp50/$mp50 | $wp99/$mp99 | $wc/$mc | $wl/$ml |"
done
