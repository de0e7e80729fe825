#!/bin/bash
# kiln build vs buildah bud, in the same run, on the workloads of the build issue:
#   daemon      the daemon example (Dockerfile2: ENV, ADD, RUN, VOLUME...), no cache
#   3stage      a 3-stage build making 5,000 files and a 50 MB file, no cache
#   20run       20 consecutive small RUN steps, no cache (per-RUN overhead = (20run - 0run) / 20)
#   cached      a fully cached rebuild of the daemon example
#   late        a rebuild after one late context file changed
# Prints each figure (best of N runs, seconds) for both and the ratio buildah/kiln.
# Usage: bench/build/run.sh [KILN_BINARY]   (needs root; buildah optional: N=runs, default 3)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
kiln=$(realpath "${1:-${KILN:-$src/build/cli/kiln}}")
runs=${N:-3}
work=$(mktemp -d /var/tmp/kiln-bench.XXXXXX)
cleanup() {
	if [ -n "${BH:-}" ]; then
		$BH rm --all >/dev/null 2>&1 || true
		$BH rmi --all --force >/dev/null 2>&1 || true
		umount -R "$work/bh/storage/overlay" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

"$src/testdata/base/make-rootfs.sh" "$work/base" >/dev/null
root="$work/kiln-root"
"$kiln" --root "$root" import "$work/base/rootfs.tar" kiln-test/busybox:latest >/dev/null

BH=""
if command -v buildah >/dev/null 2>&1; then
	for driver in overlay vfs; do
		BH="buildah --root $work/bh/storage --runroot $work/bh/run --storage-driver $driver"
		if c=$($BH from scratch 2>/dev/null); then
			$BH add "$c" "$work/base/rootfs.tar" / >/dev/null
			for env in $("$kiln" --root "$root" inspect kiln-test/busybox:latest | jq -r '.[0].Config.Env // [] | .[]'); do
				$BH config --env "$env" "$c"
			done
			$BH commit -q "$c" kiln-test/busybox:latest >/dev/null
			$BH rm "$c" >/dev/null
			bh_driver=$driver
			break
		fi
		BH=""
	done
fi

# Contexts.
mkdir -p "$work/3stage" "$work/20run" "$work/0run" "$work/late"
cat >"$work/3stage/Dockerfile" <<'DF'
FROM kiln-test/busybox:latest AS files
RUN mkdir /files && cd /files && i=0; while [ $i -lt 5000 ]; do echo "file $i" > f$i; i=$((i+1)); done
FROM kiln-test/busybox:latest AS big
RUN dd if=/dev/zero of=/big bs=1M count=50 2>/dev/null && echo 1 >> /big
FROM kiln-test/busybox:latest
COPY --from=files /files /files
COPY --from=big /big /big
RUN ls /files | wc -l
DF
{
	echo "FROM kiln-test/busybox:latest"
	for i in $(seq 1 20); do echo "RUN echo $i > /step$i"; done
} >"$work/20run/Dockerfile"
echo "FROM kiln-test/busybox:latest" >"$work/0run/Dockerfile"
for i in $(seq 1 200); do echo "early $i" >"$work/late/early-$i.txt"; done
echo v1 >"$work/late/late.txt"
cat >"$work/late/Dockerfile" <<'DF'
FROM kiln-test/busybox:latest
COPY early-*.txt /early/
RUN ls /early | wc -l > /count
COPY late.txt /late.txt
RUN cat /late.txt > /seen
DF

now() { date +%s%N; }
# best TOOL CMD...: best wall time of $runs runs, in seconds (prep hook: $PREP run before each).
best() {
	local best_ns="" t0 t1 i
	for i in $(seq 1 "$runs"); do
		[ -n "${PREP:-}" ] && eval "$PREP"
		t0=$(now)
		"$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; "$@" 2>&1 | tail -5 >&2; return 1; }
		t1=$(now)
		if [ -z "$best_ns" ] || [ $((t1 - t0)) -lt "$best_ns" ]; then best_ns=$((t1 - t0)); fi
	done
	awk -v n="$best_ns" 'BEGIN { printf "%.3f", n / 1e9 }'
}

K() { "$kiln" --root "$root" build --progress plain "$@"; }
B() { $BH bud --isolation chroot --format docker -q "$@"; }

declare -A kt bt
kt[daemon]=$(best K --no-cache -t d:2 -f "$src/testdata/daemon/Dockerfile2" "$src/testdata/daemon")
kt[3stage]=$(best K --no-cache -t s:1 "$work/3stage")
kt[20run]=$(best K --no-cache -t r:20 "$work/20run")
kt[0run]=$(best K --no-cache -t r:0 "$work/0run")
K -t d:2 -f "$src/testdata/daemon/Dockerfile2" "$src/testdata/daemon" >/dev/null 2>&1
kt[cached]=$(best K -t d:2 -f "$src/testdata/daemon/Dockerfile2" "$src/testdata/daemon")
K -t l:1 "$work/late" >/dev/null 2>&1
kt[late]=$(PREP='echo "k$RANDOM$RANDOM" > "$work/late/late.txt"' best K -t l:1 "$work/late")
if [ -n "$BH" ]; then
	bt[daemon]=$(best B --no-cache -t d:2 -f "$src/testdata/daemon/Dockerfile2" "$src/testdata/daemon")
	bt[3stage]=$(best B --no-cache -t s:1 "$work/3stage")
	bt[20run]=$(best B --no-cache -t r:20 "$work/20run")
	bt[0run]=$(best B --no-cache -t r:0 "$work/0run")
	B -t d:2 -f "$src/testdata/daemon/Dockerfile2" "$src/testdata/daemon" >/dev/null 2>&1
	bt[cached]=$(best B -t d:2 -f "$src/testdata/daemon/Dockerfile2" "$src/testdata/daemon")
	B -t l:1 "$work/late" >/dev/null 2>&1
	bt[late]=$(PREP='echo "b$RANDOM$RANDOM" > "$work/late/late.txt"' best B -t l:1 "$work/late")
fi

per_run() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (a - b) / 20 * 1000 }'; }
printf "kiln build vs buildah bud %s[best of %d runs, seconds; ratio = buildah / kiln]\n" \
	"${bh_driver:+($bh_driver storage, chroot isolation) }" "$runs"
printf '%-34s %10s %10s %8s\n' workload kiln buildah ratio
for w in daemon 3stage 20run cached late; do
	label=$w
	case $w in
	daemon) label="daemon example (no cache)" ;;
	3stage) label="3 stages, 5000 files + 50 MB" ;;
	20run) label="20 RUN steps" ;;
	cached) label="fully cached rebuild (daemon)" ;;
	late) label="rebuild after late file change" ;;
	esac
	if [ -n "$BH" ]; then
		printf '%-34s %10s %10s %7sx\n' "$label" "${kt[$w]}" "${bt[$w]}" \
			"$(awk -v k="${kt[$w]}" -v b="${bt[$w]}" 'BEGIN { printf "%.1f", b / k }')"
	else
		printf '%-34s %10s %10s %8s\n' "$label" "${kt[$w]}" "-" "-"
	fi
done
printf '%-34s %8s ms %7s ms\n' "per-RUN overhead ((20run-0run)/20)" "$(per_run "${kt[20run]}" "${kt[0run]}")" \
	"$([ -n "$BH" ] && per_run "${bt[20run]}" "${bt[0run]}" || echo -)"
