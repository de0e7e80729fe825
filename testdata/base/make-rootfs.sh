#!/bin/sh
# Makes kiln's test base image root filesystem from Debian's busybox-static, with no network:
# OUT/rootfs/ (a tree) and OUT/rootfs.tar (deterministic: sorted, uid/gid 0, mtime 0).
# `kiln import OUT/rootfs.tar kiln-test/busybox:latest` turns it into the base image that the
# tests and testdata Dockerfiles build FROM.
# Usage: testdata/base/make-rootfs.sh [OUT]   (default: testdata/base/out)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
bb=/bin/busybox
[ -x "$bb" ] || { echo "make-rootfs: $bb missing (apt-get install busybox-static)" >&2; exit 1; }
file -L "$bb" 2>/dev/null | grep -q 'statically linked' || ldd "$bb" 2>&1 | grep -q 'not a dynamic' ||
	{ echo "make-rootfs: $bb is not static (install busybox-static)" >&2; exit 1; }

rm -rf "$out/rootfs" "$out/rootfs.tar"
r=$out/rootfs
mkdir -p "$r"
for d in bin sbin usr/bin usr/sbin etc root home/app tmp var/tmp dev proc sys run; do
	mkdir -p "$r/$d"
done
chmod 1777 "$r/tmp" "$r/var/tmp"
chmod 700 "$r/root"
cp "$bb" "$r/bin/busybox"
for applet in $("$bb" --list-full); do
	[ "$applet" = bin/busybox ] && continue
	[ -e "$r/$applet" ] || ln -s /bin/busybox "$r/$applet"
done
cat >"$r/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$r/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
wheel:x:10:root
app:x:1000:
staff:x:50:app
nogroup:x:65534:
GROUP
chown 1000:1000 "$r/home/app"
echo 'kiln-test' >"$r/etc/hostname"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$r" -cf "$out/rootfs.tar.tmp" \
	--exclude=./home/app . 
# home/app keeps its owner 1000:1000
tar --sort=name --mtime=@0 --numeric-owner -C "$r" -rf "$out/rootfs.tar.tmp" ./home/app
mv "$out/rootfs.tar.tmp" "$out/rootfs.tar"
echo "$out/rootfs.tar"
