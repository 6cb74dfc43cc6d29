#!/usr/bin/env bash
# Connect storms (issue 17): ward, Debian's mosquitto and Debian's
# nats-server (its MQTT listener) each with N clients connected by `ward
# bench storm`, which then drops them all at once (a reset, no DISCONNECT,
# like a network blip) and reconnects them all at once: the time until all
# are connected again, the attempts refused (each tried again at once, as a
# client would) and the CONNACK latencies. Plain MQTT 3.1.1, then mutual TLS
# offering the previous TLS session (--resume). One broker at a time, each
# started fresh with its default configuration and `ulimit -n 20000`.
# Prints a markdown table.
#
#   STORM_N         plain clients (default 2000; the issue's run: 10000)
#   STORM_TLS_N     mutual TLS clients (default 2000; the issue's: 10000)
#   STORM_RATE      connections opened per second before the storm (default
#                   1000; the reconnect is all at once)
#   STORM_SOURCES   the generator's source addresses (127.0.0.2-127.0.0.9)
#   STORM_ONLY      only these brokers ("ward mosquitto nats") and cases
#                   ("plain mtls"), e.g. STORM_ONLY="ward mtls"
#   BENCH_WORKERS   ward's worker threads (default 2)
#   WARD            the ward binary (default build/ward)
set -euo pipefail
cd "$(dirname "$0")/.."
WARD=${WARD:-build/ward}
N=${STORM_N:-2000}
TLS_N=${STORM_TLS_N:-2000}
RATE=${STORM_RATE:-1000}
SOURCES=${STORM_SOURCES:-127.0.0.2-127.0.0.9}
ONLY=${STORM_ONLY:-}
WORKERS=${BENCH_WORKERS:-2}
# shellcheck source=bench/lib.sh
. bench/lib.sh
need "$WARD" mosquitto nats-server

PKI="$TMP/pki"
"$WARD" cert dev "$PKI" 2>/dev/null
TLSC=(-h localhost --cafile "$PKI/ca.crt" --cert "$PKI/client.crt" --key "$PKI/client.key" --resume)

# shellcheck source=bench/scale_lib.sh
. bench/scale_lib.sh

# storm BROKER CASE COUNT -> "connect_s reconnect_s refused p50 p99 max exit"
storm() {
  local b=$1 c=$2 n=$3 tls=() rc=0
  [ "$c" = mtls ] && tls=("${TLSC[@]}")
  start "$b" "$c"
  timeout 300 "$WARD" bench storm -h 127.0.0.1 "${tls[@]}" -p "$BPORT" -n "$n" \
    --procs $(( (n + 8999) / 9000 )) --source "$SOURCES" --connect-rate "$RATE" --hold 1 --json \
    >"$TMP/storm.out" 2>"$TMP/storm.err" || rc=$?
  stop
  # the broker's own words about refusals (ward's log, warn level)
  grep -h -i -E "refus|evict|slot" "$TMP/$b-$c.log" 2>/dev/null | tail -n 3 >"$TMP/notes-$b-$c" || true
  /usr/bin/python3 -c 'import json,sys
try: r=json.loads(open(sys.argv[1]).read().splitlines()[-1]).get("last_refusal")
except Exception: r=None
if r: print("the generator: the last refusal:", r)' "$TMP/storm.out" >>"$TMP/notes-$b-$c"
  /usr/bin/python3 -c 'import json,sys
try: d=json.loads(open(sys.argv[1]).read().splitlines()[-1])
except Exception: d={}
g=lambda k: d.get(k, "-")
print(g("connect_s"), g("reconnect_s") if not d.get("error") else "-", g("refused"),
      g("p50_ms"), g("p99_ms"), g("max_ms"), sys.argv[2])' "$TMP/storm.out" "$rc"
  if [ "$rc" != 0 ]; then
    echo "bench: $b $c: $(head -c 300 "$TMP/storm.err")" >&2
  fi
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 > 0 && a + 0 > 0) printf "%.2f", a / b; else print "-"}'; }

echo "# Connect storms: all clients dropped and reconnected at once ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), MQTT 3.1.1, $(date -u '+%Y-%m-%d %H:%M') UTC)"
echo
echo "| case | clients | reconnect all s ward | mosquitto | nats-server | ward/mosq | ward/nats | refused w/m/n | CONNACK p50 ms w/m/n | p99 ms w/m/n | max ms w/m/n | first connect s w/m/n | exit w/m/n |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for c in plain mtls; do
  n=$N; [ "$c" = mtls ] && n=$TLS_N
  declare -A R=()
  for b in ward mosquitto nats; do
    if pick "$b" "$c"; then R[$b]=$(storm "$b" "$c" "$n"); else R[$b]="- - - - - - -"; fi
  done
  pick ward "$c" || pick mosquitto "$c" || pick nats "$c" || continue
  read -r wc wr wx w5 w9 wm we <<<"${R[ward]}"
  read -r mc mr mx m5 m9 mm me <<<"${R[mosquitto]}"
  read -r nc nr nx n5 n9 nm ne <<<"${R[nats]}"
  name=$c; [ "$c" = mtls ] && name="mTLS, resumed"
  echo "| $name | $n | $wr | $mr | $nr | $(ratio "$wr" "$mr") | $(ratio "$wr" "$nr") | $wx/$mx/$nx | $w5/$m5/$n5 | $w9/$m9/$n9 | $wm/$mm/$nm | $wc/$mc/$nc | $we/$me/$ne |"
done
echo
for f in "$TMP"/notes-*; do
  [ -s "$f" ] || continue
  echo "Refusals, ${f##*/notes-}:"
  sed 's/^/    /' "$f"
done
