# Shared by bench/run.sh and bench/bridge.sh (sourced): a temporary folder
# and the background brokers, both cleaned up on exit; loopback ports; CPU.
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# need BIN... exits 2 naming the first that is missing.
need() {
  for bin in "$@"; do
    command -v "$bin" >/dev/null || { echo "bench: $bin not found (make deps)" >&2; exit 2; }
  done
}
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# wait_line FILE TEXT PID SECONDS: until FILE has a line starting with TEXT
# (0), PID has ended or SECONDS have passed (1).
wait_line() {
  local i
  for ((i = 0; i < $4 * 10; i++)); do
    grep -q "^$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { grep -q "^$2" "$1" 2>/dev/null; return; }
    sleep 0.1
  done
  return 1
}
