#!/bin/sh
# test_serve_http.sh — every route and HTTP-level error with curl: health, models,
# metrics, 404/405 (Allow: exactly the route's methods)/415/413/401, auth (Bearer,
# constant-time compared keys; /health open), CORS preflight (requested headers
# echoed), X-Request-Id, Retry-After.
. "$(dirname "$0")/serve_lib.sh"

start_daemon --model st="$ST" --model tiny="$TINY" --api-key sekret \
	--set cors_origins=https://app.example
AUTH='Authorization: Bearer sekret'

expect 200 GET /health
grep -q '"ok"' "$TMP/body" || fail "/health body: $(cat "$TMP/body")"
header_has "X-Request-Id:" || fail "no X-Request-Id"
ok "health open without a key"

expect 401 GET /v1/models
header_has "WWW-Authenticate: Bearer" || fail "401 without WWW-Authenticate"
expect 401 GET /v1/models -H 'Authorization: Bearer wrong'
expect 401 GET /v1/models -H 'Authorization: Basic sekret'
expect 401 POST /v1/completions -H "$JSON" -d '{"model":"st","prompt":"a"}'
grep -q '"invalid_api_key"' "$TMP/body" || fail "401 code: $(cat "$TMP/body")"
ok "401 for missing/wrong keys"

expect 200 GET /v1/models -H "$AUTH"
"$PY" - "$TMP/body" <<'PYEOF' || fail "/v1/models body"
import json, sys
j = json.load(open(sys.argv[1]))
ids = sorted(m["id"] for m in j["data"])
assert j["object"] == "list" and ids == ["st", "tiny"], j
assert all(m["object"] == "model" for m in j["data"])
PYEOF
expect 200 GET /v1/models/tiny -H "$AUTH"
grep -q '"id":"tiny"' "$TMP/body" || fail "/v1/models/tiny: $(cat "$TMP/body")"
expect 404 GET /v1/models/nope -H "$AUTH"
grep -q '"model_not_found"' "$TMP/body" || fail "404 model code"
# Ids are percent-decoded once routed (as URL encoders write them).
expect 200 GET /v1/models/t%69ny -H "$AUTH"
grep -q '"id":"tiny"' "$TMP/body" || fail "decoded id: $(cat "$TMP/body")"
ok "models list and lookup"

expect 404 GET /nope
expect 404 GET /v1/nope -H "$AUTH"
expect 405 GET /v1/completions -H "$AUTH"
header_has "Allow: POST" || fail "405 without Allow: POST"
expect 405 DELETE /health
header_has "Allow: GET" || fail "405 without Allow: GET"
# /v1/responses/{id}/input_items serves GET only: Allow and the message
# say exactly that and name the route; /v1/responses/{id} also DELETE.
# hdr NAME — the response's NAME header line(s), without CR.
hdr() { grep -i "^$1:" "$TMP/headers" | tr -d '\r'; }
for m in DELETE POST; do
	expect 405 $m /v1/responses/resp_x/input_items -H "$AUTH"
	[ "$(hdr Allow)" = "Allow: GET, HEAD, OPTIONS" ] || fail "$m input_items: $(hdr Allow)"
	grep -q "Method $m is not allowed on /v1/responses/{id}/input_items; use GET, HEAD, OPTIONS" \
		"$TMP/body" || fail "$m input_items: message $(cat "$TMP/body")"
done
expect 204 OPTIONS /v1/responses/resp_x/input_items
[ "$(hdr Allow)" = "Allow: GET, HEAD, OPTIONS" ] || fail "OPTIONS input_items: $(hdr Allow)"
expect 405 POST /v1/responses/resp_x -H "$AUTH"
[ "$(hdr Allow)" = "Allow: GET, HEAD, DELETE, OPTIONS" ] || fail "POST response: $(hdr Allow)"
grep -q 'not allowed on /v1/responses/{id};' "$TMP/body" || fail "POST response: $(cat "$TMP/body")"
expect 404 DELETE /v1/responses/resp_x -H "$AUTH"
expect 404 GET /v1/responses/resp_x/input_items -H "$AUTH"
# A second segment after the id is no route (not a 405 from /v1/responses/{id}).
expect 404 POST /v1/responses/resp_x/cancel -H "$AUTH"
expect 404 GET /v1/models/demo/extra -H "$AUTH"
ok "404 unknown route, 405 with Allow (exactly the route's methods)"

expect 415 POST /v1/completions -H "$AUTH" -d 'prompt=hi'
expect 415 POST /v1/completions -H "$AUTH" -H 'Content-Type: text/plain' -d '{}'
header_has "Accept-Encoding: identity" || fail "a 415 does not say which codings are accepted"
# Every Content-Encoding field counts, not only the first.
expect 415 POST /v1/completions -H "$AUTH" -H "$JSON" -H 'Content-Encoding: identity' \
	-H 'Content-Encoding: gzip' -d '{}'
grep -q 'unsupported_content_encoding' "$TMP/body" || fail "second Content-Encoding: $(cat "$TMP/body")"
# Parameters and optional whitespace (RFC 9110: spaces and tabs) are fine;
# anything else after the media type is another type.
for ct in 'application/json; charset=utf-8' 'Application/JSON' "application/json$(printf '\t')" \
	"$(printf '\t')application/json$(printf '\t');charset=utf-8" 'application/json ;charset=utf-8'; do
	expect 200 POST /tokenize -H "$AUTH" -H "Content-Type: $ct" -d '{"prompt":"hi"}'
done
expect 415 POST /tokenize -H "$AUTH" -H 'Content-Type: application/json x' -d '{"prompt":"hi"}'
expect 415 POST /tokenize -H "$AUTH" -H 'Content-Type: application/jsonx' -d '{"prompt":"hi"}'
ok "415 wrong content type or coding"

head -c 2000000 /dev/zero | tr '\0' 'a' >"$TMP/big"
expect 413 POST /v1/completions -H "$AUTH" -H "$JSON" --data-binary @"$TMP/big"
expect 413 POST /v1/completions -H "$AUTH" -H "$JSON" -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/big"
expect 200 GET /health
# Past 256 MiB of a body with no length announced (chunked) the daemon stops
# dropping it: a 413 written to the socket, then the connection closed.
"$PY" - "${URL##*:}" <<'PYEOF' || fail "chunked body past 256 MiB"
import socket, sys, threading
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(30)
s.sendall(b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Transfer-Encoding: chunked\r\n\r\n")
got = []
def read():
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except OSError:
        pass
    got.append(out)
t = threading.Thread(target=read)
t.start()
chunk = b"100000\r\n" + b"x" * (1 << 20) + b"\r\n"
try:
    for _ in range(300):
        s.sendall(chunk)
except OSError:
    pass
t.join(30)
assert got and got[0].startswith(b"HTTP/1.1 413 "), got[0][:100] if got else "no answer"
assert b"request_too_large" in got[0], got[0]
PYEOF
grep -q 'POST /tokenize 413' "$TMP/log" || fail "the 413 past 256 MiB is not logged as 413"
ok "413 body too large (Content-Length and chunked)"

expect 400 POST /v1/completions -H "$AUTH" -H "$JSON" -d '{"model":"st","prompt":'
expect 400 POST /v1/completions -H "$AUTH" -H "$JSON" -d '{"model":"st","prompt":"a","suffix":"b"}'
grep -q 'suffix' "$TMP/body" || fail "suffix 400 should name the parameter"
expect 400 POST /v1/completions -H "$AUTH" -H "$JSON" -d '{"model":"st","prompt":"a","best_of":4}'
grep -q 'best_of' "$TMP/body" || fail "best_of 400 should name the parameter"
expect 404 POST /v1/completions -H "$AUTH" -H "$JSON" -d '{"model":"nope","prompt":"a"}'
ok "400 bad JSON / suffix / best_of, 404 unknown model"

expect 200 POST /v1/completions -H "$AUTH" -H "$JSON" -d '{"model":"st","prompt":"Once","max_tokens":4,"temperature":0}'
grep -q '"text_completion"' "$TMP/body" || fail "completion body: $(cat "$TMP/body")"
rid=$(grep -i '^X-Request-Id:' "$TMP/headers" | tr -d '\r' | awk '{print $2}')
grep -q "\"id\":\"$rid\"" "$TMP/body" || fail "X-Request-Id $rid is not the completion id"
ok "completion with key; X-Request-Id = response id"

expect 200 POST /tokenize -H "$AUTH" -H "$JSON" -d '{"model":"tiny","prompt":"Hello world"}'
grep -q '"tokens"' "$TMP/body" || fail "tokenize body"
expect 200 POST /detokenize -H "$AUTH" -H "$JSON" -d '{"model":"tiny","tokens":[1,15043,3186]}'
grep -q '"prompt"' "$TMP/body" || fail "detokenize body"
ok "tokenize/detokenize"

# CORS: preflight for an allowed origin; nothing for others.
expect 204 OPTIONS /v1/chat/completions -H 'Origin: https://app.example' \
	-H 'Access-Control-Request-Method: POST'
header_has "Access-Control-Allow-Origin: https://app.example" || fail "no ACAO on preflight"
header_has "Access-Control-Allow-Headers:.*Authorization" || fail "preflight lacks Authorization"
header_has "Access-Control-Allow-Headers:.*X-Stainless-Helper-Method" ||
	fail "fixed preflight list lacks X-Stainless-Helper-Method"
# What the browser asks for (the OpenAI JS SDK: stream helpers, per-request
# timeout) is echoed; a list that is not header names gets the fixed list.
ARH='authorization,content-type,x-stainless-helper-method,x-stainless-timeout'
expect 204 OPTIONS /v1/chat/completions -H 'Origin: https://app.example' \
	-H 'Access-Control-Request-Method: POST' -H "Access-Control-Request-Headers: $ARH"
[ "$(hdr Access-Control-Allow-Headers)" = "Access-Control-Allow-Headers: $ARH" ] ||
	fail "preflight does not echo the requested headers: $(hdr Access-Control-Allow-Headers)"
header_has "Vary: Access-Control-Request-Headers" || fail "preflight echo without Vary"
header_has "X-Request-Id:" || fail "preflight without X-Request-Id"
expect 204 OPTIONS /v1/chat/completions -H 'Origin: https://app.example' \
	-H 'Access-Control-Request-Method: POST' -H 'Access-Control-Request-Headers: a b, c;d'
header_has "Access-Control-Allow-Headers: Authorization, Content-Type" ||
	fail "malformed request list: no fixed list"
header_has "Access-Control-Allow-Headers:.*c;d" && fail "malformed request list echoed"
expect 204 OPTIONS /v1/chat/completions -H 'Origin: https://evil.example' \
	-H 'Access-Control-Request-Method: POST' -H "Access-Control-Request-Headers: $ARH"
header_has "Access-Control-Allow-Headers" && fail "preflight headers for a foreign origin"
expect 200 GET /health -H 'Origin: https://app.example'
header_has "Access-Control-Allow-Origin" || fail "no ACAO on GET"
expect 200 GET /health -H 'Origin: https://evil.example'
if header_has "Access-Control-Allow-Origin"; then fail "ACAO for a foreign origin"; fi
# The answer differs by Origin, so a shared cache must key on it.
header_has "Vary: Origin" || fail "no Vary: Origin for a foreign origin"
ok "CORS allowed origin only; preflight echoes well-formed requested headers"

expect 200 GET /metrics
for m in mllm_requests_total mllm_prompt_tokens_total mllm_generation_tokens_total \
	mllm_queue_depth mllm_running_sequences mllm_kv_blocks_used mllm_kv_blocks_total \
	mllm_prefix_cache_hits_total mllm_prefix_cache_reused_tokens_total mllm_preemptions_total \
	mllm_time_to_first_token_seconds_bucket mllm_inter_token_latency_seconds_bucket \
	mllm_e2e_request_latency_seconds_bucket; do
	grep -q "^$m" "$TMP/body" || fail "/metrics lacks $m"
done
grep -q '^mllm_requests_total{status="401"} [1-9]' "$TMP/body" || fail "401s not counted"
grep -q '^mllm_requests_total{status="413"} [1-9]' "$TMP/body" || fail "413s not counted"
header_has "Content-Type: text/plain; version=0.0.4" || fail "metrics content type"
ok "metrics families present and counting"

# A Responses turn that is not stored can never be continued, so it pins no
# KV blocks (every used block is then an evictable prefix-cache block); a
# stored one pins its conversation (used > cached) for the next turn.
kv() { curl -s -H "$AUTH" "$URL/metrics" | sed -n "s/^mllm_kv_blocks_$1{model=\"st\"} //p"; }
for i in 1 2 3; do
	expect 200 POST /v1/responses -H "$AUTH" -H "$JSON" -d "{\"model\":\"st\",\"store\":false,\"max_output_tokens\":40,\"input\":\"Turn $i: once upon a time there was a girl named Lily who liked to play in the park with her dog.\"}"
done
u=$(kv used) c=$(kv cached)
[ -n "$u" ] && [ "$u" -gt 0 ] && [ "$u" = "$c" ] || fail "store:false pinned KV blocks: used $u, cached $c"
expect 200 POST /v1/responses -H "$AUTH" -H "$JSON" -d '{"model":"st","max_output_tokens":40,"input":"Once upon a time there was a girl named Lily who liked to play in the park with her dog."}'
u=$(kv used) c=$(kv cached)
[ "$u" -gt "$c" ] || fail "a stored response pinned nothing: used $u, cached $c"
ok "Responses: store:false pins no KV blocks, a stored turn does"

stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC after SIGTERM"
ok "SIGTERM when idle: exit 0"
