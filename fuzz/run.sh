#!/bin/sh
# A bounded fuzzing run of every libFuzzer target: `make fuzz-run` (part of
# `make test`). Each target starts from its committed corpus (read, never
# written), runs SECONDS with a fixed seed, one process, and fails the run on
# any crash, leak, timeout or sanitizer report. New inputs it finds go to
# BUILD/fuzz-new/TARGET and a reproducer to BUILD/fuzz-crashes/; merge the
# useful ones with `-merge=1` into fuzz/corpus/TARGET (see fuzz/README.md).
#
#   fuzz/run.sh [BUILD [SECONDS]]     defaults: build-fuzz 5
set -eu
build=${1:-build-fuzz}
seconds=${2:-5}
root=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$build/fuzz-crashes"
failed=
for bin in "$build"/fuzz/fuzz_*; do
    [ -x "$bin" ] || continue
    name=${bin##*/fuzz_}
    [ -d "$root/corpus/$name" ] || { echo "fuzz-run: no corpus for $name" >&2; exit 1; }
    new="$build/fuzz-new/$name"
    mkdir -p "$new"
    log="$build/fuzz-crashes/$name.log"
    if "$bin" -seed=1 -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$build/fuzz-crashes/$name-" \
        "$new" "$root/corpus/$name" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
        echo "fuzz-run: $name ok: $runs runs, $rate exec/s, $cov"
    else
        echo "fuzz-run: $name FAILED (log: $log)" >&2
        grep -E 'ERROR|SUMMARY|Test unit written|==[0-9]+==' "$log" | head -20 >&2 || true
        failed="$failed $name"
    fi
done
if [ -n "$failed" ]; then
    echo "fuzz-run: crashes in:$failed; reproduce with $build/fuzz/fuzz_NAME FILE" >&2
    exit 1
fi
