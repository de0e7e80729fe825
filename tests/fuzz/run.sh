#!/bin/bash
# Runs every built fuzz target for N seconds under ASan/UBSan, starting from its seed corpus
# (corpus/<target>/), with the dictionary <target>.dict and the extra libFuzzer flags of
# <target>.options when they exist. Each target that ran its full time and ended clean (libFuzzer
# printed its final stats and exited 0) gets a line in BUILD_DIR/tests/fuzz/results.txt, which
# scripts/check-summary.sh counts: a target that did not run is never counted as passed.
# Usage: tests/fuzz/run.sh BUILD_DIR SECONDS
set -euo pipefail
build=$1
secs=$2
here=$(cd "$(dirname "$0")" && pwd)
shopt -s nullglob
targets=("$build"/tests/fuzz/fuzz-*)
results="$build/tests/fuzz/results.txt"
: >"$results"
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no targets built in $build/tests/fuzz" >&2
	exit 1
fi
passed=0
for t in "${targets[@]}"; do
	[ -x "$t" ] && [ -f "$t" ] || continue
	name=$(basename "$t")
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	mkdir -p "$work/corpus"
	if [ -d "$here/corpus/$name" ]; then
		cp -r "$here/corpus/$name/." "$work/corpus/"
	fi
	extra=()
	[ -f "$here/$name.dict" ] && extra+=("-dict=$here/$name.dict")
	# shellcheck disable=SC2207
	[ -f "$here/$name.options" ] && extra+=($(cat "$here/$name.options"))
	echo "fuzz: $name for ${secs}s ${extra[*]}"
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1 \
		"$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
		-print_final_stats=1 "${extra[@]}" "$work/corpus" 2>&1 | tee "$work/log"
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
	if [ -z "$runs" ] || [ "$runs" -eq 0 ]; then
		echo "fuzz: $name did not run" >&2
		exit 1
	fi
	echo "$name $runs" >>"$results"
	passed=$((passed + 1))
	rm -rf "$work"
	trap - EXIT
done
echo "fuzz: $passed passed, 0 failed"
