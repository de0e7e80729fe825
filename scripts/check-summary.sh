#!/bin/sh
# Prints the closing line of `make check` from the runs it made: ctest's JUnit reports of the
# normal and the ASan/UBSan runs, and the fuzz targets that really ran clean (one line each in
# tests/fuzz/results.txt, written by tests/fuzz/run.sh after a run that executed inputs).
# Usage: scripts/check-summary.sh JUNIT.xml... -- FUZZ_BUILD_DIR
set -eu
passed=0 failed=0 skipped=0
while [ $# -gt 0 ] && [ "$1" != -- ]; do
	p=$(grep -c '<testcase .*status="run"' "$1" || true)
	f=$(grep -c '<testcase .*status="fail"' "$1" || true)
	s=$(grep -c '<testcase .*status="\(notrun\|disabled\)"' "$1" || true)
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
	shift
done
[ "${1:-}" = -- ] && shift
fuzz=0
results="${1:-build-fuzz}/tests/fuzz/results.txt"
[ -f "$results" ] && fuzz=$(grep -c '^fuzz-[^ ]* [1-9][0-9]*$' "$results" || true)
passed=$((passed + fuzz))
echo "check: $passed passed, $failed failed, $skipped skipped"
