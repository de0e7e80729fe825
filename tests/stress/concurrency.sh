#!/bin/bash
# Concurrency stress: eight kiln processes at once on one store — builds, pulls, pushes, rmi, tag
# and prune — then: nothing a finished command reported is lost, `kiln fsck` passes, and no
# command hangs (each is bounded by `timeout`; one that needs it is reported as a deadlock).
#
#   tests/stress/concurrency.sh [--iterations N] KILN
#
# Workers 1-2 build (each its own tag, --no-cache), 3 pulls, 4 pushes, 5 tags and rmi's its own
# tags, 6 prunes (--cache), 7 loads, 8 saves. Every command that exits 0 appends what it made to
# the ledger; a worker removing a name first strikes it. At the end every name still in the
# ledger must inspect to the image ID the command reported. Needs root, busybox-static and
# docker-registry.
set -euo pipefail

iters=5
if [ "${1:-}" = --iterations ]; then iters=$2; shift 2; fi
[ $# -eq 1 ] || { echo "usage: $0 [--iterations N] KILN" >&2; exit 2; }
KILN=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-concurrency.XXXXXX")
root=$work/root
limit=${KILN_STRESS_TIMEOUT:-300}
export REGISTRY_LIFETIME=3600
# shellcheck source=../registry-lib/registry.bash
. "$src/tests/registry-lib/registry.bash"
trap 'registry_stop >/dev/null 2>&1 || true' EXIT

fail() {
	echo "concurrency: FAIL: $*" >&2
	echo "concurrency: work directory kept: $work" >&2
	exit 1
}
# k ARGS: kiln on the shared store, bounded; exit 124 (timeout) is recorded as a deadlock.
k() {
	local st=0
	timeout "$limit" "$KILN" --root "$root" "$@" || st=$?
	if [ "$st" -eq 124 ]; then
		echo "deadlock: kiln $* did not finish in ${limit}s" >>"$work/deadlocks"
	fi
	return "$st"
}
# ledger NAME ID: a finished command reported NAME -> ID.
ledger() { flock "$work/ledger.lock" sh -c 'echo "$1 $2" >>"$3"' _ "$1" "$2" "$work/ledger"; }
strike() { flock "$work/ledger.lock" sed -i "\\|^$1 |d" "$work/ledger"; }
id_of() { "$KILN" --root "$root" inspect "$1" | jq -r '.[0].Id'; }

"$src/testdata/base/make-rootfs.sh" "$work/base" >/dev/null
"$KILN" --root "$root" import "$work/base/rootfs.tar" kiln-test/busybox:latest >/dev/null
: >"$work/ledger"
ledger kiln-test/busybox:latest "$(id_of kiln-test/busybox:latest)"
for w in 1 2; do
	mkdir -p "$work/ctx$w"
	head -c 300000 /dev/urandom >"$work/ctx$w/data"
	printf 'FROM kiln-test/busybox:latest\nARG N\nRUN echo worker %s $N >/who && sleep 0.2\nCOPY data /data\n' "$w" >"$work/ctx$w/Dockerfile"
done
"$KILN" --root "$root" build -q -t conc/seed:1 "$work/ctx1" >/dev/null
ledger conc/seed:1 "$(id_of conc/seed:1)"
"$KILN" --root "$root" save -o "$work/seed.tar" conc/seed:1
registry_start open "$work/registry" >/dev/null
reg=$REGISTRY_HOST
"$KILN" --root "$root" push -q conc/seed:1 "$reg/conc/seed:1" >/dev/null

worker() {
	local w=$1 i
	for i in $(seq 1 "$iters"); do
		case $w in
		1 | 2)
			if k build -q --no-cache --build-arg "N=$i" -t "conc/b$w:$i" "$work/ctx$w" >/dev/null 2>>"$work/err$w"; then
				ledger "conc/b$w:$i" "$(id_of "conc/b$w:$i")"
			fi ;;
		3)
			if k pull -q "$reg/conc/seed:1" >/dev/null 2>>"$work/err$w"; then
				ledger "$reg/conc/seed:1" "$(id_of "$reg/conc/seed:1")"
			fi ;;
		4)
			k push -q conc/seed:1 "$reg/conc/pushed:$i" >/dev/null 2>>"$work/err$w" || echo "push $i failed" >>"$work/err$w" ;;
		5)
			if k tag conc/seed:1 "conc/t:$i" 2>>"$work/err$w"; then
				ledger "conc/t:$i" "$(id_of conc/seed:1)"
				if [ $((i % 2)) -eq 0 ]; then
					strike "conc/t:$i"
					k rmi "conc/t:$i" >/dev/null 2>>"$work/err$w" || echo "rmi $i failed" >>"$work/err$w"
				fi
			fi ;;
		6)
			k prune --cache >/dev/null 2>>"$work/err$w" || echo "prune $i failed" >>"$work/err$w" ;;
		7)
			if k load -q -i "$work/seed.tar" >/dev/null 2>>"$work/err$w"; then
				ledger conc/seed:1 "$(id_of conc/seed:1)"
			fi ;;
		8)
			k save -o "$work/out$i.tar" conc/seed:1 2>>"$work/err$w" && rm -f "$work/out$i.tar" ;;
		esac
	done
}

pids=()
for w in 1 2 3 4 5 6 7 8; do
	worker "$w" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done

[ ! -s "$work/deadlocks" ] || { cat "$work/deadlocks" >&2; fail "commands hung"; }
for w in 1 2 3 4 5 6 7 8; do
	if [ -s "$work/err$w" ]; then
		echo "concurrency: worker $w reported:" >&2
		sed 's/^/  /' "$work/err$w" >&2
		fail "worker $w had failing commands"
	fi
done
"$KILN" --root "$root" fsck >"$work/fsck.out" 2>&1 || { cat "$work/fsck.out" >&2; fail "fsck"; }
lost=0
while read -r name id; do
	got=$(id_of "$name" 2>/dev/null || true)
	if [ "$got" != "$id" ]; then
		echo "concurrency: lost: $name (reported $id, now '${got}')" >&2
		lost=$((lost + 1))
	fi
done < <(sort -u "$work/ledger")
[ "$lost" -eq 0 ] || fail "$lost names a finished command reported are gone"
echo "concurrency: 8 workers x $iters iterations: nothing lost ($(sort -u "$work/ledger" | wc -l) names), fsck clean, no command hung"
rm -rf "$work"
