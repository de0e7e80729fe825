#!/usr/bin/env bats
# kiln as an unprivileged user inside a container: runc runs an OCI bundle whose rootfs holds
# kiln and what it needs (make-bundle.sh), as uid 1000, with no capability beyond the default
# set a Kubernetes pod gets (none effective), and the two settings rootless BuildKit documents
# for Kubernetes: seccomp Unconfined (the default profiles refuse unshare(CLONE_NEWUSER)) and
# /proc unmasked (procMount: Unmasked: a user namespace may only mount a proc it fully sees).

load ../lib/helpers

setup_file() {
	[ "$(id -u)" = 0 ] || { skip_or_fail "runc needs root to start the container"; return; }
	command -v runc >/dev/null || { skip_or_fail "runc is not installed"; return; }
	command -v newuidmap >/dev/null || { skip_or_fail "uidmap is not installed"; return; }
	command -v setcap >/dev/null || { skip_or_fail "setcap (libcap2-bin) is not installed"; return; }
	export CT_DIR
	CT_DIR=$(mktemp -d /tmp/kiln-container.XXXXXX)
	sh "$BATS_TEST_DIRNAME/make-bundle.sh" "$CT_DIR" "$KILN"
	"$KILN_SRC/testdata/base/make-rootfs.sh" "$CT_DIR/base" >/dev/null
	cp "$CT_DIR/base/rootfs.tar" "$CT_DIR/rootfs/work/busybox.tar"
	mkdir -p "$CT_DIR/rootfs/work/ctx"
	cat >"$CT_DIR/rootfs/work/ctx/Dockerfile" <<'EOF'
FROM kiln-test/busybox:latest
RUN echo built > /built && mkdir /data && chown 1000:1000 /data && cat /proc/self/uid_map > /data/map
USER app
RUN id > /home/app/id
EOF
	chown -R 1000:1000 "$CT_DIR/rootfs/work"
	(cd "$CT_DIR" && runc spec)
	# Kubernetes' default capability set (docker's) as the bounding set, nothing effective for
	# uid 1000; allowPrivilegeEscalation (newuidmap's file capabilities); no seccomp; no masked /proc.
	jq '.process.user = {uid: 1000, gid: 1000}
	  | .process.terminal = false
	  | .process.env = ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/builder"]
	  | .process.cwd = "/work"
	  | .process.noNewPrivileges = false
	  | .process.capabilities = {bounding: ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID",
	      "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP",
	      "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"],
	      effective: [], permitted: [], inheritable: [], ambient: []}
	  | .root.readonly = false
	  | .linux.maskedPaths = [] | .linux.readonlyPaths = []
	  | del(.linux.seccomp)' "$CT_DIR/config.json" >"$CT_DIR/config.json.new"
	mv "$CT_DIR/config.json.new" "$CT_DIR/config.json"
}

teardown_file() {
	[ -n "${CT_DIR:-}" ] && rm -rf "$CT_DIR"
	return 0
}

teardown() {
	[ -n "${CT_ID:-}" ] && runc delete -f "$CT_ID" >/dev/null 2>&1
	return 0
}

# ct_run SCRIPT: runs SCRIPT with /bin/sh in a fresh container from the bundle (status, output).
ct_run() {
	export CT_ID="kiln-rl-$$-$BATS_TEST_NUMBER"
	jq --arg s "$1" '.process.args = ["/bin/sh", "-c", $s]' "$CT_DIR/config.json" >"$CT_DIR/c.json"
	mv "$CT_DIR/c.json" "$CT_DIR/config.json"
	run timeout --foreground 300 runc run --bundle "$CT_DIR" "$CT_ID"
	printf '%s\n' "$output" | sed 's/^/#   /' >&3
}

@test "container: an unprivileged user builds an image with RUN steps inside a runc container" {
	ct_run 'set -e
id -u
kiln import busybox.tar kiln-test/busybox:latest >/dev/null
kiln build -q -t built:1 ctx
kiln save -o /work/built.tar built:1'
	[ "$status" -eq 0 ]
	# The container's process really was uid 1000 with no effective capability.
	assert_equal "${lines[0]}" 1000
	local fs=$BATS_TEST_TMPDIR/fs x=$BATS_TEST_TMPDIR/x layer
	mkdir -p "$fs" "$x"
	tar -xf "$CT_DIR/rootfs/work/built.tar" -C "$x"
	for layer in $(jq -r '.[0].Layers[]' "$x/manifest.json"); do
		tar -xf "$x/$layer" -C "$fs" --numeric-owner --same-owner --same-permissions
	done
	assert_equal "$(cat "$fs/built")" built
	assert_equal "$(stat -c '%u:%g' "$fs/data")" "1000:1000"
	assert_contains "$(cat "$fs/home/app/id")" "uid=1000(app) gid=1000(app)"
	# Inside: root is the container's uid 1000, 1..65536 the range /etc/subuid gives builder.
	assert_equal "$(tr -s ' ' <"$fs/data/map" | sed 's/^ //' | head -n 2)" "$(printf '0 1000 1\n1 100000 65536')"
}

@test "container: where seccomp refuses user namespaces, kiln says what to change" {
	jq '.linux.seccomp = {defaultAction: "SCMP_ACT_ALLOW",
	      syscalls: [{names: ["unshare"], action: "SCMP_ACT_ERRNO", errnoRet: 1}]}' \
		"$CT_DIR/config.json" >"$CT_DIR/seccomp.json"
	cp "$CT_DIR/config.json" "$CT_DIR/config.json.orig"
	mv "$CT_DIR/seccomp.json" "$CT_DIR/config.json"
	ct_run 'kiln import busybox.tar kiln-test/busybox:latest'
	mv "$CT_DIR/config.json.orig" "$CT_DIR/config.json"
	[ "$status" -eq 1 ]
	assert_contains "$output" "kiln: rootless: cannot create a user namespace"
	assert_contains "$output" "seccomp and AppArmor profiles Unconfined"
	assert_contains "$output" "Operation not permitted"
}

@test "container: with /proc masked (Kubernetes' default procMount), RUN says to unmask it" {
	jq '.linux.maskedPaths = ["/proc/kcore", "/proc/keys", "/proc/timer_list"]' \
		"$CT_DIR/config.json" >"$CT_DIR/masked.json"
	cp "$CT_DIR/config.json" "$CT_DIR/config.json.orig"
	mv "$CT_DIR/masked.json" "$CT_DIR/config.json"
	ct_run 'kiln import busybox.tar kiln-test/busybox:latest >/dev/null && kiln build ctx'
	mv "$CT_DIR/config.json.orig" "$CT_DIR/config.json"
	[ "$status" -eq 1 ]
	assert_contains "$output" "run: mount '/proc' (in a container, /proc must be unmasked: procMount: Unmasked in Kubernetes)"
}

@test "container: with subordinate IDs but no newuidmap, only root is mapped and the error says to install uidmap" {
	mv "$CT_DIR/rootfs/usr/bin/newuidmap" "$CT_DIR/rootfs/usr/bin/newuidmap.off"
	ct_run 'kiln --root /work/nomap import busybox.tar kiln-test/busybox:latest >/dev/null && kiln --root /work/nomap build ctx'
	mv "$CT_DIR/rootfs/usr/bin/newuidmap.off" "$CT_DIR/rootfs/usr/bin/newuidmap"
	[ "$status" -eq 1 ]
	# The busybox base has /home/app owned by 1000, which does not exist with one ID mapped.
	assert_contains "$output" "cannot change owner of 'home/app' to 1000:1000"
	assert_contains "$output" "user 'builder' has subordinate IDs, but newuidmap and newgidmap are not installed; as root, run: apt-get install uidmap"
}
