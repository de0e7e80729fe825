#!/usr/bin/env bats
# Eight kiln processes at once on one store (builds, pulls, pushes, tag/rmi, prune, load, save):
# nothing a finished command reported is lost, fsck is clean, nothing hangs (concurrency.sh).

load ../lib/helpers

@test "eight concurrent writers on one store: nothing lost, fsck clean, no deadlock" {
	skip_unless docker-registry
	require_root "build's RUN sandbox needs root here"
	run timeout 1200 "$KILN_SRC/tests/stress/concurrency.sh" --iterations "${KILN_STRESS_ITERATIONS:-3}" "$KILN"
	printf '%s\n' "$output" | sed 's/^/# /' >&3
	[ "$status" -eq 0 ]
	assert_contains "$output" "nothing lost"
}
