#!/bin/bash
# Registry transfer benchmark: push and pull a ~300 MB image of ~20,000 files to a local
# docker-registry with kiln and with `skopeo copy`, in the same run, and print both times and
# the ratio (skopeo / kiln: > 1 means kiln is faster).
#
#   bench/registry/run.sh [--kiln PATH] [--files N] [--mib M] [--layers L] [--runs R] [--jobs J]
#
# The image: L layers (default 6) made from a generated tree of N files (default 20000) totalling
# about M MiB (default 300), half incompressible bytes and half text, gzip-compressed
# (deterministic). Each push goes to a fresh registry (so neither tool can skip or mount blobs);
# each pull goes into an empty store / OCI layout. Pull sources are the same registry for both.
# Dirty pages are flushed (sync) before each timed command, so that no tool pays for the
# previous one's writeback (kiln fsyncs every blob it stores; skopeo does not). Times are the
# best of R runs (default 1). J: kiln's parallel transfers (default: kiln's own).
# Needs docker-registry, skopeo, python3, bc. Figures: bench/registry/RESULTS.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
kiln=${KILN:-$src/build/cli/kiln}
files=20000
mib=300
layers=6
runs=1
jobs=()
while [ $# -gt 0 ]; do
	case "$1" in
	--kiln) kiln=$2; shift 2 ;;
	--files) files=$2; shift 2 ;;
	--mib) mib=$2; shift 2 ;;
	--layers) layers=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--jobs) jobs=(--jobs "$2"); shift 2 ;;
	-h | --help) sed -n '2,15p' "$0"; exit 0 ;;
	*) echo "run.sh: unknown option '$1'" >&2; exit 2 ;;
	esac
done
[ -x "$kiln" ] || { echo "run.sh: no kiln binary at '$kiln' (build it or pass --kiln)" >&2; exit 1; }
command -v skopeo >/dev/null || { echo "run.sh: skopeo is not installed" >&2; exit 1; }

# shellcheck source=../../tests/registry-lib/registry.bash
. "$src/tests/registry-lib/registry.bash"
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-registry.XXXXXX")
cleanup() {
	registry_stop
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Keep skopeo's blob-info cache out of the way so it cannot mount blobs between registries.
export HOME="$work/home" XDG_DATA_HOME="$work/home/.local/share"
mkdir -p "$HOME"

now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc -l; }

echo "generating $files files, ~$mib MiB, $layers layers in $work ..." >&2
/usr/bin/python3 - "$work/tree" "$files" "$mib" "$layers" <<'PY'
import os, random, sys
out, n, mib, layers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(42)
per = (mib << 20) // n
words = b"kiln layer benchmark registry push pull blob digest manifest config tar gzip \n"
for i in range(n):
    d = os.path.join(out, "part%d" % (i % layers), "d%03d" % ((i // layers) % 200))
    os.makedirs(d, exist_ok=True)
    size = max(1, int(per * rng.uniform(0.2, 1.8)))
    half = size // 2
    text = (words * (half // len(words) + 1))[:size - half]
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(rng.randbytes(half) + text)
PY
dirs=()
for ((l = 0; l < layers; l++)); do dirs+=(--files-dir "$work/tree/part$l"); done
/usr/bin/python3 "$src/tests/registry-transfer/mkimage.py" "$work/layout" --tag bench --layers 0 "${dirs[@]}" >/dev/null
size=$(du -sm "$work/layout/blobs" | cut -f1)
echo "image: $(find "$work/tree" -type f | wc -l) files, $size MiB compressed in $layers layers" >&2

registry_start open "$work/reg-src" >/dev/null
src_host=$REGISTRY_HOST
skopeo copy -q --dest-tls-verify=false "oci:$work/layout:bench" "docker://$src_host/bench/img:1"

best() { printf '%s\n' "$@" | sort -n | head -1; }
kp=() sp=() ku=() su=()
for ((r = 1; r <= runs; r++)); do
	# Pull: kiln into an empty store, skopeo into an empty OCI layout.
	rm -rf "$work/kroot" "$work/sout"
	sync; t=$(now); "$kiln" --root "$work/kroot" pull -q "${jobs[@]}" "$src_host/bench/img:1" >/dev/null; kp+=("$(elapsed "$t")")
	sync; t=$(now); skopeo copy -q --src-tls-verify=false "docker://$src_host/bench/img:1" "oci:$work/sout:img" >/dev/null; sp+=("$(elapsed "$t")")
	# Push: each tool to its own fresh registry, from the same bytes (kiln's store is an OCI layout).
	registry_start open "$work/reg-k$r" >/dev/null
	sync; t=$(now); "$kiln" --root "$work/kroot" push -q "${jobs[@]}" "$src_host/bench/img:1" "$REGISTRY_HOST/bench/img:1"; ku+=("$(elapsed "$t")")
	registry_start open "$work/reg-s$r" >/dev/null
	sync; t=$(now); skopeo copy -q --dest-tls-verify=false "oci:$work/kroot:$src_host/bench/img:1" "docker://$REGISTRY_HOST/bench/img:1" >/dev/null; su+=("$(elapsed "$t")")
done
kpull=$(best "${kp[@]}") spull=$(best "${sp[@]}") kpush=$(best "${ku[@]}") spush=$(best "${su[@]}")
printf '%-6s %10s %10s %8s\n' "" "kiln (s)" "skopeo (s)" "ratio"
printf '%-6s %10.2f %10.2f %8.2f\n' pull "$kpull" "$spull" "$(echo "$spull / $kpull" | bc -l)"
printf '%-6s %10.2f %10.2f %8.2f\n' push "$kpush" "$spush" "$(echo "$spush / $kpush" | bc -l)"
