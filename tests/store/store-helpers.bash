# Helpers for the store tests: base images made WITHOUT kiln (umoci + skopeo), so these tests do
# not depend on the layer helper's `kiln import`.

load ../lib/helpers

# make_images DIR: DIR/oci (OCI layout with images "base" and "app"), DIR/base.tar (skopeo
# docker-archive of base as kiln-test/busybox:latest), DIR/app.tar (kiln-test/app:1, base + one
# layer), DIR/rootfs.tar.
make_images() {
	local d=$1
	skip_unless umoci
	skip_unless skopeo
	mkdir -p "$d"
	sh "$KILN_TESTDATA/base/make-rootfs.sh" "$d/base" >/dev/null
	cp "$d/base/rootfs.tar" "$d/rootfs.tar"
	umoci init --layout "$d/oci"
	umoci new --image "$d/oci:base"
	umoci raw add-layer --image "$d/oci:base" "$d/rootfs.tar"
	umoci config --image "$d/oci:base" --config.cmd /bin/sh --config.env PATH=/bin:/usr/bin \
		--config.user app --config.workingdir /home --config.label org.example=yes \
		--author kiln-tests
	umoci tag --image "$d/oci:base" app
	mkdir -p "$d/extra/srv"
	echo hello >"$d/extra/srv/hello.txt"
	chmod 0640 "$d/extra/srv/hello.txt"
	tar --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$d/extra" -cf "$d/extra.tar" srv
	umoci raw add-layer --image "$d/oci:app" "$d/extra.tar"
	umoci config --image "$d/oci:app" --config.cmd /bin/cat --config.cmd /srv/hello.txt
	skopeo copy -q "oci:$d/oci:base" "docker-archive:$d/base.tar:kiln-test/busybox:latest"
	skopeo copy -q "oci:$d/oci:app" "docker-archive:$d/app.tar:kiln-test/app:1"
}

# The shared fixture of a file: made once in setup_file.
fixture() {
	export FIX="$BATS_FILE_TMPDIR/fix"
	[ -f "$FIX/app.tar" ] || make_images "$FIX" >/dev/null
}

# diff_ids IMAGE-REF(skopeo): the config's diff_ids, one per line.
skopeo_diff_ids() {
	skopeo inspect --config "$1" | jq -r '.rootfs.diff_ids[]'
}

# store_snapshot: copy of index.json and a listing of blobs, to compare after a failed command.
store_state() {
	(cd "$KILN_TEST_ROOT" && cat index.json && find blobs cache snapshots -type f 2>/dev/null | sort)
}
