#!/bin/sh
# test_shutdown.sh — SIGTERM during streaming: with time to spare the
# streams finish normally; past shutdown_timeout_ms they end with an error
# event and [DONE]. Either way new connections are refused and the exit code
# is 0.
. "$(dirname "$0")/lib.sh"

start_daemon --model st="$ST" --set shutdown_timeout_ms=20000
"$PY" "$HERE/client.py" sigterm "$URL" st "$PID" finish || fail "streams did not finish"
RC=0
wait "$PID" || RC=$?
PID=""
[ "$RC" = 0 ] || fail "exit code $RC after SIGTERM (finish)"
grep -q "SIGTERM" "$TMP/log" || fail "SIGTERM not logged"
ok "SIGTERM: in-flight streams finish, exit 0"

start_daemon --model tiny="$TINY" --set shutdown_timeout_ms=300
"$PY" "$HERE/client.py" sigterm "$URL" tiny "$PID" abort || fail "streams not aborted cleanly"
RC=0
wait "$PID" || RC=$?
PID=""
[ "$RC" = 0 ] || fail "exit code $RC after SIGTERM (timeout)"
ok "SIGTERM past the timeout: streams end with an error event, exit 0"
