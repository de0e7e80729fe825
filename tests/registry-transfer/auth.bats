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
	assert_contains "$output" "(run 'kiln login $REGISTRY_HOST' first)"
	# Stale stored credentials: the same refusal says to log in again.
	printf '{"auths":{"%s":{"auth":"%s"}}}' "$REGISTRY_HOST" "$(printf 'kiln-user:stale' | base64)" \
		>"$DOCKER_CONFIG/config.json"
	run_kiln 1 pull "$REGISTRY_HOST/team/base:1"
	assert_contains "$output" "(the stored credentials for '$REGISTRY_HOST' were refused: run 'kiln login $REGISTRY_HOST' again)"
	rm "$DOCKER_CONFIG/config.json"

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
	assert_contains "$output" "(run 'kiln login $REGISTRY_HOST' first)"
	# Nothing reached the registry under the new name.
	run skopeo inspect --raw --tls-verify=false "docker://$REGISTRY_HOST/team/app:1"
	[ "$status" -ne 0 ]
}

@test "credentials go to a token realm on another host only over https, never over plain http" {
	registry_start token
	seed_image "$REGISTRY_HOST/team/base:1" --layers 1
	tport=${REGISTRY_TOKEN_URL##*:}
	tport=${tport%%/*}
	# the same token server named by another host name, over plain http
	registry_fault_proxy_start "* /v2/ realm url=http://localhost:$tport/token"
	# kiln login through that registry: refused before the password leaves
	printf '%s' "$REGISTRY_PASS" >"$BATS_TEST_TMPDIR/pw"
	run timeout 60 "$KILN" --root "$KILN_TEST_ROOT" login -u "$REGISTRY_USER" --password-stdin "$FAULT_PROXY_HOST" <"$BATS_TEST_TMPDIR/pw"
	printf '%s\n' "$output" | sed 's/^/#   /' >&3
	[ "$status" -eq 1 ]
	assert_contains "$output" "refusing to send the credentials for '$FAULT_PROXY_HOST' to the token realm 'http://localhost:$tport/token' over plain http"
	# stored credentials (as a login at the registry itself leaves them) are not sent either
	printf '%s' "$REGISTRY_PASS" | run_kiln_stdin login -u "$REGISTRY_USER" --password-stdin "$REGISTRY_HOST"
	jq --arg p "$FAULT_PROXY_HOST" --arg r "$REGISTRY_HOST" '.auths[$p] = .auths[$r]' \
		"$DOCKER_CONFIG/config.json" >"$BATS_TEST_TMPDIR/c" && mv "$BATS_TEST_TMPDIR/c" "$DOCKER_CONFIG/config.json"
	: >"$REGISTRY_TOKEN_LOG"
	run_kiln 1 pull "$FAULT_PROXY_HOST/team/base:1"
	assert_contains "$output" "over plain http: a realm on another host must be https"
	# the token server never saw the user
	! grep -q '"user": "kiln-user"' "$REGISTRY_TOKEN_LOG"
	[[ "$output" != *"$REGISTRY_PASS"* ]]
	# anonymous, the same registry still works (nothing secret to protect)
	DOCKER_CONFIG="$BATS_TEST_TMPDIR/empty" run_kiln pull -q "$FAULT_PROXY_HOST/team/base:1"
	# and the registry's own host over plain http keeps working with credentials
	run_kiln pull -q "$REGISTRY_HOST/team/base:1"
	grep -q '"user": "kiln-user"' "$REGISTRY_TOKEN_LOG"
}
