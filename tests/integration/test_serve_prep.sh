#!/bin/sh
# test_serve_prep.sh — request parsing and tokenization run on the prep
# thread, not the loop (STYLE D1): /health and /metrics are answered while
# big prompts are being prepared, clients that hang up during preparation
# leave the daemon consistent, and SIGTERM with requests in preparation
# answers every client and exits 0. No timing assertions: only what each
# client observed.
. "$(dirname "$0")/serve_lib.sh"

start_daemon --model st="$ST"
"$PY" "$HERE/serve_client.py" prep-offloop "$URL" st || fail "loop blocked by preparation"
ok "health and metrics answered while big prompts are prepared off the loop"

"$PY" "$HERE/serve_client.py" prep-hangup "$URL" st || fail "hangups during preparation"
kill -0 "$PID" 2>/dev/null || fail "daemon died after hangups during preparation"
ok "clients hanging up during preparation"

"$PY" "$HERE/serve_client.py" prep-sigterm "$URL" st "$PID" || fail "SIGTERM during preparation"
RC=0
wait "$PID" || RC=$?
PID=""
[ "$RC" = 0 ] || fail "exit code $RC after SIGTERM with requests in preparation"
grep -q "uv_loop_close" "$TMP/log" && fail "shutdown left libuv handles open"
ok "SIGTERM with requests in preparation: every client answered, exit 0"

# Two prep threads (the config knob) serve the same way.
start_daemon --model st="$ST" --set prep_threads=2
"$PY" "$HERE/serve_client.py" prep-offloop "$URL" st || fail "prep_threads=2"
stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC with prep_threads=2"
ok "prep_threads=2"
