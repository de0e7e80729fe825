#!/usr/bin/env bats
# Docker credential helpers (credsStore / credHelpers) with a fake docker-credential-test on PATH.

load helpers

setup() {
	reg_auth_setup
	mkdir -p "$BATS_TEST_TMPDIR/bin" "$BATS_TEST_TMPDIR/store" "$DOCKER_CONFIG"
	export HELPER_LOG="$BATS_TEST_TMPDIR/helper.log" HELPER_STORE="$BATS_TEST_TMPDIR/store"
	: >"$HELPER_LOG"
	# The fake helper speaks the docker-credential-helpers protocol and records every call
	# (action and stdin) in $HELPER_LOG.
	cat >"$BATS_TEST_TMPDIR/bin/docker-credential-test" <<-'SH'
	#!/bin/bash
	input=$(cat)
	printf '%s %s\n' "$1" "$input" >>"$HELPER_LOG"
	case "$1" in
	get)
		f="$HELPER_STORE/$(printf '%s' "$input" | sha256sum | cut -c1-16)"
		if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
	store)
		url=$(printf '%s' "$input" | jq -r .ServerURL)
		printf '%s' "$input" >"$HELPER_STORE/$(printf '%s' "$url" | sha256sum | cut -c1-16)" ;;
	erase)
		f="$HELPER_STORE/$(printf '%s' "$input" | sha256sum | cut -c1-16)"
		[ -f "$f" ] || { echo "credentials not found in native keychain"; exit 1; }
		rm -f "$f" ;;
	*) exit 2 ;;
	esac
	SH
	chmod +x "$BATS_TEST_TMPDIR/bin/docker-credential-test"
	export PATH="$BATS_TEST_TMPDIR/bin:$PATH"
}

teardown() {
	reg_auth_teardown
}

# helper_put SERVER USER SECRET: stores an entry directly in the fake helper's store.
helper_put() {
	jq -nc --arg s "$1" --arg u "$2" --arg p "$3" '{ServerURL:$s,Username:$u,Secret:$p}' \
		>"$HELPER_STORE/$(printf '%s' "$1" | sha256sum | cut -c1-16)"
}

@test "credsStore: login stores through the helper, pulls use it, logout erases it" {
	registry_start token
	push_test_image team/app:1
	printf '{"credsStore":"test"}\n' >"$DOCKER_CONFIG/config.json"

	run_kiln login -u "$REGISTRY_USER" --password-stdin "$REGISTRY_HOST" <<<"$REGISTRY_PASS"
	assert_contains "$output" "Login Succeeded"
	[[ "$output" != *unencrypted* ]]
	grep -q "^store {\"ServerURL\":\"$REGISTRY_HOST\",\"Username\":\"$REGISTRY_USER\",\"Secret\":\"$REGISTRY_PASS\"}" "$HELPER_LOG"
	# Nothing secret went into config.json.
	! grep -q "$(printf '%s:%s' "$REGISTRY_USER" "$REGISTRY_PASS" | base64 -w0)" "$DOCKER_CONFIG/config.json"
	assert_equal "$(jq -r .credsStore "$DOCKER_CONFIG/config.json")" test

	# The transport asks the helper ("get" with the host on stdin) and gets push access.
	: >"$REGISTRY_TOKEN_LOG"
	run "$REG_TOOL" head --push "$REGISTRY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	assert_contains "$output" "status 200"
	grep -q "^get $REGISTRY_HOST\$" "$HELPER_LOG"
	grep -q '"user": "kiln-user", "scopes": \["repository:team/app:pull,push"\]' "$REGISTRY_TOKEN_LOG"

	run_kiln logout "$REGISTRY_HOST"
	grep -q "^erase $REGISTRY_HOST\$" "$HELPER_LOG"
	[ -z "$(ls "$HELPER_STORE")" ]
}

@test "credHelpers for the host win over auths in config.json" {
	registry_start htpasswd
	push_test_image team/app:1
	helper_put "$REGISTRY_HOST" "$REGISTRY_USER" "$REGISTRY_PASS"
	jq -n --arg h "$REGISTRY_HOST" '{auths: {($h): {auth: ("kiln-user:wrong" | @base64)}}, credHelpers: {($h): "test"}}' \
		>"$DOCKER_CONFIG/config.json"
	run "$REG_TOOL" head "$REGISTRY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	assert_contains "$output" "status 200"
	grep -q "^get $REGISTRY_HOST\$" "$HELPER_LOG"
}

@test "a helper that knows nothing falls back to auths; helpers for other hosts are not asked" {
	registry_start htpasswd
	push_test_image team/app:1
	jq -n --arg h "$REGISTRY_HOST" --arg a "$(printf '%s:%s' "$REGISTRY_USER" "$REGISTRY_PASS" | base64 -w0)" \
		'{auths: {($h): {auth: $a}}, credHelpers: {"other.example": "nonexistent"}}' >"$DOCKER_CONFIG/config.json"
	run "$REG_TOOL" head "$REGISTRY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	assert_contains "$output" "status 200"

	jq -n --arg h "$REGISTRY_HOST" --arg a "$(printf '%s:%s' "$REGISTRY_USER" "$REGISTRY_PASS" | base64 -w0)" \
		'{auths: {($h): {auth: $a}}, credsStore: "test"}' >"$DOCKER_CONFIG/config.json"
	run "$REG_TOOL" head "$REGISTRY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	grep -q "^get $REGISTRY_HOST\$" "$HELPER_LOG"
}

@test "an identity token from the helper is exchanged with an OAuth2 refresh_token grant" {
	registry_start token
	push_test_image team/app:1
	helper_put "$REGISTRY_HOST" "<token>" "refresh-$REGISTRY_PASS"
	printf '{"credsStore":"test"}\n' >"$DOCKER_CONFIG/config.json"
	: >"$REGISTRY_TOKEN_LOG"
	run "$REG_TOOL" head --push "$REGISTRY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	assert_contains "$output" "status 200"
	grep -q '"method": "POST", "path": "/token", "user": "kiln-user", "scopes": \["repository:team/app:pull,push"\]' "$REGISTRY_TOKEN_LOG"
}

@test "login with a missing helper fails clearly and stores nothing" {
	registry_start htpasswd
	printf '{"credsStore":"missing"}\n' >"$DOCKER_CONFIG/config.json"
	run_kiln 1 login -u "$REGISTRY_USER" --password-stdin "$REGISTRY_HOST" <<<"$REGISTRY_PASS"
	assert_contains "$output" "docker-credential-missing"
	[[ "$output" != *"$REGISTRY_PASS"* ]]
	assert_equal "$(cat "$DOCKER_CONFIG/config.json")" '{"credsStore":"missing"}'
}

@test "a configured helper that cannot run is a clear error when the registry asks for auth" {
	registry_start token
	push_test_image team/app:1
	printf '{"credsStore":"missing"}\n' >"$DOCKER_CONFIG/config.json"
	run "$REG_TOOL" get "$REGISTRY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 1 ]
	assert_contains "$output" "getting the credentials for '$REGISTRY_HOST': cannot run credential helper 'docker-credential-missing'"
	# An open registry never asks, so the broken helper does not matter there.
	registry_stop
	registry_start open
	push_test_image team/app:1
	run "$REG_TOOL" get "$REGISTRY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	assert_contains "$output" "sha256 $LAYER_SHA"
}

@test "a helper that exits without reading its input fails cleanly (no SIGPIPE death)" {
	registry_start token
	push_test_image team/app:1
	printf '#!/bin/sh\nexit 3\n' >"$BATS_TEST_TMPDIR/bin/docker-credential-deaf"
	chmod +x "$BATS_TEST_TMPDIR/bin/docker-credential-deaf"
	printf '{"credsStore":"deaf"}\n' >"$DOCKER_CONFIG/config.json"
	for i in 1 2 3; do
		run "$REG_TOOL" get "$REGISTRY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
		[ "$status" -eq 1 ]
		assert_contains "$output" "credential helper 'docker-credential-deaf' failed (exit status 3)"
	done
}
