#!/usr/bin/env bats
# `kiln parse`: options, exit codes, error messages with locations, and hostile input.

load ../lib/helpers

setup() {
	kiln_setup_root
	cd "$BATS_TEST_TMPDIR"
}

@test "parse reads ./Dockerfile by default, -f FILE and -f - (stdin)" {
	printf 'FROM a\nRUN b\n' >Dockerfile
	run_kiln parse
	assert_equal "$output" '(from "a")
(run "b")'
	printf 'FROM c\n' >other
	run_kiln parse -f other
	assert_equal "$output" '(from "c")'
	run_kiln parse --file=other
	assert_equal "$output" '(from "c")'
	run bash -c "printf 'FROM d\n' | '$KILN' parse -f -"
	[ "$status" -eq 0 ]
	assert_equal "$output" '(from "d")'
}

@test "parse usage errors exit 2, a missing file exits 1" {
	run_kiln 2 parse extra
	assert_contains "$output" "unexpected argument 'extra'"
	run_kiln 2 parse -f
	assert_contains "$output" "requires an argument"
	run_kiln 1 parse -f nope
	assert_contains "$output" "nope"
}

@test "unknown instructions are located and get a suggestion" {
	printf 'FROM a\n\n# c\n  RUNN echo\n' >Dockerfile
	run_kiln 1 parse
	assert_equal "$output" 'kiln: Dockerfile:4:3: unknown instruction "RUNN" (did you mean "RUN"?)'
	printf 'FROM a\nWROKDIR /x\n' >Dockerfile2
	run_kiln 1 parse -f Dockerfile2
	assert_equal "$output" 'kiln: Dockerfile2:2:1: unknown instruction "WROKDIR" (did you mean "WORKDIR"?)'
	printf 'FROM a\nZZZZZZ /x\n' >Dockerfile
	run_kiln 1 parse
	assert_equal "$output" 'kiln: Dockerfile:2:1: unknown instruction "ZZZZZZ"'
}

@test "syntax errors name the file and line" {
	printf 'FROM a\nRUN <<EOF\necho\n' >Dockerfile
	run_kiln 1 parse
	assert_equal "$output" 'kiln: Dockerfile:2: unterminated heredoc "EOF"'
	printf '# escape=x\nFROM a\n' >Dockerfile
	run_kiln 1 parse
	assert_equal "$output" "kiln: Dockerfile:1: invalid escape token 'x' does not match \` or \\"
	printf 'FROM a\nLABEL a=b c\n' >Dockerfile
	run_kiln 1 parse
	assert_contains "$output" "Dockerfile:2: syntax error - can't find = in \"c\""
	printf '# only a comment\n' >Dockerfile
	run_kiln 1 parse
	assert_equal "$output" "kiln: Dockerfile:1: file with no instructions"
}

@test "directives, escapes, heredocs, JSON fallback and CRLF as BuildKit" {
	printf '\xef\xbb\xbf# escape=`\r\nFROM a\r\nRUN echo `\r\n\r\n  # c\r\n  b\r\nCOPY <<-EOT /x\r\n\tz\r\n\tEOT\r\nCMD ["a", 1e999]\r\nENTRYPOINT ["x", "\\u00e9"]\r\n' >Dockerfile
	run bash -c "'$KILN' parse 2>/dev/null"
	[ "$status" -eq 0 ]
	assert_equal "$output" '(from "a")
(run "echo   b")
(copy "<<-EOT" "/x")
(cmd "[\"a\", 1e999]")
(entrypoint "x" "é")'
	# the empty continuation line is a warning on stderr, not in the dump
	run bash -c "'$KILN' parse 2>&1 >/dev/null"
	assert_contains "$output" "kiln: warning: Dockerfile:6: Empty continuation line found in: RUN echo   b"
}

@test "hostile input: huge line, many stages, bad UTF-8, NUL, deep nesting, too large" {
	# a 1 MiB single line
	{ printf 'FROM a\nRUN '; head -c 1048576 /dev/zero | tr '\0' 'x'; printf '\n'; } >big
	run timeout 20 "$KILN" parse -f big
	[ "$status" -eq 0 ]
	[ "${#output}" -gt 1048576 ]
	# 10,000 stages
	awk 'BEGIN { for (i = 1; i <= 10000; i++) printf "FROM b%d AS s%d\nCOPY --from=s%d /a /b\n", i, i, i }' >stages
	run timeout 20 "$KILN" parse -f stages
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "$output" | wc -l)" -eq 20000 ]
	# invalid UTF-8 is kept and \x-escaped
	printf 'FROM a\nRUN \xff\xfe\n' >utf
	run_kiln parse -f utf
	assert_equal "${lines[1]}" '(run "\xff\xfe")'
	# NUL bytes are refused with their position
	printf 'FROM a\nRUN a\0b\n' >nul
	run_kiln 1 parse -f nul
	assert_equal "$output" "kiln: nul:2:6: NUL byte in Dockerfile"
	# deeply nested JSON and substitutions
	{ printf 'CMD '; head -c 200000 /dev/zero | tr '\0' '['; printf '\n'; } >json
	run timeout 20 "$KILN" parse -f json
	[ "$status" -eq 0 ]
	awk 'BEGIN { printf "RUN <<EOF "; for (i = 0; i < 3000; i++) printf "${a:-"; printf "\nx\nEOF\n" }' >subst
	run timeout 20 "$KILN" parse -f subst
	[ "$status" -eq 1 ]
	assert_contains "$output" 'unknown instruction "x"'
	# past 10 MiB
	{ printf 'FROM a\n#'; head -c 10485760 /dev/zero | tr '\0' 'x'; } >huge
	run timeout 20 "$KILN" parse -f huge
	[ "$status" -eq 1 ]
	assert_contains "$output" "huge"
}
