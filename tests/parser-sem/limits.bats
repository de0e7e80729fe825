#!/usr/bin/env bats
# Expansion limits (parser/shell.c DF_EXPAND_MAX_LEN, parser/plan.c DF_PLAN_MAX_EXPANDED): hostile
# Dockerfiles that expand to gigabytes stop with a located error, quickly and in little memory;
# real Dockerfiles with large values still expand.

load ../lib/helpers

setup() {
	kiln_setup_root
	cd "$BATS_TEST_TMPDIR"
}

# bounded CMD...: runs CMD (kiln) with its address space held to 64 MiB (VM_KB overrides; not
# under ASan, which reserves terabytes of shadow), and a 20 s guard against a hang.
bounded() {
	local vm="ulimit -v ${VM_KB:-65536};"
	[ -z "${ASAN_OPTIONS:-}" ] || vm=
	run bash -c "$vm"' exec timeout 20 "$@"' bounded "$@"
	printf '%s\n' "$output" | tail -3 | sed 's/^/#   /' >&3
}

# bomb FILE N: FROM scratch, ARG A0 of 98 bytes, then N ARGs each repeating the previous ten
# times (the 12-ARG bomb expands to ~100 GB); the ARG lines come before FROM when WHERE=global.
bomb() {
	local file=$1 n=$2 where=${3:-stage}
	{
		[ "$where" = stage ] && echo 'FROM scratch'
		printf 'ARG A0=%098d\n' 0
		for i in $(seq 1 "$n"); do
			p=$((i - 1))
			echo "ARG A$i=\${A$p}\${A$p}\${A$p}\${A$p}\${A$p}\${A$p}\${A$p}\${A$p}\${A$p}\${A$p}"
		done
		[ "$where" = global ] && echo 'FROM scratch'
		echo 'RUN echo $A12'
	} >"$file"
}

@test "limits: the 12-ARG x10 bomb in a stage stops at the 1 MiB expansion limit, located" {
	bomb Dockerfile 12
	bounded "$KILN" parse --plan -f Dockerfile
	[ "$status" -eq 1 ]
	# A5 (line 7) is the first to pass 1 MiB: 10 x 980,000 bytes
	assert_equal "${lines[-1]}" 'kiln: Dockerfile:7:1: failed to process "${A4}${A4}${A4}${A4}${A4}${A4}${A4}${A4}${A4}${A4}": expansion longer than 1048576 bytes'
}

@test "limits: the bomb before FROM (meta ARGs) stops the same way" {
	bomb Dockerfile 12 global
	bounded "$KILN" parse --plan -f Dockerfile
	[ "$status" -eq 1 ]
	assert_contains "${lines[-1]}" 'kiln: Dockerfile:6:1: failed to process "${A4}'
	assert_contains "${lines[-1]}" 'expansion longer than 1048576 bytes'
}

@test "limits: kiln build stops at the bomb's line before running anything" {
	bomb Dockerfile 12
	run timeout 20 "$KILN" --root "$KILN_TEST_ROOT" build -t bomb -f Dockerfile .
	[ "$status" -eq 1 ]
	assert_contains "$output" 'kiln: Dockerfile:7:1: failed to process "${A4}'
	run_kiln images
	[[ "$output" != *bomb* ]]
}

@test "limits: \${a//p/r} whose replacement multiplies the value stops at the limit" {
	# 2,000 one-byte matches, each replaced by the 2,000-byte value: 4 MB
	printf 'FROM scratch\nARG A=%02000d\nLABEL x="${A//0/$A}"\n' 0 >Dockerfile
	bounded "$KILN" parse --plan -f Dockerfile
	[ "$status" -eq 1 ]
	assert_equal "${lines[-1]}" 'kiln: Dockerfile:3:1: failed to process "\"${A//0/$A}\"": expansion longer than 1048576 bytes'
	# the same with the match template \$0 repeated 1,000 times (2,000 bytes a match)
	printf 'FROM scratch\nARG A=%02000d\nLABEL x=${A//0/%s}\n' 0 "$(printf '\\$0%.0s' $(seq 1000))" >Dockerfile
	grep -q '^LABEL x=${A//0/\\$0\\$0\\$0' Dockerfile
	bounded "$KILN" parse --plan -f Dockerfile
	[ "$status" -eq 1 ]
	assert_contains "${lines[-1]}" 'kiln: Dockerfile:3:1: failed to process'
	assert_contains "${lines[-1]}" 'expansion longer than 1048576 bytes'
}

@test "limits: the whole plan's expansions stop at 32 MiB with the line that passes it" {
	# 40 LABELs of 900,000 bytes each: the 38th passes 32 MiB (33,554,432 bytes)
	{
		echo 'FROM scratch'
		printf 'ARG A=%0900000d\n' 0
		for i in $(seq 1 40); do echo "LABEL l$i=\$A"; done
	} >Dockerfile
	run timeout 20 "$KILN" parse --plan -f Dockerfile
	[ "$status" -eq 1 ]
	assert_equal "${lines[-1]}" 'kiln: Dockerfile:40:1: variable expansions of the whole Dockerfile are longer than 32 MiB'
	# one LABEL of 100 such pairs stops inside the instruction, before holding 90 MB (it holds
	# the 32 MiB it expanded)
	{
		echo 'FROM scratch'
		printf 'ARG A=%0900000d\n' 0
		printf 'LABEL'
		for i in $(seq 1 100); do printf ' l%d=$A' "$i"; done
		echo
	} >Dockerfile
	VM_KB=131072 bounded "$KILN" parse --plan -f Dockerfile
	[ "$status" -eq 1 ]
	assert_equal "${lines[-1]}" 'kiln: Dockerfile:3:1: variable expansions of the whole Dockerfile are longer than 32 MiB'
}

@test "limits: skipped stages' failing expansions count against the plan's budget" {
	# parse --plan shows a skipped stage's failing instruction unexpanded and goes on; the work
	# of each failure (1 MiB) still counts, so 40 of them stop it
	{
		printf 'ARG A=%0500000d\n' 0
		for i in $(seq 1 40); do printf 'FROM scratch AS s%d\nARG A\nLABEL x=$A$A$A\n' "$i"; done
		echo 'FROM scratch'
	} >Dockerfile
	run timeout 20 "$KILN" parse --plan -f Dockerfile
	[ "$status" -eq 1 ]
	assert_contains "${lines[-1]}" 'variable expansions of the whole Dockerfile are longer than 32 MiB'
}

@test "limits: large real values still expand (a 120 KB build arg, a 100 KB ARG used 300 times)" {
	{
		echo 'FROM scratch'
		echo 'ARG BIG'
		echo 'LABEL big=$BIG'
		printf 'ARG CERT=%0100000d\n' 7
		for i in $(seq 1 300); do echo "ENV C$i=\$CERT"; done
	} >Dockerfile
	"$KILN" parse --plan -f Dockerfile --build-arg "BIG=$(printf '%0120000d' 5)" >out
	grep -qx "  3: LABEL big=\"$(printf '%0120000d' 5)\"" out
	grep -qx "  304: ENV C300=\"$(printf '%0100000d' 7)\"" out
}
