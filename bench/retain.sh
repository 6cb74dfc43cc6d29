#!/usr/bin/env bash
# One SUBSCRIBE carrying many literal filters against a large retained store:
# ward against Debian's mosquitto, side by side, same load.
#
# Each row starts both brokers afresh, retains R messages dev/<i>/state (one
# connection, then a QoS 1 publish to know they are all in), then, best of
# BENCH_RUNS times, a new client sends one SUBSCRIBE with F distinct literal
# filters (spread over the store, each matching one message)
# and the time is taken from that write until the SUBACK and the F retained
# messages have all arrived (counted in bytes, parsed and checked after the
# clock stops). MQTT 3.1.1, QoS 0.
#
#   BENCH_RUNS   runs per row and broker, the best reported (default 3)
#   BENCH_ROWS   "R:F R:F ..." (default "20000:1000 40000:20000"; the second
#                is the case of issue 11: 16-45 s under the old store)
#   WARD         the ward binary (default build/ward)
set -euo pipefail
cd "$(dirname "$0")/.."
WARD=${WARD:-build/ward}
RUNS=${BENCH_RUNS:-3}
ROWS=${BENCH_ROWS:-"20000:1000 40000:20000"}
# shellcheck source=bench/lib.sh
. bench/lib.sh
need "$WARD" mosquitto /usr/bin/python3

cat >"$TMP/sub.py" <<'PY'
import socket, sys, time
sys.path.insert(0, "tests/integration")
import mqttwire as m

port, nret, nfil, runs = (int(a) for a in sys.argv[1:5])
topic = "dev/%d/state".__mod__
load = m.connected(port, "bench-load")
load.send(b"".join(m.publish(topic(i), b"on", retain=True) for i in range(nret)))
load.pub("bench/done", b"x", qos=1, pid=1)
load.close()

step = max(nret // nfil, 1)
filters = [topic((i * step) % nret) for i in range(nfil)]
sub = m.subscribe(1, [(f, 0) for f in filters])
want = len(m.frame(m.SUBACK, 0, bytes(2 + nfil)))
want += sum(len(m.publish(f, b"on", retain=True)) for f in filters)
best = None
for r in range(runs):
    c = m.connected(port, "bench-sub-%d" % r)
    c.sock.settimeout(300)
    got = bytearray()
    t0 = time.perf_counter()
    c.sock.sendall(sub)
    while len(got) < want:
        chunk = c.sock.recv(1 << 20)
        if not chunk:
            sys.exit("closed after %d of %d bytes" % (len(got), want))
        got += chunk
    dt = time.perf_counter() - t0
    c.buf = got
    pubs = [c.recv(0) for _ in range(nfil + 1)]
    assert pubs[0].type == m.SUBACK and all(b == 0 for b in pubs[0].body[2:]), pubs[0]
    assert sorted(p.topic for p in pubs[1:]) == sorted(filters)
    c.send(m.disconnect())
    c.close()
    best = dt if best is None else min(best, dt)
print("%.4f" % best)
PY

start_ward() {
  PORT=$(free_port)
  cat >"$TMP/ward.conf" <<CONF
listeners.tcp { bind = "127.0.0.1:$PORT" }
mqtt { max_packet_size = 4MB, sys_interval = 0 }
log { level = warn }
CONF
  "$WARD" serve -c "$TMP/ward.conf" --workers 2 >"$TMP/ward.log" 2>&1 &
  PID=$!; PIDS+=("$PID"); wait_port "$PORT"
}

start_mosquitto() {
  PORT=$(free_port)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$PORT" \
    >"$TMP/mosq.conf"
  [ "$(id -u)" = 0 ] && echo "user root" >>"$TMP/mosq.conf"
  mosquitto -c "$TMP/mosq.conf" >"$TMP/mosq.log" 2>&1 &
  PID=$!; PIDS+=("$PID"); wait_port "$PORT"
}

# run KIND R F -> seconds (best of RUNS)
run() {
  "start_$1"
  local s
  s=$(/usr/bin/python3 "$TMP/sub.py" "$PORT" "$2" "$3" "$RUNS")
  kill "$PID"; wait "$PID" 2>/dev/null || true
  echo "$s"
}

echo "# one SUBSCRIBE of F literal filters against R retained messages (best of $RUNS, 2 cores)"
echo
echo "| R retained | F filters | ward s | mosquitto s | ward/mosquitto time |"
echo "|---:|---:|---:|---:|---:|"
for row in $ROWS; do
  r=${row%%:*}; f=${row##*:}
  w=$(run ward "$r" "$f")
  q=$(run mosquitto "$r" "$f")
  ratio=$(awk -v a="$w" -v b="$q" 'BEGIN { printf "%.2f", a / b }')
  echo "| $r | $f | $w | $q | $ratio |"
done
