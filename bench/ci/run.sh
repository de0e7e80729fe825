#!/bin/bash
# The CI scenario of the registry build cache, side by side in one run, each on a fresh, empty
# store (an ephemeral CI runner) against a local docker-registry:
#   cold   kiln build --cache-to type=registry,...,mode=max --push  (no cache: every RUN runs,
#          then the image and the cache are pushed)
#   warm   kiln build --cache-from type=registry,...                 (same inputs, another store)
#   pull   kiln pull of the image the cold build pushed             (the floor: the warm build
#          must at least download the final image's layers)
# The workload: a build stage that makes 3,000 files and 40 MB of data (the kind of work a
# compile does), and a final stage that copies its output and runs two more steps.
# Prints the best of R runs of each (default 3) and the ratios warm/cold and warm/pull.
# Usage: bench/ci/run.sh [KILN_BINARY]   (needs root, docker-registry; R=runs)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
kiln=$(realpath "${1:-${KILN:-$src/build/cli/kiln}}")
runs=${R:-3}
work=$(mktemp -d /var/tmp/kiln-bench-ci.XXXXXX)
# shellcheck source=../../tests/registry-lib/registry.bash
source "$src/tests/registry-lib/registry.bash"
cleanup() {
	registry_stop
	rm -rf "$work"
}
trap cleanup EXIT
registry_start open "$work/registry" >/dev/null
reg=$REGISTRY_HOST

"$src/testdata/base/make-rootfs.sh" "$work/base" >/dev/null
"$kiln" --root "$work/seed" import "$work/base/rootfs.tar" bench/busybox:1 >/dev/null
"$kiln" --root "$work/seed" push bench/busybox:1 "$reg/bench/busybox:1" >/dev/null

mkdir -p "$work/ctx/src"
for i in $(seq 1 50); do echo "source $i" >"$work/ctx/src/m$i.c"; done
cat >"$work/ctx/Dockerfile" <<DF
FROM $reg/bench/busybox:1 AS build
COPY src /src
RUN mkdir /out && cd /out && i=0; while [ \$i -lt 3000 ]; do echo "object \$i" > o\$i; i=\$((i+1)); done
RUN head -c 40000000 /dev/urandom > /out/blob && sha256sum /out/blob > /out/blob.sum
RUN cat /src/*.c | sha256sum > /out/src.sum
FROM $reg/bench/busybox:1
COPY --from=build /out /app
RUN ls /app | wc -l > /app/count
ENV APP=/app
CMD ["cat", "/app/count"]
DF

now() { date +%s%N; }
n=0
fresh() {
	n=$((n + 1))
	store="$work/store$n"
}
# best NAME CMD...: best wall time of $runs runs, each on a fresh store ($store in CMD).
best() {
	local name=$1 best_ns="" t0 t1 i
	shift
	for i in $(seq 1 "$runs"); do
		fresh
		sync
		t0=$(now)
		eval "$@" >/dev/null 2>"$work/last.err" || { cat "$work/last.err" >&2; exit 1; }
		t1=$(now)
		if [ -z "$best_ns" ] || [ $((t1 - t0)) -lt "$best_ns" ]; then best_ns=$((t1 - t0)); fi
		rm -rf "$store"
	done
	printf '%s %d.%03d\n' "$name" $((best_ns / 1000000000)) $((best_ns / 1000000 % 1000))
	eval "${name}_ns=$best_ns"
}

cache="type=registry,ref=$reg/bench/app:buildcache"
best cold '"$kiln" --root "$store" build -q -t "$reg/bench/app:1" --push --cache-to "$cache,mode=max" "$work/ctx"'
best warm '"$kiln" --root "$store" build -q -t "$reg/bench/app:1" --cache-from "$cache" "$work/ctx"'
best pull '"$kiln" --root "$store" pull "$reg/bench/app:1"'
# the warm build must have been fully cached: same image ID as the cold one
fresh
id_warm=$("$kiln" --root "$store" build -q -t x --cache-from "$cache" "$work/ctx")
id_reg=$(curl -s -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$REGISTRY_URL/v2/bench/app/manifests/1" | jq -r .config.digest)
[ "$id_warm" = "$id_reg" ] || { echo "bench: the warm build made $id_warm, the cold one $id_reg" >&2; exit 1; }
awk -v c="$cold_ns" -v w="$warm_ns" -v p="$pull_ns" 'BEGIN {
	printf "warm/cold %.2f (%.1fx faster than cold)\n", w / c, c / w
	printf "warm/pull %.2f\n", w / p
}'
