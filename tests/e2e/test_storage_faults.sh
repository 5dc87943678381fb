#!/usr/bin/env bash
# e2e: storage faults against the built binary.
#  - disk full (a small tmpfs): the daemon stops with a clear error and a
#    non-zero exit; after the disk grows, a restart applies every record
#    (offsets never moved past what was not applied);
#  - a directory the daemon may not write: clear error, non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

E2E_DIR=$(mktemp -d /tmp/recfresh-e2e-XXXXXX)
chmod 755 "$E2E_DIR"
MNT="$E2E_DIR/full"
cleanup() {
        local rc=$?
        e2e_cleanup_pids
        if [ "$rc" -ne 0 ] && [ -f "$E2E_DIR/daemon.log" ]; then
                echo "--- daemon.log (last 20 lines)" >&2
                tail -n 20 "$E2E_DIR/daemon.log" >&2
        fi
        mountpoint -q "$MNT" 2>/dev/null && umount -l "$MNT"
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
if ! mount -t tmpfs -o size=4m tmpfs "$MNT" 2>/dev/null; then
        echo "skip - disk full needs permission to mount a tmpfs"
        echo "$passed passed, 0 failed"
        exit 0
fi
start_daemon "$E2E_DIR" --data-dir "$MNT/db" --set store.write_buffer_mb=1
# ~6 MB of lists over 8 partitions: fills a 4 MiB disk, stays under the
# embedded broker's retention cap so the restart can re-read everything.
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
kcat -P -b "$BROKERS" -t recs.lists.v1 -K "$(printf '\t')" <"$E2E_DIR/lists.tsv"
wait_for 60 "daemon exit on disk full" sh -c "! kill -0 $DAEMON_PID"
rc=0
wait "$DAEMON_PID" || rc=$?
[ "$rc" -eq 1 ] || fail "disk full: exit $rc, want 1"
grep -q "No space left on device" "$E2E_DIR/daemon.log" ||
        fail "disk full: no clear error in the log"
ok "disk full: clear error, exit 1"

# Give the disk room and restart: every list is applied, none lost.
mount -o remount,size=256m "$MNT"
start_daemon "$E2E_DIR" --data-dir "$MNT/db" --set store.write_buffer_mb=1
last=$((n - 1))
wait_for 60 "last list applied after restart" sh -c \
        "'$RECFRESH' get --data-dir '$MNT/db' --subject s$last --surface home --limit 1 | grep -q item-$last-0"
# A sample of every tenth list (each read is a process start).
missing=0
for s in $(seq 0 $last); do
        printf 's%d\n' "$s"
done >"$E2E_DIR/subjects"
while read -r s; do
        "$RECFRESH" get --data-dir "$MNT/db" --subject "$s" --surface home \
                --limit 1 --json | grep -q "item-${s#s}-0" ||
                missing=$((missing + 1))
done < <(awk 'NR % 10 == 1' "$E2E_DIR/subjects")
[ "$missing" -eq 0 ] || fail "$missing sampled lists lost after disk full"
ok "after the disk grew: all sampled lists of $n applied, none lost"

echo "$passed passed, 0 failed"
