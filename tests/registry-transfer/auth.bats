#!/usr/bin/env bats
# kiln pull and push through the registry's authentication: htpasswd Basic and Bearer tokens.

load helpers

setup() {
	skip_unless skopeo
	skip_unless docker-registry
	kiln_setup_root
	export DOCKER_CONFIG="$BATS_TEST_TMPDIR/docker"
	mkdir -p "$DOCKER_CONFIG"
}

teardown() {
	registry_stop
}

# push_pull_after_login: the shared scenario for the two auth modes.
push_pull_after_login() {
	seed_image "$REGISTRY_HOST/team/base:1" --layers 2
	# Without credentials the registry refuses, and kiln says so.
	run_kiln 1 pull "$REGISTRY_HOST/team/base:1"
	assert_contains "$output" "cannot fetch manifest of '$REGISTRY_HOST/team/base:1'"
	assert_contains "${output,,}" "unauthorized"

	printf '%s' "$REGISTRY_PASS" | run_kiln_stdin login -u "$REGISTRY_USER" --password-stdin "$REGISTRY_HOST"
	run_kiln pull "$REGISTRY_HOST/team/base:1"
	assert_contains "$output" "Digest: $SEED_DIGEST"
	run_kiln push "$REGISTRY_HOST/team/base:1" "$REGISTRY_HOST/team/app:1"
	[ "$(grep -c ': Mounted from team/base$' <<<"$output")" -eq 2 ]
	[ "sha256:$(remote_raw "$REGISTRY_HOST/team/app:1" | sha256sum | cut -d' ' -f1)" = "$SEED_DIGEST" ]
	# A fresh store pulls what kiln pushed; nothing secret ever reaches the output.
	export KILN_TEST_ROOT="$BATS_TEST_TMPDIR/root2"
	run_kiln pull "$REGISTRY_HOST/team/app:1"
	[ "$(grep -c ': Pull complete$' <<<"$output")" -eq 2 ]
	[[ "$output" != *"$REGISTRY_PASS"* ]]
}

# run_kiln_stdin ARGS...: run_kiln with stdin passed through (for --password-stdin).
run_kiln_stdin() {
	echo "# kiln $*" >&3
	run timeout --foreground 300 "$KILN" --root "$KILN_TEST_ROOT" "$@"
	[ "$status" -eq 0 ] || { printf '%s\n' "$output" | sed 's/^/#   /' >&3; return 1; }
}

@test "htpasswd Basic auth: refused without login, push and pull after kiln login" {
	registry_start htpasswd
	push_pull_after_login
}

@test "token auth: refused anonymously for push, push and pull after kiln login" {
	REGISTRY_TOKEN_ARGS="--no-anonymous" registry_start token
	push_pull_after_login
	# The token server saw kiln ask for the source repository's pull scope (for the mount).
	grep '"user": "kiln-user"' "$REGISTRY_TOKEN_LOG" | grep -q 'repository:team/base:pull'
}

@test "token auth: anonymous pull works, anonymous push is refused clearly" {
	registry_start token
	seed_image "$REGISTRY_HOST/team/base:1" --layers 1
	run_kiln pull -q "$REGISTRY_HOST/team/base:1"
	run_kiln 1 push "$REGISTRY_HOST/team/base:1" "$REGISTRY_HOST/team/app:1"
	assert_contains "$output" "401 Unauthorized"
	# Nothing reached the registry under the new name.
	run skopeo inspect --raw --tls-verify=false "docker://$REGISTRY_HOST/team/app:1"
	[ "$status" -ne 0 ]
}
