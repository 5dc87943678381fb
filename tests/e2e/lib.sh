# Shared by the e2e tests and ops/demo.sh: start the built binaries as a
# user would, and wait on conditions with deadlines (never bare sleeps).

RECFRESH=${RECFRESH:-$(pwd)/build/recfresh}
E2E_PIDS=()

e2e_cleanup() {
        for pid in "${E2E_PIDS[@]}"; do
                kill "$pid" 2>/dev/null || true
        done
        for pid in "${E2E_PIDS[@]}"; do
                wait "$pid" 2>/dev/null || true
        done
        [ -n "${E2E_DIR:-}" ] && [ -z "${E2E_KEEP:-}" ] && rm -rf "$E2E_DIR"
        return 0
}

# wait_for SECONDS DESCRIPTION COMMAND...: retries COMMAND until it succeeds.
wait_for() {
        local secs=$1 what=$2
        shift 2
        local deadline=$((SECONDS + secs))
        until "$@" >/dev/null 2>&1; do
                if [ $SECONDS -ge $deadline ]; then
                        echo "timed out after ${secs}s waiting for: $what" >&2
                        return 1
                fi
                sleep 0.05
        done
}

# start_broker DIR [PARTITIONS]: runs `recfresh broker`, sets BROKERS.
# Mind the embedded broker's ~5 MiB retention per partition: a test that
# produces more must spread it over enough partitions.
start_broker() {
        local dir=$1 parts=${2:-2}
        "$RECFRESH" broker --partitions "$parts" \
                --bootstrap-file "$dir/bootstrap" \
                >"$dir/broker.out" 2>"$dir/broker.log" &
        E2E_PIDS+=($!)
        wait_for 20 "broker bootstrap file" test -s "$dir/bootstrap"
        BROKERS=$(cat "$dir/bootstrap")
}

# lines_above FILE PATTERN N: FILE has more than N lines matching PATTERN.
lines_above() { [ "$(grep -c "$2" "$1" 2>/dev/null)" -gt "$3" ]; }

# start_daemon DIR [ARGS...]: runs `recfresh run` against $BROKERS, sets
# DAEMON_PID, waits until its consumers are assigned. The HTTP API listens
# on a free port; HTTP is set to its base URL ("http://127.0.0.1:PORT").
# DIR's daemon.log gathers every start's: this one is waited on by its own
# "consumers assigned" line, not an earlier start's.
start_daemon() {
        local dir=$1 starts
        shift
        starts=$(grep -c "consumers assigned" "$dir/daemon.log" 2>/dev/null) ||
                starts=0
        rm -f "$dir/http.addr"
        "$RECFRESH" run --brokers "$BROKERS" --data-dir "$dir/db" \
                --set consumer.poll_timeout_ms=20 -X session.timeout.ms=6000 \
                --http 127.0.0.1:0 --set "http.addr_file=$dir/http.addr" \
                "$@" \
                >>"$dir/daemon.log" 2>&1 &
        DAEMON_PID=$!
        E2E_PIDS+=($DAEMON_PID)
        wait_for 60 "daemon consumers assigned" \
                lines_above "$dir/daemon.log" "consumers assigned" "$starts"
        HTTP=
        if [ -s "$dir/http.addr" ]; then
                HTTP="http://$(cat "$dir/http.addr")"
        fi
}

# metric NAME_WITH_LABELS: the daemon's ($HTTP) value of a metric, 0 if
# absent.
metric() {
        curl -sf "$HTTP/metrics" | awk -v n="$1" '$1 == n { v = $2 } END { print v + 0 }'
}
# For wait_for, which runs its command again until it passes.
metric_is() { [ "$(metric "$1")" = "$2" ]; }
metric_at_least() { [ "$(metric "$1")" -ge "$2" ]; }
metric_above() { [ "$(metric "$1")" -gt "$2" ] 2>/dev/null ||
        python3 -c "import sys; sys.exit(0 if float('$(metric "$1")') > float('$2') else 1)"; }

# produce TOPIC KEY JSON
produce() {
        printf '%s\n' "$3" | kcat -P -b "$BROKERS" -t "$1" -k "$2"
}

# served DIR SUBJECT SURFACE: prints served item ids, comma separated.
served() {
        "$RECFRESH" get --data-dir "$1/db" --subject "$2" --surface "$3" \
                --json | python3 -c '
import json, sys
r = json.load(sys.stdin)
print(",".join(i["item_id"] for i in r["items"]) if r["status"] == "found"
      else "<" + r["status"] + ">")'
}

# served_is DIR SUBJECT SURFACE EXPECTED
served_is() {
        [ "$(served "$1" "$2" "$3")" = "$4" ]
}
