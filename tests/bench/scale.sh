#!/usr/bin/env bash
# recfresh benchmark at the issue's sizes: rows 5 (bulk load) and 8 (memory
# and disk) for millions of lists, which the default bench (40,000 lists)
# cannot show. Two runs go into one store, as days do:
#   1. a run of about M million lists (500,000 x M subjects), written as
#      zstd NDJSON (0.7 GB per million lists), then `recfresh load`ed;
#   2. a second run of three times as many lists, loaded beside it;
# after each, `recfresh run` serves uniform random reads (wrk, 2 threads, 32
# connections) for three periods, and the table gives the daemon's RSS
# after each against the cache bound. Baseline (c), SST build plus ingest of
# the same number of keys, is measured once, at the first run's size.
#
# Usage: bash tests/bench/scale.sh [--millions M] [--read-s S] [--out DIR]
#   --millions M  lists of the first run, in millions (default 1)
#   --read-s S    seconds of each read period (default 60)
#   --out DIR     where the store, logs and scale.md go (default
#                 build-bench/scale; needs about 50 GB free for M=1)
# Environment: RECFRESH, RFBENCH: use these binaries instead of building.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)

M=1 READ_S=60 OUT=
while [ $# -gt 0 ]; do
        case $1 in
        --millions) M=$2; shift ;;
        --read-s) READ_S=$2; shift ;;
        --out) OUT=$2; shift ;;
        -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "scale.sh: unknown option $1" >&2; exit 2 ;;
        esac
        shift
done
case $M$READ_S in '' | *[!0-9]*) echo "scale.sh: integers only" >&2; exit 2 ;; esac

if [ -z "${RECFRESH:-}" ] || [ -z "${RFBENCH:-}" ]; then
        cmake -S "$SRC" -B "$SRC/build-bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
        cmake --build "$SRC/build-bench" -j"$(nproc)" --target recfresh rfbench >/dev/null
        RECFRESH=$SRC/build-bench/recfresh RFBENCH=$SRC/build-bench/rfbench
fi
for t in wrk zstd; do
        command -v $t >/dev/null || { echo "scale.sh: needs $t" >&2; exit 1; }
done
OUT=${OUT:-$SRC/build-bench/scale}
rm -rf "$OUT"
mkdir -p "$OUT"
DB=$OUT/db
PIDS=()
cleanup() {
        local p
        for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
        wait 2>/dev/null || true
}
trap cleanup EXIT
log() { echo "scale: $*" >&2; }
rss_mb() { awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
val() { sed -n "s/^$2=//p" "$1" | tail -1; }
ROWS=$OUT/rows.md
: >"$ROWS"

# stage SUBJECTS RUN_ID: load a run, serve reads, record the figures.
stage() {
        local subjects=$1 run=$2 items=$((2500000 * M))
        local w="--seed 1 --subjects $subjects --items $items"
        "$RFBENCH" info $w >"$OUT/info-$run.out"
        local lists keys
        lists=$(val "$OUT/info-$run.out" lists)
        keys=$((lists + $(val "$OUT/info-$run.out" index_entries)))
        log "$run: $lists lists, loading"
        local before
        before=$(du -sb "$DB" 2>/dev/null | cut -f1 || echo 0)
        (while :; do
                du -sb "$DB" 2>/dev/null | cut -f1 || true
                sleep 5
        done) >"$OUT/disk-$run.txt" &
        local dm=$!
        # The input is written first: generated beside the load, it would
        # take a core of the two from it.
        "$RFBENCH" gen-lists $w --run-id "$run" --out /dev/stdout |
                zstd -q -1 -T1 >"$OUT/lists-$run.ndjson.zst"
        "$RFBENCH" exec -- "$RECFRESH" load --data-dir "$DB" --run-id "$run" \
                --set log.level=info "$OUT/lists-$run.ndjson.zst" \
                >"$OUT/load-$run.out" 2>"$OUT/load-$run.err"
        rm -f "$OUT/lists-$run.ndjson.zst"
        kill $dm 2>/dev/null || true
        local wall rss after peak
        wall=$(val "$OUT/load-$run.out" wall_s)
        rss=$(($(val "$OUT/load-$run.out" maxrss_kb) / 1024))
        after=$(du -sb "$DB" | cut -f1)
        peak=$(sort -n "$OUT/disk-$run.txt" | tail -1)
        echo "| 5. load of run $run: $lists lists x 100 (+ index) | $(awk -v k=$keys -v s="$wall" 'BEGIN { printf "%.0f", k / s }') keys/s ($wall s, peak RSS $rss MB; store $(awk -v b=$before -v a=$after 'BEGIN { printf "%.1f -> %.1f GB", b / 1e9, a / 1e9 }'), $(awk -v p=$peak 'BEGIN { printf "%.1f", p / 1e9 }') GB at the peak) | $C_FIG | $(awk -v k=$keys -v s="$wall" -v c="$C_RATE" 'BEGIN { printf "%.2f", k / s / c }') |" >>"$ROWS"

        log "$run: serving reads"
        "$RECFRESH" broker --partitions 16 --bootstrap-file "$OUT/bootstrap-$run" \
                >"$OUT/broker-$run.log" 2>&1 &
        PIDS+=($!)
        local i
        for i in $(seq 200); do [ -s "$OUT/bootstrap-$run" ] && break; sleep 0.05; done
        rm -f "$OUT/http.addr"
        "$RECFRESH" run --brokers "$(cat "$OUT/bootstrap-$run")" --data-dir "$DB" \
                --http 127.0.0.1:0 --set "http.addr_file=$OUT/http.addr" \
                --set log.level=info --set recompute.full_at= \
                --set recompute.incremental_every=0 \
                -X fetch.wait.max.ms=5 >"$OUT/daemon-$run.log" 2>&1 &
        local d=$!
        PIDS+=($d)
        for i in $(seq 1200); do
                grep -q "consumers assigned" "$OUT/daemon-$run.log" 2>/dev/null && break
                sleep 0.1
        done
        cat >"$OUT/read.lua" <<EOF
math.randomseed(1)
request = function()
  return wrk.format("GET", string.format("/v1/lists/u%08d/home?limit=20",
                    math.random(0, $subjects - 1)))
end
EOF
        local figs="idle $(rss_mb $d) MB" rps="" last
        for i in 1 2 3; do
                wrk -t2 -c32 -d"${READ_S}s" -s "$OUT/read.lua" \
                        "http://$(cat "$OUT/http.addr")" >"$OUT/wrk-$run-$i.out" 2>&1
                last=$(rss_mb $d)
                figs="$figs, $last MB"
                rps="$rps${rps:+, }$(awk '/^Requests\/sec/ { printf "%.0f", $2 }' "$OUT/wrk-$run-$i.out")"
        done
        local bound
        bound=$(curl -s "http://$(cat "$OUT/http.addr")/metrics" | awk '
                /^recfresh_store_block_cache_capacity_bytes / { b += $2 }
                /^recfresh_list_cache_capacity_bytes / { b += $2 }
                /^recfresh_hide_cache_capacity_bytes / { b += $2 }
                END { printf "%.0f", b / 1048576 }')
        echo "| 8. daemon RSS, $(du -sb "$DB" | awk '{ printf "%.1f", $1 / 1e9 }') GB store, reads of run $run (${READ_S} s periods: $rps req/s) | $figs | cache bound $bound MB (blocks, lists, hides) | $(awk -v r="$last" -v b=$bound 'BEGIN { printf "%.2f", r / b }') |" >>"$ROWS"
        kill $d "${PIDS[-2]}"
        wait $d "${PIDS[-2]}" 2>/dev/null || true
}

S1=${SCALE_SUBJECTS:-$((500000 * M))} # the env: a quick check of the script
log "baseline (c) at the first run's size"
"$RFBENCH" info --seed 1 --subjects $S1 --items $((2500000 * M)) >"$OUT/info-c.out"
"$RFBENCH" rocks --dir "$OUT/rocks" --keys 100000 --value-bytes 2048 \
        --threads 2 --seconds 1 --sst-lists "$(val "$OUT/info-c.out" lists)" \
        --sst-index "$(val "$OUT/info-c.out" index_entries)" >"$OUT/rocks.out"
rm -rf "$OUT/rocks"
C_RATE=$(val "$OUT/rocks.out" sst_rate)
C_FIG="(c) $C_RATE keys/s"
stage $S1 scale-1
stage $((3 * S1)) scale-2

{
        echo "| row | figure | baseline | ratio |"
        echo "|---|---|---|---|"
        cat "$ROWS"
        echo
        echo "Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo), $(date -u +%F). Command: bash tests/bench/scale.sh --millions $M --read-s $READ_S"
} | tee "$OUT/scale.md"
rm -rf "$DB"
