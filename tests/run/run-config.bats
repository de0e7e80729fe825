#!/usr/bin/env bats
# kiln run and the image's config: Entrypoint/Cmd combined as docker documents it ("Understand how
# CMD and ENTRYPOINT interact", Dockerfile reference), Env, WorkingDir, User, Volumes; the
# ephemeral root file system; exit statuses (docker run's 125/126/127).

load ../lib/helpers
load run-helpers

setup_file() {
	run_setup_file
	build_image cmd-exec <<-'EOF2'
	FROM kiln-test/busybox:latest
	CMD ["echo", "exec_cmd", "p1_cmd"]
	EOF2
	build_image ep-exec-cmd-exec <<-'EOF2'
	FROM kiln-test/busybox:latest
	ENTRYPOINT ["echo", "exec_entry", "p1_entry"]
	CMD ["exec_cmd", "p1_cmd"]
	EOF2
	build_image ep-exec-cmd-shell <<-'EOF2'
	FROM kiln-test/busybox:latest
	ENTRYPOINT ["echo", "exec_entry", "p1_entry"]
	CMD exec_cmd p1_cmd
	EOF2
	build_image ep-shell <<-'EOF2'
	FROM kiln-test/busybox:latest
	ENTRYPOINT echo shell-entry "$0" "$#"
	CMD ["exec_cmd", "p1_cmd"]
	EOF2
	build_image config <<-'EOF2'
	FROM kiln-test/busybox:latest
	ENV GREETING=hello PATH=/usr/local/bin:/bin:/usr/bin
	RUN mkdir -p /data/seed && echo from-image >/data/seed/file && mkdir /srv && echo a >/srv/a
	WORKDIR /srv
	USER app
	VOLUME ["/data", "/cache"]
	CMD ["sh", "-c", "echo cwd=$(pwd) user=$(id -un) greeting=$GREETING"]
	EOF2
}

@test "CMD exec form alone: exec_cmd p1_cmd" {
	run_kiln run cmd-exec
	assert_equal "$output" "exec_cmd p1_cmd"
}

@test "arguments replace CMD" {
	run_kiln run cmd-exec echo other
	assert_equal "$output" "other"
}

@test "ENTRYPOINT exec + CMD exec: exec_entry p1_entry exec_cmd p1_cmd" {
	run_kiln run ep-exec-cmd-exec
	assert_equal "$output" "exec_entry p1_entry exec_cmd p1_cmd"
	run_kiln run ep-exec-cmd-exec a1 a2
	assert_equal "$output" "exec_entry p1_entry a1 a2"
}

@test "ENTRYPOINT exec + CMD shell: exec_entry p1_entry /bin/sh -c exec_cmd p1_cmd" {
	run_kiln run ep-exec-cmd-shell
	assert_equal "$output" "exec_entry p1_entry /bin/sh -c exec_cmd p1_cmd"
}

@test "ENTRYPOINT shell form: /bin/sh -c, CMD and arguments only reach \$0..." {
	run_kiln run ep-shell
	assert_equal "$output" "shell-entry exec_cmd 1"
	run_kiln run ep-shell x
	assert_equal "$output" "shell-entry x 0"
}

@test "--entrypoint replaces ENTRYPOINT and clears CMD; '' clears the entrypoint" {
	run_kiln run --entrypoint echo ep-exec-cmd-exec x y
	assert_equal "$output" "x y"
	# CMD is not used: echo alone prints an empty line
	run_kiln run --entrypoint echo ep-exec-cmd-exec
	assert_equal "$output" ""
	run_kiln run --entrypoint "" ep-exec-cmd-exec echo only-args
	assert_equal "$output" "only-args"
	run_kiln 125 run --entrypoint "" ep-exec-cmd-exec
	assert_contains "$output" "no command specified"
}

@test "an image with neither ENTRYPOINT nor CMD and no command: 125 no command specified" {
	run_kiln 125 run kiln-test/busybox
	assert_contains "$output" "no command specified"
}

@test "Env, WorkingDir and User from the image; -w, -u and -e override them" {
	run_kiln run config
	assert_equal "$output" "cwd=/srv user=app greeting=hello"
	run_kiln run -w /new/dir -u root -e GREETING=hi config
	assert_equal "$output" "cwd=/new/dir user=root greeting=hi"
}

@test "the environment is docker's: PATH from the image, HOSTNAME, HOME from passwd, -e first" {
	run_kiln run -e B=2 -e A=1 config env
	# PATH and HOSTNAME lead, -e values in order, then the image's; HOME from app's passwd entry
	assert_equal "$(printf '%s\n' "$output" | sed -n 1p)" "PATH=/usr/local/bin:/bin:/usr/bin"
	assert_equal "$(printf '%s\n' "$output" | sed -n 2p)" "HOSTNAME=$(hostname)"
	assert_equal "$(printf '%s\n' "$output" | grep -E '^(A|B|GREETING)=' | tr '\n' ' ')" "B=2 A=1 GREETING=hello "
	assert_contains "$output" "HOME=/home/app"
	run_kiln run kiln-test/busybox env
	assert_contains "$output" "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	assert_contains "$output" "HOME=/root"
}

@test "VOLUMEs are anonymous volumes: the image's content, writable under --read-only, thrown away" {
	run_kiln run -u root --read-only config sh -c \
		'cat /data/seed/file; echo new >/data/new; echo c >/cache/c; ls /cache; grep -E " /(data|cache) " /proc/mounts | wc -l; touch /srv/x 2>&1; true'
	assert_contains "$output" "from-image"
	assert_contains "$output" "Read-only file system"
	assert_equal "$(printf '%s\n' "$output" | sed -n 2p)" "c"
	assert_equal "$(printf '%s\n' "$output" | sed -n 3p)" "2"
	# a new container starts from the image again
	run_kiln run config sh -c 'ls /data; ls /cache | wc -l'
	assert_equal "$output" "$(printf 'seed\n0')"
}

@test "-v on a VOLUME path replaces the anonymous volume with the host directory" {
	host="$BATS_TEST_TMPDIR/host-data"
	mkdir -p "$host" && echo host >"$host/h"
	run_kiln run -u root -v "$host:/data" config sh -c 'ls /data; echo written >/data/w'
	assert_equal "$output" "h"
	assert_equal "$(cat "$host/w")" "written"
}

@test "the root file system is ephemeral (--rm or not): writes are gone, nothing stays in the store" {
	run_kiln run --rm kiln-test/busybox sh -c 'echo x >/etc/marker; rm /bin/ls; cat /etc/marker'
	assert_equal "$output" "x"
	run_kiln run kiln-test/busybox sh -c 'cat /etc/marker 2>&1; ls -d /bin/ls'
	assert_contains "$output" "can't open '/etc/marker'"
	assert_contains "$output" "/bin/ls"
	run_kiln run kiln-test/busybox sh -c 'echo y >/root/y'
	# no writable layer, work dir or volume left behind
	[ -z "$(find "$KILN_TEST_ROOT/tmp" -mindepth 1 2>/dev/null)" ]
}

@test "exit status: the command's; 127 not found; 126 not executable; 125 unknown image" {
	run_kiln 42 run kiln-test/busybox sh -c 'exit 42'
	run_kiln 127 run kiln-test/busybox no-such-command
	assert_contains "$output" "executable file not found in \$PATH"
	run_kiln 127 run kiln-test/busybox /no/such/path
	run_kiln 126 run kiln-test/busybox /etc/passwd
	assert_contains "$output" "Permission denied"
	run_kiln 125 run no-such-image:1 true
	assert_contains "$output" "unable to find image 'no-such-image:1' locally"
	run_kiln 125 run -u nobodyhere kiln-test/busybox true
	assert_contains "$output" "unable to find user nobodyhere"
}

@test "killed by a signal: 128+N (with --init, PID 2 killed by SIGKILL gives 137)" {
	run_kiln 137 run --init kiln-test/busybox sh -c 'kill -KILL $$'
	run_kiln 143 run --init kiln-test/busybox sh -c 'kill -TERM $$; sleep 5'
}
