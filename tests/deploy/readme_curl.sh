#!/bin/sh
# readme_curl.sh URL — runs the README's two curl examples (the ```sh block
# with the curl commands, separated by a blank line) against URL instead of
# localhost:8080, and checks what they print: a text completion, and a
# streamed chat ending with [DONE]. Exits 1 on any difference.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
URL=${1#http://}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

awk '/^```sh$/ {n++; next} n && /^```$/ {if (c) exit; n = 0} n && /curl/ {c = 1} n && c' \
	"$ROOT/README.md" | sed "s#localhost:8080#$URL#g" >"$TMP/readme.sh"
awk 'NR == 1, /^$/' "$TMP/readme.sh" >"$TMP/one.sh"
awk 'f; /^$/ {f = 1}' "$TMP/readme.sh" >"$TMP/two.sh"
grep -q 'v1/completions' "$TMP/one.sh" || { echo "README's completion example not found"; exit 1; }
grep -q 'v1/chat/completions' "$TMP/two.sh" || { echo "README's chat example not found"; exit 1; }
sh "$TMP/one.sh" >"$TMP/out1" || { echo "README example 1: curl failed"; exit 1; }
grep -q '"text_completion"' "$TMP/out1" || { echo "README example 1: $(head -c 300 "$TMP/out1")"; exit 1; }
sh "$TMP/two.sh" >"$TMP/out2" || { echo "README example 2: curl failed"; exit 1; }
grep -q 'chat.completion.chunk' "$TMP/out2" && grep -q 'data: \[DONE\]' "$TMP/out2" ||
	{ echo "README example 2: $(head -c 300 "$TMP/out2")"; exit 1; }
