#!/usr/bin/env bats
# Differential test: the testdata examples built by kiln and by `buildah bud` (Debian's buildah,
# vfs storage, chroot isolation, docker format so HEALTHCHECK/SHELL/ONBUILD are kept) give the
# same config fields and the same file trees (paths, types, modes, owners, contents).

load ../lib/helpers
load build-helpers

setup_file() {
	build_setup_file
	if ! command -v buildah >/dev/null 2>&1; then
		return 0
	fi
	export BH_DIR="$BATS_FILE_TMPDIR/buildah"
	export BH="buildah --root $BH_DIR/storage --runroot $BH_DIR/run --storage-driver vfs"
	mkdir -p "$BH_DIR"
	# The same base in buildah's storage: the rootfs tarball plus kiln's base config Env.
	local c env
	c=$($BH from scratch)
	$BH add "$c" "$BASE_OUT/rootfs.tar" / >/dev/null
	for env in $("$KILN" --root "$KILN_TEST_ROOT" inspect kiln-test/busybox:latest | jq -r '.[0].Config.Env // [] | .[]'); do
		$BH config --env "$env" "$c"
	done
	$BH commit -q "$c" kiln-test/busybox:latest >/dev/null
	$BH rm "$c" >/dev/null
}

teardown_file() {
	if [ -n "${BH:-}" ]; then
		$BH rm --all >/dev/null 2>&1 || true
		$BH unshare true >/dev/null 2>&1 || true
		umount -R "$BH_DIR/storage/vfs" 2>/dev/null || true
	fi
}

# The config fields both tools must agree on, normalized ([] == null, buildah's own label dropped).
CONFIG_FILTER='{Env, Cmd, Entrypoint, WorkingDir, User, ExposedPorts, Volumes, StopSignal, Healthcheck, OnBuild, Shell,
  Labels: ((.Labels // {}) | del(."io.buildah.version"))}
  | with_entries(if (.value == [] or .value == {} or .value == "") then .value = null else . end)'

# tree DIR: one line per entry: path type mode uid:gid [sha256 | link target].
tree() {
	(cd "$1" && find . -mindepth 1 \( -path ./proc -o -path ./sys -o -path ./dev -o -path ./run \) -prune -o -print0 |
		sort -z | while IFS= read -r -d '' p; do
			case "$(stat -c %F "$p")" in
			"regular file" | "regular empty file") printf '%s f %s %s\n' "$p" "$(stat -c '%a %u:%g' "$p")" "$(sha256sum <"$p" | cut -c1-16)" ;;
			directory) printf '%s d %s\n' "$p" "$(stat -c '%a %u:%g' "$p")" ;;
			"symbolic link") printf '%s l %s %s\n' "$p" "$(stat -c '%u:%g' "$p")" "$(readlink "$p")" ;;
			*) printf '%s o %s\n' "$p" "$(stat -c '%F %a %u:%g' "$p")" ;;
			esac
		done)
}

# differential NAME CONTEXT [build args...]: builds with both and compares.
differential() {
	local name=$1 ctx=$2
	shift 2
	skip_unless buildah
	build_ok -t "diff-$name" "$@" "$ctx"
	run $BH bud --isolation chroot --format docker -q -t "diff-$name" "$@" "$ctx"
	if [ "$status" -ne 0 ]; then
		printf '%s\n' "$output" | sed 's/^/# buildah: /' >&3
		return 1
	fi
	local kcfg bcfg
	kcfg=$("$KILN" --root "$KILN_TEST_ROOT" inspect "diff-$name" | jq -S -c ".[0].Config | $CONFIG_FILTER")
	bcfg=$($BH inspect --type image "diff-$name" | jq -S -c ".Docker.config | $CONFIG_FILTER")
	if [ "$kcfg" != "$bcfg" ]; then
		echo "# config differs" >&3
		echo "# kiln:    $kcfg" >&3
		echo "# buildah: $bcfg" >&3
		return 1
	fi
	unpack "diff-$name" "$BATS_TEST_TMPDIR/kiln"
	local c mnt
	c=$($BH from "diff-$name")
	mnt=$($BH mount "$c")
	tree "$BATS_TEST_TMPDIR/kiln" >"$BATS_TEST_TMPDIR/kiln.tree"
	# buildah 1.28 commits the empty mount-point stubs of /etc/hosts and /etc/resolv.conf (mode
	# 755) into RUN layers; docker and kiln never commit them.
	tree "$mnt" | grep -vE '^\./etc/(hosts|resolv\.conf) f 755 0:0 e3b0c44298fc1c14$' >"$BATS_TEST_TMPDIR/buildah.tree"
	$BH umount "$c" >/dev/null
	$BH rm "$c" >/dev/null
	if ! diff -u "$BATS_TEST_TMPDIR/buildah.tree" "$BATS_TEST_TMPDIR/kiln.tree" >"$BATS_TEST_TMPDIR/tree.diff"; then
		sed 's/^/# /' "$BATS_TEST_TMPDIR/tree.diff" >&3
		return 1
	fi
}

@test "differential: daemon (Dockerfile)" {
	differential daemon1 "$KILN_TESTDATA/daemon"
}

@test "differential: daemon (Dockerfile2)" {
	differential daemon2 "$KILN_TESTDATA/daemon" -f "$KILN_TESTDATA/daemon/Dockerfile2"
}

@test "differential: multistage" {
	differential multistage "$KILN_TESTDATA/multistage"
}

@test "differential: args" {
	differential args "$KILN_TESTDATA/args" --build-arg WHO=me
}

@test "differential: dockerignore" {
	differential dockerignore "$KILN_TESTDATA/dockerignore"
}

@test "differential: addtar" {
	differential addtar "$KILN_TESTDATA/addtar"
}

@test "differential: metadata" {
	# buildah 1.28 runs an ONBUILD trigger in the very build that declares it (and fails), so
	# this one is compared without its ONBUILD line.
	cp -r "$KILN_TESTDATA/metadata" "$BATS_TEST_TMPDIR/metadata"
	sed -i '/^ONBUILD/d' "$BATS_TEST_TMPDIR/metadata/Dockerfile"
	differential metadata "$BATS_TEST_TMPDIR/metadata"
}

@test "differential: copyopts (the flags buildah 1.28 knows)" {
	# buildah 1.28 has no COPY --exclude, --parents nor --link: those lines are left out.
	cp -r "$KILN_TESTDATA/copyopts" "$BATS_TEST_TMPDIR/copyopts"
	sed -i '/--exclude\|--parents\|--link/d' "$BATS_TEST_TMPDIR/copyopts/Dockerfile"
	differential copyopts "$BATS_TEST_TMPDIR/copyopts"
}

# heredoc is not compared: buildah 1.28 has no heredoc support (it parses `set -e` as an instruction).
