#!/usr/bin/env bash
# The differential suite's driver (a ctest): starts a docker-registry on 127.0.0.1, pushes the
# locally made busybox base there, starts a private BuildKit that pulls from it, then lets
# differential.py build every case with both builders and compare them. Exit 77 = skipped.
#   tests/differential/run.sh [CASE...]      (ctest sets KILN, KILN_SRC, KILN_CONFORMANCE_DIR)
# Env: KILN_BUILDKIT      the buildkit.sh to use (default ../shared/tools/buildkit/buildkit.sh)
#      KILN_TEST_MUST_RUN=1  fail instead of skipping when BuildKit cannot run
#      DIFF_KEEP=DIR      keep the work tree (contexts, both archives) in DIR
set -uo pipefail
: "${KILN:?KILN must point at the kiln binary}"
: "${KILN_SRC:?KILN_SRC must point at the source tree}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILDKIT_SH=${KILN_BUILDKIT:-$KILN_SRC/../shared/tools/buildkit/buildkit.sh}

skip_or_fail() {
	if [ "${KILN_TEST_MUST_RUN:-0}" = 1 ]; then
		echo "differential: $* (KILN_TEST_MUST_RUN=1)" >&2
		exit 1
	fi
	echo "differential: skipped: $*"
	exit 77
}

[ "$(id -u)" = 0 ] || skip_or_fail "BuildKit needs root"
[ -x "$BUILDKIT_SH" ] || skip_or_fail "no BuildKit at $BUILDKIT_SH"
command -v runc >/dev/null || skip_or_fail "runc is not installed (BuildKit runs RUN steps with it)"
command -v /usr/bin/docker-registry >/dev/null || skip_or_fail "docker-registry is not installed"
command -v python3 >/dev/null || skip_or_fail "python3 is not installed"

WORK=${DIFF_KEEP:-$(mktemp -d "${TMPDIR:-/tmp}/kiln-differential.XXXXXX")}
mkdir -p "$WORK"
export KILN_BUILDKIT_STATE="$WORK/buildkit"
# shellcheck source=../registry-lib/registry.bash
. "$KILN_SRC/tests/registry-lib/registry.bash"

cleanup() {
	"$BUILDKIT_SH" stop >/dev/null 2>&1
	registry_stop
	if [ -z "${DIFF_KEEP:-}" ]; then
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

registry_start open "$WORK/registry" >/dev/null || skip_or_fail "docker-registry did not start"
export KILN_BUILDKIT_HTTP=$REGISTRY_HOST
export DIFF_BASE="$REGISTRY_HOST/kiln-test/busybox:latest"
export DIFF_ROOT="$WORK/root"

"$KILN_SRC/testdata/base/make-rootfs.sh" "$WORK/base" >/dev/null || exit 1
"$KILN" --root "$DIFF_ROOT" import "$WORK/base/rootfs.tar" "$DIFF_BASE" >/dev/null || exit 1
"$KILN" --root "$DIFF_ROOT" push -q --tls-verify=false "$DIFF_BASE" || exit 1
"$BUILDKIT_SH" start || skip_or_fail "buildkitd did not start"

python3 "$HERE/differential.py" --work "$WORK" --cases "$HERE/cases" \
	--conformance "$HERE/conformance.list" --conformance-dir "${KILN_CONFORMANCE_DIR:-$KILN_SRC/../shared/conformance}" \
	--deviations "$HERE/deviations.txt" --buildkit "$BUILDKIT_SH" "$@"
