#!/usr/bin/env bats
# Snapshots: one unpacked layer per chain ID in overlay form, stacked by overlayfs.
load ../lib/helpers

setup() {
	: "${LAYER_TOOL:?LAYER_TOOL must point at layer-tool (ctest sets it)}"
	T=$BATS_TEST_TMPDIR
	ROOT=$T/root
	MOUNTS=()
}

teardown() {
	for m in "${MOUNTS[@]}"; do
		mountpoint -q "$m" && umount "$m"
	done
	return 0
}

need_root_overlay() {
	if [ "$(id -u)" != 0 ] || ! grep -qw overlay /proc/filesystems; then
		skip_or_fail "needs root and overlayfs"
	fi
}

# prepare IMAGE: runs snapshot_prepare; sets LOWERS (colon list, top-first) and CHAIN.
prepare() {
	run "$LAYER_TOOL" prepare "$ROOT" "$1"
	[ "$status" -eq 0 ] || { echo "# $output" >&3; return 1; }
	CHAIN=$(awk '$1 == "chain_id" {print $2}' <<<"$output")
	mapfile -t LOWER_ARR < <(awk '$1 == "lowerdir" {print $2}' <<<"$output")
}

chain_id() {
	# OCI: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))
	local c=$1
	shift
	for d in "$@"; do
		c=sha256:$(printf '%s %s' "$c" "$d" | sha256sum | cut -d' ' -f1)
	done
	echo "$c"
}

make_layers() {
	mkdir -p "$T/l0/etc" "$T/l0/old/sub" "$T/l0/gone"
	echo base >"$T/l0/etc/motd"
	echo 1 >"$T/l0/old/sub/f"
	echo g >"$T/l0/gone/x"
	echo keep >"$T/l0/keep"
	# l1 is an overlay upper dir: whiteout 'gone', opaque 'old', a new file.
	mkdir -p "$T/l1/old" "$T/l1/etc"
	mknod "$T/l1/gone" c 0 0
	/usr/bin/python3 -c "import os; os.setxattr('$T/l1/old', 'trusted.overlay.opaque', b'y')"
	echo new >"$T/l1/old/new"
	echo changed >"$T/l1/etc/motd"
	run "$LAYER_TOOL" image "$ROOT" two:1 "$T/l0"
	[ "$status" -eq 0 ]
	mkdir "$T/empty"
}

@test "layer: snapshots are keyed by chain ID, hold one layer each, and stack in overlayfs" {
	need_root_overlay
	make_layers
	run "$LAYER_TOOL" image "$ROOT" two:1 --overlay "$T/l0" "$T/l1"
	[ "$status" -eq 0 ]
	id=$output
	cfg=$ROOT/blobs/sha256/${id#sha256:}
	d0=$(jq -r '.rootfs.diff_ids[0]' "$cfg")
	d1=$(jq -r '.rootfs.diff_ids[1]' "$cfg")
	prepare two:1
	assert_equal "$CHAIN" "$(chain_id "$d0" "$d1")"
	assert_equal "${#LOWER_ARR[@]}" 2
	assert_equal "${LOWER_ARR[0]}" "$ROOT/snapshots/$(chain_id "$d0" "$d1" | cut -d: -f2)"
	assert_equal "${LOWER_ARR[1]}" "$ROOT/snapshots/${d0#sha256:}"
	# The top snapshot holds only its layer, with overlay whiteouts and the opaque xattr.
	top=${LOWER_ARR[0]}
	assert_equal "$(cd "$top" && find . | sort | tr '\n' ' ')" ". ./etc ./etc/motd ./gone ./old ./old/new "
	assert_equal "$(stat -c '%F %t:%T' "$top/gone")" "character special file 0:0"
	assert_equal "$(getfattr --absolute-names -n trusted.overlay.opaque --only-values "$top/old" 2>/dev/null || /usr/bin/python3 -c "import os; print(os.getxattr('$top/old', 'trusted.overlay.opaque').decode())")" "y"
	assert_equal "$(stat -c %a "$top")" "755"
	# Stacked, overlayfs shows the image's file system.
	mkdir "$T/m"
	MOUNTS+=("$T/m")
	"$LAYER_TOOL" mount "$T/m" "" "" "${LOWER_ARR[@]}"
	assert_equal "$(cd "$T/m" && find . | sort | tr '\n' ' ')" ". ./etc ./etc/motd ./keep ./old ./old/new "
	assert_equal "$(cat "$T/m/etc/motd")" "changed"
	umount "$T/m"
	# Prepared again: nothing is unpacked twice.
	ino=$(stat -c %i "$top")
	prepare two:1
	assert_equal "$(stat -c %i "${LOWER_ARR[0]}")" "$ino"
	# Another image on the same base reuses the base snapshot.
	run "$LAYER_TOOL" image "$ROOT" other:1 "$T/l0" "$T/empty"
	[ "$status" -eq 0 ]
	base_ino=$(stat -c %i "$ROOT/snapshots/${d0#sha256:}")
	prepare other:1
	assert_equal "$(stat -c %i "${LOWER_ARR[1]}")" "$base_ino"
	assert_equal "$(ls "$ROOT/snapshots" | wc -l)" 3
}

@test "layer: two builds preparing the same snapshots at once both succeed" {
	make_layers
	for i in 1 2 3; do
		mkdir -p "$T/x$i"
		head -c 3000000 /dev/urandom >"$T/x$i/data"
	done
	run "$LAYER_TOOL" image "$ROOT" big:1 "$T/l0" "$T/x1" "$T/x2" "$T/x3"
	[ "$status" -eq 0 ]
	"$LAYER_TOOL" prepare "$ROOT" big:1 >"$T/a.out" 2>&1 &
	a=$!
	"$LAYER_TOOL" prepare "$ROOT" big:1 >"$T/b.out" 2>&1 &
	b=$!
	wait $a
	wait $b
	cmp "$T/a.out" "$T/b.out"
	assert_equal "$(ls "$ROOT/snapshots" | wc -l)" 4
	top=$(awk '$1 == "lowerdir" {print $2; exit}' "$T/a.out")
	cmp "$top/data" "$T/x3/data"
	# No half-unpacked leftovers.
	assert_equal "$(find "$ROOT/tmp" -name 'snap-*' 2>/dev/null | wc -l)" 0
}

@test "layer: a corrupt layer blob leaves no snapshot behind" {
	make_layers
	run "$LAYER_TOOL" image "$ROOT" c:1 "$T/l0"
	[ "$status" -eq 0 ]
	cfg=$ROOT/blobs/sha256/${output#sha256:}
	manifest=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "docker.io/library/c:1") | .digest' "$ROOT/index.json")
	layer=$ROOT/blobs/sha256/$(jq -r '.layers[0].digest' "$ROOT/blobs/sha256/${manifest#sha256:}" | cut -d: -f2)
	# Same length, different bytes: a valid gzip stream of a different tar.
	mkdir "$T/other"
	echo evil >"$T/other/evil"
	tar -C "$T/other" -cf - evil | gzip >"$T/evil.gz"
	cp "$T/evil.gz" "$layer"
	run "$LAYER_TOOL" prepare "$ROOT" c:1
	[ "$status" -eq 1 ]
	assert_contains "$output" "layer digest mismatch"
	assert_equal "$(ls "$ROOT/snapshots" 2>/dev/null | wc -l)" 0
	assert_equal "$(find "$ROOT/tmp" -name 'snap-*' 2>/dev/null | wc -l)" 0
}

@test "layer: 100 layers stack through fsconfig lowerdir+ (past mount(2)'s one-page limit)" {
	need_root_overlay
	dirs=()
	for i in $(seq -w 1 100); do
		mkdir -p "$T/many/$i"
		echo "$i" >"$T/many/$i/f$i"
		echo "$i" >"$T/many/$i/top"
		dirs+=("$T/many/$i")
	done
	run "$LAYER_TOOL" image "$ROOT" many:1 "${dirs[@]}"
	[ "$status" -eq 0 ]
	prepare many:1
	assert_equal "${#LOWER_ARR[@]}" 100
	opts=$(IFS=:; echo "${LOWER_ARR[*]}")
	[ "${#opts}" -gt 4096 ]
	mkdir "$T/m"
	MOUNTS+=("$T/m")
	run "$LAYER_TOOL" mount "$T/m" "" "" "${LOWER_ARR[@]}"
	[ "$status" -eq 0 ]
	assert_equal "$(ls "$T/m" | wc -l)" 101
	assert_equal "$(cat "$T/m/top")" "100"
	assert_equal "$(cat "$T/m/f001")" "001"
}
