#!/usr/bin/env bats
# FROM an image that is only in a registry: pulled as --pull says (a real docker-registry on
# 127.0.0.1), and RUN on top of it.

load ../lib/helpers
load ../registry-lib/registry
load build-helpers

setup_file() {
	build_setup_file
}

setup() {
	skip_unless docker-registry
	registry_start open
	"$KILN" --root "$KILN_TEST_ROOT" push kiln-test/busybox:latest "$REGISTRY_HOST/kiln-test/busybox:1" >/dev/null
}

teardown() {
	registry_stop
}

@test "FROM a registry image pulls it into an empty store, then builds on it" {
	export KILN_TEST_ROOT="$BATS_TEST_TMPDIR/empty"
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx"
	printf 'FROM %s/kiln-test/busybox:1\nRUN echo pulled > /p\n' "$REGISTRY_HOST" >"$ctx/Dockerfile"
	run_kiln 1 build --pull=never "$ctx"
	assert_contains "$output" "not in the local store"
	build_ok -t onremote:1 "$ctx"
	assert_contains "$output" "pulling $REGISTRY_HOST/kiln-test/busybox:1"
	unpack onremote:1 "$BATS_TEST_TMPDIR/rootfs"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs/p")" pulled
	# the second build finds it locally (--pull=missing) and is fully cached
	build_ok -t onremote:1 "$ctx"
	[[ "$output" != *pulling* ]]
	assert_contains "$output" CACHED
	# --pull=always asks the registry again
	build_ok -t onremote:1 --pull=always "$ctx"
	assert_contains "$output" "pulling"
}
