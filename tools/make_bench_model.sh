#!/bin/sh
# make_bench_model.sh — writes random-weight models of MobileLLM-125M's exact
# shape (30 layers, dim 576, 9 heads / 3 KV heads, FFN 1536, 32000 vocab,
# shared embedding) for bench/bench_forward, as HF snapshots in F32, F16 and
# BF16, into build/bench-models/ (ignored by git). Q8_0 and Q4_0 are made at
# load by the engine (bench_forward --convert q8_0), with GGML's quantizer.
# Usage: sh tools/make_bench_model.sh [OUTDIR]
# Needs /usr/bin/python3 with numpy and ../shared/tools/make_tiny_models.py.
set -eu
cd "$(dirname "$0")/.."
OUT=${1:-build/bench-models}
SHARED=${MLLM_SHARED:-../shared}
TOK=$SHARED/fixtures/tokenizer/llama2/tokenizer.model
mkdir -p "$OUT"
spec=$(mktemp)
trap 'rm -f "$spec"' EXIT
for dt in F32 F16 BF16; do
	name=mobilellm-125m-$(echo "$dt" | tr 'A-Z' 'a-z')
	if [ -f "$OUT/$name/model.safetensors" ]; then
		echo "$OUT/$name exists"
		continue
	fi
	cat >"$spec" <<JSON
{"$name": {"dim": 576, "layers": 30, "heads": 9, "kv_heads": 3, "ffn": 1536,
  "vocab": 32000, "dtype": "$dt", "layer_sharing": false, "shards": 1,
  "seed": 125, "ctx": 2048, "tokenizer": "$TOK"}}
JSON
	/usr/bin/python3 "$SHARED/tools/make_tiny_models.py" "$spec" "$OUT"
done
ls -l "$OUT"/*/model.safetensors
