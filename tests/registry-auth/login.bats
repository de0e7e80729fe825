#!/usr/bin/env bats
# kiln login / kiln logout against a real docker-registry in its three configurations.

load helpers

setup() {
	reg_auth_setup
}

teardown() {
	reg_auth_teardown
}

# login_cycle MODE: wrong password fails and leaves config.json alone; the right one is stored
# (base64, mode 0600, other fields kept); logout removes it.
login_cycle() {
	registry_start "$1"
	mkdir -p "$DOCKER_CONFIG"
	printf '{"auths":{"other.example":{"auth":"b3RoZXI6c2VjcmV0"}},"psFormat":"table {{.ID}}"}\n' >"$DOCKER_CONFIG/config.json"
	cp "$DOCKER_CONFIG/config.json" "$BATS_TEST_TMPDIR/before.json"

	run_kiln 1 login -u "$REGISTRY_USER" -p "wrong-$REGISTRY_PASS" "$REGISTRY_HOST"
	assert_contains "$output" "login to '$REGISTRY_HOST' failed"
	assert_contains "$output" "unauthorized"
	[[ "$output" != *"wrong-$REGISTRY_PASS"* ]]
	cmp "$DOCKER_CONFIG/config.json" "$BATS_TEST_TMPDIR/before.json"

	run_kiln login -u "$REGISTRY_USER" --password-stdin "$REGISTRY_HOST" <<<"$REGISTRY_PASS"
	assert_contains "$output" "Login Succeeded"
	[[ "$output" != *"$REGISTRY_PASS"* ]]
	assert_contains "$output" "warning: the password is stored unencrypted in '$DOCKER_CONFIG/config.json'"
	assert_equal "$(stat -c %a "$DOCKER_CONFIG/config.json")" 600
	assert_equal "$(jq -r --arg h "$REGISTRY_HOST" '.auths[$h].auth' "$DOCKER_CONFIG/config.json")" \
		"$(printf '%s:%s' "$REGISTRY_USER" "$REGISTRY_PASS" | base64 -w0)"
	assert_equal "$(jq -r '.auths["other.example"].auth' "$DOCKER_CONFIG/config.json")" b3RoZXI6c2VjcmV0
	assert_equal "$(jq -r '.psFormat' "$DOCKER_CONFIG/config.json")" "table {{.ID}}"

	run_kiln logout "$REGISTRY_HOST"
	assert_contains "$output" "Removing login credentials for $REGISTRY_HOST"
	assert_equal "$(jq -r --arg h "$REGISTRY_HOST" '.auths | has($h)' "$DOCKER_CONFIG/config.json")" false
	assert_equal "$(jq -r '.auths["other.example"].auth' "$DOCKER_CONFIG/config.json")" b3RoZXI6c2VjcmV0
	assert_equal "$(stat -c %a "$DOCKER_CONFIG/config.json")" 600

	run_kiln logout "$REGISTRY_HOST"
	assert_contains "$output" "Not logged in to $REGISTRY_HOST"
}

@test "htpasswd registry: wrong password fails cleanly, right one is stored, logout removes it" {
	login_cycle htpasswd
}

@test "token registry: wrong password fails cleanly, right one is stored, logout removes it" {
	login_cycle token
	# The login asked the token server with the credentials, not anonymously.
	grep -q '"user": "kiln-user"' "$REGISTRY_TOKEN_LOG"
}

@test "open registry: login succeeds and is stored (no auth needed), logout removes it" {
	registry_start open
	run_kiln login -u someone --password-stdin "$REGISTRY_HOST" <<<secret-pw
	assert_contains "$output" "Login Succeeded"
	assert_equal "$(jq -r --arg h "$REGISTRY_HOST" '.auths[$h].auth' "$DOCKER_CONFIG/config.json")" \
		"$(printf 'someone:secret-pw' | base64 -w0)"
	run_kiln logout "$REGISTRY_HOST"
	assert_equal "$(jq -r '.auths | length' "$DOCKER_CONFIG/config.json")" 0
}

@test "login creates DOCKER_CONFIG with a 0600 config.json; http:// prefixes are normalized" {
	registry_start htpasswd
	[ ! -e "$DOCKER_CONFIG" ]
	run_kiln login -u "$REGISTRY_USER" --password-stdin "http://$REGISTRY_HOST/" <<<"$REGISTRY_PASS"
	assert_equal "$(stat -c %a "$DOCKER_CONFIG/config.json")" 600
	assert_equal "$(jq -r '.auths | keys[]' "$DOCKER_CONFIG/config.json")" "$REGISTRY_HOST"
	run_kiln logout "https://$REGISTRY_HOST"
	assert_equal "$(jq -r '.auths | length' "$DOCKER_CONFIG/config.json")" 0
}

@test "logout removes every spelling of the registry docker wrote" {
	mkdir -p "$DOCKER_CONFIG"
	printf '{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},"http://reg.example:5000":{"auth":"dTpw"},"keep.example":{"auth":"dTpw"}}}' >"$DOCKER_CONFIG/config.json"
	run_kiln logout
	assert_contains "$output" "Removing login credentials for docker.io"
	run_kiln logout reg.example:5000
	assert_equal "$(jq -c '.auths | keys' "$DOCKER_CONFIG/config.json")" '["keep.example"]'
}

@test "stored credentials are used: kiln login is not needed twice, wrong stored ones fail clearly" {
	registry_start token
	push_test_image team/app:1
	run_kiln login -u "$REGISTRY_USER" --password-stdin "$REGISTRY_HOST" <<<"$REGISTRY_PASS"
	# A push-scope request needs the stored credentials (anonymous gets pull only).
	run "$REG_TOOL" head --push "$REGISTRY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	assert_contains "$output" "status 200"
	grep -q '"scopes": \["repository:team/app:pull,push"\], "granted": \[{"type": "repository", "name": "team/app", "actions": \["pull", "push"\]}\]' "$REGISTRY_TOKEN_LOG"
}

@test "usage errors: missing registry, --password with --password-stdin, no terminal" {
	run_kiln 2 login
	assert_contains "$output" "a registry is required"
	run_kiln 2 login -u a -p b --password-stdin r.example
	assert_contains "$output" "mutually exclusive"
	run_kiln 2 login --password-stdin r.example
	assert_contains "$output" "--password-stdin needs --username"
	run_kiln 2 login --tls-verify=maybe r.example
	assert_contains "$output" "invalid value 'maybe'"
	# No -u, no terminal (setsid detaches the controlling tty): a clear error, not a hang.
	run timeout 20 setsid "$KILN" login r.example </dev/null
	[ "$status" -eq 1 ]
	assert_contains "$output" "no Username given and no terminal"
}

@test "-p warns that it is insecure and never echoes the password" {
	registry_start htpasswd
	run_kiln login -u "$REGISTRY_USER" -p "$REGISTRY_PASS" "$REGISTRY_HOST"
	assert_contains "$output" "insecure"
	assert_no_secret "$output" "$REGISTRY_USER" "$REGISTRY_PASS"
}

@test "a broken config.json is reported without its content, before contacting the registry" {
	mkdir -p "$DOCKER_CONFIG"
	printf '{"auths": {"x": {"auth": "c2VjcmV0LXRva2Vu"' >"$DOCKER_CONFIG/config.json"
	run_kiln 1 login -u u --password-stdin 127.0.0.1:1 <<<pw
	assert_contains "$output" "invalid docker config '$DOCKER_CONFIG/config.json'"
	[[ "$output" != *c2VjcmV0LXRva2Vu* ]]
}

@test "unreachable registry: clear error naming the host" {
	run_kiln 1 login -u u --password-stdin 127.0.0.1:1 <<<Kq7-unreachable-pw
	assert_contains "$output" "login to '127.0.0.1:1' failed"
	assert_contains "$output" "cannot connect to '127.0.0.1:1'"
	assert_no_secret "$output" u Kq7-unreachable-pw
}

@test "docker.io: login stores under https://index.docker.io/v1/ and short names use it" {
	registry_start htpasswd
	push_test_image library/alpine:3
	# Route Docker Hub's API host to the local registry (curl's --connect-to), plain HTTP.
	export KILN_REGISTRY_CONNECT_TO="registry-1.docker.io::$REGISTRY_HOST"
	export KILN_INSECURE_REGISTRIES=registry-1.docker.io
	run_kiln login -u "$REGISTRY_USER" --password-stdin docker.io <<<"$REGISTRY_PASS"
	assert_contains "$output" "Login Succeeded"
	assert_equal "$(jq -r '.auths | keys[]' "$DOCKER_CONFIG/config.json")" "https://index.docker.io/v1/"
	run "$REG_TOOL" get alpine:3 "/v2/library/alpine/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	assert_contains "$output" "sha256 $LAYER_SHA"
	assert_contains "$output" "base http://registry-1.docker.io"
	run_kiln logout
	assert_equal "$(jq -r '.auths | length' "$DOCKER_CONFIG/config.json")" 0
	run "$REG_TOOL" get alpine:3 "/v2/library/alpine/blobs/$LAYER_DIGEST"
	[ "$status" -eq 1 ]
	assert_contains "$output" "not logged in to 'docker.io' (kiln login docker.io)"
}

@test "a symlinked config.json is updated where it points" {
	registry_start htpasswd
	mkdir -p "$DOCKER_CONFIG" "$BATS_TEST_TMPDIR/dotfiles"
	printf '{"auths":{}}\n' >"$BATS_TEST_TMPDIR/dotfiles/config.json"
	ln -s "$BATS_TEST_TMPDIR/dotfiles/config.json" "$DOCKER_CONFIG/config.json"
	run_kiln login -u "$REGISTRY_USER" --password-stdin "$REGISTRY_HOST" <<<"$REGISTRY_PASS"
	[ -L "$DOCKER_CONFIG/config.json" ]
	assert_equal "$(jq -r '.auths | keys[]' "$BATS_TEST_TMPDIR/dotfiles/config.json")" "$REGISTRY_HOST"
	assert_equal "$(stat -c %a "$BATS_TEST_TMPDIR/dotfiles/config.json")" 600
}

@test "on a terminal, login asks for the user and the password, without echoing the password" {
	registry_start htpasswd
	run /usr/bin/python3 "$BATS_TEST_DIRNAME/pty-login.py" "$REGISTRY_USER" "$REGISTRY_PASS" \
		"$KILN" --root "$KILN_TEST_ROOT" login "$REGISTRY_HOST"
	printf '%s\n' "$output" | sed 's/^/#   /' >&3
	[ "$status" -eq 0 ]
	assert_contains "$output" "Username: $REGISTRY_USER"
	assert_contains "$output" "Password: "
	assert_contains "$output" "Login Succeeded"
	assert_contains "$output" "EXIT 0"
	[[ "$output" != *"$REGISTRY_PASS"* ]]
	assert_equal "$(jq -r --arg h "$REGISTRY_HOST" '.auths[$h].auth' "$DOCKER_CONFIG/config.json")" \
		"$(printf '%s:%s' "$REGISTRY_USER" "$REGISTRY_PASS" | base64 -w0)"
}
