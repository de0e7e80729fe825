#!/usr/bin/env bats
# Every testdata example built FROM the local busybox base; the image users get is checked through
# `kiln inspect` (config, history, layers) and its unpacked file tree (paths, modes, owners, contents).

load ../lib/helpers
load build-helpers

setup_file() {
	build_setup_file
}

@test "the daemon example script counts and saves its counter on SIGTERM" {
	state="$BATS_TEST_TMPDIR/state/counter"
	INTERVAL=0.05 STATE="$state" sh "$KILN_TESTDATA/daemon/my_daemon" >"$BATS_TEST_TMPDIR/log" &
	pid=$!
	sleep 0.5
	kill -TERM "$pid"
	wait "$pid"
	grep -q '^counter: 3$' "$BATS_TEST_TMPDIR/log"
	saved=$(cat "$state")
	[ "$saved" -ge 3 ]
	# a restart continues from the saved value
	INTERVAL=0.05 STATE="$state" sh "$KILN_TESTDATA/daemon/my_daemon" >"$BATS_TEST_TMPDIR/log2" &
	pid=$!
	sleep 0.2
	kill -TERM "$pid"
	wait "$pid"
	grep -q "starting at $saved" "$BATS_TEST_TMPDIR/log2"
}

@test "daemon: kiln build --tag my_daemon:0.1 . gives the image with the script and its CMD" {
	cd "$KILN_TESTDATA/daemon"
	build_ok --tag my_daemon:0.1 .
	id=$(last_line "$output")
	assert_contains "$output" "[stage 1/1] [2/3] ADD ./my_daemon /my_daemon"
	assert_equal "$(inspect my_daemon:0.1 .Id)" "\"$id\""
	assert_equal "$(inspect my_daemon:0.1 .Config.Cmd)" '["/bin/sh","/my_daemon"]'
	assert_equal "$(inspect my_daemon:0.1 .Config.Entrypoint)" 'null'
	assert_equal "$(inspect my_daemon:0.1 '.RootFS.Layers | length')" 2
	assert_equal "$(inspect my_daemon:0.1 '.History[-2].created_by')" '"ADD ./my_daemon /my_daemon # buildkit"'
	assert_equal "$(inspect my_daemon:0.1 '.History[-1].created_by')" '"CMD [\"/bin/sh\" \"/my_daemon\"]"'
	assert_equal "$(inspect my_daemon:0.1 '.History[-1].empty_layer')" true
	unpack my_daemon:0.1 "$BATS_TEST_TMPDIR/rootfs"
	assert_equal "$(stat_of "$BATS_TEST_TMPDIR/rootfs/my_daemon")" "755 0:0"
	cmp "$BATS_TEST_TMPDIR/rootfs/my_daemon" "$KILN_TESTDATA/daemon/my_daemon"
	[ -x "$BATS_TEST_TMPDIR/rootfs/bin/busybox" ]
	run_kiln images
	assert_contains "$output" "my_daemon"
	assert_contains "$output" "0.1"
}

@test "daemon: -f Dockerfile2 adds ENV, a RUN layer, VOLUME and STOPSIGNAL" {
	cd "$KILN_TESTDATA/daemon"
	build_ok --tag my_daemon:0.2 -f Dockerfile2 .
	env=$(inspect my_daemon:0.2 .Config.Env)
	assert_contains "$env" '"INTERVAL=2"'
	assert_contains "$env" '"STATE=/var/lib/my_daemon/counter"'
	assert_contains "$env" '"PATH='
	assert_equal "$(inspect my_daemon:0.2 .Config.Volumes)" '{"/var/lib/my_daemon":{}}'
	assert_equal "$(inspect my_daemon:0.2 .Config.StopSignal)" '"SIGTERM"'
	assert_equal "$(inspect my_daemon:0.2 '.RootFS.Layers | length')" 3
	assert_equal "$(inspect my_daemon:0.2 '[.History[] | select(.empty_layer != true)] | length')" 3
	assert_equal "$(inspect my_daemon:0.2 '.History[-4].created_by')" \
		'"RUN /bin/sh -c mkdir -p /var/lib/my_daemon && echo 0 > /var/lib/my_daemon/counter # buildkit"'
	unpack my_daemon:0.2 "$BATS_TEST_TMPDIR/rootfs"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs/var/lib/my_daemon/counter")" 0
	# the run-time files of the sandbox never land in the layer
	m=$(manifest_of my_daemon:0.2)
	top=$(printf '%s' "$m" | jq -r '.layers[-1].digest')
	listing=$(tar -tf "$KILN_TEST_ROOT/blobs/sha256/${top#sha256:}")
	[[ "$listing" != *etc/hosts* ]]
	[[ "$listing" != *etc/resolv.conf* ]]
	[[ "$listing" != *proc/* ]]
	[[ "$listing" == *var/lib/my_daemon/counter* ]]
}

@test "multistage: only the needed stages run and the final stage gets USER, WORKDIR, EXPOSE, LABEL, ENTRYPOINT" {
	build_ok -t hello:1 "$KILN_TESTDATA/multistage"
	[[ "$output" != *"never built"* ]]
	assert_contains "$output" "[stage 1/2 build] [4/4] RUN sh gen.sh /out"
	assert_equal "$(inspect hello:1 .Config.User)" '"app"'
	assert_equal "$(inspect hello:1 .Config.WorkingDir)" '"/app/work"'
	assert_equal "$(inspect hello:1 '.Config.ExposedPorts | keys')" '["8080/tcp","9090/udp"]'
	assert_equal "$(inspect hello:1 .Config.Labels)" '{"com.example.version":"1.0","org.opencontainers.image.title":"hello"}'
	assert_equal "$(inspect hello:1 .Config.Entrypoint)" '["/app/bin/hello"]'
	assert_equal "$(inspect hello:1 .Config.Cmd)" '["kiln"]'
	# base layer + COPY --from + WORKDIR's mkdir
	assert_equal "$(inspect hello:1 '.RootFS.Layers | length')" 3
	assert_contains "$(inspect hello:1 '.History[-6].created_by')" 'COPY --from=build --chown=app:staff /out/ /app/'
	unpack hello:1 "$BATS_TEST_TMPDIR/rootfs"
	r="$BATS_TEST_TMPDIR/rootfs"
	assert_equal "$(stat_of "$r/app/bin/hello")" "755 1000:50"
	assert_equal "$(stat_of "$r/app/share/data-3.txt")" "644 1000:50"
	assert_equal "$(cat "$r/app/share/data-3.txt")" "data 3"
	assert_equal "$(cat "$r/app/BUILD_INFO")" "built"
	assert_equal "$(stat_of "$r/app/work")" "755 1000:1000"
	[ ! -e "$r/src" ]
	[ ! -e "$r/out" ]
	assert_equal "$(ls "$r/app/share" | wc -l)" 10
}

@test "multistage: --target build gives the build stage" {
	build_ok -t hello:build --target build "$KILN_TESTDATA/multistage"
	assert_equal "$(inspect hello:build .Config.WorkingDir)" '"/src"'
	unpack hello:build "$BATS_TEST_TMPDIR/rootfs"
	[ -x "$BATS_TEST_TMPDIR/rootfs/out/bin/hello" ]
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs/src/tmpfile")" scratch
	[[ "$output" != *"stage 2/"* ]]
}

@test "args: ARG and ENV expansion; build args reach RUN but not the config" {
	build_ok -t args:1 --build-arg WHO=me --build-arg NOT_DECLARED=x "$KILN_TESTDATA/args"
	assert_contains "$output" "NOT_DECLARED"
	assert_contains "$output" "were not consumed"
	env=$(inspect args:1 .Config.Env)
	assert_contains "$env" '"APP_HOME=/opt/app"'
	assert_contains "$env" '"MSG=hello me"'
	assert_contains "$env" '"CONF=/opt/app/etc"'
	[[ "$env" != *WHO* ]]
	[[ "$env" != *GREETING* ]]
	assert_equal "$(inspect args:1 .Config.Labels)" '{"greeting":"hello","home":"/opt/app"}'
	assert_equal "$(inspect args:1 .Config.WorkingDir)" '"/opt/app"'
	assert_contains "$(inspect args:1 '.History[] | select(.created_by | startswith("RUN")) | .created_by')" 'RUN |2 GREETING=hello WHO=me /bin/sh -c'
	unpack args:1 "$BATS_TEST_TMPDIR/rootfs"
	r="$BATS_TEST_TMPDIR/rootfs/opt/app"
	assert_equal "$(cat "$r/msg.txt")" "hello me"
	assert_equal "$(cat "$r/who.txt")" "who=me"
	assert_equal "$(cat "$r/etc/conf.txt")" "setting=1"
}

@test "dockerignore: ignored files never reach the image, exceptions do" {
	build_ok -t ign:1 "$KILN_TESTDATA/dockerignore"
	unpack ign:1 "$BATS_TEST_TMPDIR/rootfs"
	cd "$BATS_TEST_TMPDIR/rootfs/ctx"
	assert_equal "$(find . | sort | tr '\n' ' ')" ". ./README ./important.log ./src ./src/a.txt "
}

@test "addtar: ADD extracts a local tar.gz, copies plain files, COPY keeps the archive" {
	build_ok -t addtar:1 "$KILN_TESTDATA/addtar"
	unpack addtar:1 "$BATS_TEST_TMPDIR/rootfs"
	r="$BATS_TEST_TMPDIR/rootfs"
	assert_equal "$(cat "$r/opt/one.txt")" one
	assert_equal "$(cat "$r/opt/dir/two.txt")" two
	assert_equal "$(stat -c %Y "$r/opt/one.txt")" 1000000000
	assert_equal "$(cat "$r/opt/plain/plain.txt")" plain
	cmp "$r/copied/payload.tar.gz" "$KILN_TESTDATA/addtar/payload.tar.gz"
}

@test "heredoc: RUN and COPY heredocs, expanded unless quoted" {
	build_ok -t heredoc:1 "$KILN_TESTDATA/heredoc"
	unpack heredoc:1 "$BATS_TEST_TMPDIR/rootfs"
	r="$BATS_TEST_TMPDIR/rootfs/out"
	assert_equal "$(cat "$r/run.txt")" "run heredoc"
	assert_equal "$(cat "$r/greeting.txt")" "hello kiln"
	assert_equal "$(cat "$r/literal.txt")" 'hello ${NAME}'
	assert_equal "$(cat "$r/second.txt")" "second kiln"
}

@test "copyopts: --chown names and ids, --chmod, wildcards, --exclude, --parents, --link, relative dest" {
	build_ok -t copyopts:1 "$KILN_TESTDATA/copyopts"
	unpack copyopts:1 "$BATS_TEST_TMPDIR/rootfs"
	r="$BATS_TEST_TMPDIR/rootfs"
	assert_equal "$(stat_of "$r/owned/f1.txt")" "644 1000:50"
	assert_equal "$(stat_of "$r/numeric/f2.txt")" "600 1234:5678"
	assert_equal "$(stat_of "$r/dirmode/d.txt")" "751 0:0"
	assert_equal "$(stat_of "$r/dirmode/sub")" "751 0:0"
	assert_equal "$(cat "$r/dirmode/sub/s.txt")" s
	assert_equal "$(ls "$r/wild" | tr '\n' ' ')" "f1.txt f2.txt "
	assert_equal "$(cd "$r/excluded" && find . -type f | sort | tr '\n' ' ')" "./d.txt ./sub/s.txt "
	assert_equal "$(cat "$r/parents/dir/sub/s.txt")" s
	assert_equal "$(cat "$r/linked/renamed.txt")" f1
	assert_equal "$(ls "$r/rel" | tr '\n' ' ')" "f1.txt f2.txt "
}

@test "metadata: every metadata instruction lands in the config as docker sets it" {
	build_ok -t meta:1 "$KILN_TESTDATA/metadata"
	c() { inspect meta:1 ".Config$1"; }
	assert_contains "$(c .Env)" '"A=1"'
	assert_contains "$(c .Env)" '"B=two words"'
	assert_equal "$(c .Labels)" '{"multi.label":"a b","other":"x"}'
	assert_equal "$(c '.ExposedPorts | keys')" '["443/tcp","53/udp","80/tcp"]'
	assert_equal "$(c '.Volumes | keys')" '["/cache","/data","/logs"]'
	assert_equal "$(c .User)" '"daemon:daemon"'
	assert_equal "$(c .Healthcheck)" '{"Interval":30000000000,"Retries":4,"StartPeriod":10000000000,"Test":["CMD","/bin/true"],"Timeout":5000000000}'
	assert_equal "$(c .StopSignal)" '"SIGINT"'
	assert_equal "$(c .OnBuild)" '["RUN echo triggered > /tmp/onbuild.txt"]'
	assert_equal "$(c .Entrypoint)" '["/bin/sh","-c"]'
	assert_equal "$(c .Cmd)" '["echo hi"]'
	assert_equal "$(c .Shell)" '["/bin/sh","-ec"]'
	assert_equal "$(inspect meta:1 .Author)" '"kiln team <kiln@example.com>"'
	assert_contains "$(inspect meta:1 '[.History[].created_by]')" '"RUN /bin/sh -ec echo \"shell form\" > /shell.txt # buildkit"'
	unpack meta:1 "$BATS_TEST_TMPDIR/rootfs"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs/shell.txt")" "shell form"
}

@test "onbuild: the base's ONBUILD triggers run first and are not inherited" {
	build_ok -t kiln-test/metadata:latest "$KILN_TESTDATA/metadata"
	build_ok -t onbuilt:1 "$KILN_TESTDATA/onbuild"
	assert_contains "$output" "RUN echo triggered > /tmp/onbuild.txt"
	assert_contains "$output" "    triggered"
	assert_equal "$(inspect onbuilt:1 .Config.OnBuild)" 'null'
	assert_equal "$(inspect onbuilt:1 .Config.Entrypoint)" '["/bin/echo"]'
	assert_equal "$(inspect onbuilt:1 .Config.Cmd)" 'null'
	unpack onbuilt:1 "$BATS_TEST_TMPDIR/rootfs"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs/tmp/onbuild.txt")" triggered
}
