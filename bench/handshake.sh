#!/usr/bin/env bash
# Full mutual-TLS handshakes per second driven by an independent client:
# `openssl s_time -new` (OpenSSL's defaults: TLS 1.3, X25519 key share, a
# client certificate), BENCH_P processes in parallel for BENCH_SECONDS,
# against ward's mtls listener, nats-server's MQTT listener with TLS verify
# (client certificate required) and mosquitto with require_certificate.
# All three use the same development PKI (`ward cert dev`, ECDSA P-256).
# Then the same load from `ward bench conn` (handshake + MQTT CONNECT/CONNACK
# + DISCONNECT, BENCH_P connections in parallel) for comparison.
#
# Prints a markdown table: handshakes/s (all processes together, wall
# clock), the broker's CPU time per handshake (utime+stime from
# /proc/PID/stat: steadier than the rate on a shared machine, where the
# clients take half the CPU), and ward's ratios. Each case runs twice per
# broker, interleaved; the better run is reported. About a minute.
#
#   BENCH_SECONDS   seconds per case (default 5)
#   BENCH_P         client processes (default 4)
#   BENCH_WORKERS   ward's worker threads (default 2)
#   WARD            the ward binary (default build/ward)
set -euo pipefail
cd "$(dirname "$0")/.."
WARD=${WARD:-build/ward}
SECS=${BENCH_SECONDS:-5}
P=${BENCH_P:-4}
WORKERS=${BENCH_WORKERS:-2}
# shellcheck source=bench/lib.sh
. bench/lib.sh
need "$WARD" mosquitto nats-server openssl

PKI="$TMP/pki"
"$WARD" cert dev "$PKI" 2>/dev/null
CERT=(-cert "$PKI/client.crt" -key "$PKI/client.key" -CAfile "$PKI/ca.crt")

WARD_PORT=$(free_port)
"$WARD" serve --workers "$WORKERS" -l "mtls://127.0.0.1:$WARD_PORT" --certfile "$PKI/server.crt" \
  --keyfile "$PKI/server.key" --cafile "$PKI/ca.crt" --log-level warn --sys-interval 0 \
  >"$TMP/ward.log" 2>&1 &
WARD_PID=$!; PIDS+=("$WARD_PID")

MOSQ_PORT=$(free_port)
cat >"$TMP/mosquitto.conf" <<CONF
user root
allow_anonymous true
persistence false
listener $MOSQ_PORT 127.0.0.1
cafile $PKI/ca.crt
certfile $PKI/server.crt
keyfile $PKI/server.key
require_certificate true
CONF
mosquitto -c "$TMP/mosquitto.conf" >"$TMP/mosquitto.log" 2>&1 &
MOSQ_PID=$!; PIDS+=("$MOSQ_PID")

NATS_PORT=$(free_port); NATS_MQTT=$(free_port)
mkdir -p "$TMP/js"
cat >"$TMP/nats.conf" <<CONF
server_name: hs
listen: 127.0.0.1:$NATS_PORT
jetstream { store_dir: "$TMP/js" }
mqtt {
  listen: 127.0.0.1:$NATS_MQTT
  tls { cert_file: "$PKI/server.crt", key_file: "$PKI/server.key", ca_file: "$PKI/ca.crt", verify: true }
}
CONF
nats-server -c "$TMP/nats.conf" >"$TMP/nats.log" 2>&1 &
NATS_PID=$!; PIDS+=("$NATS_PID")

for port in "$WARD_PORT" "$MOSQ_PORT" "$NATS_MQTT"; do
  wait_port "$port" || { echo "bench: a broker did not start (logs in $TMP)" >&2; exit 1; }
done

now() { date +%s.%N; }

# s_time PID PORT: "handshakes/s cpu_us_per_handshake"
s_time() {
  local pid=$1 port=$2 i c0 c1 t0 t1 total=0
  c0=$(cpu_ticks "$pid"); t0=$(now)
  for i in $(seq "$P"); do
    timeout $((SECS + 20)) openssl s_time -connect "127.0.0.1:$port" -new -time "$SECS" \
      "${CERT[@]}" >"$TMP/st.$i" 2>&1 &
  done
  wait
  t1=$(now); c1=$(cpu_ticks "$pid")
  for i in $(seq "$P"); do
    total=$((total + $(awk '/connections in .* real seconds/ {print $1}' "$TMP/st.$i" | tail -1)))
  done
  awk -v n="$total" -v a="$t0" -v b="$t1" -v c="$((c1 - c0))" -v t="$TICK" \
    'BEGIN { printf "%d %.0f\n", n / (b - a), n ? c / t * 1e6 / n : 0 }'
}

# conn PID PORT: the same from `ward bench conn` (MQTT CONNECT/CONNACK too)
conn() {
  local pid=$1 port=$2 c0 c1 out
  c0=$(cpu_ticks "$pid")
  out=$("$WARD" bench conn -h localhost -p "$port" -n "$P" -d "$SECS" --cafile "$PKI/ca.crt" \
    --cert "$PKI/client.crt" --key "$PKI/client.key" --json 2>/dev/null || true)
  c1=$(cpu_ticks "$pid")
  echo "$out" | /usr/bin/python3 -c 'import json, sys
try: d = json.load(sys.stdin); r, n = int(d["rate"]), int(d.get("connects", 0))
except Exception: r, n = 0, 0
c = int(sys.argv[1]) / int(sys.argv[2]) * 1e6
print(r, round(c / n) if n else 0)' "$((c1 - c0))" "$TICK"
}

best() { # best of two: "rate cpu" with the higher rate
  local a b
  a=$("$@"); b=$("$@")
  if [ "${a%% *}" -ge "${b%% *}" ]; then echo "$a"; else echo "$b"; fi
}

echo "# Full mTLS handshakes/s, independent client (openssl s_time -new, $P processes, ${SECS}s, best of 2)"
echo
echo "| client | ward | mosquitto | nats-server (MQTT) | ward/mosquitto | ward/nats | CPU us/handshake ward / mosq / nats |"
echo "|---|---|---|---|---|---|---|"
for tool in s_time conn; do
  w=$(best "$tool" "$WARD_PID" "$WARD_PORT")
  m=$(best "$tool" "$MOSQ_PID" "$MOSQ_PORT")
  n=$(best "$tool" "$NATS_PID" "$NATS_MQTT")
  name="openssl s_time -new (handshake only)"
  [ "$tool" = conn ] && name="ward bench conn (handshake + CONNECT/CONNACK)"
  awk -v name="$name" -v w="$w" -v m="$m" -v n="$n" 'BEGIN {
    split(w, W, " "); split(m, M, " "); split(n, N, " ")
    printf "| %s | %d | %d | %d | %.2f | %.2f | %d / %d / %d |\n", name, W[1], M[1], N[1],
      M[1] ? W[1] / M[1] : 0, N[1] ? W[1] / N[1] : 0, W[2], M[2], N[2] }'
done
