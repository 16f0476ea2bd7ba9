#!/bin/sh
# run.sh — `make bench`: every benchmark, figures printed side by side.
# Never pass/fail on time. The machine is shared and noisy: each bench
# reports medians (or best-of in CPU time) and the README quotes ratios.
#
# MLLM_BENCH=forward,r1,longctx,scheduler,tokenizer,template,grammar,llamacpp selects a subset
# (default all). The llamacpp section runs only when the person running the
# bench supplies a llama.cpp they built (LLAMA_CPP_DIR) and GGUF files
# (BENCH_GGUF); nothing of llama.cpp is part of this repository.
set -u
B=${BUILD:-build}
FIX=${MLLM_FIXTURES:-../shared/fixtures}
SHARED=$(dirname "$FIX")
SEL=${MLLM_BENCH:-forward,r1,longctx,scheduler,tokenizer,template,grammar,llamacpp}
want() { case ",$SEL," in *",$1,"*) return 0 ;; esac; return 1; }
for s in $(echo "$SEL" | tr ',' ' '); do
	case "$s" in
	forward | r1 | longctx | scheduler | tokenizer | template | grammar | llamacpp) ;;
	*)
		echo "bench: unknown section '$s' in MLLM_BENCH (forward, r1, longctx, scheduler," >&2
		echo "  tokenizer, template, grammar, llamacpp)" >&2
		exit 2
		;;
	esac
done

if want forward || want scheduler || want r1 || want longctx; then
	MLLM_SHARED=$SHARED sh tools/make_bench_model.sh "$B/bench-models" || exit 1
fi
if want r1 || want longctx; then
	/usr/bin/python3 tools/make_r1_bench_model.py "$B/bench-models" 140m 950m --shared "$SHARED" ||
		exit 1
fi
M=$B/bench-models

if want tokenizer; then
	echo "== tokenizer encode throughput (ours vs SentencePiece, same text)"
	txt=$B/bench-tokenizer.txt
	[ -f "$txt" ] || /usr/bin/python3 bench/tokenizer_sp.py --make-text "$txt" "$SHARED"
	tok=$FIX/tokenizer/llama2/tokenizer.model
	"$B/bench/bench_tokenizer" "$txt" "$tok" 3
	/usr/bin/python3 bench/tokenizer_sp.py "$txt" "$tok" 3

	echo "== tokenizer encode, Llama-3 byte-level BPE (ours vs Hugging Face tokenizers, same text)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
	tok=$FIX/tokenizer/llama3/tokenizer.json
	ours=$("$B/bench/bench_tokenizer" "$txt" "$tok" 3) || exit 1
	echo "$ours"
	ours=$(echo "$ours" | sed -n 's/^mobilellmd encode:.* \([0-9.]*\) MB\/s.*/\1/p')
	if ! command -v node >/dev/null 2>&1; then
		echo "hf tokenizers: node is not installed; column skipped"
	elif [ ! -d bench/hf/node_modules/tokenizers ]; then
		echo "hf tokenizers: not installed (cd bench/hf && npm ci: tokenizers 0.23.2); column skipped"
	else
		hf=$(node bench/tokenizer_hf.js "$txt" "$tok" 3) || exit 1
		echo "$hf" | grep -v '^HF_BEST_MBPS'
		hf=$(echo "$hf" | sed -n 's/^HF_BEST_MBPS //p')
		awk -v a="$ours" -v b="$hf" 'BEGIN { if (b > 0) printf "encode ratio (ours / HF fastest figure, one thread): %.1fx\n", a / b }'
	fi
fi

if want grammar; then
	echo "== constrained decoding: trie build, 50-property schema compile, mask overhead (16 sequences)"
	g=$("$B/bench/bench_grammar" "$FIX/tokenizer/llama2/tokenizer.model" 400) || exit 1
	echo "$g"
	# The target is relative: mask overhead per step over the 16-sequence
	# decode step of the 125M shape (Q8_0, 2 threads), both measured now.
	MLLM_SHARED=$SHARED sh tools/make_bench_model.sh "$B/bench-models" >/dev/null || exit 1
	f=$("$B/bench/bench_forward" "$B/bench-models/mobilellm-125m-f16" --convert q8_0 --threads 2 \
		--batch 16 --batch-steps 16 --kv-f16) || exit 1
	echo "$f" | grep 'batch  16'
	ov=$(echo "$g" | sed -n '/context-free masks (default)/,$p' | sed -n 's/.*(overhead \([-0-9.]*\) ms\/step).*/\1/p' | head -n 1)
	st=$(echo "$f" | sed -n 's/.*batch  16 at ctx [0-9]*: *\([0-9.]*\) ms\/step.*/\1/p')
	awk -v o="$ov" -v s="$st" 'BEGIN { if (s > 0) printf "mask overhead (mean, 16 sequences, one thread) / 16-sequence Q8_0 step: %.3f / %.2f ms = %.1f%%\n", o, s, 100 * o / s }'
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

if want r1; then
	# Same settings for all three, short enough for the 950M shape on 2
	# cores; compare the "x weight bytes" lines (same speed class: within
	# 15% of the classic 125M shape's).
	echo "== MobileLLM-R1 shapes (llama4_text) beside classic 125M: prefill 128, decode 32, 2 threads"
	lscpu | sed -n 's/^Model name: *//p'
	for spec in "mobilellm-125m-bf16:" "mobilellm-r1-140m-bf16:" "mobilellm-r1-950m-bf16:" \
		"mobilellm-125m-f16:q8_0" "mobilellm-r1-140m-bf16:q8_0" "mobilellm-r1-950m-bf16:q8_0"; do
		name=${spec%%:*}
		conv=${spec#*:}
		echo "-- $name${conv:+ -> $conv}"
		"$B/bench/bench_forward" "$M/$name" --threads 2 --prefill 128 --decode 32 --repeats 3 \
			${conv:+--convert $conv}
	done
fi

if want longctx; then
	# Decode at 0 and at C tokens of context from the same run (each
	# bench_forward run measures both), R1-140M shape (a 32k-context
	# reasoning model), Q8_0, the default f16 K/V, 2 threads. 16384 takes
	# one repeat: its prefill alone is most of a minute on 2 cores.
	echo "== long contexts: decode at 0 / 512 / 4096 / 16384 tokens of context, MobileLLM-R1-140M shape, Q8_0, f16 K/V, 2 threads"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
	for c in 512 4096 16384; do
		r=3
		[ "$c" -ge 16384 ] && r=1
		o=$("$B/bench/bench_forward" "$M/mobilellm-r1-140m-bf16" --convert q8_0 --threads 2 \
			--prefill "$c" --decode 64 --repeats "$r" --kv-f16) || exit 1
		l=$(echo "$o" | grep '^threads 2: decode')
		echo "$l"
		echo "$l" | sed -n 's/.*decode 64 at ctx 0\.\.64: \([0-9.]*\) tokens\/s.*decode 64 at ctx [0-9.]*: \([0-9.]*\) tokens\/s.*/\1 \2/p' |
			awk -v c="$c" '{ printf "decode at ctx %d: %.1f tokens/s = %.0f%% of decode at 0 (%.1f)\n", c, $2, 100 * $2 / $1, $1 }'
	done
	# int8 K/V (kv_q8, opt-in): the same run at 4096.
	o=$("$B/bench/bench_forward" "$M/mobilellm-r1-140m-bf16" --convert q8_0 --threads 2 \
		--prefill 4096 --decode 64 --repeats 3 --kv-q8) || exit 1
	l=$(echo "$o" | grep '^threads 2: decode')
	echo "int8 K/V: $l"
	echo "$l" | sed -n 's/.*decode 64 at ctx 0\.\.64: \([0-9.]*\) tokens\/s.*decode 64 at ctx [0-9.]*: \([0-9.]*\) tokens\/s.*/\1 \2/p' |
		awk '{ printf "int8 K/V: decode at ctx 4096: %.1f tokens/s = %.0f%% of decode at 0 (%.1f)\n", $2, 100 * $2 / $1, $1 }'
fi

if want scheduler; then
	echo "== continuous batching, MobileLLM-125M shape, Q8_0, 128 tokens/request"
	"$B/bench/bench_scheduler" "$M/mobilellm-125m-f16" -n 128 -c 1,4,16,64 -q8
fi

if want template; then
	echo "== chat template render (Jinja), 20 messages + tools, per fixture template"
	"$B/bench/bench_template" "$FIX" 2000
fi

if want llamacpp; then
	# Side by side on the same GGUF files and the same cores (taskset 0,1
	# when available), alternating, two rounds: decode TG from an empty
	# context and prefill PP (128 and 512 unless LLAMACPP_TG / LLAMACPP_PP
	# say otherwise): our median of 5 against llama-bench's average of 5
	# (-r 5), then the ratio. Then batched decode and the end-to-end load
	# test on one file (bench/side_by_side.sh; LLAMACPP_SIDE=batch,e2e).
	echo "== side by side with llama.cpp: same GGUF, same 2 cores, alternating"
	lb=${LLAMA_CPP_DIR:-}/build/bin/llama-bench
	TG=${LLAMACPP_TG:-128}
	PP=${LLAMACPP_PP:-512}
	if [ -z "${LLAMA_CPP_DIR:-}" ]; then
		echo "llama.cpp: skipped: LLAMA_CPP_DIR is not set (build llama.cpp yourself, then"
		echo "  LLAMA_CPP_DIR=/path/to/llama.cpp BENCH_GGUF='m-f16.gguf m-q8_0.gguf' make bench)"
	elif [ ! -x "$lb" ]; then
		echo "llama.cpp: skipped: $lb is not an executable"
	elif [ -z "${BENCH_GGUF:-}" ]; then
		echo "llama.cpp: skipped: BENCH_GGUF (GGUF files of one model, space-separated) is not set"
	elif missing=$(for g in $BENCH_GGUF; do [ -r "$g" ] || printf ' %s' "$g"; done) &&
		[ -n "$missing" ]; then
		echo "llama.cpp: BENCH_GGUF names files that cannot be read:$missing"
		exit 1
	else
		pin=""
		command -v taskset >/dev/null 2>&1 && pin="taskset -c 0,1"
		lscpu | sed -n 's/^Model name: *//p'
		for g in $BENCH_GGUF; do
			for round in 1 2; do
				ours=$($pin "$B/bench/bench_forward" "$g" --threads 2 --prefill "$PP" --decode "$TG" \
					--repeats 5 2>/dev/null |
					sed -n "s/^threads 2: decode $TG at ctx 0\\.\\.$TG: \\([0-9.]*\\) tokens\\/s.*| prefill $PP: \\([0-9.]*\\) tokens\\/s.*/\\1 \\2/p")
				theirs=$($pin "$lb" -m "$g" -t 2 -p "$PP" -n "$TG" -r 5 -o json 2>/dev/null |
					/usr/bin/python3 -c '
import json, sys
tg = pp = 0.0
for r in json.load(sys.stdin):
    if r.get("n_gen") == int(sys.argv[1]) and not r.get("n_prompt"):
        tg = r["avg_ts"]
    if r.get("n_prompt") == int(sys.argv[2]) and not r.get("n_gen"):
        pp = r["avg_ts"]
print(tg, pp)' "$TG" "$PP")
				awk -v g="$(basename "$g")" -v r="$round" -v o="$ours" -v t="$theirs" \
					-v tg="$TG" -v pp="$PP" 'BEGIN {
					split(o, a, " "); split(t, b, " ")
					if (a[1] > 0 && a[2] > 0 && b[1] > 0 && b[2] > 0)
						printf "%s round %s: decode %s %.1f vs %.1f tok/s (%.2fx) | prefill %s %.1f vs %.1f tok/s (%.2fx)\n", g, r, tg, a[1], b[1], a[1] / b[1], pp, a[2], b[2], a[2] / b[2]
					else
						printf "%s round %s: no figures (ours: \"%s\"; llama.cpp: \"%s\")\n", g, r, o, t
				}'
			done
		done
		# Batched decode and end to end, on one file: LLAMACPP_E2E_GGUF, else
		# the Q8_0 one of BENCH_GGUF, else its first (bench/side_by_side.sh).
		g1=${LLAMACPP_E2E_GGUF:-}
		if [ -z "$g1" ]; then
			for g in $BENCH_GGUF; do
				[ -z "$g1" ] && g1=$g
				case $(basename "$g" | tr '[:upper:]' '[:lower:]') in *q8_0*) g1=$g ;; esac
			done
		fi
		for part in batch e2e; do
			case ",${LLAMACPP_SIDE:-batch,e2e}," in *",$part,"*) ;; *) continue ;; esac
			tool=llama-batched-bench
			[ "$part" = e2e ] && tool=llama-server
			if [ ! -x "$LLAMA_CPP_DIR/build/bin/$tool" ]; then
				echo "llama.cpp $part: skipped: $LLAMA_CPP_DIR/build/bin/$tool is not an executable"
				continue
			fi
			echo "-- $part, $(basename "$g1")"
			BUILD=$B sh bench/side_by_side.sh "$part" "$LLAMA_CPP_DIR" "$g1" || exit 1
		done
	fi
fi
