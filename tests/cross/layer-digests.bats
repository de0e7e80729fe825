#!/usr/bin/env bats
# Layers made by the arm64 build (run under QEMU user emulation) are byte for byte the host
# build's: the same tree gives the same diff_id and the same compressed digest with every
# compression, so an image built on an arm64 machine shares its layers with one built on amd64.
load ../lib/helpers

setup() {
	: "${LAYER_TOOL:?LAYER_TOOL must point at the arm64 layer-tool (ctest sets it)}"
	: "${HOST_LAYER_TOOL:?HOST_LAYER_TOOL must point at the layer-tool of the host build}"
	: "${KILN_EMULATOR:?KILN_EMULATOR must name qemu-aarch64-static}"
	# The host build is made first by make check (make test); without it the test cannot judge.
	[ -x "$HOST_LAYER_TOOL" ] || { echo "# no host layer-tool at $HOST_LAYER_TOOL" >&3; return 1; }
	skip_unless "$KILN_EMULATOR"
	T=$BATS_TEST_TMPDIR
	D=$T/tree
	# A tree with what a layer has to get right: modes, owners, times, links, long names,
	# sparse and empty files, compressible text and incompressible data.
	mkdir -p "$D/etc" "$D/usr/bin" "$D/var/empty" "$D/private" "$D/$(printf 'long%.0s' $(seq 1 40))/deeper"
	for i in $(seq 1 10); do
		seq $((i * 1000)) $((i * 1000 + 20000)) >"$D/etc/conf$i"
	done
	head -c 400000 /dev/urandom >"$D/usr/bin/blob"
	printf '#!/bin/sh\necho hi\n' >"$D/usr/bin/tool"
	chmod 4755 "$D/usr/bin/tool"
	chmod 0700 "$D/private"
	echo secret >"$D/private/key"
	chown -R 1000:2000 "$D/private"
	ln "$D/etc/conf1" "$D/etc/conf1.hard"
	ln -s ../etc/conf2 "$D/usr/conf-link"
	truncate -s 3M "$D/var/sparse"
	: >"$D/var/empty/.keep"
	echo deep >"$D/$(printf 'long%.0s' $(seq 1 40))/deeper/file"
	find "$D" -exec touch -h -d '2024-02-29 12:34:56.789 UTC' {} +
}

field() { awk -v k="$1" '$1 == k {print $2}' <<<"$2"; }

@test "cross: the arm64 build is an aarch64 program run under emulation" {
	run file -L "$LAYER_TOOL"
	assert_contains "$output" "ARM aarch64"
	run "$KILN_EMULATOR" "$LAYER_TOOL"
	assert_equal "$status" "2"
	assert_contains "$output" "usage: layer-tool"
}

@test "cross: layer digests made by the arm64 build equal the host build's" {
	for c in none gzip zstd; do
		run "$HOST_LAYER_TOOL" create "$T/host-$c" "$D" -c "$c"
		assert_equal "$status" "0"
		host=$output
		run "$KILN_EMULATOR" "$LAYER_TOOL" create "$T/arm64-$c" "$D" -c "$c"
		assert_equal "$status" "0"
		arm=$output
		for k in digest diff_id size diff_size entries media_type; do
			[ -n "$(field "$k" "$host")" ]
			assert_equal "$c $k $(field "$k" "$arm")" "$c $k $(field "$k" "$host")"
		done
		cmp "$(field blob "$host")" "$(field blob "$arm")"
	done
}
