#!/usr/bin/env bats
# Applying hostile layers: every one fails with a clear error (or stays inside the target),
# nothing is written outside the target, and bad streams/digests are rejected.
load ../lib/helpers

setup() {
	: "${LAYER_TOOL:?LAYER_TOOL must point at layer-tool (ctest sets it)}"
	T=$BATS_TEST_TMPDIR
	mkdir -p "$T/outside" "$T/tars"
	echo secret >"$T/outside/secret"
	/usr/bin/python3 "$KILN_SRC/tests/layer/hostile.py" "$T/tars" "$T/outside"
	BEFORE=$(outside_list)
}

# Everything in the test dir but the target and the input tars: must never change.
outside_list() {
	(cd "$T" && find . -mindepth 1 -path ./target -prune -o -path ./tars -prune -o -printf '%p %s %n\n' | sort)
}

# apply_bad TAR EXPECTED_MESSAGE [apply options...]
apply_bad() {
	local tar=$1 msg=$2
	shift 2
	rm -rf "$T/target"
	mkdir "$T/target"
	run "$LAYER_TOOL" apply "$@" "$T/tars/$tar" "$T/target"
	echo "# $tar: $output" >&3
	[ "$status" -eq 1 ]
	assert_contains "$output" "$msg"
	assert_outside_unchanged
}

assert_outside_unchanged() {
	assert_equal "$(outside_list)" "$BEFORE"
	assert_equal "$(cat "$T/outside/secret")" "secret"
}

@test "layer: entries with '..' are rejected" {
	apply_bad dotdot.tar "entry '../escaped' escapes the root"
	apply_bad dotdot-deep.tar "escapes the root"
	[ ! -e "$T/escaped" ]
}

@test "layer: absolute names stay inside the target" {
	rm -rf "$T/target"
	mkdir "$T/target"
	run "$LAYER_TOOL" apply "$T/tars/absolute.tar" "$T/target"
	[ "$status" -eq 0 ]
	assert_equal "$(cat "$T/target/abs/file")" "abs"
	[ ! -e /abs/file ]
	assert_outside_unchanged
}

@test "layer: a file through a symlink is refused (absolute, relative, replaced dir)" {
	apply_bad symlink-abs.tar "refusing to write through symlink 'link'"
	apply_bad symlink-rel.tar "refusing to write through symlink 'l2'"
	apply_bad symlink-dir.tar "refusing to write through symlink 'etc'"
	[ ! -e "$T/outside/pwned" ] && [ ! -e "$T/outside/passwd" ]
}

@test "layer: without openat2 (component walk) the same layers are refused" {
	apply_bad dotdot.tar "escapes the root" --walk
	apply_bad symlink-abs.tar "refusing to write through symlink 'link'" --walk
	apply_bad symlink-rel.tar "refusing to write through symlink 'l2'" --walk
	apply_bad symlink-dir.tar "refusing to write through symlink 'etc'" --walk
	apply_bad hardlink-dotdot.tar "escapes the root" --walk
	rm -rf "$T/target" && mkdir "$T/target"
	run "$LAYER_TOOL" apply --walk "$T/tars/good.tar" "$T/target"
	[ "$status" -eq 0 ]
	assert_equal "$(cat "$T/target/etc/motd")" "hi"
}

@test "layer: hardlinks to outside are refused; a hardlink to a symlink is not followed" {
	apply_bad hardlink-dotdot.tar "hardlink target of '../outside/secret' escapes the root"
	apply_bad hardlink-abs.tar "hardlink 'hl' -> '${T#/}/outside/secret': cannot open directory"
	rm -rf "$T/target"
	mkdir "$T/target"
	run "$LAYER_TOOL" apply "$T/tars/hardlink-symlink.tar" "$T/target"
	[ "$status" -eq 0 ]
	assert_equal "$(cat "$T/target/h")" "overwrite"
	[ -L "$T/target/s" ]
	assert_outside_unchanged
}

@test "layer: whiteouts of '..' and '.' are rejected" {
	apply_bad whiteout-dotdot.tar "invalid whiteout '.wh..'"
	apply_bad whiteout-dot.tar "invalid whiteout 'a/.wh..'"
	[ -d "$T/outside" ]
}

@test "layer: device files need root" {
	skip_unless setpriv
	require_root "needs root to switch to nobody"
	local shared
	shared=$(mktemp -d /tmp/kiln-layer-dev.XXXXXX)
	chmod 0777 "$shared"
	run setpriv --reuid=65534 --regid=65534 --clear-groups "$LAYER_TOOL" apply - "$shared" <"$T/tars/device.tar"
	rm -rf "$shared"
	[ "$status" -eq 1 ]
	assert_contains "$output" "device file 'dev/null2' needs root"
	rm -rf "$T/target"
	mkdir "$T/target"
	# As root it works.
	run "$LAYER_TOOL" apply "$T/tars/device.tar" "$T/target"
	[ "$status" -eq 0 ]
	[ -c "$T/target/dev/null2" ]
}

@test "layer: truncated and corrupt streams fail clearly" {
	gzip -c "$T/tars/good.tar" >"$T/tars/good.tar.gz"
	head -c 60 "$T/tars/good.tar.gz" >"$T/tars/trunc.tar.gz"
	apply_bad trunc.tar.gz "unexpected end of gzip stream"
	zstd -q -c "$T/tars/good.tar" >"$T/tars/good.tar.zst"
	head -c 40 "$T/tars/good.tar.zst" >"$T/tars/trunc.tar.zst"
	apply_bad trunc.tar.zst "zstd stream"
	head -c 700 "$T/tars/good.tar" >"$T/tars/trunc.tar"
	apply_bad trunc.tar "cannot read data of 'bin/sh': Truncated input file"
	cat "$T/tars/good.tar.gz" >"$T/tars/bad.tar.gz"
	printf 'garbage' >>"$T/tars/bad.tar.gz"
	apply_bad bad.tar.gz "trailing garbage after gzip data"
	# The intact ones apply, compressed or not.
	for f in good.tar good.tar.gz good.tar.zst; do
		rm -rf "$T/target" && mkdir "$T/target"
		run "$LAYER_TOOL" apply "$T/tars/$f" "$T/target"
		[ "$status" -eq 0 ]
		assert_equal "$(cat "$T/target/etc/motd")" "hi"
		assert_equal "$(readlink "$T/target/bin/ash")" "sh"
	done
}

@test "layer: digest and diff_id mismatches are rejected" {
	gzip -c "$T/tars/good.tar" >"$T/tars/good.tar.gz"
	good=sha256:$(sha256sum <"$T/tars/good.tar.gz" | cut -d' ' -f1)
	diff=sha256:$(sha256sum <"$T/tars/good.tar" | cut -d' ' -f1)
	zero=sha256:$(printf '0%.0s' $(seq 64))
	apply_bad good.tar.gz "layer digest mismatch: expected '$zero', got '$good'" --digest "$zero"
	apply_bad good.tar.gz "layer diff_id mismatch: expected '$zero', got '$diff'" --diff-id "$zero"
	rm -rf "$T/target" && mkdir "$T/target"
	run "$LAYER_TOOL" apply --digest "$good" --diff-id "$diff" "$T/tars/good.tar.gz" "$T/target"
	[ "$status" -eq 0 ]
	assert_equal "$output" "diff_id $diff"
}

@test "layer: a 1 GB sparse file applies as holes; the size limit bounds it" {
	truncate -s 1G "$T/bomb"
	printf 'end' | dd of="$T/bomb" bs=1 seek=$((1024 * 1024 * 1024 - 3)) conv=notrunc status=none
	tar -C "$T" --sparse --format=posix -czf "$T/tars/sparse.tar.gz" bomb
	rm "$T/bomb"
	[ "$(stat -c %s "$T/tars/sparse.tar.gz")" -lt 100000 ]
	BEFORE=$(outside_list)
	# Bounded by a limit: 512 MiB of file data is refused.
	apply_bad sparse.tar.gz "layer data exceeds the limit of 536870912 bytes at 'bomb'" --max-size 536870912
	# Within the default limit (64 GiB) it applies, and the holes stay holes on disk.
	rm -rf "$T/target" && mkdir "$T/target"
	run "$LAYER_TOOL" apply "$T/tars/sparse.tar.gz" "$T/target"
	[ "$status" -eq 0 ]
	assert_equal "$(stat -c %s "$T/target/bomb")" 1073741824
	[ "$(du -k "$T/target/bomb" | cut -f1)" -lt 1024 ]
	assert_equal "$(tail -c 3 "$T/target/bomb")" "end"
	# A zero-filled (non-sparse) member compresses to little and is written as holes too.
	truncate -s 256M "$T/zeros"
	tar -C "$T" -cf - zeros | gzip -1 >"$T/tars/zeros.tar.gz"
	rm "$T/zeros"
	rm -rf "$T/target" && mkdir "$T/target"
	run "$LAYER_TOOL" apply "$T/tars/zeros.tar.gz" "$T/target"
	[ "$status" -eq 0 ]
	[ "$(du -k "$T/target/zeros" | cut -f1)" -lt 1024 ]
	# The entry count limit.
	apply_bad good.tar "layer has more than 2 entries" --max-entries 2
}
