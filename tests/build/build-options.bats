#!/usr/bin/env bats
# kiln build's flags: tags, -q, --iidfile, stdin contexts, --label, --format, --compression,
# --network, --secret, SOURCE_DATE_EPOCH.

load ../lib/helpers
load build-helpers

setup_file() {
	build_setup_file
}

@test "-q prints only the image ID; --iidfile writes it; every -t names it" {
	run_kiln build -q -t one:1 -t two:2 --iidfile "$BATS_TEST_TMPDIR/iid" "$KILN_TESTDATA/daemon"
	[[ "$output" =~ ^sha256:[0-9a-f]{64}$ ]]
	assert_equal "$(cat "$BATS_TEST_TMPDIR/iid")" "$output"
	assert_equal "$(inspect one:1 .Id)" "\"$output\""
	assert_equal "$(inspect two:2 .Id)" "\"$output\""
}

@test "a tar of the context on stdin" {
	run bash -c "tar -C '$KILN_TESTDATA/daemon' -c . | '$KILN' --root '$KILN_TEST_ROOT' build --progress plain -t fromtar:1 -"
	[ "$status" -eq 0 ]
	unpack fromtar:1 "$BATS_TEST_TMPDIR/rootfs"
	cmp "$BATS_TEST_TMPDIR/rootfs/my_daemon" "$KILN_TESTDATA/daemon/my_daemon"
	run bash -c "tar -C '$KILN_TESTDATA/daemon' -cz . | '$KILN' --root '$KILN_TEST_ROOT' build -q -f Dockerfile2 -t fromtgz:1 -"
	[ "$status" -eq 0 ]
	assert_contains "$(inspect fromtgz:1 .Config.Env)" "INTERVAL=2"
}

@test "a bare Dockerfile on stdin, and -f - with a context directory" {
	run bash -c "printf 'FROM kiln-test/busybox:latest\nRUN echo hi >/hi\n' | '$KILN' --root '$KILN_TEST_ROOT' build -q -t bare:1 -"
	[ "$status" -eq 0 ]
	unpack bare:1 "$BATS_TEST_TMPDIR/rootfs"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs/hi")" hi
	run bash -c "printf 'FROM kiln-test/busybox:latest\nCOPY my_daemon /d\n' | '$KILN' --root '$KILN_TEST_ROOT' build -q -t dash:1 -f - '$KILN_TESTDATA/daemon'"
	[ "$status" -eq 0 ]
	unpack dash:1 "$BATS_TEST_TMPDIR/rootfs2"
	cmp "$BATS_TEST_TMPDIR/rootfs2/d" "$KILN_TESTDATA/daemon/my_daemon"
}

@test "--label, --format docker and --compression zstd" {
	build_ok -t fmt:1 --label team=kiln --label "note=a b" --format docker --compression zstd "$KILN_TESTDATA/daemon"
	assert_equal "$(inspect fmt:1 .Config.Labels)" '{"note":"a b","team":"kiln"}'
	m=$(manifest_of fmt:1)
	assert_equal "$(printf '%s' "$m" | jq -r .mediaType)" application/vnd.docker.distribution.manifest.v2+json
	assert_equal "$(printf '%s' "$m" | jq -r '.layers[-1].mediaType')" application/vnd.docker.image.rootfs.diff.tar.zstd
	build_ok -t fmt:2 --compression none "$KILN_TESTDATA/daemon"
	assert_equal "$(manifest_of fmt:2 | jq -r '.layers[-1].mediaType')" application/vnd.oci.image.layer.v1.tar
}

@test "--network none gives RUN only a loopback interface" {
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx"
	printf 'FROM kiln-test/busybox:latest\nRUN grep -c : /proc/net/dev > /ifaces\n' >"$ctx/Dockerfile"
	build_ok -t net:none --network none "$ctx"
	unpack net:none "$BATS_TEST_TMPDIR/rootfs"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs/ifaces")" 1
}

@test "secrets reach RUN --mount=type=secret but never a layer, the history or the config" {
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx"
	echo "s3cr3t-value" >"$BATS_TEST_TMPDIR/tok"
	cat >"$ctx/Dockerfile" <<'DF'
FROM kiln-test/busybox:latest
RUN --mount=type=secret,id=tok test "$(cat /run/secrets/tok)" = s3cr3t-value && echo ok > /ok
RUN --mount=type=secret,id=tok,target=/etc/tokfile,required=true wc -c < /etc/tokfile > /len
DF
	build_ok -t sec:1 --secret "id=tok,src=$BATS_TEST_TMPDIR/tok" "$ctx"
	unpack sec:1 "$BATS_TEST_TMPDIR/rootfs"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs/ok")" ok
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs/len")" 13
	[ ! -e "$BATS_TEST_TMPDIR/rootfs/run/secrets/tok" ]
	[ ! -s "$BATS_TEST_TMPDIR/rootfs/etc/tokfile" ]
	for l in $(manifest_of sec:1 | jq -r '.layers[].digest'); do
		! tar -xzOf "$KILN_TEST_ROOT/blobs/sha256/${l#sha256:}" 2>/dev/null | grep -q s3cr3t-value
	done
	! grep -rq s3cr3t-value "$KILN_TEST_ROOT/blobs" "$KILN_TEST_ROOT/cache"
	# a missing required secret fails
	run_kiln 1 build --no-cache "$ctx"
	assert_contains "$output" "tok"
}

@test "SOURCE_DATE_EPOCH fixes the created times" {
	SOURCE_DATE_EPOCH=86400 run_kiln build -q -t epoch:1 --no-cache "$KILN_TESTDATA/daemon"
	assert_equal "$(inspect epoch:1 .Created)" '"1970-01-02T00:00:00Z"'
	assert_equal "$(inspect epoch:1 '.History[-1].created')" '"1970-01-02T00:00:00Z"'
}

@test "RUN --mount=type=cache keeps its contents across builds; tmpfs and bind mounts" {
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx/sub"
	echo bound >"$ctx/sub/file"
	cat >"$ctx/Dockerfile" <<'DF'
FROM kiln-test/busybox:latest
ARG RUNID
RUN --mount=type=cache,target=/cache echo "$RUNID" >> /cache/log && cat /cache/log | wc -l > /count
RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && test -f /scratch/x
RUN --mount=type=bind,source=sub,target=/mnt/sub cat /mnt/sub/file > /bound
DF
	build_ok -t cm:1 --build-arg RUNID=1 "$ctx"
	build_ok -t cm:2 --build-arg RUNID=2 "$ctx"
	unpack cm:2 "$BATS_TEST_TMPDIR/rootfs"
	r="$BATS_TEST_TMPDIR/rootfs"
	assert_equal "$(cat "$r/count")" 2
	assert_equal "$(cat "$r/bound")" bound
	[ ! -e "$r/cache/log" ]
	[ ! -e "$r/scratch/x" ]
}

@test "FROM scratch with COPY, and COPY --from an image of the store" {
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx"
	echo hello >"$ctx/hello.txt"
	cat >"$ctx/Dockerfile" <<'DF'
FROM scratch
COPY hello.txt /hello.txt
COPY --from=kiln-test/busybox:latest /bin/busybox /bin/busybox
COPY --from=kiln-test/busybox:latest /etc/passwd /etc/
DF
	build_ok -t scratchy:1 "$ctx"
	assert_equal "$(inspect scratchy:1 '.RootFS.Layers | length')" 3
	assert_equal "$(inspect scratchy:1 .Config.Env)" '["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]'
	unpack scratchy:1 "$BATS_TEST_TMPDIR/rootfs"
	r="$BATS_TEST_TMPDIR/rootfs"
	assert_equal "$(find "$r" -mindepth 1 | sed "s|$r||" | sort | tr '\n' ' ')" "/bin /bin/busybox /etc /etc/passwd /hello.txt "
	assert_equal "$(stat_of "$r/bin/busybox")" "755 0:0"
	cmp "$r/bin/busybox" "$BASE_OUT/rootfs/bin/busybox"
}

@test "ADD of an http URL: Last-Modified kept, --checksum verified" {
	skip_unless /usr/bin/python3
	srv="$BATS_TEST_TMPDIR/srv"
	mkdir -p "$srv"
	echo "remote content" >"$srv/remote.txt"
	touch -d @1200000000 "$srv/remote.txt"
	port_file="$BATS_TEST_TMPDIR/port"
	/usr/bin/python3 - "$srv" "$port_file" <<'PY' &
import functools, http.server, socketserver, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
with socketserver.TCPServer(("127.0.0.1", 0), handler) as httpd:
    open(sys.argv[2], "w").write(str(httpd.server_address[1]))
    httpd.serve_forever()
PY
	srv_pid=$!
	for _ in $(seq 50); do [ -s "$port_file" ] && break; sleep 0.1; done
	port=$(cat "$port_file")
	sum=$(sha256sum "$srv/remote.txt" | cut -d' ' -f1)
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx"
	cat >"$ctx/Dockerfile" <<DF
FROM kiln-test/busybox:latest
ADD http://127.0.0.1:$port/remote.txt /downloads/
ADD --checksum=sha256:$sum http://127.0.0.1:$port/remote.txt /named.txt
DF
	build_ok -t url:1 "$ctx"
	unpack url:1 "$BATS_TEST_TMPDIR/rootfs"
	r="$BATS_TEST_TMPDIR/rootfs"
	assert_equal "$(cat "$r/downloads/remote.txt")" "remote content"
	assert_equal "$(stat -c %Y "$r/downloads/remote.txt")" 1200000000
	assert_equal "$(stat_of "$r/named.txt")" "600 0:0"
	sed -i "s/sha256:$sum/sha256:$(printf '0%.0s' $(seq 64))/" "$ctx/Dockerfile"
	run_kiln 1 build "$ctx"
	assert_contains "$output" "digest mismatch"
	kill "$srv_pid"
	wait "$srv_pid" 2>/dev/null || true
}

@test "--progress tty draws a live view and ends with the image ID" {
	run_kiln build --progress tty -t tty:1 "$KILN_TESTDATA/daemon"
	assert_contains "$output" "[+] Building"
	assert_contains "$output" "ADD ./my_daemon /my_daemon"
	[[ "$(last_line "$output")" =~ ^sha256:[0-9a-f]{64}$ ]]
}

@test "independent stages build side by side; a failing one stops the build with its error" {
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx"
	# Each stage waits (up to 30 s) for a file the other writes into a shared cache mount: a
	# sequential build would fail with exit code 9.
	cat >"$ctx/Dockerfile" <<'DF'
FROM kiln-test/busybox:latest AS one
ARG TOKEN
RUN --mount=type=cache,id=sync,target=/sync touch /sync/$TOKEN-one && i=0 && while [ ! -e /sync/$TOKEN-two ]; do i=$((i+1)); [ $i -lt 300 ] || exit 9; sleep 0.1; done && echo met > /one
FROM kiln-test/busybox:latest AS two
ARG TOKEN
RUN --mount=type=cache,id=sync,target=/sync touch /sync/$TOKEN-two && i=0 && while [ ! -e /sync/$TOKEN-one ]; do i=$((i+1)); [ $i -lt 300 ] || exit 9; sleep 0.1; done && echo met > /two
FROM kiln-test/busybox:latest
COPY --from=one /one /one
COPY --from=two /two /two
DF
	build_ok -t par:1 --build-arg TOKEN=$RANDOM$RANDOM "$ctx"
	assert_contains "$output" "[stage 1/3 one] [3/3] RUN --mount=type=cache"
	assert_contains "$output" "[stage 2/3 two] [3/3] RUN --mount=type=cache"
	unpack par:1 "$BATS_TEST_TMPDIR/rootfs"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs/one")" met
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs/two")" met
	printf 'FROM kiln-test/busybox:latest AS three\nRUN exit 7\nFROM kiln-test/busybox:latest\nCOPY --from=three /x /x\n' >>"$ctx/Dockerfile"
	run_kiln 1 build --build-arg TOKEN=$RANDOM$RANDOM "$ctx"
	assert_contains "$output" "exit code: 7"
}

@test "RUN --mount=type=bind from another stage, and a context bind whose content is in the cache key" {
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx/sub"
	echo one >"$ctx/sub/file"
	cat >"$ctx/Dockerfile" <<'DF'
FROM kiln-test/busybox:latest AS gen
RUN mkdir /out && echo generated > /out/g.txt
FROM kiln-test/busybox:latest
RUN --mount=type=bind,from=gen,source=/out,target=/mnt/gen cat /mnt/gen/g.txt > /seen
RUN --mount=type=bind,source=sub,target=/mnt/sub cat /mnt/sub/file > /bound
DF
	build_ok -t bindfrom:1 "$ctx"
	unpack bindfrom:1 "$BATS_TEST_TMPDIR/rootfs"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs/seen")" generated
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs/bound")" one
	[ ! -e "$BATS_TEST_TMPDIR/rootfs/mnt/gen/g.txt" ]
	echo two >"$ctx/sub/file"
	build_ok -t bindfrom:2 "$ctx"
	unpack bindfrom:2 "$BATS_TEST_TMPDIR/rootfs2"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs2/bound")" two
}

@test "<Dockerfile>.dockerignore beside the Dockerfile wins over the context's .dockerignore" {
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx"
	echo a >"$ctx/a.txt"
	echo b >"$ctx/b.txt"
	echo a.txt >"$ctx/.dockerignore"
	echo b.txt >"$ctx/Dockerfile.custom.dockerignore"
	printf 'FROM kiln-test/busybox:latest\nCOPY . /ctx/\n' >"$ctx/Dockerfile.custom"
	cp "$ctx/Dockerfile.custom" "$ctx/Dockerfile"
	build_ok -t ign:custom -f "$ctx/Dockerfile.custom" "$ctx"
	unpack ign:custom "$BATS_TEST_TMPDIR/custom"
	[ -f "$BATS_TEST_TMPDIR/custom/ctx/a.txt" ]
	[ ! -e "$BATS_TEST_TMPDIR/custom/ctx/b.txt" ]
	build_ok -t ign:default "$ctx"
	unpack ign:default "$BATS_TEST_TMPDIR/default"
	[ ! -e "$BATS_TEST_TMPDIR/default/ctx/a.txt" ]
	[ -f "$BATS_TEST_TMPDIR/default/ctx/b.txt" ]
}

@test "a context bind mount shows only what .dockerignore lets through" {
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx/sub"
	echo keep >"$ctx/sub/keep.txt"
	echo hidden >"$ctx/sub/secret.txt"
	echo keep >"$ctx/single.txt"
	echo 'sub/secret.txt' >"$ctx/.dockerignore"
	cat >"$ctx/Dockerfile" <<'DF'
FROM kiln-test/busybox:latest
RUN --mount=type=bind,source=sub,target=/mnt/sub ls /mnt/sub > /listing
RUN --mount=type=bind,source=single.txt,target=/mnt/single.txt cat /mnt/single.txt > /single
DF
	build_ok -t bindign:1 "$ctx"
	unpack bindign:1 "$BATS_TEST_TMPDIR/rootfs"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs/listing")" keep.txt
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs/single")" keep
}

@test "RUN --mount=type=bind,rw: writes go to a throwaway layer, never into the context or the image" {
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx/dir"
	echo keep >"$ctx/somefile"
	echo inner >"$ctx/dir/inner"
	cat >"$ctx/Dockerfile" <<'DF'
FROM kiln-test/busybox:latest
RUN --mount=type=bind,rw,target=/ctx sh -c 'echo x > /ctx/newfile; rm -f /ctx/somefile; echo changed > /ctx/dir/inner; test -f /ctx/newfile && test ! -e /ctx/somefile && echo wrote > /rw-ok'
RUN --mount=type=bind,target=/ro sh -c 'if touch /ro/x 2>/dev/null; then echo writable; else echo readonly; fi > /ro-state'
RUN --mount=type=bind,rw,source=somefile,target=/f sh -c 'echo more >> /f && cat /f > /file-rw'
DF
	snap=$(cd "$ctx" && find . -printf '%p %m %s %T@\n' | sort && cat somefile dir/inner)
	build_ok -t bindrw:1 "$ctx"
	assert_equal "$(cd "$ctx" && find . -printf '%p %m %s %T@\n' | sort && cat somefile dir/inner)" "$snap"
	[ ! -e "$ctx/newfile" ]
	unpack bindrw:1 "$BATS_TEST_TMPDIR/rootfs"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs/rw-ok")" wrote
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs/ro-state")" readonly
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs/file-rw")" "$(printf 'keep\nmore')"
	[ ! -e "$BATS_TEST_TMPDIR/rootfs/f" ]
	[ ! -e "$BATS_TEST_TMPDIR/rootfs/ctx/newfile" ]
	[ ! -e "$BATS_TEST_TMPDIR/rootfs/ctx/somefile" ]
}

@test "RUN --mount=type=bind,from=STAGE shows the stage's layers: a directory, a file, the root, rw discarded" {
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx"
	cat >"$ctx/Dockerfile" <<'DF'
FROM kiln-test/busybox:latest AS gen
RUN mkdir -p /out/sub && echo one > /out/a && echo old > /out/gone && echo sub > /out/sub/s
RUN echo two > /out/b && rm /out/gone && ln -s /out/a /out/link && echo file > /single
FROM kiln-test/busybox:latest
RUN --mount=type=bind,from=gen,source=/out,target=/mnt/gen ls -A /mnt/gen > /listing && cat /mnt/gen/a /mnt/gen/b /mnt/gen/sub/s > /contents
RUN --mount=type=bind,from=gen,source=/single,target=/mnt/single.txt cat /mnt/single.txt > /single-seen
RUN --mount=type=bind,from=gen,source=/out/link,target=/mnt/viasym cat /mnt/viasym > /link-seen
RUN --mount=type=bind,from=gen,target=/mnt/root cat /mnt/root/out/b > /root-seen
RUN --mount=type=bind,from=gen,source=/out,target=/mnt/gen,rw sh -c 'echo x > /mnt/gen/new && rm /mnt/gen/a && echo written > /rw-ok'
RUN --mount=type=bind,from=gen,source=/out,target=/mnt/gen cat /mnt/gen/a > /after && test ! -e /mnt/gen/new && echo clean >> /after
RUN --mount=type=bind,from=gen,source=/single,target=/mnt/s,rw sh -c 'echo more >> /mnt/s && cat /mnt/s > /single-rw'
RUN --mount=type=secret,id=absent --mount=type=bind,from=gen,source=/single,target=/mnt/s cat /mnt/s > /single-after
DF
	build_ok -t bindfromlayers:1 "$ctx"
	unpack bindfromlayers:1 "$BATS_TEST_TMPDIR/rootfs"
	r="$BATS_TEST_TMPDIR/rootfs"
	assert_equal "$(cat "$r/listing")" "$(printf 'a\nb\nlink\nsub')"
	assert_equal "$(cat "$r/contents")" "$(printf 'one\ntwo\nsub')"
	assert_equal "$(cat "$r/single-seen")" file
	assert_equal "$(cat "$r/link-seen")" one
	assert_equal "$(cat "$r/root-seen")" two
	assert_equal "$(cat "$r/rw-ok")" written
	assert_equal "$(cat "$r/after")" "$(printf 'one\nclean')"
	[ ! -e "$r/mnt/gen/new" ]
	assert_equal "$(cat "$r/single-rw")" "$(printf 'file\nmore')"
	# the rw write went to a copy; the mount after an absent optional secret is the right one
	assert_equal "$(cat "$r/single-after")" file
	run_kiln 1 build --progress plain -f - "$ctx" <<'DF'
FROM kiln-test/busybox:latest AS gen
FROM kiln-test/busybox:latest
RUN --mount=type=bind,from=gen,source=/nope,target=/mnt true
DF
	assert_contains "$output" "bind mount source '/nope' not found in 'gen'"
}
