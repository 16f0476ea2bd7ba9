#!/bin/sh
# prepare.sh — step 1 of the demo model, on the CPU machine: trains the
# SentencePiece tokenizer and writes the token streams the GPU run needs into
# .train/data (ignored by git; the device run carries it). Needs Debian's
# /usr/bin/python3 with python3-sentencepiece and python3-numpy, and the
# project's corpus beside the repository (../shared/corpus). About 30 s.
set -eu
cd "$(dirname "$0")/../.."
CORPUS=${CORPUS:-../shared/corpus}
exec /usr/bin/python3 tools/train/prepare.py --corpus "$CORPUS" --out .train/data "$@"
