#!/usr/bin/env bash
# e2e crash consistency: the same input is applied by a clean daemon and by
# a daemon SIGKILLed at random points (at start-up, mid-batch, mid-fan-out)
# at least 20 times and restarted each time. At the end:
#  - the stores' logical digests are equal (nothing lost, nothing applied
#    twice in a way that changes the outcome);
#  - the recompute requests on each run's topic, deduplicated by request_id,
#    carry the same (subject, reason event) pairs, none dropped for a cap;
# and SIGTERM drains, commits and exits 0 within a bound.
# Figures go to $RF_FIGURES (if set) for README's reliability section.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

E2E_DIR=$(mktemp -d /tmp/recfresh-crash-XXXXXX)
trap e2e_cleanup EXIT
fail() {
        echo "FAIL: $*" >&2
        for f in "$E2E_DIR"/*/daemon.log; do
                echo "--- $f (last 15 lines)" >&2
                tail -n 15 "$f" >&2
        done
        exit 1
}
KILLS=${RF_CRASH_KILLS:-22}
SEED=${RF_CRASH_SEED:-7}

# --- workload: lists first, then events in chunks ---------------------------
# Every entity gets at most one event and consent revocations touch users
# whose lists share no item with other events, so the final state and the
# set of recompute reasons do not depend on batch boundaries.
python3 - "$E2E_DIR" "$KILLS" "$SEED" <<'PY'
import json, os, random, sys
out, chunks, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(seed)
def ts(i):
    return "2026-11-22T%02d:%02d:%02dZ" % (3 + i // 3600, i // 60 % 60, i % 60)
lists, events = [], []
for s in range(40):
    for surface in ("home", "feed"):
        pool = ["p%d" % s] if s >= 36 else []  # private items of purge users
        items = [] if s >= 36 else rnd.sample(range(120), 15)
        entries = [{"item_id": "i%d" % i, "score": 1 - k / 100,
                    "creator_id": "c%d" % (i % 12),
                    "campaign_id": "k%d" % (i % 6) if i % 3 == 0 else None}
                   for k, i in enumerate(items)]
        entries = [{k: v for k, v in e.items() if v is not None}
                   for e in entries]
        entries += [{"item_id": "%s-%d" % (p, j), "score": 0.1}
                    for p in pool for j in range(5)]
        lists.append(("recs.lists.v1", "u%d" % s, {
            "subject_id": "u%d" % s, "surface": surface,
            "region": "eu" if s % 2 else "us", "list_id": "L-%d-%s" % (s, surface),
            "generated_at": "2026-11-22T01:00:00Z",
            "expires_at": "2099-01-01T00:00:00Z", "model_version": "m1",
            "items": entries}))
items = list(range(120)); rnd.shuffle(items)
n = 0
def ev(topic, key, body):
    global n
    n += 1
    body.update({"event_id": "e%04d" % n, "occurred_at": ts(n)})
    events.append((topic, key, body))
for i in items[:25]:
    ev("recs.item-bans.v1", "i%d" % i, {"type": "item_banned", "item_id": "i%d" % i})
for i in items[25:45]:
    body = {"type": "stock_changed", "item_id": "i%d" % i, "in_stock": False}
    if i % 2:
        body["region"] = "eu"
    ev("recs.stock.v1", "i%d" % i, body)
for i in items[45:60]:
    ev("recs.item-bans.v1", "i%d" % i, {"type": "item_unbanned", "item_id": "i%d" % i})
for s in range(0, 36, 2):
    ev("recs.user-hides.v1", "u%d" % s, {"type": "item_hidden", "user_id": "u%d" % s,
                                          "item_id": "i%d" % items[60 + s]})
for s in range(1, 36, 3):
    ev("recs.user-hides.v1", "u%d" % s, {"type": "creator_hidden", "user_id": "u%d" % s,
                                          "creator_id": "c%d" % (s % 12)})
ev("recs.campaigns.v1", "k3", {"type": "campaign_expired", "campaign_id": "k3"})
for s in range(36, 40):
    ev("recs.consent.v1", "u%d" % s, {"type": "consent_revoked", "user_id": "u%d" % s,
                                       "scope": "all"})
rnd.shuffle(events)
# Bad records ride along: they must be dead-lettered exactly once each.
for b in range(6):
    events.insert(rnd.randrange(len(events)), ("recs.item-bans.v1", "bad%d" % b,
                                                "not json %d" % b))
def write(path, recs):
    with open(path, "w") as f:
        for topic, key, body in recs:
            v = body if isinstance(body, str) else json.dumps(body)
            f.write("%s\t%s\t%s\n" % (topic, key, v))
write(os.path.join(out, "lists.tsv"), lists)
per = (len(events) + chunks - 1) // chunks
for c in range(chunks):
    write(os.path.join(out, "chunk%02d.tsv" % c), events[c * per:(c + 1) * per])
PY

# produce_file FILE: one kcat per topic, keys and values tab separated.
produce_file() {
        local t
        for t in $(cut -f1 "$1" | sort -u); do
                awk -F'\t' -v t="$t" '$1 == t { print $2 "\t" $3 }' "$1" |
                        kcat -P -b "$BROKERS" -t "$t" -K "$(printf '\t')"
        done
}

# spawn DIR: starts the daemon without waiting (crash points include start-up).
spawn() {
        rm -f "$1/http.addr"
        # No reason may be dropped for the cap (recompute.max_reasons): how
        # many reasons meet in one request depends on timing, which kills
        # change, so a cap would make the pairs compared below differ.
        "$RECFRESH" run --brokers "$BROKERS" --data-dir "$1/db" \
                --set consumer.poll_timeout_ms=20 -X session.timeout.ms=6000 \
                --set recompute.max_reasons=10000 \
                --http 127.0.0.1:0 --set "http.addr_file=$1/http.addr" \
                >>"$1/daemon.log" 2>&1 &
        DAEMON_PID=$!
        E2E_PIDS+=($DAEMON_PID)
}

# caught_up DIR: ready, no lag, nothing pending anywhere.
caught_up() {
        [ -s "$1/http.addr" ] || return 1
        local url="http://$(cat "$1/http.addr")"
        curl -fsS "$url/readyz" >/dev/null || return 1
        curl -fsS "$url/metrics" | python3 -c '
import sys
lag = pending = 0
seen = set()
for line in sys.stdin:
    if line.startswith("#"):
        continue
    name, _, value = line.rpartition(" ")
    base = name.split("{")[0]
    seen.add(base)
    if base == "recfresh_consumer_lag":
        lag += float(value)
    elif base in ("recfresh_fanout_jobs_pending", "recfresh_outbox_pending",
                  "recfresh_recompute_backlog", "recfresh_recompute_inflight"):
        pending += float(value)
need = {"recfresh_consumer_lag", "recfresh_fanout_jobs_pending",
        "recfresh_outbox_pending", "recfresh_recompute_backlog"}
sys.exit(0 if need <= seen and lag == 0 and pending == 0 else 1)'
}

# pairs DIR: the (subject, reason event_id) pairs of the recompute requests
# on the topic, deduplicated by request_id, one per line, sorted.
pairs() {
        kcat -C -b "$BROKERS" -t recs.recompute.v1 -e -q | python3 -c '
import json, sys
seen, out = set(), set()
for line in sys.stdin:
    r = json.loads(line)
    if r["request_id"] in seen:
        continue
    seen.add(r["request_id"])
    if r["reasons_dropped"]:
        sys.exit("request %s dropped %d reasons" % (r["request_id"],
                                                     r["reasons_dropped"]))
    for reason in r["reasons"]:
        out.add("%s %s" % (r["subject_id"], reason.get("event_id", reason["type"])))
print("\n".join(sorted(out)))' >"$1/pairs"
}

digest() {
        "$RECFRESH" digest --data-dir "$1/db" | head -n 1
}

# --- the clean run ------------------------------------------------------------
mkdir -p "$E2E_DIR/clean" "$E2E_DIR/crash"
start_broker "$E2E_DIR/clean" 4
CLEAN_BROKERS=$BROKERS
produce_file "$E2E_DIR/lists.tsv"
spawn "$E2E_DIR/clean"
wait_for 60 "clean run: lists applied" caught_up "$E2E_DIR/clean"
for f in "$E2E_DIR"/chunk*.tsv; do produce_file "$f"; done
wait_for 90 "clean run: caught up" caught_up "$E2E_DIR/clean"
pairs "$E2E_DIR/clean" || fail "clean run: recompute requests"
kill -TERM "$DAEMON_PID"
t0=$SECONDS
rc=0
wait "$DAEMON_PID" || rc=$?
[ "$rc" -eq 0 ] || fail "SIGTERM: exit $rc, want 0"
[ $((SECONDS - t0)) -le 15 ] || fail "SIGTERM took $((SECONDS - t0)) s"
echo "ok - SIGTERM drains, commits and exits 0 (in $((SECONDS - t0)) s)"
clean_digest=$(digest "$E2E_DIR/clean")

# --- the crash run ------------------------------------------------------------
start_broker "$E2E_DIR/crash" 4
produce_file "$E2E_DIR/lists.tsv"
spawn "$E2E_DIR/crash"
wait_for 60 "crash run: lists applied" caught_up "$E2E_DIR/crash"
kills=0
for f in "$E2E_DIR"/chunk*.tsv; do
        produce_file "$f"
        # A random point: during start-up, mid-batch or mid-fan-out.
        sleep "$(python3 -c "import random; print(random.uniform(0.05, 1.5))")"
        kill -KILL "$DAEMON_PID"
        wait "$DAEMON_PID" 2>/dev/null || true
        kills=$((kills + 1))
        spawn "$E2E_DIR/crash"
done
[ "$kills" -ge 20 ] || fail "only $kills kills"
wait_for 120 "crash run: caught up" caught_up "$E2E_DIR/crash"
pairs "$E2E_DIR/crash" || fail "crash run: recompute requests"
crash_digest=$(digest "$E2E_DIR/crash")

[ "$clean_digest" = "$crash_digest" ] ||
        fail "digests differ after $kills kills: $clean_digest vs $crash_digest"
echo "ok - $kills SIGKILLs: store digest equals the clean run's ($clean_digest)"

diff -u "$E2E_DIR/clean/pairs" "$E2E_DIR/crash/pairs" >&2 ||
        fail "recompute requests differ (clean vs crash)"
npairs=$(wc -l <"$E2E_DIR/clean/pairs")
[ "$npairs" -gt 50 ] || fail "only $npairs recompute reasons: workload too small"
echo "ok - recompute requests: same $npairs (subject, reason) pairs"

dlq=$(BROKERS=$CLEAN_BROKERS; kcat -C -b "$BROKERS" -t recs.dlq.v1 -e -q | wc -l)
[ "$dlq" -ge 6 ] || fail "clean run dead-lettered $dlq of 6 bad records"

if [ -n "${RF_FIGURES:-}" ]; then
        printf 'crash: kills=%d digest_equal=1 recompute_pairs=%d events_lost=0\n' \
                "$kills" "$npairs" >>"$RF_FIGURES"
fi
echo "3 passed, 0 failed"
