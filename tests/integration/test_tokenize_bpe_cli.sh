#!/bin/sh
# test_tokenize_bpe_cli.sh — `mobilellmd tokenize --jsonl` reproduces Hugging
# Face tokenizers' ids for every Llama-3 fixture case, from tokenizer.json,
# from the MobileLLM-R1 snapshot directory (a llama4_text model: only its
# tokenizer is loaded) and from the R1 GGUF's vocabulary; the plain form
# prints the ids with BOS, once.
set -eu
BIN=${BIN:-build/mobilellmd}
FIX=${MLLM_FIXTURES:-../shared/fixtures}
T=$FIX/tokenizer/llama3
R1=$FIX/models/tiny-mobilellm-r1-bf16
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ids_only() {
	/usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    print(json.dumps({"ids": json.loads(line)["ids"]}, separators=(",", ":")))
' "$1"
}

ids_only "$T/cases.jsonl" >"$tmp/want"
n=$(wc -l <"$tmp/want")
[ "$n" -eq 3000 ] || { echo "expected 3000 cases, got $n"; exit 1; }

for src in "$T/tokenizer.json" "$R1" "$R1/tiny-mobilellm-r1-q8_0.gguf"; do
	"$BIN" tokenize --model "$src" --jsonl <"$T/cases.jsonl" >"$tmp/got.raw"
	ids_only "$tmp/got.raw" >"$tmp/got"
	if ! cmp -s "$tmp/want" "$tmp/got"; then
		echo "tokenize --jsonl differs from the fixture ids with $src:"
		diff "$tmp/want" "$tmp/got" | head -5
		exit 1
	fi
done

for src in "$R1" "$R1/tiny-mobilellm-r1-q8_0.gguf"; do
	out=$(printf 'Hello world' | "$BIN" tokenize --model "$src" | tr -d ' \n')
	[ "$out" = "[128000,9906,1917]" ] || { echo "plain tokenize ($src) gave $out"; exit 1; }
	out=$(printf '<|begin_of_text|>Hello world<|eot_id|>' | "$BIN" tokenize --model "$src" | tr -d ' \n')
	[ "$out" = "[128000,9906,1917,128009]" ] || { echo "BOS text ($src) gave $out"; exit 1; }
done
echo "tokenize CLI (byte-level BPE): 3000 cases x 3 sources ok"
