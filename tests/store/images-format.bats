#!/usr/bin/env bats
# kiln images and kiln inspect as docker users script them: SIZE is the unpacked size (judged by
# Python's tarfile over the layer tars), --format Go templates, --quiet, and a store that is
# missing or empty said so.

load store-helpers

setup_file() {
	export IMGS="$BATS_FILE_TMPDIR/imgs"
	make_images "$IMGS"
	export KILN_TEST_ROOT="$BATS_FILE_TMPDIR/root"
	"$KILN" --root "$KILN_TEST_ROOT" load -i "$IMGS/base.tar" >/dev/null
	"$KILN" --root "$KILN_TEST_ROOT" load -i "$IMGS/app.tar" >/dev/null
}

# unpacked_size TAR...: regular files' sizes + symlink target lengths, hardlinks once.
unpacked_size() {
	python3 - "$@" <<'PY'
import sys, tarfile
total = 0
for path in sys.argv[1:]:
    with tarfile.open(path) as t:
        for m in t:
            if m.isreg():
                total += m.size
            elif m.issym():
                total += len(m.linkname.encode())
print(total)
PY
}

@test "images: SIZE is the unpacked size as docker shows it; --compressed-size shows the stored one" {
	base=$(unpacked_size "$IMGS/rootfs.tar")
	app=$(unpacked_size "$IMGS/rootfs.tar" "$IMGS/extra.tar")
	run_kiln images --format json
	assert_equal "$(jq '.[] | select(.Repository == "kiln-test/busybox") | .Size' <<<"$output")" "$base"
	assert_equal "$(jq '.[] | select(.Repository == "kiln-test/app") | .Size' <<<"$output")" "$app"
	compressed=$(jq '.[] | select(.Repository == "kiln-test/app") | .CompressedSize' <<<"$output")
	# docker's human sizes: three significant digits, decimal units
	want=$(python3 -c "
n = $app
for u in ['B', 'kB', 'MB', 'GB']:
    if n < 1000: break
    n /= 1000
print('%.3g%s' % (n, u))")
	run_kiln images kiln-test/app
	assert_equal "$(awk 'NR == 2 { print $NF }' <<<"$output")" "$want"
	run_kiln images --compressed-size --format '{{.Size}}' kiln-test/app
	want=$(python3 -c "
n = $compressed
for u in ['B', 'kB', 'MB', 'GB']:
    if n < 1000: break
    n /= 1000
print('%.3g%s' % (n, u))")
	assert_equal "$output" "$want"
}

@test "images --format: Go template fields, table columns, errors" {
	run_kiln images --format '{{.Repository}}:{{.Tag}}'
	assert_equal "$(sort <<<"$output")" "kiln-test/app:1
kiln-test/busybox:latest"
	run_kiln inspect -q kiln-test/app:1
	id=$output
	run_kiln images --format '{{.ID}} {{.Tag}}' kiln-test/app
	assert_equal "$output" "${id:7:12} 1"
	run_kiln images --no-trunc --format '{{.ID}}' kiln-test/app
	assert_equal "$output" "$id"
	run_kiln images --format 'table {{.Repository}}\t{{.Tag}}\t{{.ID}}' kiln-test/app
	# docker's tabwriter: each column as wide as its widest cell + 3, 10 at least
	assert_equal "$output" "REPOSITORY      TAG       IMAGE ID
kiln-test/app   1         ${id:7:12}"
	run_kiln images -q kiln-test/app
	assert_equal "$output" "${id:7:12}"
	run_kiln 1 images --format '{{.Nope}}'
	assert_equal "$output" "kiln: template: can't evaluate field Nope"
	run_kiln 2 images --format '{{frob .ID}}'
	assert_contains "$output" "function 'frob' is not defined"
	run_kiln 2 images --format '{{.ID'
	assert_contains "$output" "unclosed action"
}

@test "inspect --format and --quiet" {
	run_kiln inspect -q kiln-test/app:1 kiln-test/busybox
	[ "${#lines[@]}" -eq 2 ]
	[[ "${lines[0]}" =~ ^sha256:[0-9a-f]{64}$ ]]
	id=${lines[0]}
	run_kiln inspect --format '{{.Id}}' kiln-test/app:1
	assert_equal "$output" "$id"
	# what umoci wrote into the config, read back through a template
	run_kiln inspect --format '{{json .Config}}' kiln-test/app:1
	assert_equal "$(jq -c '.Env' <<<"$output")" '["PATH=/bin:/usr/bin"]'
	assert_equal "$(jq -r '.User + " " + .WorkingDir + " " + .Labels["org.example"]' <<<"$output")" "app /home yes"
	run_kiln inspect -f '{{.Config.WorkingDir}} {{join .Config.Cmd " "}} {{index .Config.Labels "org.example"}} {{len .RootFS.Layers}}' kiln-test/app:1
	assert_equal "$output" "/home /bin/cat /srv/hello.txt yes 2"
	run_kiln inspect -f '{{.Config.Env}} {{upper .Os}}' kiln-test/app:1
	assert_equal "$output" "[PATH=/bin:/usr/bin] LINUX"
	run_kiln 1 inspect -q no/such:image
	assert_equal "$output" "kiln: image 'no/such:image' not found"
}

@test "a missing --root is reported by reading commands and created by writing ones" {
	run_kiln 1 images --root "$BATS_TEST_TMPDIR/typo"
	assert_equal "$output" "kiln: no image store at '$BATS_TEST_TMPDIR/typo': the directory does not exist (kiln build, pull, load or import create it)"
	[ ! -e "$BATS_TEST_TMPDIR/typo" ]
	run_kiln 1 inspect --root "$BATS_TEST_TMPDIR/typo" x
	assert_contains "$output" "no image store at"
	run_kiln 1 save --root "$BATS_TEST_TMPDIR/typo" -o "$BATS_TEST_TMPDIR/x.tar" x
	assert_contains "$output" "no image store at"
	mkdir "$BATS_TEST_TMPDIR/empty"
	run "$KILN" images --root "$BATS_TEST_TMPDIR/empty"
	[ "$status" -eq 0 ]
	assert_contains "$output" "kiln: the store at '$BATS_TEST_TMPDIR/empty' holds no images"
	run_kiln load --root "$BATS_TEST_TMPDIR/new/store" -i "$IMGS/base.tar"
	[ -d "$BATS_TEST_TMPDIR/new/store" ]
	run_kiln images --root "$BATS_TEST_TMPDIR/new/store" --format '{{.Repository}}'
	assert_equal "$output" "kiln-test/busybox"
}
