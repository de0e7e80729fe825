#!/usr/bin/env bats
# The progress views as a user sees them: the tty view driven for real in a tmux terminal
# (send-keys, capture-pane at intervals), plain, quiet and rawjson, and the failing step's output
# printed above the error in every mode.

load ../lib/helpers
load build-helpers

setup_file() {
	build_setup_file
}

setup() {
	skip_unless tmux
	TMUX_SOCK="kiln-progress-$$-$BATS_TEST_NUMBER"
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx"
}

teardown() {
	tmux -L "$TMUX_SOCK" kill-server 2>/dev/null || true
}

# tmux_start COLS ROWS [ENV=VAL...]: a terminal of that size running a plain shell.
tmux_start() {
	local cols=$1 rows=$2
	shift 2
	tmux -L "$TMUX_SOCK" -f /dev/null new-session -d -s t -x "$cols" -y "$rows" \
		env -i PATH="$PATH" HOME="$HOME" TERM=xterm-256color "$@" bash --norc --noprofile
	tmux -L "$TMUX_SOCK" set-option -t t status off >/dev/null
}

tmux_type() {
	tmux -L "$TMUX_SOCK" send-keys -t t "$1" Enter
}

screen() {
	tmux -L "$TMUX_SOCK" capture-pane -p -J -t t "$@"
}

# wait_screen PATTERN [SECONDS]: polls the screen until grep -E finds PATTERN.
wait_screen() {
	local i
	for ((i = 0; i < ${2:-60} * 5; i++)); do
		if screen | grep -qE -- "$1"; then
			return 0
		fi
		sleep 0.2
	done
	echo "# timed out waiting for: $1" >&3
	screen | sed 's/^/#   /' >&3
	return 1
}

build_cmd() {
	echo "'$KILN' --root '$KILN_TEST_ROOT' build $*; echo EXIT=\$?"
}

@test "tty: the timer advances and output lines appear while the step runs; the final screen holds the summary" {
	cat >"$ctx/Dockerfile" <<'DF'
FROM kiln-test/busybox:latest
RUN for i in 1 2 3 4 5 6; do echo tick$i; sleep 1; done
DF
	tmux_start 100 30
	tmux_type "clear; $(build_cmd --no-cache -t ttyview:1 "$ctx")"
	wait_screen ' => => # tick1'
	s1=$(screen)
	# the step's own timer, a number of seconds at the end of its line
	t1=$(grep -E '\[2/2\] RUN for' <<<"$s1" | grep -oE '[0-9]+\.[0-9]s$')
	! grep -q 'tick3' <<<"$s1"
	wait_screen ' => => # tick3'
	s2=$(screen)
	t2=$(grep -E '\[2/2\] RUN for' <<<"$s2" | grep -oE '[0-9]+\.[0-9]s$')
	# still running: no final screen yet, and the timer moved on by at least a second
	! grep -q 'FINISHED' <<<"$s2"
	awk -v a="${t1%s}" -v b="${t2%s}" 'BEGIN { exit !(b - a >= 1.0) }'
	wait_screen 'EXIT=0'
	final=$(screen)
	assert_contains "$final" "[+] Building"
	assert_contains "$final" "(2/2) FINISHED"
	assert_contains "$final" " => [stage 1/1] [2/2] RUN for i in 1 2 3 4 5 6; do echo tick\$i; sleep 1; done"
	assert_contains "$final" "Built sha256:"
	assert_contains "$final" "Tagged ttyview:1"
	# the output lines of a finished step leave the view
	! grep -q ' => => # tick' <<<"$final"
}

@test "tty: never wider than the terminal, and redrawn to the new width on resize" {
	cat >"$ctx/Dockerfile" <<'DF'
FROM kiln-test/busybox:latest
RUN echo a-very-long-line-of-output-that-is-much-wider-than-the-narrow-terminal-we-are-running-in-here; sleep 4; echo done-now
DF
	tmux_start 60 24
	tmux_type "clear; $(build_cmd --no-cache "$ctx")"
	wait_screen ' => => # a-very'
	# -J joins wrapped lines: a line of the view wider than 60 columns would show here
	screen | grep -E '^( =>|\[\+\])' | while IFS= read -r l; do
		[ "${#l}" -le 60 ] || { echo "# too wide: $l" >&3; exit 1; }
	done
	tmux -L "$TMUX_SOCK" resize-window -t t -x 40
	sleep 1
	s=$(screen)
	grep -E '^( =>|\[\+\])' <<<"$s" | while IFS= read -r l; do
		[ "${#l}" -le 40 ] || { echo "# too wide after resize: $l" >&3; exit 1; }
	done
	# one header only: the old frame was overwritten, not left behind
	[ "$(grep -c '^\[+\] Building' <<<"$s")" -eq 1 ]
	wait_screen 'EXIT=0'
	[ "$(screen | grep -c '^\[+\] Building')" -eq 1 ]
}

@test "auto picks plain on TERM=dumb and tty otherwise; NO_COLOR turns colours off" {
	cat >"$ctx/Dockerfile" <<'DF'
FROM kiln-test/busybox:latest
RUN echo hello-plain
DF
	tmux_start 100 30
	tmux_type "clear; TERM=dumb $(build_cmd --no-cache "$ctx")"
	wait_screen 'EXIT=0'
	s=$(screen)
	assert_contains "$s" "    hello-plain"
	assert_contains "$s" "    DONE "
	! grep -q '^\[+\] Building' <<<"$s"

	tmux_type "clear; $(build_cmd --no-cache "$ctx")"
	wait_screen 'EXIT=0'
	s=$(screen -e)
	assert_contains "$s" "[+] Building"
	grep -q $'\e\[34m' <<<"$s"

	tmux_type "clear; NO_COLOR=1 $(build_cmd --no-cache "$ctx")"
	wait_screen 'EXIT=0'
	s=$(screen -e)
	assert_contains "$s" "[+] Building"
	! grep -q $'\e\[3[0-9]m' <<<"$s"
}

@test "tty: a failing step's output and its Dockerfile line are shown above the error" {
	cat >"$ctx/Dockerfile" <<'DF'
FROM kiln-test/busybox:latest
RUN echo compiling; echo 'foo.c:3: error: expected ;' >&2; exit 3
DF
	tmux_start 120 30
	tmux_type "clear; $(build_cmd "$ctx")"
	wait_screen 'EXIT=1'
	s=$(screen)
	assert_contains "$s" " => ERROR [stage 1/1] [2/2] RUN echo compiling"
	assert_contains "$s" "foo.c:3: error: expected ;"
	assert_contains "$s" "Dockerfile:2"
	assert_contains "$s" "    2 | >>> RUN echo compiling; echo 'foo.c:3: error: expected ;' >&2; exit 3"
	assert_contains "$s" "kiln: Dockerfile:2:"
	assert_contains "$s" "exit code: 3"
}

@test "plain and quiet: the failing step's output is printed again above the error" {
	cat >"$ctx/Dockerfile" <<'DF'
FROM kiln-test/busybox:latest
RUN echo fine
RUN i=1; while [ $i -le 30 ]; do echo out$i; i=$((i+1)); done; echo 'foo.c:3: error: expected ;' >&2; exit 3
DF
	run_kiln 1 build --progress plain "$ctx"
	report=$(sed -n '/^------$/,$p' <<<"$output")
	assert_contains "$report" " > [stage 1/1] [3/3] RUN i=1;"
	# plain mode: all of the step's output
	for i in 1 15 30; do grep -qx "out$i" <<<"$report"; done
	grep -qx 'foo.c:3: error: expected ;' <<<"$report"
	assert_contains "$report" "Dockerfile:3"
	assert_contains "$report" "    3 | >>> RUN i=1;"
	[ "$(tail -n1 <<<"$output" | cut -c1-20)" = "kiln: Dockerfile:3: " ]

	run_kiln 1 build --progress quiet "$ctx"
	# quiet mode: nothing before the report, then its last ten lines
	[ "$(head -n1 <<<"$output")" = "------" ]
	grep -qx 'out22' <<<"$output"
	grep -qx 'foo.c:3: error: expected ;' <<<"$output"
	! grep -qx 'out21' <<<"$output"
	! grep -q 'fine' <<<"$output"
	assert_contains "$output" "Dockerfile:3"
}

@test "rawjson: one JSON object per event, for steps started, completed, cached, failed and their logs" {
	cat >"$ctx/Dockerfile" <<'DF'
FROM kiln-test/busybox:latest
RUN echo one
RUN echo two; echo bad >&2; exit 4
DF
	run timeout 300 "$KILN" --root "$KILN_TEST_ROOT" build --progress rawjson "$ctx"
	[ "$status" -eq 1 ]
	json=$(grep -v '^kiln: ' <<<"$output")
	# every line parses on its own
	while IFS= read -r l; do jq -e . >/dev/null <<<"$l"; done <<<"$json"
	jq -se 'map(select(.type=="vertex" and .id=="1.2" and .status=="started" and .line==2 and .file=="Dockerfile")) | length == 1' <<<"$json"
	jq -se 'map(select(.type=="vertex" and .id=="1.2" and .status=="completed" and .duration > 0)) | length == 1' <<<"$json"
	jq -se 'map(select(.type=="log" and .id=="1.2" and .data=="one\n")) | length == 1' <<<"$json"
	jq -se 'map(select(.type=="vertex" and .id=="1.3" and .status=="error" and (.error | test("exit code: 4")))) | length == 1' <<<"$json"
	jq -se 'map(select(.type=="log" and .id=="1.3")) | map(.data) | add | test("bad")' <<<"$json"
	jq -se '.[-1] == (.[-1] | select(.type=="end" and .ok==false))' <<<"$json"
	grep -qx 'kiln: Dockerfile:3: .*exit code: 4' <<<"$output"

	# the same step again is a cache hit
	run timeout 300 "$KILN" --root "$KILN_TEST_ROOT" build --progress rawjson "$ctx"
	jq -se 'map(select(.type=="vertex" and .id=="1.2" and .status=="cached")) | length == 1' <<<"$(grep -v '^kiln: ' <<<"$output")"
}
