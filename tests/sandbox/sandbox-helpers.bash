# Shared setup for the sandbox tests: a busybox rootfs (one per file) as the single lowerdir,
# a fresh upper/work per test, and `sbx [rc] args... -- cmd` wrapping kiln-test-tool sandbox-run.
load ../lib/helpers

TOOL="$KILN_BUILD_DIR/tests/helper/kiln-test-tool"

sbx_require_root() {
	if [ "$(id -u)" != 0 ] || ! unshare -m -p -f true 2>/dev/null; then
		if [ "${KILN_TEST_MUST_RUN:-0}" = 1 ]; then
			echo "# the sandbox tests need root (KILN_TEST_MUST_RUN=1)" >&3
			return 1
		fi
		skip "needs root and namespaces"
	fi
}

sbx_setup_file() {
	export SBX_BASE="$BATS_FILE_TMPDIR/base"
	"$KILN_SRC/testdata/base/make-rootfs.sh" "$SBX_BASE" >/dev/null
}

sbx_setup() {
	sbx_require_root
	[ -x "$TOOL" ] || { echo "# $TOOL not built" >&3; return 1; }
	UP="$BATS_TEST_TMPDIR/upper"
	WK="$BATS_TEST_TMPDIR/work"
	mkdir -p "$UP" "$WK"
	SBX_LAYERS=(--lower "$SBX_BASE/rootfs" --upper "$UP" --work "$WK")
	SBX_MOUNTS_BEFORE=$(grep -c "$BATS_TEST_TMPDIR\|kiln-sandbox" /proc/self/mountinfo || true)
}

# No mount of the sandbox may leak into the host's mount namespace; no state dir is left.
sbx_teardown() {
	local now
	now=$(grep -c "$BATS_TEST_TMPDIR\|kiln-sandbox" /proc/self/mountinfo || true)
	if [ "$now" != "${SBX_MOUNTS_BEFORE:-0}" ]; then
		echo "# mounts leaked into the host:" >&3
		grep "$BATS_TEST_TMPDIR\|kiln-sandbox" /proc/self/mountinfo >&3
		return 1
	fi
}

# sbx [expected_rc] [sandbox options] -- cmd...: runs the tool with the test's layers; sets
# $status/$output (stdout+stderr) like bats' run and fails on an unexpected status.
sbx() {
	local expected=0
	case "$1" in
	[0-9] | [0-9][0-9] | [0-9][0-9][0-9]) expected=$1; shift ;;
	esac
	echo "# sandbox-run $*" >&3
	run timeout --foreground 120 "$TOOL" sandbox-run "${SBX_LAYERS[@]}" "$@"
	if [ -n "$output" ]; then
		printf '%s\n' "$output" | sed 's/^/#   /' >&3
	fi
	if [ "$status" -ne "$expected" ]; then
		echo "# expected exit $expected, got $status" >&3
		return 1
	fi
}

# The upper dir's contents as sorted relative paths with type, mode and size ("" when empty).
upper_listing() {
	(cd "$UP" && find . -mindepth 1 -printf '%y %m %s %p\n' | LC_ALL=C sort -k4)
}
