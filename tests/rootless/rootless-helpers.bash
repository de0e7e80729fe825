# Helpers for the rootless tests: real non-root users made by the test (useradd), one with
# subordinate ID ranges in /etc/subuid and /etc/subgid and one without, removed at the end.
# Everything they need (a copy of kiln, the base image, contexts) lives in $RL_DIR, readable by
# them; their stores are in their home directories ($XDG_DATA_HOME unset: ~/.local/share/kiln).

load ../lib/helpers

# rl_setup_file: creates the users and $RL_DIR (call from setup_file).
rl_setup_file() {
	[ "$(id -u)" = 0 ] || { skip_or_fail "creating test users needs root"; return; }
	for t in useradd userdel runuser newuidmap newgidmap python3; do
		command -v "$t" >/dev/null || { skip_or_fail "$t is not installed (uidmap, passwd, util-linux)"; return; }
	done
	export RL_DIR
	RL_DIR=$(mktemp -d /tmp/kiln-rootless.XXXXXX)
	chmod 755 "$RL_DIR"
	# Short unique names (32 characters at most), with and without subordinate IDs.
	export RL_USER="kilnrl$$s" RL_NOSUB="kilnrl$$n"
	useradd -m -s /bin/sh -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 "$RL_USER"
	useradd -m -s /bin/sh -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 "$RL_NOSUB"
	# A range no other test user holds: 65536 IDs after the highest start in the files.
	local start
	start=$(awk -F: 'BEGIN { m = 300000 } $2 + $3 > m { m = $2 + $3 } END { print m + 65536 }' \
		/etc/subuid /etc/subgid)
	usermod --add-subuids "$start-$((start + 65535))" --add-subgids "$start-$((start + 65535))" "$RL_USER"
	export RL_SUBID_START=$start
	cp "$KILN" "$RL_DIR/kiln"
	chmod 755 "$RL_DIR/kiln"
	"$KILN_SRC/testdata/base/make-rootfs.sh" "$RL_DIR/base" >/dev/null
	chmod -R a+rX "$RL_DIR"
}

rl_teardown_file() {
	local u
	for u in "${RL_USER:-}" "${RL_NOSUB:-}"; do
		[ -n "$u" ] && id "$u" >/dev/null 2>&1 && userdel -r -f "$u" 2>/dev/null
	done
	[ -n "${RL_DIR:-}" ] && rm -rf "$RL_DIR"
	return 0
}

# as USER CMD...: runs CMD as USER (their own environment: HOME, no KILN_ROOT or XDG_DATA_HOME)
# in $RL_DIR, with a timeout.
as() {
	local u=$1
	shift
	(cd "$RL_DIR" && runuser -u "$u" -- env -u XDG_DATA_HOME -u KILN_ROOT -u TMPDIR \
		HOME="$(getent passwd "$u" | cut -d: -f6)" timeout --foreground 300 "$@")
}

# run_as USER [expected_rc] ARGS...: `kiln ARGS` as USER, as run_kiln does (status, output, log).
run_as() {
	local u=$1 expected=0
	shift
	case "$1" in
	[0-9] | [0-9][0-9] | [0-9][0-9][0-9]) expected=$1; shift ;;
	esac
	echo "# ($u) kiln $*" >&3
	run as "$u" "$RL_DIR/kiln" "$@"
	[ -n "$output" ] && printf '%s\n' "$output" | sed 's/^/#   /' >&3
	if [ "$status" -ne "$expected" ]; then
		echo "# expected exit $expected, got $status" >&3
		return 1
	fi
}

# rl_ctx NAME: a fresh context directory $RL_DIR/NAME (Dockerfile from stdin), readable by all.
rl_ctx() {
	local d="$RL_DIR/$1"
	rm -rf "$d"
	mkdir -p "$d"
	cat >"$d/Dockerfile"
	chmod -R a+rX "$d"
}

# rl_unpack_save TAR DIR: extracts the layers of a docker-archive in order with GNU tar as
# root (numeric owners, modes, xattrs), whiteouts applied.
rl_unpack_save() {
	local tarball=$1 dir=$2 x="$2.archive" layer
	mkdir -p "$dir" "$x"
	tar -xf "$tarball" -C "$x"
	for layer in $(jq -r '.[0].Layers[]' "$x/manifest.json"); do
		while IFS= read -r wh; do
			case "$wh" in
			*/.wh..wh..opq | .wh..wh..opq) find "$dir/$(dirname "$wh")" -mindepth 1 -maxdepth 1 -exec rm -rf {} + ;;
			*.wh.*) rm -rf "$dir/$(dirname "$wh")/$(basename "$wh" | sed 's/^\.wh\.//')" ;;
			esac
		done < <(tar -tf "$x/$layer" | grep '\.wh\.' || true)
		tar -xf "$x/$layer" -C "$dir" --numeric-owner --same-owner --same-permissions \
			--xattrs --xattrs-include='*' --exclude='*.wh.*'
	done
}
