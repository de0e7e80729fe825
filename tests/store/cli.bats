#!/usr/bin/env bats
# kiln images, tag, rmi, inspect, prune, fsck on a store loaded from a skopeo-made archive.

load store-helpers

setup_file() {
	fixture
}

setup() {
	kiln_setup_root
	fixture
}

load_base() {
	run_kiln load -i "$FIX/base.tar"
	assert_equal "$output" "Loaded image: kiln-test/busybox:latest"
	BASE_ID=$(tar -xOf "$FIX/base.tar" manifest.json | jq -r '.[0].Config' | sed 's/\.json$//')
	BASE_ID=${BASE_ID##*/}
}

@test "images on an empty store prints the header only" {
	run_kiln images
	assert_equal "$output" "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE
kiln: the store at '$KILN_TEST_ROOT' holds no images"
	run_kiln images -q
	assert_equal "$output" ""
	run_kiln images --format json
	assert_equal "$output" "[]"
}

@test "images lists a loaded image like docker images" {
	load_base
	run_kiln images
	[ "${#lines[@]}" -eq 2 ]
	[[ "${lines[1]}" =~ ^kiln-test/busybox\ +latest\ +${BASE_ID:0:12}\ +([0-9]+\ seconds|Less\ than\ a\ second|1\ second|About\ a\ minute)\ ago\ +[0-9.]+[kM]B$ ]]
	run_kiln images -q
	assert_equal "$output" "${BASE_ID:0:12}"
	run_kiln images --no-trunc -q
	assert_equal "$output" "sha256:$BASE_ID"
	run_kiln images --digests
	man=$(jq -r '.manifests[0].digest' "$KILN_TEST_ROOT/index.json")
	assert_contains "${lines[1]}" "$man"
	run_kiln images --format json
	assert_equal "$(jq -r '.[0].Repository + " " + .[0].Tag + " " + .[0].ID' <<<"$output")" \
		"kiln-test/busybox latest sha256:$BASE_ID"
	size=$(jq -r '.[0].CompressedSize' <<<"$output")
	want=$(( $(stat -c %s "$KILN_TEST_ROOT/blobs/sha256/$BASE_ID") + $(jq -r '.layers[0].size' "$KILN_TEST_ROOT/blobs/sha256/${man#sha256:}") ))
	assert_equal "$size" "$want"
	run_kiln 2 images --format yaml
	assert_contains "$output" "'yaml' is not a format: use 'table', 'json' or a template"
}

# column_starts LINE: the offsets at which the cells of a table line start (after 3+ spaces).
column_starts() {
	awk '{ s = "0"; for (i = 2; i <= length($0); i++)
		if (substr($0, i, 1) != " " && substr($0, i - 3, 3) == "   ") s = s " " (i - 1)
		print s }' <<<"$1"
}

@test "images columns line up whatever the width of the values" {
	load_base
	# A creation time in the future shows docker's longest CREATED value.
	cp -r "$FIX/oci" "$BATS_TEST_TMPDIR/oci"
	umoci config --image "$BATS_TEST_TMPDIR/oci:base" --created 2099-01-01T00:00:00Z --tag future
	skopeo copy -q "oci:$BATS_TEST_TMPDIR/oci:future" \
		"docker-archive:$BATS_TEST_TMPDIR/future.tar:kiln-test/future:v1"
	run_kiln load -i "$BATS_TEST_TMPDIR/future.tar"
	run_kiln tag kiln-test/busybox localhost:5000/a-rather-long/repository-name:and-a-long-tag
	for flags in "" "--digests" "--no-trunc" "--digests --no-trunc"; do
		run_kiln images $flags
		[ "${#lines[@]}" -eq 4 ]
		[[ "${lines[1]}" =~ ^kiln-test/future\ +v1\ + ]]
		assert_contains "${lines[1]}" "Less than a second ago   "
		want=$(column_starts "${lines[0]}")
		[ "$(wc -w <<<"$want")" -eq "$([[ $flags == *digests* ]] && echo 6 || echo 5)" ]
		for l in "${lines[@]}"; do
			assert_equal "$(column_starts "$l")" "$want"
		done
	done
}

@test "inspect shows config, rootfs and names like docker image inspect" {
	load_base
	run_kiln inspect kiln-test/busybox
	j=$output
	assert_equal "$(jq -r '.[0].Id' <<<"$j")" "sha256:$BASE_ID"
	assert_equal "$(jq -c '.[0].RepoTags' <<<"$j")" '["kiln-test/busybox:latest"]'
	assert_contains "$(jq -r '.[0].RepoDigests[0]' <<<"$j")" "kiln-test/busybox@sha256:"
	assert_equal "$(jq -r '.[0].Os + "/" + .[0].Architecture' <<<"$j")" "linux/$(skopeo inspect --config docker-archive:$FIX/base.tar | jq -r .architecture)"
	assert_equal "$(jq -r '.[0].Author' <<<"$j")" "kiln-tests"
	assert_equal "$(jq -c '.[0].Config.Cmd' <<<"$j")" '["/bin/sh"]'
	assert_equal "$(jq -r '.[0].Config.User + " " + .[0].Config.WorkingDir' <<<"$j")" "app /home"
	assert_equal "$(jq -r '.[0].Config.Labels["org.example"]' <<<"$j")" "yes"
	assert_equal "$(jq -r '.[0].RootFS.Type' <<<"$j")" "layers"
	assert_equal "$(jq -r '.[0].RootFS.Layers[]' <<<"$j")" "$(skopeo_diff_ids docker-archive:$FIX/base.tar)"
	[ "$(jq -r '.[0].History | length' <<<"$j")" -ge 1 ]
	# By ID prefix, by full ID, and a missing one (exit 1, the found one still printed).
	run_kiln inspect "${BASE_ID:0:8}"
	assert_equal "$(jq -r '.[0].Id' <<<"$output")" "sha256:$BASE_ID"
	run_kiln inspect "sha256:$BASE_ID"
	assert_equal "$(jq -r '.[0].Id' <<<"$output")" "sha256:$BASE_ID"
	run_kiln 1 inspect kiln-test/busybox nosuch
	assert_contains "$output" "kiln: image 'nosuch' not found"
	assert_contains "$output" "\"Id\": \"sha256:$BASE_ID\""
}

@test "tag adds a normalized name; rmi untags, then deletes" {
	load_base
	run_kiln tag kiln-test/busybox localhost:5000/team/app:1
	run_kiln tag "${BASE_ID:0:12}" other
	assert_equal "$(jq -r '.manifests[].annotations["org.opencontainers.image.ref.name"]' "$KILN_TEST_ROOT/index.json" | sort | tr '\n' ' ')" \
		"docker.io/kiln-test/busybox:latest docker.io/library/other:latest localhost:5000/team/app:1 "
	run_kiln images
	[ "${#lines[@]}" -eq 4 ]
	assert_contains "$output" "localhost:5000/team/app"
	run_kiln images --format json localhost:5000/team/app
	assert_equal "$(jq -r '.[] | .Repository + ":" + .Tag' <<<"$output")" "localhost:5000/team/app:1"
	run_kiln images --format json other:latest
	assert_equal "$(jq -r '.[] | .Repository + ":" + .Tag' <<<"$output")" "other:latest"
	run_kiln images --format json other:nope
	assert_equal "$output" "[]"
	run_kiln inspect other
	assert_equal "$(jq -c '.[0].RepoTags | sort' <<<"$output")" '["kiln-test/busybox:latest","localhost:5000/team/app:1","other:latest"]'
	# By ID with several names: refused without -f.
	run_kiln 1 rmi "${BASE_ID:0:12}"
	assert_contains "$output" "must be forced"
	run_kiln rmi other
	assert_equal "$output" "Untagged: other:latest"
	run_kiln rmi localhost:5000/team/app:1
	assert_equal "$output" "Untagged: localhost:5000/team/app:1"
	run_kiln rmi kiln-test/busybox
	assert_equal "$output" "Untagged: kiln-test/busybox:latest
Deleted: sha256:$BASE_ID"
	run_kiln images -q
	assert_equal "$output" ""
	run_kiln 1 rmi kiln-test/busybox
	assert_contains "$output" "kiln: image 'kiln-test/busybox' not found"
	run_kiln 2 tag onlyone
	run_kiln 1 tag nosuch x
	assert_contains "$output" "image 'nosuch' not found"
	run_kiln 1 tag kiln-test/busybox "Bad:Name"
	run_kiln 1 tag kiln-test/busybox "x:-bad"
}

@test "rmi -f removes an image with several names by ID" {
	load_base
	run_kiln tag kiln-test/busybox second
	run_kiln rmi -f "${BASE_ID:0:6}"
	assert_contains "$output" "Untagged: kiln-test/busybox:latest"
	assert_contains "$output" "Untagged: second:latest"
	assert_contains "$output" "Deleted: sha256:$BASE_ID"
	assert_equal "$(jq -c '.manifests' "$KILN_TEST_ROOT/index.json")" "[]"
}

@test "rmi refuses an image a build cache entry uses, unless -f" {
	load_base
	mkdir -p "$KILN_TEST_ROOT/cache"
	echo "{\"images\":[\"sha256:$BASE_ID\"],\"blobs\":[]}" >"$KILN_TEST_ROOT/cache/0123abcd.json"
	run_kiln 1 rmi kiln-test/busybox
	assert_contains "$output" "image 'kiln-test/busybox' is used by build cache entry '0123abcd' (use -f to remove it anyway)"
	run_kiln images -q
	assert_equal "$output" "${BASE_ID:0:12}"
	run_kiln rmi -f kiln-test/busybox
	assert_contains "$output" "Deleted: sha256:$BASE_ID"
}

@test "prune frees what no image or cache entry uses, and only that" {
	load_base
	run_kiln load -i "$FIX/app.tar"
	nblobs=$(find "$KILN_TEST_ROOT/blobs" -type f | wc -l)
	[ "$nblobs" -eq 6 ]   # 2 configs, 2 manifests, 2 layers (base shared)
	run_kiln prune
	assert_equal "$output" "Total reclaimed space: 0B (0 bytes)"
	# A snapshot dir nothing references goes; one of the base chain stays.
	diff_id=$(skopeo_diff_ids docker-archive:$FIX/base.tar)
	mkdir -p "$KILN_TEST_ROOT/snapshots/${diff_id#sha256:}/etc" "$KILN_TEST_ROOT/snapshots/$(printf '%064d' 0)"
	head -c 1000 /dev/zero >"$KILN_TEST_ROOT/snapshots/$(printf '%064d' 0)/f"
	run_kiln rmi kiln-test/app:1
	# Keep the app's extra layer alive through a cache entry.
	extra=$(sha256sum "$FIX/extra.tar" | cut -d' ' -f1)
	echo "{\"blobs\":[\"sha256:$extra\"]}" >"$KILN_TEST_ROOT/cache/00ff.json"
	run_kiln prune --dry-run
	[[ "$output" =~ ^Total\ reclaimed\ space:\ .*\ \(([0-9]+)\ bytes\)$ ]]
	dry=${BASH_REMATCH[1]}
	run_kiln prune
	[[ "$output" =~ \(([0-9]+)\ bytes\)$ ]]
	assert_equal "${BASH_REMATCH[1]}" "$dry"
	[ "$dry" -ge 1000 ]
	[ -f "$KILN_TEST_ROOT/blobs/sha256/$extra" ]
	[ -d "$KILN_TEST_ROOT/snapshots/${diff_id#sha256:}" ]
	[ ! -e "$KILN_TEST_ROOT/snapshots/$(printf '%064d' 0)" ]
	[ "$(find "$KILN_TEST_ROOT/blobs" -type f | wc -l)" -eq 4 ]
	run_kiln prune --cache
	[ ! -f "$KILN_TEST_ROOT/blobs/sha256/$extra" ]
	[ ! -e "$KILN_TEST_ROOT/cache/00ff.json" ]
	run_kiln fsck
	run_kiln inspect kiln-test/busybox
}

@test "prune removes dangling images like docker image prune, unless a cache entry uses them" {
	load_base
	# Two untagged images: the app, and a relabelled base that a build cache entry names.
	skopeo copy -q "oci:$FIX/oci:app" "docker-archive:$BATS_TEST_TMPDIR/app.tar"
	cp -r "$FIX/oci" "$BATS_TEST_TMPDIR/oci"
	umoci config --image "$BATS_TEST_TMPDIR/oci:base" --config.label cached=yes --tag cached
	skopeo copy -q "oci:$BATS_TEST_TMPDIR/oci:cached" "docker-archive:$BATS_TEST_TMPDIR/cached.tar"
	run_kiln load -i "$BATS_TEST_TMPDIR/app.tar"
	app=$(jq -r '.[0].Config' <(tar -xOf "$BATS_TEST_TMPDIR/app.tar" manifest.json))
	app=sha256:$(basename "${app%.json}")
	run_kiln load -i "$BATS_TEST_TMPDIR/cached.tar"
	cached=$(jq -r '.[0].Config' <(tar -xOf "$BATS_TEST_TMPDIR/cached.tar" manifest.json))
	cached=sha256:$(basename "${cached%.json}")
	mkdir -p "$KILN_TEST_ROOT/cache"
	echo "{\"images\":[\"$cached\"],\"blobs\":[]}" >"$KILN_TEST_ROOT/cache/00aa.json"
	# A tagged image loaded untagged again is no dangling image.
	skopeo copy -q "docker-archive:$FIX/base.tar" "docker-archive:$BATS_TEST_TMPDIR/base-untagged.tar"
	run_kiln load -i "$BATS_TEST_TMPDIR/base-untagged.tar"
	run_kiln images --format json
	assert_equal "$(jq -r '.[] | .Repository + ":" + .Tag + " " + .ID' <<<"$output" | sort)" \
		"$(printf '%s\n' "<none>:<none> $app" "<none>:<none> $cached" "<none>:<none> sha256:$BASE_ID" \
			"kiln-test/busybox:latest sha256:$BASE_ID" | sort)"
	extra=$(sha256sum "$FIX/extra.tar" | cut -d' ' -f1)
	index=$(cat "$KILN_TEST_ROOT/index.json")
	run_kiln prune --dry-run
	assert_equal "${lines[0]}" "Would delete: $app"
	[ "${#lines[@]}" -eq 2 ]
	[[ "${lines[1]}" =~ \(([0-9]+)\ bytes\)$ ]]
	dry=${BASH_REMATCH[1]}
	[ "$dry" -gt 0 ]
	assert_equal "$(cat "$KILN_TEST_ROOT/index.json")" "$index"
	run_kiln prune
	assert_equal "${lines[0]}" "Deleted: $app"
	[[ "${lines[1]}" =~ \(([0-9]+)\ bytes\)$ ]]
	assert_equal "${BASH_REMATCH[1]}" "$dry"
	[ ! -e "$KILN_TEST_ROOT/blobs/sha256/$extra" ]
	[ ! -e "$KILN_TEST_ROOT/blobs/sha256/${app#sha256:}" ]
	run_kiln images --format json
	assert_equal "$(jq -r '.[] | .Repository + ":" + .Tag + " " + .ID' <<<"$output" | sort)" \
		"$(printf '%s\n' "<none>:<none> $cached" "<none>:<none> sha256:$BASE_ID" \
			"kiln-test/busybox:latest sha256:$BASE_ID" | sort)"
	run_kiln fsck
	# Nothing dangling left: a second prune frees nothing.
	run_kiln prune
	assert_equal "$output" "Total reclaimed space: 0B (0 bytes)"
	# Without the cache, the cached one is dangling too.
	run_kiln prune --cache
	assert_contains "$output" "Deleted: $cached"
	run_kiln images --format json
	assert_equal "$(jq -r '.[] | .Repository + ":" + .Tag' <<<"$output" | sort)" \
		"$(printf '%s\n' "<none>:<none>" "kiln-test/busybox:latest")"
	run_kiln fsck
	run_kiln save -o "$BATS_TEST_TMPDIR/s.tar" kiln-test/busybox
}

@test "fsck reports corrupt and missing blobs and exits 1" {
	load_base
	run_kiln fsck
	assert_equal "$output" "store '$KILN_TEST_ROOT' is consistent"
	layer=$(skopeo_diff_ids docker-archive:$FIX/base.tar)
	f="$KILN_TEST_ROOT/blobs/sha256/${layer#sha256:}"
	chmod u+w "$f"
	printf 'X' | dd of="$f" bs=1 seek=100 conv=notrunc status=none
	run_kiln 1 fsck
	assert_contains "$output" "blob '$layer' is corrupt (content hashes to 'sha256:"
	assert_contains "$output" "kiln: fsck: 1 problem found"
	rm -f "$f"
	run_kiln 1 fsck
	assert_contains "$output" "image 'docker.io/kiln-test/busybox:latest'"
	assert_contains "$output" "missing blob $layer"
	echo junk >"$KILN_TEST_ROOT/blobs/sha256/nothex"
	run_kiln 1 fsck
	assert_contains "$output" "stray file 'blobs/sha256/nothex'"
}

@test "commands reject bad usage with exit 2" {
	run_kiln 2 rmi
	run_kiln 2 inspect
	run_kiln 2 save
	run_kiln 2 save --format zip x
	assert_contains "$output" "unknown format 'zip'"
	run_kiln 2 load extra-arg
	run_kiln 2 prune extra
	run_kiln 2 fsck extra
}
