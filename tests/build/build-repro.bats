#!/usr/bin/env bats
# Reproducible by default: the same Dockerfile, context and base give the same image ID in any
# store with no flag; the build's timestamp follows SOURCE_DATE_EPOCH, the context's git HEAD, the
# base image's created; every input that changes a step's output is in its cache key (a store
# warmed with other settings gives what --no-cache gives); the snapshot a later step sees is the
# tree the layer holds.

load ../lib/helpers
load build-helpers

setup_file() {
	build_setup_file
	# the one base image (same ID) for every store of this file
	"$KILN" --root "$KILN_TEST_ROOT" save -o "$BATS_FILE_TMPDIR/base.tar" kiln-test/busybox:latest
	export BASE_CREATED
	BASE_CREATED=$("$KILN" --root "$KILN_TEST_ROOT" inspect kiln-test/busybox:latest | jq -r '.[0].Created')
}

# new_store: a fresh store for this test holding the shared base image (loaded, same ID).
new_store() {
	export KILN_TEST_ROOT="$BATS_TEST_TMPDIR/root$1"
	mkdir -p "$KILN_TEST_ROOT"
	"$KILN" --root "$KILN_TEST_ROOT" load -i "$BATS_FILE_TMPDIR/base.tar" >/dev/null
}

# context DIR: a context whose files have fresh (now) and future mtimes.
context() {
	mkdir -p "$1/sub"
	echo a >"$1/a.txt"
	echo b >"$1/sub/b.txt"
	touch -d '+1 year' "$1/sub/b.txt"
	cat >"$1/Dockerfile" <<'DF'
FROM kiln-test/busybox:latest
ARG V=1
COPY a.txt /a.txt
COPY sub /sub
RUN --mount=type=secret,id=tok,required=false echo "v=$V" > /v && ls /run/secrets > /secrets 2>&1 || true
RUN stat -c '%Y %y' /a.txt /sub/b.txt > /times
LABEL v=$V
DF
}

id_of() { last_line "$output"; }

@test "two stores, no flag: the same image ID, created and file times at the base's created" {
	context "$BATS_TEST_TMPDIR/ctx"
	new_store 1
	build_ok -q -t r:1 "$BATS_TEST_TMPDIR/ctx"
	one=$(id_of)
	assert_equal "$(inspect r:1 .Created)" "\"$BASE_CREATED\""
	assert_equal "$(inspect r:1 '[.History[-4:][] | .created] | unique')" "[\"$BASE_CREATED\"]"
	base_s=$(date -d "$BASE_CREATED" +%s)
	unpack r:1 "$BATS_TEST_TMPDIR/u"
	# files newer than the timestamp are clamped to it, in the layer and in what RUN saw
	assert_equal "$(stat -c %Y "$BATS_TEST_TMPDIR/u/sub/b.txt")" "$base_s"
	assert_equal "$(stat -c %Y "$BATS_TEST_TMPDIR/u/a.txt")" "$base_s"
	assert_equal "$(cut -d' ' -f1 "$BATS_TEST_TMPDIR/u/times" | sort -u)" "$base_s"
	sleep 1.1
	touch "$BATS_TEST_TMPDIR/ctx/a.txt"
	new_store 2
	build_ok -q -t r:1 "$BATS_TEST_TMPDIR/ctx"
	assert_equal "$(id_of)" "$one"
}

@test "SOURCE_DATE_EPOCH, then the context's git HEAD, then the base; --timestamp overrides" {
	skip_unless git
	context "$BATS_TEST_TMPDIR/ctx"
	new_store 1
	SOURCE_DATE_EPOCH=86400 build_ok -q -t r:sde "$BATS_TEST_TMPDIR/ctx"
	assert_equal "$(inspect r:sde .Created)" '"1970-01-02T00:00:00Z"'
	unpack r:sde "$BATS_TEST_TMPDIR/u1"
	assert_equal "$(stat -c %Y "$BATS_TEST_TMPDIR/u1/sub/b.txt")" 86400
	(cd "$BATS_TEST_TMPDIR/ctx" && git init -q && git add -A &&
		GIT_COMMITTER_DATE='@1600000000 +0000' GIT_AUTHOR_DATE='@1600000000 +0000' \
			git -c user.name=t -c user.email=t@t commit -qm c)
	build_ok -q -t r:git "$BATS_TEST_TMPDIR/ctx"
	assert_equal "$(inspect r:git .Created)" '"2020-09-13T12:26:40Z"'
	SOURCE_DATE_EPOCH=86400 build_ok -q -t r:sde2 "$BATS_TEST_TMPDIR/ctx"
	assert_equal "$(inspect r:sde2 .Created)" '"1970-01-02T00:00:00Z"'
	build_ok -q -t r:t --timestamp 1000000000 "$BATS_TEST_TMPDIR/ctx"
	assert_equal "$(inspect r:t .Created)" '"2001-09-09T01:46:40Z"'
	# docker's old behaviour: the clock, file times as they are
	before=$(date +%s)
	build_ok -q -t r:now --timestamp now "$BATS_TEST_TMPDIR/ctx"
	created=$(date -d "$(inspect r:now .Created | tr -d '"')" +%s)
	[ "$created" -ge "$before" ]
	unpack r:now "$BATS_TEST_TMPDIR/u2"
	[ "$(stat -c %Y "$BATS_TEST_TMPDIR/u2/sub/b.txt")" -gt "$((before + 86400))" ]
	run_kiln 2 build --timestamp yesterday "$BATS_TEST_TMPDIR/ctx"
	assert_contains "$output" "invalid --timestamp 'yesterday'"
}

@test "FROM scratch: the timestamp is 0" {
	mkdir -p "$BATS_TEST_TMPDIR/ctx"
	echo x >"$BATS_TEST_TMPDIR/ctx/x"
	printf 'FROM scratch\nCOPY x /x\n' >"$BATS_TEST_TMPDIR/ctx/Dockerfile"
	new_store 1
	build_ok -q -t s:1 "$BATS_TEST_TMPDIR/ctx"
	assert_equal "$(inspect s:1 .Created)" '"1970-01-01T00:00:00Z"'
	unpack s:1 "$BATS_TEST_TMPDIR/u"
	assert_equal "$(stat -c %Y "$BATS_TEST_TMPDIR/u/x")" 0
}

# warm_then A-ARGS -- B-ARGS: builds with A in a store, then with B in the same (warm) store, and
# checks the result equals B built with --no-cache in a fresh store.
warm_then() {
	local a=() b=()
	while [ "$1" != -- ]; do a+=("$1"); shift; done
	shift
	b=("$@")
	new_store warm
	build_ok -q "${a[@]}" "$BATS_TEST_TMPDIR/ctx"
	build_ok -q "${b[@]}" "$BATS_TEST_TMPDIR/ctx"
	warm=$(id_of)
	new_store cold
	build_ok -q --no-cache "${b[@]}" "$BATS_TEST_TMPDIR/ctx"
	assert_equal "$warm" "$(id_of)"
}

@test "the cache key holds every input: a store warmed with other settings gives --no-cache's image" {
	context "$BATS_TEST_TMPDIR/ctx"
	echo secret >"$BATS_TEST_TMPDIR/tok"
	# the timestamp rule
	SOURCE_DATE_EPOCH=86400 warm_then -- --timestamp 172800
	warm_then --timestamp now -- --timestamp 86400
	# compression
	warm_then --compression gzip -- --compression zstd
	# network mode
	warm_then --network none -- --network host
	# a secret's presence
	warm_then -- --secret "id=tok,src=$BATS_TEST_TMPDIR/tok"
	warm_then --secret "id=tok,src=$BATS_TEST_TMPDIR/tok" --
	# build arguments
	warm_then --build-arg V=1 -- --build-arg V=2
}

@test "a cached build and a fresh one give later steps the same tree" {
	context "$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$BATS_TEST_TMPDIR/ctx2"
	printf 'FROM r:base\nRUN stat -c "%%n %%Y %%y %%a %%u" /a.txt /sub /sub/b.txt > /seen\n' >"$BATS_TEST_TMPDIR/ctx2/Dockerfile"
	# store 1: r:base's snapshots are the steps' own upper dirs
	new_store 1
	build_ok -q -t r:base "$BATS_TEST_TMPDIR/ctx"
	build_ok -q -t r:later "$BATS_TEST_TMPDIR/ctx2"
	one=$(id_of)
	"$KILN" --root "$KILN_TEST_ROOT" save -o "$BATS_TEST_TMPDIR/base.tar" r:base
	# store 2: r:base comes from its layers
	new_store 2
	"$KILN" --root "$KILN_TEST_ROOT" load -i "$BATS_TEST_TMPDIR/base.tar" >/dev/null
	build_ok -q -t r:later "$BATS_TEST_TMPDIR/ctx2"
	assert_equal "$(id_of)" "$one"
}
