#!/bin/sh
# test_perplexity_cli.sh — `mobilellmd perplexity` on the shipped demo model
# and the held-out corpus text: the figures are those of the windows scored,
# a run compared with its own saved log-probabilities has zero KL and the
# same top tokens, other numeric paths (Q4_0; the default f16 KV cache) have a
# small positive KL, and every
# mismatch between a reference and a run is refused with a message.
set -eu
BIN=${BIN:-build/mobilellmd}
FIX=${MLLM_FIXTURES:-../shared/fixtures}
SHARED=${MLLM_SHARED:-$(dirname "$FIX")}
TEXT=$SHARED/corpus/heldout.txt
M=models/mobilellm-demo
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -r "$TEXT" ] || { echo "missing $TEXT (set MLLM_SHARED)"; exit 1; }

ppl() { "$BIN" perplexity --model "$M" --file "$TEXT" --ctx 128 --chunks 3 --json "$@"; }
# The reference: F32 weights, f32 KV (the default KV is f16, as the daemon's).
# check FILE PYTHON-EXPR: the expression, over the run's JSON `r`, holds.
check() {
	/usr/bin/python3 - "$1" "$2" <<'PY'
import json, math, sys
r = json.load(open(sys.argv[1]))
if not eval(sys.argv[2]):
    sys.exit("perplexity: %s does not hold for %s" % (sys.argv[2], r))
PY
}

ppl --convert f32 --kv-f32 --save-logits "$tmp/base.lp" >"$tmp/base.json"
# 3 windows of 128, the second half scored: 63 tokens each.
check "$tmp/base.json" 'r["tokens"] == 189 and r["windows"] == 3 and r["weights"] == "F32"'
check "$tmp/base.json" 'r["kv"] == "f32"'
check "$tmp/base.json" '1 < r["perplexity"] < 8000 and r["perplexity_se"] > 0'
# 24-byte header + 3 x (128 ids + 63 rows x 8000 floats) x 4 bytes.
size=$(wc -c <"$tmp/base.lp")
[ "$size" -eq $((24 + 3 * (128 + 63 * 8000) * 4)) ] || { echo "log-prob file of $size bytes"; exit 1; }

ppl --convert f32 --kv-f32 --kl-base "$tmp/base.lp" >"$tmp/self.json"
check "$tmp/self.json" 'r["kl_mean"] == 0 and r["kl_max"] == 0 and r["top1_agreement"] == 1'
check "$tmp/self.json" 'r["perplexity"] == r["base_perplexity"]'

ppl --convert q4_0 --kv-f32 --kl-base "$tmp/base.lp" >"$tmp/q4.json"
check "$tmp/q4.json" '0 < r["kl_mean"] < 1 and r["kl_median"] <= r["kl_p99"] <= r["kl_max"]'
check "$tmp/q4.json" 'r["top1_agreement"] < 1 and r["weights"] == "Q4_0"'
ppl --convert f32 --kl-base "$tmp/base.lp" >"$tmp/kv.json"
check "$tmp/kv.json" '0 < r["kl_mean"] < 1e-2 and r["kv"] == "f16"'

# The text form says the same.
out=$("$BIN" perplexity --model "$M" --file "$TEXT" --ctx 128 --chunks 3 --convert f32 \
	--kv-f32 --kl-base "$tmp/base.lp")
echo "$out" | grep -q '^perplexity: [0-9.]* +/- [0-9.]*$' || { echo "text form: $out"; exit 1; }
echo "$out" | grep -q 'KL mean 0.000e+00,.*same top token 100.00%' || { echo "text form: $out"; exit 1; }
# Small KLs keep their digits (the f16 KV cache's is ~1e-7 nats).
out=$("$BIN" perplexity --model "$M" --file "$TEXT" --ctx 128 --chunks 3 --convert f32 \
	--kl-base "$tmp/base.lp")
echo "$out" | grep -q 'KL mean [1-9]\.[0-9]*e-[0-9]*,' || { echo "text form: $out"; exit 1; }

# refuse RC PATTERN ARGS...: exits RC and says PATTERN on stderr.
refuse() {
	rc=$1 pat=$2
	shift 2
	if "$BIN" perplexity "$@" >"$tmp/out" 2>"$tmp/err"; then
		echo "perplexity $* succeeded"
		exit 1
	else
		got=$?
	fi
	[ "$got" -eq "$rc" ] || { echo "perplexity $*: exit $got, want $rc"; cat "$tmp/err"; exit 1; }
	grep -q "$pat" "$tmp/err" || { echo "perplexity $*: no '$pat' in:"; cat "$tmp/err"; exit 1; }
}
refuse 2 'was made with' --model "$M" --file "$TEXT" --ctx 64 --chunks 3 --kl-base "$tmp/base.lp"
refuse 2 'was made with' --model "$M" --file "$TEXT" --ctx 128 --chunks 4 --kl-base "$tmp/base.lp"
head -c 20000 "$TEXT" | tail -c 10000 >"$tmp/other.txt"
refuse 2 'differ' --model "$M" --file "$tmp/other.txt" --ctx 128 --chunks 3 --kl-base "$tmp/base.lp"
printf 'not a log-prob file at all' >"$tmp/junk.lp"
refuse 1 'not a file written by' --model "$M" --file "$TEXT" --ctx 128 --chunks 3 --kl-base "$tmp/junk.lp"
head -c 100000 "$tmp/base.lp" >"$tmp/cut.lp"
refuse 1 'truncated' --model "$M" --file "$TEXT" --ctx 128 --chunks 3 --kl-base "$tmp/cut.lp"
refuse 2 'past the trained context' --model "$M" --file "$TEXT" --ctx 4096
refuse 2 'less than one window' --model "$M" --file "$tmp/err" --ctx 128
refuse 1 'cannot read' --model "$M" --file "$tmp/nonexistent"
refuse 2 'need --model and --file' --model "$M"
refuse 2 'bad value for --convert' --model "$M" --file "$TEXT" --convert q3_k
refuse 2 'bad value for --ctx' --model "$M" --file "$TEXT" --ctx 2
refuse 2 'unknown option --bogus' --model "$M" --file "$TEXT" --bogus
refuse 2 'file needs a value' --model "$M" --file --ctx 128
refuse 2 'bad value for --threads' --model "$M" --file "$TEXT" --threads ''

# --save-logits never destroys what it would overwrite: the reference it
# compares with and the text are refused, and a run that fails part-way
# leaves an earlier file whole (written beside it, renamed on success).
cp "$tmp/base.lp" "$tmp/keep.lp"
refuse 2 'would overwrite the reference' --model "$M" --file "$TEXT" --ctx 128 --chunks 3 \
	--kl-base "$tmp/keep.lp" --save-logits "$tmp/keep.lp"
cmp -s "$tmp/keep.lp" "$tmp/base.lp" || { echo "reference changed"; exit 1; }
cp "$tmp/other.txt" "$tmp/text.txt"
refuse 2 'would overwrite the text' --model "$M" --file "$tmp/text.txt" --ctx 128 --chunks 3 \
	--save-logits "$tmp/text.txt"
cmp -s "$tmp/text.txt" "$tmp/other.txt" || { echo "text changed"; exit 1; }
refuse 2 'differ' --model "$M" --file "$tmp/other.txt" --ctx 128 --chunks 3 \
	--kl-base "$tmp/base.lp" --save-logits "$tmp/keep.lp"
cmp -s "$tmp/keep.lp" "$tmp/base.lp" || { echo "failed run changed its --save-logits file"; exit 1; }
ls "$tmp" | grep -q 'keep\.lp\.' && { echo "temporary file left: $(ls "$tmp")"; exit 1; }
# A successful run replaces it.
ppl --convert f32 --kv-f32 --chunks 2 --save-logits "$tmp/keep.lp" >/dev/null
[ "$(wc -c <"$tmp/keep.lp")" -eq $((24 + 2 * (128 + 63 * 8000) * 4)) ] ||
	{ echo "--save-logits not replaced"; exit 1; }
# Through a symlink: the file it names is replaced (the link stays), with
# its mode.
cp "$tmp/base.lp" "$tmp/real.lp"
chmod 640 "$tmp/real.lp"
ln -s real.lp "$tmp/link.lp"
ppl --convert f32 --kv-f32 --chunks 2 --save-logits "$tmp/link.lp" >/dev/null
[ -L "$tmp/link.lp" ] || { echo "--save-logits replaced the symlink"; exit 1; }
[ "$(wc -c <"$tmp/real.lp")" -eq $((24 + 2 * (128 + 63 * 8000) * 4)) ] ||
	{ echo "--save-logits did not write the link's target"; exit 1; }
[ "$(stat -c %a "$tmp/real.lp")" = 640 ] || { echo "mode not kept: $(stat -c %a "$tmp/real.lp")"; exit 1; }
# A symlink (here a chain of two) to a file not there yet: the file is
# created, the links stay.
mkdir "$tmp/sub"
ln -s sub/new.lp "$tmp/hop.lp"
ln -s hop.lp "$tmp/dangling.lp"
ppl --convert f32 --kv-f32 --chunks 1 --save-logits "$tmp/dangling.lp" >/dev/null
[ -L "$tmp/dangling.lp" ] && [ -L "$tmp/hop.lp" ] && [ -f "$tmp/sub/new.lp" ] ||
	{ echo "--save-logits through dangling symlinks: $(ls -lR "$tmp")"; exit 1; }
echo "perplexity CLI: figures, self-KL 0, q4_0 and f16-KV KL > 0, 17 refusals, files kept ok"

# A model whose logits are NaN (its final norm's weights) has no perplexity:
# null in the JSON and exit 1 with a message, not a silent failure.
mkdir "$tmp/ctx2"
/usr/bin/python3 "$(dirname "$0")/nan_model.py" "$M" "$tmp/nan"
rc=0
"$BIN" perplexity --model "$tmp/nan" --file "$TEXT" --ctx 16 --chunks 1 --json >"$tmp/nan.json" 2>"$tmp/nan.err" || rc=$?
[ "$rc" -eq 1 ] || { echo "NaN model: exit $rc"; exit 1; }
check "$tmp/nan.json" 'r["perplexity"] is None and r["tokens"] > 0'
grep -q "not finite" "$tmp/nan.err" || { echo "NaN model: $(cat "$tmp/nan.err")"; exit 1; }
# A trained context shorter than a window is refused (exit 2), not scored as
# zero tokens.
cp "$M"/model.safetensors "$M"/tokenizer.model "$M"/tokenizer_config.json "$tmp/ctx2/"
sed 's/"max_position_embeddings": *[0-9]*/"max_position_embeddings": 2/' "$M/config.json" >"$tmp/ctx2/config.json"
rc=0
"$BIN" perplexity --model "$tmp/ctx2" --file "$TEXT" --chunks 1 --json >/dev/null 2>"$tmp/ctx2.err" || rc=$?
[ "$rc" -eq 2 ] && grep -q "shorter than a window" "$tmp/ctx2.err" ||
	{ echo "trained context 2: exit $rc, $(cat "$tmp/ctx2.err")"; exit 1; }
echo "ok   perplexity: NaN logits and too short a context are said"
