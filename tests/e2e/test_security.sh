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

echo "$passed passed, 0 failed"
