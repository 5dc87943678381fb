#!/usr/bin/env bash
# e2e: storage faults against the built binary.
#  - disk nearly full (a small tmpfs): below store.min_free_mb the daemon
#    refuses to start, or stops cleanly with a clear error and exit 1;
#  - disk full past the guard: RocksDB's ENOSPC stops the daemon; after the
#    disk grows, a restart applies every record (offsets never moved past
#    what was not applied);
#  - a directory the daemon may not write: clear error, non-zero exit;
#  - the event log's disk full: records are still applied, and the ones
#    not archived are counted.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

E2E_DIR=$(mktemp -d /tmp/recfresh-e2e-XXXXXX)
chmod 755 "$E2E_DIR"
MNT="$E2E_DIR/full"
ELM="$E2E_DIR/elog"
cleanup() {
        local rc=$?
        e2e_cleanup_pids
        if [ "$rc" -ne 0 ] && [ -f "$E2E_DIR/daemon.log" ]; then
                echo "--- daemon.log (last 20 lines)" >&2
                tail -n 20 "$E2E_DIR/daemon.log" >&2
        fi
        mountpoint -q "$MNT" 2>/dev/null && umount -l "$MNT"
        mountpoint -q "$ELM" 2>/dev/null && umount -l "$ELM"
        rm -rf "$E2E_DIR"
}
e2e_cleanup_pids() {
        for pid in "${E2E_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
        for pid in "${E2E_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
passed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }

start_broker "$E2E_DIR" 8

# --- read-only directory ---------------------------------------------------
mkdir -p "$E2E_DIR/ro"
chmod 755 "$E2E_DIR/ro"  # owned by root: not writable by nobody
if command -v setpriv >/dev/null && [ "$(id -u)" -eq 0 ]; then
        rc=0
        timeout 30 setpriv --reuid=65534 --regid=65534 --clear-groups \
                "$RECFRESH" run --brokers "$BROKERS" \
                --data-dir "$E2E_DIR/ro/db" >"$E2E_DIR/ro.log" 2>&1 || rc=$?
        [ "$rc" -eq 1 ] || fail "read-only dir: exit $rc, want 1"
        grep -q "Permission denied" "$E2E_DIR/ro.log" ||
                fail "read-only dir: unclear error: $(cat "$E2E_DIR/ro.log")"
        ok "read-only data dir: clear error, exit 1"
else
        echo "skip - read-only dir needs root and setpriv"
fi

# --- disk full ---------------------------------------------------------------
mkdir -p "$MNT"
if ! mount -t tmpfs -o size=64m tmpfs "$MNT" 2>/dev/null; then
        echo "skip - disk full needs permission to mount a tmpfs"
        echo "$passed passed, 0 failed"
        exit 0
fi
# --- the event log's disk full ----------------------------------------------
# The archive is for debugging: invalidations must not wait on it. A batch
# it cannot take is applied all the same, and counted.
mkdir -p "$ELM" "$E2E_DIR/el"
mount -t tmpfs -o size=1m tmpfs "$ELM"
start_daemon "$E2E_DIR/el" --set "eventlog.dir=$ELM"
# elist SUBJECT ITEM: a list of 300 items with random ids (about 10 KB
# compressed: more than a tmpfs page left over in the segment), ITEM first.
elist() {
        produce recs.lists.v1 "$1" "$(python3 -c '
import json, os, sys
items = [{"item_id": sys.argv[2] if i == 0 else os.urandom(32).hex(),
          "score": 1.0 - i / 1000, "creator_id": "creator-%d" % i}
         for i in range(300)]
print(json.dumps({"subject_id": sys.argv[1], "surface": "home",
                  "list_id": "L", "generated_at": "2026-11-22T01:00:00Z",
                  "expires_at": "2099-01-01T00:00:00Z",
                  "model_version": "m1", "items": items}))' "$1" "$2")"
}
first_served() {
        "$RECFRESH" get --data-dir "$E2E_DIR/el/db" --subject "$1" \
                --surface home --limit 1 | grep -q "$2"
}
unarchived() {
        curl -sf "$HTTP/metrics" |
                awk '$1 == "recfresh_eventlog_unarchived_records_total" { print $2 }'
}
elist el-1 a
wait_for 20 "list applied and archived" first_served el-1 a
[ "$(unarchived)" = 0 ] || fail "event log: records unarchived before the disk filled"
fallocate -l "$(df -Pk "$ELM" | awk 'NR == 2 { print $4 }')K" "$ELM/filler" ||
        true
dd if=/dev/zero of="$ELM/filler2" bs=4k 2>/dev/null || true
elist el-2 b
wait_for 20 "list applied with the event log's disk full" \
        first_served el-2 b
wait_for 10 "unarchived records counted" sh -c "[ \"\$(curl -sf '$HTTP/metrics' | awk '\$1 == \"recfresh_eventlog_unarchived_records_total\" { print \$2 }')\" -ge 1 ]"
kill -0 "$DAEMON_PID" || fail "event log full: the daemon stopped"
grep -q "event log: .*not archived" "$E2E_DIR/el/daemon.log" ||
        fail "event log full: no clear error in the log"
ok "event log's disk full: records still applied, $(unarchived) counted unarchived"
kill "$DAEMON_PID"
wait "$DAEMON_PID" || true
umount -l "$ELM"

# ~6 MB of lists over 8 partitions: enough to fill the disks below, and
# under the embedded broker's retention cap so a restart re-reads them all.
n=200
python3 - "$n" >"$E2E_DIR/lists.tsv" <<'PY'
import json, sys
for s in range(int(sys.argv[1])):
    items = [{"item_id": "item-%d-%d" % (s, i), "score": 1.0 - i / 1000,
              "creator_id": "creator-%d" % (i % 50),
              "reason_codes": ["similar_to_recent_views"]}
             for i in range(300)]
    print("s%d\t%s" % (s, json.dumps({
        "subject_id": "s%d" % s, "surface": "home", "list_id": "L",
        "generated_at": "2026-11-22T01:00:00Z",
        "expires_at": "2099-01-01T00:00:00Z", "model_version": "m1",
        "items": items})))
PY
last=$((n - 1))
# start: start_daemon on the tmpfs with a fresh log (greps see this run's).
starts=0
start() {
        starts=$((starts + 1))
        [ -f "$E2E_DIR/daemon.log" ] &&
                mv "$E2E_DIR/daemon.log" "$E2E_DIR/daemon.log.$starts"
        start_daemon "$E2E_DIR" --data-dir "$MNT/db" \
                --set store.write_buffer_mb=1 "$@"
}
# all_applied DB: every tenth list of the n is served (each read is a
# process start), and so is the last.
all_applied() {
        local db=$1 missing=0
        wait_for 60 "last list applied after restart" sh -c \
                "'$RECFRESH' get --data-dir '$db' --subject s$last --surface home --limit 1 | grep -q item-$last-0"
        for s in $(seq 0 10 $last); do
                "$RECFRESH" get --data-dir "$db" --subject "s$s" \
                        --surface home --limit 1 --json |
                        grep -q "item-$s-0" || missing=$((missing + 1))
        done
        [ "$missing" -eq 0 ] || fail "$missing sampled lists lost after disk full"
}

# A start on a disk already below store.min_free_mb: refused, clearly.
rc=0
"$RECFRESH" run --brokers "$BROKERS" --data-dir "$MNT/db0" \
        --set store.min_free_mb=128 >"$E2E_DIR/low.log" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "start on a low disk: exit $rc, want 1"
grep -q "below store.min_free_mb=128" "$E2E_DIR/low.log" ||
        fail "start on a low disk: unclear error: $(cat "$E2E_DIR/low.log")"
ok "start below store.min_free_mb: refused, exit 1"

# The guard: another process fills the disk while the daemon runs; it
# stops cleanly, before RocksDB meets ENOSPC, with the lists half-applied.
start --set store.min_free_mb=8
kcat -P -b "$BROKERS" -t recs.lists.v1 -K "$(printf '\t')" <"$E2E_DIR/lists.tsv"
free=$(df -Pm "$MNT" | awk 'NR == 2 { print $4 }')
fallocate -l "$((free - 4))M" "$MNT/filler"
wait_for 30 "daemon exit on a nearly full disk" sh -c "! kill -0 $DAEMON_PID"
rc=0
wait "$DAEMON_PID" || rc=$?
[ "$rc" -eq 1 ] || fail "nearly full disk: exit $rc, want 1"
grep -q "No space left on device: .* below store.min_free_mb=8" \
        "$E2E_DIR/daemon.log" || fail "nearly full disk: no clear error"
grep -q "stopped (error)" "$E2E_DIR/daemon.log" ||
        fail "nearly full disk: not a clean stop"
ok "disk nearly full: clean stop before ENOSPC, clear error, exit 1"
rm -f "$MNT/filler"
start --set store.min_free_mb=1
all_applied "$MNT/db"
ok "after the limit was lowered: all sampled lists of $n applied, none lost"
kill "$DAEMON_PID"
wait "$DAEMON_PID" || true

# Past the guard (another process fills the disk at once, here: no guard
# on a 4 MiB disk), RocksDB itself meets ENOSPC. The daemon writes nothing
# more and exits 1 without closing RocksDB. Debian builds RocksDB with
# assertions, and a RocksDB background thread may assert on the failed
# file first (exit 134): either way the restart must lose nothing.
umount -l "$MNT"
mount -t tmpfs -o size=4m tmpfs "$MNT"
start --set store.min_free_mb=0
kcat -P -b "$BROKERS" -t recs.lists.v1 -K "$(printf '\t')" <"$E2E_DIR/lists.tsv"
wait_for 60 "daemon exit on disk full" sh -c "! kill -0 $DAEMON_PID"
rc=0
wait "$DAEMON_PID" || rc=$?
case $rc in
1) grep -q "No space left on device" "$E2E_DIR/daemon.log" ||
        fail "disk full: no clear error in the log" ;;
134) grep -q "rocksdb" "$E2E_DIR/daemon.log" ||
        fail "disk full: aborted outside RocksDB" ;;
*) fail "disk full: exit $rc, want 1 (or a RocksDB assertion)" ;;
esac
ok "disk full: stopped (exit $rc)"
mount -o remount,size=256m "$MNT"
start --set store.min_free_mb=0
all_applied "$MNT/db"
ok "after the disk grew: all sampled lists of $n applied, none lost"

echo "$passed passed, 0 failed"
