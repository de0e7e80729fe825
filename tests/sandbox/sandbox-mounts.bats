#!/usr/bin/env bats
# The RUN sandbox's file systems: what reaches the upper dir, extra mounts, many layers,
# whiteouts, the plain rootfs mode and USER lookup through layers.

load sandbox-helpers

setup_file() { sbx_setup_file; }
setup() { sbx_setup; }
teardown() { sbx_teardown; }

@test "sandbox: the upper dir holds exactly what the command wrote" {
	sbx -- sh -c 'echo hello > /hello; mkdir -p /usr/share/x; echo 1 > /usr/share/x/f; rm /bin/ls; echo 9.9.9.9 extra >> /etc/hosts; echo other > /etc/hostname; ls /proc/1 >/dev/null; touch /dev/newdev'
	run upper_listing
	assert_equal "$(printf '%s\n' "$output" | cut -d' ' -f1,2,4)" "d 755 ./bin
c 0 ./bin/ls
f 644 ./hello
d 755 ./usr
d 755 ./usr/share
d 755 ./usr/share/x
f 644 ./usr/share/x/f"
	assert_equal "$(cat "$UP/hello")" "hello"
	# /etc (hosts, hostname, resolv.conf), /dev and /proc left no trace
	[ ! -e "$UP/etc" ]
}

@test "sandbox: a run that writes nothing leaves an empty upper dir" {
	sbx -- sh -c 'cat /etc/hosts /etc/resolv.conf /etc/hostname >/dev/null'
	assert_equal "$(upper_listing)" ""
	sbx --cwd / --hostname h -- true
	assert_equal "$(upper_listing)" ""
}

@test "sandbox: files in a mount point's parent the command created stay" {
	sbx --secret tok:/dev/null -- sh -c 'echo kept > /run/secrets/mine; echo new > /etc/newconf'
	run upper_listing
	assert_equal "$(printf '%s\n' "$output" | cut -d' ' -f1,4)" "d ./etc
f ./etc/newconf
d ./run
d ./run/secrets
f ./run/secrets/mine"
}

@test "sandbox: bind mounts read-only and read-write leave nothing in the upper dir" {
	local src="$BATS_TEST_TMPDIR/src"
	mkdir -p "$src" && echo from-host > "$src/f"
	echo single > "$BATS_TEST_TMPDIR/file"
	sbx --bind "$src:/mnt/ro:ro" --bind "$src:/srv/cache" --bind "$BATS_TEST_TMPDIR/file:/etc/single.conf:ro" -- sh -c 'cat /mnt/ro/f; echo x > /mnt/ro/g 2>&1; echo y > /srv/cache/h; cat /etc/single.conf'
	assert_equal "$output" "from-host
sh: can't create /mnt/ro/g: Read-only file system
single"
	assert_equal "$(cat "$src/h")" "y"
	assert_equal "$(upper_listing)" ""
}

@test "sandbox: tmpfs mounts have their size and vanish" {
	sbx --tmpfs /scratch:2097152 --tmpfs /var/cache/t -- sh -c 'df -k /scratch | awk "NR==2 {print \$2}"; stat -c %a /var/cache/t; echo z > /scratch/z; echo w > /var/cache/t/w'
	assert_equal "$output" "2048
1777"
	assert_equal "$(upper_listing)" ""
}

@test "sandbox: secrets are read-only at /run/secrets/<id> or a target and never in a layer" {
	echo -n 's3cr3t-value' > "$BATS_TEST_TMPDIR/secret"
	sbx --secret api:"$BATS_TEST_TMPDIR/secret" --secret key:"$BATS_TEST_TMPDIR/secret":/root/.key -- sh -c 'cat /run/secrets/api; echo; stat -c "%a %u %g" /run/secrets/api /root/.key; echo x >> /run/secrets/api 2>&1; cp /run/secrets/api /tmp/copy'
	assert_equal "$output" "s3cr3t-value
400 0 0
400 0 0
sh: can't create /run/secrets/api: Read-only file system"
	run upper_listing
	assert_equal "$(printf '%s\n' "$output" | cut -d' ' -f1,4)" "d ./tmp
f ./tmp/copy"
	run grep -rl s3cr3t-value "$UP/run" "$UP/root"
	[ "$status" -ne 0 ]
}

@test "sandbox: a secret's mode and owner" {
	echo -n pw > "$BATS_TEST_TMPDIR/secret"
	sbx --secret pw:"$BATS_TEST_TMPDIR/secret" --secret-owner 0440:1000:50 --user app -- sh -c 'stat -c "%a %u %g" /run/secrets/pw; cat /run/secrets/pw'
	assert_equal "$output" "440 1000 50
pw"
	assert_equal "$(upper_listing)" ""
}

@test "sandbox: a missing secret or bind source is a clear error" {
	sbx 125 --secret gone:/nonexistent/secret -- true
	assert_contains "$output" "run: secret 'gone'"
	sbx 125 --bind /nonexistent/dir:/mnt -- true
	assert_equal "$output" "kiln-test-tool: run: mount source '/nonexistent/dir': No such file or directory"
}

@test "sandbox: many layers with long paths (over a page of lowerdir options)" {
	local i d lowers=()
	for i in $(seq 1 60); do
		d="$BATS_TEST_TMPDIR/layers/layer-with-a-rather-long-directory-name-to-exceed-the-page-size-limit-$(printf %03d "$i")"
		mkdir -p "$d/data"
		echo "$i" > "$d/data/f$i"
		echo "$i" > "$d/data/top"
		lowers=(--lower "$d" "${lowers[@]}")
	done
	SBX_LAYERS=("${lowers[@]}" --lower "$SBX_BASE/rootfs" --upper "$UP" --work "$WK")
	sbx -- sh -c 'ls /data | wc -l; cat /data/top /data/f1 /data/f60'
	assert_equal "$output" "61
60
1
60"
}

@test "sandbox: whiteouts in upper layers hide files, as USER lookup sees" {
	local l2="$BATS_TEST_TMPDIR/l2"
	mkdir -p "$l2/etc"
	mknod "$l2/etc/group" c 0 0
	cp "$SBX_BASE/rootfs/etc/passwd" "$l2/etc/passwd"
	echo 'extra:x:2000:2000::/home/extra:/bin/sh' >> "$l2/etc/passwd"
	SBX_LAYERS=(--lower "$l2" --lower "$SBX_BASE/rootfs" --upper "$UP" --work "$WK")
	sbx -- sh -c 'ls /etc/group 2>&1; id extra'
	assert_equal "$output" "ls: /etc/group: No such file or directory
uid=2000(extra) gid=2000 groups=2000"
	sbx --user extra -- id
	assert_equal "$output" "uid=2000(extra) gid=2000 groups=2000"
	sbx 125 --user app:staff -- id
	assert_equal "$output" "kiln-test-tool: unable to find group staff: no matching entries in group file"
	run "$TOOL" user-lookup --lower "$l2" --lower "$SBX_BASE/rootfs" extra
	assert_equal "$output" "uid=2000 gid=2000 groups= home=/home/extra"
	run "$TOOL" user-lookup --lower "$l2" --lower "$SBX_BASE/rootfs" app:staff
	assert_equal "$status" "1"
	assert_equal "$output" "kiln-test-tool: unable to find group staff: no matching entries in group file"
}

@test "sandbox: USER lookup through layers outside a sandbox" {
	run "$TOOL" user-lookup --lower "$SBX_BASE/rootfs" app
	assert_equal "$output" "uid=1000 gid=1000 groups=50 home=/home/app"
	run "$TOOL" user-lookup --rootfs "$SBX_BASE/rootfs" root
	assert_equal "$output" "uid=0 gid=0 groups=10 home=/root"
	run "$TOOL" user-lookup --rootfs "$SBX_BASE/rootfs" 1234:5
	assert_equal "$output" "uid=1234 gid=5 groups= home=/"
	run "$TOOL" user-lookup --rootfs "$SBX_BASE/rootfs" ghost
	assert_equal "$status" "1"
	assert_equal "$output" "kiln-test-tool: unable to find user ghost: no matching entries in passwd file"
}

@test "sandbox: a plain rootfs directory is used in place and mount stubs are removed" {
	local root="$BATS_TEST_TMPDIR/plain"
	cp -a "$SBX_BASE/rootfs" "$root"
	rm -rf "$root/proc" "$root/sys"
	touch -d @1000000 "$root/etc" "$root/var"
	SBX_LAYERS=(--rootfs "$root")
	sbx --tmpfs /var/cache/x -- sh -c 'echo plain > /made; ls /proc/self >/dev/null && echo proc-ok'
	assert_equal "$output" "proc-ok"
	assert_equal "$(cat "$root/made")" "plain"
	[ ! -e "$root/proc" ] && [ ! -e "$root/sys" ] && [ ! -e "$root/etc/hosts" ] && [ ! -e "$root/etc/resolv.conf" ]
	[ ! -e "$root/var/cache" ]
	assert_equal "$(cat "$root/etc/hostname")" "kiln-test"
	# the stubs' creation and removal left the directories' mtimes as they were
	assert_equal "$(stat -c %Y "$root/etc" "$root/var")" "1000000
1000000"
	# a directory the command changed keeps the command's mtime
	sbx -- sh -c 'touch -d @2000000 /etc/new; touch -d @3000000 /etc'
	assert_equal "$(stat -c %Y "$root/etc")" "3000000"
}

@test "sandbox: an image with symlinked /etc files gets the run-time files where they point" {
	local l2="$BATS_TEST_TMPDIR/l2"
	mkdir -p "$l2/etc" "$l2/run/systemd"
	ln -s ../run/systemd/resolv.conf "$l2/etc/resolv.conf"
	SBX_LAYERS=(--lower "$l2" --lower "$SBX_BASE/rootfs" --upper "$UP" --work "$WK")
	sbx --resolv-conf $'nameserver 192.0.2.53\n' -- cat /etc/resolv.conf
	assert_equal "$output" "nameserver 192.0.2.53"
	assert_equal "$(upper_listing)" ""
}

@test "sandbox: USER lookup without any root (FROM scratch) takes numbers only" {
	run "$TOOL" user-lookup --rootfs /nonexistent/kiln 1000:1000
	assert_equal "$output" "uid=1000 gid=1000 groups= home=/"
	run "$TOOL" user-lookup 5
	assert_equal "$output" "uid=5 gid=0 groups= home=/"
	run "$TOOL" user-lookup app
	assert_equal "$status" "1"
}

@test "sandbox: FROM scratch (upper dir only) with a bind-mounted busybox" {
	SBX_LAYERS=(--upper "$UP" --work "$WK")
	sbx --bind /bin/busybox:/bin/busybox:ro -- /bin/busybox sh -c 'echo made > /made; /bin/busybox ls /proc/self/fd >/dev/null && echo ok'
	assert_equal "$output" "ok"
	run upper_listing
	assert_equal "$(printf '%s\n' "$output" | cut -d' ' -f1,4)" "f ./made"
}

@test "sandbox: nested mounts are mounted parents first, whatever their order" {
	local src="$BATS_TEST_TMPDIR/src"
	mkdir -p "$src/inner" && echo outer > "$src/o" && echo inner-src > "$BATS_TEST_TMPDIR/i"
	echo -n nested > "$BATS_TEST_TMPDIR/secret"
	sbx --secret n:"$BATS_TEST_TMPDIR/secret":/run/x/s --bind "$BATS_TEST_TMPDIR/i:/src/inner/i:ro" --tmpfs /run/x --bind "$src:/src" -- sh -c 'cat /run/x/s; echo; cat /src/o /src/inner/i'
	assert_equal "$output" "nested
outer
inner-src"
	assert_equal "$(upper_listing)" ""
}

@test "sandbox: overlay setup errors name the directory" {
	SBX_LAYERS=(--lower "$BATS_TEST_TMPDIR/missing-layer" --upper "$UP" --work "$WK")
	sbx 125 -- true
	assert_equal "$output" "kiln-test-tool: run: overlay lowerdir '$BATS_TEST_TMPDIR/missing-layer': No such file or directory"
	SBX_LAYERS=(--lower "$SBX_BASE/rootfs" --upper "$BATS_TEST_TMPDIR/missing-upper" --work "$WK")
	mkdir -p "$BATS_TEST_TMPDIR/state"
	sbx 125 --tmpdir "$BATS_TEST_TMPDIR/state" -- true
	assert_equal "$output" "kiln-test-tool: run: overlay upperdir '$BATS_TEST_TMPDIR/missing-upper': No such file or directory"
	# the sandbox's state dir is gone after a failure too
	assert_equal "$(ls -A "$BATS_TEST_TMPDIR/state")" ""
}

@test "sandbox: an opaque /etc in an upper layer hides the lower passwd, for lookup and run alike" {
	local l2="$BATS_TEST_TMPDIR/l2"
	mkdir -p "$l2/etc"
	/usr/bin/python3 -c 'import os, sys; os.setxattr(sys.argv[1], "trusted.overlay.opaque", b"y")' "$l2/etc"
	echo 'solo:x:3000:3000::/solo:/bin/sh' > "$l2/etc/passwd"
	SBX_LAYERS=(--lower "$l2" --lower "$SBX_BASE/rootfs" --upper "$UP" --work "$WK")
	sbx -- sh -c 'ls /etc'
	assert_equal "$output" "hostname
hosts
passwd
resolv.conf"
	assert_equal "$(upper_listing)" ""
	sbx 125 --user app -- true
	assert_equal "$output" "kiln-test-tool: unable to find user app: no matching entries in passwd file"
	run "$TOOL" user-lookup --lower "$l2" --lower "$SBX_BASE/rootfs" app
	assert_equal "$output" "kiln-test-tool: unable to find user app: no matching entries in passwd file"
	run "$TOOL" user-lookup --lower "$l2" --lower "$SBX_BASE/rootfs" solo
	assert_equal "$output" "uid=3000 gid=3000 groups= home=/solo"
}

@test "sandbox: USER lookup follows symlinks across layers like the merged view" {
	local l1="$BATS_TEST_TMPDIR/l1" l2="$BATS_TEST_TMPDIR/l2" l3="$BATS_TEST_TMPDIR/l3"
	mkdir -p "$l1/usr/share/pw" "$l2/etc" "$l3/conf"
	echo 'linked:x:4000:4000::/home/linked:/bin/sh' > "$l1/usr/share/pw/passwd"
	ln -s ../usr/share/pw/passwd "$l2/etc/passwd"
	ln -s /conf/group "$l2/etc/group"
	printf 'linked:x:4000:\nextra:x:4100:linked\n' > "$l3/conf/group"
	# top first: l3 (group target), l2 (symlinks), l1 (passwd target), base
	SBX_LAYERS=(--lower "$l3" --lower "$l2" --lower "$l1" --lower "$SBX_BASE/rootfs" --upper "$UP" --work "$WK")
	sbx --user linked -- id
	assert_equal "$output" "uid=4000(linked) gid=4000(linked) groups=4000(linked),4100(extra)"
	run "$TOOL" user-lookup --lower "$l3" --lower "$l2" --lower "$l1" --lower "$SBX_BASE/rootfs" linked
	assert_equal "$output" "uid=4000 gid=4000 groups=4100 home=/home/linked"
	# a symlink loop is no passwd at all, not a hang
	ln -sf passwd2 "$l2/etc/passwd"
	ln -s passwd "$l2/etc/passwd2"
	run "$TOOL" user-lookup --lower "$l2" --lower "$SBX_BASE/rootfs" 7
	assert_equal "$status" "1"
	assert_contains "$output" "Too many levels of symbolic links"
}

@test "sandbox: a bind with discarded writes (BuildKit's bind,rw) never changes the source" {
	local src="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$src/sub" && echo original > "$src/f" && echo keep > "$src/sub/g"
	echo single > "$BATS_TEST_TMPDIR/file"
	sbx --bind "$src:/ctx:discard" --bind "$BATS_TEST_TMPDIR/file:/one:discard" -- sh -c 'cat /ctx/f; echo changed > /ctx/f; rm /ctx/sub/g; mkdir /ctx/new; cat /ctx/f; ls /ctx/sub | wc -l; echo x > /one 2>&1; true'
	assert_equal "$output" "original
changed
0
sh: can't create /one: Read-only file system"
	assert_equal "$(cat "$src/f")" "original"
	assert_equal "$(cat "$src/sub/g")" "keep"
	[ ! -e "$src/new" ]
	assert_equal "$(upper_listing)" ""
}

@test "sandbox: hostile image files cannot reach the host or hang the setup" {
	local l2="$BATS_TEST_TMPDIR/l2" before
	mkdir -p "$l2/etc"
	# run-time files pointing at host-looking places land in the sandbox's own mounts
	ln -s /proc/sys/kernel/core_pattern "$l2/etc/hosts"
	ln -s ../../../../../../tmp/escape-resolv "$l2/etc/resolv.conf"
	# a FIFO as passwd must not block the USER lookup
	mkfifo "$l2/etc/passwd"
	before=$(cat /proc/sys/kernel/core_pattern)
	SBX_LAYERS=(--lower "$l2" --lower "$SBX_BASE/rootfs" --upper "$UP" --work "$WK")
	sbx --hosts $'10.9.9.9 evil\n' --resolv-conf $'nameserver 192.0.2.9\n' -- sh -c 'cat /etc/hosts /etc/resolv.conf; echo pwned > /etc/hosts; cat /etc/hosts'
	assert_equal "$output" "10.9.9.9 evil
nameserver 192.0.2.9
pwned"
	assert_equal "$(cat /proc/sys/kernel/core_pattern)" "$before"
	[ ! -e /tmp/escape-resolv ]
	assert_equal "$(upper_listing)" ""
	run timeout 20 "$TOOL" sandbox-run "${SBX_LAYERS[@]}" --user app -- true
	assert_equal "$output" "kiln-test-tool: unable to find user app: no matching entries in passwd file"
}

@test "sandbox: a bind of another stage's layers (from=), read-only or with writes discarded" {
	local a="$BATS_TEST_TMPDIR/la" b="$BATS_TEST_TMPDIR/lb"
	mkdir -p "$a/out" "$b/out"
	echo from-a > "$a/out/x"
	echo lower > "$b/out/x"
	echo only-b > "$b/out/y"
	mknod "$a/out/gone" c 0 0
	echo hidden > "$b/out/gone"
	sbx --bind-layers "$a,$b:/from" --bind-layers "$b:/single" --bind-layers "$a,$b:/scratch:discard" -- sh -c 'cat /from/out/x /from/out/y; ls /from/out | tr "\n" " "; echo; echo w > /from/out/z 2>&1; echo w > /single/out/z 2>&1; echo w > /scratch/out/z; cat /scratch/out/z; true'
	assert_equal "$output" "from-a
only-b
x y 
sh: can't create /from/out/z: Read-only file system
sh: can't create /single/out/z: Read-only file system
w"
	[ ! -e "$a/out/z" ] && [ ! -e "$b/out/z" ]
	assert_equal "$(upper_listing)" ""
}

@test "sandbox: mount points missing from the image keep the image's directories as they are" {
	local l2="$BATS_TEST_TMPDIR/l2"
	mkdir -p "$l2/etc" "$l2/srv"
	chmod 0750 "$l2/etc"
	chown 0:10 "$l2/etc"
	touch -d @5000 "$l2/etc"
	echo -n s > "$BATS_TEST_TMPDIR/secret"
	SBX_LAYERS=(--lower "$l2" --lower "$SBX_BASE/rootfs" --upper "$UP" --work "$WK")
	# /etc/hosts, /etc/resolv.conf, /etc/hostname, /srv/data/x and /run/secrets/k are all new
	sbx --bind "$BATS_TEST_TMPDIR/secret:/srv/data/x:ro" --secret k:"$BATS_TEST_TMPDIR/secret" -- sh -c 'stat -c "%a %u %g %Y" /etc; ls /etc | tr "\n" " "'
	assert_equal "$output" "750 0 10 5000
group hostname hosts passwd resolv.conf "
	assert_equal "$(upper_listing)" ""
	# a write into /etc copies it up with the image's owner and mode
	sbx -- sh -c 'echo x > /etc/new'
	assert_equal "$(stat -c '%a %u %g' "$UP/etc")" "750 0 10"
	assert_equal "$(cd "$UP" && find . -mindepth 1 | LC_ALL=C sort | tr '\n' ' ')" "./etc ./etc/new "
}
