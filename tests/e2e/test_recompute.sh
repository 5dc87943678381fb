#!/usr/bin/env bash
# e2e: the recompute queue and refresh runs, driven as a user would with the
# built binaries (`recfresh broker/run/get/queue/refresh`, kcat):
#  - ban -> tombstone -> recompute request -> a scorer stand-in answers with
#    a fresh list -> the served list is full again without the banned item;
#  - SIGKILL between enqueue and acknowledgement, restart: exactly one
#    request, with the same request_id;
#  - `recfresh refresh --full` SIGKILLed halfway resumes without duplicates,
#    and the same run id again sends nothing; the killed one's secondary
#    directory (under TMPDIR) is removed by the next;
#  - a full refresh reaches the subjects whose lists a batch run published
#    (`recfresh load`), not only those with incremental lists;
#  - `recfresh queue --fold` refuses a running daemon's store, and on a
#    stopped one keeps every pending request as it was.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh
command -v kcat >/dev/null || { echo "kcat not installed" >&2; exit 1; }

E2E_DIR=$(mktemp -d /tmp/recfresh-e2e-rc-XXXXXX)
trap e2e_cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
passed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }

# requests SUBJECT: the recompute requests of SUBJECT on the topic, one per
# line as "request_id mode run_id"
requests() {
        kcat -C -b "$BROKERS" -t recs.recompute.v1 -e -q | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if sys.argv[1] in ("*", r["subject_id"]):
        print(r["request_id"], r["mode"], r.get("run_id", "-"), r["subject_id"])
' "$1"
}
count_requests() { requests "$1" | wc -l; }
has_requests() { [ "$(count_requests "$1")" -ge "$2" ]; }

list() { # SUBJECT LIST_ID GENERATED_AT ITEMS...
        local s=$1 id=$2 gen=$3
        shift 3
        local items="" i
        for i in "$@"; do
                items="$items${items:+,}{\"item_id\":\"$i\",\"score\":1}"
        done
        produce recs.lists.v1 "$s" "{\"subject_id\":\"$s\",\"surface\":\"home\",\"list_id\":\"$id\",\"generated_at\":\"$gen\",\"expires_at\":\"2099-01-01T00:00:00Z\",\"model_version\":\"m1\",\"items\":[$items]}"
}

start_broker "$E2E_DIR"
RUNARGS=(--set recompute.full_at= --set recompute.incremental_every=0
        --set surface.default.min_valid=2)
start_daemon "$E2E_DIR" "${RUNARGS[@]}" --set recompute.coalesce_ms=200ms

# --- the loop: ban, request, fresh list from a scorer stand-in -------------
list u1 L1 2026-11-22T01:00:00Z a b c d
wait_for 20 "list served" served_is "$E2E_DIR" u1 home a,b,c,d
produce recs.item-bans.v1 b '{"event_id":"e-b","type":"item_banned","item_id":"b","occurred_at":"2026-11-22T02:00:00Z"}'
wait_for 20 "ban applied" served_is "$E2E_DIR" u1 home a,c,d
wait_for 20 "recompute request" has_requests u1 1
# the stand-in: read the request, answer with a list generated after it
kcat -C -b "$BROKERS" -t recs.recompute.v1 -e -q >"$E2E_DIR/req.json"
python3 - "$E2E_DIR/req.json" <<'PY' || fail "request content"
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
r = [x for x in reqs if x["subject_id"] == "u1"]
assert len(r) == 1, r
r = r[0]
assert r["surfaces"] == ["home"], r
assert r["mode"] == "incremental" and r["priority"] == "normal", r
assert r["reasons"][0]["type"] == "item_banned", r
assert r["reasons"][0]["entity"] == {"kind": "item", "id": "b"}, r
PY
list u1 L2 "$(date -u +%Y-%m-%dT%H:%M:%S.999Z)" a c d e
wait_for 20 "fresh list served" served_is "$E2E_DIR" u1 home a,c,d,e
[ "$(count_requests u1)" -eq 1 ] || fail "more than one request for u1"
ok "ban -> request -> scorer stand-in list -> served list full again"

# --- SIGKILL between enqueue and acknowledgement -----------------------------
kill -TERM "$DAEMON_PID"
wait_for 15 "daemon exit" sh -c "! kill -0 $DAEMON_PID"
# a long window keeps the request pending when the daemon is killed
start_daemon "$E2E_DIR" "${RUNARGS[@]}" --set recompute.coalesce_ms=1h
list u2 L1 2026-11-22T01:00:00Z k1 k2 k3
wait_for 20 "list served" served_is "$E2E_DIR" u2 home k1,k2,k3
produce recs.item-bans.v1 k2 '{"event_id":"e-k2","type":"item_banned","item_id":"k2","occurred_at":"2026-11-22T02:00:00Z"}'
wait_for 20 "ban applied" served_is "$E2E_DIR" u2 home k1,k3
pending_id() {
        "$RECFRESH" queue --data-dir "$E2E_DIR/db" --list | python3 -c '
import json, sys
for l in sys.stdin:
    r = json.loads(l)
    if r["subject_id"] == "u2":
        print(r["request_id"])'
}
wait_for 20 "request pending" sh -c "[ -n \"\$(\"$RECFRESH\" queue --data-dir '$E2E_DIR/db' --list)\" ]"
rid=$(pending_id)
[ -n "$rid" ] || fail "no pending request for u2"
"$RECFRESH" queue --data-dir "$E2E_DIR/db" | grep -q "^pending 1 " ||
        fail "backlog not shown: $("$RECFRESH" queue --data-dir "$E2E_DIR/db")"
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
[ "$(count_requests u2)" -eq 0 ] || fail "sent before its window"
start_daemon "$E2E_DIR" "${RUNARGS[@]}" --set recompute.coalesce_ms=0
wait_for 20 "request after restart" has_requests u2 1
# killed again right after the send: at most the same id again
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
start_daemon "$E2E_DIR" "${RUNARGS[@]}" --set recompute.coalesce_ms=0
wait_for 20 "queue drained" sh -c "\"$RECFRESH\" queue --data-dir '$E2E_DIR/db' | grep -q '^pending 0 '"
ids=$(requests u2 | awk '{print $1}' | sort -u)
[ "$ids" = "$rid" ] || fail "u2: ids [$ids], want exactly [$rid]"
ok "SIGKILL before the ack: one request, same request_id ($rid)"

# --- refresh --full killed halfway resumes without duplicates ----------------
for i in $(seq -w 1 30); do
        list "f$i" L1 2026-11-22T01:00:00Z x y
done
for i in $(seq -w 1 30); do # two partitions: each one, not just the last
        wait_for 30 "list f$i stored" served_is "$E2E_DIR" "f$i" home x,y
done
# Its secondary's private directory goes under TMPDIR: the SIGKILLed one's
# is left there, and the next open removes it.
mkdir "$E2E_DIR/tmp"
REFRESH=(env TMPDIR="$E2E_DIR/tmp" "$RECFRESH" refresh --full --run-id R1
        --brokers "$BROKERS" --data-dir "$E2E_DIR/db"
        --set recompute.full_rate_per_s=4 --set recompute.refresh_backlog=4)
run() { "${REFRESH[@]}"; }
run_requests() { requests '*' | awk '$3 == "R1"'; }
# the binary itself in the background, so SIGKILL reaches it
"${REFRESH[@]}" >"$E2E_DIR/refresh1.out" 2>&1 &
rpid=$!
E2E_PIDS+=($rpid)
wait_for 30 "first full requests" sh -c "[ \$(kcat -C -b '$BROKERS' -t recs.recompute.v1 -e -q | grep -c '\"run_id\":\"R1\"') -ge 6 ]"
kill -KILL "$rpid"
wait "$rpid" 2>/dev/null || true
ls "$E2E_DIR/tmp" | grep -q "^recfresh-secondary-$rpid-" ||
        fail "no secondary directory of the killed refresh: $(ls "$E2E_DIR/tmp")"
before=$(run_requests | wc -l)
[ "$before" -lt 32 ] || fail "the run was not interrupted ($before requests)"
run >"$E2E_DIR/refresh2.out" 2>&1 || fail "resume: $(cat "$E2E_DIR/refresh2.out")"
grep -q "finished" "$E2E_DIR/refresh2.out" || fail "$(cat "$E2E_DIR/refresh2.out")"
[ -z "$(ls "$E2E_DIR/tmp")" ] ||
        fail "secondary directories left: $(ls "$E2E_DIR/tmp")"
# A TMPDIR that does not exist: /tmp instead, as before it was asked.
TMPDIR="$E2E_DIR/missing" "$RECFRESH" queue --data-dir "$E2E_DIR/db" \
        >"$E2E_DIR/queue-tmp.out" 2>&1 ||
        fail "queue with a missing TMPDIR: $(cat "$E2E_DIR/queue-tmp.out")"
subjects=$(run_requests | awk '{print $4}' | sort -u | wc -l)
ids=$(run_requests | awk '{print $1}' | sort -u | wc -l)
total=$(run_requests | wc -l)
# 30 subjects + the fallback-free population: every subject once, one id
# each; a request in flight at the SIGKILL may be sent again, same id
[ "$subjects" -ge 30 ] || fail "only $subjects subjects refreshed"
[ "$ids" -eq "$subjects" ] || fail "$ids ids for $subjects subjects"
[ $((total - ids)) -le 10 ] || fail "$((total - ids)) re-sends"
run >"$E2E_DIR/refresh3.out" 2>&1 || fail "rerun failed"
grep -q "already finished" "$E2E_DIR/refresh3.out" ||
        fail "rerun: $(cat "$E2E_DIR/refresh3.out")"
[ "$(run_requests | wc -l)" -eq "$total" ] || fail "rerun sent requests"
"$RECFRESH" queue --data-dir "$E2E_DIR/db" | grep -q "R1 .*full .*finished" ||
        fail "run not listed: $("$RECFRESH" queue --data-dir "$E2E_DIR/db")"
ok "refresh --full: killed halfway, resumed, $subjects subjects once each; rerun sends nothing"

# --- a full refresh reaches batch-run subjects ---------------------------------
for i in $(seq -w 1 12); do
        printf '{"subject_id":"b%s","surface":"home","list_id":"B%s","generated_at":"2026-11-22T02:00:00Z","expires_at":"2099-01-01T00:00:00Z","model_version":"m1","items":[{"item_id":"x","score":0.9},{"item_id":"y","score":0.8},{"item_id":"z","score":0.7}]}\n' "$i" "$i"
done >"$E2E_DIR/batch.ndjson"
out=$("$RECFRESH" load --data-dir "$E2E_DIR/db" --run-id day-1 \
        "$E2E_DIR/batch.ndjson" 2>&1) || fail "load: $out"
wait_for 20 "batch list served" served_is "$E2E_DIR" b07 home x,y,z
"$RECFRESH" refresh --full --run-id R2 --brokers "$BROKERS" \
        --data-dir "$E2E_DIR/db" >"$E2E_DIR/refresh4.out" 2>&1 ||
        fail "refresh R2: $(cat "$E2E_DIR/refresh4.out")"
r2() { requests '*' | awk '$3 == "R2" { print $4 }' | sort -u; }
wait_for 20 "R2 requests" sh -c "[ \$(kcat -C -b '$BROKERS' -t recs.recompute.v1 -e -q | grep -c '\"run_id\":\"R2\"') -ge 42 ]"
for i in $(seq -w 1 12); do
        r2 | grep -qx "b$i" || fail "R2 did not reach batch subject b$i: $(r2 | tr '\n' ' ')"
done
r2 | grep -qx f15 || fail "R2 did not reach incremental subject f15"
ok "refresh --full reaches the 12 subjects of a loaded batch run and the incremental ones"

# --- queue --fold: entries grown by deltas, folded whole ----------------------
kill -TERM "$DAEMON_PID"
wait_for 15 "daemon exit" sh -c "! kill -0 $DAEMON_PID"
start_daemon "$E2E_DIR" "${RUNARGS[@]}" --set recompute.coalesce_ms=1h
list g1 L1 2026-11-22T01:00:00Z m1 m2 m3 m4 m5
wait_for 20 "list served" served_is "$E2E_DIR" g1 home m1,m2,m3,m4,m5
g1_reasons() {
        "$RECFRESH" queue --data-dir "$E2E_DIR/db" --list | python3 -c '
import json, sys
for l in sys.stdin:
    r = json.loads(l)
    if r["subject_id"] == "g1":
        print(len(r["reasons"]))'
}
g1_reasons_is() { [ "$(g1_reasons)" = "$1" ]; }
for i in 1 2 3; do # one batch each: the 2nd and 3rd are deltas
        produce recs.item-bans.v1 "m$i" "{\"event_id\":\"e-m$i\",\"type\":\"item_banned\",\"item_id\":\"m$i\",\"occurred_at\":\"2026-11-22T02:00:00Z\"}"
        wait_for 20 "reason $i pending" g1_reasons_is "$i"
done
metric_at_least recfresh_recompute_entry_deltas_total 2 ||
        fail "no deltas written: $(metric recfresh_recompute_entry_deltas_total)"
if "$RECFRESH" queue --data-dir "$E2E_DIR/db" --fold >"$E2E_DIR/fold.out" 2>&1; then
        fail "--fold beside a running daemon: $(cat "$E2E_DIR/fold.out")"
fi
grep -q "is the daemon, or recfresh refresh, still running" "$E2E_DIR/fold.out" ||
        fail "--fold beside a running daemon: $(cat "$E2E_DIR/fold.out")"
kill -TERM "$DAEMON_PID"
wait_for 15 "daemon exit" sh -c "! kill -0 $DAEMON_PID"
"$RECFRESH" queue --data-dir "$E2E_DIR/db" --list >"$E2E_DIR/before.jsonl"
"$RECFRESH" queue --data-dir "$E2E_DIR/db" --fold >"$E2E_DIR/fold.out" 2>&1 ||
        fail "--fold: $(cat "$E2E_DIR/fold.out")"
grep -q "db: queue folded: [1-9][0-9]* pending entries, each whole, 0 merge operands left" "$E2E_DIR/fold.out" ||
        fail "--fold: $(cat "$E2E_DIR/fold.out")"
"$RECFRESH" queue --data-dir "$E2E_DIR/db" --list >"$E2E_DIR/after.jsonl"
grep -q '"g1"' "$E2E_DIR/after.jsonl" || fail "g1 not pending after --fold"
cmp -s "$E2E_DIR/before.jsonl" "$E2E_DIR/after.jsonl" ||
        fail "--fold changed the queue: $(diff "$E2E_DIR/before.jsonl" "$E2E_DIR/after.jsonl")"
if "$RECFRESH" queue --data-dir "$E2E_DIR/no-such-db" --fold >"$E2E_DIR/fold.out" 2>&1; then
        fail "--fold of a missing store: $(cat "$E2E_DIR/fold.out")"
fi
grep -q "no store at" "$E2E_DIR/fold.out" || fail "--fold: $(cat "$E2E_DIR/fold.out")"
[ ! -e "$E2E_DIR/no-such-db" ] || fail "--fold made a store of a mistyped path"
ok "queue --fold: refused beside the daemon and for a missing store; the 3 reasons of g1 and every request kept"

echo "$passed passed, 0 failed"
