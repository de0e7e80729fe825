#!/bin/bash
# Per-RUN overhead of a rootless build vs the same build as root, in the same run.
# A temporary user (with a subordinate ID range, removed at the end) and root each build, with
# --no-cache, a Dockerfile of 20 small RUN steps and one of none from the same busybox base:
#   per-RUN = (t(20 RUN) - t(0 RUN)) / 20       fixed = t(0 RUN) (includes, rootless, entering
#   the user namespace: fork, unshare, newuidmap and newgidmap)
# Prints the best of N runs of each (seconds) and the ratios rootless/root.
# Usage: bench/rootless/run.sh [KILN_BINARY]   (needs root; N=runs, default 5)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
kiln=$(realpath "${1:-${KILN:-$src/build/cli/kiln}}")
runs=${N:-5}
[ "$(id -u)" = 0 ] || { echo "bench/rootless: needs root (to create the test user)" >&2; exit 1; }
work=$(mktemp -d /tmp/kiln-bench-rootless.XXXXXX)
user="kilnbench$$"
cleanup() {
	id "$user" >/dev/null 2>&1 && userdel -r -f "$user" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"
useradd -m -s /bin/sh -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 "$user"
start=$(awk -F: 'BEGIN { m = 300000 } $2 + $3 > m { m = $2 + $3 } END { print m + 65536 }' /etc/subuid /etc/subgid)
usermod --add-subuids "$start-$((start + 65535))" --add-subgids "$start-$((start + 65535))" "$user"
home=$(getent passwd "$user" | cut -d: -f6)
cp "$kiln" "$work/kiln"
"$src/testdata/base/make-rootfs.sh" "$work/base" >/dev/null
mkdir -p "$work/20run" "$work/0run"
{
	echo "FROM kiln-test/busybox:latest"
	for i in $(seq 1 20); do echo "RUN echo $i > /step$i"; done
} >"$work/20run/Dockerfile"
echo "FROM kiln-test/busybox:latest" >"$work/0run/Dockerfile"
chmod -R a+rX "$work"

# Both through runuser, so that its cost (PAM session) is the same on both sides.
as_root() { runuser -u root -- "$work/kiln" --root "$work/root-store" "$@"; }
as_user() { (cd "$work" && runuser -u "$user" -- env -u XDG_DATA_HOME -u KILN_ROOT HOME="$home" "$work/kiln" "$@"); }
as_root import "$work/base/rootfs.tar" kiln-test/busybox:latest >/dev/null
as_user import "$work/base/rootfs.tar" kiln-test/busybox:latest >/dev/null

now() { date +%s%N; }
# best WHO CTX: best wall time of $runs no-cache builds of CTX, in nanoseconds.
best() {
	local best_ns="" t0 t1 i
	for i in $(seq 1 "$runs"); do
		t0=$(now)
		"$1" build -q --no-cache "$work/$2" >/dev/null
		t1=$(now)
		if [ -z "$best_ns" ] || [ $((t1 - t0)) -lt "$best_ns" ]; then best_ns=$((t1 - t0)); fi
	done
	echo "$best_ns"
}
# Interleaved, so that the machine's load hits both alike.
r20=$(best as_root 20run) u20=$(best as_user 20run)
r0=$(best as_root 0run) u0=$(best as_user 0run)
r20b=$(best as_root 20run) u20b=$(best as_user 20run)
[ "$r20b" -lt "$r20" ] && r20=$r20b
[ "$u20b" -lt "$u20" ] && u20=$u20b
awk -v r20="$r20" -v u20="$u20" -v r0="$r0" -v u0="$u0" -v n="$runs" 'BEGIN {
	rp = (r20 - r0) / 20 / 1e6; up = (u20 - u0) / 20 / 1e6
	printf "%-34s %12s %12s %10s\n", "best of " n " (no cache)", "root", "rootless", "ratio"
	printf "%-34s %10.3f s %10.3f s %9.2fx\n", "build, 20 RUN steps", r20 / 1e9, u20 / 1e9, u20 / r20
	printf "%-34s %10.3f s %10.3f s %9.2fx\n", "build, no RUN step (fixed cost)", r0 / 1e9, u0 / 1e9, u0 / r0
	printf "%-34s %9.1f ms %9.1f ms %9.2fx\n", "per RUN step", rp, up, up / rp
}'
