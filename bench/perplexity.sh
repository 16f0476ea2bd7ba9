#!/bin/sh
# perplexity.sh — `make perplexity`: the accuracy table of README.md. Scores
# a model (default the shipped demo model) on held-out text with every
# weight format and KV type (f32, f16, int8), against F32 weights with an
# F32 KV cache as the reference: perplexity, KL divergence per token (mean, p99) and top-1
# agreement, then the policy verdict for each reduced-precision option (it
# may be a default only if it adds <= 10% to the KL that the weight format
# alone causes, or keeps the mean KL <= 1e-3 nats).
#
#   MODEL=path TEXT=file CTX=512 CHUNKS=60 sh bench/perplexity.sh
set -eu
B=${BUILD:-build}
FIX=${MLLM_FIXTURES:-../shared/fixtures}
SHARED=${MLLM_SHARED:-$(dirname "$FIX")}
MODEL=${MODEL:-models/mobilellm-demo}
TEXT=${TEXT:-$SHARED/corpus/heldout.txt}
CTX=${CTX:-512}
CHUNKS=${CHUNKS:-60}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run() { "$B/mobilellmd" perplexity --model "$MODEL" --file "$TEXT" --ctx "$CTX" --chunks "$CHUNKS" --json "$@"; }
echo "model $MODEL, text $TEXT, $CHUNKS windows of $CTX tokens (second halves scored)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
run --convert f32 --kv-f32 --save-logits "$tmp/base.lp" >"$tmp/f32-f32.json"
for w in f32 f16 bf16 q8_0 q4_0; do
	run --convert "$w" --kv-f32 --kl-base "$tmp/base.lp" >"$tmp/$w-f32.json"
	run --convert "$w" --kv-f16 --kl-base "$tmp/base.lp" >"$tmp/$w-f16.json"
	run --convert "$w" --kv-q8 --kl-base "$tmp/base.lp" >"$tmp/$w-q8.json"
done
# 8-bit activations (act8, the default) where the CPU has a byte kernel:
# Q4_0 and Q8_0 on AVX2 and AVX-512 VNNI. Their 16-bit twins for the
# policy verdicts.
run --convert q4_0 --kv-f32 --act16 --kl-base "$tmp/base.lp" >"$tmp/q4_0-f32-act16.json"
run --convert q8_0 --kv-f32 --act16 --kl-base "$tmp/base.lp" >"$tmp/q8_0-f32-act16.json"
/usr/bin/python3 - "$tmp" <<'PY'
import json, sys
d = sys.argv[1]
print()
print("| weights | KV | perplexity | KL mean (nats) | KL p99 | same top token |")
print("|---|---|---|---|---|---|")
rows = {}
for w in ["f32", "f16", "bf16", "q8_0", "q4_0"]:
    for kv in ["f32", "f16", "q8"]:
        r = json.load(open("%s/%s-%s.json" % (d, w, kv)))
        rows[w, kv] = r
        print("| %s | %s | %.3f ± %.3f | %.2e | %.2e | %.2f%% |" % (
            r["weights"], kv, r["perplexity"], r["perplexity_se"], r["kl_mean"],
            r["kl_p99"], 100 * r["top1_agreement"]))
for w in ["q4_0", "q8_0"]:
    r = json.load(open("%s/%s-f32-act16.json" % (d, w)))
    rows[w, "act16"] = r
    print("| %s, 16-bit activations | f32 | %.3f ± %.3f | %.2e | %.2e | %.2f%% |" % (
        r["weights"], r["perplexity"], r["perplexity_se"], r["kl_mean"], r["kl_p99"],
        100 * r["top1_agreement"]))
print()
print("policy, 8-bit activations (the rows above where the CPU has AVX2 or AVX-512 VNNI;")
print("elsewhere both rows are the 16-bit computation):")
for w in ["q4_0", "q8_0"]:
    a, b = rows[w, "act16"]["kl_mean"], rows[w, "f32"]["kl_mean"]
    print("  %-5s weights: KL %.2e with 16-bit activations -> %.2e (%+.1f%%): %s" % (
        w.upper(), a, b, 100 * (b - a) / a,
        "allowed" if b <= 1e-3 or b <= 1.10 * a else "opt-in only"))
for kv, name in [("f16", "f16"), ("q8", "int8")]:
    print()
    print("policy, KV %s (may be a default if it adds <= 10%% to the weight format's KL, or mean KL <= 1e-3):" % name)
    for w in ["f32", "f16", "bf16", "q8_0", "q4_0"]:
        a, b = rows[w, "f32"]["kl_mean"], rows[w, kv]["kl_mean"]
        ok = b <= 1e-3 or (a > 0 and b <= 1.10 * a)
        print("  %-5s weights: KL %.2e -> %.2e with KV %s (%s): %s" % (
            w.upper(), a, b, name, "+%.0f%%" % (100 * (b - a) / a) if a > 0 else "from 0",
            "allowed" if ok else "opt-in only"))
PY
