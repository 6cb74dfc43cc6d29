# The brokers bench/idle.sh and bench/storm.sh compare, each started fresh
# for one case with the descriptor limit of issue 17. Sourced after
# bench/lib.sh; uses ONLY, WARD, WORKERS, TMP, PKI and PIDS of the script.

# pick BROKER CASE: whether ONLY ("ward plain", "nats mtls" ...) asks for it.
pick() {
  local b=$1 c=$2
  { [ -z "$ONLY" ] || [[ "$ONLY" != *ward* && "$ONLY" != *mosquitto* && "$ONLY" != *nats* ]] ||
    [[ "$ONLY" == *"$b"* ]]; } &&
    { [ -z "$ONLY" ] || [[ "$ONLY" != *plain* && "$ONLY" != *mtls* ]] || [[ "$ONLY" == *"$c"* ]]; }
}

# start BROKER CASE: one fresh broker with the descriptor limit of the
# issue; sets BPID and BPORT.
start() {
  BPORT=$(free_port)
  local log="$TMP/$1-$2.log"
  case "$1-$2" in
  ward-plain)
    (ulimit -n 20000; exec "$WARD" serve --workers "$WORKERS" -l "tcp://127.0.0.1:$BPORT" \
      --log-level warn) >"$log" 2>&1 & ;;
  ward-mtls)
    (ulimit -n 20000; exec "$WARD" serve --workers "$WORKERS" -l "mtls://127.0.0.1:$BPORT" \
      --certfile "$PKI/server.crt" --keyfile "$PKI/server.key" --cafile "$PKI/ca.crt" \
      --log-level warn) >"$log" 2>&1 & ;;
  mosquitto-*)
    {
      echo "user root"
      echo "allow_anonymous true"
      echo "persistence false"
      echo "max_connections -1"
      echo "listener $BPORT 127.0.0.1"
      if [ "$2" = mtls ]; then
        echo "cafile $PKI/ca.crt"; echo "certfile $PKI/server.crt"
        echo "keyfile $PKI/server.key"; echo "require_certificate true"
      fi
    } >"$TMP/mosquitto.conf"
    (ulimit -n 20000; exec mosquitto -c "$TMP/mosquitto.conf") >"$log" 2>&1 & ;;
  nats-*)
    rm -rf "$TMP/js"; mkdir -p "$TMP/js"
    {
      echo "server_name: idle"
      echo "listen: 127.0.0.1:$(free_port)"
      echo "jetstream { store_dir: \"$TMP/js\" }"
      echo "mqtt {"
      echo "  listen: 127.0.0.1:$BPORT"
      if [ "$2" = mtls ]; then
        echo "  tls { cert_file: \"$PKI/server.crt\", key_file: \"$PKI/server.key\", ca_file: \"$PKI/ca.crt\", verify: true }"
      fi
      echo "}"
    } >"$TMP/nats.conf"
    (ulimit -n 20000; exec nats-server -c "$TMP/nats.conf") >"$log" 2>&1 & ;;
  esac
  BPID=$!; PIDS+=("$BPID")
  wait_port "$BPORT" || { echo "bench: $1 did not start:" >&2; cat "$log" >&2; exit 1; }
}
stop() { kill "$BPID" 2>/dev/null || true; wait "$BPID" 2>/dev/null || true; }
