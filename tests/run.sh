#!/bin/sh
# run.sh — runs every unit runner given as arguments, then (unless
# MLLM_UNIT_ONLY) the integration scripts tests/integration/test_*.sh and the
# SDK tests, and prints one closing line: "tests: N passed, N failed".
# Check's own per-runner lines ("100%: Checks: 5, Failures: 0, Errors: 0")
# are added up; a runner that crashes outright counts as one failure.
set -u
pass=0
fail=0
failed_names=""
log=$(mktemp)
trap 'rm -f "$log"' EXIT

for t in "$@"; do
	name=${t#"${BUILD:-build}"/}
	"$t" >"$log" 2>&1
	rc=$?
	line=$(grep -E '^[0-9]+%: Checks: ' "$log" | tail -n 1)
	if [ -n "$line" ]; then
		n=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
		f=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
		e=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
		bad=$((f + e))
		pass=$((pass + n - bad))
		fail=$((fail + bad))
	else
		bad=1
		fail=$((fail + 1))
	fi
	if [ "$rc" -ne 0 ] || [ "$bad" -ne 0 ]; then
		[ "$bad" -eq 0 ] && fail=$((fail + 1))
		failed_names="$failed_names $name"
		echo "FAIL $name"
		grep -vE '^(Running suite|[0-9]+%: Checks)' "$log" | head -n 40
	else
		echo "ok   $name ($line)"
	fi
done

if [ -z "${MLLM_UNIT_ONLY:-}" ]; then
	for s in tests/integration/test_*.sh; do
		[ -f "$s" ] || continue
		if BIN="${BUILD:-build}/mobilellmd" sh "$s" >"$log" 2>&1; then
			pass=$((pass + 1))
			echo "ok   $s"
		else
			fail=$((fail + 1))
			failed_names="$failed_names $s"
			echo "FAIL $s"
			tail -n 40 "$log"
		fi
	done
	if [ -f tests/sdk/run.sh ]; then
		if BIN="${BUILD:-build}/mobilellmd" sh tests/sdk/run.sh >"$log" 2>&1; then
			pass=$((pass + 1))
			echo "ok   tests/sdk"
		else
			fail=$((fail + 1))
			failed_names="$failed_names tests/sdk"
			echo "FAIL tests/sdk"
			tail -n 60 "$log"
		fi
	fi
fi

[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
