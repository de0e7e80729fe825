# Helpers shared by the build-*.bats files. Each file imports the busybox base once into a shared
# store ($BATS_FILE_TMPDIR/root) in setup_file; tests needing a pristine cache use fresh_root.

build_setup_file() {
	export KILN_TEST_ROOT="$BATS_FILE_TMPDIR/root"
	export BASE_OUT="$BATS_FILE_TMPDIR/base"
	mkdir -p "$KILN_TEST_ROOT"
	"$KILN_SRC/testdata/base/make-rootfs.sh" "$BASE_OUT" >/dev/null
	"$KILN" --root "$KILN_TEST_ROOT" import "$BASE_OUT/rootfs.tar" kiln-test/busybox:latest >/dev/null
}

# fresh_root: a new store for this test holding only the base image.
fresh_root() {
	export KILN_TEST_ROOT="$BATS_TEST_TMPDIR/root"
	mkdir -p "$KILN_TEST_ROOT"
	"$KILN" --root "$KILN_TEST_ROOT" import "$BASE_OUT/rootfs.tar" kiln-test/busybox:latest >/dev/null
}

# image_id_of OUTPUT: the last line of a build's output, checked to be an image ID.
last_line() {
	printf '%s\n' "$1" | tail -n 1
}

# inspect NAME JQ-FILTER: a field of `kiln inspect NAME` (compact JSON).
inspect() {
	"$KILN" --root "$KILN_TEST_ROOT" inspect "$1" | jq -c ".[0] | $2"
}

# full_name NAME: docker's normalization (enough for the names the tests use).
full_name() {
	local n=$1
	case "$n" in
	*/*) ;;
	*) n="library/$n" ;;
	esac
	case "${n%%/*}" in
	*.* | *:* | localhost) ;;
	*) n="docker.io/$n" ;;
	esac
	case "${n##*/}" in
	*:*) ;;
	*) n="$n:latest" ;;
	esac
	printf '%s\n' "$n"
}

# manifest_of NAME: the manifest JSON of a stored image (straight from the OCI layout).
manifest_of() {
	local root=${2:-$KILN_TEST_ROOT} name digest
	name=$(full_name "$1")
	digest=$(jq -r --arg n "$name" \
		'.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $n) | .digest' \
		"$root/index.json" | head -n 1)
	[ -n "$digest" ] || { echo "# no image $name in $root" >&3; return 1; }
	cat "$root/blobs/sha256/${digest#sha256:}"
}

# unpack NAME DIR: extracts the image's layers in order with tar (owners kept, whiteouts applied).
unpack() {
	local name=$1 dir=$2 m layer f
	mkdir -p "$dir"
	m=$(manifest_of "$name") || return 1
	for layer in $(printf '%s' "$m" | jq -r '.layers[].digest'); do
		f="$KILN_TEST_ROOT/blobs/sha256/${layer#sha256:}"
		# whiteouts first: .wh.x deletes x, .wh..wh..opq empties the directory
		while IFS= read -r wh; do
			case "$wh" in
			*/.wh..wh..opq | .wh..wh..opq) find "$dir/$(dirname "$wh")" -mindepth 1 -maxdepth 1 -exec rm -rf {} + ;;
			*.wh.*) rm -rf "$dir/$(dirname "$wh")/$(basename "$wh" | sed 's/^\.wh\.//')" ;;
			esac
		done < <(tar -tf "$f" | grep '\.wh\.' || true)
		tar -xf "$f" -C "$dir" --numeric-owner --same-owner --same-permissions --exclude='*.wh.*'
	done
}

# stat_of PATH: "mode uid:gid" as `stat -c '%a %u:%g'`.
stat_of() {
	stat -c '%a %u:%g' "$1"
}

# build_ok ARGS...: kiln build with plain progress, expecting success and an image ID last.
build_ok() {
	run_kiln build --progress plain "$@"
	[[ "$(last_line "$output")" =~ ^sha256:[0-9a-f]{64}$ ]] || { echo "# no image ID last" >&3; return 1; }
}
