#!/usr/bin/env bats
# kiln parse --plan: golden outputs for the Dockerfiles in plans/, and the errors a user sees.

load ../lib/helpers

PLANS="$KILN_SRC/tests/parser-sem/plans"

# golden NAME DOCKERFILE [args...]: stdout must equal plans/NAME.plan byte for byte.
golden() {
	local name=$1 file=$2
	shift 2
	"$KILN" parse --plan -f "$PLANS/$file" "$@" >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err"
	diff -u "$PLANS/$name.plan" "$BATS_TEST_TMPDIR/out" >&3
}

@test "parser-sem: --plan of a multi-stage Dockerfile" {
	golden multistage multistage.Dockerfile
	[ ! -s "$BATS_TEST_TMPDIR/err" ]
}

@test "parser-sem: --plan --target skips what the target does not need, build args override" {
	golden multistage-target-test multistage.Dockerfile --target test --build-arg GO_VERSION=1.23 --build-arg UNUSED=1
	grep -qx 'kiln: warning: one or more build-args \[UNUSED\] were not consumed' "$BATS_TEST_TMPDIR/err"
}

@test "parser-sem: --plan ARG scoping across FROM" {
	golden args args.Dockerfile --build-arg B=cli-b
}

@test "parser-sem: --plan heredocs and the other instructions" {
	golden heredoc heredoc.Dockerfile
}

@test "parser-sem: --build-arg K takes the value from the environment" {
	B=from-env-var golden_env=1 "$KILN" parse --plan -f "$PLANS/args.Dockerfile" --build-arg B >"$BATS_TEST_TMPDIR/out"
	grep -q '^global args: A="global-a" B="from-env-var"$' "$BATS_TEST_TMPDIR/out"
}

@test "parser-sem: --plan of the buildah testdata Dockerfiles succeeds" {
	local d="$KILN_CONFORMANCE_DIR/buildah-testdata"
	[ -d "$d" ] || { echo "# conformance data missing: $d" >&3; return 1; }
	for f in Dockerfile.margs Dockerfile.quoted-arg Dockerfile.run.args Dockerfile.reusebase \
		Dockerfile.shell Dockerfile.edgecases Dockerfile.add Dockerfile.copyfrom_1 \
		Dockerfile.exposedefault Dockerfile.heredoc-quoting multistage/copyback/Dockerfile; do
		[ -f "$d/$f" ] || { echo "# conformance file missing: $d/$f" >&3; return 1; }
		run_kiln parse --plan -f "$d/$f"
		assert_contains "$output" "target: "
	done
	run_kiln parse --plan -f "$d/Dockerfile.margs"
	assert_contains "$output" "  base: image mirror.gcr.io/alpine"
	assert_contains "$output" "stage 0 (copy)"
	run_kiln parse --plan -f "$d/Dockerfile.quoted-arg"
	assert_contains "$output" 'ARG expanded="words with quotes"'
}

@test "parser-sem: unknown target, cycles, duplicates and bad flags are located errors" {
	printf 'FROM a AS x\nFROM b AS y\n' >"$BATS_TEST_TMPDIR/Dockerfile"
	run_kiln 1 parse --plan -f "$BATS_TEST_TMPDIR/Dockerfile" --target nope
	assert_equal "$output" "kiln: target stage 'nope' could not be found: the stages are x, y"

	printf 'FROM a AS one\nCOPY --from=two /a /b\nFROM b AS two\nCOPY --from=one /a /b\n' >"$BATS_TEST_TMPDIR/Dockerfile"
	run_kiln 1 parse --plan -f "$BATS_TEST_TMPDIR/Dockerfile"
	assert_contains "$output" "Dockerfile:1:1: circular dependency detected on stage: one"

	printf 'FROM a AS x\nRUN true\nFROM b AS X\n' >"$BATS_TEST_TMPDIR/Dockerfile2"
	run_kiln 1 parse --plan -f "$BATS_TEST_TMPDIR/Dockerfile2"
	assert_contains "$output" "Dockerfile2:3:1: duplicate stage name 'x' (first defined on line 1)"

	printf 'FROM a\nRUN true\nCOPY x /x\nADD a b c\n' >"$BATS_TEST_TMPDIR/Dockerfile2"
	run_kiln 1 parse --plan -f "$BATS_TEST_TMPDIR/Dockerfile2"
	assert_contains "$output" 'Dockerfile2:4: ADD with more than one source requires the destination to end with "/"'

	printf 'FROM a\nRUN --mnt=type=cache,target=/x true\n' >"$BATS_TEST_TMPDIR/Dockerfile"
	run_kiln 1 parse --plan -f "$BATS_TEST_TMPDIR/Dockerfile"
	assert_contains "$output" "Dockerfile:2:1: unknown flag: mnt (did you mean mount?)"

	printf 'FROM a\nWORKDIR ${DIR:?is required}\n' >"$BATS_TEST_TMPDIR/Dockerfile"
	run_kiln 1 parse --plan -f "$BATS_TEST_TMPDIR/Dockerfile"
	assert_contains "$output" 'Dockerfile:2:1: failed to process "${DIR:?is required}": DIR: is required'
	run_kiln 1 parse --plan -f "$BATS_TEST_TMPDIR/Dockerfile" --build-arg DIR=/x
	assert_contains "$output" "DIR: is required"
	printf 'FROM a\nARG DIR\nWORKDIR ${DIR:?is required}\n' >"$BATS_TEST_TMPDIR/Dockerfile"
	run_kiln parse --plan -f "$BATS_TEST_TMPDIR/Dockerfile" --build-arg DIR=/x
	assert_contains "$output" "  3: WORKDIR /x"
}

@test "parser-sem: plan options without --plan are usage errors" {
	printf 'FROM a\n' >"$BATS_TEST_TMPDIR/Dockerfile"
	run_kiln 2 parse -f "$BATS_TEST_TMPDIR/Dockerfile" --target x
	assert_contains "$output" "need --plan"
	run_kiln 0 parse --help
	assert_contains "$output" "--build-arg K[=V]"
}
