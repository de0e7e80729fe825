#!/usr/bin/env bats
# Hostile archives: every one fails with a clear error, leaves the store exactly as it was
# (index.json byte-identical, no new blob, fsck clean, tmp empty) and writes nothing outside.

load store-helpers

setup_file() {
	fixture
}

setup() {
	kiln_setup_root
	fixture
	run_kiln load -i "$FIX/app.tar"
	store_state >"$BATS_TEST_TMPDIR/before"
}

# hostile KIND EXPECTED-MESSAGE
hostile() {
	local kind=$1 msg=$2
	mkdir -p "$BATS_TEST_TMPDIR/w/a/b"
	/usr/bin/python3 "$BATS_TEST_DIRNAME/make-hostile.py" "$kind" "${SRC:-$FIX/base.tar}" "$BATS_TEST_TMPDIR/w/a/b/h.tar"
	# Run from deep inside the test dir so that "../" escapes would land in it.
	cd "$BATS_TEST_TMPDIR/w/a/b"
	run_kiln 1 load -i h.tar
	cd - >/dev/null
	assert_contains "$output" "kiln: load: "
	assert_contains "$output" "$msg"
	store_state >"$BATS_TEST_TMPDIR/after"
	diff -u "$BATS_TEST_TMPDIR/before" "$BATS_TEST_TMPDIR/after" >&3
	[ -z "$(ls -A "$KILN_TEST_ROOT/tmp")" ]
	run_kiln fsck
	[ -z "$(find "$BATS_TEST_TMPDIR" /tmp -maxdepth 4 -name 'kiln-pwned*' 2>/dev/null)" ]
	[ "$(find "$BATS_TEST_TMPDIR/w" -type f | wc -l)" -eq 1 ]
}

@test "config whose content does not match its digest name" {
	hostile config-mismatch "digest mismatch for config '"
}

@test "layer whose diff_id does not match the config" {
	hostile layer-mismatch "does not match the config: diff_id is 'sha256:"
}

@test "oci-archive blob whose content does not match its name" {
	hostile oci-digest-mismatch "digest mismatch for 'blobs/sha256/"
}

@test "oci-archive index that also has layers and config (one document read two ways)" {
	hostile oci-ambiguous-index "ambiguous manifest: it has both 'manifests' and 'layers'"
}

@test "oci-archive manifest whose mediaType disagrees with the descriptor pointing at it" {
	hostile oci-type-mismatch "ambiguous manifest: its mediaType is 'application/vnd.oci.image.manifest.v1+json' but it was served or referenced as 'application/vnd.docker.distribution.manifest.v2+json'"
}

@test "manifest.json pointing outside the archive with ../" {
	hostile outside "archive entry '../../../etc/passwd' points outside the archive"
}

@test "manifest.json naming an absolute config path" {
	hostile absolute-config "archive entry '/etc/passwd' has an absolute path"
}

@test "entries with absolute paths or .. are refused" {
	hostile absolute-entry "archive entry '/tmp/kiln-pwned' has an absolute path"
	hostile dotdot-entry "archive entry '../kiln-pwned' points outside the archive"
}

@test "a symlink climbing out of the archive is refused" {
	hostile symlink-escape "archive entry '../../../../etc/passwd' points outside the archive"
}

@test "missing layer blobs" {
	hostile missing-layer "archive has no layer '"
}

@test "huge and malformed JSON" {
	hostile huge-json "manifest.json is too large ("
	hostile bad-json "invalid JSON in manifest.json"
}

@test "truncated gzip, devices, and non-archives" {
	hostile truncated-gzip "truncated gzip input"
	hostile device "archive entry 'dev0' is not a regular file"
	hostile not-tar "read archive: Unrecognized archive format"
}

@test "a bad last layer leaves no blob of the good ones behind" {
	run_kiln rmi kiln-test/app:1
	run_kiln prune
	store_state >"$BATS_TEST_TMPDIR/before"
	[ "$(find "$KILN_TEST_ROOT/blobs" -type f | wc -l)" -eq 0 ]
	SRC="$FIX/app.tar" hostile last-layer-mismatch "does not match the config"
}

@test "a 1 GB sparse bomb is spooled as a hole, rejected, and fills no disk" {
	d="$BATS_TEST_TMPDIR/bomb"
	mkdir -p "$d"
	tar -xf "$FIX/base.tar" -C "$d"
	truncate -s 1G "$d/bomb"
	jq -c '.[0].Layers[0] = "bomb"' "$d/manifest.json" >"$d/m" && mv "$d/m" "$d/manifest.json"
	tar --sparse -C "$d" -cf "$BATS_TEST_TMPDIR/bomb.tar" .
	[ "$(stat -c %s "$BATS_TEST_TMPDIR/bomb.tar")" -lt 20000000 ]
	run_kiln 1 load -i "$BATS_TEST_TMPDIR/bomb.tar"
	assert_contains "$output" "layer 'bomb' does not match the config: diff_id is 'sha256:49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14'"
	store_state >"$BATS_TEST_TMPDIR/after"
	diff -u "$BATS_TEST_TMPDIR/before" "$BATS_TEST_TMPDIR/after" >&3
	[ "$(du -sm "$KILN_TEST_ROOT" | cut -f1)" -lt 50 ]
	run_kiln fsck
}
