#!/usr/bin/env bats
# kiln import: a one-layer image from a rootfs tarball, read back by skopeo and umoci.
load ../lib/helpers

setup() {
	kiln_setup_root
	T=$BATS_TEST_TMPDIR
	ROOT=$KILN_TEST_ROOT
	sh "$KILN_SRC/testdata/base/make-rootfs.sh" "$T/base" >/dev/null
	TAR=$T/base/rootfs.tar
	REF=docker.io/kiln-test/busybox:latest
}

host_arch() {
	case "$(uname -m)" in
	x86_64) echo amd64 ;;
	aarch64) echo arm64 ;;
	*) uname -m ;;
	esac
}

# blob DIGEST: path of a blob in the store
blob() { echo "$ROOT/blobs/sha256/${1#sha256:}"; }

@test "layer: kiln import makes a one-layer OCI image that skopeo and umoci read" {
	skip_unless skopeo
	skip_unless umoci
	SOURCE_DATE_EPOCH=1700000000 run_kiln import "$TAR" kiln-test/busybox
	id=$output
	[[ "$id" =~ ^sha256:[0-9a-f]{64}$ ]]
	manifest=$(jq -r --arg r "$REF" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $r) | .digest' "$ROOT/index.json")
	m=$(blob "$manifest")
	assert_equal "$(jq -r .config.digest "$m")" "$id"
	assert_equal "$(jq -r '.layers | length' "$m")" "1"
	assert_equal "$(jq -r '.layers[0].mediaType' "$m")" "application/vnd.oci.image.layer.v1.tar+gzip"
	cfg=$(blob "$id")
	assert_equal "sha256:$(sha256sum <"$cfg" | cut -d' ' -f1)" "$id"
	assert_equal "$(jq -r .os "$cfg")" "linux"
	assert_equal "$(jq -r .architecture "$cfg")" "$(host_arch)"
	assert_equal "$(jq -r .created "$cfg")" "2023-11-14T22:13:20Z"
	assert_equal "$(jq -c .history "$cfg")" '[{"created":"2023-11-14T22:13:20Z","created_by":"kiln import"}]'
	layer=$(blob "$(jq -r '.layers[0].digest' "$m")")
	assert_equal "$(jq -r '.rootfs.diff_ids[0]' "$cfg")" "sha256:$(gzip -dc <"$layer" | sha256sum | cut -d' ' -f1)"
	# The layer holds the rootfs: same names, modes and owners as the input tarball.
	diff <(tar -tv --numeric-owner -f "$TAR" | awk '{print $1, $2, $6}' | sed 's|^\(.* \)\./|\1|; s|/$||' | grep -v ' \.\?$' | sort) \
		<(tar -tvz --numeric-owner -f "$layer" | awk '{print $1, $2, $6}' | sed 's|/$||' | sort)

	run skopeo inspect "oci:$ROOT:$REF"
	[ "$status" -eq 0 ]
	assert_equal "$(jq -r .Os <<<"$output")" "linux"
	assert_equal "$(jq -r '.Layers | length' <<<"$output")" "1"
	run umoci unpack --image "$ROOT:$REF" "$T/bundle"
	[ "$status" -eq 0 ]
	cmp "$T/bundle/rootfs/etc/passwd" "$T/base/rootfs/etc/passwd"
	[ -x "$T/bundle/rootfs/bin/busybox" ]
	assert_equal "$(readlink "$T/bundle/rootfs/bin/sh")" "/bin/busybox"
	assert_equal "$(stat -c %a "$T/bundle/rootfs/tmp")" "1777"
}

@test "layer: kiln import is reproducible and reads compressed tarballs and stdin" {
	export SOURCE_DATE_EPOCH=1700000000
	run_kiln import "$TAR" a:1
	id=$output
	run_kiln import "$TAR" a:2
	assert_equal "$output" "$id"
	gzip -c "$TAR" >"$T/r.tar.gz"
	zstd -q -c "$TAR" >"$T/r.tar.zst"
	xz -c "$TAR" >"$T/r.tar.xz"
	for f in r.tar.gz r.tar.zst r.tar.xz; do
		run_kiln import "$T/$f" "b:$f"
		assert_equal "$output" "$id"
	done
	run_kiln import - c:1 <"$TAR"
	assert_equal "$output" "$id"
	# zstd layers and Docker manifests on request.
	run_kiln import --compression zstd --format docker "$TAR" d:1
	cfg=$(blob "$output")
	assert_equal "$(jq -r '.rootfs.diff_ids[0]' "$cfg")" "$(jq -r '.rootfs.diff_ids[0]' "$(blob "$id")")"
	manifest=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "docker.io/library/d:1") | .digest' "$ROOT/index.json")
	assert_equal "$(jq -r .mediaType "$(blob "$manifest")")" "application/vnd.docker.distribution.manifest.v2+json"
	assert_equal "$(jq -r '.layers[0].mediaType' "$(blob "$manifest")")" "application/vnd.docker.image.rootfs.diff.tar.zstd"
}

@test "layer: kiln import refuses unsafe or broken tarballs and leaves the store as it was" {
	run_kiln import "$TAR" base:1
	cp "$ROOT/index.json" "$T/index.before"
	/usr/bin/python3 - "$T/evil.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w") as t:
    ti = tarfile.TarInfo("../../etc/evil"); ti.size = 1
    t.addfile(ti, io.BytesIO(b"x"))
PY
	run_kiln 1 import "$T/evil.tar" evil:1
	assert_contains "$output" "kiln: import '$T/evil.tar': tar entry '../../etc/evil' escapes the root ('..' component)"
	head -c 3000 "$T/base/rootfs.tar" | gzip >"$T/trunc.tar.gz"
	run_kiln 1 import "$T/trunc.tar.gz" trunc:1
	assert_contains "$output" "kiln: import '$T/trunc.tar.gz'"
	run_kiln 1 import "$T/missing.tar" x:1
	assert_contains "$output" "cannot open '$T/missing.tar'"
	cmp "$ROOT/index.json" "$T/index.before"
	run_kiln fsck
	run_kiln 2 import "$TAR"
	assert_contains "$output" "expected FILE and NAME"
	run_kiln 2 import --compression lzma "$TAR" x:1
	assert_contains "$output" "unknown compression 'lzma'"
	run_kiln import --help
	assert_contains "$output" "Usage: kiln import [OPTIONS] FILE|- NAME"
}

@test "layer: kiln import keeps hardlinks, devices, fifos, xattrs and drops names and sub-second times" {
	require_root "device nodes need root"
	S=$T/src
	mkdir -p "$S/bin" "$S/dev"
	echo data >"$S/bin/a"
	ln "$S/bin/a" "$S/bin/b"
	mkfifo "$S/dev/fifo"
	mknod "$S/dev/null" c 1 3
	ln -s a "$S/bin/sym"
	chown 1000:50 "$S/bin/a"
	/usr/bin/python3 -c "import os; os.setxattr('$S/bin/a', 'security.capability', bytes.fromhex('0100000200200000000000000000000000000000'))"
	touch -d '2001-09-09 01:46:40.5' "$S/bin/a"
	tar --sort=name --xattrs --xattrs-include='*' --format=posix -C "$S" -cf "$T/in.tar" ./bin ./dev
	run_kiln import "$T/in.tar" special:1
	cfg=$(blob "$output")
	manifest=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "docker.io/library/special:1") | .digest' "$ROOT/index.json")
	layer=$(blob "$(jq -r '.layers[0].digest' "$(blob "$manifest")")")
	run bash -c "TZ=UTC tar --numeric-owner --xattrs --xattrs-include='*' -tvvzf '$layer' | sed -E 's/ +/ /g' | awk '\$1 == \"x:\" { print; next } { \$4 = \$5 = \"\"; print }' | sed -E 's/ +/ /g'"
	assert_equal "$output" "drwxr-xr-x 0/0 0 bin/
-rw-r--r--* 1000/50 5 bin/a
 x: 20 security.capability
hrw-r--r-- 1000/50 0 bin/b link to bin/a
lrwxrwxrwx 0/0 0 bin/sym -> a
drwxr-xr-x 0/0 0 dev/
prw-r--r-- 0/0 0 dev/fifo
crw-r--r-- 0/0 1,3 dev/null"
	# No user/group names, no PAX atime/ctime, whole-second mtimes.
	run bash -c "gzip -dc '$layer' | grep -a -c -e 'atime=' -e 'ctime=' -e 'mtime=' || true"
	assert_equal "$output" "0"
	run bash -c "gzip -dc '$layer' | tar -tv -f - | grep -c root || true"
	assert_equal "$output" "0"
	assert_equal "$(tar -tvz --full-time -f "$layer" bin/a | sed -E 's/ +/ /g' | cut -d' ' -f4,5)" "2001-09-09 01:46:40"
}
