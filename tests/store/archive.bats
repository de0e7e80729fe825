#!/usr/bin/env bats
# save/load and the store's OCI layout, judged by skopeo, umoci and GNU tar.

load store-helpers

setup_file() {
	fixture
}

setup() {
	kiln_setup_root
	fixture
	run_kiln load -i "$FIX/base.tar"
	run_kiln load -i "$FIX/app.tar"
	assert_equal "$output" "Loaded image: kiln-test/app:1"
}

@test "skopeo and umoci read the store as an OCI layout" {
	run skopeo inspect "oci:$KILN_TEST_ROOT:docker.io/kiln-test/app:1"
	[ "$status" -eq 0 ]
	assert_equal "$(jq -r '.Layers | length' <<<"$output")" 2
	assert_equal "$(skopeo_diff_ids "oci:$KILN_TEST_ROOT:docker.io/kiln-test/app:1")" \
		"$(skopeo_diff_ids "docker-archive:$FIX/app.tar")"
	skopeo copy -q "oci:$KILN_TEST_ROOT:docker.io/kiln-test/app:1" "oci-archive:$BATS_TEST_TMPDIR/sk.tar:x"
	skopeo copy -q "oci:$KILN_TEST_ROOT:docker.io/kiln-test/busybox:latest" "docker-archive:$BATS_TEST_TMPDIR/sk-da.tar:a/b:c"
	umoci unpack --rootless --image "$KILN_TEST_ROOT:docker.io/kiln-test/app:1" "$BATS_TEST_TMPDIR/bundle" >/dev/null
	r="$BATS_TEST_TMPDIR/bundle/rootfs"
	assert_equal "$(cat "$r/srv/hello.txt")" "hello"
	assert_equal "$(stat -c %a "$r/srv/hello.txt")" "640"
	grep -q '^app:x:1000:' "$r/etc/passwd"
	[ -x "$r/bin/busybox" ]
	# GNU tar lists the layer blobs of the store.
	layer=$(skopeo_diff_ids "docker-archive:$FIX/base.tar")
	tar -tvf "$KILN_TEST_ROOT/blobs/sha256/${layer#sha256:}" >"$BATS_TEST_TMPDIR/list"
	grep -q ' \./etc/passwd$' "$BATS_TEST_TMPDIR/list"
	assert_equal "$(jq -c '.process.args' "$BATS_TEST_TMPDIR/bundle/config.json")" '["/bin/cat","/srv/hello.txt"]'
}

@test "save writes a docker-archive that skopeo and umoci accept" {
	run_kiln save -o "$BATS_TEST_TMPDIR/out.tar" kiln-test/app:1
	[ -z "$output" ]
	tar -tf "$BATS_TEST_TMPDIR/out.tar" | sort >"$BATS_TEST_TMPDIR/list"
	grep -qx manifest.json "$BATS_TEST_TMPDIR/list"
	grep -qx repositories "$BATS_TEST_TMPDIR/list"
	grep -qx oci-layout "$BATS_TEST_TMPDIR/list"
	grep -qx index.json "$BATS_TEST_TMPDIR/list"
	m=$(tar -xOf "$BATS_TEST_TMPDIR/out.tar" manifest.json)
	assert_equal "$(jq -c '.[0].RepoTags' <<<"$m")" '["kiln-test/app:1"]'
	assert_equal "$(jq -r '.[0].Layers | length' <<<"$m")" 2
	[[ "$(jq -r '.[0].Config' <<<"$m")" =~ ^blobs/sha256/[0-9a-f]{64}$ ]]
	run skopeo inspect "docker-archive:$BATS_TEST_TMPDIR/out.tar"
	[ "$status" -eq 0 ]
	assert_equal "$(skopeo_diff_ids "docker-archive:$BATS_TEST_TMPDIR/out.tar")" "$(skopeo_diff_ids "docker-archive:$FIX/app.tar")"
	skopeo copy -q "docker-archive:$BATS_TEST_TMPDIR/out.tar" "oci:$BATS_TEST_TMPDIR/layout:app"
	umoci unpack --rootless --image "$BATS_TEST_TMPDIR/layout:app" "$BATS_TEST_TMPDIR/b" >/dev/null
	assert_equal "$(cat "$BATS_TEST_TMPDIR/b/rootfs/srv/hello.txt")" hello
	# The OCI layout inside is valid too.
	mkdir "$BATS_TEST_TMPDIR/x" && tar -xf "$BATS_TEST_TMPDIR/out.tar" -C "$BATS_TEST_TMPDIR/x"
	run skopeo inspect "oci:$BATS_TEST_TMPDIR/x:1"
	[ "$status" -eq 0 ]
}

@test "save --format oci-archive is read by skopeo with the full name" {
	run_kiln save --format oci-archive -o "$BATS_TEST_TMPDIR/oci.tar" kiln-test/app:1
	assert_equal "$(skopeo_diff_ids "oci-archive:$BATS_TEST_TMPDIR/oci.tar:docker.io/kiln-test/app:1")" \
		"$(skopeo_diff_ids "docker-archive:$FIX/app.tar")"
	! tar -tf "$BATS_TEST_TMPDIR/oci.tar" | grep -qx manifest.json
	# and loads back into a fresh store.
	KILN_TEST_ROOT="$BATS_TEST_TMPDIR/root2" run_kiln load -i "$BATS_TEST_TMPDIR/oci.tar"
	assert_equal "$output" "Loaded image: kiln-test/app:1"
}

@test "a skopeo docker-archive round-trips through kiln with identical digests" {
	run_kiln save -o "$BATS_TEST_TMPDIR/rt.tar" kiln-test/busybox
	orig=$(tar -xOf "$FIX/base.tar" manifest.json)
	ours=$(tar -xOf "$BATS_TEST_TMPDIR/rt.tar" manifest.json)
	# skopeo writes <hex>.tar and <hex>.json; we write blobs/sha256/<hex>: same digests.
	assert_equal "$(jq -r '.[0].Layers[]' <<<"$orig" | sed 's|.*/||; s|\.tar$||')" \
		"$(jq -r '.[0].Layers[]' <<<"$ours" | sed 's|.*/||')"
	assert_equal "$(jq -r '.[0].Config' <<<"$orig" | sed 's|\.json$||')" \
		"$(jq -r '.[0].Config' <<<"$ours" | sed 's|.*/||')"
	# and loading our archive gives the same image ID.
	KILN_TEST_ROOT="$BATS_TEST_TMPDIR/root2" run_kiln load -i "$BATS_TEST_TMPDIR/rt.tar"
	assert_equal "$output" "Loaded image: kiln-test/busybox:latest"
	KILN_TEST_ROOT="$BATS_TEST_TMPDIR/root2" run_kiln images -q
	id2=$output
	run_kiln images -q --no-trunc
	assert_contains "$output" "$id2"
}

@test "several images in one archive share their layers" {
	run_kiln tag kiln-test/app:1 kiln-test/app:latest
	run_kiln save -o "$BATS_TEST_TMPDIR/two.tar" kiln-test/busybox kiln-test/app:1 kiln-test/app:latest
	base_layer=$(skopeo_diff_ids "docker-archive:$FIX/base.tar")
	assert_equal "$(tar -tf "$BATS_TEST_TMPDIR/two.tar" | grep -c "${base_layer#sha256:}")" 1
	m=$(tar -xOf "$BATS_TEST_TMPDIR/two.tar" manifest.json)
	assert_equal "$(jq length <<<"$m")" 2
	assert_equal "$(jq -c '.[1].RepoTags' <<<"$m")" '["kiln-test/app:1","kiln-test/app:latest"]'
	KILN_TEST_ROOT="$BATS_TEST_TMPDIR/root2" run_kiln load -i "$BATS_TEST_TMPDIR/two.tar"
	assert_equal "$output" "Loaded image: kiln-test/busybox:latest
Loaded image: kiln-test/app:1
Loaded image: kiln-test/app:latest"
	KILN_TEST_ROOT="$BATS_TEST_TMPDIR/root2" run_kiln fsck
}

@test "save writes to stdout when it is not a terminal, and -o -" {
	"$KILN" --root "$KILN_TEST_ROOT" save kiln-test/busybox >"$BATS_TEST_TMPDIR/a.tar"
	"$KILN" --root "$KILN_TEST_ROOT" save -o - kiln-test/busybox >"$BATS_TEST_TMPDIR/b.tar"
	cmp "$BATS_TEST_TMPDIR/a.tar" "$BATS_TEST_TMPDIR/b.tar"
	run_kiln save -o "$BATS_TEST_TMPDIR/c.tar" kiln-test/busybox
	cmp "$BATS_TEST_TMPDIR/a.tar" "$BATS_TEST_TMPDIR/c.tar"
	tar -tvf "$BATS_TEST_TMPDIR/a.tar" >/dev/null
	run_kiln 1 save -o "$BATS_TEST_TMPDIR/d.tar" nosuch
	assert_contains "$output" "image 'nosuch' not found"
	[ ! -e "$BATS_TEST_TMPDIR/d.tar" ]
	[ -z "$(ls "$BATS_TEST_TMPDIR" | grep kiln-tmp)" ]
}

@test "load reads compressed archives (gzip, zstd, xz, bzip2) and stdin" {
	for c in "gzip -c" "zstd -q -c" "xz -c" "bzip2 -c"; do
		root="$BATS_TEST_TMPDIR/r-${c%% *}"
		$c "$FIX/app.tar" >"$BATS_TEST_TMPDIR/app.tar.x"
		KILN_TEST_ROOT=$root run_kiln load -i "$BATS_TEST_TMPDIR/app.tar.x"
		assert_equal "$output" "Loaded image: kiln-test/app:1"
		KILN_TEST_ROOT=$root run_kiln fsck
	done
	"$KILN" --root "$BATS_TEST_TMPDIR/r-stdin" load <"$FIX/base.tar" >"$BATS_TEST_TMPDIR/o"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/o")" "Loaded image: kiln-test/busybox:latest"
	# A pipe (not seekable) from one store's save into another's load, gzip on the way.
	"$KILN" --root "$KILN_TEST_ROOT" save kiln-test/app:1 | gzip -1 |
		"$KILN" --root "$BATS_TEST_TMPDIR/r-pipe" load >"$BATS_TEST_TMPDIR/o"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/o")" "Loaded image: kiln-test/app:1"
	KILN_TEST_ROOT="$BATS_TEST_TMPDIR/r-pipe" run_kiln fsck
}

@test "load keeps compressed layers of an oci-archive byte for byte" {
	# skopeo's oci-archive has gzip layers: their digests must survive the load.
	skopeo copy -q "docker-archive:$FIX/app.tar" "oci-archive:$BATS_TEST_TMPDIR/gz.tar:localhost:5000/gz:2"
	want=$(skopeo inspect "oci-archive:$BATS_TEST_TMPDIR/gz.tar:localhost:5000/gz:2" | jq -r '.Layers[]')
	KILN_TEST_ROOT="$BATS_TEST_TMPDIR/root2" run_kiln load -i "$BATS_TEST_TMPDIR/gz.tar"
	assert_equal "$output" "Loaded image: localhost:5000/gz:2"
	got=$(skopeo inspect "oci:$BATS_TEST_TMPDIR/root2:localhost:5000/gz:2" | jq -r '.Layers[]')
	assert_equal "$got" "$want"
	# Saved again as a docker-archive, skopeo still reads the (gzip) layers.
	KILN_TEST_ROOT="$BATS_TEST_TMPDIR/root2" run_kiln save -o "$BATS_TEST_TMPDIR/gz-da.tar" localhost:5000/gz:2
	assert_equal "$(skopeo_diff_ids "docker-archive:$BATS_TEST_TMPDIR/gz-da.tar")" "$(skopeo_diff_ids "docker-archive:$FIX/app.tar")"
}

@test "an archive without names loads as an untagged image" {
	skopeo copy -q "docker-archive:$FIX/base.tar" "oci-archive:$BATS_TEST_TMPDIR/noname.tar"
	KILN_TEST_ROOT="$BATS_TEST_TMPDIR/root2" run_kiln load -i "$BATS_TEST_TMPDIR/noname.tar"
	[[ "$output" =~ ^Loaded\ image\ ID:\ sha256:[0-9a-f]{64}$ ]]
	KILN_TEST_ROOT="$BATS_TEST_TMPDIR/root2" run_kiln images
	[[ "${lines[1]}" =~ ^\<none\>\ +\<none\>\  ]]
}
