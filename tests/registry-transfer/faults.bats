#!/usr/bin/env bats
# kiln pull and push through the fault-injecting proxy: transient failures are retried, truncated
# downloads resumed, corrupt blobs never stored, credentials never sent to another host.

load helpers

setup() {
	skip_unless skopeo
	skip_unless docker-registry
	kiln_setup_root
	export KILN_REGISTRY_RETRY_DELAY_MS=50
}

teardown() {
	registry_stop
}

# blob_gets LOG: "status" of every GET of a blob in the proxy log, one per line.
blob_gets() {
	jq -r 'select(.method == "GET" and (.path | test("/blobs/sha256:"))) | "\(.status) \(.action)"' "$1"
}

@test "500s, 429 and connection resets on blobs and manifests are retried and the pull succeeds" {
	registry_start open
	seed_image "$REGISTRY_HOST/team/base:1" --layers 3
	registry_fault_proxy_start \
		"GET /manifests/ 503 count=1" \
		"GET /blobs/sha256: 500 count=2" \
		"GET /blobs/sha256: reset count=2" \
		"GET /blobs/sha256: 429 count=1"
	run_kiln pull "$FAULT_PROXY_HOST/team/base:1"
	assert_contains "$output" "Digest: $SEED_DIGEST"
	[ "$(grep -c ': Pull complete$' <<<"$output")" -eq 3 ]
	[ "$(blob_gets "$FAULT_PROXY_LOG" | grep -c '^500 ')" -eq 2 ]
	[ "$(blob_gets "$FAULT_PROXY_LOG" | grep -c ' reset$')" -eq 2 ]
	run_kiln fsck
}

@test "a truncated blob download is resumed with a Range request (206)" {
	registry_start open
	seed_image "$REGISTRY_HOST/team/big:1" --layers 1 --big-mib 8
	registry_fault_proxy_start "GET /blobs/sha256: truncate count=2"
	run_kiln pull "$FAULT_PROXY_HOST/team/big:1"
	assert_contains "$output" "Digest: $SEED_DIGEST"
	blob_gets "$FAULT_PROXY_LOG" | sed 's/^/# /' >&3
	[ "$(blob_gets "$FAULT_PROXY_LOG" | grep -c ' truncate$')" -eq 2 ]
	[ "$(blob_gets "$FAULT_PROXY_LOG" | grep -c '^206 ')" -ge 1 ]
	run_kiln fsck
}

@test "without Range support a truncated download restarts from zero and still verifies" {
	registry_start open
	seed_image "$REGISTRY_HOST/team/big:1" --layers 1 --big-mib 4
	registry_fault_proxy_start "GET /blobs/sha256: truncate count=1" "GET /blobs/sha256: norange"
	run_kiln pull "$FAULT_PROXY_HOST/team/big:1"
	assert_contains "$output" "Digest: $SEED_DIGEST"
	[ "$(blob_gets "$FAULT_PROXY_LOG" | grep -c '^206 ')" -eq 0 ]
	run_kiln fsck
}

@test "a blob whose bytes do not match its digest is never stored" {
	registry_start open
	seed_image "$REGISTRY_HOST/team/base:1" --layers 2
	bad=$(remote_raw "$REGISTRY_HOST/team/base:1" | jq -r '.layers[1].digest')
	registry_fault_proxy_start "GET /blobs/$bad corrupt"
	run_kiln 1 pull "$FAULT_PROXY_HOST/team/base:1"
	assert_contains "$output" "$bad"
	assert_contains "$output" "digest"
	[ ! -e "$KILN_TEST_ROOT/blobs/sha256/${bad#sha256:}" ]
	# No name points at a half-pulled image and the store is consistent.
	[ -z "$(store_manifest_digest "$FAULT_PROXY_HOST/team/base:1")" ]
	run_kiln fsck
	# Leftover temp files are gone once the command ended.
	[ -z "$(find "$KILN_TEST_ROOT/tmp" -type f 2>/dev/null)" ]
}

@test "blob redirects to another host never carry the Authorization header" {
	registry_start htpasswd
	seed_image "$REGISTRY_HOST/team/base:1" --layers 2
	registry_fault_proxy_start "GET /blobs/sha256: redirect"
	export DOCKER_CONFIG="$BATS_TEST_TMPDIR/docker"
	mkdir -p "$DOCKER_CONFIG"
	printf '%s' "$REGISTRY_PASS" | "$KILN" --root "$KILN_TEST_ROOT" login -u "$REGISTRY_USER" --password-stdin "$FAULT_PROXY_HOST"
	run_kiln pull "$FAULT_PROXY_HOST/team/base:1"
	assert_contains "$output" "Digest: $SEED_DIGEST"
	# The redirect target served the blobs (config + 2 layers), never with credentials.
	[ "$(wc -l <"$FAULT_REDIRECT_LOG")" -ge 3 ]
	[ "$(jq -r .auth "$FAULT_REDIRECT_LOG" | sort -u)" = false ]
	# The registry itself did get them.
	jq -r 'select(.path | test("/manifests/")) | .auth' "$FAULT_PROXY_LOG" | grep -q true
	run_kiln fsck
}

@test "push: failed upload requests are retried and the image arrives intact" {
	registry_start open
	seed_image "$REGISTRY_HOST/src/app:1" --layers 3 --big-mib 40
	run_kiln pull -q "$REGISTRY_HOST/src/app:1"
	registry_fault_proxy_start \
		"POST /blobs/uploads/ 500 count=2" \
		"PATCH /blobs/uploads/ 500 count=1" \
		"PUT /blobs/uploads/ reset count=1" \
		"HEAD /blobs/ 503 count=1" \
		"PUT /manifests/ 500 count=1"
	run_kiln push "$REGISTRY_HOST/src/app:1" "$FAULT_PROXY_HOST/dst/app:1"
	assert_contains "$output" "1: digest: $SEED_DIGEST"
	# Every injected fault happened (and was survived).
	faults=$(jq -r 'select(.action != "forward") | "\(.method) \(.action) \(.path | test("/manifests/"))"' "$FAULT_PROXY_LOG" | sort -u)
	printf '%s\n' "$faults" | sed 's/^/# fault: /' >&3
	for f in "HEAD 503 false" "POST 500 false" "PATCH 500 false" "PUT reset false" "PUT 500 true"; do
		grep -qx "$f" <<<"$faults"
	done
	[ "sha256:$(remote_raw "$REGISTRY_HOST/dst/app:1" | sha256sum | cut -d' ' -f1)" = "$SEED_DIGEST" ]
	export KILN_TEST_ROOT="$BATS_TEST_TMPDIR/root2"
	run_kiln pull "$REGISTRY_HOST/dst/app:1"
	[ "$(grep -c ': Pull complete$' <<<"$output")" -eq 4 ]
}

@test "push: a failed PATCH chunk resumes from the session's Range instead of restarting" {
	registry_start open
	seed_image "$REGISTRY_HOST/src/big:1" --layers 0 --big-mib 70
	run_kiln pull -q "$REGISTRY_HOST/src/big:1"
	registry_fault_proxy_start \
		"PATCH /blobs/uploads/ 500 count=1" \
		"PATCH /blobs/uploads/ reset count=1"
	run_kiln push "$REGISTRY_HOST/src/big:1" "$FAULT_PROXY_HOST/dst/big:1"
	assert_contains "$output" "1: digest: $SEED_DIGEST"
	# One upload session per blob (config + the big layer): nothing restarted from scratch...
	[ "$(count_uploads "$FAULT_PROXY_LOG")" -eq 2 ]
	# ...the session was asked for its state (204 + Range) after each failed chunk.
	[ "$(jq -r 'select(.method == "GET" and (.path | test("/blobs/uploads/"))) | .status' "$FAULT_PROXY_LOG" | grep -c '^204$')" -eq 2 ]
	[ "sha256:$(remote_raw "$REGISTRY_HOST/dst/big:1" | sha256sum | cut -d' ' -f1)" = "$SEED_DIGEST" ]
	export KILN_TEST_ROOT="$BATS_TEST_TMPDIR/root2"
	run_kiln pull -q "$REGISTRY_HOST/dst/big:1"
	run_kiln fsck
}

@test "a manifest whose bytes do not match the digest asked for is refused" {
	registry_start open
	seed_image "$REGISTRY_HOST/team/base:1" --layers 1
	registry_fault_proxy_start "GET /manifests/ corrupt"
	run_kiln 1 pull "$FAULT_PROXY_HOST/team/base@$SEED_DIGEST"
	assert_contains "$output" "digest mismatch"
	assert_contains "$output" "$SEED_DIGEST"
	# By tag, the registry's Docker-Content-Digest header still exposes the corruption.
	run_kiln 1 pull "$FAULT_PROXY_HOST/team/base:1"
	assert_contains "$output" "digest mismatch"
	[ "$(jq '.manifests | length' "$KILN_TEST_ROOT/index.json")" -eq 0 ]
	[ -z "$(ls "$KILN_TEST_ROOT/blobs/sha256")" ]
}

@test "push: a 400 DIGEST_INVALID on a blob's final PUT is final: not retried, blob and error named" {
	registry_start open
	seed_image "$REGISTRY_HOST/src/app:1" --layers 1
	run_kiln pull -q "$REGISTRY_HOST/src/app:1"
	layer=$(remote_raw "$REGISTRY_HOST/src/app:1" | jq -r '.layers[0].digest')
	registry_fault_proxy_start \
		"PUT /blobs/uploads/.*digest=$layer 400 count=1 code=DIGEST_INVALID message=provided%20digest%20did%20not%20match%20uploaded%20content"
	run_kiln 1 push "$REGISTRY_HOST/src/app:1" "$FAULT_PROXY_HOST/dst/app:1"
	assert_contains "$output" "cannot push blob '$layer'"
	assert_contains "$output" "400 Bad Request: DIGEST_INVALID: provided digest did not match uploaded content"
	# one attempt: no second upload session for that blob, no second PUT
	[ "$(jq -r 'select(.method == "PUT") | .path' "$FAULT_PROXY_LOG" | grep -c "digest=$layer")" -eq 1 ]
	assert_contains "$(jq -r 'select(.method == "PUT") | .action' "$FAULT_PROXY_LOG")" "400"
	# the next push, with the registry honest again, completes
	run_kiln push "$REGISTRY_HOST/src/app:1" "$REGISTRY_HOST/dst/app:1"
	[ "sha256:$(remote_raw "$REGISTRY_HOST/dst/app:1" | sha256sum | cut -d' ' -f1)" = "$SEED_DIGEST" ]
}

@test "push: a manifest PUT answered 400 shows the registry's error body, JSON or not" {
	registry_start open
	seed_image "$REGISTRY_HOST/src/app:1" --layers 1
	run_kiln pull -q "$REGISTRY_HOST/src/app:1"
	registry_fault_proxy_start "PUT /manifests/ 400 code=MANIFEST_INVALID message=manifest%20invalid"
	run_kiln 1 push "$REGISTRY_HOST/src/app:1" "$FAULT_PROXY_HOST/dst/app:1"
	assert_contains "$output" "cannot push manifest '$SEED_DIGEST' as '1'"
	assert_contains "$output" "400 Bad Request: MANIFEST_INVALID: manifest invalid"
	[ "$(jq -r 'select(.method == "PUT" and (.path | test("/manifests/"))) | .action' "$FAULT_PROXY_LOG" | wc -l)" -eq 1 ]
	registry_stop
	registry_start open
	seed_image "$REGISTRY_HOST/src/app:1" --layers 1
	run_kiln pull -q "$REGISTRY_HOST/src/app:1"
	registry_fault_proxy_start "PUT /manifests/ 400 text=Bad%20Request%3A%20unknown%20media%20type"
	run_kiln 1 push "$REGISTRY_HOST/src/app:1" "$FAULT_PROXY_HOST/dst/app:1"
	assert_contains "$output" "400 Bad Request: Bad Request: unknown media type"
}

@test "pull: a 4xx on a blob is final and names the blob; 429 and 408 are still retried" {
	registry_start open
	seed_image "$REGISTRY_HOST/team/base:1" --layers 1
	layer=$(remote_raw "$REGISTRY_HOST/team/base:1" | jq -r '.layers[0].digest')
	registry_fault_proxy_start "GET /blobs/$layer 403 count=1 code=DENIED message=requested%20access%20to%20the%20resource%20is%20denied" \
		"GET /blobs/$layer 408 count=1" "GET /blobs/$layer 429 count=1"
	run_kiln 1 pull "$FAULT_PROXY_HOST/team/base:1"
	assert_contains "$output" "$layer"
	assert_contains "$output" "403 Forbidden: DENIED: requested access to the resource is denied"
	[ "$(blob_gets "$FAULT_PROXY_LOG" | grep -c '^403 ')" -eq 1 ]
	run_kiln fsck
	# the 408 and the 429 that follow are retried and the pull completes
	run_kiln pull "$FAULT_PROXY_HOST/team/base:1"
	assert_contains "$output" "Digest: $SEED_DIGEST"
	run_kiln fsck
}

@test "ADD <url> goes through the registry transport: retried, resumed, checksum checked as it streams" {
	registry_start open
	seed_image "$REGISTRY_HOST/team/base:1" --layers 1 --big-mib 2
	layer=$(remote_raw "$REGISTRY_HOST/team/base:1" | jq -r '.layers[-1].digest')
	registry_fault_proxy_start "GET /blobs/$layer 500 count=1" "GET /blobs/$layer truncate count=1"
	mkdir -p "$BATS_TEST_TMPDIR/ctx"
	printf 'FROM scratch\nADD --checksum=%s http://%s/v2/team/base/blobs/%s /layer.bin\n' \
		"$layer" "$FAULT_PROXY_HOST" "$layer" >"$BATS_TEST_TMPDIR/ctx/Dockerfile"
	run_kiln build -q -t addurl:1 "$BATS_TEST_TMPDIR/ctx"
	# the 500 was retried and the truncated answer resumed (or restarted), as for a blob pull
	[ "$(blob_gets "$FAULT_PROXY_LOG" | grep -c '^500 ')" -eq 1 ]
	[ "$(blob_gets "$FAULT_PROXY_LOG" | grep -c ' truncate$')" -eq 1 ]
	run_kiln fsck
	# a wrong --checksum names the URL and both digests; nothing is built
	printf 'FROM scratch\nADD --checksum=sha256:%064d http://%s/v2/team/base/blobs/%s /layer.bin\n' \
		0 "$FAULT_PROXY_HOST" "$layer" >"$BATS_TEST_TMPDIR/ctx/Dockerfile"
	run_kiln 1 build -q --no-cache -t addurl:2 "$BATS_TEST_TMPDIR/ctx"
	assert_contains "$output" "digest mismatch for 'http://$FAULT_PROXY_HOST/v2/team/base/blobs/$layer': expected sha256:$(printf '%064d' 0), got $layer"
	# a final 4xx is reported with the server's answer, not retried
	printf 'FROM scratch\nADD http://%s/v2/team/base/blobs/sha256:%064d /x\n' "$FAULT_PROXY_HOST" 1 >"$BATS_TEST_TMPDIR/ctx/Dockerfile"
	run_kiln 1 build -q --no-cache -t addurl:3 "$BATS_TEST_TMPDIR/ctx"
	assert_contains "$output" "failed to download 'http://$FAULT_PROXY_HOST/v2/team/base/blobs/sha256:$(printf '%064d' 1)'"
	assert_contains "$output" "404 Not Found: BLOB_UNKNOWN"
}
