#!/usr/bin/env bash
# Core NATS: ward's NATS listener against Debian's nats-server, the same load
# from bench/natsload (a generator built on nats.go, an independent client),
# one broker at a time, each case NATS_REPEAT times (the better run is
# reported). Prints a markdown table: delivered messages/s, p50/p99 latency,
# the broker's CPU seconds over the case (utime+stime from /proc/PID/stat)
# and per message delivered (the generator shares the cores: a broker can be
# ahead on CPU while the rate is the generator's), messages lost, ward/nats-server; then RSS with 2000 idle mTLS connections.
#
# ward's side runs only if `ward serve -l nats://...` starts and sends INFO
# (a probe); otherwise its columns are "-" and the script says why.
#
#   BENCH_SECONDS (5)  BENCH_N (20) clients per side  BENCH_WORKERS (2)
#   NATS_REPEAT (2)  NATS_BATCH (1000) messages a publisher sends per flush
#   NATS_IDLE (2000) idle mTLS connections  NATS_REQ_WINDOW (8)
#   WARD (build/ward)  NATSLOAD a prebuilt bench/natsload (else built here)
#   BENCH_ONLY only the rows whose name contains this (any case)
#   BENCH_KEEP_LOGS keep the brokers' logs (their folder is printed)
set -euo pipefail
cd "$(dirname "$0")/.."
WARD=${WARD:-build/ward}
SECS=${BENCH_SECONDS:-5}
N=${BENCH_N:-20}
WORKERS=${BENCH_WORKERS:-2}
REPEAT=${NATS_REPEAT:-2}
BATCH=${NATS_BATCH:-1000}
IDLE=${NATS_IDLE:-2000}
REQW=${NATS_REQ_WINDOW:-8}
ONLY=${BENCH_ONLY:-}
# shellcheck source=bench/lib.sh
. bench/lib.sh
need "$WARD" nats-server
if [ -n "${BENCH_KEEP_LOGS:-}" ]; then
  cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "logs: $TMP" >&2
  }
fi
wanted() { [ -z "$ONLY" ] || [[ "${1,,}" == *"${ONLY,,}"* ]]; }

LOAD=${NATSLOAD:-}
if [ -z "$LOAD" ]; then
  need go
  LOAD="$TMP/natsload"
  GO111MODULE=off GOPATH=/usr/share/gocode go build -o "$LOAD" ./bench/natsload
fi

PKI="$TMP/pki"
"$WARD" cert dev "$PKI" 2>/dev/null
TLSC=(-ca "$PKI/ca.crt" -cert "$PKI/client.crt" -key "$PKI/client.key")

# probe PORT -> 0 when the first thing the server sends is a NATS INFO line
probe() {
  /usr/bin/python3 - "$1" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    s.settimeout(2)
    sys.exit(0 if s.recv(4096).startswith(b"INFO ") else 1)
except Exception:
    sys.exit(1)
PY
}

WARD_OK=0 WARD_WHY=""
start_ward() {
  WARD_PORT=$(free_port); WARD_TLS=$(free_port)
  "$WARD" serve --workers "$WORKERS" -l "nats://127.0.0.1:$WARD_PORT" \
    -l "nats+mtls://127.0.0.1:$WARD_TLS" --certfile "$PKI/server.crt" --keyfile "$PKI/server.key" \
    --cafile "$PKI/ca.crt" --log-level warn >"$TMP/ward.log" 2>&1 &
  WARD_PID=$!; PIDS+=("$WARD_PID")
  local up=1
  for _ in $(seq 100); do # the port, or ward gone (an unknown scheme ends it at once)
    kill -0 "$WARD_PID" 2>/dev/null || break
    (exec 3<>/dev/tcp/127.0.0.1/"$WARD_PORT") 2>/dev/null && { up=0; break; }
    sleep 0.1
  done
  if [ "$up" != 0 ]; then
    WARD_WHY="ward serve -l nats://... did not listen: $(head -c 300 "$TMP/ward.log" | tr '\n' ' ')"
    return 0
  fi
  if ! probe "$WARD_PORT"; then
    WARD_WHY="ward's nats:// listener accepted but sent no INFO within 2 s"
    return 0
  fi
  WARD_OK=1
}
start_nats() {
  NATS_PORT=$(free_port); NATS_TLS=$(free_port)
  cat >"$TMP/nats.conf" <<CONF
server_name: bench
listen: 127.0.0.1:$NATS_PORT
max_payload: 1048576
CONF
  nats-server -c "$TMP/nats.conf" >"$TMP/nats.log" 2>&1 &
  NATS_PID=$!; PIDS+=("$NATS_PID"); wait_port "$NATS_PORT"
  # One client listener per nats-server: a second one for mutual TLS.
  cat >"$TMP/nats2.conf" <<CONF
server_name: bench2
listen: 127.0.0.1:$NATS_TLS
tls { cert_file: "$PKI/server.crt", key_file: "$PKI/server.key", ca_file: "$PKI/ca.crt", verify: true, timeout: 5 }
CONF
  nats-server -c "$TMP/nats2.conf" >"$TMP/nats2.log" 2>&1 &
  NATS2_PID=$!; PIDS+=("$NATS2_PID"); wait_port "$NATS_TLS"
}

# run_case PID URL ARGS... -> "rate p50 p99 lost cpu_s cpu_us_per_msg" (the
# better of NATS_REPEAT runs by rate; CPU per message delivered, or per
# connection in the connect rows)
run_case() {
  local pid=$1 url=$2; shift 2
  local best="0 0.00 0.00 - 0.00 -" best_rate=-1
  for _ in $(seq "$REPEAT"); do
    local c0 c1 out rate cpu
    c0=$(cpu_ticks "$pid")
    out=$(timeout $((${SECS%.*} + 60)) "$LOAD" -s "$url" -d "$SECS" -b "$BATCH" -w "$REQW" -json "$@" 2>/dev/null || true)
    c1=$(cpu_ticks "$pid")
    cpu=$(awk -v a="$c0" -v b="$c1" -v t="$TICK" 'BEGIN {printf "%.2f", (b - a) / t}')
    read -r rate line <<<"$(echo "$out" | /usr/bin/python3 -c 'import json,sys
try:
    d = json.load(sys.stdin)
    print(int(d["rate"]), int(d["rate"]), "%.2f" % d["p50_ms"], "%.2f" % d["p99_ms"], d["lost"] + d["failed"],
          d["received"] or d["connects"])
except Exception:
    print(0, 0, "0.00", "0.00", "-", 0)')"
    local n=${line##* }
    line=${line% *}
    if [ "$rate" -gt "$best_rate" ]; then
      best_rate=$rate
      best="$line $cpu $(awk -v c="$cpu" -v n="$n" 'BEGIN { if (n > 0) printf "%.2f", c * 1e6 / n; else print "-" }')"
    fi
  done
  echo "$best"
}

# idle_rss PID URL -> the broker's VmRSS (kB) while NATS_IDLE idle mTLS
# connections are held (and how many were connected)
idle_rss() {
  local pid=$1 url=$2 out bp rss=""
  out="$TMP/idle.out"
  : >"$out"
  timeout 120 "$LOAD" -s "$url" -m idle -n "$IDLE" -hold 3 -json "${TLSC[@]}" >/dev/null 2>"$out" &
  bp=$!
  for _ in $(seq 900); do grep -q connected "$out" && break; sleep 0.1; done
  sleep 1 # let the broker settle its buffers
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  wait "$bp" || true
  echo "$rss $(awk '/connected/ {print $2}' "$out")"
}

ROWS=(
  "p2p|-m p2p -n $N"
  "fan-out 1->$N|-m fanout -n $N"
  "fan-in $N->1|-m fanin -n $N"
  "request/reply ($N x $REQW in flight)|-m req -n $N"
  "connects/s|-m conn -n $N"
)
start_nats
start_ward
echo "# Core NATS: ward vs nats-server ($(nproc) cores, ${SECS}s per case, best of $REPEAT, 64-byte payloads, natsload on nats.go, ward --workers $WORKERS)"
echo
[ "$WARD_OK" = 1 ] || echo "ward not measured: $WARD_WHY"
[ "$WARD_OK" = 1 ] || echo
echo "| case | ward msg/s | nats-server | ward/nats | p50 ms w/n | p99 ms w/n | CPU s w/n | CPU us/msg w/n | lost w/n |"
echo "|---|---|---|---|---|---|---|---|---|"
ratio() { if [ "${2:-0}" -gt 0 ] && [ "${1:-0}" != "-" ]; then awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; else echo "-"; fi; }
line() { # NAME WARD_RESULT NATS_RESULT
  local wr wp50 wp99 wl wc wu nr np50 np99 nl nc nu
  read -r wr wp50 wp99 wl wc wu <<<"$2"
  read -r nr np50 np99 nl nc nu <<<"$3"
  echo "| $1 | $wr | $nr | $(ratio "$wr" "$nr") | $wp50/$np50 | $wp99/$np99 | $wc/$nc | $wu/$nu | $wl/$nl |"
}
NONE="- - - - - -"
for tls in 0 1; do
  for row in "${ROWS[@]}"; do
    name=${row%%|*}; args=${row#*|}
    if [ "$tls" = 1 ]; then
      name="mTLS $name"
      [ "$name" = "mTLS connects/s" ] && name="mTLS full handshakes/s"
    fi
    wanted "$name" || continue
    if [ "$tls" = 1 ]; then
      # shellcheck disable=SC2086
      n=$(run_case "$NATS2_PID" "tls://localhost:$NATS_TLS" $args "${TLSC[@]}")
      w=$NONE
      # shellcheck disable=SC2086
      [ "$WARD_OK" = 1 ] && w=$(run_case "$WARD_PID" "tls://localhost:$WARD_TLS" $args "${TLSC[@]}")
    else
      # shellcheck disable=SC2086
      n=$(run_case "$NATS_PID" "nats://127.0.0.1:$NATS_PORT" $args)
      w=$NONE
      # shellcheck disable=SC2086
      [ "$WARD_OK" = 1 ] && w=$(run_case "$WARD_PID" "nats://127.0.0.1:$WARD_PORT" $args)
    fi
    line "$name" "$w" "$n"
  done
done
if wanted "RSS kB, $IDLE idle mTLS connections"; then
  read -r ni nn <<<"$(idle_rss "$NATS2_PID" "tls://localhost:$NATS_TLS")"
  wi="-" wn="-"
  [ "$WARD_OK" = 1 ] && read -r wi wn <<<"$(idle_rss "$WARD_PID" "tls://localhost:$WARD_TLS")"
  echo "| RSS kB, $IDLE idle mTLS connections (lower is better; connected w/n) | $wi | $ni | $(ratio "$wi" "$ni") | | | | | $wn/$nn connected |"
fi
echo
peak() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo "-"; }
w="-"; [ "$WARD_OK" = 1 ] && w=$(peak "$WARD_PID")
echo "Peak RSS (VmHWM): ward $w kB, nats-server $(peak "$NATS_PID") kB (plain), $(peak "$NATS2_PID") kB (mTLS)"
