#!/usr/bin/env bats
# The build cache: a rebuild runs nothing and gives the same image ID; a changed source file
# re-runs only from the step that uses it; --no-cache runs everything.

load ../lib/helpers
load build-helpers

setup_file() {
	build_setup_file
}

@test "a rebuild prints CACHED for every step and gives the same image ID" {
	fresh_root
	build_ok -t hello:1 "$KILN_TESTDATA/multistage"
	first=$(last_line "$output")
	[[ "$output" != *CACHED* ]]
	build_ok -t hello:1 "$KILN_TESTDATA/multistage"
	assert_equal "$(last_line "$output")" "$first"
	steps=$(printf '%s\n' "$output" | grep -c '^\[stage .*\] \[[0-9]*/[0-9]*\] [A-Z]' || true)
	cached=$(printf '%s\n' "$output" | grep -c '^    CACHED$' || true)
	# every step but the two FROMs
	assert_equal "$cached" "$((steps - 2))"
	[ -z "$(printf '%s\n' "$output" | grep -A1 '\] RUN ' | grep DONE)" ]
	[[ "$output" != *"    data"* ]]
}

@test "changing one late source file re-runs only from the step that uses it" {
	fresh_root
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx"
	echo a >"$ctx/a.txt"
	echo b >"$ctx/b.txt"
	cat >"$ctx/Dockerfile" <<'DF'
FROM kiln-test/busybox:latest
COPY a.txt /a.txt
RUN echo ran-a && cat /a.txt > /ra
COPY b.txt /b.txt
RUN echo ran-b && cat /b.txt > /rb
DF
	build_ok -t late:1 "$ctx"
	first=$(last_line "$output")
	assert_contains "$output" "    ran-a"
	echo b2 >"$ctx/b.txt"
	build_ok -t late:2 "$ctx"
	second=$(last_line "$output")
	[ "$first" != "$second" ]
	[[ "$output" != *"    ran-a"* ]]
	assert_contains "$output" "    ran-b"
	assert_equal "$(printf '%s\n' "$output" | grep -A1 '\[2/5\] COPY a.txt' | tail -n 1)" "    CACHED"
	assert_equal "$(printf '%s\n' "$output" | grep -A1 '\[3/5\] RUN' | tail -n 1)" "    CACHED"
	unpack late:2 "$BATS_TEST_TMPDIR/rootfs"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs/rb")" b2
	# a mode change is a change too
	chmod 600 "$ctx/a.txt"
	build_ok -t late:3 "$ctx"
	assert_contains "$output" "    ran-a"
	# a build arg the step uses is part of its key
	printf 'ARG V=1\n' >>"$ctx/Dockerfile"
	printf 'RUN echo "v=$V" > /v\n' >>"$ctx/Dockerfile"
	build_ok -t late:4 --build-arg V=7 "$ctx"
	build_ok -t late:5 --build-arg V=8 "$ctx"
	unpack late:5 "$BATS_TEST_TMPDIR/rootfs5"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rootfs5/v")" v=8
}

@test "--no-cache runs every step again" {
	fresh_root
	build_ok -t d:1 -f "$KILN_TESTDATA/daemon/Dockerfile2" "$KILN_TESTDATA/daemon"
	build_ok -t d:1 --no-cache -f "$KILN_TESTDATA/daemon/Dockerfile2" "$KILN_TESTDATA/daemon"
	[[ "$output" != *CACHED* ]]
}

@test "the cache survives across runs and kiln prune keeps what it references" {
	fresh_root
	build_ok -t d:1 "$KILN_TESTDATA/daemon"
	first=$(last_line "$output")
	run_kiln rmi d:1
	run_kiln prune
	build_ok -t d:1 "$KILN_TESTDATA/daemon"
	assert_equal "$(last_line "$output")" "$first"
	assert_contains "$output" CACHED
}

@test "cache entries name their base image: kiln rmi refuses it without -f" {
	fresh_root
	ctx="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$ctx"
	cat >"$ctx/Dockerfile" <<'DF'
FROM kiln-test/busybox:latest AS first
RUN echo one > /one
FROM first
RUN echo two > /two
DF
	build_ok -t onbase:1 "$ctx"
	base=$("$KILN" --root "$KILN_TEST_ROOT" inspect kiln-test/busybox:latest | jq -r '.[0].Id')
	# every entry made on top of the base (both stages, the second through FROM first) names it
	n=0
	for f in "$KILN_TEST_ROOT"/cache/*.json; do
		assert_equal "$(jq -c .images "$f")" "[\"$base\"]"
		n=$((n + 1))
	done
	[ "$n" -ge 2 ]
	run_kiln 1 rmi kiln-test/busybox:latest
	assert_contains "$output" "image 'kiln-test/busybox:latest' is used by build cache entry"
	assert_contains "$output" "(use -f to remove it anyway)"
	run_kiln inspect kiln-test/busybox:latest
	run_kiln rmi -f kiln-test/busybox:latest
	assert_contains "$output" "Untagged: kiln-test/busybox:latest"
	run_kiln 1 inspect kiln-test/busybox:latest
	# the image built on it is untouched
	run_kiln inspect onbase:1
}
