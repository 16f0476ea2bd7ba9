#!/bin/sh
# test_serve_shutdown.sh — SIGTERM during streaming: with time to spare the
# streams finish normally; past shutdown_timeout_ms they end with an error
# event and [DONE]. Either way new connections are refused and the exit code
# is 0.
. "$(dirname "$0")/serve_lib.sh"

start_daemon --model st="$ST" --set shutdown_timeout_ms=20000
"$PY" "$HERE/serve_client.py" sigterm "$URL" st "$PID" finish || fail "streams did not finish"
RC=0
wait "$PID" || RC=$?
PID=""
[ "$RC" = 0 ] || fail "exit code $RC after SIGTERM (finish)"
grep -q "SIGTERM" "$TMP/log" || fail "SIGTERM not logged"
ok "SIGTERM: in-flight streams finish, exit 0"

start_daemon --model tiny="$TINY" --set shutdown_timeout_ms=300
"$PY" "$HERE/serve_client.py" sigterm "$URL" tiny "$PID" abort || fail "streams not aborted cleanly"
RC=0
wait "$PID" || RC=$?
PID=""
[ "$RC" = 0 ] || fail "exit code $RC after SIGTERM (timeout)"
ok "SIGTERM past the timeout: streams end with an error event, exit 0"

# A second signal exits at once, whatever is in flight.
start_daemon --model tiny="$TINY" --set shutdown_timeout_ms=60000
curl -s -N "$URL/v1/completions" -H "$JSON" \
	-d '{"model":"tiny","prompt":"Hi","max_tokens":1800,"stream":true}' >/dev/null 2>&1 &
CPID=$!
sleep 0.3
kill -TERM "$PID"
sleep 0.2
kill -0 "$PID" 2>/dev/null || fail "exited on the first signal with a stream in flight"
stop_daemon TERM
[ "$RC" = 1 ] || fail "second signal: exit $RC, want 1 (immediate)"
wait "$CPID" 2>/dev/null || true
ok "second signal exits immediately"
