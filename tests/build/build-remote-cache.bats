#!/usr/bin/env bats
# --cache-to / --cache-from: the build cache shared through a real docker-registry on 127.0.0.1,
# an image's config (inline) and an OCI layout directory. Every "other machine" is a fresh, empty
# store that pulls the base image from the registry, so both sides build on the same base ID.

load ../lib/helpers
load ../registry-lib/registry
load build-helpers

setup_file() {
	build_setup_file
}

setup() {
	skip_unless docker-registry
	registry_start open
	BASE="$REGISTRY_HOST/base/busybox:1"
	"$KILN" --root "$KILN_TEST_ROOT" push kiln-test/busybox:latest "$BASE" >/dev/null
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx"
	echo hello >"$ctx/a.txt"
	# Each RUN appends to a cache mount, which lives in the store: a RUN that ran leaves a line
	# in STORE/cache-mounts/*/log, a cached one nothing.
	cat >"$ctx/Dockerfile" <<-EOF
	FROM $BASE AS build
	RUN --mount=type=cache,target=/out,id=runlog echo pre >> /out/log; echo pre > /pre
	COPY a.txt /a.txt
	ARG FLAVOR=plain
	RUN --mount=type=cache,target=/out,id=runlog echo "build \$FLAVOR" >> /out/log; cat /a.txt > /b.txt; head -c 300000 /dev/urandom > /big
	FROM $BASE
	COPY --from=build /b.txt /b.txt
	RUN --mount=type=cache,target=/out,id=runlog echo final >> /out/log; echo hi > /c.txt
	CMD ["cat", "/c.txt"]
	EOF
	STORE_N=0
}

teardown() {
	registry_stop
}

# new_store: an empty store on "another machine" (KILN_TEST_ROOT points at it).
new_store() {
	STORE_N=$((STORE_N + 1))
	export KILN_TEST_ROOT="$BATS_TEST_TMPDIR/store$STORE_N"
	mkdir -p "$KILN_TEST_ROOT"
}

# runs_in_store: the lines every RUN that ran in the current store wrote to its cache mount.
runs_in_store() {
	cat "$KILN_TEST_ROOT"/cache-mounts/*/log 2>/dev/null || true
}

# cold_build ARGS...: builds in a new store; sets ID.
cold_build() {
	new_store
	build_ok -t app:1 "$@" "$ctx"
	ID=$(last_line "$output")
	assert_equal "$(runs_in_store | sort | tr '\n' ' ')" "build plain final pre "
}

@test "registry cache, mode=max: a fresh store gets every step CACHED, the same image ID, no RUN run" {
	cold_build --cache-to "type=registry,ref=$REGISTRY_HOST/cache/app:main,mode=max"
	assert_contains "$output" "exported cache type=registry,ref=$REGISTRY_HOST/cache/app:main,mode=max: 7 entries"
	new_store
	build_ok -t app:1 --cache-from "type=registry,ref=$REGISTRY_HOST/cache/app:main" "$ctx"
	assert_equal "$(last_line "$output")" "$ID"
	assert_equal "$(printf '%s\n' "$output" | grep -c '^    CACHED')" 7
	assert_equal "$(runs_in_store)" ""
	# the image is whole: its files and config
	unpack app:1 "$BATS_TEST_TMPDIR/rootfs"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs/b.txt")" hello
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs/c.txt")" hi
	assert_equal "$(inspect app:1 .Config.Cmd)" '["cat","/c.txt"]'
	run_kiln fsck
}

@test "registry cache: the artifact is an OCI manifest skopeo reads and copies, and registry GC keeps its blobs" {
	skip_unless skopeo
	cold_build --cache-to "type=registry,ref=$REGISTRY_HOST/cache/app:main,mode=max"
	run skopeo inspect --tls-verify=false --raw "docker://$REGISTRY_HOST/cache/app:main"
	[ "$status" -eq 0 ]
	assert_equal "$(printf '%s' "$output" | jq -r .mediaType)" application/vnd.oci.image.manifest.v1+json
	assert_equal "$(printf '%s' "$output" | jq -r .config.mediaType)" application/vnd.kiln.build-cache.config.v1+json
	# base, RUN pre, COPY a.txt, RUN build (the 300 kB /big), COPY --from, RUN final
	assert_equal "$(printf '%s' "$output" | jq '.layers | length')" 6
	# garbage-collect the registry's storage: everything the cache manifest names survives
	/usr/bin/docker-registry garbage-collect "$REGISTRY_DIR/config.yml" >/dev/null 2>&1
	run skopeo copy --src-tls-verify=false "docker://$REGISTRY_HOST/cache/app:main" "oci:$BATS_TEST_TMPDIR/copy:main"
	[ "$status" -eq 0 ]
	run skopeo copy --dest-tls-verify=false "oci:$BATS_TEST_TMPDIR/copy:main" "docker://$REGISTRY_HOST/other/cache:copied"
	[ "$status" -eq 0 ]
	# the copy is a cache as good as the original
	new_store
	build_ok -t app:1 --cache-from "type=registry,ref=$REGISTRY_HOST/other/cache:copied" "$ctx"
	assert_equal "$(last_line "$output")" "$ID"
	assert_equal "$(runs_in_store)" ""
}

@test "registry cache import is lazy: only the final image's own layers are downloaded (blob GETs counted)" {
	skip_unless skopeo
	cold_build --cache-to "type=registry,ref=$REGISTRY_HOST/cache/app:main,mode=max"
	registry_fault_proxy_start
	new_store
	build_ok -t app:1 --cache-from "type=registry,ref=$FAULT_PROXY_HOST/cache/app:main" "$ctx"
	assert_equal "$(last_line "$output")" "$ID"
	cfg=$(skopeo inspect --tls-verify=false --raw "docker://$REGISTRY_HOST/cache/app:main" | jq -r .config.digest)
	base=$(skopeo inspect --tls-verify=false --raw "docker://$BASE" | jq -r '.layers[].digest')
	# the cache metadata and the final image's own layers came through the proxy, and nothing else
	# (not the build stage's 300 kB /big); the base's layers come from the base's registry
	want=$( (echo "$cfg"; manifest_of app:1 | jq -r '.layers[].digest' | grep -vxF "$base") | sort)
	got=$(jq -r 'select(.method == "GET") | .path' "$FAULT_PROXY_LOG" | grep /blobs/ | sed 's|.*/blobs/||' | sort)
	assert_equal "$got" "$want"
	assert_equal "$(jq -r 'select(.method == "GET") | .path' "$FAULT_PROXY_LOG" | grep -c /manifests/)" 1
}

@test "a fully cached build never downloads a build stage's base image, only the final image's layers" {
	skip_unless skopeo
	registry_fault_proxy_start
	# an "SDK" image the build stage starts from, with a big layer of its own
	printf 'FROM kiln-test/busybox:latest\nRUN head -c 400000 /dev/urandom > /sdk\n' >"$BATS_TEST_TMPDIR/Dockerfile.sdk"
	"$KILN" --root "$BATS_FILE_TMPDIR/root" build -q -t sdk:1 -f "$BATS_TEST_TMPDIR/Dockerfile.sdk" "$ctx" >/dev/null
	"$KILN" --root "$BATS_FILE_TMPDIR/root" push sdk:1 "$REGISTRY_HOST/base/sdk:1" >/dev/null
	P=$FAULT_PROXY_HOST
	cat >"$ctx/Dockerfile" <<-EOF
	FROM $P/base/sdk:1 AS build
	RUN --mount=type=cache,target=/out,id=runlog echo build >> /out/log; cat /sdk /sdk > /b.txt
	FROM $P/base/busybox:1
	COPY --from=build /b.txt /b.txt
	CMD ["ls", "-l", "/b.txt"]
	EOF
	new_store
	build_ok -t app:1 --cache-to "type=registry,ref=$P/cache/app:sdk,mode=max" "$ctx"
	ID=$(last_line "$output")
	: >"$FAULT_PROXY_LOG"
	new_store
	build_ok -t app:1 --cache-from "type=registry,ref=$P/cache/app:sdk" "$ctx"
	assert_equal "$(last_line "$output")" "$ID"
	assert_equal "$(runs_in_store)" ""
	assert_contains "$output" "resolved $P/base/sdk:1 to sha256:"
	sdk_layer=$(skopeo inspect --tls-verify=false --raw "docker://$REGISTRY_HOST/base/sdk:1" | jq -r '.layers[-1].digest')
	sdk_config=$(skopeo inspect --tls-verify=false --raw "docker://$REGISTRY_HOST/base/sdk:1" | jq -r '.config.digest')
	base_config=$(skopeo inspect --tls-verify=false --raw "docker://$REGISTRY_HOST/base/busybox:1" | jq -r '.config.digest')
	cfg=$(skopeo inspect --tls-verify=false --raw "docker://$REGISTRY_HOST/cache/app:sdk" | jq -r .config.digest)
	# configs (for the cache keys), the cache metadata, and the final image's layers: no SDK layer
	want=$( (echo "$cfg"; echo "$sdk_config"; echo "$base_config"; manifest_of app:1 | jq -r '.layers[].digest') | sort -u)
	got=$(jq -r 'select(.method == "GET") | .path' "$FAULT_PROXY_LOG" | grep /blobs/ | sed 's|.*/blobs/||' | sort)
	manifest_of app:1 | jq -c . >&3; jq -c . "$FAULT_PROXY_LOG" | grep blobs >&3
	assert_equal "$got" "$want"
	[[ "$got" != *"$sdk_layer"* ]]
	run_kiln fsck
}

@test "registry cache, mode=min (the default): the final image's steps only" {
	cold_build --cache-to "type=registry,ref=$REGISTRY_HOST/cache/app:min"
	assert_contains "$output" ": 3 entries"
	new_store
	build_ok -t app:1 --cache-from "$REGISTRY_HOST/cache/app:min" "$ctx"
	assert_equal "$(last_line "$output")" "$ID"
	# the build stage ran again (its steps were not exported); the final stage's were all hits
	assert_equal "$(runs_in_store | sort | tr '\n' ' ')" "build plain pre "
	assert_equal "$(printf '%s\n' "$output" | grep -c '^    CACHED')" 3
}

@test "inline cache: the pushed image carries it; --cache-from on the image ref reproduces the image" {
	skip_unless skopeo
	new_store
	build_ok -t "$REGISTRY_HOST/app/img:1" --push --cache-to type=inline "$ctx"
	ID=$(last_line "$output")
	run skopeo inspect --tls-verify=false --config --raw "docker://$REGISTRY_HOST/app/img:1"
	[ "$status" -eq 0 ]
	assert_equal "$(printf '%s' "$output" | jq '."kiln.build-cache.v1".entries | length')" 3
	new_store
	build_ok -t app:2 --cache-from "type=registry,ref=$REGISTRY_HOST/app/img:1" --cache-to type=inline "$ctx"
	assert_equal "$(last_line "$output")" "$ID"
	assert_equal "$(printf '%s\n' "$output" | grep -c '^    CACHED')" 3
	# the final stage's steps were served; the build stage (not in the image) ran
	assert_equal "$(runs_in_store | sort | tr '\n' ' ')" "build plain pre "
	# an image without an inline cache is a warning, not a failure
	new_store
	build_ok -t app:1 --cache-from "$BASE" "$ctx"
	assert_contains "$output" "holds no kiln build cache"
}

@test "local cache: an OCI layout directory umoci and skopeo read; a fresh store reproduces the image" {
	skip_unless skopeo
	cold_build --cache-to "type=local,dest=$BATS_TEST_TMPDIR/cache,mode=max"
	assert_equal "$(jq -r .imageLayoutVersion "$BATS_TEST_TMPDIR/cache/oci-layout")" 1.0.0
	assert_equal "$(jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"]' "$BATS_TEST_TMPDIR/cache/index.json")" latest
	run skopeo inspect --raw "oci:$BATS_TEST_TMPDIR/cache:latest"
	[ "$status" -eq 0 ]
	assert_equal "$(printf '%s' "$output" | jq -r .config.mediaType)" application/vnd.kiln.build-cache.config.v1+json
	new_store
	build_ok -t app:1 --cache-from "type=local,src=$BATS_TEST_TMPDIR/cache" "$ctx"
	assert_equal "$(last_line "$output")" "$ID"
	assert_equal "$(runs_in_store)" ""
	# a second export to the same directory under another tag keeps the first
	build_ok -t app:1 --cache-to "type=local,dest=$BATS_TEST_TMPDIR/cache,tag=second" "$ctx"
	assert_equal "$(jq -r '[.manifests[].annotations["org.opencontainers.image.ref.name"]] | sort | join(",")' "$BATS_TEST_TMPDIR/cache/index.json")" latest,second
}

@test "compression=zstd: the cache's layers are zstd, the image built from it has the same ID" {
	cold_build --cache-to "type=registry,ref=$REGISTRY_HOST/cache/app:zstd,mode=max,compression=zstd"
	run skopeo inspect --tls-verify=false --raw "docker://$REGISTRY_HOST/cache/app:zstd"
	[ "$status" -eq 0 ]
	assert_equal "$(printf '%s' "$output" | jq -r '[.layers[].mediaType] | unique | join(",")')" application/vnd.oci.image.layer.v1.tar+zstd
	new_store
	build_ok -t app:1 --cache-from "$REGISTRY_HOST/cache/app:zstd" "$ctx"
	assert_equal "$(last_line "$output")" "$ID"
	assert_equal "$(runs_in_store)" ""
}

@test "a changed input is never served a stale entry; the steps before it still hit" {
	cache="type=registry,ref=$REGISTRY_HOST/cache/app:main"
	cold_build --cache-to "$cache,mode=max"
	# a context file (its mtime is kept, as COPY keeps it in the layer)
	cp -p "$ctx/a.txt" "$BATS_TEST_TMPDIR/a.orig"
	echo changed >"$ctx/a.txt"
	new_store
	build_ok -t app:1 --cache-from "$cache" "$ctx"
	assert_equal "$(runs_in_store | sort | tr '\n' ' ')" "build plain final "
	unpack app:1 "$BATS_TEST_TMPDIR/r1"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/r1/b.txt")" changed
	cp -p "$BATS_TEST_TMPDIR/a.orig" "$ctx/a.txt"
	# a build arg
	new_store
	build_ok -t app:1 --build-arg FLAVOR=special --cache-from "$cache" "$ctx"
	assert_equal "$(runs_in_store | sort | tr '\n' ' ')" "build special final "
	# same inputs again: all hits (COPY --from sees the same /b.txt, so the final stage hits)
	new_store
	build_ok -t app:1 --cache-from "$cache" "$ctx"
	assert_equal "$(last_line "$output")" "$ID"
	# the base image's digest: another image under the same tag
	printf 'FROM kiln-test/busybox:latest\nRUN touch /newbase\n' >"$BATS_TEST_TMPDIR/Dockerfile.base"
	"$KILN" --root "$BATS_FILE_TMPDIR/root" build -q -t newbase:1 -f "$BATS_TEST_TMPDIR/Dockerfile.base" "$ctx" >/dev/null
	"$KILN" --root "$BATS_FILE_TMPDIR/root" push newbase:1 "$BASE" >/dev/null
	new_store
	build_ok -t app:1 --cache-from "$cache" "$ctx"
	assert_equal "$(runs_in_store | sort | tr '\n' ' ')" "build plain final pre "
	[ "$(last_line "$output")" != "$ID" ]
}

@test "the build's timestamp (SOURCE_DATE_EPOCH) is part of what a cached step depends on" {
	cache="type=registry,ref=$REGISTRY_HOST/cache/app:epoch"
	SOURCE_DATE_EPOCH=1000000000 cold_build --cache-to "$cache,mode=max"
	new_store
	SOURCE_DATE_EPOCH=1000000000 build_ok -t app:1 --cache-from "$cache" "$ctx"
	assert_equal "$(last_line "$output")" "$ID"
	assert_equal "$(runs_in_store)" ""
	new_store
	SOURCE_DATE_EPOCH=1700000000 build_ok -t app:1 --cache-from "$cache" "$ctx"
	[ "$(last_line "$output")" != "$ID" ]
	assert_equal "$(runs_in_store | sort | tr '\n' ' ')" "build plain final pre "
	# 1700000000 is 2023-11-14T22:13:20Z (date -u -d @1700000000)
	assert_equal "$(inspect app:1 .Created)" '"2023-11-14T22:13:20Z"'
	assert_equal "$(inspect app:1 '.History[-1].created')" '"2023-11-14T22:13:20Z"'
}

@test "a missing, unreachable or corrupt cache is a warning, never a failed build" {
	new_store
	build_ok -t app:1 --cache-from "type=registry,ref=$REGISTRY_HOST/cache/none:x" "$ctx"
	assert_contains "$output" "cache 'type=registry,ref=$REGISTRY_HOST/cache/none:x' not imported"
	new_store
	KILN_REGISTRY_RETRIES=0 build_ok -t app:1 --cache-from 127.0.0.1:1/cache/app:x --cache-from "type=local,src=$BATS_TEST_TMPDIR/nowhere" "$ctx"
	assert_contains "$output" "cache '127.0.0.1:1/cache/app:x' not imported"
	assert_contains "$output" "cache 'type=local,src=$BATS_TEST_TMPDIR/nowhere' not imported"
	# a local cache whose entry for the final RUN has a config that does not parse
	build_ok -t app:1 --cache-to "type=local,dest=$BATS_TEST_TMPDIR/cache,mode=max" "$ctx"
	dir="$BATS_TEST_TMPDIR/cache"
	man=$(jq -r '.manifests[0].digest' "$dir/index.json")
	cfg=$(jq -r .config.digest "$dir/blobs/sha256/${man#sha256:}")
	bad_key=$(jq -r '.entries[] | select(.config | fromjson | .history[-1].created_by | test("echo final")) | .key' \
		"$dir/blobs/sha256/${cfg#sha256:}" | head -n 1)
	[ -n "$bad_key" ]
	jq -c --arg k "$bad_key" '(.entries[] | select(.key == $k) | .config) |= "{not json"' \
		"$dir/blobs/sha256/${cfg#sha256:}" >"$BATS_TEST_TMPDIR/cfg.json"
	newcfg=sha256:$(sha256sum "$BATS_TEST_TMPDIR/cfg.json" | cut -d' ' -f1)
	cp "$BATS_TEST_TMPDIR/cfg.json" "$dir/blobs/sha256/${newcfg#sha256:}"
	jq -c --arg d "$newcfg" --argjson s "$(stat -c %s "$BATS_TEST_TMPDIR/cfg.json")" '.config.digest = $d | .config.size = $s' \
		"$dir/blobs/sha256/${man#sha256:}" >"$BATS_TEST_TMPDIR/man.json"
	newman=sha256:$(sha256sum "$BATS_TEST_TMPDIR/man.json" | cut -d' ' -f1)
	cp "$BATS_TEST_TMPDIR/man.json" "$dir/blobs/sha256/${newman#sha256:}"
	jq -c --arg d "$newman" --argjson s "$(stat -c %s "$BATS_TEST_TMPDIR/man.json")" '.manifests[0].digest = $d | .manifests[0].size = $s' \
		"$dir/index.json" >"$BATS_TEST_TMPDIR/index.json"
	cp "$BATS_TEST_TMPDIR/index.json" "$dir/index.json"
	new_store
	build_ok -t app:1 --cache-from "type=local,src=$dir" "$ctx"
	assert_contains "$output" "entry $bad_key is corrupt (its image config does not parse): skipped"
	# only the step whose entry was skipped ran
	assert_equal "$(runs_in_store)" "final"
}

@test "--cache-to and --cache-from specs: usage errors name the value (exit 2)" {
	new_store
	run_kiln 2 build --cache-to type=gha "$ctx"
	assert_contains "$output" "invalid --cache-to 'type=gha': cache type 'gha' is not supported"
	run_kiln 2 build --cache-from type=inline "$ctx"
	assert_contains "$output" "cache type 'inline' is not supported"
	run_kiln 2 build --cache-to type=registry "$ctx"
	assert_contains "$output" "type=registry needs ref=REPO:TAG"
	run_kiln 2 build --cache-to "type=registry,ref=$REGISTRY_HOST/c:1,mode=most" "$ctx"
	assert_contains "$output" "mode must be min or max"
	run_kiln 2 build --cache-to "type=local" "$ctx"
	assert_contains "$output" "type=local needs dest=DIR"
	run_kiln 2 build --cache-to "type=registry,ref=$REGISTRY_HOST/c:1,colour=blue" "$ctx"
	assert_contains "$output" "unknown field 'colour'"
	run_kiln 2 build --cache-from "type=registry,ref=Bad/Ref" "$ctx"
	assert_contains "$output" "invalid --cache-from 'type=registry,ref=Bad/Ref'"
	# an export that fails fails the build, unless ignore-error=true
	KILN_REGISTRY_RETRIES=0 run_kiln 1 build --progress plain --cache-to type=registry,ref=127.0.0.1:1/c:1 "$ctx"
	assert_contains "$output" "cache export to 'type=registry,ref=127.0.0.1:1/c:1' failed"
	KILN_REGISTRY_RETRIES=0 build_ok --cache-to type=registry,ref=127.0.0.1:1/c:1,ignore-error=true "$ctx"
	assert_contains "$output" "(ignore-error=true)"
}
