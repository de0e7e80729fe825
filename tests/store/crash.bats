#!/usr/bin/env bats
# kill -9 of `kiln load` at random moments: the store stays consistent (fsck clean), the image is
# either fully there or absent, leftovers are cleaned on the next use.

load store-helpers

setup_file() {
	export BIG="$BATS_FILE_TMPDIR/big.tar"
	/usr/bin/python3 "$KILN_SRC/bench/store/gen-image.py" "$BIG" --mb 80 --files 4000 --layers 4 --name crash/big:1
}

setup() {
	kiln_setup_root
	BIG="$BATS_FILE_TMPDIR/big.tar"
}

now_ms() {
	echo $(( $(date +%s%N) / 1000000 ))
}

@test "kill -9 during load at random moments never corrupts the store" {
	# How long a full load takes here, to spread the kills over all of it.
	t0=$(now_ms)
	"$KILN" --root "$BATS_TEST_TMPDIR/ref" load -q -i "$BIG"
	dur=$(( $(now_ms) - t0 + 50 ))
	present=0 absent=0
	for i in $(seq 1 ${KILN_CRASH_ITERATIONS:-30}); do
		"$KILN" --root "$KILN_TEST_ROOT" load -q -i "$BIG" &
		pid=$!
		delay=$(( RANDOM % dur ))
		sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" || true
		run_kiln fsck
		run_kiln images -q
		if [ -n "$output" ]; then
			present=$((present + 1))
			# Fully there: every blob readable, the archive saves.
			run_kiln save -o "$BATS_TEST_TMPDIR/s.tar" crash/big:1
			run_kiln rmi crash/big:1
			# Half the time, prune too, so that later rounds start from an empty store.
			if [ $((i % 2)) -eq 0 ]; then run_kiln prune; fi
		else
			absent=$((absent + 1))
		fi
		# Leftovers of the killed writer were cleaned by fsck's open.
		[ -z "$(ls -A "$KILN_TEST_ROOT/tmp" 2>/dev/null)" ]
	done
	echo "# $present rounds finished before the kill, $absent were interrupted" >&3
	run_kiln load -i "$BIG"
	assert_equal "$output" "Loaded image: crash/big:1"
	run_kiln fsck
	assert_equal "$(skopeo_diff_ids "oci:$KILN_TEST_ROOT:docker.io/crash/big:1")" \
		"$(skopeo_diff_ids "docker-archive:$BIG")"
}

@test "a live writer's temp dir survives another process's cleanup" {
	"$KILN" --root "$KILN_TEST_ROOT" load -q -i "$BIG" &
	pid=$!
	# While the load spools, other commands open the store (and clean unlocked leftovers).
	for i in 1 2 3 4 5; do
		"$KILN" --root "$KILN_TEST_ROOT" images >/dev/null
		"$KILN" --root "$KILN_TEST_ROOT" fsck >/dev/null || true
	done
	wait "$pid"
	run_kiln images -q
	[ -n "$output" ]
	run_kiln fsck
}

@test "prune waits for a running load instead of deleting its blobs" {
	"$KILN" --root "$KILN_TEST_ROOT" load -q -i "$BIG" &
	pid=$!
	sleep 0.1
	run_kiln prune
	wait "$pid"
	run_kiln fsck
	run_kiln save -o "$BATS_TEST_TMPDIR/s.tar" crash/big:1
}

@test "concurrent writers never lose each other's names" {
	fixture
	"$KILN" --root "$KILN_TEST_ROOT" load -q -i "$FIX/base.tar"
	pids=()
	for i in $(seq 1 12); do
		"$KILN" --root "$KILN_TEST_ROOT" tag kiln-test/busybox "par/img:$i" &
		pids+=($!)
	done
	"$KILN" --root "$KILN_TEST_ROOT" load -q -i "$FIX/app.tar" &
	pids+=($!)
	for p in "${pids[@]}"; do wait "$p"; done
	run_kiln images --format json
	assert_equal "$(jq -r '.[] | .Repository + ":" + .Tag' <<<"$output" | grep -c '^par/img:')" 12
	assert_contains "$output" '"Repository": "kiln-test/app"'
	run_kiln fsck
}
