#!/bin/bash
# Runs a command next to a temporary docker-registry and stops the registry afterwards.
#   tests/registry-lib/run-registry.sh [--mode open|htpasswd|token] [--proxy] -- CMD [ARGS...]
# The command sees the variables documented in registry.bash (REGISTRY_HOST, REGISTRY_USER, ...).
# Without a command it prints them and waits until interrupted (for manual use).
set -euo pipefail
mode=open
proxy=0
while [ $# -gt 0 ]; do
	case "$1" in
	--mode) mode=$2; shift 2 ;;
	--mode=*) mode=${1#--mode=}; shift ;;
	--proxy) proxy=1; shift ;;
	--) shift; break ;;
	-h | --help) sed -n '2,5p' "$0"; exit 0 ;;
	*) break ;;
	esac
done
# shellcheck source=registry.bash
. "$(dirname "$0")/registry.bash"
dir=$(mktemp -d "${TMPDIR:-/tmp}/kiln-registry.XXXXXX")
cleanup() {
	registry_stop
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
registry_start "$mode" "$dir"
[ "$proxy" = 1 ] && registry_fault_proxy_start
if [ $# -eq 0 ]; then
	env | grep -E '^(REGISTRY_|FAULT_|SKOPEO_AUTH)' | sort
	echo "press Ctrl-C to stop" >&2
	while :; do sleep 60; done
fi
rc=0
"$@" || rc=$?
exit "$rc"
