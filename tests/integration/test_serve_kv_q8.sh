#!/bin/sh
# test_serve_kv_q8.sh — an int8 KV cache (kv_q8 = true) served end to end,
# MobileLLM-R1 model, 2 threads, a 1,200-token prompt: long enough that one
# sequence decoding alone splits its attention across the threads
# (split-K, past 1,024 positions), while three copies of it decode as whole
# tiles. Greedy completions must equal `mobilellmd generate --kv-q8` on the
# same ids both ways (batch invariance through the server; test_forward's
# test_split_attention_exact checks that this model and thread count do
# split). An f16 model beside it in the same daemon must answer too (its
# text may differ).
. "$(dirname "$0")/serve_lib.sh"

R1=$FIX/models/tiny-mobilellm-r1-bf16
N=1200
GEN=16
start_daemon --model q8="$R1" --set model.q8.kv_q8=true --set model.q8.threads=2 \
	--model f16="$R1" --set model.f16.threads=2
grep -q 'int8' "$TMP/log" || fail "no int8 KV pool in the log"

# BOS, then ids clear of the special range (>= 128000).
ids=$("$PY" -c "print(','.join(['128000'] + [str(1000 + i * 7919 % 20000) for i in range($N - 1)]))")
"$BIN" generate --model "$R1" --prompt-ids "$ids" --max-tokens $GEN --temperature 0 \
	--threads 2 --kv-q8 --json >"$TMP/cli.json" || fail "generate --kv-q8"
body=$("$PY" -c "import sys; print('{\"model\":\"q8\",\"prompt\":[' + sys.argv[1] + '],\"max_tokens\":$GEN,\"temperature\":0}')" "$ids")
printf '%s' "$body" >"$TMP/req.json"

# Alone: split-K attention.
expect 200 POST /v1/completions -H "$JSON" --data-binary @"$TMP/req.json"
cp "$TMP/body" "$TMP/alone.json"
"$PY" - "$TMP/cli.json" "$TMP/alone.json" $N $GEN <<'PY' || fail "alone != generate --kv-q8"
import json, sys
cli = json.load(open(sys.argv[1]))
api = json.load(open(sys.argv[2]))
n, gen = int(sys.argv[3]), int(sys.argv[4])
assert api["usage"]["prompt_tokens"] == n, api["usage"]
assert api["usage"]["completion_tokens"] == len(cli["ids"]) > 0, (api["usage"], cli["ids"])
assert api["choices"][0]["text"] == cli["text"], (api["choices"][0]["text"], cli["text"])
PY
ok "int8 K/V, one sequence at 1,200 tokens: completion == generate --kv-q8"

# Three at once: whole tiles; every answer the same text.
pids=""
for i in 1 2 3; do
	curl -s -o "$TMP/c$i.json" -H "$JSON" --data-binary @"$TMP/req.json" "$URL/v1/completions" &
	pids="$pids $!"
done
for p in $pids; do wait "$p" || fail "curl $p"; done
"$PY" - "$TMP/cli.json" "$TMP/c1.json" "$TMP/c2.json" "$TMP/c3.json" <<'PY' || fail "batched != alone"
import json, sys
want = json.load(open(sys.argv[1]))["text"]
for p in sys.argv[2:]:
    d = json.load(open(p))
    assert d["choices"][0]["text"] == want, (p, d)
PY
ok "int8 K/V, three sequences batched: the same text"

# The f16 model of the same daemon answers the same request.
sed 's/"model":"q8"/"model":"f16"/' "$TMP/req.json" >"$TMP/req16.json"
expect 200 POST /v1/completions -H "$JSON" --data-binary @"$TMP/req16.json"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["usage"]["completion_tokens"] > 0, d' \
	"$TMP/body" || fail "f16 model"
ok "f16 K/V model beside it answers"

stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC"
ok "exit 0"
