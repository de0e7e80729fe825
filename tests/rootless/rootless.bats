#!/usr/bin/env bats
# kiln without root: real users made by the test, one with subordinate IDs and one without.
# Expected values come from the Dockerfile reference and from what root's kiln (itself checked
# against BuildKit by the differential suite) makes of the same Dockerfile.

load rootless-helpers
load ../registry-lib/registry

setup_file() {
	rl_setup_file
	python3 "$BATS_TEST_DIRNAME/mkbase.py" "$RL_DIR/base/rootfs.tar" "$RL_DIR/base/ids.tar"
	# The busybox base without /home/app (owned by 1000): every file root's.
	tar -C "$RL_DIR/base/rootfs" --exclude=./home/app --sort=name --numeric-owner -cf "$RL_DIR/base/root-only.tar" .
	chmod a+r "$RL_DIR/base/"*.tar
}

teardown_file() {
	rl_teardown_file
}

teardown() {
	registry_stop
}

@test "rootless: RUN steps are root in the user's namespace with their subordinate IDs" {
	run_as "$RL_USER" import base/rootfs.tar kiln-test/busybox:latest
	rl_ctx ids <<'EOF'
FROM kiln-test/busybox:latest
RUN cat /proc/self/uid_map /proc/self/gid_map > /maps && id -u > /whoami \
 && mkdir /data && chown 1000:1000 /data && echo hi > /data/f && chown 1234:5678 /data/f \
 && chmod 4755 /data/f && touch /data/nobody && chown 65534:65534 /data/nobody
USER app
RUN id > /home/app/id && touch /home/app/made-by-app
EOF
	run_as "$RL_USER" build -q -t ids:1 ids
	run_as "$RL_USER" save -o "/home/$RL_USER/ids.tar" ids:1
	rl_unpack_save "/home/$RL_USER/ids.tar" "$BATS_TEST_TMPDIR/fs"
	local fs=$BATS_TEST_TMPDIR/fs uid
	uid=$(id -u "$RL_USER")
	# uid 0 is the user, 1..65536 their range (newuidmap's map, as BuildKit's rootlesskit).
	assert_equal "$(tr -s ' ' <"$fs/maps" | sed 's/^ //' | head -n 2)" \
		"$(printf '0 %s 1\n1 %s 65536' "$uid" "$RL_SUBID_START")"
	assert_equal "$(cat "$fs/whoami")" 0
	assert_equal "$(stat -c '%a %u:%g' "$fs/data")" "755 1000:1000"
	assert_equal "$(stat -c '%a %u:%g' "$fs/data/f")" "4755 1234:5678"
	assert_equal "$(stat -c '%u:%g' "$fs/data/nobody")" "65534:65534"
	assert_equal "$(stat -c '%u:%g' "$fs/home/app/made-by-app")" "1000:1000"
	assert_contains "$(cat "$fs/home/app/id")" "uid=1000(app) gid=1000(app)"
	# Every layer holds the image's IDs, never the host's subordinate ones.
	local layer
	for layer in $(jq -r '.[0].Layers[]' "$fs.archive/manifest.json"); do
		run bash -c "tar --numeric-owner -tvf '$fs.archive/$layer' | awk '{ split(\$2, o, \"/\"); if (o[1] > 65536 || o[2] > 65536) print }'"
		assert_equal "$output" ""
	done
	# On the host the store's copies belong to the user's subordinate IDs.
	run bash -c "find /home/$RL_USER/.local/share/kiln/snapshots -name f -path '*/data/f' -printf '%U:%G\n' | sort -u"
	assert_equal "$output" "$((RL_SUBID_START + 1233)):$((RL_SUBID_START + 5677))"
}

@test "rootless: the same Dockerfile built by root and by a user gives the same image ID" {
	rl_ctx same <<'EOF'
FROM kiln-test/ids:latest
RUN chmod 0750 /x/xattr-file && touch /x/capfile /x/owned-65534 && rm /x/gone \
 && rm -rf /x/dir && mkdir /x/dir && echo new > /x/dir/new && chown 7:7 /x/dir \
 && mkdir -p /opt/app && echo hi > /opt/app/f && chown -R 1000:1000 /opt/app && chmod 2755 /opt/app \
 && ln /x/setuid /x/setuid-link && mkdir /x/setgid-dir/sub
USER 1000:1000
RUN echo made by 1000 > /tmp/by-1000
EOF
	export SOURCE_DATE_EPOCH=1700000000
	local root_store=$BATS_TEST_TMPDIR/root-store
	"$KILN" --root "$root_store" import "$RL_DIR/base/ids.tar" kiln-test/ids:latest >/dev/null
	run "$KILN" --root "$root_store" build -q -t same:1 "$RL_DIR/same"
	[ "$status" -eq 0 ] || { echo "# $output" >&3; return 1; }
	local root_id=${output##*$'\n'}
	run_as "$RL_USER" import base/ids.tar kiln-test/ids:latest
	run_as "$RL_USER" build -q -t same:1 same
	assert_equal "${output##*$'\n'}" "$root_id"
	# And what the layers hold: the RUN layer keeps the xattr and the file capability.
	run_as "$RL_USER" save -o "/home/$RL_USER/same.tar" same:1
	rl_unpack_save "/home/$RL_USER/same.tar" "$BATS_TEST_TMPDIR/fs"
	local fs=$BATS_TEST_TMPDIR/fs
	assert_equal "$(stat -c '%a %u:%g' "$fs/x/xattr-file")" "750 0:0"
	assert_equal "$(stat -c '%a %u:%g' "$fs/opt/app")" "2755 1000:1000"
	assert_equal "$(stat -c '%a %u:%g' "$fs/x/setgid-dir")" "2775 33:33"
	assert_equal "$(stat -c '%a' "$fs/x/setuid-link")" "4755"
	assert_equal "$(stat -c '%u:%g' "$fs/tmp/by-1000")" "1000:1000"
	[ ! -e "$fs/x/gone" ] && [ ! -e "$fs/x/dir/old" ] && [ -f "$fs/x/dir/new" ]
	local top
	top=$(jq -r '.[0].Layers[1]' "$fs.archive/manifest.json")
	run python3 -c '
import sys, tarfile
for m in tarfile.open(sys.argv[1]):
    for k, v in sorted(m.pax_headers.items()):
        if k.startswith("SCHILY.xattr."):
            print(m.name, k[13:], v.encode("latin-1", "surrogateescape").hex() if "capability" in k else v)
' "$fs.archive/$top"
	assert_contains "$output" "x/xattr-file user.kiln-test value-1"
	assert_contains "$output" "x/capfile security.capability 0100000200200000000000000000000000000000"
}

@test "rootless: device nodes are left out of snapshots and mknod is refused in RUN" {
	run_as "$RL_USER" import base/ids.tar kiln-test/ids:latest
	rl_ctx dev <<'EOF'
FROM kiln-test/ids:latest
RUN test ! -e /x/dev-null && test -f /x/owned-1000 && mknod /x/made c 1 3
EOF
	run_as "$RL_USER" 1 build dev
	assert_contains "$output" "mknod: /x/made: Operation not permitted"
	assert_contains "$output" "exit code: 1"
}

@test "rootless without subordinate IDs: only root exists, and steps needing another ID say to add ranges" {
	grep -q "^$RL_NOSUB:" /etc/subuid && return 1
	run_as "$RL_NOSUB" import base/root-only.tar kiln-test/busybox:latest
	rl_ctx nosub-ok <<'EOF'
FROM kiln-test/busybox:latest
RUN cat /proc/self/uid_map > /map && echo ok > /ok
EOF
	run_as "$RL_NOSUB" build -q -t ok:1 nosub-ok
	rl_ctx nosub-chown <<'EOF'
FROM kiln-test/busybox:latest
RUN chown 100:100 /etc/passwd
EOF
	run_as "$RL_NOSUB" 1 build nosub-chown
	assert_contains "$output" "chown: /etc/passwd: Invalid argument"
	assert_contains "$output" "user '$RL_NOSUB' has no subordinate IDs in /etc/subuid and /etc/subgid"
	assert_contains "$output" "usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $RL_NOSUB"
	rl_ctx nosub-user <<'EOF'
FROM kiln-test/busybox:latest
USER 1000
RUN id
EOF
	run_as "$RL_NOSUB" 1 build nosub-user
	assert_contains "$output" "run: setgid"
	assert_contains "$output" "usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $RL_NOSUB"
	# A layer with a file owned by 1000 cannot be unpacked: the message names it.
	run_as "$RL_NOSUB" import base/rootfs.tar kiln-test/app:latest
	rl_ctx nosub-layer <<'EOF'
FROM kiln-test/app:latest
RUN true
EOF
	run_as "$RL_NOSUB" 1 build nosub-layer
	assert_contains "$output" "cannot change owner of 'home/app' to 1000:1000 (ID 1000 does not exist in kiln's user namespace"
	assert_contains "$output" "usermod --add-subuids"
}

@test "rootless: the store is \$XDG_DATA_HOME/kiln, else ~/.local/share/kiln, and the user's own" {
	run_as "$RL_USER" import base/root-only.tar store/one:1
	local home
	home=$(getent passwd "$RL_USER" | cut -d: -f6)
	[ -f "$home/.local/share/kiln/index.json" ]
	assert_equal "$(stat -c %U "$home/.local/share/kiln/index.json")" "$RL_USER"
	run as "$RL_USER" env XDG_DATA_HOME="$home/xdg" "$RL_DIR/kiln" import base/root-only.tar store/two:1
	[ "$status" -eq 0 ]
	[ -f "$home/xdg/kiln/index.json" ]
	run_as "$RL_USER" images
	assert_contains "$output" "store/one"
	[[ "$output" != *"store/two"* ]]
}

@test "rootless: COPY, ADD, RUN mounts (cache, bind, tmpfs, secret), --network host and none" {
	run_as "$RL_USER" import base/rootfs.tar kiln-test/busybox:latest
	rl_ctx cmds <<'EOF'
FROM kiln-test/busybox:latest AS src
RUN echo from-stage > /stage-file
FROM kiln-test/busybox:latest
COPY --chown=1000:1000 hello.txt /app/hello.txt
ADD files.tar /added/
COPY --from=src /stage-file /app/
RUN --mount=type=cache,target=/cache echo cached >> /cache/c && cat /cache/c > /app/cache-seen
RUN --mount=type=bind,target=/ctx cat /ctx/hello.txt > /app/bound
RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && ls /scratch > /app/tmpfs
RUN --mount=type=secret,id=tok cat /run/secrets/tok > /dev/null && stat -c '%a %u' /run/secrets/tok > /app/secret-mode
RUN --network=none ls /sys/class/net > /app/net-none
RUN --network=host ls /sys/class/net > /app/net-host
EOF
	echo hello > "$RL_DIR/cmds/hello.txt"
	mkdir -p "$BATS_TEST_TMPDIR/t" && echo in-tar > "$BATS_TEST_TMPDIR/t/t.txt"
	tar -C "$BATS_TEST_TMPDIR/t" --owner=5 --group=6 -cf "$RL_DIR/cmds/files.tar" t.txt
	echo s3cret > "$RL_DIR/cmds/tok"
	chmod -R a+rX "$RL_DIR/cmds"
	run_as "$RL_USER" build -q -t cmds:1 --secret id=tok,src=cmds/tok cmds
	run_as "$RL_USER" save -o "/home/$RL_USER/cmds.tar" cmds:1
	rl_unpack_save "/home/$RL_USER/cmds.tar" "$BATS_TEST_TMPDIR/fs"
	local fs=$BATS_TEST_TMPDIR/fs
	assert_equal "$(stat -c '%u:%g' "$fs/app/hello.txt")" "1000:1000"
	assert_equal "$(stat -c '%u:%g' "$fs/added/t.txt")" "5:6"
	assert_equal "$(cat "$fs/app/stage-file")" "from-stage"
	assert_equal "$(cat "$fs/app/cache-seen")" "cached"
	assert_equal "$(cat "$fs/app/bound")" "hello"
	assert_equal "$(cat "$fs/app/tmpfs")" "x"
	assert_equal "$(cat "$fs/app/secret-mode")" "400 0"
	! grep -rq s3cret "$fs"
	assert_equal "$(cat "$fs/app/net-none")" "lo"
	# The host's network: the same interfaces the host has.
	assert_equal "$(cat "$fs/app/net-host" | sort)" "$(ls /sys/class/net | sort)"
}

@test "rootless: load, save, import, pull, push, tag, rmi, prune and fsck" {
	registry_start open
	local home other store
	home=$(getent passwd "$RL_USER" | cut -d: -f6)
	other="$home/other-store" store="$home/life-store"
	run_as "$RL_USER" --root "$store" import base/rootfs.tar kiln-test/busybox:latest
	rl_ctx life <<'EOF'
FROM kiln-test/busybox:latest
RUN echo v1 > /home/app/v && chown -R 1000:1000 /home/app
EOF
	run_as "$RL_USER" --root "$store" build -q -t life:1 life
	local id=${output##*$'\n'}
	run_as "$RL_USER" --root "$store" push life:1 "$REGISTRY_HOST/rl/life:1"
	# skopeo, as an independent judge, reads what the user pushed.
	run skopeo inspect --tls-verify=false "docker://$REGISTRY_HOST/rl/life:1"
	[ "$status" -eq 0 ]
	# A pull into an empty store downloads every blob, and a build unpacks them there.
	run_as "$RL_USER" --root "$other" pull "$REGISTRY_HOST/rl/life:1"
	assert_contains "$output" "Pull complete"
	run_as "$RL_USER" --root "$other" images --no-trunc
	assert_contains "$output" "$id"
	rl_ctx life2 <<EOF
FROM $REGISTRY_HOST/rl/life:1
RUN test "\$(stat -c %u:%g /home/app/v)" = 1000:1000 && cat /home/app/v
EOF
	run_as "$RL_USER" --root "$other" build life2
	assert_contains "$output" "v1"
	run_as "$RL_USER" --root "$other" fsck
	# save, rmi, prune, load, tag.
	run_as "$RL_USER" --root "$store" save -o "$home/life.tar" life:1
	run_as "$RL_USER" --root "$store" rmi life:1
	run_as "$RL_USER" --root "$store" prune --cache
	run_as "$RL_USER" --root "$store" load -i "$home/life.tar"
	run_as "$RL_USER" --root "$store" tag life:1 life:2
	sed -i "s|^FROM .*|FROM life:2|" "$RL_DIR/life2/Dockerfile"
	run_as "$RL_USER" --root "$store" build life2
	assert_contains "$output" "v1"
	run_as "$RL_USER" --root "$store" fsck
	run_as "$RL_USER" --root "$store" rmi -f life:1 life:2
	run_as "$RL_USER" --root "$store" prune --cache
	# The user removes what their namespace made: only the base image's snapshot is left.
	run bash -c "ls $store/snapshots | wc -l"
	assert_equal "$output" 1
	run_as "$RL_USER" --root "$other" rmi -f "$REGISTRY_HOST/rl/life:1"
	run_as "$RL_USER" --root "$other" prune --cache
	run bash -c "ls $other/snapshots | wc -l"
	assert_equal "$output" 0
}

@test "rootless: kiln run starts a container as root of the user's namespace, and as USER" {
	run_as "$RL_USER" import base/rootfs.tar kiln-test/busybox:latest
	run_as "$RL_USER" run --rm kiln-test/busybox:latest sh -c 'id -u; cat /proc/self/uid_map'
	assert_equal "${lines[0]}" 0
	assert_equal "$(printf '%s\n' "${lines[1]}" | tr -s ' ' | sed 's/^ //')" "0 $(id -u "$RL_USER") 1"
	run_as "$RL_USER" run --rm --user app kiln-test/busybox:latest id
	assert_contains "$output" "uid=1000(app) gid=1000(app)"
}
