#!/usr/bin/env bats
# The command line itself: help, version, exit codes, and that every command is documented.

load ../lib/helpers

setup() {
	kiln_setup_root
}

@test "--version prints the version" {
	run_kiln --version
	[[ "$output" =~ ^kiln\ version\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
}

@test "--help lists the commands and exits 0" {
	run_kiln --help
	assert_contains "$output" "Usage: kiln"
	assert_contains "$output" "Commands:"
}

@test "no command is a usage error" {
	run_kiln 2
	assert_contains "$output" "Usage: kiln"
}

@test "unknown command exits 2 with a clear error" {
	run_kiln 2 frobnicate
	assert_contains "$output" "kiln: unknown command 'frobnicate'"
}

@test "unknown global flag exits 2" {
	run_kiln 2 --frob images
	assert_contains "$output" "unknown option '--frob'"
}

@test "every command has a man page, a --help and rejects unknown flags with 2" {
	run_kiln --help
	cmds=$(printf '%s\n' "$output" | sed -n '/^Commands:/,/^$/p' | awk 'NF>1 && $1!="Commands:" {print $1}')
	[ -n "$cmds" ]
	for c in $cmds; do
		[ -f "$KILN_SRC/man/kiln-$c.1" ] || { echo "# no man/kiln-$c.1" >&3; return 1; }
		grep -q "kiln-$c" "$KILN_SRC/man/kiln.1" || { echo "# kiln.1 does not list $c" >&3; return 1; }
		run_kiln "$c" --help
		assert_contains "$output" "Usage: kiln $c"
		run_kiln 2 "$c" --no-such-flag
		assert_contains "$output" "unknown option '--no-such-flag'"
	done
}

@test "sources use none of the banned functions" {
	run grep -rnwE 'strcpy|strcat|sprintf|vsprintf|strtok|atoi|atol|gmtime|localtime|mktemp|gets' \
		--include='*.c' --include='*.h' "$KILN_SRC/base" "$KILN_SRC/parser" "$KILN_SRC/layers" \
		"$KILN_SRC/registry" "$KILN_SRC/builder" "$KILN_SRC/cli"
	[ "$status" -eq 1 ] || { echo "$output" | sed 's/^/# /' >&3; return 1; }
}
