#!/bin/sh
# Time from `kiln run` to the container's first line of output, next to `runc run` of the same
# image as a bundle (kiln save --format oci-archive | umoci unpack), both running `echo first`.
# Needs root, runc and umoci. Usage: bench/run/run.sh [KILN]   (default: build/cli/kiln;
# KILN_BENCH_RUNS=20)
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
kiln=$(realpath "${1:-$src/build/cli/kiln}")
runs=${KILN_BENCH_RUNS:-20}
[ -x "$kiln" ] || { echo "bench/run: $kiln missing (build first)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench/run: needs root" >&2; exit 1; }
for t in runc umoci python3; do
	command -v "$t" >/dev/null || { echo "bench/run: $t not installed" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-run.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
"$src/testdata/base/make-rootfs.sh" "$tmp/base" >/dev/null
root=$tmp/root
"$kiln" --root "$root" import "$tmp/base/rootfs.tar" kiln-test/busybox:latest >/dev/null

# The same image as an OCI bundle for runc: saved by kiln, unpacked by umoci.
"$kiln" --root "$root" save --format oci-archive -o "$tmp/img.tar" kiln-test/busybox:latest
mkdir "$tmp/oci"
tar -xf "$tmp/img.tar" -C "$tmp/oci"
umoci unpack --image "$tmp/oci:docker.io/kiln-test/busybox:latest" "$tmp/bundle" >/dev/null
cfg=$tmp/bundle/config.json
jq '.process.args = ["echo", "first"] | .process.terminal = false' "$cfg" >"$cfg.new"
mv "$cfg.new" "$cfg"
# a second bundle without a network namespace: kiln run's default (the host's network)
cp -a "$tmp/bundle" "$tmp/bundle-hostnet"
jq '.linux.namespaces |= map(select(.type != "network"))' "$cfg" >"$tmp/bundle-hostnet/config.json"

echo "== time to first line of output, $runs runs each (median, min, max)"
python3 - "$runs" "$kiln" "$root" "$tmp" <<'PY'
import statistics, subprocess, sys, time

runs, kiln, root, tmp = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
n = [0]

def first_line(cmd):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = p.stdout.readline()
    t1 = time.perf_counter()
    p.stdout.read()
    if p.wait() != 0 or line.strip() != b"first":
        sys.exit(f"bench/run: {' '.join(cmd)} failed: {line!r}")
    return (t1 - t0) * 1e3

def runc(bundle):
    n[0] += 1
    return ["runc", "run", "-b", bundle, f"kiln-bench-{n[0]}"]

cases = [
    ("kiln run IMAGE echo first", lambda: [kiln, "--root", root, "run", "kiln-test/busybox", "echo", "first"]),
    ("runc run (bundle, host network)", lambda: runc(f"{tmp}/bundle-hostnet")),
    ("kiln run --network none IMAGE echo first", lambda: [kiln, "--root", root, "run", "--network", "none", "kiln-test/busybox", "echo", "first"]),
    ("runc run (bundle, own network namespace)", lambda: runc(f"{tmp}/bundle")),
]
res = {}
for name, cmd in cases:
    for _ in range(3):
        first_line(cmd())
res = {name: [] for name, _ in cases}
for _ in range(runs):  # interleaved, so load changes hit every case alike
    for name, cmd in cases:
        res[name].append(first_line(cmd()))
for name, _ in cases:
    v = res[name]
    print(f"{name:45s} median {statistics.median(v):7.2f} ms  min {min(v):7.2f}  max {max(v):7.2f}")
for a, b in ((0, 1), (2, 3)):
    ka, kb = cases[a][0], cases[b][0]
    r = statistics.median(res[ka]) / statistics.median(res[kb])
    print(f"ratio {ka} / {kb}: {r:.2f}x")
PY
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
