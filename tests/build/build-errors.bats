#!/usr/bin/env bats
# Failing builds: the message names the Dockerfile location, the step, the command, the exit code.

load ../lib/helpers
load build-helpers

setup_file() {
	build_setup_file
}

@test "a failing RUN names the step, the command and the exit code" {
	run_kiln 1 build --progress plain -t fail:1 -f "$KILN_TESTDATA/errors/Dockerfile.runfail" "$KILN_TESTDATA/errors"
	assert_contains "$output" "Dockerfile.runfail:3"
	assert_contains "$output" "RUN echo failing && exit 3"
	assert_contains "$output" 'process "/bin/sh -c echo failing && exit 3" did not complete successfully: exit code: 3'
	assert_contains "$output" "    failing"
	run_kiln 1 inspect fail:1
}

@test "a bad Dockerfile names file:line and the instruction" {
	run_kiln 1 build -t bad:1 -f "$KILN_TESTDATA/errors/Dockerfile.bad" "$KILN_TESTDATA/errors"
	assert_contains "$output" "Dockerfile.bad:3"
	assert_contains "$output" "FRM"
}

@test "COPY of a missing source fails with the path" {
	run_kiln 1 build -t missing:1 -f "$KILN_TESTDATA/errors/Dockerfile.missing" "$KILN_TESTDATA/errors"
	assert_contains "$output" "Dockerfile.missing:2"
	assert_contains "$output" "does-not-exist.txt"
	assert_contains "$output" "not found"
}

@test "COPY ../ outside the context is refused" {
	echo secret >"$BATS_TEST_TMPDIR/escape.txt"
	mkdir "$BATS_TEST_TMPDIR/ctx"
	cp "$KILN_TESTDATA/errors/Dockerfile.escape" "$BATS_TEST_TMPDIR/ctx/Dockerfile"
	run_kiln 1 build -t escape:1 "$BATS_TEST_TMPDIR/ctx"
	assert_contains "$output" "outside the build context"
	assert_contains "$output" "../escape.txt"
}

@test "COPY through a symlink pointing out of the context is refused" {
	run_kiln 1 build -t symlink:1 -f "$KILN_TESTDATA/errors/Dockerfile.symlink" "$KILN_TESTDATA/errors"
	assert_contains "$output" "link-out"
	assert_contains "$output" "outside the build context"
}

@test "a symlink inside the context copied as a directory entry stays a symlink" {
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx/d"
	ln -s /etc/shadow "$ctx/d/abs"
	printf 'FROM kiln-test/busybox:latest\nCOPY d /d\n' >"$ctx/Dockerfile"
	build_ok -t links:1 "$ctx"
	unpack links:1 "$BATS_TEST_TMPDIR/rootfs"
	assert_equal "$(readlink "$BATS_TEST_TMPDIR/rootfs/d/abs")" /etc/shadow
}

@test "an unknown base image fails with --pull=never" {
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx"
	printf 'FROM kiln-test/nope:1\nRUN true\n' >"$ctx/Dockerfile"
	run_kiln 1 build --pull=never "$ctx"
	assert_contains "$output" "kiln-test/nope:1"
}

@test "an invalid -t name is a usage error (exit 2) naming the real problem, before anything is built" {
	run_kiln 2 build --progress plain -t Bad:Tag "$KILN_TESTDATA/daemon"
	assert_contains "$output" "invalid tag 'Bad:Tag'"
	assert_contains "$output" "repository name must be lowercase"
	[[ "$output" != *"[stage"* ]]
	# not a case problem: docker says "invalid reference format" without blaming the case
	run_kiln 2 build -t app::1 "$KILN_TESTDATA/daemon"
	assert_contains "$output" "invalid tag 'app::1'"
	assert_contains "$output" "repository name 'app:' may hold only lowercase letters, digits"
	[[ "$output" != *"must be lowercase"* ]]
	run_kiln 2 build -t 'a b' "$KILN_TESTDATA/daemon"
	[[ "$output" != *"must be lowercase"* ]]
}

@test "usage errors exit 2" {
	run_kiln 2 build
	assert_contains "$output" "missing CONTEXT"
	run_kiln 2 build --progress fancy .
	run_kiln 2 build --network bridge .
	run_kiln 2 build --format tarball .
	run_kiln 2 build --compression lz4 .
	run_kiln 2 build --pull=sometimes .
	run_kiln build --help
	assert_contains "$output" "Usage: kiln build"
}

@test "RUN --security=insecure is refused" {
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx"
	printf 'FROM kiln-test/busybox:latest\nRUN --security=insecure true\n' >"$ctx/Dockerfile"
	run_kiln 1 build "$ctx"
	assert_contains "$output" "Dockerfile:2: RUN --security=insecure is not allowed"
}

@test "COPY --from follows a stage's symlinks inside that stage's root, never into the host" {
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx"
	mkdir -p "$BATS_TEST_TMPDIR/hostonly/sub"
	echo host-secret >"$BATS_TEST_TMPDIR/hostonly/sub/file"
	cat >"$ctx/Dockerfile" <<DF
FROM kiln-test/busybox:latest AS a
RUN mkdir -p /x && ln -s /etc /x/link && ln -s $BATS_TEST_TMPDIR/hostonly /x/host
FROM kiln-test/busybox:latest
COPY --from=a /x/link/hostname /h
COPY --from=a /x/link/ /etcdir/
DF
	build_ok -t links:2 "$ctx"
	unpack links:2 "$BATS_TEST_TMPDIR/rootfs"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs/h")" kiln-test
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs/etcdir/hostname")" kiln-test
	[ -f "$BATS_TEST_TMPDIR/rootfs/etcdir/passwd" ]
	printf 'FROM kiln-test/busybox:latest\nCOPY --from=a /x/host/sub/ /leak/\n' >>"$ctx/Dockerfile"
	run_kiln 1 build "$ctx"
	assert_contains "$output" "not found"
	[[ "$output" != *host-secret* ]]
}

@test "COPY --from= a name that is neither a stage nor an image says so and lists the stages" {
	mkdir "$BATS_TEST_TMPDIR/ctx"
	printf 'FROM kiln-test/busybox:latest AS base\nFROM kiln-test/busybox:latest AS build\nFROM kiln-test/busybox:latest\nCOPY --from=bulid /x /y\n' >"$BATS_TEST_TMPDIR/ctx/Dockerfile"
	run_kiln 1 build --pull=never --progress plain "$BATS_TEST_TMPDIR/ctx"
	assert_contains "$output" "kiln: Dockerfile:4: no stage named 'bulid' (the stages before this one: base, build), and not an image: image 'bulid' is not in the local store"
}

@test "--target of a missing stage lists the stages" {
	mkdir "$BATS_TEST_TMPDIR/ctx"
	printf 'FROM kiln-test/busybox:latest AS base\nFROM kiln-test/busybox:latest\n' >"$BATS_TEST_TMPDIR/ctx/Dockerfile"
	run_kiln 1 build --target biuld "$BATS_TEST_TMPDIR/ctx"
	assert_equal "$output" "kiln: target stage 'biuld' could not be found: the stages are base, 1"
}

@test "a missing image is 'not found', with no errno text after it" {
	run_kiln 1 rmi no/such:image
	assert_equal "$output" "kiln: image 'no/such:image' not found"
	run_kiln 1 tag no/such:image other:1
	assert_equal "$output" "kiln: image 'no/such:image' not found"
	run_kiln 1 save -o "$BATS_TEST_TMPDIR/x.tar" no/such:image
	assert_equal "$output" "kiln: image 'no/such:image' not found"
	printf 'FROM no/such:image\n' >"$BATS_TEST_TMPDIR/Dockerfile"
	run_kiln 1 build --pull=never -f "$BATS_TEST_TMPDIR/Dockerfile" "$BATS_TEST_TMPDIR"
	assert_contains "$output" "not in the local store"
	! grep -qE 'No such file or directory|Invalid argument' <<<"$output"
}

@test "--iidfile and --metadata-file that cannot be written fail before the build starts" {
	mkdir "$BATS_TEST_TMPDIR/ctx"
	printf 'FROM kiln-test/busybox:latest\nRUN touch /ran\n' >"$BATS_TEST_TMPDIR/ctx/Dockerfile"
	run_kiln 1 build --progress plain --iidfile "$BATS_TEST_TMPDIR/no/such/dir/iid" "$BATS_TEST_TMPDIR/ctx"
	assert_equal "$output" "kiln: --iidfile '$BATS_TEST_TMPDIR/no/such/dir/iid': the directory '$BATS_TEST_TMPDIR/no/such/dir' does not exist"
	run_kiln 1 build --progress plain --metadata-file "$BATS_TEST_TMPDIR" "$BATS_TEST_TMPDIR/ctx"
	assert_equal "$output" "kiln: --metadata-file '$BATS_TEST_TMPDIR' is a directory"
}

@test "random bytes as the context on stdin say which formats were expected" {
	head -c 4096 /dev/urandom >"$BATS_TEST_TMPDIR/random.bin"
	# a NUL byte up front, so the bytes are binary whatever the random draw
	printf '\0' | cat - "$BATS_TEST_TMPDIR/random.bin" >"$BATS_TEST_TMPDIR/ctx.bin"
	run bash -c "'$KILN' --root '$KILN_TEST_ROOT' build - <'$BATS_TEST_TMPDIR/ctx.bin'"
	[ "$status" -eq 1 ]
	assert_equal "$output" "kiln: the context on stdin is neither a tar archive (plain, gzip, bzip2, xz or zstd) nor a Dockerfile (text): it holds binary data"
}
