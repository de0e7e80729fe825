#!/usr/bin/env bats
# kiln run's flags, each with the meaning docker run gives it (docs.docker.com "docker container
# run" reference): what the command inside sees.

load ../lib/helpers
load run-helpers

setup_file() {
	run_setup_file
	build_image envimg <<-'EOF2'
	FROM kiln-test/busybox:latest
	ENV FROM_IMAGE=image KEEP=kept
	EOF2
}

teardown() {
	run_teardown
}

@test "-e K=V sets, -e K takes kiln's value, -e K unset here removes the image's K" {
	export HOST_ONLY=from-host
	unset FROM_IMAGE
	run_kiln run -e A=1 -e HOST_ONLY -e FROM_IMAGE -e 'SPACES=a b' envimg env
	assert_contains "$output" "A=1"
	assert_contains "$output" "HOST_ONLY=from-host"
	assert_contains "$output" "KEEP=kept"
	assert_contains "$output" "SPACES=a b"
	[[ "$output" != *FROM_IMAGE* ]]
}

@test "--env-file: K=V and K lines, comments and blank lines skipped, -e wins" {
	f="$BATS_TEST_TMPDIR/env.list"
	printf '# a comment\n\nFILE_A=1\n  FILE_B=two words\nHOST_X\nFROM_IMAGE=file\n' >"$f"
	export HOST_X=hx
	run_kiln run --env-file "$f" -e FILE_A=cli envimg env
	assert_contains "$output" "FILE_A=cli"
	assert_contains "$output" "FILE_B=two words"
	assert_contains "$output" "HOST_X=hx"
	assert_contains "$output" "FROM_IMAGE=file"
	[[ "$output" != *comment* ]]
	printf 'OK=1\nBAD NAME=1\n' >"$f"
	run_kiln 125 run --env-file "$f" envimg true
	assert_contains "$output" "$f:2: variable 'BAD NAME' has white spaces"
	run_kiln 125 run --env-file "$BATS_TEST_TMPDIR/missing" envimg true
	assert_contains "$output" "missing"
}

@test "-v HOST:CTR binds read-write, :ro read-only; a missing host directory is created" {
	d="$BATS_TEST_TMPDIR/vol"
	mkdir -p "$d" && echo host >"$d/in"
	run_kiln run -v "$d:/mnt/v" kiln-test/busybox sh -c 'cat /mnt/v/in; echo out >/mnt/v/out'
	assert_equal "$output" "host"
	assert_equal "$(cat "$d/out")" "out"
	run_kiln 1 run -v "$d:/mnt/v:ro" kiln-test/busybox sh -c 'cat /mnt/v/in; echo x >/mnt/v/x'
	assert_contains "$output" "Read-only file system"
	[ ! -e "$d/x" ]
	run_kiln run -v "$BATS_TEST_TMPDIR/new/dir:/n" kiln-test/busybox sh -c 'touch /n/made'
	[ -f "$BATS_TEST_TMPDIR/new/dir/made" ]
	echo file >"$BATS_TEST_TMPDIR/one-file"
	run_kiln run -v "$BATS_TEST_TMPDIR/one-file:/etc/one:ro" kiln-test/busybox cat /etc/one
	assert_equal "$output" "file"
}

@test "-v errors: relative host path (no named volumes), relative target, bad option" {
	run_kiln 125 run -v data:/data kiln-test/busybox true
	assert_contains "$output" "'data' is not an absolute host path"
	run_kiln 125 run -v /tmp:data kiln-test/busybox true
	assert_contains "$output" "mount path 'data' must be absolute"
	run_kiln 125 run -v /tmp:/x:rx kiln-test/busybox true
	assert_contains "$output" "unknown option 'rx'"
}

@test "--tmpfs: an empty tmpfs, noexec/nosuid/nodev by default as docker's; size=, mode=, exec" {
	run_kiln run --tmpfs /scratch kiln-test/busybox sh -c 'grep " /scratch " /proc/mounts'
	assert_contains "$output" "tmpfs /scratch tmpfs rw,nosuid,nodev,noexec"
	script='printf "#!/bin/sh\necho ran\n" >/scratch/s && chmod +x /scratch/s && exec /scratch/s'
	run_kiln 126 run --tmpfs /scratch kiln-test/busybox sh -c "$script"
	assert_contains "$output" "Permission denied"
	run_kiln run --tmpfs /scratch:exec,size=1m,mode=0700 kiln-test/busybox sh -c \
		"stat -c %a /scratch; df -k /scratch | tail -1; $script"
	assert_contains "$output" "ran"
	assert_contains "$output" "700"
	assert_contains "$output" " 1024 "
	run_kiln 125 run --tmpfs /scratch:uid=5 kiln-test/busybox true
	assert_contains "$output" "unsupported option 'uid=5'"
}

@test "-w sets (and creates) the working directory; a relative one is refused" {
	run_kiln run -w /made/here kiln-test/busybox pwd
	assert_equal "$output" "/made/here"
	run_kiln 125 run -w rel kiln-test/busybox pwd
	assert_contains "$output" "the working directory 'rel' is invalid, it needs to be an absolute path"
}

@test "-u USER[:GROUP] with names from the image's passwd and group, or numbers" {
	# docker (moby's getUser) adds the primary group to the supplementary ones; the kernel sorts
	run_kiln run -u app kiln-test/busybox id
	assert_equal "$output" "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)"
	run_kiln run -u app:daemon kiln-test/busybox id
	assert_equal "$output" "uid=1000(app) gid=1(daemon) groups=1(daemon)"
	run_kiln run -u 4242:4343 kiln-test/busybox id
	assert_equal "$output" "uid=4242 gid=4343 groups=4343"
	run_kiln run kiln-test/busybox id
	assert_equal "$output" "uid=0(root) gid=0(root) groups=0(root),10(wheel)"
	run_kiln 125 run -u app:nogroupx kiln-test/busybox id
	assert_contains "$output" "unable to find group nogroupx"
}

@test "--network none: only lo; host (the default): the host's interfaces, name and /etc/hosts" {
	run_kiln run --network none kiln-test/busybox ls /sys/class/net
	assert_equal "$output" "lo"
	run_kiln run --network none kiln-test/busybox hostname
	[[ "$output" =~ ^[0-9a-f]{12}$ ]]
	run_kiln run kiln-test/busybox sh -c 'ls /sys/class/net | wc -l; hostname; cat /etc/hosts'
	assert_equal "$(printf '%s\n' "$output" | sed -n 1p)" "$(ls /sys/class/net | wc -l)"
	assert_equal "$(printf '%s\n' "$output" | sed -n 2p)" "$(hostname)"
	assert_contains "$output" "$(cat /etc/hosts)"
	run_kiln 2 run --network bridge kiln-test/busybox true
	assert_contains "$output" "network 'bridge' is not supported"
}

@test "-p with the host's network: a warning that says it is not needed, and the run goes on" {
	run_kiln run -p 8080:80 kiln-test/busybox echo ran
	assert_contains "$output" "published ports are discarded (-p 8080:80)"
	assert_contains "$output" "ran"
	run_kiln 2 run --network none -p 80 kiln-test/busybox true
	assert_contains "$output" "cannot work with --network none"
}

@test "--hostname names the container's UTS namespace and HOSTNAME" {
	run_kiln run --hostname box1 kiln-test/busybox sh -c 'hostname; echo $HOSTNAME; cat /etc/hostname'
	assert_equal "$output" "$(printf 'box1\nbox1\nbox1')"
	run_kiln run -h box2 --network none kiln-test/busybox hostname
	assert_equal "$output" "box2"
}

@test "--read-only: the root is read-only, /tmp mounts and -v stay writable" {
	run_kiln 1 run --read-only kiln-test/busybox sh -c 'touch /etc/x'
	assert_contains "$output" "Read-only file system"
	run_kiln run --read-only --tmpfs /tmp -v "$BATS_TEST_TMPDIR:/out" kiln-test/busybox \
		sh -c 'touch /tmp/ok /out/ok /dev/shm/ok && echo writable'
	assert_equal "$output" "writable"
}

@test "--init: kiln's reaper is PID 1 and the command PID 2; without it the command is PID 1" {
	run_kiln run --init kiln-test/busybox sh -c 'echo $$; cat /proc/1/comm; true'
	assert_equal "$output" "$(printf '2\nkiln-init')"
	run_kiln run kiln-test/busybox sh -c 'echo $$; cat /proc/1/comm; true'
	assert_equal "$output" "$(printf '1\nsh')"
	# the reaper reaps orphans: no zombie is left for the command to see
	run_kiln run --init kiln-test/busybox sh -c '(sleep 0.1 &) ; sleep 0.5; ps -o stat,comm | grep -c "^Z" || true'
	assert_equal "$output" "0"
}

@test "-i gives the container kiln's stdin; without -i it reads /dev/null" {
	run bash -c 'printf "line1\nline2\n" | "$KILN" --root "$KILN_TEST_ROOT" run -i kiln-test/busybox sh -c "wc -l; exit 3"'
	assert_equal "$status" 3
	assert_equal "$output" "2"
	run bash -c 'printf "line1\n" | "$KILN" --root "$KILN_TEST_ROOT" run kiln-test/busybox wc -l'
	assert_equal "$output" "0"
}

@test "--name: one running container per name; the name is free again after it exits" {
	log="$BATS_TEST_TMPDIR/log"
	kiln_bg "$log" run --name web kiln-test/busybox sh -c 'echo up; sleep 30'
	wait_for_line "$log" '^up$'
	run_kiln 125 run --name web kiln-test/busybox true
	assert_contains "$output" 'the container name "/web" is already in use by container'
	assert_equal "$(head -n 1 "$KILN_TEST_ROOT/containers/web")" "$KILN_PID"
	kill -KILL "$KILN_PID"
	wait "$KILN_PID" || true
	run_kiln run --name web kiln-test/busybox echo again
	assert_equal "$output" "again"
	run_kiln 125 run --name 'bad/name' kiln-test/busybox true
	assert_contains "$output" "invalid container name 'bad/name'"
}

@test "--stop-timeout and --stop-signal values are checked; unknown flags are usage errors" {
	run_kiln 2 run --stop-timeout soon kiln-test/busybox true
	assert_contains "$output" "invalid --stop-timeout 'soon'"
	run_kiln 125 run --stop-signal SIGNOPE kiln-test/busybox true
	assert_contains "$output" "invalid stop signal 'SIGNOPE'"
	run_kiln 2 run -d kiln-test/busybox true
	run_kiln 2 run
	assert_contains "$output" "expected an IMAGE"
}
