#!/usr/bin/env bash
# e2e: `recfresh replay` as an on-call engineer runs it, on a recorded
# scenario (tests/fixtures/replay/scenario.ndjson):
#  - the explain output matches the expected lines, unfiltered and with
#    --subject, --item and --list;
#  - the same input gives byte-identical output and the same digest;
#  - a directory that is not a replay scratch is refused and left alone;
#  - a checkpoint seeds a replay, which skips what the checkpoint holds;
#  - on a checkpoint of a store with a loaded batch run, a ban, a hide
#    and a consent purge are explained on the run's lists, which the
#    end-of-replay count serves, and the run's lists are read into the
#    block cache beside the records;
#  - --what-if-set prints how the outcomes differ.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
fx=${RF_SOURCE_DIR:-$here/../..}/tests/fixtures/replay
E2E_DIR=$(mktemp -d /tmp/recfresh-e2e-replay.XXXXXX)
trap e2e_cleanup EXIT
cd "$E2E_DIR"

fail() {
        echo "FAIL: $*" >&2
        exit 1
}

# Golden explain output, unfiltered and per filter.
for f in "::scenario.explain" "--subject:u2:scenario.subject-u2.explain" \
        "--item:i1:scenario.item-i1.explain" \
        "--list:u1/home:scenario.list-u1-home.explain"; do
        IFS=: read -r opt val golden <<<"$f"
        args=()
        [ -n "$opt" ] && args=("$opt" "$val")
        "$RECFRESH" replay -d scratch "$fx/scenario.ndjson" --explain \
                "${args[@]}" >out.txt 2>err.txt || fail "replay $opt: $(cat err.txt)"
        diff -u "$fx/$golden" out.txt || fail "explain $opt $val differs"
done
grep -q "1 duplicate records dropped" err.txt ||
        fail "duplicate (topic, partition, offset) not reported"

# Determinism: byte-identical output and digest, twice over.
"$RECFRESH" replay -d run1 "$fx/scenario.ndjson" --json >j1.txt 2>/dev/null
"$RECFRESH" replay -d run2 "$fx/scenario.ndjson" --json >j2.txt 2>/dev/null
cmp j1.txt j2.txt || fail "--json output differs between two replays"
[ "$(wc -l <j1.txt)" -eq 11 ] || fail "expected 11 JSON lines"
python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' \
        j1.txt || fail "--json lines are not JSON"
"$RECFRESH" digest -d run1 | head -1 >d1.txt
"$RECFRESH" digest -d run2 | head -1 >d2.txt
cmp d1.txt d2.txt || fail "digests differ: $(cat d1.txt d2.txt)"
grep -q '^digest sha256:[0-9a-f]\{64\}$' d1.txt || fail "bad digest line"
# Replaying into the same scratch again starts afresh: same digest.
"$RECFRESH" replay -d run1 "$fx/scenario.ndjson" >/dev/null 2>&1
"$RECFRESH" digest -d run1 | head -1 | cmp - d1.txt || fail "re-run differs"

# Never a directory that is not a replay scratch.
mkdir precious && echo keep >precious/data
if "$RECFRESH" replay -d precious "$fx/scenario.ndjson" 2>err.txt; then
        fail "replay wrote into a non-scratch directory"
fi
grep -q "not a replay scratch" err.txt || fail "no reason given: $(cat err.txt)"
[ "$(ls precious)" = data ] || fail "non-scratch directory was touched"
# Nor the live data_dir named by --live-dir.
if "$RECFRESH" replay -d run1 --live-dir run1 "$fx/scenario.ndjson" \
        2>err.txt; then
        fail "replay wrote into the live directory"
fi
grep -q "live data_dir" err.txt || fail "no live-dir reason: $(cat err.txt)"

# A checkpoint seeds a replay: everything it holds is skipped.
"$RECFRESH" checkpoint -d run2 --out ckpt >/dev/null
(cd ckpt && sha256sum -- *) >ckpt.sum
"$RECFRESH" replay -d seeded --checkpoint ckpt "$fx/scenario.ndjson" \
        --stats >stats.txt 2>&1
# The seed shares the checkpoint's SST files (hard links): never writes them.
(cd ckpt && sha256sum -c --quiet ../ckpt.sum) || fail "replay changed the checkpoint"
grep -q "^records_in_checkpoint 11$" stats.txt || fail "seed: $(cat stats.txt)"
grep -q "^records_applied 0$" stats.txt || fail "seed applied records"
"$RECFRESH" digest -d seeded | head -1 | cmp - d1.txt ||
        fail "seeded store differs from its checkpoint"

# A checkpoint of a store whose lists a batch run published: events are
# explained on the run's lists (not "purged"), and counted at the end.
for i in 0 1 2 3 4; do
        printf '{"subject_id":"u%d","surface":"home","list_id":"B%d","generated_at":"2026-11-22T02:00:00Z","expires_at":"2099-01-01T00:00:00Z","model_version":"m1","items":[{"item_id":"a1","score":0.9},{"item_id":"a2","score":0.8}]}\n' "$i" "$i"
done >batch.ndjson
"$RECFRESH" load -d batchlive --run-id day-1 batch.ndjson >load.txt 2>&1 ||
        fail "load: $(cat load.txt)"
"$RECFRESH" checkpoint -d batchlive --out batchck >/dev/null
cat >batchev.ndjson <<'EOF2'
{"topic":"recs.item-bans.v1","partition":0,"offset":0,"key":"a1","timestamp":"2026-11-22T09:05:00Z","value":{"event_id":"ban-a1","type":"item_banned","item_id":"a1","occurred_at":"2026-11-22T09:05:00Z"}}
{"topic":"recs.user-hides.v1","partition":0,"offset":0,"key":"u1","timestamp":"2026-11-22T09:06:00Z","value":{"event_id":"hide-a2","type":"item_hidden","user_id":"u1","item_id":"a2","occurred_at":"2026-11-22T09:06:00Z"}}
{"topic":"recs.consent.v1","partition":0,"offset":0,"key":"u2","timestamp":"2026-11-22T09:07:00Z","value":{"event_id":"rv-u2","type":"consent_revoked","user_id":"u2","scope":"all","occurred_at":"2026-11-22T09:07:00Z"}}
EOF2
"$RECFRESH" replay -d batchreplay --checkpoint batchck batchev.ndjson \
        --explain --stats >batch.txt 2>&1 || fail "replay: $(cat batch.txt)"
grep -q "item_banned ban-a1 item=a1: tombstone set; lists affected: 5 \[u0/home 1 entry tombstoned, u1/home 1 entry tombstoned, u2/home 1 entry tombstoned, u3/home 1 entry tombstoned, u4/home 1 entry tombstoned\]" batch.txt ||
        fail "ban on run lists: $(cat batch.txt)"
grep -q "item_hidden hide-a2 user=u1 item=a2: tombstone set; lists affected: 1 \[u1/home 1 entry tombstoned\]" batch.txt ||
        fail "hide on a run list: $(cat batch.txt)"
grep -q "consent_revoked rv-u2 user=u2 scope=all: tombstone set; lists affected: 1 \[u2/home purged\]" batch.txt ||
        fail "purge of a run list: $(cat batch.txt)"
grep -q "^entries_tombstoned 6$" batch.txt || fail "entries: $(cat batch.txt)"
grep -q "^lists_total 4$" batch.txt || fail "lists_total: $(cat batch.txt)"
grep -q "^lists_served_empty 1$" batch.txt || fail "served empty: $(cat batch.txt)"
# The run's 5 lists fit the block cache: read into it beside the records.
grep -q "^keys_warmed 5$" batch.txt || fail "warmed: $(cat batch.txt)"

# What-if: without the urgent threshold, recompute requests wait for the
# coalesce window instead of leaving at once.
"$RECFRESH" replay -d whatif "$fx/scenario.ndjson" \
        --what-if-set surface.default.min_valid=0 >wi.txt 2>/dev/null
grep -q "^what-if: surface.default.min_valid=0$" wi.txt || fail "what-if header"
grep -q "^records with different outcomes:$" wi.txt || fail "no differences"
grep -q '^- #3 .*recs.recompute.v1=2$' wi.txt || fail "baseline #3: $(cat wi.txt)"
grep -q '^+ #3 .*recs.invalidations.v1=2$' wi.txt || fail "what-if #3"
grep -q '^emitted{recs.recompute.v1} *4 *4$' wi.txt || fail "request totals"

# export writes the topics between two times to event-log files that
# replay reads back (the embedded broker has no offsets-for-times).
start_broker "$E2E_DIR"
produce recs.item-bans.v1 q1 \
        '{"event_id":"x1","type":"item_banned","item_id":"q1","occurred_at":"2026-11-22T09:00:00Z"}'
produce recs.item-bans.v1 q2 \
        '{"event_id":"x2","type":"item_banned","item_id":"q2","occurred_at":"2026-11-22T09:00:00Z"}'
"$RECFRESH" export --brokers "$BROKERS" --from 2020-01-01T00:00:00Z \
        --to 2100-01-01T00:00:00Z --out exported >export.txt 2>&1 ||
        fail "export: $(cat export.txt)"
grep -q "^exported 2 records to exported" export.txt || fail "$(cat export.txt)"
"$RECFRESH" replay -d fromlog exported --explain >x.txt 2>/dev/null
grep -c "item_banned x[12] item=q[12]: tombstone set$" x.txt | grep -qx 2 ||
        fail "exported records not replayed: $(cat x.txt)"
echo "ok"
