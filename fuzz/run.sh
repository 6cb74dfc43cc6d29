#!/usr/bin/env bash
# A bounded fuzzing run of every libFuzzer target: `make fuzz-run` (part of
# `make test`). Each target starts from its committed corpus (read, never
# written), runs SECONDS with a fixed seed, one process, and fails the run on
# any crash, leak, timeout or sanitizer report. Targets run JOBS at a time
# (each is one process on one core). New inputs it finds go to
# BUILD/fuzz-new/TARGET and a reproducer to BUILD/fuzz-crashes/; merge the
# useful ones with `-merge=1` into fuzz/corpus/TARGET (see fuzz/README.md).
#
#   fuzz/run.sh [BUILD [SECONDS [JOBS]]]     defaults: build-fuzz 5 nproc
set -eu
build=${1:-build-fuzz}
seconds=${2:-5}
jobs=${3:-$(nproc)}
root=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$build/fuzz-crashes"

# One target; its verdict goes to its own .status file, so targets running
# side by side never interleave their lines.
run_one() {
    local bin=$1 name=${1##*/fuzz_}
    local new="$build/fuzz-new/$name" log="$build/fuzz-crashes/$name.log"
    mkdir -p "$new"
    if "$bin" -seed=1 -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$build/fuzz-crashes/$name-" \
        "$new" "$root/corpus/$name" >"$log" 2>&1; then
        local runs rate cov
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
        echo "ok: $runs runs, $rate exec/s, $cov" >"$log.status"
    else
        echo "FAILED" >"$log.status"
    fi
}

names=()
for bin in "$build"/fuzz/fuzz_*; do
    [ -x "$bin" ] || continue
    name=${bin##*/fuzz_}
    [ -d "$root/corpus/$name" ] || { echo "fuzz-run: no corpus for $name" >&2; exit 1; }
    rm -f "$build/fuzz-crashes/$name.log.status"
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n || true
    done
    run_one "$bin" &
    names+=("$name")
done
wait
failed=
for name in "${names[@]}"; do
    log="$build/fuzz-crashes/$name.log"
    status=$(cat "$log.status" 2>/dev/null || echo "FAILED (no verdict)")
    case $status in
    ok*) echo "fuzz-run: $name $status" ;;
    *)
        echo "fuzz-run: $name $status (log: $log)" >&2
        grep -E 'ERROR|SUMMARY|Test unit written|==[0-9]+==' "$log" | head -20 >&2 || true
        failed="$failed $name"
        ;;
    esac
done
if [ -n "$failed" ]; then
    echo "fuzz-run: crashes in:$failed; reproduce with $build/fuzz/fuzz_NAME FILE" >&2
    exit 1
fi
