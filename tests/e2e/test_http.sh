#!/usr/bin/env bash
# e2e: the HTTP API of `recfresh run`, driven with curl as a client would:
# every served_from branch, the final check after each event kind, the
# fallback fill (the user's hides applying to fallback entries), batchGet,
# malformed requests, /metrics parsed as Prometheus text and moving when
# events arrive, /healthz and /readyz, and `recfresh get` agreeing with HTTP.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh
for tool in kcat curl jq python3; do
        command -v $tool >/dev/null || { echo "$tool not installed" >&2; exit 1; }
done

E2E_DIR=$(mktemp -d /tmp/recfresh-e2e-http-XXXXXX)
on_exit() {
        local rc=$?
        if [ $rc -ne 0 ] && [ -f "$E2E_DIR/daemon.log" ]; then
                echo "--- last response: $(cat "$E2E_DIR/body" 2>/dev/null)" >&2
                echo "--- daemon log (without kafka lines):" >&2
                grep -v 'sub=kafka' "$E2E_DIR/daemon.log" | tail -25 >&2
        fi
        e2e_cleanup
}
trap on_exit EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
passed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }

iso() { date -u -d "$1" +%Y-%m-%dT%H:%M:%SZ; }
FUTURE=2099-01-01T00:00:00Z

# list SUBJECT SURFACE LIST_ID EXPIRES ITEMS_JSON [REGION]: an incremental
# list (no run_id: lists of batch runs are staged until the run activates)
list() {
        local region=${6:-}
        jq -nc --arg s "$1" --arg f "$2" --arg id "$3" --arg x "$4" \
                --arg r "$region" --argjson items "$5" --arg g "$(iso '-3 hours')" \
                '{subject_id:$s, surface:$f, list_id:$id, generated_at:$g,
                  expires_at:$x, model_version:"m1", policy_version:"p7",
                  items:$items}
                 + (if $r == "" then {} else {region:$r} end)'
}
# items_of ID...: [{item_id, score}] with decreasing scores; "id:creator"
# and "id::campaign" set creator_id / campaign_id.
items_of() {
        local out="" score=100 spec id creator campaign
        for spec in "$@"; do
                IFS=: read -r id creator campaign <<<"$spec"
                out+="${out:+,}{\"item_id\":\"$id\",\"score\":$score,\"reason_codes\":[\"r\"]"
                [ -n "$creator" ] && out+=",\"creator_id\":\"$creator\""
                [ -n "$campaign" ] && out+=",\"campaign_id\":\"$campaign\""
                out+="}"
                score=$((score - 1))
        done
        echo "[$out]"
}
publish() { produce recs.lists.v1 "$1" "$(list "$@")"; }

# get PATH: prints the body; the status code goes to $E2E_DIR/code.
get() {
        curl -s -o "$E2E_DIR/body" -w '%{http_code}' "$HTTP$1" >"$E2E_DIR/code"
        cat "$E2E_DIR/body"
}
code() { cat "$E2E_DIR/code"; }
items() { get "$1" | jq -r '[.items[].item_id] | join(",")'; }
items_is() { [ "$(items "$1")" = "$2" ]; }
jq_is() { [ "$(get "$1" | jq -r "$2")" = "$3" ]; }
expect() { # expect PATH JQ VALUE: asserts once (the state is settled)
        local got
        got=$(get "$1" | jq -r "$2")
        [ "$got" = "$3" ] || fail "$1: $2 = \"$got\", expected \"$3\""
}
# status METHOD PATH [CURL ARGS...]: prints the HTTP status code.
status() {
        local m=$1 p=$2
        shift 2
        curl -s -o "$E2E_DIR/body" -w '%{http_code}' -X "$m" "$@" "$HTTP$p"
}
expect_error() { # expect_error CODE ERRCODE METHOD PATH [CURL ARGS...]
        local want=$1 ecode=$2 got
        shift 2
        got=$(status "$@")
        [ "$got" = "$want" ] || fail "$2 $3: status $got, expected $want: $(cat "$E2E_DIR/body")"
        [ "$(jq -r .error.code "$E2E_DIR/body")" = "$ecode" ] ||
                fail "$2 $3: error code not $ecode: $(cat "$E2E_DIR/body")"
        [ -n "$(jq -r .error.message "$E2E_DIR/body")" ] || fail "no message"
}

cat >"$E2E_DIR/recfresh.conf" <<CONF
surface.home.min_valid = 3
surface.home.grace = 1h
surface.inbox.consent_scope = email
surface.inbox.min_valid = 1
http.max_body_total_bytes = 2097152
http.body_timeout = 1s
CONF

start_broker "$E2E_DIR"
start_daemon "$E2E_DIR" --config "$E2E_DIR/recfresh.conf"
[ -n "$HTTP" ] || fail "daemon wrote no http.addr_file"
grep -q "sub=http msg=\"listening on $(cat "$E2E_DIR/http.addr")\"" \
        "$E2E_DIR/daemon.log" || fail "bound address not logged"

# --- health ------------------------------------------------------------------
[ "$(status GET /healthz)" = 200 ] || fail "/healthz"
[ "$(jq -r .status "$E2E_DIR/body")" = ok ] || fail "/healthz body"
wait_for 30 "/readyz ready" sh -c "curl -sf '$HTTP/readyz' | grep -q ready"
[ "$(status GET /readyz)" = 200 ] || fail "/readyz"
grep -q "caught up" "$E2E_DIR/daemon.log" || fail "caught-up not logged"
ok "/healthz alive, /readyz ready once caught up, on $HTTP"

# --- fallback lists (global and regional) -----------------------------------
publish __fallback__ home FB "$FUTURE" "$(items_of x1 f1 f2 d f3 f4 b)"
publish __fallback__ home FBEU "$FUTURE" "$(items_of e1 e2 e3)" eu
publish __fallback__ inbox FBI "$FUTURE" "$(items_of n1 d n2)"
wait_for 20 "fallback stored" items_is "/v1/lists/nobody/home?limit=3" x1,f1,f2

# --- served_from: precomputed -------------------------------------------------
publish u1 home L1 "$FUTURE" \
        "$(items_of a b c d e:cr1 f::k1 g h)"
wait_for 20 "u1 list" jq_is "/v1/lists/u1/home?limit=10" .lineage.list_id L1
expect "/v1/lists/u1/home?limit=10" '[.items[].item_id]|join(",")' a,b,c,d,e,f,g,h
expect "/v1/lists/u1/home?limit=3" '[.items[].item_id]|join(",")' a,b,c
expect "/v1/lists/u1/home?limit=3" .served_from precomputed
expect "/v1/lists/u1/home?limit=3" .status found
expect "/v1/lists/u1/home?limit=3" .fallback_filled 0
expect "/v1/lists/u1/home?limit=3" .fallback_reason null
expect "/v1/lists/u1/home?limit=3" .lineage.policy_version p7
expect "/v1/lists/u1/home?limit=3" .lineage.model_version m1
expect "/v1/lists/u1/home?limit=3" .lineage.run_id ""
expect "/v1/lists/u1/home?limit=3" .lineage.expires_at 2099-01-01T00:00:00.000Z
expect "/v1/lists/u1/home?limit=3" '.items[1] | "\(.position) \(.score) \(.reason_codes[0]) \(.source)"' "1 99 r precomputed"
ok "fresh list: served_from precomputed with lineage, positions, scores"

# --- the final check after each event kind ------------------------------------
U1="/v1/lists/u1/home?limit=10"
produce recs.item-bans.v1 b '{"event_id":"e1","type":"item_banned","item_id":"b","occurred_at":"2026-11-22T02:00:00Z"}'
wait_for 20 "ban" items_is "$U1" a,c,d,e,f,g,h
expect "$U1" .filtered.banned 1
produce recs.stock.v1 c '{"event_id":"e2","type":"stock_changed","item_id":"c","in_stock":false,"occurred_at":"2026-11-22T02:00:00Z"}'
wait_for 20 "stock" items_is "$U1" a,d,e,f,g,h
expect "$U1" .filtered.out_of_stock 1
produce recs.user-hides.v1 u1 '{"event_id":"e3","type":"item_hidden","user_id":"u1","item_id":"d","occurred_at":"2026-11-22T02:00:00Z"}'
wait_for 20 "item hide" items_is "$U1" a,e,f,g,h
expect "$U1" .filtered.hidden_item 1
produce recs.user-hides.v1 u1 '{"event_id":"e4","type":"creator_hidden","user_id":"u1","creator_id":"cr1","occurred_at":"2026-11-22T02:00:00Z"}'
wait_for 20 "creator hide" items_is "$U1" a,f,g,h
expect "$U1" .filtered.hidden_creator 1
produce recs.campaigns.v1 k1 '{"event_id":"e5","type":"campaign_expired","campaign_id":"k1","occurred_at":"2026-11-22T02:00:00Z"}'
wait_for 20 "campaign" items_is "$U1" a,g,h
expect "$U1" .filtered.campaign_expired 1
expect "$U1" .served_from precomputed
expect "$U1" .fallback_filled 0
ok "ban, stock-out, item hide, creator hide, campaign expiry each apply at read"

produce recs.item-bans.v1 b '{"event_id":"e6","type":"item_unbanned","item_id":"b","occurred_at":"2026-11-22T03:00:00Z"}'
wait_for 20 "unban" items_is "$U1" a,b,g,h
ok "a reversal (unban) serves the item again"

# --- fallback fill: too few survivors, user's hides apply to fallback -------
publish u2 home L2 "$FUTURE" "$(items_of x1 x2)"
produce recs.user-hides.v1 u2 '{"event_id":"e7","type":"item_hidden","user_id":"u2","item_id":"f1","occurred_at":"2026-11-22T02:00:00Z"}'
U2="/v1/lists/u2/home?limit=5"
wait_for 20 "fill" items_is "$U2" x1,x2,f2,d,f3
expect "$U2" .served_from precomputed
expect "$U2" .fallback_reason too_few_valid
expect "$U2" .fallback_filled 3
expect "$U2" .filtered.duplicate 1
expect "$U2" .filtered.hidden_item 1
expect "$U2" '[.items[].source]|join(",")' precomputed,precomputed,fallback,fallback,fallback
expect "$U2" .lineage.list_id L2
expect "$U2" .fallback_lineage.list_id FB
expect "$U2" '.items[3].position' 3
ok "fallback fills the remaining slots: no duplicates, the user's hides apply"

# ban a fallback entry: the fill skips it too
produce recs.item-bans.v1 f2 '{"event_id":"e8","type":"item_banned","item_id":"f2","occurred_at":"2026-11-22T02:00:00Z"}'
wait_for 20 "ban in fallback" items_is "$U2" x1,x2,d,f3,f4
ok "fallback entries pass the final check (ban)"

# `recfresh get` serves through the same function
cli=$("$RECFRESH" get --data-dir "$E2E_DIR/db" --subject u2 --surface home \
        --limit 5 --json | jq -c '{served_from, items: [.items[].item_id], fallback_filled, filtered}')
web=$(get "$U2" | jq -c '{served_from, items: [.items[].item_id], fallback_filled, filtered}')
[ "$cli" = "$web" ] || fail "CLI and HTTP disagree: $cli vs $web"
ok "recfresh get --json and HTTP agree ($web)"

# --- served_from: fallback (no list), regional ------------------------------
expect "/v1/lists/u3/home?limit=4" .served_from fallback
expect "/v1/lists/u3/home?limit=4" .status no_list
expect "/v1/lists/u3/home?limit=4" .fallback_reason no_list
expect "/v1/lists/u3/home?limit=4" '[.items[].item_id]|join(",")' x1,f1,d,f3
expect "/v1/lists/u3/home?limit=4" .lineage.list_id FB
expect "/v1/lists/u3/home?limit=4" .fallback_filled 4
expect "/v1/lists/u3/home?region=eu" '[.items[].item_id]|join(",")' e1,e2,e3
expect "/v1/lists/u3/home?region=eu" .lineage.region eu
expect "/v1/lists/u3/home?region=us&limit=2" .lineage.list_id FB
ok "no list: the fallback (regional when stored for the region) is served"

# --- served_from: stale (in grace) and fallback (beyond grace) --------------
publish u4 home L4 "$(iso '-1 minute')" "$(items_of s1 s2 s3)"
wait_for 20 "stale" jq_is "/v1/lists/u4/home" .served_from stale
expect "/v1/lists/u4/home" '[.items[].item_id]|join(",")' s1,s2,s3
expect "/v1/lists/u4/home" .expired true
expect "/v1/lists/u4/home" .recompute_requested true
publish u4 home L4b "$(iso '-1 minute')" "$(items_of s1 s2 b2)"
produce recs.item-bans.v1 s2 '{"event_id":"e9","type":"item_banned","item_id":"s2","occurred_at":"2026-11-22T02:00:00Z"}'
wait_for 20 "stale checked" jq_is "/v1/lists/u4/home?limit=3" '[.items[].item_id]|join(",")' s1,b2,x1
expect "/v1/lists/u4/home?limit=3" .served_from stale
ok "expired within grace: served stale, with the final check, recompute asked"

publish u5 home L5 "$(iso '-2 hours')" "$(items_of o1 o2 o3)"
wait_for 20 "beyond grace" jq_is "/v1/lists/u5/home?limit=2" .fallback_reason expired
expect "/v1/lists/u5/home?limit=2" .served_from fallback
expect "/v1/lists/u5/home?limit=2" '[.items[].item_id]|join(",")' x1,f1
expect "/v1/lists/u5/home?limit=2" .recompute_requested true
ok "expired beyond grace: the fallback is served, recompute asked"

# --- consent: fallback, with the user's hides -------------------------------
publish u1 inbox LI "$FUTURE" "$(items_of m1 m2)"
wait_for 20 "inbox" items_is "/v1/lists/u1/inbox" m1,m2
produce recs.consent.v1 u1 '{"event_id":"e10","type":"consent_revoked","user_id":"u1","scope":"email","occurred_at":"2026-11-22T02:00:00Z"}'
wait_for 20 "consent" jq_is "/v1/lists/u1/inbox" .served_from fallback
expect "/v1/lists/u1/inbox" .fallback_reason consent_revoked
expect "/v1/lists/u1/inbox" .status consent_blocked
expect "/v1/lists/u1/inbox" '[.items[].item_id]|join(",")' n1,n2
expect "/v1/lists/u1/inbox" .filtered.hidden_item 1
ok "consent revoked: the fallback is served, the user's hide of d applies"

# --- served_from: empty; unknown surface is not an error --------------------
expect "/v1/lists/u3/no-such-surface" .served_from empty
[ "$(code)" = 200 ] || fail "unknown surface: status $(code)"
publish u6 other L6 "$FUTURE" "$(items_of b f2)"
produce recs.item-bans.v1 b '{"event_id":"e11","type":"item_banned","item_id":"b","occurred_at":"2026-11-22T04:00:00Z"}'
wait_for 20 "all banned" jq_is "/v1/lists/u6/other" .filtered.banned 2
expect "/v1/lists/u6/other" .served_from empty
expect "/v1/lists/u6/other" '.items|length' 0
ok "nothing left: served_from empty (200), unknown surface too"

# --- percent-decoding ----------------------------------------------------------
publish "u/7 é" home L7 "$FUTURE" "$(items_of p1 p2 p3)"
wait_for 20 "encoded subject" items_is "/v1/lists/u%2F7%20%C3%A9/home" p1,p2,p3
expect "/v1/lists/u%2F7%20%C3%A9/home" .subject_id "u/7 é"
ok "percent-encoded path segments (%2F stays in the segment)"

# --- batchGet ------------------------------------------------------------------
body='{"requests":[{"subject_id":"u2","surface":"home","limit":5},{"subject_id":"u3","surface":"home","region":"eu"},{"subject_id":"u1","surface":"home","context":"","limit":2}]}'
J=(-H 'Content-Type: application/json')
[ "$(status POST /v1/lists:batchGet "${J[@]}" -d "$body")" = 200 ] ||
        fail "batchGet: $(cat "$E2E_DIR/body")"
[ "$(jq -r '[.responses[] | [.items[].item_id] | join(",")] | join(" ")' "$E2E_DIR/body")" = \
        "x1,x2,d,f3,f4 e1,e2,e3 a,g" ] || fail "batchGet: $(cat "$E2E_DIR/body")"
[ "$(jq -r '[.responses[].served_from] | join(",")' "$E2E_DIR/body")" = \
        "precomputed,fallback,precomputed" ] || fail "batchGet served_from"
many=$(jq -nc '{requests: [range(100) | {subject_id: "u\(.)", surface: "home"}]}')
[ "$(status POST /v1/lists:batchGet "${J[@]}" -d "$many")" = 200 ] || fail "100 keys"
[ "$(jq '.responses | length' "$E2E_DIR/body")" = 100 ] || fail "100 responses"
ok "batchGet: keys answered in order, 100 keys in one call"

# --- malformed requests ------------------------------------------------------------
expect_error 400 bad_request GET "/v1/lists/u1/home?limit=0"
expect_error 400 bad_request GET "/v1/lists/u1/home?limit=abc"
expect_error 400 bad_request GET "/v1/lists/u1/home?limit=-1"
expect_error 400 bad_request GET "/v1/lists/u1/home?limit=99999999999999999999"
expect_error 400 bad_request GET "/v1/lists/u1/home?limit=1&limit=2"
expect_error 400 bad_request GET "/v1/lists/u1/home?colour=red"
expect_error 400 bad_request GET "/v1/lists/u%ZZ1/home"
expect_error 400 bad_request GET "/v1/lists/u%001/home"
expect_error 400 bad_request GET "/v1/lists/u%FF/home"
expect_error 404 not_found GET "/v1/lists/u1"
expect_error 404 not_found GET "/v1/lists/u1/home/extra"
expect_error 404 not_found GET "/v1/lists//home"
expect_error 404 not_found GET "/nope"
expect_error 414 uri_too_long GET "/v1/lists/$(head -c 5000 /dev/zero | tr '\0' a)/home"
expect_error 414 uri_too_long GET "/v1/lists/$(head -c 300 /dev/zero | tr '\0' a)/home"
expect_error 414 uri_too_long GET "/v1/lists/u1/home?context=$(head -c 300 /dev/zero | tr '\0' c)"
expect_error 405 method_not_allowed POST "/v1/lists/u1/home" -d x
expect_error 405 method_not_allowed DELETE "/v1/lists/u1/home"
expect_error 405 method_not_allowed PUT "/metrics"
expect_error 405 method_not_allowed GET "/v1/lists:batchGet"
status DELETE /v1/lists/u1/home -D "$E2E_DIR/hdr" >/dev/null
grep -qi '^Allow: GET, HEAD' "$E2E_DIR/hdr" || fail "405 without Allow header"
# A method that is not a token of letters is not echoed (the body stays
# valid JSON and UTF-8).
expect_error 405 method_not_allowed "$(printf 'G\303\251T')" "/v1/lists/u1/home"
grep -q 'method ? not allowed' "$E2E_DIR/body" || fail "405 echo: $(cat "$E2E_DIR/body")"
# A path too long to route is counted under route "other".
[ "$(metric 'recfresh_http_requests_total{route="other",code="414"}')" -ge 1 ] ||
        fail "414 before routing not counted as route other"
# A body no route takes is drained up to 16 x http.max_body_bytes, then
# the connection is closed: a client that never stops holds no worker.
head -c $((17 * 1024 * 1024)) /dev/zero >"$E2E_DIR/big"
if got=$(status GET /healthz -H 'Transfer-Encoding: chunked' \
        --data-binary @"$E2E_DIR/big"); then
        fail "a 17 MiB GET body was drained to the end: $got"
fi
[ "$(status GET /healthz)" = 200 ] || fail "healthz after a closed connection"
rm -f "$E2E_DIR/big"
B=/v1/lists:batchGet
expect_error 400 bad_request POST $B "${J[@]}" -d '{"requests":['
expect_error 400 bad_request POST $B "${J[@]}" -d '[]'
expect_error 400 bad_request POST $B "${J[@]}" -d '{"requests":{}}'
expect_error 400 bad_request POST $B "${J[@]}" -d '{"requests":[],"x":1}'
expect_error 400 bad_request POST $B "${J[@]}" -d '{"requests":[{"surface":"home"}]}'
expect_error 400 bad_request POST $B "${J[@]}" -d '{"requests":[{"subject_id":"u1","surface":"home","limit":0}]}'
expect_error 400 bad_request POST $B "${J[@]}" -d '{"requests":[{"subject_id":"u1","surface":"home","limit":"5"}]}'
expect_error 400 bad_request POST $B "${J[@]}" -d '{"requests":[{"subject_id":"u1","surface":"home","x":1}]}'
expect_error 400 bad_request POST $B "${J[@]}" -d '{"requests":[{"subject_id":"u\u0000","surface":"home"}]}'
expect_error 400 bad_request POST $B "${J[@]}" -d '{"requests":[],"requests":[]}'
expect_error 400 bad_request POST $B "${J[@]}" \
        -d "$(jq -nc '{requests: [range(101) | {subject_id: "u", surface: "home"}]}')"
grep -q "at most 100" "$E2E_DIR/body" || fail "101 keys: $(cat "$E2E_DIR/body")"
expect_error 415 unsupported_media_type POST $B -H 'Content-Type: text/plain' -d '{}'
expect_error 415 unsupported_media_type POST $B \
        -H 'Content-Type: application/jsonXYZ' -d '{"requests":[]}'
[ "$(status POST $B -H 'Content-Type: application/json; charset=utf-8' \
        -d '{"requests":[]}')" = 200 ] || fail "json with charset: $(cat "$E2E_DIR/body")"
# Over-long ids in a batch body: 414, as in a path (README).
expect_error 414 uri_too_long POST $B "${J[@]}" \
        -d "{\"requests\":[{\"subject_id\":\"$(head -c 300 /dev/zero | tr '\0' a)\",\"surface\":\"home\"}]}"
expect_error 414 uri_too_long POST $B "${J[@]}" \
        -d "{\"requests\":[{\"subject_id\":\"u1\",\"surface\":\"home\",\"context\":\"$(head -c 300 /dev/zero | tr '\0' c)\"}]}"
# Bytes after the JSON value, a NUL first or not: 400 (the shell cannot
# hold a NUL in an argument: from a file).
printf '{"requests":[]}\0junk' >"$E2E_DIR/nul.json"
expect_error 400 bad_request POST $B "${J[@]}" --data-binary @"$E2E_DIR/nul.json"
printf '{"requests":[]} junk' >"$E2E_DIR/junk.json"
expect_error 400 bad_request POST $B "${J[@]}" --data-binary @"$E2E_DIR/junk.json"
head -c 2000000 /dev/zero | tr '\0' ' ' >"$E2E_DIR/big.json"
expect_error 413 payload_too_large POST $B -H 'Content-Type: application/json' \
        --data-binary @"$E2E_DIR/big.json"
expect_error 413 payload_too_large POST $B "${J[@]}" -H 'Transfer-Encoding: chunked' \
        --data-binary @"$E2E_DIR/big.json"
# Bodies of all connections share http.max_body_total_bytes (2 MiB here),
# charged by the buffer they fill as they arrive (it doubles: 1 MiB for
# 900 KiB). Two clients that declare 900 KiB and send all but a byte hold
# it all. A third gets 503 with Retry-After, at once for a declared length,
# after its bytes for a chunked one; once one of the two hangs up, it is
# served.
IFS=: read -r host port <"$E2E_DIR/http.addr"
hold_body() { # hold_body FD: a batchGet of 900 KiB, all but a byte sent
        eval "exec $1<>/dev/tcp/$host/$port"
        { printf 'POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 921600\r\n\r\n' "$B"
          head -c 921599 /dev/zero | tr '\0' ' '; } >&"$1"
}
hold_body 7
wait_for 10 "1 MiB of body held" \
        metric_is recfresh_http_body_bytes 1048576
hold_body 8
wait_for 10 "2 MiB of bodies held" \
        metric_is recfresh_http_body_bytes 2097152
expect_error 503 unavailable POST $B "${J[@]}" -d '{"requests":[]}' -D "$E2E_DIR/hdr"
grep -qi '^Retry-After: 1' "$E2E_DIR/hdr" || fail "503 without Retry-After"
grep -q 'http.max_body_total_bytes' "$E2E_DIR/body" || fail "503: $(cat "$E2E_DIR/body")"
expect_error 503 unavailable POST $B "${J[@]}" -H 'Transfer-Encoding: chunked' \
        -d '{"requests":[]}'
exec 7>&-
wait_for 10 "a closed connection's body released" \
        metric_is recfresh_http_body_bytes 1048576
[ "$(status POST $B "${J[@]}" -d '{"requests":[]}')" = 200 ] ||
        fail "batchGet with room again: $(cat "$E2E_DIR/body")"
exec 8>&-
wait_for 10 "every body released" \
        metric_is recfresh_http_body_bytes 0
# A body sent a byte at a time is cut at http.body_timeout (1 s here).
(
        exec 9<>/dev/tcp/$host/$port
        printf 'POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n' "$B" >&9
        for _ in $(seq 100); do printf ' ' >&9 2>/dev/null || exit 0; sleep 0.1; done
) 2>/dev/null &
drip=$!
wait_for 15 "a slow body cut" \
        metric_at_least recfresh_http_body_timeouts_total 1
wait "$drip" 2>/dev/null || true
wait_for 10 "the slow body released" \
        metric_is recfresh_http_body_bytes 0
[ "$(status GET /healthz)" = 200 ] || fail "server down after bad requests"
expect "/v1/lists/u1/home?limit=2" '[.items[].item_id]|join(",")' a,g
kill -0 "$DAEMON_PID" || fail "daemon died"
ok "malformed requests get 4xx JSON errors; the server keeps serving"

# --- /metrics: Prometheus text, moving with events --------------------------
curl -sf -D "$E2E_DIR/mhdr" "$HTTP/metrics" >"$E2E_DIR/metrics"
grep -qi '^Content-Type: text/plain; version=0.0.4' "$E2E_DIR/mhdr" ||
        fail "metrics content type"
python3 - "$E2E_DIR/metrics" <<'PY' || fail "metrics do not parse"
# A strict reader of the Prometheus text format 0.0.4: every sample belongs
# to a family declared by # TYPE, labels are well formed, values are numbers,
# histogram buckets are cumulative and end in +Inf == _count.
import re, sys
name_re = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
label_re = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
sample = re.compile(r'^(%s)(\{(?:%s)(?:,(?:%s))*\})? (\S+)$' % (name_re, label_re, label_re))
types, helps, seen, samples = {}, set(), set(), []
for n, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
    line = line.rstrip("\n")
    if line.startswith("# HELP "):
        name = line.split(" ", 3)[2]
        assert name not in helps, "duplicate HELP %s" % name
        helps.add(name)
        continue
    if line.startswith("# TYPE "):
        _, _, name, typ = line.split(" ")
        assert typ in ("counter", "gauge", "histogram", "summary", "untyped"), line
        assert name not in types, "duplicate TYPE %s" % name
        types[name] = typ
        continue
    assert line and not line.startswith("#"), "line %d: %r" % (n, line)
    m = sample.match(line)
    assert m, "line %d: not a sample: %r" % (n, line)
    name, labels, value = m.group(1), m.group(2) or "", m.group(3)
    v = float(value)
    assert (name, labels) not in seen, "duplicate series %s%s" % (name, labels)
    seen.add((name, labels))
    fam = name
    for suf in ("_bucket", "_sum", "_count"):
        if name.endswith(suf) and name[: -len(suf)] in types and types[name[: -len(suf)]] == "histogram":
            fam = name[: -len(suf)]
    assert fam in types, "line %d: %s has no TYPE" % (n, name)
    if types[fam] == "counter":
        assert v >= 0 and name.endswith("_total"), line
    samples.append((fam, name, labels, v))
for fam, typ in types.items():
    if typ != "histogram":
        continue
    buckets = [(l, v) for f, n, l, v in samples if n == fam + "_bucket"]
    assert buckets and buckets[-1][0] == '{le="+Inf"}', fam
    vals = [v for _, v in buckets]
    assert vals == sorted(vals), "%s buckets not cumulative" % fam
    count = [v for f, n, l, v in samples if n == fam + "_count"]
    assert count == [vals[-1]], "%s _count != +Inf bucket" % fam
need = ["recfresh_events_consumed_total", "recfresh_dlq_records_total",
        "recfresh_tombstones_applied_total", "recfresh_fanout_size",
        "recfresh_event_to_tombstone_seconds", "recfresh_consumer_lag",
        "recfresh_recompute_enqueued_total", "recfresh_recompute_coalesced_total",
        "recfresh_recompute_sent_total", "recfresh_recompute_backlog",
        "recfresh_recompute_entry_cache_hits_total",
        "recfresh_recompute_entry_cache_bytes",
        "recfresh_recompute_oldest_age_seconds", "recfresh_reads_total",
        "recfresh_read_filtered_total", "recfresh_reads_empty_total",
        "recfresh_store_sst_bytes", "recfresh_store_block_cache_bytes",
        "recfresh_list_cache_hits_total", "recfresh_list_cache_bytes",
        "recfresh_hide_cache_hits_total", "recfresh_hide_cache_bytes",
        "recfresh_http_requests_total"]
missing = [f for f in need if f not in types]
assert not missing, "missing families: %s" % missing
print("parsed %d samples in %d families" % (len(samples), len(types)))
PY
ok "/metrics parses as Prometheus text with every required family"

# the bans of f2 and s2 are in force (b's was lifted): the set holds them
[ "$(metric recfresh_tombstone_set_entities)" -ge 2 ] ||
        fail "tombstone set: $(metric recfresh_tombstone_set_entities) entities, want >= 2"
metric_above recfresh_store_free_bytes 0 || fail "free space not reported"
[ "$(metric 'recfresh_reads_total{served_from="stale"}')" -ge 1 ] || fail "stale reads not counted"
[ "$(metric 'recfresh_reads_total{served_from="fallback"}')" -ge 1 ] || fail "fallback reads"
[ "$(metric 'recfresh_reads_total{served_from="empty"}')" -ge 1 ] || fail "empty reads"
[ "$(metric 'recfresh_reads_empty_total')" -ge 1 ] || fail "empty responses"
[ "$(metric 'recfresh_read_filtered_total{reason="hidden_creator"}')" -ge 1 ] || fail "filtered"
# u1's reads after its last hide share its hides through the cache
metric_above recfresh_hide_cache_hits_total 0 || fail "hide cache: no hits"
[ "$(metric 'recfresh_read_recompute_requests_total')" -ge 1 ] || fail "read recomputes"
[ "$(metric 'recfresh_event_to_tombstone_seconds_count')" -ge 5 ] || fail "latency histogram"
[ "$(metric 'recfresh_fanout_size_count')" -ge 1 ] || fail "fanout histogram"
[ "$(metric 'recfresh_http_requests_total{route="list",code="400"}')" -ge 5 ] || fail "http 400s"
grep -q '^recfresh_consumer_lag{topic="recs.item-bans.v1",partition="0"} 0$' "$E2E_DIR/metrics" ||
        fail "consumer lag per partition: $(grep consumer_lag "$E2E_DIR/metrics" | head -3)"
bans=$(metric 'recfresh_events_consumed_total{topic="recs.item-bans.v1",type="item_banned"}')
tombs=$(metric 'recfresh_tombstones_applied_total{type="item_banned"}')
produce recs.item-bans.v1 z9 '{"event_id":"e20","type":"item_banned","item_id":"z9","occurred_at":"2026-11-22T02:00:00Z"}'
wait_for 20 "ban counted" metric_above \
        'recfresh_events_consumed_total{topic="recs.item-bans.v1",type="item_banned"}' "$bans"
wait_for 20 "tombstone counted" metric_above \
        'recfresh_tombstones_applied_total{type="item_banned"}' "$tombs"
dlq=$(metric 'recfresh_dlq_records_total{reason="invalid_json"}')
produce recs.stock.v1 q 'not json'
wait_for 20 "dlq counted" metric_above 'recfresh_dlq_records_total{reason="invalid_json"}' "$dlq"
ok "metrics move: events consumed, tombstones applied, DLQ by reason, reads"

# --- shutdown --------------------------------------------------------------------
kill -TERM "$DAEMON_PID"
wait_for 15 "daemon exit" sh -c "! kill -0 $DAEMON_PID"
rc=0
wait "$DAEMON_PID" || rc=$?
[ "$rc" -eq 0 ] || fail "daemon exit code $rc"
curl -s -m 2 "$HTTP/healthz" >/dev/null && fail "HTTP still answering after exit"
ok "SIGTERM stops the HTTP server with the daemon (exit 0)"

echo "$passed passed, 0 failed"
