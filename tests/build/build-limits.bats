#!/usr/bin/env bats
# RUN's resource limits without cgroups: default RLIMIT_NOFILE/RLIMIT_NPROC, docker's --ulimit,
# and --run-timeout, a wall-clock limit that kills every process of a step still running.

load ../lib/helpers
load build-helpers

setup_file() {
	build_setup_file
}

setup() {
	mkdir -p "$BATS_TEST_TMPDIR/ctx"
	printf 'FROM kiln-test/busybox:latest\nRUN echo "limits $(ulimit -n) $(ulimit -Hn) $(ulimit -u) $(ulimit -Hu) $(ulimit -c)"\n' \
		>"$BATS_TEST_TMPDIR/ctx/Dockerfile"
}

@test "limits: RUN gets nofile 1048576 (or kiln's own hard limit when lower) and nproc 16384" {
	hard=$(ulimit -Hn) hardu=$(ulimit -Hu)
	want=1048576 wantu=16384
	[ "$hard" = unlimited ] || [ "$hard" -ge "$want" ] || want=$hard
	[ "$hardu" = unlimited ] || [ "$hardu" -ge "$wantu" ] || wantu=$hardu
	run_kiln build --progress plain --no-cache -t lim:1 "$BATS_TEST_TMPDIR/ctx"
	assert_contains "$output" "limits $want $want $wantu $wantu"
}

@test "limits: --ulimit sets soft and hard limits as docker's (repeatable, -1 is unlimited)" {
	run_kiln build --progress plain --no-cache --ulimit nofile=256:512 --ulimit nproc=4000 \
		--ulimit core=-1 -t lim:2 "$BATS_TEST_TMPDIR/ctx"
	assert_contains "$output" "limits 256 512 4000 4000 unlimited"
	run_kiln 2 build --ulimit nofiles=1 "$BATS_TEST_TMPDIR/ctx"
	assert_contains "$output" "invalid ulimit 'nofiles=1': unknown resource 'nofiles'"
	run_kiln 2 build --ulimit nofile=20:10 "$BATS_TEST_TMPDIR/ctx"
	assert_contains "$output" "soft limit above the hard limit"
	run_kiln 2 build --ulimit nofile "$BATS_TEST_TMPDIR/ctx"
	assert_contains "$output" "expected NAME=SOFT[:HARD]"
}

@test "limits: --run-timeout kills a step still running, and everything it started" {
	printf 'FROM kiln-test/busybox:latest\nRUN (sleep 61.25 &) ; echo started && sleep 62.5\n' \
		>"$BATS_TEST_TMPDIR/ctx/Dockerfile"
	run_kiln 1 build --progress plain --run-timeout 2s -t slow:1 "$BATS_TEST_TMPDIR/ctx"
	assert_contains "$output" "started"
	assert_contains "$output" "Dockerfile:2: run: did not finish within 2 seconds (--run-timeout): every process of the step was killed"
	run_kiln 1 inspect slow:1
	run pgrep -f 'sleep 6(1.25|2.5)'
	[ "$status" -eq 1 ]
	# a step that ends in time is not affected
	printf 'FROM kiln-test/busybox:latest\nRUN sleep 0.2 && echo ok\n' >"$BATS_TEST_TMPDIR/ctx/Dockerfile"
	run_kiln build -q --run-timeout 1m -t quick:1 "$BATS_TEST_TMPDIR/ctx"
	run_kiln 2 build --run-timeout 0 "$BATS_TEST_TMPDIR/ctx"
	assert_contains "$output" "invalid --run-timeout '0'"
	run_kiln 2 build --run-timeout 5x "$BATS_TEST_TMPDIR/ctx"
}
