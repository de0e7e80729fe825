#!/usr/bin/env bats
# A hostile registry serving documents that read two ways (the class of CVE-2021-41190): kiln
# refuses them as containerd does, names no image, and leaves a store `kiln fsck` accepts. The
# hostile documents come from the fault proxy's serve/ctype rules in front of a real registry.

load helpers

MT_M=application/vnd.oci.image.manifest.v1+json
MT_I=application/vnd.oci.image.index.v1+json
MT_DM=application/vnd.docker.distribution.manifest.v2+json

setup() {
	skip_unless skopeo
	skip_unless docker-registry
	kiln_setup_root
	export KILN_REGISTRY_RETRY_DELAY_MS=50
	registry_start open
}

teardown() {
	registry_stop
}

# refused MESSAGE: the pull through the proxy fails with MESSAGE, names nothing, fsck passes.
refused() {
	run_kiln 1 pull "$FAULT_PROXY_HOST/team/base:1"
	assert_contains "$output" "$1"
	[ "$(jq '.manifests | length' "$KILN_TEST_ROOT/index.json")" -eq 0 ]
	run_kiln fsck
}

@test "hostile registry: a manifest with both 'layers' and 'manifests' is refused" {
	seed_image "$REGISTRY_HOST/team/base:1" --layers 1
	remote_raw "$REGISTRY_HOST/team/base:1" | jq -c '. + {manifests: []}' >"$BATS_TEST_TMPDIR/doc"
	registry_fault_proxy_start "GET /manifests/1$ serve file=$BATS_TEST_TMPDIR/doc ctype=$MT_M"
	refused "ambiguous manifest: it has both 'manifests' and 'layers', so it reads as an index and as an image manifest"
	# the same shape served as an index
	registry_stop
	registry_start open
	seed_image "$REGISTRY_HOST/team/base:1" --layers 1
	remote_raw "$REGISTRY_HOST/team/base:1" | jq -c --arg mt "$MT_I" '. + {mediaType: $mt, manifests: []}' >"$BATS_TEST_TMPDIR/doc"
	registry_fault_proxy_start "GET /manifests/1$ serve file=$BATS_TEST_TMPDIR/doc ctype=$MT_I"
	refused "ambiguous manifest: it has both 'manifests' and 'layers'"
}

@test "hostile registry: mediaType field and Content-Type disagree" {
	seed_image "$REGISTRY_HOST/team/base:1" --layers 1
	registry_fault_proxy_start "GET /manifests/1$ ctype type=$MT_I"
	refused "ambiguous manifest: its mediaType is '$MT_M' but it was served or referenced as '$MT_I'"
}

@test "hostile registry: no mediaType field, Content-Type and shape disagree" {
	seed_image "$REGISTRY_HOST/team/base:1" --layers 1
	remote_raw "$REGISTRY_HOST/team/base:1" | jq -c 'del(.mediaType)' >"$BATS_TEST_TMPDIR/doc"
	registry_fault_proxy_start "GET /manifests/1$ serve file=$BATS_TEST_TMPDIR/doc ctype=$MT_I"
	refused "ambiguous manifest: it was served or referenced as '$MT_I' but it is shaped as an image manifest"
}

@test "hostile registry: an index whose mediaType says image manifest is refused" {
	seed_image "$REGISTRY_HOST/team/base:1" --platforms linux/amd64,linux/arm64/v8
	remote_raw "$REGISTRY_HOST/team/base:1" | jq -c --arg mt "$MT_M" '.mediaType = $mt' >"$BATS_TEST_TMPDIR/doc"
	registry_fault_proxy_start "GET /manifests/1$ serve file=$BATS_TEST_TMPDIR/doc ctype=$MT_M"
	refused "ambiguous manifest: its mediaType is '$MT_M' but it is shaped as an index"
}

@test "hostile registry: an index entry's media type disagrees with the manifest it points at" {
	seed_image "$REGISTRY_HOST/team/base:1" --platforms linux/amd64,linux/arm64/v8
	remote_raw "$REGISTRY_HOST/team/base:1" | jq -c --arg mt "$MT_DM" '.manifests[].mediaType = $mt' >"$BATS_TEST_TMPDIR/doc"
	registry_fault_proxy_start "GET /manifests/1$ serve file=$BATS_TEST_TMPDIR/doc ctype=$MT_I"
	refused "its mediaType is '$MT_M' but it was served or referenced as '$MT_DM'"
}

@test "hostile registry: the same documents served honestly pull, and fsck passes" {
	seed_image "$REGISTRY_HOST/team/base:1" --layers 2
	remote_raw "$REGISTRY_HOST/team/base:1" >"$BATS_TEST_TMPDIR/doc"
	# served with a generic Content-Type, as some registries do: the document decides
	registry_fault_proxy_start "GET /manifests/1$ serve file=$BATS_TEST_TMPDIR/doc ctype=application/json"
	run_kiln pull "$FAULT_PROXY_HOST/team/base:1"
	assert_contains "$output" "Digest: $SEED_DIGEST"
	run_kiln fsck
	run_kiln pull "$REGISTRY_HOST/team/base:1"
	run_kiln fsck
}
