#!/usr/bin/env bats
# kiln run in the foreground: the build -> run -> stop -> run loop of the daemon example, signals
# passed to PID 1 (SIGTERM as the image's STOPSIGNAL), the stop timeout's SIGKILL (137), and a
# real terminal with -t under script and tmux.

load ../lib/helpers
load run-helpers

setup_file() {
	run_setup_file
	(cd "$KILN_TESTDATA/daemon" && "$KILN" --root "$KILN_TEST_ROOT" build -q -t my_daemon:0.2 -f Dockerfile2 . >/dev/null)
	build_image usr1-stop <<-'EOF2'
	FROM kiln-test/busybox:latest
	STOPSIGNAL SIGUSR1
	CMD ["sh", "-c", "trap 'echo got USR1; exit 0' USR1; trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 1 & wait $!; done"]
	EOF2
}

teardown() {
	run_teardown
}

@test "daemon loop: run, SIGTERM saves the counter to the volume and exits 0, the next run resumes" {
	state="$BATS_TEST_TMPDIR/state"
	log="$BATS_TEST_TMPDIR/run1"
	kiln_bg "$log" run --rm --name my_daemon -e INTERVAL=0.05 -v "$state:/var/lib/my_daemon" my_daemon:0.2
	wait_for_line "$log" '^counter: 5$'
	kill -TERM "$KILN_PID"
	wait_kiln
	assert_equal "$KILN_STATUS" 0
	saved=$(cat "$state/counter")
	[ "$saved" -ge 5 ]
	assert_contains "$(cat "$log")" "my_daemon: starting at 0, every 0.05s"
	assert_contains "$(cat "$log")" "my_daemon: saved counter $saved to /var/lib/my_daemon/counter"
	log="$BATS_TEST_TMPDIR/run2"
	kiln_bg "$log" run --rm --name my_daemon -e INTERVAL=0.05 -v "$state:/var/lib/my_daemon" my_daemon:0.2
	wait_for_line "$log" "^counter: $((saved + 2))\$"
	assert_equal "$(sed -n 1p "$log")" "my_daemon: starting at $saved, every 0.05s"
	kill -INT "$KILN_PID"
	wait_kiln
	assert_equal "$KILN_STATUS" 0
	[ "$(cat "$state/counter")" -gt "$saved" ]
}

@test "daemon without -v: the image's VOLUME is anonymous, so every run starts from the image's 0" {
	for i in 1 2; do
		log="$BATS_TEST_TMPDIR/run$i"
		kiln_bg "$log" run -e INTERVAL=0.05 my_daemon:0.2
		wait_for_line "$log" '^counter: 3$'
		kill -TERM "$KILN_PID"
		wait_kiln
	assert_equal "$KILN_STATUS" 0
		assert_equal "$(sed -n 1p "$log")" "my_daemon: starting at 0, every 0.05s"
	done
}

@test "a PID 1 that ignores SIGTERM is killed after --stop-timeout: exit 137" {
	log="$BATS_TEST_TMPDIR/log"
	# a bare sleep as PID 1 has no handler: the kernel ignores SIGTERM for it
	kiln_bg "$log" run --stop-timeout 1 kiln-test/busybox sleep 60
	sleep 0.5
	start=$(date +%s%N)
	kill -TERM "$KILN_PID"
	wait_kiln
	assert_equal "$KILN_STATUS" 137
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	# killed after the timeout (1 s), not right away and not after the default 10 s
	[ "$ms" -ge 900 ] && [ "$ms" -lt 9000 ] || { echo "# stopped after $ms ms" >&3; return 1; }
	# and one whose trap ignores it
	kiln_bg "$log" run --stop-timeout 1 kiln-test/busybox sh -c 'trap "" TERM; echo ready; while :; do sleep 1; done'
	wait_for_line "$log" '^ready$'
	kill -TERM "$KILN_PID"
	wait_kiln
	assert_equal "$KILN_STATUS" 137
}

@test "SIGTERM reaches PID 1 as the image's STOPSIGNAL; --stop-signal overrides it" {
	log="$BATS_TEST_TMPDIR/log"
	kiln_bg "$log" run usr1-stop
	wait_for_line "$log" '^ready$'
	kill -TERM "$KILN_PID"
	wait_kiln
	assert_equal "$KILN_STATUS" 0
	wait_for_line "$log" '^got USR1$'
	kiln_bg "$log" run --stop-signal SIGTERM usr1-stop
	wait_for_line "$log" '^ready$'
	kill -TERM "$KILN_PID"
	wait_kiln
	assert_equal "$KILN_STATUS" 0
	wait_for_line "$log" '^got TERM$'
	kiln_bg "$log" run --stop-signal 10 usr1-stop
	wait_for_line "$log" '^ready$'
	kill -TERM "$KILN_PID"
	wait_kiln
	assert_equal "$KILN_STATUS" 0
	wait_for_line "$log" '^got USR1$'
}

@test "SIGINT and SIGHUP reach PID 1 as they are; the exit status is the container's" {
	log="$BATS_TEST_TMPDIR/log"
	prog='trap "echo got INT; exit 3" INT; trap "echo got HUP; exit 4" HUP; echo ready; while :; do sleep 1 & wait $!; done'
	kiln_bg "$log" run kiln-test/busybox sh -c "$prog"
	wait_for_line "$log" '^ready$'
	kill -INT "$KILN_PID"
	wait_kiln
	assert_equal "$KILN_STATUS" 3
	wait_for_line "$log" '^got INT$'
	kiln_bg "$log" run kiln-test/busybox sh -c "$prog"
	wait_for_line "$log" '^ready$'
	kill -HUP "$KILN_PID"
	wait_kiln
	assert_equal "$KILN_STATUS" 4
	wait_for_line "$log" '^got HUP$'
}

@test "--init: SIGTERM reaches the command through kiln's reaper (a bare sleep dies: 143)" {
	log="$BATS_TEST_TMPDIR/log"
	kiln_bg "$log" run --init kiln-test/busybox sh -c 'echo ready; exec sleep 60'
	wait_for_line "$log" '^ready$'
	kill -TERM "$KILN_PID"
	wait_kiln
	assert_equal "$KILN_STATUS" 143
}

@test "-t under script: a terminal of the container's own devpts, TERM=xterm, the caller's size" {
	skip_unless script
	run script -qec "stty rows 33 cols 101; '$KILN' --root '$KILN_TEST_ROOT' run -t kiln-test/busybox sh -c 'tty; stty size; echo \$TERM; exit 7'" /dev/null
	assert_equal "$status" 7
	out=$(printf '%s\n' "$output" | tr -d '\r')
	assert_equal "$out" "$(printf '/dev/pts/0\n33 101\nxterm')"
	# without -t: no terminal
	run_kiln 1 run kiln-test/busybox tty
	assert_contains "$output" "not a tty"
}

@test "-it under tmux: raw mode passes keys (Ctrl-C to the container), resizes follow, exit status" {
	skip_unless tmux
	sock="$BATS_TEST_TMPDIR/tmux.sock"
	t() { tmux -S "$sock" "$@"; }
	# wait_screen REGEX [last]: until a line of the pane (or its last line with text) matches
	wait_screen() {
		local i
		for ((i = 0; i < 200; i++)); do
			if [ "${2:-}" = last ]; then
				t capture-pane -p -t k | grep -v '^$' | tail -n 1 | grep -qE "$1" && return 0
			else
				t capture-pane -p -t k | grep -qE "$1" && return 0
			fi
			sleep 0.05
		done
		echo "# the screen never showed '$1':" >&3
		t capture-pane -p -t k | sed 's/^/#   /' >&3
		t kill-server
		return 1
	}
	t -f /dev/null new-session -d -s k -x 100 -y 30 "env PS1='host$ ' bash --norc --noprofile"
	t send-keys -t k "'$KILN' --root '$KILN_TEST_ROOT' run -it kiln-test/busybox sh; echo kiln-exit=\$?" Enter
	wait_screen '^/ #$' last
	t send-keys -t k 'echo size=$(stty size)' Enter
	wait_screen '^size=30 100$'
	t resize-window -t k -x 120 -y 40
	sleep 0.3
	t send-keys -t k 'echo size=$(stty size)' Enter
	wait_screen '^size=40 120$'
	# Ctrl-C goes through kiln (raw mode) to the container's terminal: it interrupts sleep only
	t send-keys -t k "sleep 60; echo after-sleep" Enter
	sleep 0.5
	t send-keys -t k C-c
	wait_screen '^/ #$' last
	t send-keys -t k "exit 5" Enter
	wait_screen '^kiln-exit=5$'
	! t capture-pane -p -t k | grep -q '^after-sleep'
	# the caller's terminal is back in cooked mode
	t send-keys -t k "stty -a | grep -o -- ' icanon'" Enter
	wait_screen '^ icanon$'
	t kill-server
}
