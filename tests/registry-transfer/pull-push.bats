#!/usr/bin/env bats
# kiln pull and kiln push against a real docker-registry (open configuration), judged by skopeo.

load helpers

setup() {
	skip_unless skopeo
	skip_unless docker-registry
	kiln_setup_root
	registry_start open
}

teardown() {
	registry_stop
}

@test "pull an image pushed by skopeo: per-layer lines, digest, name, blobs identical" {
	seed_image "$REGISTRY_HOST/team/base:1" --layers 3
	run_kiln pull "$REGISTRY_HOST/team/base:1"
	assert_contains "$output" "1: Pulling from team/base"
	[ "$(grep -c ': Pull complete$' <<<"$output")" -eq 3 ]
	assert_contains "$output" "Digest: $SEED_DIGEST"
	assert_contains "$output" "Status: Downloaded newer image for $REGISTRY_HOST/team/base:1"
	[ "$(store_manifest_digest "$REGISTRY_HOST/team/base:1")" = "$SEED_DIGEST" ]
	# Every layer the registry lists is in the store with the right bytes.
	for l in $(remote_raw "$REGISTRY_HOST/team/base:1" | jq -r '.layers[].digest'); do
		[ "sha256:$(store_blob "$l" | sha256sum | cut -d' ' -f1)" = "$l" ]
	done
	# skopeo reads kiln's store as an OCI layout and finds the same image.
	run skopeo inspect --raw "oci:$KILN_TEST_ROOT:$REGISTRY_HOST/team/base:1"
	[ "$status" -eq 0 ]
	[ "sha256:$(printf '%s' "$output" | sha256sum | cut -d' ' -f1)" = "$SEED_DIGEST" ]

	# Again: nothing is downloaded.
	run_kiln pull "$REGISTRY_HOST/team/base:1"
	[ "$(grep -c ': Already exists$' <<<"$output")" -eq 3 ]
	assert_contains "$output" "Status: Image is up to date for $REGISTRY_HOST/team/base:1"
	run_kiln pull -q "$REGISTRY_HOST/team/base:1"
	assert_equal "$output" "$REGISTRY_HOST/team/base:1"
}

@test "pull by digest verifies it; a missing tag fails with the registry's error code" {
	seed_image "$REGISTRY_HOST/team/base:1" --layers 1
	run_kiln pull -q "$REGISTRY_HOST/team/base@$SEED_DIGEST"
	assert_equal "$output" "$REGISTRY_HOST/team/base@$SEED_DIGEST"
	[ "$(store_manifest_digest "$REGISTRY_HOST/team/base@$SEED_DIGEST")" = "$SEED_DIGEST" ]

	run_kiln 1 pull "$REGISTRY_HOST/team/base:nope"
	assert_contains "$output" "MANIFEST_UNKNOWN"
	assert_contains "$output" "nope"
	run_kiln 1 pull "$REGISTRY_HOST/team/base@sha256:0000000000000000000000000000000000000000000000000000000000000000"
	assert_contains "$output" "MANIFEST_UNKNOWN"
	run_kiln 1 pull "$REGISTRY_HOST/team/nothere:1"
	assert_contains "$output" "MANIFEST_UNKNOWN"
	assert_contains "$output" "team/nothere:1"
	run_kiln 2 pull
	run_kiln 1 pull "$REGISTRY_HOST/Team/base:1"
	assert_contains "$output" "invalid reference"
}

@test "pull a two-platform index: --platform picks the manifest, default is the host" {
	seed_image "$REGISTRY_HOST/team/multi:1" --platforms linux/amd64,linux/arm64/v8
	index_digest=$SEED_DIGEST
	run_kiln pull --platform linux/arm64 "$REGISTRY_HOST/team/multi:1"
	assert_contains "$output" "Digest: $index_digest"
	[ "$(store_config "$REGISTRY_HOST/team/multi:1" | jq -r .architecture)" = arm64 ]
	[ "$(store_config "$REGISTRY_HOST/team/multi:1" | jq -r '.config.Labels["kiln.test.platform"]')" = linux/arm64/v8 ]
	arm_manifest=$(remote_raw "$REGISTRY_HOST/team/multi:1" | jq -r '.manifests[] | select(.platform.architecture == "arm64") | .digest')
	[ "$(store_manifest_digest "$REGISTRY_HOST/team/multi:1")" = "$arm_manifest" ]
	# The index itself is kept as a blob.
	[ -f "$KILN_TEST_ROOT/blobs/sha256/${index_digest#sha256:}" ]

	run_kiln pull --platform linux/amd64 "$REGISTRY_HOST/team/multi:1"
	[ "$(store_config "$REGISTRY_HOST/team/multi:1" | jq -r .architecture)" = amd64 ]
	# Without --platform, the host's: the machine kiln runs on (KILN_HOST_MACHINE when kiln
	# runs under QEMU user emulation, which reports the emulated machine).
	host=""
	case "${KILN_HOST_MACHINE:-$(uname -m)}" in
	x86_64) host=amd64 ;;
	aarch64) host=arm64 ;;
	esac
	if [ -n "$host" ]; then
		rm -rf "$KILN_TEST_ROOT"
		run_kiln pull "$REGISTRY_HOST/team/multi:1"
		[ "$(store_config "$REGISTRY_HOST/team/multi:1" | jq -r .architecture)" = "$host" ]
	fi
	run_kiln 1 pull --platform linux/s390x "$REGISTRY_HOST/team/multi:1"
	assert_contains "$output" "no manifest for platform 'linux/s390x'"
	assert_contains "$output" "linux/amd64, linux/arm64)"
	run_kiln 1 pull --platform bogus "$REGISTRY_HOST/team/multi:1"
	assert_contains "$output" "invalid platform 'bogus'"
}

@test "--platform on a single-platform image must match its config" {
	seed_image "$REGISTRY_HOST/team/arm:1" --platforms linux/arm64/v8
	run_kiln 1 pull --platform linux/amd64 "$REGISTRY_HOST/team/arm:1"
	assert_contains "$output" "does not match the requested platform: wanted linux/amd64, image is linux/arm64"
	[ -z "$(store_manifest_digest "$REGISTRY_HOST/team/arm:1")" ]
	run_kiln pull --platform linux/arm64 "$REGISTRY_HOST/team/arm:1"
	[ "$(store_config "$REGISTRY_HOST/team/arm:1" | jq -r .architecture)" = arm64 ]
	# Without --platform, a single-platform image is taken as it is (as docker does).
	rm -rf "$KILN_TEST_ROOT"
	run_kiln pull -q "$REGISTRY_HOST/team/arm:1"
}

@test "push with kiln, pull with skopeo: identical manifest, config and layers" {
	seed_image "$REGISTRY_HOST/src/app:1" --layers 4 --files 20
	run_kiln pull -q "$REGISTRY_HOST/src/app:1"
	src="$REGISTRY_HOST/src/app:1"
	# A fresh registry: nothing to mount from, everything uploaded.
	registry_stop
	registry_start open "$BATS_TEST_TMPDIR/registry2"
	run_kiln push --digestfile "$BATS_TEST_TMPDIR/digest" "$src" "$REGISTRY_HOST/dst/app:2"
	assert_contains "$output" "The push refers to repository [$REGISTRY_HOST/dst/app]"
	[ "$(grep -c ': Pushed$' <<<"$output")" -eq 4 ]
	assert_contains "$output" "2: digest: $SEED_DIGEST size: "
	assert_equal "$(cat "$BATS_TEST_TMPDIR/digest")" "$SEED_DIGEST"
	[ "sha256:$(remote_raw "$REGISTRY_HOST/dst/app:2" | sha256sum | cut -d' ' -f1)" = "$SEED_DIGEST" ]
	skopeo copy -q --src-tls-verify=false "docker://$REGISTRY_HOST/dst/app:2" "oci:$BATS_TEST_TMPDIR/out:x"
	run skopeo inspect "oci:$BATS_TEST_TMPDIR/out:x"
	[ "$status" -eq 0 ]
	[ "$(jq -r .Architecture <<<"$output")" = amd64 ]
	[ "$(jq -r '.Layers | length' <<<"$output")" = 4 ]
	# umoci can unpack what came back (the layers are real, verified tars).
	if command -v umoci >/dev/null; then
		umoci raw unpack --rootless --image "$BATS_TEST_TMPDIR/out:x" "$BATS_TEST_TMPDIR/rootfs" 2>/dev/null
		[ "$(cat "$BATS_TEST_TMPDIR/rootfs/layer3/f19")" = "kiln linux/amd64 layer 3 file 19" ]
	fi
}

@test "round trip: kiln push, kiln pull into a fresh store gives the same digests" {
	seed_image "$REGISTRY_HOST/src/app:1" --layers 5
	run_kiln pull -q "$REGISTRY_HOST/src/app:1"
	config=$(store_config "$REGISTRY_HOST/src/app:1" | sha256sum | cut -d' ' -f1)
	run_kiln push "$REGISTRY_HOST/src/app:1" "$REGISTRY_HOST/other/app:1"
	export KILN_TEST_ROOT="$BATS_TEST_TMPDIR/root2"
	run_kiln pull "$REGISTRY_HOST/other/app:1"
	[ "$(grep -c ': Pull complete$' <<<"$output")" -eq 5 ]
	[ "$(store_manifest_digest "$REGISTRY_HOST/other/app:1")" = "$SEED_DIGEST" ]
	[ "$(store_config "$REGISTRY_HOST/other/app:1" | sha256sum | cut -d' ' -f1)" = "$config" ]
}

@test "cross-repository mount: blobs pulled from one repo are mounted into another" {
	seed_image "$REGISTRY_HOST/team/base:1" --layers 3
	run_kiln pull -q "$REGISTRY_HOST/team/base:1"
	jq -e --arg d "$(store_manifest_digest "$REGISTRY_HOST/team/base:1")" 'has($d)' "$KILN_TEST_ROOT/registry-sources.json"
	registry_fault_proxy_start
	# Through the proxy the registry is another host: record sources for it as well.
	run_kiln pull -q "$FAULT_PROXY_HOST/team/base:1"
	: >"$FAULT_PROXY_LOG"
	run_kiln push "$FAULT_PROXY_HOST/team/base:1" "$FAULT_PROXY_HOST/team/app:1"
	[ "$(grep -c ': Mounted from team/base$' <<<"$output")" -eq 3 ]
	! grep -q ': Pushed$' <<<"$output"
	[ "$(count_uploads "$FAULT_PROXY_LOG")" -eq 0 ]
	# Every blob, the config included, was mounted: 201 Created on the mount request.
	[ "$(jq -r 'select(.method == "POST" and (.path | contains("mount="))) | .status' "$FAULT_PROXY_LOG" | grep -c '^201$')" -eq 4 ]
	[ "sha256:$(remote_raw "$REGISTRY_HOST/team/app:1" | sha256sum | cut -d' ' -f1)" = "$SEED_DIGEST" ]
}

@test "pushing an unchanged image again uploads no blob" {
	seed_image "$REGISTRY_HOST/src/app:1" --layers 3
	run_kiln pull -q "$REGISTRY_HOST/src/app:1"
	registry_fault_proxy_start
	run_kiln push "$REGISTRY_HOST/src/app:1" "$FAULT_PROXY_HOST/dst/app:1"
	[ "$(grep -c ': Pushed$' <<<"$output")" -eq 3 ]
	[ "$(count_uploads "$FAULT_PROXY_LOG")" -eq 4 ] # 3 layers + config
	: >"$FAULT_PROXY_LOG"
	run_kiln push "$REGISTRY_HOST/src/app:1" "$FAULT_PROXY_HOST/dst/app:1"
	[ "$(grep -c ': Layer already exists$' <<<"$output")" -eq 3 ]
	! grep -q ': Pushed$' <<<"$output"
	[ "$(count_uploads "$FAULT_PROXY_LOG")" -eq 0 ]
	[ "$(jq -r 'select(.method == "HEAD") | .path' "$FAULT_PROXY_LOG" | grep -c '/blobs/')" -eq 4 ]
}

@test "a blob above 32 MiB is pushed in chunks and comes back intact" {
	seed_image "$REGISTRY_HOST/src/big:1" --layers 1 --big-mib 40
	run_kiln pull -q "$REGISTRY_HOST/src/big:1"
	registry_fault_proxy_start
	run_kiln push "$REGISTRY_HOST/src/big:1" "$FAULT_PROXY_HOST/dst/big:1"
	[ "$(jq -r 'select(.method == "PATCH") | .path' "$FAULT_PROXY_LOG" | wc -l)" -ge 2 ]
	skopeo copy -q --src-tls-verify=false "docker://$REGISTRY_HOST/dst/big:1" "oci:$BATS_TEST_TMPDIR/out:x"
	[ "sha256:$(remote_raw "$REGISTRY_HOST/dst/big:1" | sha256sum | cut -d' ' -f1)" = "$SEED_DIGEST" ]
}

@test "push --format docker converts the media types; skopeo reads it" {
	seed_image "$REGISTRY_HOST/src/app:1" --layers 2
	run_kiln pull -q "$REGISTRY_HOST/src/app:1"
	run_kiln push --format docker "$REGISTRY_HOST/src/app:1" "$REGISTRY_HOST/dst/app:d"
	raw=$(remote_raw "$REGISTRY_HOST/dst/app:d")
	[ "$(jq -r .mediaType <<<"$raw")" = application/vnd.docker.distribution.manifest.v2+json ]
	[ "$(jq -r .config.mediaType <<<"$raw")" = application/vnd.docker.container.image.v1+json ]
	[ "$(jq -r '.layers[0].mediaType' <<<"$raw")" = application/vnd.docker.image.rootfs.diff.tar.gzip ]
	skopeo copy -q --src-tls-verify=false "docker://$REGISTRY_HOST/dst/app:d" "oci:$BATS_TEST_TMPDIR/out:x"
	# And kiln pulls the Docker schema 2 manifest back.
	export KILN_TEST_ROOT="$BATS_TEST_TMPDIR/root2"
	run_kiln pull "$REGISTRY_HOST/dst/app:d"
	assert_contains "$output" "Digest: sha256:$(printf '%s' "$raw" | sha256sum | cut -d' ' -f1)"
	run_kiln 2 push --format v1 "$REGISTRY_HOST/src/app:1"
}

@test "push of an unknown image or without a destination fails clearly" {
	run_kiln 1 push nosuch:image "$REGISTRY_HOST/x/y:1"
	assert_contains "$output" "nosuch"
	run_kiln 2 push
}

@test "a Docker schema 1 manifest is refused with a clear message" {
	_registry_spawn "$BATS_TEST_TMPDIR/schema1.log" /usr/bin/python3 \
		"$KILN_SRC/tests/registry-transfer/schema1-server.py" --port-file "$BATS_TEST_TMPDIR/s1.port"
	_registry_wait_file "$BATS_TEST_TMPDIR/s1.port" 20
	run_kiln 1 pull "127.0.0.1:$(cat "$BATS_TEST_TMPDIR/s1.port")/old/image:1"
	assert_contains "$output" "Docker schema 1"
	assert_contains "$output" "not support"
	[ ! -d "$KILN_TEST_ROOT/blobs/sha256" ] || [ -z "$(ls "$KILN_TEST_ROOT/blobs/sha256")" ]
}

@test "a Docker manifest list (schema 2) is pulled for the requested platform" {
	$MKIMAGE "$BATS_TEST_TMPDIR/layout" --tag seed --platforms linux/amd64,linux/arm64/v8 >/dev/null
	skopeo copy -q --all --format v2s2 --dest-tls-verify=false "oci:$BATS_TEST_TMPDIR/layout:seed" \
		"docker://$REGISTRY_HOST/team/list:1"
	raw=$(remote_raw "$REGISTRY_HOST/team/list:1")
	[ "$(jq -r .mediaType <<<"$raw")" = application/vnd.docker.distribution.manifest.list.v2+json ]
	run_kiln pull --platform linux/arm64/v8 "$REGISTRY_HOST/team/list:1"
	assert_contains "$output" "Digest: sha256:$(printf '%s' "$raw" | sha256sum | cut -d' ' -f1)"
	[ "$(store_config "$REGISTRY_HOST/team/list:1" | jq -r .architecture)" = arm64 ]
	m=$(store_manifest_digest "$REGISTRY_HOST/team/list:1")
	[ "$(store_blob "$m" | jq -r .mediaType)" = application/vnd.docker.distribution.manifest.v2+json ]
	[ "$(jq -r --arg m "$m" '.manifests[] | select(.digest == $m) | .mediaType' "$KILN_TEST_ROOT/index.json")" = \
		application/vnd.docker.distribution.manifest.v2+json ]
}

@test "an image made by kiln import is pushed, read back by skopeo and umoci, and pulled again" {
	"$KILN_TESTDATA/base/make-rootfs.sh" "$BATS_TEST_TMPDIR/base" >/dev/null
	run_kiln import "$BATS_TEST_TMPDIR/base/rootfs.tar" kiln-test/busybox:latest
	run_kiln push kiln-test/busybox:latest "$REGISTRY_HOST/kiln-test/busybox:1"
	assert_contains "$output" ": Pushed"
	digest=$(sed -n 's/^1: digest: \(sha256:[0-9a-f]*\) size: [0-9]*$/\1/p' <<<"$output")
	[ -n "$digest" ]
	[ "sha256:$(remote_raw "$REGISTRY_HOST/kiln-test/busybox:1" | sha256sum | cut -d' ' -f1)" = "$digest" ]
	skopeo copy -q --src-tls-verify=false "docker://$REGISTRY_HOST/kiln-test/busybox:1" "oci:$BATS_TEST_TMPDIR/out:x"
	umoci raw unpack --rootless --image "$BATS_TEST_TMPDIR/out:x" "$BATS_TEST_TMPDIR/rootfs" 2>/dev/null
	cmp "$BATS_TEST_TMPDIR/rootfs/bin/busybox" /bin/busybox
	grep -q '^app:x:1000:' "$BATS_TEST_TMPDIR/rootfs/etc/passwd"
	id=$(store_config "docker.io/kiln-test/busybox:latest" | sha256sum | cut -d' ' -f1)
	export KILN_TEST_ROOT="$BATS_TEST_TMPDIR/root2"
	run_kiln pull "$REGISTRY_HOST/kiln-test/busybox:1"
	assert_contains "$output" "Digest: $digest"
	[ "$(store_config "$REGISTRY_HOST/kiln-test/busybox:1" | sha256sum | cut -d' ' -f1)" = "$id" ]
}

@test "--tls-verify: a self-signed registry is refused by default, reached with --tls-verify=false" {
	registry_tls_start
	run_kiln 1 pull "$TLS_HOST/team/app:1"
	assert_contains "$output" "--tls-verify=false"
	# Verification off: the TLS handshake succeeds and the registry's own answer comes back.
	run_kiln 1 pull --tls-verify=false "$TLS_HOST/team/app:1"
	assert_contains "$output" "NAME_UNKNOWN"
	run_kiln 2 pull --tls-verify=maybe "$TLS_HOST/team/app:1"
	run_kiln 1 push --tls-verify=false nosuch:1 "$TLS_HOST/team/app:1"
}

@test "push by image ID to a digest reference; a wrong digest is refused before any upload" {
	seed_image "$REGISTRY_HOST/src/app:1" --layers 1
	run_kiln pull -q "$REGISTRY_HOST/src/app:1"
	id=$(store_config "$REGISTRY_HOST/src/app:1" | sha256sum | cut -c1-12)
	run_kiln 1 push "$id" "$REGISTRY_HOST/dst/app@sha256:0000000000000000000000000000000000000000000000000000000000000000"
	assert_contains "$output" "but the manifest's digest is '$SEED_DIGEST'"
	run skopeo inspect --raw --tls-verify=false "docker://$REGISTRY_HOST/dst/app@$SEED_DIGEST"
	[ "$status" -ne 0 ]
	run_kiln push "$id" "$REGISTRY_HOST/dst/app@$SEED_DIGEST"
	assert_contains "$output" "digest: $SEED_DIGEST"
	[ "sha256:$(remote_raw "$REGISTRY_HOST/dst/app@$SEED_DIGEST" | sha256sum | cut -d' ' -f1)" = "$SEED_DIGEST" ]
}

@test "pull and push --progress rawjson: a vertex per layer, byte progress up to the size" {
	seed_image "$REGISTRY_HOST/team/big:1" --layers 1 --big-mib 3
	run timeout 300 "$KILN" --root "$KILN_TEST_ROOT" pull --progress rawjson "$REGISTRY_HOST/team/big:1"
	[ "$status" -eq 0 ]
	while IFS= read -r l; do jq -e . >/dev/null <<<"$l"; done <<<"$output"
	layers=$(remote_raw "$REGISTRY_HOST/team/big:1" | jq -r '.layers[].digest' | sort)
	assert_equal "$(jq -r 'select(.type == "vertex" and .status == "completed") | .id' <<<"$output" | sort)" "$layers"
	big=$(remote_raw "$REGISTRY_HOST/team/big:1" | jq -r '.layers | max_by(.size) | .digest + " " + (.size | tostring)')
	# progress of the big layer climbs, and never past its size
	jq -se --arg d "${big% *}" --argjson n "${big#* }" \
		'[.[] | select(.type == "progress" and .id == $d)] | length >= 2 and all(.total == $n and .current <= $n) and (map(.current) == (map(.current) | sort))' <<<"$output"
	jq -se '.[-1].type == "end" and .[-1].ok' <<<"$output"
	run timeout 300 "$KILN" --root "$KILN_TEST_ROOT" push --progress rawjson "$REGISTRY_HOST/team/big:1" "$REGISTRY_HOST/team/copy:1"
	[ "$status" -eq 0 ]
	assert_equal "$(jq -r 'select(.type == "vertex" and (.status == "completed" or .status == "cached")) | .id' <<<"$output" | sort)" "$layers"
}
