#!/bin/sh
# test_serve_generate.sh — generation through the daemon end to end: greedy
# streamed text equals the non-streamed text (completions and chat), usage,
# logprobs, token-id prompts; 16 concurrent clients get what they get one at
# a time; clients that hang up leave no KV blocks behind (seen in /metrics).
. "$(dirname "$0")/serve_lib.sh"

# prefix_cache off: KV blocks in use must return to exactly 0 when idle.
start_daemon --model st="$ST" --model tiny="$TINY" --set model.st.prefix_cache=false \
	--set model.tiny.prefix_cache=false

"$PY" "$HERE/serve_client.py" greedy "$URL" st || fail "greedy (stories260K)"
ok "greedy stream == non-stream (stories260K)"
"$PY" "$HERE/serve_client.py" concurrent "$URL" st 16 || fail "16 concurrent clients"
ok "16 concurrent clients == sequential"
"$PY" "$HERE/serve_client.py" disconnect "$URL" tiny || fail "disconnect"
ok "disconnects free KV blocks"

stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC"
ok "exit 0"
