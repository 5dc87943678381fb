#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time on its seed corpus (CI runs
# every target this way: no crash, no leak, no undefined behaviour).
# Usage: run_fuzz.sh BINARY CORPUS_DIR SECONDS
set -euo pipefail
bin=$1 corpus=$2 secs=$3
work=$(mktemp -d /tmp/rf-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r "$corpus"/. "$work"/ 2>/dev/null || true
"$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 \
        -print_final_stats=1 "$work" 2>&1 | tail -n 25
