#!/usr/bin/env bats
# The transport against a real docker-registry behind the fault-injecting proxy: retries, resumed
# downloads, redirects that must not carry credentials, TLS verification, error messages.

load helpers

setup() {
	reg_auth_setup
}

teardown() {
	reg_auth_teardown
}

# store_login HOST: writes the registry's credentials for HOST into config.json.
store_login() {
	mkdir -p "$DOCKER_CONFIG"
	jq -n --arg h "$1" --arg a "$(printf '%s:%s' "$REGISTRY_USER" "$REGISTRY_PASS" | base64 -w0)" \
		'{auths: {($h): {auth: $a}}}' >"$DOCKER_CONFIG/config.json"
}

# proxy_count ACTION: how many requests the proxy answered with ACTION.
proxy_count() {
	jq -s --arg a "$1" '[.[] | select(.action == $a)] | length' "$FAULT_PROXY_LOG"
}

@test "loopback registries use plain HTTP; --tls-verify=true refuses to" {
	registry_start open
	push_test_image team/app:1
	run "$REG_TOOL" get "$REGISTRY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	assert_contains "$output" "sha256 $LAYER_SHA"
	assert_contains "$output" "base http://$REGISTRY_HOST"
	run "$REG_TOOL" get --tls-verify=true "$REGISTRY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 1 ]
	assert_contains "$output" "$REGISTRY_HOST"
}

@test "tls: a self-signed certificate fails verification clearly; --tls-verify=false and KILN_INSECURE_REGISTRIES connect" {
	registry_tls_start
	run_kiln 1 login -u user -p s3cret-pw "$TLS_HOST"
	assert_contains "$output" "tls certificate verification failed for '$TLS_HOST'"
	assert_contains "$output" "--tls-verify=false"
	[[ "$output" != *s3cret-pw* ]]
	[ ! -e "$DOCKER_CONFIG/config.json" ]

	run_kiln login --tls-verify=false -u user -p s3cret-pw "$TLS_HOST"
	assert_contains "$output" "Login Succeeded"
	run_kiln logout "$TLS_HOST"

	KILN_INSECURE_REGISTRIES="other.example,$TLS_HOST" run_kiln login -u user -p s3cret-pw "$TLS_HOST"
	assert_contains "$output" "Login Succeeded"
	run env KILN_INSECURE_REGISTRIES="${TLS_HOST%:*}" "$REG_TOOL" get --any-status "$TLS_HOST/x:1" /v2/
	[ "$status" -eq 0 ]
	assert_contains "$output" "base https://$TLS_HOST"
}

@test "tls: a CA from certs.d/<host:port>/*.crt is trusted, with verification on" {
	registry_tls_start
	mkdir -p "$BATS_TEST_TMPDIR/certs.d/$TLS_HOST"
	cp "$TLS_CERT" "$BATS_TEST_TMPDIR/certs.d/$TLS_HOST/ca.crt"
	KILN_CERTS_DIR="$BATS_TEST_TMPDIR/certs.d" run_kiln login --tls-verify=true -u user -p s3cret-pw "$TLS_HOST"
	assert_contains "$output" "Login Succeeded"
	# Another host's directory does not help.
	mv "$BATS_TEST_TMPDIR/certs.d/$TLS_HOST" "$BATS_TEST_TMPDIR/certs.d/127.0.0.1:1"
	KILN_CERTS_DIR="$BATS_TEST_TMPDIR/certs.d" run_kiln 1 login -u user -p s3cret-pw "$TLS_HOST"
	assert_contains "$output" "tls certificate verification failed for '$TLS_HOST'"
}

@test "blob redirects to another host: the body arrives, credentials never do" {
	registry_start token
	push_test_image team/app:1
	registry_fault_proxy_start --rule 'GET /v2/team/app/blobs/sha256: redirect'
	store_login "$FAULT_PROXY_HOST"
	run "$REG_TOOL" get "$FAULT_PROXY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	assert_contains "$output" "status 200"
	assert_contains "$output" "sha256 $LAYER_SHA"
	# The registry got the token; the other host got the request, without Authorization.
	assert_equal "$(jq -s '[.[] | select(.action == "redirect" and .auth == true)] | length' "$FAULT_PROXY_LOG")" 1
	assert_equal "$(jq -s 'length' "$FAULT_REDIRECT_LOG")" 1
	assert_equal "$(jq -s '[.[] | select(.auth == true)] | length' "$FAULT_REDIRECT_LOG")" 0
}

@test "redirects with Basic auth (htpasswd) do not leak the password either" {
	registry_start htpasswd
	push_test_image team/app:1
	registry_fault_proxy_start --rule 'GET /v2/team/app/blobs/sha256: redirect'
	store_login "$FAULT_PROXY_HOST"
	run "$REG_TOOL" get --resume "$FAULT_PROXY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	assert_contains "$output" "sha256 $LAYER_SHA"
	assert_equal "$(jq -s '[.[] | select(.auth == true)] | length' "$FAULT_REDIRECT_LOG")" 0
	assert_equal "$(jq -s 'length' "$FAULT_REDIRECT_LOG")" 1
}

@test "transient 500s and connection resets are retried with backoff" {
	registry_start open
	push_test_image team/app:1
	registry_fault_proxy_start --rule 'GET /v2/team/app/blobs/ 500 count=2' \
		--rule 'GET /v2/team/app/manifests/ reset count=2'
	run "$REG_TOOL" get "$FAULT_PROXY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	assert_contains "$output" "sha256 $LAYER_SHA"
	assert_equal "$(proxy_count 500)" 2
	run "$REG_TOOL" get --header "Accept: application/vnd.oci.image.manifest.v1+json" \
		"$FAULT_PROXY_HOST/team/app:1" /v2/team/app/manifests/1
	[ "$status" -eq 0 ]
	assert_contains "$output" "status 200"
	assert_equal "$(proxy_count reset)" 2
}

@test "a registry that keeps failing gives up after the retries with status, code and message" {
	registry_start open
	push_test_image team/app:1
	registry_fault_proxy_start --rule 'GET /v2/team/app/blobs/ 503'
	KILN_REGISTRY_RETRIES=2 run "$REG_TOOL" get "$FAULT_PROXY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 1 ]
	assert_contains "$output" "503 Service Unavailable: UNKNOWN: injected failure 503"
	assert_equal "$(proxy_count 503)" 3
}

@test "a truncated body is resumed with a Range request" {
	registry_start open
	push_test_image team/app:1
	registry_fault_proxy_start --rule 'GET /v2/team/app/blobs/ truncate count=1'
	run "$REG_TOOL" get --resume "$FAULT_PROXY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	assert_contains "$output" "sha256 $LAYER_SHA"
	assert_contains "$output" "status 206"
	assert_equal "$(proxy_count truncate)" 1
}

@test "a truncated body restarts from zero when the server ignores Range" {
	registry_start open
	push_test_image team/app:1
	registry_fault_proxy_start --rule 'GET /v2/team/app/blobs/ truncate count=1' --rule 'GET /v2/team/app/blobs/ norange'
	run "$REG_TOOL" get --resume --out "$BATS_TEST_TMPDIR/blob" "$FAULT_PROXY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	assert_contains "$output" "status 200"
	assert_contains "$output" "sha256 $LAYER_SHA"
	assert_equal "$(sha256sum <"$BATS_TEST_TMPDIR/blob" | cut -d' ' -f1)" "$LAYER_SHA"
}

@test "a stalled download times out and is resumed" {
	registry_start open
	push_test_image team/app:1
	registry_fault_proxy_start --rule 'GET /v2/team/app/blobs/ stall seconds=20 count=1'
	SECONDS=0
	KILN_REGISTRY_TIMEOUT=2 run "$REG_TOOL" get --resume "$FAULT_PROXY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	assert_contains "$output" "sha256 $LAYER_SHA"
	[ "$SECONDS" -lt 15 ]
}

@test "a slow but steady download is not cut off" {
	registry_start open
	push_test_image team/app:1
	registry_fault_proxy_start --rule 'GET /v2/team/app/manifests/ drip rate=200'
	KILN_REGISTRY_TIMEOUT=2 run "$REG_TOOL" get --header "Accept: application/vnd.oci.image.manifest.v1+json" \
		"$FAULT_PROXY_HOST/team/app:1" /v2/team/app/manifests/1
	[ "$status" -eq 0 ]
	assert_contains "$output" "status 200"
}

@test "registry errors name status, code and message" {
	registry_start open
	push_test_image team/app:1
	run "$REG_TOOL" get "$REGISTRY_HOST/team/app:1" /v2/team/app/manifests/nope
	[ "$status" -eq 1 ]
	assert_contains "$output" "404 Not Found: MANIFEST_UNKNOWN: manifest unknown"
	run "$REG_TOOL" get "$REGISTRY_HOST/team/nothing:1" /v2/team/nothing/tags/list
	[ "$status" -eq 1 ]
	assert_contains "$output" "NAME_UNKNOWN"
}

@test "token auth: anonymous pull works, push scope without login is refused clearly" {
	registry_start token
	push_test_image team/app:1
	run "$REG_TOOL" get "$REGISTRY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	assert_contains "$output" "sha256 $LAYER_SHA"
	grep -q '"user": "", "scopes": \["repository:team/app:pull"\]' "$REGISTRY_TOKEN_LOG"
	run "$REG_TOOL" req POST --push "$REGISTRY_HOST/team/app:1" /v2/team/app/blobs/uploads/
	[ "$status" -eq 1 ]
	assert_contains "$output" "not logged in to '$REGISTRY_HOST'"
	assert_contains "$output" "401 Unauthorized: UNAUTHORIZED"
	# Logged in, the same request gets a push token and starts an upload.
	store_login "$REGISTRY_HOST"
	run "$REG_TOOL" req POST --push "$REGISTRY_HOST/team/app:1" /v2/team/app/blobs/uploads/
	[ "$status" -eq 0 ]
	assert_contains "$output" "status 202"
	assert_contains "$output" "header Location: http://$REGISTRY_HOST/v2/team/app/blobs/uploads/"
}

@test "token auth: an expired token is renewed" {
	REGISTRY_TOKEN_ARGS="--expires-in 1" registry_start token
	push_test_image team/app:1
	store_login "$REGISTRY_HOST"
	: >"$REGISTRY_TOKEN_LOG"
	run "$REG_TOOL" get --push --repeat 3 --sleep-ms 1300 "$REGISTRY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	assert_contains "$output" "sha256 $LAYER_SHA"
	# One token per request: each had expired by the next one.
	assert_equal "$(grep -c '"user": "kiln-user"' "$REGISTRY_TOKEN_LOG")" 3
}

@test "token auth: a valid token is reused across requests" {
	registry_start token
	push_test_image team/app:1
	store_login "$REGISTRY_HOST"
	: >"$REGISTRY_TOKEN_LOG"
	run "$REG_TOOL" get --push --repeat 3 "$REGISTRY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	assert_equal "$(grep -c '"user": "kiln-user"' "$REGISTRY_TOKEN_LOG")" 1
}

@test "token auth: access_token responses, extra scopes for cross-repository mounts" {
	REGISTRY_TOKEN_ARGS="--field access_token" registry_start token
	push_test_image team/app:1
	store_login "$REGISTRY_HOST"
	run "$REG_TOOL" head --push --scope repository:team/base:pull "$REGISTRY_HOST/team/app:1" \
		"/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	assert_contains "$output" "status 200"
	assert_contains "$(cat "$REGISTRY_TOKEN_LOG")" '"scopes": ["repository:team/app:pull,push", "repository:team/base:pull"]'
}

@test "htpasswd: no credentials and wrong credentials fail clearly without echoing secrets" {
	registry_start htpasswd
	push_test_image team/app:1
	run "$REG_TOOL" get "$REGISTRY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 1 ]
	assert_contains "$output" "not logged in to '$REGISTRY_HOST' (kiln login $REGISTRY_HOST)"
	REGISTRY_PASS="wrong-Zq8x" store_login "$REGISTRY_HOST"
	run "$REG_TOOL" get "$REGISTRY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 1 ]
	assert_contains "$output" "401 Unauthorized"
	[[ "$output" != *wrong-Zq8x* ]]
	[[ "$output" != *"$(printf 'kiln-user:wrong-Zq8x' | base64 -w0)"* ]]
}

@test "token auth: wrong stored credentials fail clearly without echoing secrets" {
	registry_start token
	push_test_image team/app:1
	REGISTRY_PASS="wrong-Zq8x" store_login "$REGISTRY_HOST"
	run "$REG_TOOL" get "$REGISTRY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 1 ]
	assert_contains "$output" "refused the credentials"
	[[ "$output" != *wrong-Zq8x* ]]
}

@test "parallel requests on one client share one token and all arrive intact" {
	registry_start token
	push_test_image team/app:1
	store_login "$REGISTRY_HOST"
	registry_fault_proxy_start --rule 'GET /v2/team/app/blobs/ 500 count=3'
	store_login "$FAULT_PROXY_HOST"
	: >"$REGISTRY_TOKEN_LOG"
	run "$REG_TOOL" get --push --parallel 8 "$FAULT_PROXY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	assert_equal "$(printf '%s\n' "$output" | grep -c "^parallel 200 $LAYER_SHA\$")" 8
	assert_equal "$(grep -c '"user": "kiln-user"' "$REGISTRY_TOKEN_LOG")" 1
}

@test "token auth without anonymous access: a clear hint to log in" {
	REGISTRY_TOKEN_ARGS="--no-anonymous" registry_start token
	push_test_image team/app:1
	run "$REG_TOOL" get "$REGISTRY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 1 ]
	assert_contains "$output" "refused anonymous access (log in with 'kiln login $REGISTRY_HOST')"
	store_login "$REGISTRY_HOST"
	run "$REG_TOOL" get "$REGISTRY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	assert_contains "$output" "sha256 $LAYER_SHA"
}

@test "token auth: a cross-repository mount asks for pull on the source repository and mounts" {
	registry_start token
	push_test_image team/base:1
	store_login "$REGISTRY_HOST"
	: >"$REGISTRY_TOKEN_LOG"
	run "$REG_TOOL" req POST --push "$REGISTRY_HOST/team/app:1" \
		"/v2/team/app/blobs/uploads/?mount=$LAYER_DIGEST&from=team%2Fbase"
	[ "$status" -eq 0 ]
	assert_contains "$output" "status 201"
	assert_contains "$output" "header Location: http://$REGISTRY_HOST/v2/team/app/blobs/$LAYER_DIGEST"
	assert_contains "$(cat "$REGISTRY_TOKEN_LOG")" '"scopes": ["repository:team/app:pull,push", "repository:team/base:pull"]'
}

@test "a plain-HTTP registry that is not loopback needs KILN_INSECURE_REGISTRIES or --tls-verify=false" {
	registry_start open
	push_test_image team/app:1
	export KILN_REGISTRY_CONNECT_TO="insecure.example:443:$REGISTRY_HOST,insecure.example:80:$REGISTRY_HOST"
	run "$REG_TOOL" get "insecure.example/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 1 ]
	assert_contains "$output" "tls handshake with 'insecure.example:443' failed"
	assert_contains "$output" "KILN_INSECURE_REGISTRIES or --tls-verify=false"
	KILN_INSECURE_REGISTRIES="a.example, insecure.example" run "$REG_TOOL" get "insecure.example/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	assert_contains "$output" "sha256 $LAYER_SHA"
	assert_contains "$output" "base http://insecure.example"
	run "$REG_TOOL" get --tls-verify=false "insecure.example/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	assert_contains "$output" "base http://insecure.example"
	# An entry with another port does not match.
	KILN_INSECURE_REGISTRIES="insecure.example:5000" run "$REG_TOOL" get "insecure.example/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 1 ]
}

@test "Retry-After: a short one is waited for, a long one (rate limit) fails at once" {
	registry_start open
	push_test_image team/app:1
	registry_fault_proxy_start --rule 'GET /v2/team/app/blobs/ 503 retry_after=1 count=1' \
		--rule 'GET /v2/team/app/manifests/ 429 retry_after=3600'
	SECONDS=0
	KILN_REGISTRY_RETRY_DELAY_MS=0 run "$REG_TOOL" get "$FAULT_PROXY_HOST/team/app:1" "/v2/team/app/blobs/$LAYER_DIGEST"
	[ "$status" -eq 0 ]
	assert_contains "$output" "sha256 $LAYER_SHA"
	[ "$SECONDS" -ge 1 ]
	run "$REG_TOOL" get "$FAULT_PROXY_HOST/team/app:1" /v2/team/app/manifests/1
	[ "$status" -eq 1 ]
	assert_contains "$output" "429 Too Many Requests"
	assert_equal "$(proxy_count 429)" 1
}
