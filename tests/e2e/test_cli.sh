#!/usr/bin/env bash
# e2e: drive the built binaries as a user would: `recfresh broker`,
# `recfresh run`, kcat, `recfresh get`, `recfresh config`.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh
command -v kcat >/dev/null || { echo "kcat not installed" >&2; exit 1; }

E2E_DIR=$(mktemp -d /tmp/recfresh-e2e-XXXXXX)
trap e2e_cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
passed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }

# --- config: table-driven, errors name file:line ---------------------------
cat >"$E2E_DIR/good.conf" <<CONF
# comment
recompute_placeholder_is_not_here = 1
CONF
if "$RECFRESH" config --config "$E2E_DIR/good.conf" --dump \
        >/dev/null 2>"$E2E_DIR/err"; then
        fail "unknown key accepted"
fi
grep -q "good.conf:2: unknown key" "$E2E_DIR/err" ||
        fail "error does not name file:line: $(cat "$E2E_DIR/err")"
ok "unknown config key rejected with file:line"

printf 'limits.max_id_len = 99\nkafka.sasl.password = hunter2\n' \
        >"$E2E_DIR/c.conf"
"$RECFRESH" config --config "$E2E_DIR/c.conf" --dump -X linger.ms=7 \
        >"$E2E_DIR/dump"
grep -q '^limits.max_id_len = 99$' "$E2E_DIR/dump" || fail "dump lacks value"
grep -q '^kafka.linger.ms = 7$' "$E2E_DIR/dump" || fail "dump lacks -X"
grep -q hunter2 "$E2E_DIR/dump" && fail "secret printed by config --dump"
"$RECFRESH" config --config "$E2E_DIR/dump" --dump >/dev/null ||
        fail "dump does not load back"
ok "config --dump is loadable, includes -X, redacts secrets"

# --- broker, daemon, kcat, get ---------------------------------------------
start_broker "$E2E_DIR"
start_daemon "$E2E_DIR"
ok "broker and daemon up on $BROKERS"

produce recs.lists.v1 u1 '{"subject_id":"u1","surface":"home","list_id":"L1","generated_at":"2026-11-22T01:00:00Z","expires_at":"2099-01-01T00:00:00Z","model_version":"m1","items":[{"item_id":"a","score":3},{"item_id":"b","score":2},{"item_id":"c","score":1}]}'
wait_for 20 "list served" served_is "$E2E_DIR" u1 home a,b,c
ok "list published with kcat is served by recfresh get"

produce recs.item-bans.v1 b '{"event_id":"e1","type":"item_banned","item_id":"b","occurred_at":"2026-11-22T02:00:00Z"}'
wait_for 20 "ban applied" served_is "$E2E_DIR" u1 home a,c
"$RECFRESH" get --data-dir "$E2E_DIR/db" --subject u1 --surface home \
        >"$E2E_DIR/get.txt"
grep -q "banned=1" "$E2E_DIR/get.txt" || fail "skip counts missing"
grep -q "list_id=L1" "$E2E_DIR/get.txt" || fail "lineage missing"
ok "ban removes the item; get prints lineage and skip counts"

produce recs.stock.v1 c 'this is not json'
produce recs.stock.v1 c '{"event_id":"e2","type":"stock_changed","item_id":"c","in_stock":false,"occurred_at":"2026-11-22T02:00:00Z"}'
wait_for 20 "stock applied" served_is "$E2E_DIR" u1 home a
wait_for 20 "dlq record" sh -c \
        "kcat -C -b '$BROKERS' -t recs.dlq.v1 -e -q | grep -q invalid_json"
ok "bad record dead-lettered, good record behind it applied"

wait_for 20 "invalidation notice" sh -c \
        "kcat -C -b '$BROKERS' -t recs.invalidations.v1 -e -q | grep -q '\"event_id\":\"e1\"'"
ok "invalidation notice produced"

# --- SIGTERM: drains, exits 0; restart resumes from stored offsets ---------
kill -TERM "$DAEMON_PID"
wait_for 15 "daemon exit" sh -c "! kill -0 $DAEMON_PID"
rc=0
wait "$DAEMON_PID" || rc=$?
[ "$rc" -eq 0 ] || fail "daemon exit code $rc after SIGTERM"
ok "SIGTERM: clean exit 0"

dlq_before=$(kcat -C -b "$BROKERS" -t recs.dlq.v1 -e -q | wc -l)
start_daemon "$E2E_DIR"
produce recs.item-bans.v1 a '{"event_id":"e3","type":"item_banned","item_id":"a","occurred_at":"2026-11-22T03:00:00Z"}'
wait_for 20 "ban after restart" served_is "$E2E_DIR" u1 home ""
dlq_after=$(kcat -C -b "$BROKERS" -t recs.dlq.v1 -e -q | wc -l)
[ "$dlq_before" -eq "$dlq_after" ] ||
        fail "records re-applied after restart ($dlq_before -> $dlq_after DLQ)"
ok "restart resumes at stored offsets: nothing re-applied"

echo "$passed passed, 0 failed"
