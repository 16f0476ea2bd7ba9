#!/bin/sh
# run_device.sh — step 2 of the demo model, on the GPU machine (one H200,
# PyTorch, safetensors, sentencepiece; no network): trains with the shipped
# model's exact arguments, exports, writes the goldens and the evaluation
# into $OUT, then splits model.safetensors into parts below the device
# tool's 16 MiB per-file limit (install.py joins them again). About 3 min.
set -eu
cd "$(dirname "$0")/../.."
: "${OUT:?set OUT to the output folder}"
PYTHONUNBUFFERED=1 python3 tools/train/train.py --data .train/data --out "$OUT" \
	--steps 2500 --warmup 200 --eval-every 500 --time-limit 420 2>&1 | grep -v Warning
cd "$OUT"
split -b 15000000 -d model.safetensors model.safetensors.part
rm model.safetensors
sha256sum model.safetensors.part*
