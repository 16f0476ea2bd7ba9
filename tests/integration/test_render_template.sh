#!/bin/sh
# test_render_template.sh — `mobilellmd render-template` against every
# fixture golden: byte-identical text on stdout and exit 0 where
# transformers rendered, exit 3 with a message on stderr where the template
# raised; exit 2 for bad input (an empty conversation, which transformers
# refuses before rendering), usage errors and a template that does not
# parse (with the line and column on stderr).
set -eu
BIN=${BIN:-build/mobilellmd}
FIX=${MLLM_FIXTURES:-../shared/fixtures}
D=$FIX/chat_templates
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Python only cuts the fixtures into per-case files; all rendering is ours.
/usr/bin/python3 - "$D" "$tmp" <<'PY'
import json, sys, os
d, out = sys.argv[1], sys.argv[2]
convs = {}
for line in open(os.path.join(d, "conversations.jsonl"), encoding="utf-8"):
    c = json.loads(line)
    convs[c["id"]] = c
with open(os.path.join(out, "list"), "w") as lst:
    for i, line in enumerate(open(os.path.join(d, "goldens.jsonl"), encoding="utf-8")):
        g = json.loads(line)
        c = convs[g["conversation"]]
        ctx = {"messages": c["messages"], "add_generation_prompt": c["add_generation_prompt"]}
        if "tools" in c:
            ctx["tools"] = c["tools"]
        ctx.update(c.get("kwargs", {}))
        with open(os.path.join(out, "%d.in" % i), "w", encoding="utf-8") as f:
            json.dump(ctx, f, ensure_ascii=False)
        if "rendered" in g:
            with open(os.path.join(out, "%d.want" % i), "wb") as f:
                f.write(g["rendered"].encode("utf-8"))
        # transformers refuses an empty conversation before rendering: the
        # input is bad (exit 2), the template never ran (not 3).
        kind = "ok" if "rendered" in g else "input" if not c["messages"] else "raise"
        lst.write("%d %s %s %s\n" % (i, g["template"], g["conversation"], kind))
PY

n_ok=0
n_raise=0
n_input=0
while read -r i name conv kind; do
	rc=0
	"$BIN" render-template --template "$D/$name.jinja" --special "$D/$name.json" \
		<"$tmp/$i.in" >"$tmp/$i.got" 2>"$tmp/$i.err" || rc=$?
	if [ "$kind" = ok ]; then
		if [ "$rc" -ne 0 ] || ! cmp -s "$tmp/$i.want" "$tmp/$i.got"; then
			echo "$name/$conv: rc $rc, output differs from transformers'"
			cat "$tmp/$i.err"
			exit 1
		fi
		n_ok=$((n_ok + 1))
	elif [ "$kind" = input ]; then
		if [ "$rc" -ne 2 ] || ! grep -q 'messages' "$tmp/$i.err"; then
			echo "$name/$conv: expected exit 2 (bad input) with a message, got rc $rc"
			exit 1
		fi
		n_input=$((n_input + 1))
	else
		if [ "$rc" -ne 3 ] || [ ! -s "$tmp/$i.err" ]; then
			echo "$name/$conv: expected exit 3 with a message, got rc $rc"
			exit 1
		fi
		n_raise=$((n_raise + 1))
	fi
done <"$tmp/list"
[ "$n_ok" -eq 188 ] && [ "$n_raise" -eq 17 ] && [ "$n_input" -eq 5 ] || {
	echo "expected 188 rendered, 17 raising and 5 bad-input cases," \
		"got $n_ok, $n_raise and $n_input"
	exit 1
}

# raise_exception's message reaches stderr as written.
printf '{%% if messages|length > 1 %%}{{ raise_exception("two is too many") }}{%% endif %%}ok' \
	>"$tmp/raise.jinja"
rc=0
echo '{"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]}' |
	"$BIN" render-template --template "$tmp/raise.jinja" >"$tmp/out" 2>"$tmp/err" || rc=$?
[ "$rc" -eq 3 ] && grep -q "two is too many" "$tmp/err" || {
	echo "raise_exception: rc $rc, stderr: $(cat "$tmp/err")"
	exit 1
}
# No newline is added to the text.
out=$(echo '{"messages":[{"role":"user","content":"a"}]}' |
	"$BIN" render-template --template "$tmp/raise.jinja" | od -An -c | tr -d ' \n')
[ "$out" = "ok" ] || { echo "rendered bytes: $out"; exit 1; }

# Parse errors and usage errors exit 2.
printf 'fine\n{%% include "other.jinja" %%}' >"$tmp/bad.jinja"
rc=0
echo '{"messages":[{"role":"user","content":"a"}]}' |
	"$BIN" render-template --template "$tmp/bad.jinja" >/dev/null 2>"$tmp/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q "line 2, column 4" "$tmp/err" || {
	echo "unsupported tag: rc $rc, stderr: $(cat "$tmp/err")"
	exit 1
}
for args in "" "--template" "--template $D/llama3.jinja --bogus"; do
	rc=0
	# shellcheck disable=SC2086
	"$BIN" render-template $args </dev/null >/dev/null 2>&1 || rc=$?
	[ "$rc" -eq 2 ] || { echo "usage '$args': rc $rc"; exit 1; }
done
rc=0
echo 'not json' | "$BIN" render-template --template "$D/llama3.jinja" >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || { echo "bad stdin: rc $rc"; exit 1; }
# An empty conversation is bad input even for a template that would render
# it: exit 2 (the template never ran, so it cannot have raised).
rc=0
echo '{"messages":[]}' | "$BIN" render-template --template "$tmp/raise.jinja" \
	>"$tmp/out" 2>"$tmp/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q "messages" "$tmp/err" && [ ! -s "$tmp/out" ] || {
	echo "empty messages: rc $rc, stderr: $(cat "$tmp/err")"
	exit 1
}
echo "render-template: $n_ok goldens identical, $n_raise raise, $n_input bad input"
