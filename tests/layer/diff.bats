#!/usr/bin/env bats
# Layer diffs of real overlayfs mounts, listed by GNU tar: exact entries, modes, owners, xattrs.
load ../lib/helpers

setup() {
	: "${LAYER_TOOL:?LAYER_TOOL must point at layer-tool (ctest sets it)}"
	T=$BATS_TEST_TMPDIR
	ROOT=$T/root
	export TZ=UTC
}

teardown() {
	if [ -n "${MERGED:-}" ] && mountpoint -q "$MERGED"; then umount "$MERGED"; fi
}

need_root_overlay() {
	if [ "$(id -u)" != 0 ] || ! grep -qw overlay /proc/filesystems; then
		skip_or_fail "needs root and overlayfs"
	fi
}

# create_layer ARGS...: runs layer-tool create, sets $BLOB/$DIGEST/$DIFF_ID.
create_layer() {
	run "$LAYER_TOOL" create "$ROOT" "$@"
	[ "$status" -eq 0 ]
	BLOB=$(awk '$1 == "blob" {print $2}' <<<"$output")
	DIGEST=$(awk '$1 == "digest" {print $2}' <<<"$output")
	DIFF_ID=$(awk '$1 == "diff_id" {print $2}' <<<"$output")
}

make_lower() {
	L=$T/lower
	mkdir -p "$L/etc" "$L/deldir/sub" "$L/opq" "$L/usr/bin"
	echo root:x:0:0 >"$L/etc/passwd"
	echo keep >"$L/etc/keep"
	echo gone >"$L/del.txt"
	echo a >"$L/deldir/a"
	echo b >"$L/deldir/sub/b"
	echo old1 >"$L/opq/old1"
	echo old2 >"$L/opq/old2"
	echo v1 >"$L/mod.txt"
	echo tool >"$L/usr/bin/tool"
	chmod 0755 "$L/usr/bin/tool"
	find "$L" -exec touch -h -d @1000000000 {} +
}

@test "layer: diff of an overlay mount lists exactly the changes (GNU tar)" {
	need_root_overlay
	make_lower
	mkdir -p "$T/upper" "$T/work" "$T/merged"
	MERGED=$T/merged
	"$LAYER_TOOL" mount "$MERGED" "$T/upper" "$T/work" "$L"
	M=$MERGED
	echo new >"$M/new.txt"
	chmod 0640 "$M/new.txt"
	chown 1000:50 "$M/new.txt"
	/usr/bin/python3 -c "import os; os.setxattr('$M/new.txt', 'user.k', b'v')"
	echo v2 >"$M/mod.txt"
	rm "$M/del.txt"
	rm -rf "$M/deldir"
	rm -rf "$M/opq"
	mkdir "$M/opq"
	echo fresh >"$M/opq/new"
	echo x >"$M/hl1"
	ln "$M/hl1" "$M/hl2"
	ln -s /etc/passwd "$M/link"
	mkfifo "$M/fifo"
	mknod "$M/dev" c 4 5
	chmod 0600 "$M/etc/keep"
	cp "$M/usr/bin/tool" "$M/usr/bin/ping"
	/usr/bin/python3 -c "import os; os.setxattr('$M/usr/bin/ping', 'security.capability', bytes.fromhex('0100000200200000000000000000000000000000'))"
	umount "$MERGED"

	SOURCE_DATE_EPOCH=1500000000 create_layer --overlay "$T/upper" --lower "$L"
	run tar --numeric-owner --xattrs --xattrs-include='*' -tvvzf "$BLOB"
	[ "$status" -eq 0 ]
	# Drop the column alignment so the comparison is about the fields.
	actual=$(sed -E 's/ +/ /g' <<<"$output")
	expected="---------- 0/0 0 1970-01-01 00:00 .wh.del.txt
---------- 0/0 0 1970-01-01 00:00 .wh.deldir
crw-r--r-- 0/0 4,5 2017-07-14 02:40 dev
drwxr-xr-x 0/0 0 2001-09-09 01:46 etc/
-rw------- 0/0 5 2001-09-09 01:46 etc/keep
prw-r--r-- 0/0 0 2017-07-14 02:40 fifo
-rw-r--r-- 0/0 2 2017-07-14 02:40 hl1
hrw-r--r-- 0/0 0 2017-07-14 02:40 hl2 link to hl1
lrwxrwxrwx 0/0 0 2017-07-14 02:40 link -> /etc/passwd
-rw-r--r-- 0/0 3 2017-07-14 02:40 mod.txt
-rw-r-----* 1000/50 4 2017-07-14 02:40 new.txt
 x: 1 user.k
drwxr-xr-x 0/0 0 2017-07-14 02:40 opq/
---------- 0/0 0 1970-01-01 00:00 opq/.wh..wh..opq
-rw-r--r-- 0/0 6 2017-07-14 02:40 opq/new
drwxr-xr-x 0/0 0 2001-09-09 01:46 usr/
drwxr-xr-x 0/0 0 2017-07-14 02:40 usr/bin/
-rwxr-xr-x* 0/0 5 2017-07-14 02:40 usr/bin/ping
 x: 20 security.capability"
	assert_equal "$actual" "$expected"
	# No overlay bookkeeping and no host names leak into the layer.
	run bash -c "zcat '$BLOB' | grep -a -c -e 'trusted.overlay' -e 'user.overlay' || true"
	assert_equal "$output" "0"
	run bash -c "tar --numeric-owner -tvzf '$BLOB' >/dev/null && zcat '$BLOB' | tar -tv --format=posix -f - | grep -c root || true"
	assert_equal "$output" "0"
}

@test "layer: diff round trip - applying the layer over the lower gives the merged view" {
	need_root_overlay
	make_lower
	mkdir -p "$T/upper" "$T/work" "$T/merged"
	MERGED=$T/merged
	"$LAYER_TOOL" mount "$MERGED" "$T/upper" "$T/work" "$L"
	M=$MERGED
	rm -rf "$M/deldir" "$M/del.txt" "$M/opq"
	mkdir -p "$M/opq/d"
	echo n >"$M/opq/d/n"
	echo v3 >"$M/mod.txt"
	ln -s mod.txt "$M/sym"
	(cd "$MERGED" && find . -printf '%p %y %m %U:%G %s %l\n' | sort) >"$T/merged.list"
	umount "$MERGED"
	create_layer --overlay "$T/upper" --lower "$L"
	cp -a "$L" "$T/flat"
	run "$LAYER_TOOL" apply "$BLOB" "$T/flat" --digest "$DIGEST" --diff-id "$DIFF_ID"
	[ "$status" -eq 0 ]
	(cd "$T/flat" && find . -printf '%p %y %m %U:%G %s %l\n' | sort) >"$T/flat.list"
	run diff -u "$T/merged.list" "$T/flat.list"
	echo "$output" >&3
	[ "$status" -eq 0 ]
	# And as a snapshot stacked on the lower, overlayfs shows the same tree.
	mkdir "$T/snap" "$T/view"
	"$LAYER_TOOL" apply --overlay "$BLOB" "$T/snap"
	MERGED=$T/view
	"$LAYER_TOOL" mount "$MERGED" "" "" "$T/snap" "$L"
	(cd "$MERGED" && find . -printf '%p %y %m %U:%G %s %l\n' | sort) >"$T/view.list"
	umount "$MERGED"
	run diff -u "$T/merged.list" "$T/view.list"
	echo "$output" >&3
	[ "$status" -eq 0 ]
}

@test "layer: xattr whiteouts, user.overlay opaque dirs and opaque=x are read as the kernel does" {
	require_root "trusted.* xattrs need root"
	U=$T/upper
	mkdir -p "$U/a" "$U/b" "$U/c"
	: >"$U/a/xw"
	/usr/bin/python3 - <<PY
import os
os.setxattr('$U/a/xw', 'trusted.overlay.whiteout', b'')
os.setxattr('$U/a', 'trusted.overlay.opaque', b'x')
os.setxattr('$U/b', 'user.overlay.opaque', b'y')
os.setxattr('$U/c', 'trusted.overlay.origin', b'\x00')
PY
	touch -d @1000000000 "$U/a" "$U/b" "$U/c"
	create_layer --overlay "$U"
	run tar -tzf "$BLOB"
	assert_equal "$output" "a/
a/.wh.xw
b/
b/.wh..wh..opq
c/"
	# A redirected directory cannot be diffed from the upper dir alone.
	mkdir "$U/r"
	/usr/bin/python3 -c "import os; os.setxattr('$U/r', 'trusted.overlay.redirect', b'/x')"
	run "$LAYER_TOOL" create "$ROOT" --overlay "$U"
	[ "$status" -eq 1 ]
	assert_contains "$output" "redirect_dir=off"
}

@test "layer: a plain directory becomes a deterministic layer; SOURCE_DATE_EPOCH clamps" {
	D=$T/dir
	mkdir -p "$D/b/c" "$D/a"
	echo 1 >"$D/b/c/f"
	echo 2 >"$D/a-x"
	printf 'long%.0s' $(seq 40) >"$D/a/$(printf 'n%.0s' $(seq 120))"
	touch -d @1600000000 "$D/b/c/f"
	create_layer "$D"
	first=$DIGEST
	first_blob=$BLOB
	create_layer "$D"
	assert_equal "$DIGEST" "$first"
	# Byte-identical across processes, with a PAX header only for the long name.
	run bash -c "zcat '$first_blob' | tar -tv --numeric-owner -f - | sed -E 's/ +/ /g' | cut -d' ' -f6-"
	assert_equal "$output" "a/
a/$(printf 'n%.0s' $(seq 120))
a-x
b/
b/c/
b/c/f"
	run bash -c "zcat '$first_blob' | grep -a -c PaxHeader"
	assert_equal "$output" "1"
	# Entries newer than SOURCE_DATE_EPOCH are clamped; older ones keep their time.
	SOURCE_DATE_EPOCH=1700000000 create_layer "$D"
	run bash -c "TZ=UTC tar -tv --full-time -zf '$BLOB' | sed -E 's/ +/ /g' | cut -d' ' -f4,5,6"
	assert_equal "$output" "2023-11-14 22:13:20 a/
2023-11-14 22:13:20 a/$(printf 'n%.0s' $(seq 120))
2023-11-14 22:13:20 a-x
2023-11-14 22:13:20 b/
2023-11-14 22:13:20 b/c/
2020-09-13 12:26:40 b/c/f"
	clamped=$DIGEST
	touch "$D/a-x" "$D/b"
	SOURCE_DATE_EPOCH=1700000000 create_layer "$D"
	assert_equal "$DIGEST" "$clamped"
	run "$LAYER_TOOL" create "$ROOT" "$D"
	[ "$status" -eq 0 ]
	SOURCE_DATE_EPOCH=abc run "$LAYER_TOOL" create "$ROOT" "$D"
	[ "$status" -eq 1 ]
	assert_contains "$output" "invalid SOURCE_DATE_EPOCH 'abc'"
}

@test "layer: with LAYER_PARENTS_FROM_LOWER, directories that exist below keep the lower's metadata" {
	L=$T/lower
	S=$T/staging
	mkdir -p "$L/app/conf" "$S/app/conf" "$S/new"
	chmod 0750 "$L/app"
	chown 1000:50 "$L/app"
	touch -d @1000000000 "$L/app" "$L/app/conf"
	echo x >"$S/app/conf/file"
	touch -d @1500000000 "$S/app/conf/file" "$S/app/conf" "$S/app" "$S/new"
	create_layer --overlay --parents-from-lower --lower "$L" "$S"
	run bash -c "TZ=UTC tar --numeric-owner -tvzf '$BLOB' | sed -E 's/ +/ /g' | cut -d' ' -f1,2,4,6"
	assert_equal "$output" "drwxr-x--- 1000/50 2001-09-09 app/
drwxr-xr-x 0/0 2001-09-09 app/conf/
-rw-r--r-- 0/0 2017-07-14 app/conf/file
drwxr-xr-x 0/0 2017-07-14 new/"
	# Without the flag, the staging dir's own metadata is written.
	create_layer "$S"
	run bash -c "TZ=UTC tar --numeric-owner -tvzf '$BLOB' | sed -E 's/ +/ /g' | cut -d' ' -f1,2,4,6 | head -1"
	assert_equal "$output" "drwxr-xr-x 0/0 2017-07-14 app/"
}
