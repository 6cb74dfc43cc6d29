#!/usr/bin/env bash
# Durable state (issue 14): QoS 1 between persistent sessions, so every
# message is stored, and restart with a large stored set. Brokers, one at a
# time, each on a fresh data folder: ward in memory (the reference), ward
# with --data in persistence mode `process` and `fsync`, Debian's mosquitto
# with `persistence true`, Debian's nats-server's MQTT listener (JetStream
# file store). ward's persistent columns run only if `ward serve --data DIR`
# with `persistence { mode = ... }` starts (a probe); otherwise they are
# "-" and the script says why.
#
# 1. Throughput: `ward bench p2p -q 1 --persistent` (clean session false,
#    topics of the run's own), PERSIST_N pairs, PERSIST_SECONDS: delivered
#    msg/s, p50/p99, lost (and acknowledged-then-lost), the broker's CPU
#    seconds; fdatasync+fsync calls per second during the load (the broker
#    runs under `strace -f --seccomp-bpf -e trace=fdatasync,fsync`: only
#    those calls stop it, and each is timestamped, so the count is the load's
#    own); ward's commits/s and messages per commit from
#    $SYS/broker/store/commits (read before and after, when published).
# 2. Restart: a persistent session subscribed to q/# at QoS 1 left offline,
#    PERSIST_RETAINED retained messages and PERSIST_QUEUED acknowledged QoS 1
#    messages queued for it (bench/persist_restart.py), then the broker is
#    stopped (each signal of PERSIST_STOPS: TERM, a clean stop, and KILL, a
#    crash) and started again on the same folder: seconds until the port
#    accepts, until the session's CONNACK (session present?), until its
#    queued messages all arrived, and until a new subscriber to r/# got the
#    retained set; and how many of each came back.
#
#   PERSIST_N (10)  PERSIST_SECONDS (5)  PERSIST_WINDOW (64)
#   PERSIST_RETAINED (1000000)  PERSIST_QUEUED (100000)  PERSIST_STOPS ("TERM KILL")
#   PERSIST_TIMEOUT (300) bound on each fill and each drain, seconds
#   PERSIST_RETAINED_QOS (0) the QoS of the retained messages and of the r/#
#                   subscription that fetches them after the restart (1: each
#                   acknowledged both ways)
#   BENCH_WORKERS (2)  WARD (build/ward)
#   BENCH_ONLY: "throughput" or "restart", or a broker's name (ward, mosquitto, nats)
#   BENCH_KEEP_LOGS keep the brokers' logs and traces (their folder is printed)
set -euo pipefail
cd "$(dirname "$0")/.."
WARD=${WARD:-build/ward}
N=${PERSIST_N:-10}
SECS=${PERSIST_SECONDS:-5}
WINDOW=${PERSIST_WINDOW:-64}
NRET=${PERSIST_RETAINED:-1000000}
NQ=${PERSIST_QUEUED:-100000}
STOPS=${PERSIST_STOPS:-TERM KILL}
TMO=${PERSIST_TIMEOUT:-300}
RQOS=${PERSIST_RETAINED_QOS:-0}
WORKERS=${BENCH_WORKERS:-2}
ONLY=${BENCH_ONLY:-}
# shellcheck source=bench/lib.sh
. bench/lib.sh
need "$WARD" mosquitto nats-server /usr/bin/python3
HAVE_STRACE=0
command -v strace >/dev/null && HAVE_STRACE=1
HAVE_SUB=0
command -v mosquitto_sub >/dev/null && HAVE_SUB=1
if [ -n "${BENCH_KEEP_LOGS:-}" ]; then
  cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "logs: $TMP" >&2
  }
fi
# part_wanted throughput|restart; broker_wanted B
part_wanted() { [ -z "$ONLY" ] || [ "${ONLY,,}" = "$1" ] || { [ "${ONLY,,}" != throughput ] && [ "${ONLY,,}" != restart ]; }; }
broker_wanted() {
  [ -z "$ONLY" ] || [ "${ONLY,,}" = throughput ] || [ "${ONLY,,}" = restart ] ||
    [[ "${NAMES[$1],,}" == *"${ONLY,,}"* ]]
}

NAMES=("ward, in memory" "ward, persistence process" "ward, persistence fsync" "mosquitto, persistence true" "nats-server MQTT (JetStream)")
KEYS=(ward-mem ward-process ward-fsync mosquitto nats)

# start B DIR TRACE: starts broker B on the data folder DIR (kept across a
# restart), under strace when TRACE is 1. Sets PORT, PID (the broker's own
# process), WRAP (the process to signal and wait for: strace or the broker)
# and WHY (non-empty when it did not start).
start() {
  local b=$1 dir=$2 trace=$3 cmd=()
  mkdir -p "$dir"
  [ -f "$dir/port" ] || free_port >"$dir/port"
  PORT=$(cat "$dir/port")
  WHY=""
  case $b in
    0 | 1 | 2)
      local mode=""
      [ "$b" = 1 ] && mode=process
      [ "$b" = 2 ] && mode=fsync
      # ward keeps 100,000 retained messages by default; the others have
      # no such limit, and the restart case stores PERSIST_RETAINED.
      printf 'mqtt { max_retained_messages = 0 }\n' >"$dir/ward.conf"
      if [ -n "$mode" ]; then
        printf 'persistence { mode = %s }\n' "$mode" >>"$dir/ward.conf"
        cmd=("$WARD" serve -c "$dir/ward.conf" --data "$dir/data")
      else
        cmd=("$WARD" serve -c "$dir/ward.conf")
      fi
      cmd+=(--workers "$WORKERS" -l "tcp://127.0.0.1:$PORT" --max-queued 1000000
        --max-inflight 65535 --sys-interval 1 --log-level warn)
      ;;
    3)
      mkdir -p "$dir/db"
      cat >"$dir/mosquitto.conf" <<CONF
user root
allow_anonymous true
persistence true
persistence_location $dir/db/
max_queued_messages 1000000
max_inflight_messages 0
listener $PORT 127.0.0.1
CONF
      cmd=(mosquitto -c "$dir/mosquitto.conf")
      ;;
    4)
      [ -f "$dir/client_port" ] || free_port >"$dir/client_port"
      cat >"$dir/nats.conf" <<CONF
server_name: persist
listen: 127.0.0.1:$(cat "$dir/client_port")
jetstream { store_dir: "$dir/js" }
mqtt { listen: 127.0.0.1:$PORT }
CONF
      cmd=(nats-server -c "$dir/nats.conf")
      ;;
  esac
  if [ "$trace" = 1 ]; then
    strace -f -qq --seccomp-bpf -ttt -e trace=fdatasync,fsync -o "$dir/strace.out" \
      "${cmd[@]}" >>"$dir/broker.log" 2>&1 &
  else
    "${cmd[@]}" >>"$dir/broker.log" 2>&1 &
  fi
  WRAP=$!
  PID=$WRAP
  PIDS+=("$WRAP")
  for _ in $(seq 200); do
    kill -0 "$WRAP" 2>/dev/null || break
    if (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null; then
      # Under strace the broker is strace's child (found once it listens:
      # strace forks a probe of its own first); cleanup must end it too,
      # since strace waits for it.
      if [ "$trace" = 1 ]; then
        PID=$(awk '{print $1}' "/proc/$WRAP/task/$WRAP/children")
        PIDS+=("$PID")
      fi
      return 0
    fi
    sleep 0.05
  done
  WHY="did not start: $(tail -c 300 "$dir/broker.log" | tr '\n' ' ')"
  stop KILL
  return 0
}
# stop SIGNAL: signals the broker, waits for it (60 s at most, then KILL).
# Sets STOP_S, the seconds it took.
stop() {
  local t0 t1
  t0=$(date +%s.%N)
  { # (bash's "Killed" notice for the job goes nowhere)
    if [ -n "${PID:-}" ]; then kill -"$1" "$PID" 2>/dev/null || true; fi
    for _ in $(seq 600); do kill -0 "$WRAP" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$WRAP" 2>/dev/null || true
    wait "$WRAP" 2>/dev/null || true
  } 2>/dev/null
  t1=$(date +%s.%N)
  STOP_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
}

# sys_commits PORT -> ward's $SYS/broker/store/commits, or "-"
sys_commits() {
  [ "$HAVE_SUB" = 1 ] || { echo "-"; return; }
  local v
  # shellcheck disable=SC2016 # $SYS is a topic, not a variable
  v=$(timeout 5 mosquitto_sub -h 127.0.0.1 -p "$1" -t '$SYS/broker/store/commits' -C 1 -W 3 2>/dev/null || true)
  [[ "$v" =~ ^[0-9]+$ ]] && echo "$v" || echo "-"
}

declare -A R
if part_wanted throughput; then
  for b in 0 1 2 3 4; do
    broker_wanted "$b" || continue
    dir="$TMP/t-${KEYS[$b]}"
    start "$b" "$dir" "$HAVE_STRACE"
    if [ -n "$WHY" ]; then R[why$b]=$WHY; continue; fi
    k0=$(sys_commits "$PORT")
    c0=$(cpu_ticks "$PID")
    t0=$(date +%s.%N)
    timeout $((${SECS%.*} + 120)) "$WARD" bench p2p -h 127.0.0.1 -p "$PORT" -n "$N" -q 1 -w "$WINDOW" \
      -d "$SECS" --persistent --json >"$dir/bench.json" 2>"$dir/bench.err" || true
    t1=$(date +%s.%N)
    c1=$(cpu_ticks "$PID")
    k1=$(sys_commits "$PORT")
    stop TERM
    read -r R[rate$b] R[p50$b] R[p99$b] R[lost$b] R[alost$b] R[sec$b] R[recv$b] R[err$b] <<<"$(
      /usr/bin/python3 - "$dir/bench.json" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception:
    d = {"rate": 0, "p50_ms": 0, "p99_ms": 0, "lost": "-", "acked_lost": "-", "elapsed_s": 0,
         "received": 0, "error": "no report"}
err = (d.get("error") or "-").replace(" ", "_")[:80]
print(int(d["rate"]), "%.2f" % d["p50_ms"], "%.2f" % d["p99_ms"], d["lost"], d["acked_lost"],
      "%.3f" % d["elapsed_s"], d["received"], err)
PY
    )"
    R[cpu$b]=$(awk -v a="$c0" -v b="$c1" -v t="$TICK" 'BEGIN {printf "%.2f", (b - a) / t}')
    if [ "$HAVE_STRACE" = 1 ] && [ -f "$dir/strace.out" ]; then
      R[sync$b]=$(awk -v a="$t0" -v b="$t1" '($2 >= a && $2 <= b) && /(fdatasync|fsync)\(/ {n++}
        END {printf "%.0f", n / (b - a)}' "$dir/strace.out")
    else
      R[sync$b]="-"
    fi
    if [ "$k0" != "-" ] && [ "$k1" != "-" ]; then
      R[commits$b]=$(awk -v a="$k0" -v b="$k1" -v s="${R[sec$b]}" 'BEGIN {printf "%.0f", (s > 0) ? (b - a) / s : 0}')
      R[permsg$b]=$(awk -v a="$k0" -v b="$k1" -v m="${R[recv$b]}" 'BEGIN {printf "%.1f", (b > a) ? m / (b - a) : 0}')
    else
      R[commits$b]="-"; R[permsg$b]="-"
    fi
  done

  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a != "-") printf "%.2f", a / b; else print "-" }'; }
  echo "# Persistent sessions, QoS 1 p2p ($(nproc) cores, $(date -u +%F), $N pairs, ${SECS}s, window $WINDOW, 64-byte payloads, MQTT 3.1.1, clean session false)"
  echo
  echo "| broker | delivered msg/s | / ward in memory | / nats-server | p50 ms | p99 ms | lost (acked, then lost) | CPU s | fdatasync+fsync /s | commits/s | msgs/commit |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for b in 0 1 2 3 4; do
    if [ -n "${R[why$b]:-}" ]; then
      echo "| ${NAMES[$b]} | - | - | - | - | - | - | - | - | - | - |"
      continue
    fi
    [ -n "${R[rate$b]:-}" ] || continue
    echo "| ${NAMES[$b]} | ${R[rate$b]} | $(ratio "${R[rate$b]}" "${R[rate0]:-0}") | $(ratio "${R[rate$b]}" "${R[rate4]:-0}") | ${R[p50$b]} | ${R[p99$b]} | ${R[lost$b]} (${R[alost$b]}) | ${R[cpu$b]} | ${R[sync$b]} | ${R[commits$b]} | ${R[permsg$b]} |"
  done
  # Issue 14's targets, where both sides were measured.
  yn() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || a == "" || b == "" || b + 0 <= 0) print "not measured"; else if (a + 0 >= b + 0) print "yes"; else print "no" }'; }
  if [ -n "${R[rate1]:-}" ]; then
    echo "targets: process >= 1/4 of ward in memory: $(yn "${R[rate1]}" "$(awk -v r="${R[rate0]:-0}" 'BEGIN {print r / 4}')");" \
      "process >= 5x nats-server: $(yn "${R[rate1]}" "$(awk -v r="${R[rate4]:-0}" 'BEGIN {print r * 5}')");" \
      "fsync >= 50000 msg/s: $(yn "${R[rate2]:--}" 50000)"
  fi
  for b in 0 1 2 3 4; do
    [ -z "${R[why$b]:-}" ] || echo "${NAMES[$b]}: ${R[why$b]}"
    [ "${R[err$b]:--}" = "-" ] || echo "${NAMES[$b]}: bench: ${R[err$b]//_/ }"
  done
  echo
fi

if part_wanted restart; then
  echo "# Restart with $NRET retained and $NQ queued QoS 1 messages (one offline persistent session; retained messages at QoS $RQOS)"
  echo
  echo "Seconds from the restart: port (accepts), CONNACK, queued all (the session's $NQ arrived), retained all (a new subscriber got $NRET)."
  echo
  echo "| broker | stop | fill s | stop s | port | CONNACK (session present) | queued back / $NQ | queued all | retained back / $NRET (first subscriber) | retained all | RSS kB after |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for b in 1 2 3 4; do
    broker_wanted "$b" || continue
    for sig in $STOPS; do
      dir="$TMP/r-${KEYS[$b]}-$sig"
      start "$b" "$dir" 0
      if [ -n "$WHY" ]; then
        echo "| ${NAMES[$b]} | $sig | - | - | - | - | - | - | - | - | - |"
        echo "(${NAMES[$b]}: $WHY)"
        break
      fi
      fill=$(timeout "$TMO" /usr/bin/python3 bench/persist_restart.py fill "$PORT" "$NRET" "$NQ" "$RQOS" 2>"$dir/fill.err" || true)
      fill_s=$(echo "$fill" | /usr/bin/python3 -c 'import json,sys
try: d=json.load(sys.stdin); print(d["seconds"] if d["queued_acked"] == int(sys.argv[1]) else "failed")
except Exception: print("failed")' "$NQ")
      stop "$sig"
      t0=$(date +%s.%N)
      start "$b" "$dir" 0
      out=$(timeout $((TMO + 30)) /usr/bin/python3 bench/persist_restart.py drain "$PORT" "$NRET" "$NQ" "$t0" "$TMO" 10 "$RQOS" || true)
      rss=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status" 2>/dev/null || echo "-")
      stop TERM
      echo "$out" | /usr/bin/python3 -c 'import json,sys
name, sig, fill, stop, rss = sys.argv[1:6]
try: d = json.load(sys.stdin)
except Exception: d = {"error": "no report"}
f = lambda k: "-" if d.get(k) is None else str(d[k])
print("| %s | %s | %s | %s | %s | %s (%s) | %s | %s | %s (%s) | %s | %s |" % (name, sig, fill,
      stop, f("port_s"), f("connack_s"), f("session_present"), f("queued"), f("queued_s"),
      f("retained"), f("retained_first"), f("retained_s"), rss))
if d.get("error"): print("(%s, %s: %s)" % (name, sig, d["error"]))' "${NAMES[$b]}" "$sig" "$fill_s" "$STOP_S" "$rss"
      [ "$fill_s" != failed ] || echo "(${NAMES[$b]}, $sig: fill failed: $(tail -c 200 "$dir/fill.err" | tr '\n' ' '))"
    done
  done
fi
