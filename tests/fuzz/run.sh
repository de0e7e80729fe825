#!/bin/bash
# Runs every built fuzz target for N seconds under ASan/UBSan, starting from its seed corpus.
# Usage: tests/fuzz/run.sh BUILD_DIR SECONDS
set -euo pipefail
build=$1
secs=$2
here=$(cd "$(dirname "$0")" && pwd)
shopt -s nullglob
targets=("$build"/tests/fuzz/fuzz-*)
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no targets built in $build/tests/fuzz" >&2
	exit 1
fi
for t in "${targets[@]}"; do
	name=$(basename "$t")
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	if [ -d "$here/corpus/$name" ]; then
		cp -r "$here/corpus/$name/." "$work/"
	fi
	echo "fuzz: $name for ${secs}s"
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1 \
		"$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
		-print_final_stats=1 "$work"
	rm -rf "$work"
	trap - EXIT
done
echo "fuzz: ${#targets[@]} passed, 0 failed"
