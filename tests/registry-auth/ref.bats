#!/usr/bin/env bats
# Reference parsing and normalisation (Docker's grammar), through kiln-reg-tool.

load helpers

H=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa

check_ok() {
	run "$REG_TOOL" ref "$1"
	[ "$status" -eq 0 ]
	assert_equal "$output" "OK $2"
}

check_err() {
	run "$REG_TOOL" ref "$1"
	[ "$status" -eq 0 ]
	assert_contains "$output" "ERR invalid reference"
	assert_contains "$output" "$2"
}

@test "official image short names get docker.io/library and :latest" {
	check_ok alpine "docker.io/library/alpine:latest domain=docker.io path=library/alpine tag=latest digest=- familiar=alpine:latest api=registry-1.docker.io"
	check_ok alpine:3.20 "docker.io/library/alpine:3.20 domain=docker.io path=library/alpine tag=3.20 digest=- familiar=alpine:3.20 api=registry-1.docker.io"
	check_ok docker.io/library/alpine "docker.io/library/alpine:latest domain=docker.io path=library/alpine tag=latest digest=- familiar=alpine:latest api=registry-1.docker.io"
	check_ok index.docker.io/alpine "docker.io/library/alpine:latest domain=docker.io path=library/alpine tag=latest digest=- familiar=alpine:latest api=registry-1.docker.io"
}

@test "user repositories on Docker Hub" {
	check_ok user/app "docker.io/user/app:latest domain=docker.io path=user/app tag=latest digest=- familiar=user/app:latest api=registry-1.docker.io"
	check_ok a__b/c--d/e.f_g:v1 "docker.io/a__b/c--d/e.f_g:v1 domain=docker.io path=a__b/c--d/e.f_g tag=v1 digest=- familiar=a__b/c--d/e.f_g:v1 api=registry-1.docker.io"
}

@test "other registries: dots, ports, localhost, IPv6" {
	check_ok localhost:5000/x "localhost:5000/x:latest domain=localhost:5000 path=x tag=latest digest=- familiar=localhost:5000/x:latest api=localhost:5000"
	check_ok localhost/x "localhost/x:latest domain=localhost path=x tag=latest digest=- familiar=localhost/x:latest api=localhost"
	check_ok host.example/a/b:tag "host.example/a/b:tag domain=host.example path=a/b tag=tag digest=- familiar=host.example/a/b:tag api=host.example"
	check_ok 127.0.0.1:5000/team/app:1 "127.0.0.1:5000/team/app:1 domain=127.0.0.1:5000 path=team/app tag=1 digest=- familiar=127.0.0.1:5000/team/app:1 api=127.0.0.1:5000"
	check_ok "[::1]:5000/x:1" "[::1]:5000/x:1 domain=[::1]:5000 path=x tag=1 digest=- familiar=[::1]:5000/x:1 api=[::1]:5000"
	check_ok Registry/x "Registry/x:latest domain=Registry path=x tag=latest digest=- familiar=Registry/x:latest api=Registry"
}

@test "digests: name@digest has no tag, name:tag@digest keeps both" {
	check_ok "alpine@sha256:$H" "docker.io/library/alpine@sha256:$H domain=docker.io path=library/alpine tag=- digest=sha256:$H familiar=alpine@sha256:$H api=registry-1.docker.io"
	check_ok "ghcr.io/o/x:1@sha256:$H" "ghcr.io/o/x:1@sha256:$H domain=ghcr.io path=o/x tag=1 digest=sha256:$H familiar=ghcr.io/o/x:1@sha256:$H api=ghcr.io"
}

@test "invalid references get clear errors" {
	check_err UPPER "repository name must be lowercase"
	check_err ghcr.io/Owner/x "repository name must be lowercase"
	check_err "a//b" "invalid reference format"
	check_err "a___b" "invalid reference format"
	check_err "a..b" "invalid reference format"
	check_err "-a" "invalid reference format"
	check_err "a:" "invalid tag"
	check_err "a:-x" "invalid tag"
	check_err ":x" "at least one component"
	check_err "" "at least one component"
	check_err "$H" "cannot specify 64-byte hexadecimal strings"
	check_err "x@sha256:abc" "invalid digest"
	check_err "x@sha256:${H^^}" "invalid checksum digest format"
	check_err "x@sha256:${H}aa" "invalid checksum digest length"
	check_err "bad_host.example:99/x" "invalid domain"
	check_err "host.example:99999999/x" "invalid domain"
	check_err "a b" "invalid character"
}

@test "tag and name length limits" {
	check_ok "a:$(printf 't%.0s' {1..128})" "docker.io/library/a:$(printf 't%.0s' {1..128}) domain=docker.io path=library/a tag=$(printf 't%.0s' {1..128}) digest=- familiar=a:$(printf 't%.0s' {1..128}) api=registry-1.docker.io"
	check_err "a:$(printf 't%.0s' {1..129})" "invalid tag"
	check_err "host.example/$(printf 'a%.0s' {1..250})" "must not be more than 255 characters"
}
