#!/bin/sh
# test_serve_harden.sh — issue 17's attacks on a real daemon on loopback:
# strict framing and raw-path routing, slowloris (drip headers and bodies),
# connection caps at accept, abandoned preparation, log injection (text and
# json), error shapes that used to be vague, and metrics_auth. Every wait is
# bounded; time bounds derive from the configured timeouts plus generous
# slack (harden_client.py), never fine measurements.
. "$(dirname "$0")/serve_lib.sh"

H="$PY $HERE/harden_client.py"

# Framing: every case answered long before the 60 s idle timeout, each with
# one well-formed response head carrying X-Request-Id and Date.
start_daemon --model st="$ST" --set connection_timeout_s=60 --set body_timeout_ms=60000 \
	--set header_timeout_ms=60000
$H framing "$URL" 60 || fail "framing"
$H hangup "$URL" 60000 || fail "hang-ups mid-request"
$H inject "$URL" st || fail "log injection"
$H cancel-cached "$URL" st "$TMP/log" || fail "cached tokens of a cancelled request"
stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC (a sanitizer report?)"
$H check-log "$TMP/log" text || fail "text log"
ok "framing cases answered at once; raw-path routing; hang-ups mid-request freed; text log escaped; a cancelled request's cache hit logged"

# A stream nobody reads: its outbox overflows, the stream still ends with
# its error event and [DONE].
start_daemon --model st="$ST" --set connection_timeout_s=600
$H outbox-overflow "$URL" st "$TMP/log" || fail "outbox overflow"
stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC after the outbox overflow"
ok "a stream past its outbox ends with client_too_slow and [DONE]"

start_daemon --model st="$ST" --set connection_timeout_s=600
$H outbox-read-front "$URL" st "$TMP/log" || fail "outbox limit on unread bytes"
stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC after the outbox test"
ok "the outbox's limit is on unread bytes (read ones in front do not count)"

# Slowloris: 2x max_connections dripping connections.
start_daemon --model st="$ST" --set max_connections=8 --set max_connections_per_client=64 \
	--set header_timeout_ms=1000 --set body_timeout_ms=1500 --set connection_timeout_s=60
$H slowloris "$URL" 8 1000 1500 || fail "slowloris"
$H body-timeout "$URL" 1500 || fail "408 body timeout"
kill -0 "$PID" 2>/dev/null || fail "daemon died under slowloris"
stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC after slowloris"
ok "slowloris bounded by header/body timeouts"

# Request ids, the client's X-Request-Id in the log, 499 for a mid-body
# hang-up, no time to first token without a token.
start_daemon --model st="$ST"
$H ids "$URL" st || fail "request ids"
stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC after request ids"
$H check-ids "$TMP/log" || fail "request ids in the log"
ok "request ids unique, client ids logged, mid-body hang-up 499"

# Keep-alive: an unused connection is closed at header_timeout_ms, which its
# answer announced; counted as idle, a late request head as timed out.
start_daemon --model st="$ST" --set header_timeout_ms=3000 --set connection_timeout_s=60
$H keepalive "$URL" 3000 || fail "keep-alive idle close"
stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC after keep-alive"
# The hint is under the earlier of the two closes (MHD's idle timeout
# here), and absent when the client asked to close.
start_daemon --model st="$ST" --set header_timeout_ms=10000 --set connection_timeout_s=4
curl -s -D "$TMP/h" -o /dev/null "$URL/health"
grep -qi '^Keep-Alive: timeout=3' "$TMP/h" || fail "keep-alive hint: $(cat "$TMP/h")"
curl -s -D "$TMP/h" -o /dev/null -H 'Connection: close' "$URL/health"
if grep -qi '^Keep-Alive:' "$TMP/h"; then fail "keep-alive hint beside Connection: close"; fi
stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC after the keep-alive hint"
ok "unused keep-alive connections: announced, closed, counted as idle"

# Caps at accept (header timeout far above the test's bounds).
start_daemon --model st="$ST" --set max_connections=8 --set max_connections_per_client=3 \
	--set header_timeout_ms=60000 --set connection_timeout_s=60
$H caps "$URL" 8 3 || fail "connection caps"
stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC (a sanitizer report?)"
ok "max_connections and max_connections_per_client refuse at accept"

# Abandoned preparation on the single prep thread.
start_daemon --model st="$ST" --set prep_threads=1
$H abandon "$URL" st || fail "abandoned preparation"
stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC after abandoned preparation"
ok "abandoned preparation cancelled"

# Error shapes; metrics_auth = true; JSON log lines.
start_daemon --model st="$ST" --set model.st.max_running=2 --set model.st.max_queue=3 \
	--set api_key=k1 --set metrics_auth=true --set log_format=json
$H metrics-auth "$URL" k1 closed || fail "metrics_auth = true"
stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC (a sanitizer report?)"
start_daemon --model st="$ST" --set model.st.max_running=2 --set model.st.max_queue=3 \
	--set log_format=json
$H shapes "$URL" st 2 3 || fail "error shapes"
$H metrics-auth "$URL" none open || fail "metrics_auth = false"
$H inject "$URL" st || fail "log injection (json)"
stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC (a sanitizer report?)"
$H check-log "$TMP/log" json || fail "json log"
ok "error shapes, metrics_auth, json log"

# A KV pool smaller than one request: 4 blocks of 16 tokens.
start_daemon --model st="$ST" --set model.st.kv_blocks=4 --set model.st.kv_block_size=16
$H kvpool "$URL" st || fail "KV pool smaller than a request"
stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC (a sanitizer report?)"
ok "KV pool smaller than one request"
