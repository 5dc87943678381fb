#!/usr/bin/env bash
# e2e security: secrets never printed or logged, HTTP on loopback by default,
# and the documented SASL/SSL example loads.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

E2E_DIR=$(mktemp -d /tmp/recfresh-e2e-XXXXXX)
trap e2e_cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
passed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
SECRET=Hunter2-$RANDOM$RANDOM

# --- the documented example loads; secrets are redacted in dumps -----------
"$RECFRESH" config --config ops/kafka-sasl-ssl.conf.example --dump \
        -X sasl.password="$SECRET" >"$E2E_DIR/dump"
grep -q '^kafka.security.protocol = SASL_SSL$' "$E2E_DIR/dump" ||
        fail "example's security.protocol not in the dump"
grep -q "$SECRET\|change-me" "$E2E_DIR/dump" && fail "secret printed by dump"
grep -q '^kafka.sasl.password = \[redacted\]$' "$E2E_DIR/dump" ||
        fail "password not shown as [redacted]"
ok "ops/kafka-sasl-ssl.conf.example loads; config --dump redacts secrets"

# --- HTTP binds loopback by default ----------------------------------------
"$RECFRESH" config --dump >"$E2E_DIR/defaults"
grep -q '^http.addr = 127.0.0.1:8080$' "$E2E_DIR/defaults" ||
        fail "default http.addr is not loopback"
ok "HTTP listens on loopback by default"

# --- a daemon whose SASL login fails never logs the password ---------------
start_broker "$E2E_DIR"
rc=0
timeout 6 "$RECFRESH" run --brokers "$BROKERS" --data-dir "$E2E_DIR/db" \
        --http 127.0.0.1:0 -X security.protocol=sasl_plaintext \
        -X sasl.mechanisms=PLAIN -X sasl.username=svc \
        -X sasl.password="$SECRET" -X debug=security,broker,conf \
        >"$E2E_DIR/sasl.log" 2>&1 || rc=$?
[ "$rc" -eq 124 ] || fail "daemon exited $rc (want: still retrying at timeout)"
[ "$(wc -l <"$E2E_DIR/sasl.log")" -gt 5 ] || fail "expected a verbose log"
grep -q "$SECRET" "$E2E_DIR/sasl.log" && fail "secret in the daemon log"
ok "failing SASL login with debug logging: the password is never logged"

# --- admin endpoints: off without a token; bearer token when on -------------
code() { curl -s -o "$E2E_DIR/body" -w '%{http_code}' "$@"; }
mkdir -p "$E2E_DIR/plain"
start_daemon "$E2E_DIR/plain"
[ "$(code -X POST "$HTTP/admin/v1/refresh?mode=full")" = 404 ] ||
        fail "admin endpoint reachable with no token configured"
kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID" || true
ok "admin endpoints are off when no token is configured"

printf '\n' >"$E2E_DIR/empty.token"
rc=0
timeout 20 "$RECFRESH" run --brokers "$BROKERS" --data-dir "$E2E_DIR/x" \
        --http 127.0.0.1:0 --set "http.admin_token_file=$E2E_DIR/empty.token" \
        >"$E2E_DIR/empty.log" 2>&1 || rc=$?
[ "$rc" -eq 1 ] && grep -q "admin token" "$E2E_DIR/empty.log" ||
        fail "an empty token file must stop the start (rc=$rc)"
ok "an empty admin token file stops the daemon with a clear error"

TOKEN=tok-$RANDOM$RANDOM$RANDOM
printf '%s\n' "$TOKEN" >"$E2E_DIR/admin.token"
chmod 600 "$E2E_DIR/admin.token"
mkdir -p "$E2E_DIR/adm"
start_daemon "$E2E_DIR/adm" --set "http.admin_token_file=$E2E_DIR/admin.token"
produce recs.lists.v1 u1 '{"subject_id":"u1","surface":"home","list_id":"L1","generated_at":"2026-11-22T01:00:00Z","expires_at":"2099-01-01T00:00:00Z","model_version":"m1","items":[{"item_id":"a","score":1}]}'
wait_for 20 "list applied" served_is "$E2E_DIR/adm" u1 home a
URL="$HTTP/admin/v1/refresh?mode=full&run_id=adm-run-1"
[ "$(code -X POST "$URL")" = 401 ] || fail "no token: want 401"
[ "$(code -X POST -H "Authorization: Bearer wrong" "$URL")" = 401 ] ||
        fail "wrong token: want 401"
[ "$(code -X POST -H "Authorization: Bearer ${TOKEN}x" "$URL")" = 401 ] ||
        fail "token with a suffix: want 401"
[ "$(code -H "Authorization: Bearer $TOKEN" "$URL")" = 405 ] ||
        fail "GET on an admin endpoint: want 405"
[ "$(code -X POST -H "Authorization: Bearer $TOKEN" \
        "$HTTP/admin/v1/refresh?mode=sometimes")" = 400 ] ||
        fail "bad mode: want 400"
# A run id longer than a requested run's id may be is refused, not cut
# short (two ids sharing their first 63 bytes would name one run).
LONG_ID=$(printf 'r%.0s' $(seq 1 63))
for id in "${LONG_ID}a" "${LONG_ID}b"; do
        [ "$(code -X POST -H "Authorization: Bearer $TOKEN" \
                "$HTTP/admin/v1/refresh?mode=full&run_id=$id")" = 400 ] ||
                fail "64-byte run_id: want 400, got $(cat "$E2E_DIR/body")"
        grep -q 'run_id: at most 63 bytes' "$E2E_DIR/body" ||
                fail "64-byte run_id: unclear error $(cat "$E2E_DIR/body")"
done
[ "$(code -X POST -H "Authorization: Bearer $TOKEN" "$URL")" = 202 ] ||
        fail "right token: want 202, got $(cat "$E2E_DIR/body")"
wait_for 30 "the requested full refresh reaches the scorer" sh -c \
        "kcat -C -b '$BROKERS' -t recs.recompute.v1 -e -q | grep -q '\"run_id\":\"adm-run-1\"'"
# A run id with a line break would add a line of its own to the spool
# request (to=x, then run= with no id: the latest run): refused, 400.
[ "$(code -X POST -H "Authorization: Bearer $TOKEN" \
        "$HTTP/admin/v1/runs:rollback?run=adm-run-1&to=x%0Arun%3D")" = 400 ] ||
        fail "rollback id with a line break: want 400, got $(cat "$E2E_DIR/body")"
grep -q 'no control characters' "$E2E_DIR/body" ||
        fail "rollback id with a line break: unclear error $(cat "$E2E_DIR/body")"
ls "$E2E_DIR/adm/db/spool/" | grep -q rollback &&
        fail "a refused rollback left a spool job"
[ "$(code -X POST -H "Authorization: Bearer $TOKEN" \
        "$HTTP/admin/v1/runs:rollback")" = 202 ] ||
        fail "rollback: want 202, got $(cat "$E2E_DIR/body")"
wait_for 20 "the daemon's rollback verdict" sh -c \
        "ls '$E2E_DIR/adm/db/spool/' | grep -q 'rollback.*result'"
# A checkpoint of the live store, taken by the running daemon, seeds a
# replay: it is a store of its own that reads the same.
[ "$(code -X POST -H "Authorization: Bearer $TOKEN" \
        "$HTTP/admin/v1/checkpoint?dir=$E2E_DIR/ckpt")" = 202 ] ||
        fail "checkpoint: want 202, got $(cat "$E2E_DIR/body")"
"$RECFRESH" get --data-dir "$E2E_DIR/ckpt" --subject u1 --surface home \
        --limit 1 --json | grep -q '"item_id":"a"' ||
        fail "the checkpoint does not read like the live store"
[ "$(code -X POST -H "Authorization: Bearer $TOKEN" \
        "$HTTP/admin/v1/checkpoint?dir=$E2E_DIR/ckpt")" = 500 ] ||
        fail "checkpoint into an existing dir: want 500"
grep -q "$TOKEN" "$E2E_DIR/adm/daemon.log" && fail "token in the daemon log"
ok "admin: 401 without or with a wrong token, 405, 400; 202 runs the refresh, queues the rollback, checkpoints the live store"

echo "$passed passed, 0 failed"
