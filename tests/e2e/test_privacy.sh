#!/usr/bin/env bash
# e2e privacy: after consent_revoked (scope all), the privacy compaction and
# the event-log retention, the subject id is in no file under the data dir
# or the event-log archive (raw bytes of SSTs, WAL, MANIFEST, logs).
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

E2E_DIR=$(mktemp -d /tmp/recfresh-e2e-XXXXXX)
trap e2e_cleanup EXIT
fail() { echo "FAIL: $*" >&2; tail -n 20 "$E2E_DIR/daemon.log" >&2; exit 1; }
passed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
SUBJ=subj-privacy-$RANDOM$RANDOM

start_broker "$E2E_DIR"
# A 1 KiB MANIFEST roll: every version edit rolls it, so the bound under
# test is the compaction delay (production: store.manifest_roll_kb). SST
# blocks uncompressed, so a byte scan of the files is conclusive.
start_daemon "$E2E_DIR" --set store.purge_compact_after=1s \
        --set store.manifest_roll_kb=1 --set store.compression=none \
        --set "eventlog.dir=$E2E_DIR/eventlog" --set eventlog.rotate=1s \
        --set eventlog.retention=2s --set store.write_buffer_mb=1

for surface in home feed; do
        produce recs.lists.v1 "$SUBJ" "{\"subject_id\":\"$SUBJ\",\"surface\":\"$surface\",\"list_id\":\"L-$surface\",\"generated_at\":\"2026-11-22T01:00:00Z\",\"expires_at\":\"2099-01-01T00:00:00Z\",\"model_version\":\"m1\",\"items\":[{\"item_id\":\"a\",\"score\":1,\"creator_id\":\"c1\"},{\"item_id\":\"b\",\"score\":0.5}]}"
done
produce recs.user-hides.v1 "$SUBJ" "{\"event_id\":\"h1\",\"type\":\"item_hidden\",\"user_id\":\"$SUBJ\",\"item_id\":\"b\",\"occurred_at\":\"2026-11-22T01:30:00Z\"}"
produce recs.activity.v1 "$SUBJ" "{\"user_id\":\"$SUBJ\",\"at\":\"2026-11-22T01:40:00Z\"}"
wait_for 20 "list served" served_is "$E2E_DIR" "$SUBJ" home a
# Flushed to SST files, not only in the memtable and WAL.
grep -rqa "$SUBJ" "$E2E_DIR/db" || fail "subject not stored (test is broken)"
ok "subject's lists, hides and activity stored"

produce recs.consent.v1 "$SUBJ" "{\"event_id\":\"r1\",\"type\":\"consent_revoked\",\"user_id\":\"$SUBJ\",\"scope\":\"all\",\"occurred_at\":\"2026-11-22T02:00:00Z\"}"
wait_for 20 "consent blocks reads" served_is "$E2E_DIR" "$SUBJ" home \
        "<consent_blocked>"
ok "consent_revoked: reads blocked"

# Unrelated traffic keeps the event log rotating (retention runs then).
traffic() {
        local i=$((RANDOM))
        produce recs.item-bans.v1 "x$i" "{\"event_id\":\"t$i\",\"type\":\"item_banned\",\"item_id\":\"x$i\",\"occurred_at\":\"2026-11-22T03:00:00Z\"}"
}
clean() {
        traffic
        ! grep -rqa "$SUBJ" "$E2E_DIR/db" "$E2E_DIR/eventlog"
}
wait_for 60 "subject id gone from every file" clean ||
        fail "still in: $(grep -rla "$SUBJ" "$E2E_DIR/db" "$E2E_DIR/eventlog" | tr '\n' ' ')"
ok "after the privacy compaction and retention: subject id in no DB or archive file"

echo "$passed passed, 0 failed"
