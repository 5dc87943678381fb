#!/usr/bin/env bash
# e2e: batch runs from the command line, as an operator would use them:
#  - `recfresh load` against a stopped store (ingested in-process): a good
#    file activates, a bad one fails validation, keeps the old version, and
#    `recfresh runs show` prints why; a malformed line is reported with its
#    line number; zstd input works, from a file or a pipe; the config's
#    store options apply;
#  - `recfresh runs rollback` against the stopped store;
#  - a load killed by SIGTERM removes the job it was building; what dead
#    loads left beside the spool is removed by the next load and by the
#    daemon;
#  - with the daemon running: `recfresh load` and `runs rollback` are
#    handed over through the spool and the daemon's verdict is printed.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh
command -v zstd >/dev/null || { echo "zstd not installed" >&2; exit 1; }

E2E_DIR=$(mktemp -d /tmp/recfresh-e2e-XXXXXX)
trap e2e_cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
passed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
DB="$E2E_DIR/db"
R() { "$RECFRESH" "$@" --data-dir "$DB" 2>>"$E2E_DIR/cli.log"; }

# batch FILE ITEMS N: N lists for u0..u(N-1) on surface home
batch() {
        local i
        for ((i = 0; i < $3; i++)); do
                printf '{"subject_id":"u%d","surface":"home","list_id":"L%d","generated_at":"2026-11-22T02:00:00Z","expires_at":"2099-01-01T00:00:00Z","model_version":"m1","items":[%s]}\n' \
                        "$i" "$i" "$2"
        done >"$1"
}
ITEMS_A='{"item_id":"a1","score":0.9},{"item_id":"a2","score":0.8}'
ITEMS_B='{"item_id":"b1","score":0.9},{"item_id":"b2","score":0.8}'
ITEMS_DUP='{"item_id":"d1","score":0.9},{"item_id":"d1","score":0.8}'

# --- stopped store ----------------------------------------------------------
batch "$E2E_DIR/a.ndjson" "$ITEMS_A" 20
zstd -q "$E2E_DIR/a.ndjson" -o "$E2E_DIR/a.ndjson.zst"
out=$(R load --run-id day-1 "$E2E_DIR/a.ndjson.zst") ||
        fail "load day-1: $out $(cat "$E2E_DIR/cli.log")"
[[ $out == ok:* ]] || fail "load day-1: $out"
[ "$(served "$E2E_DIR" u3 home)" = a1,a2 ] || fail "day-1 not served"
ok "load (zstd) against a stopped store activates the run"

batch "$E2E_DIR/dup.ndjson" "$ITEMS_DUP" 20
if out=$(R load --run-id day-2 "$E2E_DIR/dup.ndjson"); then
        fail "a run of lists with duplicate items activated: $out"
fi
[[ $out == failed_validation* ]] || fail "day-2: $out"
[ "$(served "$E2E_DIR" u3 home)" = a1,a2 ] || fail "old version not kept"
R runs show day-2 >"$E2E_DIR/show" || fail "runs show"
grep -q "state: *failed_validation" "$E2E_DIR/show" || fail "$(cat "$E2E_DIR/show")"
grep -q "duplicate items 20 of 20" "$E2E_DIR/show" ||
        fail "reasons not shown: $(cat "$E2E_DIR/show")"
ok "failed validation keeps the old version; runs show prints the reasons"

batch "$E2E_DIR/b.ndjson" "$ITEMS_B" 20
sed -i '7s/.*/{"subject_id": broken/' "$E2E_DIR/b.ndjson"
if out=$(R load --run-id day-3 "$E2E_DIR/b.ndjson"); then
        fail "1 malformed line in 20 passed the 1% gate: $out"
fi
grep -q "b.ndjson:7: invalid_json" "$E2E_DIR/cli.log" ||
        fail "line 7 not reported: $(cat "$E2E_DIR/cli.log")"
out=$(R load --run-id day-4 --set runs.max_malformed_pct=10 \
        "$E2E_DIR/b.ndjson") ||
        fail "day-4: $out"
[ "$(served "$E2E_DIR" u3 home)" = b1,b2 ] || fail "day-4 not served"
R runs show day-4 | grep -q "malformed=1" || fail "malformed not counted"
ok "a malformed line is reported with its line number and counted"

# The store options of the config apply to a load as to the daemon: the
# SST files it writes take the column families' compression.
out=$("$RECFRESH" load --data-dir "$E2E_DIR/db-raw" --run-id raw-1 \
        --set store.compression=none "$E2E_DIR/a.ndjson" 2>>"$E2E_DIR/cli.log") ||
        fail "load with store.compression=none: $out"
grep -q "^  compression=kNoCompression" "$E2E_DIR"/db-raw/OPTIONS-* ||
        fail "store.compression=none not applied to the load's store"
! grep -q "^  compression=kLZ4Compression" "$E2E_DIR"/db-raw/OPTIONS-* ||
        fail "a column family of the load's store still compresses"
ok "a load opens the store with the config's store options"

# A pipe cannot be read again from its start: plain and zstd input from
# one load every list, none of them malformed.
for f in a.ndjson a.ndjson.zst; do
        rm -rf "$E2E_DIR/db-pipe"
        out=$(cat "$E2E_DIR/$f" | "$RECFRESH" load --data-dir "$E2E_DIR/db-pipe" \
                --run-id pipe-1 /dev/stdin 2>>"$E2E_DIR/cli.log") ||
                fail "load $f from a pipe: $out $(tail -3 "$E2E_DIR/cli.log")"
        [[ $out == "ok: run pipe-1 active (20 lists)" ]] || fail "pipe $f: $out"
        "$RECFRESH" runs show pipe-1 --data-dir "$E2E_DIR/db-pipe" |
                grep -q "malformed=0" || fail "pipe $f: lines lost"
done
ok "load reads plain and zstd input from a pipe"

# A .zst file cut short (a copy that did not finish) holds whole blocks of
# lists before the cut: the load fails on it, from a file or a pipe, and
# activates nothing.
batch "$E2E_DIR/big.ndjson" "$ITEMS_A" 2000
zstd -q "$E2E_DIR/big.ndjson" -o "$E2E_DIR/big.ndjson.zst"
head -c $(($(stat -c %s "$E2E_DIR/big.ndjson.zst") / 2)) \
        "$E2E_DIR/big.ndjson.zst" >"$E2E_DIR/cut.ndjson.zst"
for src in file pipe; do
        rm -rf "$E2E_DIR/cut" && mkdir "$E2E_DIR/cut"
        if [ $src = file ]; then in="$E2E_DIR/cut.ndjson.zst"; else in=/dev/stdin; fi
        if out=$("$RECFRESH" load --data-dir "$E2E_DIR/cut/db" --run-id cut-1 \
                "$in" <"$E2E_DIR/cut.ndjson.zst" 2>"$E2E_DIR/cut.log"); then
                fail "a truncated .zst loaded ($src): $out"
        fi
        grep -q "recfresh load: $in: truncated zstd frame" "$E2E_DIR/cut.log" ||
                fail "no truncation error ($src): $(cat "$E2E_DIR/cut.log")"
        ! "$RECFRESH" runs list --data-dir "$E2E_DIR/cut/db" 2>/dev/null |
                grep -q "^cut-1" || fail "truncated run recorded ($src)"
        [ "$(served "$E2E_DIR/cut" u3 home)" = "<no_list>" ] ||
                fail "a list of the truncated file is served ($src)"
done
out=$("$RECFRESH" load --data-dir "$E2E_DIR/cut/db" --run-id whole-1 \
        "$E2E_DIR/big.ndjson.zst" 2>>"$E2E_DIR/cli.log") ||
        fail "the whole .zst: $out"
[[ $out == "ok: run whole-1 active (2000 lists)" ]] || fail "whole: $out"
ok "a truncated .zst fails the load and activates nothing"

out=$(R runs rollback) || fail "rollback: $out"
[ "$(served "$E2E_DIR" u3 home)" = a1,a2 ] || fail "rollback not served"
R runs list | grep -q "^day-4 *rolled_back" || fail "$(R runs list)"
out=$(R runs rollback --to day-4) || fail "rollback --to: $out"
[ "$(served "$E2E_DIR" u3 home)" = b1,b2 ] || fail "rollback --to"
ok "runs rollback and rollback --to against a stopped store"

# The build directories of loads that died are removed by the next load
# before it builds its own (they hold up to ~3x a run); a load killed by
# SIGTERM removes the job it was building; a load's directory is its own
# even where a dead load of its pid left one.
DB2="$E2E_DIR/db-sweep"
mkdir -p "$DB2/spool"
bash -c 'exit 0' &
dead=$!
wait $dead # no process has this pid now
mkdir "$DB2/spool/.tmp-load-$dead-Xy12Ab" "$DB2/spool/.tmp-load-$dead" \
        "$DB2/spool/.tmp-load-$$-alive1" "$DB2/spool/.tmp-load-$dead-locked"
touch "$DB2/spool/.tmp-load-$dead-Xy12Ab/versions-000001.sst"
# locked as a load building it locks it (its pid in another namespace)
(
        exec 9<"$DB2/spool/.tmp-load-$dead-locked"
        flock 9
        exec sleep 600
) >/dev/null 2>&1 &
holder=$!
E2E_PIDS+=($holder)
wait_for 20 "lock held" bash -c \
        "! flock -n '$DB2/spool/.tmp-load-$dead-locked' true"
mkfifo "$E2E_DIR/in.fifo"
"$RECFRESH" load --data-dir "$DB2" --run-id sig-1 "$E2E_DIR/in.fifo" \
        >/dev/null 2>>"$E2E_DIR/cli.log" &
lp=$!
# it builds its job, blocked opening the FIFO
wait_for 20 "load building its job" compgen -G "$DB2/spool/.tmp-load-$lp*"
[ ! -e "$DB2/spool/.tmp-load-$dead-Xy12Ab" ] &&
        [ ! -e "$DB2/spool/.tmp-load-$dead" ] ||
        fail "dead loads' directories not removed: $(ls -A "$DB2/spool")"
[ -d "$DB2/spool/.tmp-load-$$-alive1" ] ||
        fail "the build directory of a live process was removed"
[ -d "$DB2/spool/.tmp-load-$dead-locked" ] ||
        fail "a locked build directory was removed"
kill -TERM $lp
st=0
wait $lp || st=$?
[ $st = 143 ] || fail "load killed by SIGTERM: exit $st"
kill $holder
wait $holder || true
rmdir "$DB2/spool/.tmp-load-$dead-locked"
[ "$(ls -A "$DB2/spool")" = ".tmp-load-$$-alive1" ] ||
        fail "SIGTERM left $(ls -A "$DB2/spool")"
# exec: the load has the pid of the shell that made .tmp-load-<pid>
out=$(bash -c 'mkdir "$1/.tmp-load-$$" && exec "$2" load --data-dir "$3" \
        --run-id sweep-1 "$4"' _ "$DB2/spool" "$RECFRESH" "$DB2" \
        "$E2E_DIR/a.ndjson" 2>>"$E2E_DIR/cli.log") ||
        fail "load beside a stale build directory of its pid: $out"
[[ $out == ok:* ]] || fail "sweep-1: $out"
ok "dead loads' leftovers are swept; a killed load leaves no job behind"

# --- daemon running: the spool ---------------------------------------------
start_broker "$E2E_DIR"
start_daemon "$E2E_DIR"
batch "$E2E_DIR/c.ndjson" '{"item_id":"c1","score":0.9}' 20
out=$(R load --run-id day-5 "$E2E_DIR/c.ndjson") || fail "day-5: $out"
[[ $out == ok:* ]] || fail "day-5: $out"
wait_for 20 "day-5 served" served_is "$E2E_DIR" u3 home c1
ok "load beside a running daemon goes through the spool"

out=$(R runs rollback) || fail "rollback (daemon): $out"
wait_for 20 "rollback served" served_is "$E2E_DIR" u3 home b1,b2
if out=$(R runs rollback --to no-such-run); then fail "bad rollback: $out"; fi
[[ $out == error:* ]] || fail "bad rollback: $out"
ok "runs rollback beside a running daemon; a bad target is an error"

bash -c 'exit 0' &
dead=$!
wait $dead
# made whole outside, then moved in: the daemon may sweep at any time
mkdir "$E2E_DIR/stale" "$DB/spool/.tmp-load-$$-alive2"
touch "$E2E_DIR/stale/versions-000001.sst"
mv "$E2E_DIR/stale" "$DB/spool/.tmp-load-$dead-Q1w2E3"
wait_for 20 "the daemon removes a dead load's build directory" \
        test ! -e "$DB/spool/.tmp-load-$dead-Q1w2E3"
[ -d "$DB/spool/.tmp-load-$$-alive2" ] ||
        fail "the daemon removed the build directory of a live process"
ok "the daemon removes what loads that died left beside the spool"

echo "$passed passed"
