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
# the log tells streams the shutdown cut from ones their clients left
grep -q "stream cancelled by the shutdown timeout" "$TMP/log" ||
	fail "a stream cut by the shutdown is not logged as such: $(grep ' 200 ' "$TMP/log" | tail -2)"
ok "SIGTERM past the timeout: streams end with an error event (logged as cut by the shutdown), exit 0"

# Any answer being written is in flight, not only generations.
start_daemon --model st="$ST" --set shutdown_timeout_ms=20000
"$PY" "$HERE/serve_client.py" sigterm-slow-answer "$URL" "$PID" || fail "answer cut by SIGTERM"
RC=0
wait "$PID" || RC=$?
PID=""
[ "$RC" = 0 ] || fail "exit code $RC after SIGTERM (slow answer)"
ok "SIGTERM: a large answer still being read arrives whole, exit 0"

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

# SIGTERM while models load: the loader loads no further model and the
# daemon exits 0 without waiting for the rest (it used to load all of them
# first, with the loop blocked joining the loader so that a second signal
# went unanswered). 24 ids of the R1 fixture.
R1=$FIX/models/tiny-mobilellm-r1-bf16
many=""
for i in $(seq 24); do many="$many --model r$i=$R1"; done
: >"$TMP/log"
# shellcheck disable=SC2086
"$BIN" serve --host 127.0.0.1 --port 0 $many >>"$TMP/log" 2>&1 &
PID=$!
i=0
while ! grep -q "model r1 loaded" "$TMP/log" && [ $i -lt 600 ]; do
	kill -0 "$PID" 2>/dev/null || fail "daemon exited during startup"
	sleep 0.05
	i=$((i + 1))
done
grep -q "model r1 loaded" "$TMP/log" || fail "r1 never loaded"
kill -TERM "$PID"
RC=0
wait "$PID" || RC=$?
PID=""
n=$(grep -c "loaded from" "$TMP/log" || true)
[ "$RC" = 0 ] || fail "SIGTERM during loading: exit $RC, want 0: $(tail -5 "$TMP/log")"
[ "$n" -lt 24 ] && grep -q "model(s) not loaded" "$TMP/log" ||
	fail "SIGTERM during loading: $n of 24 models loaded first: $(tail -3 "$TMP/log")"
ok "SIGTERM during loading stops the loader ($n of 24 loaded), exit 0"
