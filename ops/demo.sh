#!/usr/bin/env bash
# recfresh demo: the service on the embedded broker, lists published, then
# events streamed; shows a banned item vanishing from a served list.
# Usage: bash ops/demo.sh [path/to/recfresh]
set -euo pipefail
cd "$(dirname "$0")/.."
RECFRESH=$(realpath "${1:-build/recfresh}")
. tests/e2e/lib.sh

E2E_DIR=$(mktemp -d /tmp/recfresh-demo-XXXXXX)
trap e2e_cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. start the embedded Kafka broker (librdkafka mock cluster, real protocol)"
start_broker "$E2E_DIR"
echo "bootstrap: $BROKERS (topics created from topics/)"

say "2. start the service: recfresh run --brokers $BROKERS --data-dir $E2E_DIR/db"
# One config file for the daemon and the readers, as in production. Demo
# lists hold 4 items: below the default min_valid (20), every read would ask
# for a fallback fill.
CONF="$E2E_DIR/recfresh.conf"
printf 'surface.default.min_valid = 2\n' >"$CONF"
start_daemon "$E2E_DIR" --config "$CONF"
echo "consumers assigned; offsets and state live in RocksDB"

say "3. the batch publishes ranked lists (kcat -> recs.runs.v1, recs.lists.v1)"
produce recs.runs.v1 run-2026-11-22 '{"run_id":"run-2026-11-22","type":"run_started","surfaces":["home"],"generated_at":"2026-11-22T02:00:00Z"}'
for u in alice bob; do
        produce recs.lists.v1 "$u" "{\"subject_id\":\"$u\",\"surface\":\"home\",\"list_id\":\"daily-$u\",\"run_id\":\"run-2026-11-22\",\"generated_at\":\"2026-11-22T02:00:00Z\",\"expires_at\":\"2099-01-01T00:00:00Z\",\"model_version\":\"ranker-v7\",\"items\":[{\"item_id\":\"sneakers-42\",\"score\":0.97,\"creator_id\":\"acme\"},{\"item_id\":\"jacket-7\",\"score\":0.91,\"campaign_id\":\"black-friday\"},{\"item_id\":\"lamp-3\",\"score\":0.88},{\"item_id\":\"mug-9\",\"score\":0.80,\"creator_id\":\"acme\"}]}"
done
# Staged until the run completes and passes validation, then all at once.
produce recs.runs.v1 run-2026-11-22 '{"run_id":"run-2026-11-22","type":"run_completed","surfaces":["home"],"expected_lists":2,"generated_at":"2026-11-22T02:00:00Z"}'
wait_for 20 "lists applied" served_is "$E2E_DIR" alice home \
        sneakers-42,jacket-7,lamp-3,mug-9
say "served list for alice BEFORE the ban:  recfresh get --subject alice --surface home"
"$RECFRESH" get --config "$CONF" --data-dir "$E2E_DIR/db" --subject alice --surface home

say "4. trust & safety bans sneakers-42 (kcat -> recs.item-bans.v1)"
produce recs.item-bans.v1 sneakers-42 '{"event_id":"ban-1","type":"item_banned","item_id":"sneakers-42","reason":"counterfeit","occurred_at":"2026-11-22T09:14:00Z"}'
wait_for 20 "ban applied" served_is "$E2E_DIR" alice home jacket-7,lamp-3,mug-9
say "served list for alice AFTER the ban"
"$RECFRESH" get --config "$CONF" --data-dir "$E2E_DIR/db" --subject alice --surface home

say "5. bob hides creator acme; the black-friday campaign expires"
produce recs.user-hides.v1 bob '{"event_id":"hide-1","type":"creator_hidden","user_id":"bob","creator_id":"acme","occurred_at":"2026-11-22T09:20:00Z"}'
produce recs.campaigns.v1 black-friday '{"event_id":"camp-1","type":"campaign_expired","campaign_id":"black-friday","occurred_at":"2026-11-22T09:30:00Z"}'
wait_for 20 "hide and expiry applied" served_is "$E2E_DIR" bob home lamp-3
"$RECFRESH" get --config "$CONF" --data-dir "$E2E_DIR/db" --subject bob --surface home

say "6. a malformed event goes to the dead-letter topic; good ones behind it apply"
produce recs.item-bans.v1 lamp-3 '{"event_id":"bad-1","type":"item_banned","occurred_at":"2026-11-22T09:40:00Z"}'
produce recs.item-bans.v1 lamp-3 '{"event_id":"ban-2","type":"item_banned","item_id":"lamp-3","occurred_at":"2026-11-22T09:41:00Z"}'
wait_for 20 "second ban applied" served_is "$E2E_DIR" alice home mug-9
wait_for 20 "dead-lettered record" sh -c \
        "kcat -C -b '$BROKERS' -t recs.dlq.v1 -e -q | grep -q bad-1"
echo "recs.dlq.v1:"
kcat -C -b "$BROKERS" -t recs.dlq.v1 -e -q

say "7. invalidation notices for downstream caches (recs.invalidations.v1)"
kcat -C -b "$BROKERS" -t recs.invalidations.v1 -e -q | head -5

say "done: stopping (SIGTERM drains and commits)"
