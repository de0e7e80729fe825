#!/bin/sh
# Per-RUN overhead of kiln's sandbox (overlay mount + namespaces + pivot_root + /proc /dev /sys
# + exec + teardown) against the kernel's floor, `unshare -m -p -u -i -n -f chroot ROOT true`.
# Needs root. Usage: bench/sandbox/run.sh [BUILD_DIR]   (default: build; KILN_BENCH_RUNS=20)
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-${KILN_BUILD_DIR:-$src/build}}
tool=$build/tests/helper/kiln-test-tool
runs=${KILN_BENCH_RUNS:-20}
[ -x "$tool" ] || { echo "bench/sandbox: $tool missing (build first)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench/sandbox: needs root" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-sandbox.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
"$src/testdata/base/make-rootfs.sh" "$tmp/base" >/dev/null
root=$tmp/base/rootfs
mkdir -p "$tmp/scratch" "$tmp/up" "$tmp/wk"

echo "== kiln sandbox, in process (what the builder pays per RUN; fresh upper/work each run)"
echo "\$ kiln-test-tool sandbox-bench --lower ROOT --scratch DIR -n $runs -- true"
"$tool" sandbox-bench --lower "$root" --scratch "$tmp/scratch" -n 3 -- true >/dev/null
kiln=$("$tool" sandbox-bench --lower "$root" --scratch "$tmp/scratch" -n "$runs" -- true)
echo "$kiln  (network host)"
kiln_mean=$(echo "$kiln" | sed -n 's/.*mean_ms=\([0-9.]*\).*/\1/p')
echo "$("$tool" sandbox-bench --network none --lower "$root" --scratch "$tmp/scratch" -n "$runs" -- true)  (network none)"
if [ -d /dev/shm ] && shm=$(mktemp -d /dev/shm/kiln-bench-sandbox.XXXXXX 2>/dev/null); then
	# the same with upper/work (and the state dir) on tmpfs: overlay's workdir probing and
	# copy-ups no longer go through the ext4 journal
	echo "$("$tool" sandbox-bench --lower "$root" --scratch "$shm" --tmpdir "$shm" -n "$runs" -- true)  (upper/work on tmpfs)"
	rm -rf "$shm"
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"

if command -v hyperfine >/dev/null 2>&1; then
	echo
	echo "== whole processes (hyperfine, $runs runs each)"
	hyperfine -N --warmup 3 --runs "$runs" --export-json "$tmp/h.json" \
		-n "kiln-test-tool sandbox-run (overlay)" "$tool sandbox-run --lower $root --upper $tmp/up --work $tmp/wk -- true" \
		-n "unshare -m -p -u -i -n -f chroot ROOT true" "unshare -m -p -u -i -n -f chroot $root true" >/dev/null
	/usr/bin/python3 - "$tmp/h.json" "$kiln_mean" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
for x in r:
    print(f"{x['command']:45s} mean {x['mean']*1e3:7.2f} ms  min {x['min']*1e3:7.2f} ms  max {x['max']*1e3:7.2f} ms")
tool, base = r[0]["mean"] * 1e3, r[1]["mean"] * 1e3
print(f"ratio sandbox-run / unshare+chroot: {tool / base:.2f}x")
print(f"in-process sandbox_run mean {float(sys.argv[2]):.2f} ms (goal: under 20 ms)")
PY
else
	echo "hyperfine not installed: baseline skipped"
fi
