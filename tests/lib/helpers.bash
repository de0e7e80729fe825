# Shared bats helpers for kiln's end-to-end tests (after buildah's tests/helpers.bash).
# Every test gets a fresh store in $BATS_TEST_TMPDIR/root, passed to kiln with --root.

: "${KILN:?KILN must point at the kiln binary (ctest sets it)}"
: "${KILN_SRC:?KILN_SRC must point at the source tree (ctest sets it)}"
export KILN_TESTDATA="$KILN_SRC/testdata"

kiln_setup_root() {
	export KILN_TEST_ROOT="$BATS_TEST_TMPDIR/root"
	mkdir -p "$KILN_TEST_ROOT"
}

# run_kiln [expected_rc] args...: runs kiln with the test root and a timeout, logs the command,
# leaves $status and $output (stdout+stderr) as bats' run does, and fails on an unexpected status.
run_kiln() {
	local expected=0
	case "$1" in
	[0-9] | [0-9][0-9] | [0-9][0-9][0-9]) expected=$1; shift ;;
	esac
	echo "# kiln $*" >&3
	run timeout --foreground 300 "$KILN" --root "${KILN_TEST_ROOT:-$BATS_TEST_TMPDIR/root}" "$@"
	if [ -n "$output" ]; then
		printf '%s\n' "$output" | sed 's/^/#   /' >&3
	fi
	if [ "$status" -ne "$expected" ]; then
		echo "# expected exit $expected, got $status" >&3
		return 1
	fi
}

# skip_unless CMD: skips the test when CMD is missing, unless KILN_TEST_MUST_RUN=1 (CI).
skip_unless() {
	if ! command -v "$1" >/dev/null 2>&1; then
		if [ "${KILN_TEST_MUST_RUN:-0}" = 1 ]; then
			echo "# $1 is required (KILN_TEST_MUST_RUN=1)" >&3
			return 1
		fi
		skip "$1 is not installed"
	fi
}

# skip_or_fail REASON: skips the test saying why, unless KILN_TEST_MUST_RUN=1 (CI), where a test
# that cannot run is a failure.
skip_or_fail() {
	if [ "${KILN_TEST_MUST_RUN:-0}" = 1 ]; then
		echo "# cannot run: $1 (KILN_TEST_MUST_RUN=1)" >&3
		return 1
	fi
	skip "$1"
}

# require_root REASON: the test needs root (skip_or_fail otherwise).
require_root() {
	[ "$(id -u)" = 0 ] || skip_or_fail "$1"
}

# assert_contains HAYSTACK NEEDLE
assert_contains() {
	if [[ "$1" != *"$2"* ]]; then
		echo "# expected to find: $2" >&3
		echo "# in: $1" >&3
		return 1
	fi
}

# assert_no_secret TEXT USER PASSWORD: TEXT holds the password neither in clear nor in any
# encoding kiln handles it in (base64 of "user:password" as in config.json and Basic auth, base64
# of the password alone).
assert_no_secret() {
	local form
	for form in "$3" "$(printf '%s:%s' "$2" "$3" | base64 -w0)" "$(printf '%s' "$3" | base64 -w0)"; do
		if [[ "$1" == *"$form"* ]]; then
			echo "# the secret leaked as: $form" >&3
			return 1
		fi
	done
}

# assert_equal ACTUAL EXPECTED
assert_equal() {
	if [ "$1" != "$2" ]; then
		echo "# expected: $2" >&3
		echo "# actual:   $1" >&3
		return 1
	fi
}
