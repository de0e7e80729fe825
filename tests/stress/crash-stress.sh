#!/bin/bash
# Crash-safety stress: kill -9 at random moments of every kiln command that writes, then check
# that `kiln fsck` passes and that the same command, run again, succeeds (and fsck still passes).
#
#   tests/stress/crash-stress.sh [--rounds N] [--commands "pull push build load save import prune rmi"] KILN
#
# N rounds per command (default 20; CI runs 2 through crash-stress.bats). Each round first times
# nothing: the kill delay is drawn uniformly over the duration of one uninterrupted run of the
# same command measured at the start, so kills land in every phase (for build: during RUN, COPY
# and the commit of the layer). pull and push go through a real docker-registry on 127.0.0.1
# (tests/registry-lib); an interrupted push must leave the registry so that the next push
# completes, and what it pushed must pull back with the pushed digest. Needs root (build's RUN
# sandbox), busybox-static and docker-registry. Prints one summary line per command; exits 1 at
# the first failure, leaving its work directory for inspection.
set -euo pipefail

rounds=20
commands="pull push build load save import prune rmi"
while [ $# -gt 1 ]; do
	case "$1" in
	--rounds) rounds=$2; shift 2 ;;
	--commands) commands=$2; shift 2 ;;
	*) break ;;
	esac
done
[ $# -eq 1 ] || { echo "usage: $0 [--rounds N] [--commands LIST] KILN" >&2; exit 2; }
KILN=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-crash-stress.XXXXXX")
root=$work/root
export REGISTRY_LIFETIME=3600
# shellcheck source=../registry-lib/registry.bash
. "$src/tests/registry-lib/registry.bash"
trap 'registry_stop >/dev/null 2>&1 || true' EXIT

k() { "$KILN" --root "$root" "$@"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
fail() {
	echo "crash-stress: FAIL: $*" >&2
	echo "crash-stress: work directory kept: $work" >&2
	exit 1
}
# check WHAT: the store must pass fsck.
check() {
	k fsck >"$work/fsck.out" 2>&1 || { cat "$work/fsck.out" >&2; fail "fsck after $1"; }
}

# Fixtures: the base image, an app image with a few MB in three layers, its archive, a context.
"$src/testdata/base/make-rootfs.sh" "$work/base" >/dev/null
mkdir -p "$work/ctx/files"
for i in $(seq 1 200); do head -c 20000 /dev/urandom >"$work/ctx/files/f$i"; done
cat >"$work/ctx/Dockerfile" <<'DF'
FROM kiln-test/busybox:latest
RUN dd if=/dev/urandom of=/big bs=1M count=8 2>/dev/null && sleep 0.3
COPY files /files
RUN for i in 1 2 3 4 5 6 7 8; do cat /files/* >/dev/null; done && echo done >/done
DF
k import "$work/base/rootfs.tar" kiln-test/busybox:latest >/dev/null
k build -q -t stress/app:1 "$work/ctx" >/dev/null
k save -o "$work/app.tar" stress/app:1
registry_start open "$work/registry" >/dev/null
reg=$REGISTRY_HOST
k push -q stress/app:1 "$reg/stress/app:1" >/dev/null

# Per command: prepare (state before a round), run (the command), verify (after the rerun).
prep_pull() { k rmi "$reg/stress/app:1" >/dev/null 2>&1 || true; k prune >/dev/null; }
run_pull() { k pull -q "$reg/stress/app:1"; }
verify_pull() { k inspect "$reg/stress/app:1" >/dev/null; }
prep_push() { pushed="$reg/stress/pushed-$round:1"; }
run_push() { k push -q stress/app:1 "$pushed"; }
verify_push() {
	"$KILN" --root "$work/verify" pull -q "$pushed" >/dev/null &&
		[ "$("$KILN" --root "$work/verify" fsck >/dev/null 2>&1; echo $?)" = 0 ]
	rm -rf "$work/verify"
}
prep_build() { :; }
run_build() { k build -q --no-cache -t stress/built:1 "$work/ctx"; }
verify_build() { k inspect stress/built:1 >/dev/null; }
prep_load() { k rmi stress/loaded:1 >/dev/null 2>&1 || true; k prune >/dev/null; }
run_load() { k load -q -i "$work/app.tar"; }
verify_load() { k inspect stress/app:1 >/dev/null; }
prep_save() { rm -f "$work/saved.tar"; }
run_save() { k save -o "$work/saved.tar" stress/app:1; }
verify_save() { tar -tf "$work/saved.tar" >/dev/null; }
prep_import() { k rmi stress/imported:1 >/dev/null 2>&1 || true; k prune >/dev/null; }
run_import() { k import "$work/base/rootfs.tar" stress/imported:1; }
verify_import() { k inspect stress/imported:1 >/dev/null; }
prep_prune() {
	# garbage to collect: a build nobody names any more
	k build -q --no-cache -t stress/garbage:1 "$work/ctx" >/dev/null
	k rmi stress/garbage:1 >/dev/null
}
run_prune() { k prune --cache; }
verify_prune() { k inspect stress/app:1 >/dev/null; }
prep_rmi() { k tag stress/app:1 "stress/tag:$round"; }
run_rmi() {
	# the rerun after a kill that came too late finds the tag gone: that is success too
	if k inspect "stress/tag:$round" >/dev/null 2>&1; then k rmi "stress/tag:$round"; fi
}
verify_rmi() { ! k inspect "stress/tag:$round" >/dev/null 2>&1; }

for cmd in $commands; do
	declare -F "run_$cmd" >/dev/null || fail "unknown command '$cmd'"
	round=0
	"prep_$cmd"
	t0=$(now_ms)
	"run_$cmd" >/dev/null 2>&1 || fail "$cmd: uninterrupted run failed"
	dur=$(( $(now_ms) - t0 + 20 ))
	check "$cmd (uninterrupted)"
	killed=0
	for round in $(seq 1 "$rounds"); do
		"prep_$cmd"
		"run_$cmd" >/dev/null 2>&1 &
		pid=$!
		delay=$(( (RANDOM * 32768 + RANDOM) % dur ))
		sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
		kill -9 "$pid" 2>/dev/null || true
		st=0
		wait "$pid" 2>/dev/null || st=$?
		[ "$st" -ne 137 ] || killed=$((killed + 1))
		check "$cmd killed after ${delay} ms (round $round)"
		"run_$cmd" >"$work/rerun.out" 2>&1 || { cat "$work/rerun.out" >&2; fail "$cmd: rerun after a kill at ${delay} ms (round $round)"; }
		check "$cmd rerun (round $round)"
		"verify_$cmd" || fail "$cmd: result after the rerun (round $round)"
	done
	echo "crash-stress: $cmd: $rounds rounds ($killed killed mid-run, run ${dur} ms): fsck clean, reruns succeeded"
done
rm -rf "$work"
