#!/bin/bash
# Runs every built fuzz target for N seconds under ASan/UBSan, starting from its seed corpus
# (corpus/<target>/), with the dictionary <target>.dict and the extra libFuzzer flags of
# <target>.options when they exist; JOBS targets at a time (default: the number of CPUs). Each
# target that ran its full time and ended clean (libFuzzer printed its final stats and exited 0)
# gets a line in BUILD_DIR/tests/fuzz/results.txt, which scripts/check-summary.sh counts: a
# target that did not run is never counted as passed.
# Usage: tests/fuzz/run.sh BUILD_DIR SECONDS [JOBS]
set -euo pipefail
build=$1
secs=$2
jobs=${3:-$(nproc)}
here=$(cd "$(dirname "$0")" && pwd)
shopt -s nullglob
targets=()
for t in "$build"/tests/fuzz/fuzz-*; do
	[ -x "$t" ] && [ -f "$t" ] && targets+=("$t")
done
results="$build/tests/fuzz/results.txt"
: >"$results"
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no targets built in $build/tests/fuzz" >&2
	exit 1
fi
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

# run_one TARGET: fuzzes one target in its own corpus copy; its output goes to $logs/NAME.log.
run_one() {
	local t=$1 name work runs rc=0
	name=$(basename "$t")
	work="$logs/$name.work"
	mkdir -p "$work/corpus"
	if [ -d "$here/corpus/$name" ]; then
		cp -r "$here/corpus/$name/." "$work/corpus/"
	fi
	local extra=()
	[ -f "$here/$name.dict" ] && extra+=("-dict=$here/$name.dict")
	# shellcheck disable=SC2207
	[ -f "$here/$name.options" ] && extra+=($(cat "$here/$name.options"))
	echo "fuzz: $name for ${secs}s ${extra[*]}" >"$logs/$name.log"
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1 \
		"$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
		-print_final_stats=1 "${extra[@]}" "$work/corpus" >>"$logs/$name.log" 2>&1 || rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$name.log")
	rm -rf "$work"
	if [ "$rc" -eq 0 ] && [ -n "$runs" ] && [ "$runs" -gt 0 ]; then
		echo "$name $runs" >"$logs/$name.ok"
	fi
}

running=0
for t in "${targets[@]}"; do
	run_one "$t" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait -n || true
		running=$((running - 1))
	fi
done
wait || true

passed=0 failed=0
for t in "${targets[@]}"; do
	name=$(basename "$t")
	cat "$logs/$name.log"
	if [ -f "$logs/$name.ok" ]; then
		cat "$logs/$name.ok" >>"$results"
		passed=$((passed + 1))
	else
		echo "fuzz: $name failed or did not run (its output is above)" >&2
		failed=$((failed + 1))
	fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
