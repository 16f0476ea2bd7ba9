#!/bin/sh
# run.sh — `make bench`: every benchmark, figures printed side by side.
# Never pass/fail on time. The machine is shared and noisy: each bench
# reports medians (or best-of in CPU time) and the README quotes ratios.
#
# MLLM_BENCH=forward,scheduler,tokenizer,grammar selects a subset (default all).
set -u
B=${BUILD:-build}
FIX=${MLLM_FIXTURES:-../shared/fixtures}
SHARED=$(dirname "$FIX")
SEL=${MLLM_BENCH:-forward,scheduler,tokenizer,grammar}
want() { case ",$SEL," in *",$1,"*) return 0 ;; esac; return 1; }

if want forward || want scheduler; then
	MLLM_SHARED=$SHARED sh tools/make_bench_model.sh "$B/bench-models" || exit 1
fi
M=$B/bench-models

if want tokenizer; then
	echo "== tokenizer encode throughput (ours vs SentencePiece, same text)"
	txt=$B/bench-tokenizer.txt
	[ -f "$txt" ] || /usr/bin/python3 bench/tokenizer_sp.py --make-text "$txt" "$SHARED"
	tok=$FIX/tokenizer/llama2/tokenizer.model
	"$B/bench/bench_tokenizer" "$txt" "$tok" 3
	/usr/bin/python3 bench/tokenizer_sp.py "$txt" "$tok" 3
fi

if want grammar; then
	echo "== constrained decoding: trie build, 50-property schema compile, mask overhead (16 sequences)"
	"$B/bench/bench_grammar" "$FIX/tokenizer/llama2/tokenizer.model" 400
fi

if want forward; then
	echo "== forward pass, MobileLLM-125M shape (prefill 512, decode 128)"
	for spec in "f32:" "f16:" "bf16:" "f16:q8_0" "f16:q4_0"; do
		src=${spec%%:*}
		conv=${spec#*:}
		echo "-- $src${conv:+ -> $conv}"
		if [ -n "$conv" ]; then
			"$B/bench/bench_forward" "$M/mobilellm-125m-$src" --convert "$conv"
		else
			"$B/bench/bench_forward" "$M/mobilellm-125m-$src"
		fi
	done
fi

if want scheduler; then
	echo "== continuous batching, MobileLLM-125M shape, Q8_0, 128 tokens/request"
	"$B/bench/bench_scheduler" "$M/mobilellm-125m-f16" -n 128 -c 1,4,16,64 -q8
fi
