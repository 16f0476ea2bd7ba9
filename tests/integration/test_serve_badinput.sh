#!/bin/sh
# test_serve_badinput.sh — bad input, systematically: malformed JSON, wrong types,
# huge and negative numbers, invalid UTF-8, a 10 MB body, thousands of stop
# strings, unknown fields. Each gets the right 4xx with an OpenAI error body
# and the daemon keeps serving.
. "$(dirname "$0")/serve_lib.sh"

start_daemon --model st="$ST"
"$PY" "$HERE/serve_client.py" badinput "$URL" st || fail "bad input"
ok "bad input answered; daemon healthy"

stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC"
# A slow client cannot hold a connection: the idle timeout closes it.
start_daemon --model st="$ST" --set connection_timeout_s=1
"$PY" - "$URL" <<'PYEOF' || fail "idle connection not closed"
import socket, sys, time, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
s = socket.create_connection((u.hostname, u.port))
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")  # headers never finish
s.settimeout(5)
t = time.time()
try:
    d = s.recv(100)
except socket.timeout:
    sys.exit("still open after 5 s")
except ConnectionResetError:
    d = b""
assert time.time() - t < 4.5, "closed too late"
PYEOF
expect 200 GET /health
ok "idle connection closed by connection_timeout_s"

# max_connections: with every slot held by idle sockets a new client is
# turned away; once they are released it is served again.
stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC"
start_daemon --model st="$ST" --set max_connections=3
"$PY" - "$URL" <<'PYEOF' || fail "connection limit"
import socket, sys, time, urllib.parse, http.client
u = urllib.parse.urlparse(sys.argv[1])
held = [socket.create_connection((u.hostname, u.port)) for _ in range(3)]
time.sleep(0.2)
try:
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=3)
    c.request("GET", "/health")
    st = c.getresponse().status
    sys.exit("a connection past the limit was served (%d)" % st)
except (ConnectionError, http.client.HTTPException, socket.timeout, OSError):
    pass
for s in held:
    s.close()
time.sleep(0.2)
c = http.client.HTTPConnection(u.hostname, u.port, timeout=3)
c.request("GET", "/health")
assert c.getresponse().status == 200
PYEOF
ok "max_connections enforced"
stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC"

# A model whose logits are NaN (broken weights: its final norm's) fails each
# request with a 500 and a log line, rather than answering with whatever
# token NaN comparisons pick.
"$PY" "$HERE/nan_model.py" "$ST" "$TMP/nan"
start_daemon --model nan="$TMP/nan"
expect 500 POST /v1/completions -H "$JSON" -d '{"model":"nan","prompt":"Once","max_tokens":3}'
grep -q "logits are not finite" "$TMP/log" || fail "no log line for NaN logits"
code=$(status POST /v1/completions -H "$JSON" -d '{"model":"nan","prompt":"Once","max_tokens":3,"stream":true}')
[ "$code" = 200 ] && grep -q '"error"' "$TMP/body" || fail "NaN logits, streamed: $code $(cat "$TMP/body")"
ok "NaN logits fail the request (500), logged"
stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC"
