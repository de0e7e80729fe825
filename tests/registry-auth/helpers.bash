# Shared setup for the registry-auth tests.
load ../lib/helpers
load ../registry-lib/registry

REG_TOOL="$KILN_BUILD_DIR/tests/registry-auth/kiln-reg-tool"

# A private docker config per test; never the user's.
reg_auth_setup() {
	kiln_setup_root
	export DOCKER_CONFIG="$BATS_TEST_TMPDIR/docker-config"
	export HOME="$BATS_TEST_TMPDIR/home"
	mkdir -p "$HOME"
	export KILN_REGISTRY_RETRY_DELAY_MS=50
	unset KILN_INSECURE_REGISTRIES
}

reg_auth_teardown() {
	registry_stop
}

# make_test_image DIR: a small OCI layout (two layers) in DIR, tag "latest", built with umoci.
make_test_image() {
	local dir=$1 i
	umoci init --layout "$dir" >/dev/null
	umoci new --image "$dir:latest" >/dev/null
	for i in 1 2; do
		rm -rf "$BATS_TEST_TMPDIR/bundle"
		umoci unpack --rootless --image "$dir:latest" "$BATS_TEST_TMPDIR/bundle" >/dev/null
		head -c 200000 /dev/urandom >"$BATS_TEST_TMPDIR/bundle/rootfs/file$i"
		umoci repack --image "$dir:latest" "$BATS_TEST_TMPDIR/bundle" >/dev/null
	done
	rm -rf "$BATS_TEST_TMPDIR/bundle"
}

# push_test_image REPO:TAG: pushes the test image with skopeo to the running registry and sets
# LAYER_DIGEST (the largest layer) and LAYER_SHA (its hex).
push_test_image() {
	local img="$BATS_TEST_TMPDIR/oci"
	[ -d "$img" ] || make_test_image "$img"
	# shellcheck disable=SC2086
	skopeo copy --quiet --dest-tls-verify=false $SKOPEO_DEST_AUTH "oci:$img:latest" "docker://$REGISTRY_HOST/$1" >&3
	local mdigest
	mdigest=$(jq -r '.manifests[0].digest' "$img/index.json")
	LAYER_DIGEST=$(jq -r '.layers | max_by(.size) | .digest' "$img/blobs/sha256/${mdigest#sha256:}")
	LAYER_SHA=${LAYER_DIGEST#sha256:}
	export LAYER_DIGEST LAYER_SHA
}
