#!/bin/sh
# make-bundle.sh DIR KILN: an OCI bundle rootfs in DIR/rootfs holding kiln and only what it needs
# to build as an unprivileged user: the kiln binary with its shared libraries (from ldd),
# newuidmap/newgidmap (from Debian's uidmap) with theirs, a static busybox as
# /bin/sh, and a user "builder" (1000:1000) with the subordinate range 100000-165535.
# DIR/config.json is left to the caller (runc spec + jq).
set -eu
dir=$1
kiln=$2
r="$dir/rootfs"
rm -rf "$r"
mkdir -p "$r/bin" "$r/usr/local/bin" "$r/usr/bin" "$r/etc" "$r/tmp" "$r/proc" "$r/sys" "$r/dev" \
	"$r/home/builder" "$r/work"
chmod 1777 "$r/tmp"

# copy_with_libs BINARY DEST: the binary and every library ldd names, at the same paths.
copy_with_libs() {
	cp "$1" "$r$2"
	ldd "$1" | awk '/=> \// { print $3 } /^\t\// { print $1 }' | while read -r lib; do
		mkdir -p "$r$(dirname "$lib")"
		cp -L "$lib" "$r$lib"
	done
}
copy_with_libs "$kiln" /usr/local/bin/kiln
copy_with_libs "$(command -v newuidmap)" /usr/bin/newuidmap
copy_with_libs "$(command -v newgidmap)" /usr/bin/newgidmap
# File capabilities rather than Debian's setuid bit: setuid-root newuidmap opens the map as euid
# 0 and then needs CAP_SYS_ADMIN, which a container does not have; with cap_setuid it runs as
# the user, who owns the new namespace (the way Fedora ships it).
chmod 0755 "$r/usr/bin/newuidmap" "$r/usr/bin/newgidmap"
setcap cap_setuid=ep "$r/usr/bin/newuidmap"
setcap cap_setgid=ep "$r/usr/bin/newgidmap"
cp /bin/busybox "$r/bin/busybox"
for a in sh cat ls id echo mkdir test tar; do ln -sf busybox "$r/bin/$a"; done

cat >"$r/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
builder:x:1000:1000:builder:/home/builder:/bin/sh
EOF
cat >"$r/etc/group" <<'EOF'
root:x:0:
builder:x:1000:
EOF
echo "builder:100000:65536" >"$r/etc/subuid"
echo "builder:100000:65536" >"$r/etc/subgid"
chown 1000:1000 "$r/home/builder" "$r/work"
