# Helpers shared by the run-*.bats files: the busybox base imported once per file (build-helpers),
# images built from Dockerfiles given on stdin, and kiln run in the background.
load ../build/build-helpers

run_setup_file() {
	require_root "kiln run needs root (namespaces, overlayfs)"
	build_setup_file
}

# build_image NAME: builds the Dockerfile read from stdin (context: an empty dir, or $CTX) as NAME.
build_image() {
	local ctx=${CTX:-$BATS_FILE_TMPDIR/empty-ctx}
	mkdir -p "$ctx"
	cat >"$ctx/Dockerfile.$1"
	"$KILN" --root "$KILN_TEST_ROOT" build -q -t "$1" -f "$ctx/Dockerfile.$1" "$ctx" >/dev/null
}

# kiln_bg LOG ARGS...: `kiln run ARGS` in the background, stdout+stderr to LOG; $KILN_PID is its pid.
kiln_bg() {
	local log=$1
	shift
	echo "# kiln $* &" >&3
	# emptied here, not by the background shell: a wait_for_line must not see a previous run's
	: >"$log"
	"$KILN" --root "$KILN_TEST_ROOT" "$@" >"$log" 2>&1 &
	KILN_PID=$!
}

# wait_for_line LOG REGEX [SECONDS]: waits until LOG has a line matching REGEX (default 20 s).
wait_for_line() {
	local i
	for ((i = 0; i < ${3:-20} * 20; i++)); do
		grep -qE "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "# no line matching '$2' in $1:" >&3
	sed 's/^/#   /' "$1" >&3
	return 1
}

# wait_kiln: waits for the background kiln ($KILN_PID) and leaves its exit status in $KILN_STATUS.
wait_kiln() {
	KILN_STATUS=0
	wait "$KILN_PID" || KILN_STATUS=$?
}

# run_teardown: ends what a failed test may have left running (its kiln, its tmux server).
run_teardown() {
	if [ -n "${KILN_PID:-}" ]; then
		kill -KILL "$KILN_PID" 2>/dev/null || true
	fi
	if [ -S "$BATS_TEST_TMPDIR/tmux.sock" ]; then
		tmux -S "$BATS_TEST_TMPDIR/tmux.sock" kill-server 2>/dev/null || true
	fi
}
