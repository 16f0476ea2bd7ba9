#!/bin/sh
# test_tokenize_cli.sh — `mobilellmd tokenize --jsonl` reproduces
# SentencePiece's ids for every fixture case, from tokenizer.model and from
# the vocab-only GGUF; the plain form prints the ids with BOS.
set -eu
BIN=${BIN:-build/mobilellmd}
FIX=${MLLM_FIXTURES:-../shared/fixtures}
T=$FIX/tokenizer/llama2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

/usr/bin/python3 - "$T/cases.jsonl" >"$tmp/want" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    print(json.dumps({"ids": json.loads(line)["ids"]}, separators=(",", ":")))
PY
n=$(wc -l <"$tmp/want")
[ "$n" -eq 3000 ] || { echo "expected 3000 cases, got $n"; exit 1; }

for tok in "$T/tokenizer.model" "$T/llamacpp/ggml-vocab-llama-spm.gguf"; do
	"$BIN" tokenize --model "$tok" --jsonl <"$T/cases.jsonl" >"$tmp/got.raw"
	/usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1]):
    print(json.dumps({"ids": json.loads(line)["ids"]}, separators=(",", ":")))
' "$tmp/got.raw" >"$tmp/got"
	if ! cmp -s "$tmp/want" "$tmp/got"; then
		echo "tokenize --jsonl differs from the fixture ids with $tok:"
		diff "$tmp/want" "$tmp/got" | head -5
		exit 1
	fi
done

out=$(printf 'Hello world' | "$BIN" tokenize --model "$T/tokenizer.model" | tr -d ' \n')
[ "$out" = "[1,15043,3186]" ] || { echo "plain tokenize gave $out"; exit 1; }
echo "tokenize CLI: 3000 cases x 2 sources ok"

# A tokenizer_config.json that generate and serve refuse is refused here too.
mkdir "$tmp/tc"
cp "$T/tokenizer.model" "$tmp/tc/"
echo '{"add_bos_token": "yes"}' >"$tmp/tc/tokenizer_config.json"
if printf 'Hello' | "$BIN" tokenize --model "$tmp/tc" >"$tmp/tc.out" 2>&1; then
	echo "tokenize accepted add_bos_token \"yes\": $(cat "$tmp/tc.out")"
	exit 1
fi
grep -q 'must be a boolean' "$tmp/tc.out" || { echo "tokenize: $(cat "$tmp/tc.out")"; exit 1; }
echo "tokenize CLI: a bad tokenizer_config.json is refused"
