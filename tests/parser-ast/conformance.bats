#!/usr/bin/env bats
# `kiln parse` against BuildKit's own parser cases (frontend/dockerfile/parser/testfiles*) and
# buildah's conformance Dockerfiles. The data must be present: a missing
# $KILN_CONFORMANCE_DIR is a failure, not a skip.

load ../lib/helpers

# Cases of testfiles/ that cannot apply to kiln, with the reason. Every other case must give
# BuildKit's `result` byte for byte.
declare -A NOT_APPLICABLE=(
)

setup() {
	kiln_setup_root
	BK="${KILN_CONFORMANCE_DIR:-}/buildkit-parser"
	if [ ! -d "$BK/testfiles" ] || [ ! -d "$BK/testfiles-negative" ]; then
		echo "# KILN_CONFORMANCE_DIR ('${KILN_CONFORMANCE_DIR:-}') has no buildkit-parser data" >&3
		return 1
	fi
}

@test "every BuildKit parser case dumps exactly its result" {
	local pass=0 na=0 total=0 failed=()
	for dir in "$BK"/testfiles/*/; do
		name=$(basename "$dir")
		total=$((total + 1))
		if [ -n "${NOT_APPLICABLE[$name]:-}" ]; then
			echo "# n/a $name: ${NOT_APPLICABLE[$name]}" >&3
			na=$((na + 1))
			continue
		fi
		if (cd "$dir" && "$KILN" parse >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err") &&
			cmp -s "$BATS_TEST_TMPDIR/out" "$dir/result"; then
			pass=$((pass + 1))
		else
			failed+=("$name")
			echo "# FAIL $name" >&3
			diff "$dir/result" "$BATS_TEST_TMPDIR/out" | head -20 | sed 's/^/#   /' >&3
			sed 's/^/#   /' "$BATS_TEST_TMPDIR/err" >&3
		fi
	done
	echo "# buildkit testfiles: $pass passed, $na not applicable, ${#failed[@]} failed, $total total" >&3
	[ "$total" -ge 33 ]
	[ "${#failed[@]}" -eq 0 ]
	[ $((pass + na)) -eq "$total" ]
}

@test "every BuildKit negative case fails with a located message" {
	declare -A expected=(
		[empty_dockerfile]="kiln: Dockerfile: file with no instructions"
		[only_comments]="kiln: Dockerfile:3: file with no instructions"
		[env_no_value]="kiln: Dockerfile:3: ENV must have two arguments"
		[shykes-nested-json]="kiln: Dockerfile:1: when using JSON array syntax, arrays must be comprised of strings only"
	)
	local n=0
	for dir in "$BK"/testfiles-negative/*/; do
		name=$(basename "$dir")
		n=$((n + 1))
		cd "$dir"
		run_kiln 1 parse
		[ -n "${expected[$name]:-}" ] || { echo "# no expectation for new case $name" >&3; return 1; }
		assert_equal "$output" "${expected[$name]}"
	done
	[ "$n" -ge 4 ]
}

@test "testfile-line parses, with the continuation joined" {
	run bash -c "'$KILN' parse -f '$BK/testfile-line/Dockerfile' 2>/dev/null"
	[ "$status" -eq 0 ]
	assert_equal "$(printf '%s\n' "$output" | head -2)" '(from "brimstone/ubuntu:14.04")
(env "GOPATH" "/go" "")'
	[ "$(printf '%s\n' "$output" | wc -l)" -eq 3 ]
}

@test "every buildah conformance Dockerfile parses" {
	local n=0
	while IFS= read -r -d '' f; do
		n=$((n + 1))
		run_kiln parse -f "$f"
	done < <(find "$KILN_CONFORMANCE_DIR/buildah-testdata" \( -name 'Dockerfile*' -o -name 'Containerfile*' \) -type f -print0)
	echo "# buildah Dockerfiles parsed: $n" >&3
	[ "$n" -ge 80 ]
}

@test "buildah heredoc Dockerfiles: heredoc words stay in the arguments" {
	run_kiln parse -f "$KILN_CONFORMANCE_DIR/buildah-testdata/heredoc/Dockerfile.heredoc_copy"
	assert_equal "$output" '(from "mirror.gcr.io/busybox" "as" "one")
(run "echo helloworld > image_file")
(from "mirror.gcr.io/busybox")
(run "echo hello")
(copy "<<robots.txt" "<<humans.txt" "file" "/test/")
(copy ["--from=one"] "image_file" "<<robots.txt" "<<humans.txt" "/test2/")'
	run_kiln parse -f "$KILN_CONFORMANCE_DIR/buildah-testdata/Dockerfile.heredoc-quoting"
	[ "$(printf '%s\n' "$output" | grep -c '^(run "<<EOF")$')" -eq 4 ]
	[ "$(printf '%s\n' "$output" | grep -c '^(run "<<\\"EOF\\"")$')" -eq 4 ]
	[ "$(printf '%s\n' "$output" | grep -c '^(copy "<<\\"EOF\\"" "/copy-quoted[1-4].txt")$')" -eq 4 ]
	[ "$(printf '%s\n' "$output" | grep -c '^(add "<<EOF" "/add-unquoted[1-4].txt")$')" -eq 4 ]
}
