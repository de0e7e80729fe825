#!/usr/bin/env bats
# docker buildx's flags: -o exporters (each read back by GNU tar, skopeo or umoci), --metadata-file,
# --load/--provenance/--sbom/--platform, --add-host, --shm-size, --no-cache-filter, --ssh with a
# real ssh-agent, and buildx flags kiln does not implement.

load ../lib/helpers
load ../registry-lib/registry
load build-helpers

setup_file() {
	build_setup_file
	export XCTX="$BATS_FILE_TMPDIR/xctx"
	mkdir -p "$XCTX"
	# a file with an owner and mode, a directory, and a file deleted by a later layer (whiteout)
	cat >"$XCTX/Dockerfile" <<-'EOF'
	FROM kiln-test/busybox:latest
	RUN mkdir -p /out/sub && echo hi > /out/f && chmod 640 /out/f && chown 12:34 /out/f && ln -s f /out/link
	RUN rm /etc/passwd && echo two > /out/sub/g
	EOF
}

# index_entries: how many images index.json holds.
index_entries() {
	jq '.manifests | length' "$KILN_TEST_ROOT/index.json"
}

@test "-o type=local writes the final stage's files, and stores no image" {
	before=$(index_entries)
	run_kiln build --progress plain -o "type=local,dest=$BATS_TEST_TMPDIR/out" "$XCTX"
	assert_equal "$(index_entries)" "$before"
	# the same build stored, unpacked with GNU tar, is the same tree
	build_ok -t xref:1 "$XCTX"
	unpack xref:1 "$BATS_TEST_TMPDIR/ref"
	diff -r --no-dereference "$BATS_TEST_TMPDIR/ref" "$BATS_TEST_TMPDIR/out"
	assert_equal "$(stat_of "$BATS_TEST_TMPDIR/out/out/f")" "640 12:34"
	assert_equal "$(readlink "$BATS_TEST_TMPDIR/out/out/link")" f
	[ ! -e "$BATS_TEST_TMPDIR/out/etc/passwd" ]
	# -o DIR is the local exporter too
	run_kiln build -q -o "$BATS_TEST_TMPDIR/out2" "$XCTX"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/out2/out/sub/g")" two
}

@test "-o type=tar,dest=FILE and -o - write those files as a tar" {
	run_kiln build -q -o "type=tar,dest=$BATS_TEST_TMPDIR/files.tar" "$XCTX"
	listing=$(tar -tvf "$BATS_TEST_TMPDIR/files.tar")
	assert_contains "$listing" "-rw-r----- 12/34             3"
	assert_contains "$listing" "out/link -> f"
	[[ "$listing" != *etc/passwd* ]]
	mkdir "$BATS_TEST_TMPDIR/x"
	tar -xf "$BATS_TEST_TMPDIR/files.tar" -C "$BATS_TEST_TMPDIR/x" --numeric-owner --same-owner
	assert_equal "$(cat "$BATS_TEST_TMPDIR/x/out/f")" hi
	# stdout: only the tar (no image ID after it)
	run bash -c "'$KILN' --root '$KILN_TEST_ROOT' build -q -o - '$XCTX' | tar -tf - | grep -c '^out/sub/g\$'"
	assert_equal "$output" 1
	"$KILN" --root "$KILN_TEST_ROOT" build -q -o - "$XCTX" >"$BATS_TEST_TMPDIR/stdout.tar"
	cmp "$BATS_TEST_TMPDIR/stdout.tar" "$BATS_TEST_TMPDIR/files.tar"
}

@test "-o type=oci is an oci-archive skopeo and umoci read; --metadata-file has its digests" {
	skip_unless skopeo
	skip_unless umoci
	before=$(index_entries)
	run_kiln build -q -t xoci:1 -o "type=oci,dest=$BATS_TEST_TMPDIR/img.tar" \
		--metadata-file "$BATS_TEST_TMPDIR/md.json" "$XCTX"
	id=$(last_line "$output")
	assert_equal "$(index_entries)" "$before"
	md="$BATS_TEST_TMPDIR/md.json"
	assert_equal "$(jq -r '."containerimage.config.digest"' "$md")" "$id"
	assert_equal "$(jq -r '."image.name"' "$md")" docker.io/library/xoci:1
	run skopeo inspect --raw "oci-archive:$BATS_TEST_TMPDIR/img.tar"
	[ "$status" -eq 0 ]
	assert_equal "sha256:$(printf '%s' "$output" | sha256sum | cut -d' ' -f1)" \
		"$(jq -r '."containerimage.digest"' "$md")"
	assert_equal "$(jq -r '."containerimage.descriptor".digest' "$md")" "$(jq -r '."containerimage.digest"' "$md")"
	assert_equal "$(skopeo inspect --raw --config "oci-archive:$BATS_TEST_TMPDIR/img.tar" | sha256sum | cut -d' ' -f1)" "${id#sha256:}"
	mkdir "$BATS_TEST_TMPDIR/layout"
	tar -xf "$BATS_TEST_TMPDIR/img.tar" -C "$BATS_TEST_TMPDIR/layout"
	umoci unpack --image "$BATS_TEST_TMPDIR/layout:docker.io/library/xoci:1" "$BATS_TEST_TMPDIR/bundle" >/dev/null
	assert_equal "$(stat_of "$BATS_TEST_TMPDIR/bundle/rootfs/out/f")" "640 12:34"
	[ ! -e "$BATS_TEST_TMPDIR/bundle/rootfs/etc/passwd" ]
}

@test "-o type=docker,dest=FILE is a docker-archive that skopeo reads and kiln load restores" {
	skip_unless skopeo
	run_kiln build -q -o "type=docker,dest=$BATS_TEST_TMPDIR/d.tar,name=xdock:2" "$XCTX"
	id=$(last_line "$output")
	assert_equal "$(tar -xOf "$BATS_TEST_TMPDIR/d.tar" manifest.json | jq -c '.[0].RepoTags')" '["xdock:2"]'
	assert_equal "$(skopeo inspect --raw --config "docker-archive:$BATS_TEST_TMPDIR/d.tar" | sha256sum | cut -d' ' -f1)" "${id#sha256:}"
	run_kiln --root "$BATS_TEST_TMPDIR/other" load -i "$BATS_TEST_TMPDIR/d.tar"
	assert_equal "$(KILN_TEST_ROOT="$BATS_TEST_TMPDIR/other" inspect xdock:2 .Id)" "\"$id\""
	# type=docker without dest, and --load: the local store
	run_kiln build -q -t xdock:3 -o type=docker "$XCTX"
	assert_equal "$(inspect xdock:3 .Id)" "\"$id\""
	run_kiln build -q -t xdock:4 --load "$XCTX"
	assert_equal "$(inspect xdock:4 .Id)" "\"$id\""
}

@test "-o type=registry and type=image,push=true push; --metadata-file names the pushed digest" {
	skip_unless docker-registry
	skip_unless skopeo
	registry_start open
	run_kiln build -q -o "type=registry,name=$REGISTRY_HOST/x/reg:1" --metadata-file "$BATS_TEST_TMPDIR/md.json" "$XCTX"
	run skopeo inspect --tls-verify=false --raw "docker://$REGISTRY_HOST/x/reg:1"
	[ "$status" -eq 0 ]
	assert_equal "sha256:$(printf '%s' "$output" | sha256sum | cut -d' ' -f1)" \
		"$(jq -r '."containerimage.digest"' "$BATS_TEST_TMPDIR/md.json")"
	assert_equal "$(jq -r '."image.name"' "$BATS_TEST_TMPDIR/md.json")" "$REGISTRY_HOST/x/reg:1"
	run_kiln build -q -t "$REGISTRY_HOST/x/img:2" -o type=image,push=true "$XCTX"
	run skopeo inspect --tls-verify=false "docker://$REGISTRY_HOST/x/img:2"
	[ "$status" -eq 0 ]
	# --push with a file exporter: both happen
	run_kiln build -q -t "$REGISTRY_HOST/x/both:3" --push -o "type=oci,dest=-" "$XCTX" >/dev/null
	run skopeo inspect --tls-verify=false "docker://$REGISTRY_HOST/x/both:3"
	[ "$status" -eq 0 ]
	"$KILN" --root "$KILN_TEST_ROOT" build -q -o "type=oci,dest=-" "$XCTX" >"$BATS_TEST_TMPDIR/stdout-oci.tar"
	run skopeo inspect "oci-archive:$BATS_TEST_TMPDIR/stdout-oci.tar"
	[ "$status" -eq 0 ]
	registry_stop
}

@test "--load, --provenance=false, --sbom=false and --platform of the host are accepted" {
	host="linux/$(uname -m | sed 's/x86_64/amd64/;s/aarch64/arm64/')"
	build_ok -t xacc:1 --load --provenance=false --sbom=false --platform "$host" "$XCTX"
	run_kiln 2 build --provenance=true "$XCTX"
	assert_contains "$output" "kiln does not make attestations yet"
	run_kiln 2 build --sbom=true "$XCTX"
	assert_contains "$output" "--sbom=true"
	foreign=linux/s390x
	[ "$host" != linux/s390x ] || foreign=linux/arm64
	run_kiln 2 build --platform "$foreign" "$XCTX"
	assert_contains "$output" "platform '$foreign' is not supported"
}

@test "buildx flags kiln does not implement are named as such (exit 2)" {
	for flag in --builder=x --attest=type=sbom --annotation=a=b --allow=network.host --call=check --squash; do
		run_kiln 2 build "$flag" "$XCTX"
		assert_contains "$output" "'${flag%%=*}' is a docker buildx flag kiln does not support"
	done
	run_kiln 2 build --cgroup-parent foo "$XCTX"
	assert_contains "$output" "'--cgroup-parent' is a docker buildx flag kiln does not support"
	# a flag of nobody's is still an unknown option
	run_kiln 2 build --frobnicate "$XCTX"
	assert_contains "$output" "unknown option '--frobnicate'"
	# bad -o values
	run_kiln 2 build -o type=nope "$XCTX"
	assert_contains "$output" "unknown --output type 'nope'"
	run_kiln 2 build -o type=local "$XCTX"
	assert_contains "$output" "type=local needs dest="
}

@test "--add-host adds /etc/hosts lines and --shm-size sizes /dev/shm during RUN" {
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx"
	printf 'FROM kiln-test/busybox:latest\nRUN grep -v localhost /etc/hosts > /hosts; df -k /dev/shm | tail -n 1 > /shm\n' >"$ctx/Dockerfile"
	run_kiln build -q --add-host db.internal:10.1.2.3 --add-host "v6=[fd00::1]" --shm-size 96m -o "$BATS_TEST_TMPDIR/o" "$ctx"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/o/hosts")" "$(printf '10.1.2.3\tdb.internal\nfd00::1\tv6')"
	assert_equal "$(awk '{print $2}' "$BATS_TEST_TMPDIR/o/shm")" $((96 * 1024))
	# the default is docker's 64 MiB, and the flags are part of the step (no stale cache hit)
	run_kiln build -q -o "$BATS_TEST_TMPDIR/d" "$ctx"
	assert_equal "$(awk '{print $2}' "$BATS_TEST_TMPDIR/d/shm")" $((64 * 1024))
	assert_equal "$(cat "$BATS_TEST_TMPDIR/d/hosts")" ""
	run_kiln 2 build --add-host nohost "$ctx"
	assert_contains "$output" "expected HOST:IP"
	run_kiln 2 build --add-host a:notanip "$ctx"
	assert_contains "$output" "'notanip' is not an IP address"
	run_kiln 2 build --shm-size 12q "$ctx"
	assert_contains "$output" "invalid --shm-size '12q'"
}

@test "--no-cache-filter rebuilds only the named stage" {
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx"
	printf 'FROM kiln-test/busybox:latest AS one\nRUN echo one > /one\nFROM kiln-test/busybox:latest AS two\nCOPY --from=one /one /one\nRUN echo two > /two\n' >"$ctx/Dockerfile"
	build_ok "$ctx"
	build_ok --no-cache-filter two "$ctx"
	# stage one is cached, stage two's steps all ran again
	[ "$(printf '%s\n' "$output" | grep -c CACHED)" -eq 1 ]
	assert_contains "$output" "[stage 1/2 one] [2/2] RUN echo one > /one
    CACHED"
	assert_contains "$output" "[stage 2/2 two] [3/3] RUN echo two > /two
    DONE"
}

@test "--ssh forwards a real ssh-agent (or serves key files) to RUN --mount=type=ssh (ssh-add -l inside the step)" {
	skip_unless ssh-agent
	skip_unless ssh-add
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx"
	# The host's ssh-add with its loader and libraries, run inside the busybox step.
	for f in /usr/bin/ssh-add $(ldd /usr/bin/ssh-add | grep -o '/[^ ]*'); do
		mkdir -p "$ctx/sshroot$(dirname "$f")"
		cp -L "$f" "$ctx/sshroot$f"
	done
	loader=$(ldd /usr/bin/ssh-add | grep -o '/[^ ]*ld-linux[^ ]*')
	libs=$(ldd /usr/bin/ssh-add | grep -o '/[^ ]*libc\.so[^ ]*' | xargs dirname)
	printf 'FROM kiln-test/busybox:latest\nRUN --mount=type=bind,source=sshroot,target=/s --mount=type=ssh /s%s --library-path /s%s /s/usr/bin/ssh-add -l > /keys; echo "$SSH_AUTH_SOCK" > /sock\n' \
		"$loader" "$libs" >"$ctx/Dockerfile"
	eval "$(ssh-agent -s)" >/dev/null
	ssh-keygen -q -t ed25519 -N '' -C kiln-test-key -f "$BATS_TEST_TMPDIR/key"
	ssh-add "$BATS_TEST_TMPDIR/key" 2>/dev/null
	want=$(ssh-add -l)
	run_kiln build -q --ssh default -o "$BATS_TEST_TMPDIR/o" "$ctx"
	# (the ssh mount is not part of the cache key, as in BuildKit: --no-cache to run it again)
	run_kiln build -q --no-cache --ssh "deploy=$SSH_AUTH_SOCK" -o "$BATS_TEST_TMPDIR/o2" "$ctx"
	run_kiln 1 build -q --ssh "deploy=$SSH_AUTH_SOCK" -o "$BATS_TEST_TMPDIR/o3" - <<-'EOF'
	FROM kiln-test/busybox:latest
	RUN --mount=type=ssh,required=true true
	EOF
	noreq=$output
	ssh-agent -k >/dev/null
	# key files: served by a private agent for the build, gone afterwards
	unset SSH_AUTH_SOCK SSH_AGENT_PID
	run_kiln build -q --no-cache --ssh "default=$BATS_TEST_TMPDIR/key" -o "$BATS_TEST_TMPDIR/o4" "$ctx"
	run_kiln 1 build -q --ssh "default=$BATS_TEST_TMPDIR/nokey" "$ctx"
	nokey=$output
	assert_equal "$(cat "$BATS_TEST_TMPDIR/o4/keys")" "$want"
	assert_contains "$nokey" "--ssh default: '$BATS_TEST_TMPDIR/nokey' is neither an ssh-agent socket nor a key file"
	run_kiln 2 build --ssh default "$ctx"
	assert_contains "$output" "SSH_AUTH_SOCK is not set"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/o/keys")" "$want"
	assert_contains "$want" kiln-test-key
	assert_equal "$(cat "$BATS_TEST_TMPDIR/o/sock")" /run/buildkit/ssh_agent.0
	[ ! -e "$BATS_TEST_TMPDIR/o/run/buildkit" ]
	assert_equal "$(cat "$BATS_TEST_TMPDIR/o2/keys")" ""
	assert_contains "$noreq" 'no SSH key "default" forwarded from the client'
}

# free_port: a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

@test "git contexts: git:// from git daemon and http(s)://...git from a web server, #REF:SUBDIR" {
	skip_unless git
	skip_unless python3
	srv="$BATS_TEST_TMPDIR/srv"
	mkdir -p "$srv/repo/app"
	cd "$srv/repo"
	git init -q -b main .
	printf 'FROM kiln-test/busybox:latest\nCOPY . /src\n' | tee Dockerfile >app/Dockerfile
	echo v1 >app/file
	git add -A
	git -c user.name=t -c user.email=t@t commit -qm one
	git tag v1
	echo v2 >app/file
	GIT_COMMITTER_DATE=@1700000000 git -c user.name=t -c user.email=t@t commit -qam two
	git clone -q --bare "$srv/repo" "$srv/www/repo.git"
	git -C "$srv/www/repo.git" update-server-info
	cd "$BATS_TEST_TMPDIR"
	gport=$(free_port)
	hport=$(free_port)
	timeout 120 git daemon --reuseaddr --base-path="$srv" --export-all --listen=127.0.0.1 --port="$gport" "$srv" \
		</dev/null >"$BATS_TEST_TMPDIR/gd.log" 2>&1 3>&- &
	gpid=$!
	(cd "$srv/www" && exec timeout 120 python3 -m http.server "$hport" --bind 127.0.0.1) \
		</dev/null >"$BATS_TEST_TMPDIR/hs.log" 2>&1 3>&- &
	hpid=$!
	for _ in $(seq 50); do
		git ls-remote "git://127.0.0.1:$gport/repo" >/dev/null 2>&1 &&
			curl -sf "http://127.0.0.1:$hport/repo.git/HEAD" >/dev/null && break
		sleep 0.1
	done
	run_kiln build -q -o "$BATS_TEST_TMPDIR/a" "git://127.0.0.1:$gport/repo#v1:app"
	run_kiln build -q -o "$BATS_TEST_TMPDIR/b" "git://127.0.0.1:$gport/repo#main:app"
	run_kiln build -q -o "$BATS_TEST_TMPDIR/c" "git://127.0.0.1:$gport/repo"
	# the commit time is the image's time when SOURCE_DATE_EPOCH is unset
	run_kiln build -q -t gitctx:1 "git://127.0.0.1:$gport/repo#main"
	created=$(inspect gitctx:1 .Created)
	SOURCE_DATE_EPOCH=1600000000 run_kiln build -q -t gitctx:2 "git://127.0.0.1:$gport/repo#main"
	created2=$(inspect gitctx:2 .Created)
	run_kiln build -q -o "$BATS_TEST_TMPDIR/d" --build-arg BUILDKIT_CONTEXT_KEEP_GIT_DIR=1 "git://127.0.0.1:$gport/repo#v1"
	run_kiln build -q -o "$BATS_TEST_TMPDIR/h" "http://127.0.0.1:$hport/repo.git#v1:app"
	run_kiln 1 build -q "git://127.0.0.1:$gport/repo#nosuchref"
	nosuch=$output
	run_kiln 1 build -q "git://127.0.0.1:$gport/repo#v1:../.."
	outside=$output
	kill "$gpid" "$hpid"
	wait "$gpid" "$hpid" || true
	assert_equal "$(cat "$BATS_TEST_TMPDIR/a/src/file")" v1
	assert_equal "$(cat "$BATS_TEST_TMPDIR/b/src/file")" v2
	assert_equal "$(cat "$BATS_TEST_TMPDIR/c/src/app/file")" v2
	assert_equal "$created" '"2023-11-14T22:13:20Z"'
	assert_equal "$created2" '"2020-09-13T12:26:40Z"'
	[ ! -e "$BATS_TEST_TMPDIR/c/src/.git" ]
	assert_equal "$(cat "$BATS_TEST_TMPDIR/d/src/app/file")" v1
	[ -d "$BATS_TEST_TMPDIR/d/src/.git" ]
	assert_equal "$(cat "$BATS_TEST_TMPDIR/h/src/file")" v1
	assert_contains "$nosuch" "git context 'git://127.0.0.1:$gport/repo#nosuchref'"
	assert_contains "$nosuch" "nosuchref"
	assert_contains "$outside" "is outside the repository"
}

@test "an http URL of a tar.gz is the context, downloaded through the registry transport" {
	skip_unless python3
	mkdir -p "$BATS_TEST_TMPDIR/srv" "$BATS_TEST_TMPDIR/c/sub"
	printf 'FROM kiln-test/busybox:latest\nCOPY . /src\n' >"$BATS_TEST_TMPDIR/c/Dockerfile"
	echo tarred >"$BATS_TEST_TMPDIR/c/sub/f"
	chmod 600 "$BATS_TEST_TMPDIR/c/sub/f"
	tar -C "$BATS_TEST_TMPDIR/c" -czf "$BATS_TEST_TMPDIR/srv/ctx.tar.gz" .
	tar -C "$BATS_TEST_TMPDIR/c" -cf "$BATS_TEST_TMPDIR/srv/ctx.tar" .
	echo 'not a tar' >"$BATS_TEST_TMPDIR/srv/plain.txt"
	port=$(free_port)
	(cd "$BATS_TEST_TMPDIR/srv" && exec timeout 120 python3 -m http.server "$port" --bind 127.0.0.1) \
		</dev/null >"$BATS_TEST_TMPDIR/hs.log" 2>&1 3>&- &
	hpid=$!
	for _ in $(seq 50); do
		curl -sf "http://127.0.0.1:$port/ctx.tar" >/dev/null && break
		sleep 0.1
	done
	run_kiln build -q -o "$BATS_TEST_TMPDIR/a" "http://127.0.0.1:$port/ctx.tar.gz"
	run_kiln build -q -o "$BATS_TEST_TMPDIR/b" -f Dockerfile "http://127.0.0.1:$port/ctx.tar"
	run_kiln 1 build -q "http://127.0.0.1:$port/plain.txt"
	plain=$output
	run_kiln 1 build -q "http://127.0.0.1:$port/missing.tar.gz"
	missing=$output
	kill "$hpid"
	wait "$hpid" || true
	assert_equal "$(cat "$BATS_TEST_TMPDIR/a/src/sub/f")" tarred
	assert_equal "$(stat -c %a "$BATS_TEST_TMPDIR/a/src/sub/f")" 600
	assert_equal "$(cat "$BATS_TEST_TMPDIR/b/src/sub/f")" tarred
	assert_contains "$plain" "plain.txt': not a tar archive"
	assert_contains "$missing" "404 Not Found"
}

@test "--build-context: a directory, docker-image:// and oci-layout:// replace FROM and --from names" {
	skip_unless skopeo
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx" "$BATS_TEST_TMPDIR/extra"
	echo fromdir >"$BATS_TEST_TMPDIR/extra/x"
	chmod 604 "$BATS_TEST_TMPDIR/extra/x"
	# an OCI layout written by skopeo holding the base image under the tag v3
	skopeo copy -q "oci:$KILN_TEST_ROOT:docker.io/kiln-test/busybox:latest" "oci:$BATS_TEST_TMPDIR/layout:v3"
	cat >"$ctx/Dockerfile" <<-'EOF2'
	FROM mybase
	COPY --from=extra /x /x
	COPY --from=lay /bin/busybox /bb2
	RUN --mount=from=extra,target=/e cat /e/x > /y
	EOF2
	export KILN_TEST_ROOT="$BATS_TEST_TMPDIR/fresh"
	mkdir -p "$KILN_TEST_ROOT"
	"$KILN" --root "$KILN_TEST_ROOT" import "$BASE_OUT/rootfs.tar" other/base:7 >/dev/null
	run_kiln build -q --build-context mybase=docker-image://other/base:7 \
		--build-context "extra=$BATS_TEST_TMPDIR/extra" \
		--build-context "lay=oci-layout://$BATS_TEST_TMPDIR/layout:v3" -o "$BATS_TEST_TMPDIR/o" "$ctx"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/o/x")" fromdir
	assert_equal "$(stat -c %a "$BATS_TEST_TMPDIR/o/x")" 604
	assert_equal "$(cat "$BATS_TEST_TMPDIR/o/y")" fromdir
	cmp "$BATS_TEST_TMPDIR/o/bb2" "$BASE_OUT/rootfs/bin/busybox"
	# a changed directory is a changed source: the COPY and the RUN run again
	echo changed >"$BATS_TEST_TMPDIR/extra/x"
	run_kiln build --progress plain --build-context mybase=docker-image://other/base:7 \
		--build-context "extra=$BATS_TEST_TMPDIR/extra" \
		--build-context "lay=oci-layout://$BATS_TEST_TMPDIR/layout:v3" -o "$BATS_TEST_TMPDIR/o2" "$ctx"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/o2/y")" changed
	[ "$(printf '%s\n' "$output" | grep -c CACHED)" -eq 0 ]
	# errors name the context
	run_kiln 1 build -q --build-context "mybase=$BATS_TEST_TMPDIR/nope" "$ctx"
	assert_contains "$output" "--build-context mybase: directory '$BATS_TEST_TMPDIR/nope'"
	run_kiln 1 build -q --build-context mybase=docker-image://other/base:7 --build-context "extra=$BATS_TEST_TMPDIR/extra" \
		--build-context "lay=oci-layout://$BATS_TEST_TMPDIR/layout:nosuch" "$ctx"
	assert_contains "$output" "no image tagged nosuch"
	run_kiln 2 build --build-context novalue "$ctx"
	assert_contains "$output" "expected NAME=SOURCE"
}
