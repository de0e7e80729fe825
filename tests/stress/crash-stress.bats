#!/usr/bin/env bats
# The crash-safety stress script (crash-stress.sh), short: 2 rounds of kill -9 at a random moment
# for each of pull, push, build, load, save, import, prune and rmi; fsck and the rerun must pass.
# The full run is `tests/stress/crash-stress.sh --rounds 20 build/cli/kiln` (KILN_STRESS_ROUNDS
# sets the rounds here).

load ../lib/helpers

@test "kill -9 at random points of every writing command: fsck clean, reruns succeed" {
	skip_unless docker-registry
	require_root "build's RUN sandbox needs root here"
	run timeout 1200 "$KILN_SRC/tests/stress/crash-stress.sh" --rounds "${KILN_STRESS_ROUNDS:-2}" "$KILN"
	printf '%s\n' "$output" | sed 's/^/# /' >&3
	[ "$status" -eq 0 ]
	[ "$(grep -c 'fsck clean, reruns succeeded$' <<<"$output")" -eq 8 ]
}
