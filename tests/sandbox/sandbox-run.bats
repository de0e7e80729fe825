#!/usr/bin/env bats
# The RUN sandbox: process view, identity, capabilities, namespaces, exit codes, errors.

load sandbox-helpers

setup_file() { sbx_setup_file; }
setup() { sbx_setup; }
teardown() { sbx_teardown; }

@test "sandbox: output, exit codes and 128+signal" {
	sbx -- sh -c 'echo out; echo err >&2'
	assert_equal "$output" "out
err"
	sbx 3 -- sh -c 'exit 3'
	sbx 137 -- sh -c 'kill -9 $$'
	sbx 143 -- sh -c 'kill -TERM $$'
	sbx 0 -- true
	sbx 1 -- false
}

@test "sandbox: output through the callback pipe" {
	sbx --output-cb -- sh -c 'seq 1 20000 | tail -1; echo done >&2'
	assert_equal "$output" "20000
done"
}

@test "sandbox: PID 1 is kiln's reaper, the command is its child" {
	sbx -- sh -c 'cat /proc/1/cmdline | tr "\0" " "; echo; echo $$; ps -o pid,args | sed -n 2p'
	assert_equal "$output" "kiln-init 
2
    1 kiln-init"
}

@test "sandbox: zombies are reaped and a daemon left behind is killed" {
	local secs="86$RANDOM$RANDOM" state
	# orphans become PID 1's children; it reaps them (waits up to 10 s on a busy machine)
	sbx -- sh -c "sh -c 'sleep 0 & sleep 0 &'; sleep 0.1; for i in \$(seq 100); do ps -o stat | grep -q '^Z' || break; sleep 0.1; done; ps -o stat | grep -c '^Z' || true"
	assert_equal "$output" "0"
	# A daemon (own session, stdio closed) outlives the command: the namespace ends with it.
	sbx -- sh -c "setsid sleep $secs </dev/null >/dev/null 2>&1 & for i in \$(seq 100); do ps -o args | grep -q '^sleep $secs' && break; sleep 0.1; done; ps -o args | grep -c '^sleep $secs'"
	assert_equal "$output" "1"
	run pgrep -f "sleep $secs"
	assert_equal "$status" "1"
}

@test "sandbox: signals to the sandbox are forwarded to the command" {
	local out="$BATS_TEST_TMPDIR/out" pid child rc=0
	"$TOOL" sandbox-run "${SBX_LAYERS[@]}" -- sh -c 'trap "echo got TERM; exit 7" TERM; echo ready; while :; do sleep 0.05; done' >"$out" 2>&1 &
	pid=$!
	for _ in $(seq 200); do grep -q ready "$out" && break; sleep 0.05; done
	child=$(pgrep -P "$pid")
	[ -n "$child" ]
	kill -TERM "$child"
	wait "$pid" || rc=$?
	assert_equal "$rc" "7"
	assert_contains "$(cat "$out")" "got TERM"
}

@test "sandbox: stdin is /dev/null and no other fd of the caller leaks in" {
	exec 7>"$BATS_TEST_TMPDIR/leak"
	sbx -- sh -c 'cat; ls /proc/self/fd | tr "\n" " "; readlink /proc/self/fd/0'
	exec 7>&-
	assert_equal "$output" "0 1 2 3 /dev/null"
}

@test "sandbox: a cgroup namespace hides the builder's cgroup paths" {
	sbx -- sh -c 'cut -d: -f3 /proc/self/cgroup | sort -u'
	assert_equal "$output" "/"
}

@test "sandbox: hostname, /etc/hosts, /etc/resolv.conf and /etc/hostname" {
	sbx --hostname builder1 -- sh -c 'hostname; cat /etc/hostname; cat /etc/hosts'
	assert_equal "$output" "builder1
builder1
127.0.0.1	localhost builder1
::1	localhost ip6-localhost ip6-loopback"
	sbx --resolv-conf $'nameserver 192.0.2.1\n' --hosts $'10.0.0.1 db\n' -- sh -c 'cat /etc/resolv.conf /etc/hosts'
	assert_equal "$output" "nameserver 192.0.2.1
10.0.0.1 db"
	sbx -- cat /etc/resolv.conf
	if [ -r /etc/resolv.conf ]; then
		assert_equal "$output" "$(cat /etc/resolv.conf)"
	fi
}

@test "sandbox: network none has only lo (up), host network sees the host's interfaces" {
	sbx --network none -- sh -c 'ls /sys/class/net; ip -o link | grep -c "lo:.*UP"'
	assert_equal "$output" "lo
1"
	sbx --network host -- ls /sys/class/net
	assert_equal "$output" "$(ls /sys/class/net)"
}

@test "sandbox: minimal /dev with modes, pts, shm; /proc fresh; /sys read-only" {
	sbx -- sh -c 'cd /dev && ls -l null zero full random urandom tty | awk "{print \$1, \$5, \$6, \$NF}"'
	assert_equal "$output" "crw-rw-rw- 1, 7 full
crw-rw-rw- 1, 3 null
crw-rw-rw- 1, 8 random
crw-rw-rw- 5, 0 tty
crw-rw-rw- 1, 9 urandom
crw-rw-rw- 1, 5 zero"
	sbx -- sh -c 'ls /dev | tr "\n" " "; echo; readlink /dev/ptmx; readlink /dev/fd; stat -c "%a" /dev/shm /dev/pts/ptmx; grep -E " /dev/pts | /dev/shm | /proc | /sys " /proc/self/mounts | cut -d" " -f1-3'
	assert_equal "$output" "core fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero 
pts/ptmx
/proc/self/fd
1777
666
proc /proc proc
devpts /dev/pts devpts
shm /dev/shm tmpfs
sysfs /sys sysfs"
	# /proc is the new pid namespace's: only a handful of processes
	sbx -- sh -c 'ls /proc | grep -c "^[0-9]"'
	[ "$output" -le 5 ]
	sbx -- sh -c 'touch /sys/x 2>&1; echo 1 > /proc/sys/kernel/domainname 2>&1; cat /proc/keys 2>&1 | wc -c'
	assert_equal "$output" "touch: /sys/x: Read-only file system
sh: can't create /proc/sys/kernel/domainname: Read-only file system
0"
	if [ -e /proc/sysrq-trigger ]; then
		sbx -- sh -c 'echo > /proc/sysrq-trigger 2>&1'
		assert_equal "$output" "sh: can't create /proc/sysrq-trigger: Read-only file system"
	fi
}

@test "sandbox: docker's default capabilities and no_new_privs" {
	sbx -- grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status
	assert_equal "$output" "CapInh:	0000000000000000
CapPrm:	00000000a80425fb
CapEff:	00000000a80425fb
CapBnd:	00000000a80425fb
CapAmb:	0000000000000000
NoNewPrivs:	1"
	sbx --user app -- grep -E '^(CapPrm|CapEff|CapBnd|NoNewPrivs)' /proc/self/status
	assert_equal "$output" "CapPrm:	0000000000000000
CapEff:	0000000000000000
CapBnd:	00000000a80425fb
NoNewPrivs:	1"
	sbx -- sh -c 'umask'
	assert_equal "$output" "0022"
}

@test "sandbox: USER names, ids, user:group and supplementary groups" {
	# the primary group is among the supplementary ones, as docker, containerd and BuildKit set
	# them up (moby getUser, containerd EnsureAdditionalGids); the kernel sorts the list
	sbx -- sh -c 'id; echo $HOME'
	assert_equal "$output" "uid=0(root) gid=0(root) groups=0(root),10(wheel)
/root"
	sbx --user app -- sh -c 'id; echo $HOME; grep ^Groups /proc/self/status'
	assert_equal "$output" "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)
/home/app
Groups:	50 1000 "
	sbx --user 1000 -- id
	assert_equal "$output" "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)"
	sbx --user app:staff -- id
	assert_equal "$output" "uid=1000(app) gid=50(staff) groups=50(staff)"
	sbx --user 1000:10 -- id
	assert_equal "$output" "uid=1000(app) gid=10(wheel) groups=10(wheel)"
	sbx --user 4242:4343 -- sh -c 'id; echo $HOME'
	assert_equal "$output" "uid=4242 gid=4343 groups=4343
/"
	sbx --user daemon --env HOME=/custom --env PATH=/bin -- sh -c 'id -u; echo $HOME'
	assert_equal "$output" "1
/custom"
}

@test "sandbox: unknown user or group fails like docker" {
	sbx 125 --user foo -- true
	assert_equal "$output" "kiln-test-tool: unable to find user foo: no matching entries in passwd file"
	sbx 125 --user app:nogroup2 -- true
	assert_equal "$output" "kiln-test-tool: unable to find group nogroup2: no matching entries in group file"
}

@test "sandbox: exec errors are setup errors" {
	sbx 125 -- /bin/nonexistent
	assert_equal "$output" "kiln-test-tool: run: exec '/bin/nonexistent': No such file or directory"
	sbx 125 -- nonexistent
	assert_equal "$output" "kiln-test-tool: run: exec 'nonexistent': executable file not found in \$PATH"
	sbx 125 -- /etc/passwd
	assert_equal "$output" "kiln-test-tool: run: exec '/etc/passwd': Permission denied"
}

@test "sandbox: environment is exactly the given one plus PATH and HOME defaults" {
	sbx --no-env --env FOO=bar -- /usr/bin/env
	assert_equal "$(printf '%s\n' "$output" | sort)" "FOO=bar
HOME=/root
KILN_TEST=1
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	sbx --env PATH=/nowhere:/bin -- sh -c 'echo $PATH'
	assert_equal "$output" "/nowhere:/bin"
}

@test "sandbox: WORKDIR is created and used" {
	sbx --cwd /work/dir -- pwd
	assert_equal "$output" "/work/dir"
	assert_equal "$(upper_listing | cut -d' ' -f1,2,4)" "d 755 ./work
d 755 ./work/dir"
}

@test "sandbox: the host's file system is invisible" {
	local marker="/tmp/kiln-sbx-marker-$RANDOM$RANDOM"
	touch "$marker"
	sbx -- sh -c "ls $marker 2>&1; ls / | tr '\n' ' '"
	rm -f "$marker"
	assert_contains "$output" "No such file or directory"
	# no mount point of the sandbox's own state, and PID 1 (holding the builder's memory) is
	# out of reach
	sbx -- sh -c 'cut -d" " -f5 /proc/self/mountinfo | grep -c kiln-sandbox; cat /proc/1/root/etc/hostname 2>&1 | head -1; cat /proc/1/environ 2>&1 | head -c 60'
	assert_equal "$output" "0
cat: can't open '/proc/1/root/etc/hostname': Permission denied
cat: can't open '/proc/1/environ': Permission denied"
}

@test "sandbox: concurrent sandboxes from several threads of one process" {
	local scratch="$BATS_TEST_TMPDIR/scratch"
	mkdir -p "$scratch"
	run "$TOOL" sandbox-bench --lower "$SBX_BASE/rootfs" --scratch "$scratch" -n 5 --threads 4 -- sh -c 'echo $$ > /pid; test "$(cat /pid)" = 2 && test -f /etc/passwd'
	echo "# $output" >&3
	assert_equal "$status" "0"
	assert_contains "$output" "runs=20 threads=4"
	assert_equal "$(ls -A "$scratch")" ""
}

@test "sandbox: seccomp refuses new namespaces, keyrings and the mount API" {
	sbx -- sh -c 'grep ^Seccomp: /proc/self/status; unshare -r true 2>&1; unshare -m true 2>&1; unshare -n true 2>&1; mount -t tmpfs t /tmp 2>&1; sh -c "echo child ok" & wait'
	assert_equal "$output" "Seccomp:	2
unshare: unshare(0x10000000): Operation not permitted
unshare: unshare(0x20000): Operation not permitted
unshare: unshare(0x40000000): Operation not permitted
mount: permission denied (are you root?)
child ok"
}

@test "sandbox: privileged (RUN --security=insecure) keeps every capability and no filter" {
	sbx --privileged -- sh -c 'grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status; mkdir -p /tmp/m && mount -t tmpfs t /tmp/m && echo mounted; umount /tmp/m && echo unmounted'
	assert_equal "$output" "NoNewPrivs:	0
Seccomp:	0
mounted
unmounted"
	local host
	host=$(grep ^CapEff /proc/self/status)
	sbx --privileged -- grep ^CapEff /proc/self/status
	assert_equal "$output" "$host"
}

@test "sandbox: a killed sandbox is an error, not an exit status" {
	local out="$BATS_TEST_TMPDIR/out" pid reaper rc=0 secs="77$RANDOM$RANDOM"
	"$TOOL" sandbox-run "${SBX_LAYERS[@]}" -- sh -c "echo ready; exec sleep $secs" >"$out" 2>&1 &
	pid=$!
	for _ in $(seq 200); do grep -q ready "$out" && break; sleep 0.05; done
	reaper=$(pgrep -P "$pid")
	kill -KILL "$reaper"
	wait "$pid" || rc=$?
	assert_equal "$rc" "125"
	assert_contains "$(cat "$out")" "kiln-test-tool: run: the sandbox was killed by signal 9"
	# the command died with its namespace
	run pgrep -f "sleep $secs"
	assert_equal "$status" "1"
}
