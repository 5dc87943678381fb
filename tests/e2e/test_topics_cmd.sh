#!/usr/bin/env bash
# e2e: `recfresh topics check|create` against the embedded broker, as an
# operator runs them before a deployment. The embedded broker has no admin
# API (CreateTopics), so:
#  - check through metadata: a broker with the partition counts of topics/
#    passes (exit 0, one "ok" line per topic); one whose subject-scoped
#    topics have another count fails (exit 1) naming each mismatch, and
#    passes again with --subject-partitions equal to that count;
#  - create: reports the missing admin API clearly, exit 1;
#  - usage errors: exit 2.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

E2E_DIR=$(mktemp -d /tmp/recfresh-e2e-topics-XXXXXX)
trap e2e_cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
passed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
ntopics=$(ls topics/*.json | wc -l)

# a broker as topics/ says (partitions 0 = per topic file)
mkdir -p "$E2E_DIR/a" "$E2E_DIR/b"
start_broker "$E2E_DIR/a" 0
rc=0
"$RECFRESH" topics check --brokers "$BROKERS" --timeout 5000 \
        >"$E2E_DIR/out" 2>"$E2E_DIR/err" || rc=$?
[ "$rc" -eq 0 ] || { cat "$E2E_DIR/err"; fail "check exit $rc"; }
[ "$(grep -c '^ok ' "$E2E_DIR/out")" -eq "$ntopics" ] ||
        fail "expected $ntopics ok lines: $(cat "$E2E_DIR/out")"
grep -q '^ok       recs.lists.v1: 8 partitions' "$E2E_DIR/out" ||
        fail "lists partitions not reported"
ok "check passes on a broker matching topics/"

rc=0
"$RECFRESH" topics create --brokers "$BROKERS" --timeout 3000 \
        >"$E2E_DIR/out" 2>"$E2E_DIR/err" || rc=$?
[ "$rc" -eq 1 ] || fail "create on the embedded broker: exit $rc"
grep -q '^create: .*no CreateTopics admin API answered' "$E2E_DIR/err" || fail "create error: $(cat "$E2E_DIR/err")"
ok "create reports the embedded broker's missing admin API: $(grep '^create: ' "$E2E_DIR/err" | head -1)"

# a broker with 2 partitions per topic: subject topics mismatch topics/
BROKERS_A=$BROKERS
start_broker "$E2E_DIR/b" 2
rc=0
"$RECFRESH" topics check --brokers "$BROKERS" --timeout 5000 \
        >"$E2E_DIR/out" 2>"$E2E_DIR/err" || rc=$?
[ "$rc" -eq 1 ] || fail "check of mismatched partitions: exit $rc"
for t in recs.lists.v1 recs.user-hides.v1 recs.consent.v1 recs.activity.v1; do
        grep -q "^MISMATCH $t: 2 partitions, expected 8 (topics/)" \
                "$E2E_DIR/err" || fail "$t mismatch not reported: $(cat "$E2E_DIR/err")"
done
ok "check fails (exit 1) naming each subject topic with another count"

"$RECFRESH" topics check --brokers "$BROKERS" --subject-partitions 2 \
        --timeout 5000 >"$E2E_DIR/out" 2>"$E2E_DIR/err" ||
        fail "check --subject-partitions 2: $(cat "$E2E_DIR/err")"
ok "check passes with --subject-partitions equal to the cluster's"

rc=0
"$RECFRESH" topics frobnicate --brokers "$BROKERS_A" 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "unknown verb: exit $rc"
rc=0
"$RECFRESH" topics check 2>"$E2E_DIR/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q -- "--brokers is required" "$E2E_DIR/err" ||
        fail "missing --brokers: exit $rc"
ok "usage errors exit 2"
echo "passed: $passed"
