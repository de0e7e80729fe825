# Shared helpers of the registry-transfer tests: a real docker-registry, images made locally.
load ../lib/helpers
load ../registry-lib/registry

MKIMAGE="/usr/bin/python3 $KILN_SRC/tests/registry-transfer/mkimage.py"

# seed_image REF [mkimage args...]: makes an OCI layout with mkimage.py and pushes it to the
# registry with skopeo (all platforms). Prints nothing; sets SEED_DIGEST to the pushed digest.
seed_image() {
	local ref=$1 layout="$BATS_TEST_TMPDIR/layout"
	shift
	$MKIMAGE "$layout" --tag seed "$@" >/dev/null
	# shellcheck disable=SC2086
	skopeo copy -q --all --dest-tls-verify=false $SKOPEO_DEST_AUTH "oci:$layout:seed" "docker://$ref" >&3
	SEED_DIGEST=$(skopeo inspect --raw --tls-verify=false $SKOPEO_AUTH "docker://$ref" | sha256sum | cut -d' ' -f1)
	SEED_DIGEST="sha256:$SEED_DIGEST"
}

# remote_raw REF: the manifest bytes the registry serves for REF.
remote_raw() {
	# shellcheck disable=SC2086
	skopeo inspect --raw --tls-verify=false $SKOPEO_AUTH "docker://$1"
}

# store_manifest_digest NAME: the manifest digest the kiln store names NAME (read with jq).
store_manifest_digest() {
	jq -r --arg n "$1" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $n) | .digest' \
		"$KILN_TEST_ROOT/index.json"
}

store_blob() {
	cat "$KILN_TEST_ROOT/blobs/sha256/${1#sha256:}"
}

# store_config NAME: the config JSON of the image named NAME in the kiln store.
store_config() {
	local m
	m=$(store_manifest_digest "$1")
	[ -n "$m" ] || { echo "# no image named $1 in the store" >&3; return 1; }
	store_blob "$(store_blob "$m" | jq -r .config.digest)"
}

# count_uploads LOG: upload sessions started (POST .../blobs/uploads/ without a mount) in LOG.
count_uploads() {
	jq -r 'select(.method == "POST") | .path' "$1" | grep '/blobs/uploads/' | grep -vc 'mount=' || true
}
