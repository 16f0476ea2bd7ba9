#!/bin/sh
# run.sh BUILD SECONDS NAME... — runs each libFuzzer harness
# BUILD/fuzz/fuzz_NAME for SECONDS, one after the other, on its corpus:
# BUILD/corpus/NAME (grows across runs; new inputs go there), the seeds
# seeds.py generates from the fixtures (BUILD/seeds/NAME), and the committed
# tests/fuzz/corpus/NAME and tests/fuzz/regressions/NAME. Prints one line
# per harness (executions, coverage, corpus size) and fails if any harness
# found something: the input is then in BUILD/findings/NAME/ and belongs,
# once fixed, in tests/fuzz/regressions/NAME/. FUZZ_JOBS=n runs n harnesses
# at a time (default 1: this is meant to share a machine); extra libFuzzer
# flags go in FUZZ_FLAGS. tests/fuzz/NAME.dict, when present, is the
# harness's libFuzzer dictionary.
set -u
B=$1
secs=$2
shift 2
fx=${MLLM_FIXTURES:-../shared/fixtures}
here=$(dirname "$0")
jobs=${FUZZ_JOBS:-1}
fail=0

# Inputs past this many bytes are cut: checkpoints are fuzzed by their
# headers, HTTP by a request or a few.
max_len() {
	case $1 in
	gguf | safetensors | pytorch | protobuf) echo 65536 ;;
	http) echo 8192 ;;
	*) echo 16384 ;;
	esac
}

one() {
	name=$1
	bin=$B/fuzz/fuzz_$name
	log=$B/logs/$name.log
	mkdir -p "$B/corpus/$name" "$B/seeds/$name" "$B/findings/$name" "$B/logs"
	python3 "$here/seeds.py" "$name" "$B/seeds/$name" "$fx" || return 1
	dirs="$B/corpus/$name $B/seeds/$name"
	for d in "$here/corpus/$name" "$here/regressions/$name"; do
		[ -d "$d" ] && dirs="$dirs $d"
	done
	dict=""
	[ -f "$here/$name.dict" ] && dict="-dict=$here/$name.dict"
	# detect_leaks stays on: a leak is a finding. -timeout: one input
	# taking 10 s is a finding too (a hang).
	# shellcheck disable=SC2086
	ASAN_OPTIONS="abort_on_error=1:detect_stack_use_after_return=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
		UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
		MLLM_FIXTURES="$fx" "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=3072 \
		-max_len="$(max_len "$name")" -print_final_stats=1 \
		-artifact_prefix="$B/findings/$name/" $dict ${FUZZ_FLAGS:-} $dirs >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1)
	cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
	corp=$(echo "$last" | sed -n 's/.*corp: \([0-9]*\)\/\([0-9a-zA-Z]*\).*/\1 (\2)/p')
	if [ "$rc" -eq 0 ]; then
		echo "fuzz $name: ok, ${secs}s, ${execs:-?} execs, cov ${cov:-?} ft ${ft:-?}, corpus ${corp:-?}"
		return 0
	fi
	echo "fuzz $name: FINDING (exit $rc) after ${execs:-?} execs; log $log, input in $B/findings/$name/"
	grep -E 'ERROR:|FUZZ_CHECK|runtime error|SUMMARY|Test unit written' "$log" | head -n 12
	return 1
}

if [ "$jobs" -le 1 ]; then
	for n in "$@"; do
		one "$n" || fail=1
	done
else
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	running=0
	for n in "$@"; do
		(one "$n" >"$tmp/$n.out" 2>&1 || touch "$tmp/$n.failed") &
		running=$((running + 1))
		if [ "$running" -ge "$jobs" ]; then
			wait
			running=0
		fi
	done
	wait
	for n in "$@"; do
		cat "$tmp/$n.out"
		[ -e "$tmp/$n.failed" ] && fail=1
	done
fi
[ "$fail" -eq 0 ] && echo "fuzz: $# harnesses, no findings"
exit "$fail"
