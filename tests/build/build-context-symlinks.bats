#!/usr/bin/env bats
# Files kiln itself reads from the build context (.dockerignore, the Dockerfile, COPY/ADD
# sources, bind-mount sources) are opened inside the context: a symlink, absolute or climbing
# with "..", never leads kiln to read a file outside it (openat2 RESOLVE_IN_ROOT, as BuildKit's
# context transfer never follows a link out of the context).

load ../lib/helpers
load build-helpers

setup_file() {
	build_setup_file
}

setup() {
	mkdir -p "$BATS_TEST_TMPDIR/outside" "$BATS_TEST_TMPDIR/ctx"
	cd "$BATS_TEST_TMPDIR"
	echo a >ctx/a.txt
	echo b >ctx/b.txt
}

@test "context symlinks: a .dockerignore pointing outside the context is not followed" {
	printf 'a.txt\n' >outside/ignore
	ln -s ../outside/ignore ctx/.dockerignore
	printf 'FROM scratch\nCOPY . /\n' >ctx/Dockerfile
	run_kiln build -q -t ign:1 ctx
	unpack ign:1 img
	# the outside file would have excluded a.txt: it was not read
	[ -f img/a.txt ]
	[ -f img/b.txt ]
	# the same with an absolute link
	rm ctx/.dockerignore
	ln -s "$BATS_TEST_TMPDIR/outside/ignore" ctx/.dockerignore
	run_kiln build -q -t ign:2 ctx
	unpack ign:2 img2
	[ -f img2/a.txt ]
}

@test "context symlinks: a .dockerignore linking inside the context is followed" {
	mkdir ctx/conf
	printf 'a.txt\nconf\n' >ctx/conf/ignore
	ln -s conf/ignore ctx/.dockerignore
	printf 'FROM scratch\nCOPY . /\n' >ctx/Dockerfile
	run_kiln build -q -t ign:3 ctx
	unpack ign:3 img
	[ ! -e img/a.txt ]
	[ -f img/b.txt ]
	# an absolute link is resolved with the context as its root
	rm ctx/.dockerignore
	ln -s /conf/ignore ctx/.dockerignore
	run_kiln build -q -t ign:4 ctx
	unpack ign:4 img4
	[ ! -e img4/a.txt ]
}

@test "context symlinks: a Dockerfile pointing outside the context is not read" {
	printf 'FROM scratch\nCOPY a.txt /outside-was-read\n' >outside/Dockerfile
	ln -s "$BATS_TEST_TMPDIR/outside/Dockerfile" ctx/Dockerfile
	run_kiln 1 build -q -t df:1 ctx
	assert_contains "$output" "failed to read dockerfile"
	assert_contains "$output" "No such file or directory"
	rm ctx/Dockerfile
	ln -s ../outside/Dockerfile ctx/Dockerfile
	run_kiln 1 build -q -t df:1 ctx
	assert_contains "$output" "failed to read dockerfile"
	run_kiln 1 inspect df:1
	# inside the context a linked Dockerfile works; a Dockerfile the user names with -f is read
	# wherever it is
	printf 'FROM scratch\nCOPY b.txt /inside\n' >ctx/Dockerfile.real
	rm ctx/Dockerfile
	ln -s Dockerfile.real ctx/Dockerfile
	run_kiln build -q -t df:2 ctx
	unpack df:2 img
	[ -f img/inside ]
	run_kiln build -q -t df:3 -f outside/Dockerfile ctx
	unpack df:3 img3
	[ -f img3/outside-was-read ]
}

@test "context symlinks: COPY and bind-mount sources linking outside stay in the context" {
	echo secret >outside/secret
	ln -s "$BATS_TEST_TMPDIR/outside/secret" ctx/abs-link
	ln -s ../outside ctx/dir-link
	printf 'FROM scratch\nCOPY dir-link/secret /x\n' >ctx/Dockerfile
	run_kiln 1 build -q -t cp:1 ctx
	run_kiln 1 inspect cp:1
	# a source that is itself a link out of the context is refused, its target never read
	printf 'FROM scratch\nCOPY abs-link /x\n' >ctx/Dockerfile
	run_kiln 1 build -q -t cp:2 ctx
	assert_contains "$output" "'abs-link' points outside the build context"
	[[ "$output" != *secret\ * ]]
	run_kiln 1 inspect cp:2
	# a bind mount whose source climbs out of the context is refused
	printf 'FROM kiln-test/busybox\nRUN --mount=type=bind,source=dir-link,target=/m cat /m/secret\n' >ctx/Dockerfile
	run_kiln 1 build -q -t bind:1 ctx
	assert_contains "$output" "bind mount source 'dir-link' is not inside the build context"
	run_kiln 1 inspect bind:1
}
