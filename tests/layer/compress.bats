#!/usr/bin/env bats
# Compression: kiln's gzip (parallel members), zstd and none layers decompress with the standard
# tools to the same tar, digests are what sha256sum says, levels work.
load ../lib/helpers

setup() {
	: "${LAYER_TOOL:?LAYER_TOOL must point at layer-tool (ctest sets it)}"
	T=$BATS_TEST_TMPDIR
	ROOT=$T/root
	D=$T/tree
	mkdir -p "$D/text" "$D/bin"
	# ~6 MiB: compressible text over several 1 MiB gzip members, and random data.
	for i in $(seq 1 40); do
		seq $((i * 1000)) $((i * 1000 + 20000)) >"$D/text/f$i"
	done
	head -c 2500000 /dev/urandom >"$D/bin/random"
	: >"$D/empty"
}

field() { awk -v k="$1" '$1 == k {print $2}' <<<"$2"; }

@test "layer: gzip, zstd and none layers decompress to the same tar with the standard tools" {
	run "$LAYER_TOOL" create "$ROOT" "$D" -c none
	[ "$status" -eq 0 ]
	none_blob=$(field blob "$output")
	diff_id=$(field diff_id "$output")
	assert_equal "$(field digest "$output")" "$diff_id"
	assert_equal "sha256:$(sha256sum <"$none_blob" | cut -d' ' -f1)" "$diff_id"

	run "$LAYER_TOOL" create "$ROOT" "$D" -c gzip
	[ "$status" -eq 0 ]
	gz=$(field blob "$output")
	assert_equal "$(field diff_id "$output")" "$diff_id"
	assert_equal "$(field media_type "$output")" "application/vnd.oci.image.layer.v1.tar+gzip"
	assert_equal "sha256:$(sha256sum <"$gz" | cut -d' ' -f1)" "$(field digest "$output")"
	assert_equal "$(stat -c %s "$gz")" "$(field size "$output")"
	gzip -t <"$gz"
	cmp <(gzip -dc <"$gz") "$none_blob"
	cmp <(pigz -dc <"$gz") "$none_blob"
	cmp <(/usr/bin/python3 -c 'import gzip,sys; sys.stdout.buffer.write(gzip.open(sys.argv[1]).read())' "$gz") "$none_blob"
	# Several members (one per MiB of tar), compressed in parallel.
	members=$(/usr/bin/python3 -c '
import sys, zlib
data = open(sys.argv[1], "rb").read()
n = 0
while data:
    d = zlib.decompressobj(31)
    d.decompress(data)
    data = d.unused_data
    n += 1
print(n)' "$gz")
	[ "$members" -ge 6 ]

	run "$LAYER_TOOL" create "$ROOT" "$D" -c zstd
	[ "$status" -eq 0 ]
	zst=$(field blob "$output")
	assert_equal "$(field diff_id "$output")" "$diff_id"
	assert_equal "$(field media_type "$output")" "application/vnd.oci.image.layer.v1.tar+zstd"
	zstd -t -q <"$zst"
	cmp <(zstd -dc <"$zst") "$none_blob"
	# GNU tar reads each one.
	tar -tzf "$gz" >/dev/null
	tar --zstd -tf "$zst" >/dev/null
	assert_equal "$(tar -tf "$none_blob" | head -3)" "bin/
bin/random
empty"
}

@test "layer: the same tree gives the same compressed bytes whatever the thread count" {
	for c in gzip zstd; do
		run "$LAYER_TOOL" create "$ROOT" "$D" -c $c -t 1
		[ "$status" -eq 0 ]
		one=$(field digest "$output")
		run "$LAYER_TOOL" create "$ROOT" "$D" -c $c -t 2
		[ "$status" -eq 0 ]
		assert_equal "$(field digest "$output")" "$one"
		run "$LAYER_TOOL" create "$ROOT" "$D" -c $c -t 4
		[ "$status" -eq 0 ]
		assert_equal "$(field digest "$output")" "$one"
	done
}

@test "layer: compression levels change the size; bad levels are refused" {
	run "$LAYER_TOOL" create "$ROOT" "$D" -c gzip -l 1
	[ "$status" -eq 0 ]
	fast=$(field size "$output")
	run "$LAYER_TOOL" create "$ROOT" "$D" -c gzip -l 12
	[ "$status" -eq 0 ]
	best=$(field size "$output")
	[ "$best" -lt "$fast" ]
	run "$LAYER_TOOL" create "$ROOT" "$D" -c zstd -l 19
	[ "$status" -eq 0 ]
	run "$LAYER_TOOL" create "$ROOT" "$D" -c gzip -l 13
	[ "$status" -eq 1 ]
	assert_contains "$output" "gzip level '13' out of range 1..12"
	run "$LAYER_TOOL" create "$ROOT" "$D" -c zstd -l 30
	[ "$status" -eq 1 ]
	assert_contains "$output" "zstd level '30' out of range"
	run "$LAYER_TOOL" create "$ROOT" "$D" -c lzma
	[ "$status" -eq 1 ]
	assert_contains "$output" "unknown compression 'lzma'"
}

@test "layer: an empty directory is a valid empty layer" {
	mkdir "$T/void"
	run "$LAYER_TOOL" create "$ROOT" "$T/void"
	[ "$status" -eq 0 ]
	assert_equal "$(field entries "$output")" "0"
	gz=$(field blob "$output")
	assert_equal "$(tar -tzf "$gz")" ""
	mkdir "$T/out"
	run "$LAYER_TOOL" apply "$gz" "$T/out"
	[ "$status" -eq 0 ]
}
