#!/bin/sh
# test_serve_chat_template.sh — a served model prompts with its own Jinja
# chat template: from tokenizer_config.json (chat_template = auto), from a
# file named in the config, or the preset when it ships none; a model's own
# template that does not parse falls back to the preset with a WARN, while
# a configured file that does not parse is refused (--check-config and
# serve, exit 2, before listening). /tokenize with
# messages shows the exact prompt (BOS once, from the template's
# bos_token), /v1/chat/completions answers with it, raise_exception is a
# 400 with the template's words, and /v1/models/{id} says which template
# is in use. The fixture model is tiny-mobilellm-f16 given the fixture
# templates (copied into a temporary snapshot, never into the repo).
. "$(dirname "$0")/serve_lib.sh"

CT=$FIX/chat_templates
OWN=$TMP/own
mkdir -p "$OWN"
for f in config.json model.safetensors tokenizer.model special_tokens_map.json; do
	ln -s "$(cd "$TINY" && pwd)/$f" "$OWN/$f"
done
# The snapshot's tokenizer_config.json, with Llama-3.1's template added.
"$PY" - "$TINY/tokenizer_config.json" "$CT/llama3_1.jinja" "$OWN/tokenizer_config.json" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["chat_template"] = open(sys.argv[2], encoding="utf-8").read()
json.dump(cfg, open(sys.argv[3], "w"))
PY
BAD='{% for m in messages %}{{ m.content | nosuchfilter }}{% endfor %}'
printf '%s' "$BAD" >"$TMP/bad.jinja"
# A snapshot whose own template (chat_template = auto) does not parse.
BADOWN=$TMP/badown
mkdir -p "$BADOWN"
for f in config.json model.safetensors tokenizer.model special_tokens_map.json; do
	ln -s "$(cd "$TINY" && pwd)/$f" "$BADOWN/$f"
done
"$PY" - "$TINY/tokenizer_config.json" "$BAD" "$BADOWN/tokenizer_config.json" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["chat_template"] = sys.argv[2]
json.dump(cfg, open(sys.argv[3], "w"))
PY

# A configured template file that does not parse is a configuration error,
# for --check-config (the systemd unit's ExecStartPre) and for serve alike.
for mode in --check-config "--port 0"; do
	rc=0
	# shellcheck disable=SC2086
	timeout 20 "$BIN" serve --host 127.0.0.1 --model bad="$TINY" \
		--set model.bad.chat_template="$TMP/bad.jinja" $mode >"$TMP/out" 2>&1 || rc=$?
	[ "$rc" = 2 ] || fail "unparsable template file, $mode: exit $rc: $(cat "$TMP/out")"
	grep -q "model bad: chat_template '$TMP/bad.jinja': line 1, column .*nosuchfilter" \
		"$TMP/out" || fail "unparsable template file, $mode: $(cat "$TMP/out")"
	grep -q "listening" "$TMP/out" && fail "serve listened with an unparsable template file"
done
ok "a template file that does not parse: --check-config and serve exit 2"

start_daemon --model own="$OWN" --model ownfile="$OWN/model.safetensors" \
	--model file="$TINY" --model plain="$TINY" \
	--model gemma="$TINY" --model qwen="$TINY" --model bad="$BADOWN" \
	--set model.file.chat_template="$CT/llama3_1.jinja" \
	--set model.gemma.chat_template="$CT/gemma3.jinja" \
	--set model.qwen.chat_template="$CT/qwen3.jinja" \
	$(for m in own ownfile file plain gemma qwen bad; do printf ' --set model.%s.kv_bytes=4m' $m; done)

# Which template each model uses (a snapshot named by one of its files
# uses the snapshot's, as its directory does).
for pair in own:tokenizer_config.json ownfile:tokenizer_config.json \
	"file:file:$CT/llama3_1.jinja" plain:preset:plain bad:preset:plain; do
	id=${pair%%:*}
	source=${pair#*:}
	expect 200 GET "/v1/models/$id"
	got=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["chat_template"])' \
		"$TMP/body")
	[ "$got" = "$source" ] || fail "/v1/models/$id: chat_template '$got', want '$source'"
done
grep -qi "warn.*model bad: chat template.*line 1, column .*nosuchfilter" "$TMP/log" ||
	fail "no WARN with line and column for the unusable template"
ok "/v1/models/{id} names the template; a model's own bad one falls back with a WARN"

# tokens MODEL BODY — prints the ids /tokenize returns, one line.
tokens() {
	expect 200 POST /tokenize -H "$JSON" -d "{\"model\":\"$1\",$2}"
	"$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["tokens"])' "$TMP/body"
}
MSGS='"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi there"}]'
# Llama-3.1's template prints bos_token ("<s>" for this tokenizer) first:
# that text becomes the one BOS id; the rest is the prompt text.
REST='<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n'
ref=$(tokens plain "\"prompt\":\"$REST\"")
for id in own file; do
	got=$(tokens "$id" "$MSGS")
	[ "$got" = "$ref" ] || fail "/tokenize $id: $got, want $ref"
done
case "$ref" in "[1, "*) ;; *) fail "no BOS first: $ref" ;; esac
case "$ref" in "[1, 1,"*) fail "BOS doubled: $ref" ;; esac
# The preset model renders as before.
got=$(tokens plain "$MSGS")
ref=$(tokens plain '"prompt":"System: Be brief.\nUser: Hi there\nAssistant:"')
[ "$got" = "$ref" ] || fail "/tokenize plain: $got, want $ref"
ok "/tokenize with messages renders the model's template, BOS once"

# chat_template_kwargs reach the template (Qwen3's enable_thinking); no
# bos_token there, so no BOS either (add_special_tokens=false for the
# reference).
got=$(tokens qwen '"messages":[{"role":"user","content":"Hi"}],"chat_template_kwargs":{"enable_thinking":false}')
ref=$(tokens qwen '"add_special_tokens":false,"prompt":"<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"')
[ "$got" = "$ref" ] || fail "/tokenize qwen kwargs: $got, want $ref"
ok "chat_template_kwargs are template variables"

# Tools, tool calls and tool results reach the template as sent: the
# served prompt is what render-template prints for the same chat.
TOOLS='"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]'
TMSGS='"messages":[{"role":"user","content":"Weather in Paris?"},{"role":"assistant","content":"","tool_calls":[{"type":"function","function":{"name":"get_weather","arguments":{"city":"Paris"}}}]},{"role":"tool","content":"14 C, rain"}]'
echo "{$TMSGS,$TOOLS,\"add_generation_prompt\":true}" |
	"$BIN" render-template --template "$CT/qwen3.jinja" >"$TMP/tools.txt" ||
	fail "render-template with tools"
grep -q '"name": "get_weather"' "$TMP/tools.txt" || fail "tools not rendered: $(cat "$TMP/tools.txt")"
ptext=$("$PY" -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$TMP/tools.txt")
ref=$(tokens qwen "\"add_special_tokens\":false,\"prompt\":$ptext")
got=$(tokens qwen "$TMSGS,$TOOLS")
[ "$got" = "$ref" ] || fail "/tokenize qwen with tools: $got, want $ref"
# A preset model has no template to hand them to: the tool call and its
# result become plain turns (see docs/api.md, tool calls).
expect 200 POST /detokenize -H "$JSON" -d "{\"model\":\"plain\",\"tokens\":$(tokens plain "$TMSGS")}"
grep -q 'Tool result' "$TMP/body" || fail "tool message on a preset: $(cat "$TMP/body")"
ok "tools and tool messages render through the model's template"

# Chat completions use it; a raising template is a 400 with its words.
expect 200 POST /v1/chat/completions -H "$JSON" \
	-d "{\"model\":\"own\",$MSGS,\"max_tokens\":3,\"temperature\":0}"
expect 400 POST /v1/chat/completions -H "$JSON" \
	-d '{"model":"gemma","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}],"max_tokens":2}'
grep -q "Conversation roles must alternate" "$TMP/body" || fail "raise message lost: $(cat "$TMP/body")"
expect 400 POST /v1/chat/completions -H "$JSON" \
	-d '{"model":"own","messages":[{"role":"user","content":"a"}],"chat_template_kwargs":[1]}'
expect 400 POST /v1/chat/completions -H "$JSON" \
	-d '{"model":"own","messages":[{"role":"user","content":"a"}],"tools":"x"}'
ok "chat completions: template in use, raise_exception is a 400"

stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC"
ok "clean shutdown"
