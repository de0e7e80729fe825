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

@test "build --push sends every -t name to its registry: skopeo sees the image kiln built" {
	skip_unless skopeo
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx"
	printf 'FROM kiln-test/busybox:latest\nRUN echo pushed > /p\nCMD ["cat", "/p"]\n' >"$ctx/Dockerfile"
	build_ok -t "$REGISTRY_HOST/demo/app:1" -t "$REGISTRY_HOST/demo/app:latest" --push "$ctx"
	id=$(last_line "$output")
	assert_contains "$output" "The push refers to repository [$REGISTRY_HOST/demo/app]"
	assert_contains "$output" "1: digest: sha256:"
	assert_contains "$output" "latest: digest: sha256:"
	assert_equal "$(inspect "$REGISTRY_HOST/demo/app:1" .Id)" "\"$id\""
	for tag in 1 latest; do
		run skopeo inspect --tls-verify=false --raw "docker://$REGISTRY_HOST/demo/app:$tag"
		[ "$status" -eq 0 ]
		assert_equal "$(printf '%s' "$output" | jq -r .config.digest)" "$id"
		# the manifest the registry holds is the one in the local store
		assert_equal "$output" "$(manifest_of "$REGISTRY_HOST/demo/app:1")"
	done
	run skopeo inspect --tls-verify=false --config "docker://$REGISTRY_HOST/demo/app:1"
	[ "$status" -eq 0 ]
	assert_equal "$(printf '%s' "$output" | jq -c .config.Cmd)" '["cat","/p"]'
}

@test "build --push: a failing push exits 1 naming it, and the image stays in the local store" {
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx"
	printf 'FROM kiln-test/busybox:latest\nRUN echo unpushed > /u\n' >"$ctx/Dockerfile"
	# nothing listens on port 1 of the loopback
	KILN_REGISTRY_RETRIES=0 run_kiln 1 build --progress plain -t 127.0.0.1:1/demo/fail:1 --push "$ctx"
	assert_contains "$output" "kiln: push of '127.0.0.1:1/demo/fail:1' failed (the image sha256:"
	assert_contains "$output" "stays in the local store)"
	id=$(printf '%s\n' "$output" | grep -o 'the image sha256:[0-9a-f]*' | cut -d' ' -f3)
	[[ "$id" =~ ^sha256:[0-9a-f]{64}$ ]]
	assert_equal "$(inspect 127.0.0.1:1/demo/fail:1 .Id)" "\"$id\""
	run_kiln 2 build -q --push "$ctx"
	assert_contains "$output" "--push needs at least one -t NAME"
	run_kiln 2 build -q -t x:1 --push --tls-verify=maybe "$ctx"
	assert_contains "$output" "invalid --tls-verify value 'maybe'"
}
