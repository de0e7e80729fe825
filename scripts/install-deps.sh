#!/bin/sh
# Installs what kiln needs on Debian 12: the build dependencies; with --test also what the test
# suite uses (the independent judges skopeo, umoci, buildah; a registry; a busybox for the
# locally made base image; clang's libFuzzer) and the arm64 cross build that `make check` runs
# under QEMU; with --cross arm64 only the build dependencies and that cross build (Debian
# multiarch: the arm64 -dev packages, the cross compiler, qemu-user-static). Run as root.
# Idempotent.
set -eu

build_pkgs="build-essential cmake pkg-config libarchive-dev libssl-dev libcurl4-openssl-dev
  libzstd-dev libjansson-dev zlib1g-dev libdeflate-dev libseccomp-dev busybox-static ca-certificates"
test_pkgs="bats libcmocka-dev clang libclang-rt-14-dev libfuzzer-14-dev skopeo umoci buildah
  docker-registry apache2-utils pigz zstd hyperfine jq python3 python3-cryptography python3-jwt
  tar gzip bzip2 xz-utils file uidmap libcap2-bin runc git iproute2 procps curl time openssl bc tmux bsdutils"
# The libraries kiln links (and cmocka for its unit tests), for the cross architecture.
cross_libs="libarchive-dev libssl-dev libcurl4-openssl-dev libzstd-dev libjansson-dev zlib1g-dev
  libdeflate-dev libseccomp-dev libcmocka-dev"

usage() {
	echo "usage: $0 [--test] [--cross arm64]" >&2
	exit 2
}

pkgs=$build_pkgs
cross=""
while [ $# -gt 0 ]; do
	case "$1" in
	--test) pkgs="$build_pkgs $test_pkgs"; cross=arm64 ;;
	--cross)
		[ $# -ge 2 ] || usage
		[ "$2" = arm64 ] || { echo "install-deps: cross builds exist for arm64 only, not '$2'" >&2; exit 2; }
		cross=$2
		shift ;;
	*) usage ;;
	esac
	shift
done

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: run as root (apt-get install)" >&2
	exit 1
fi

update=""
if [ -n "$cross" ]; then
	pkgs="$pkgs crossbuild-essential-$cross qemu-user-static"
	for p in $cross_libs; do
		pkgs="$pkgs $p:$cross"
	done
	if ! dpkg --print-foreign-architectures | grep -qx "$cross"; then
		dpkg --add-architecture "$cross"
		update=yes
	fi
fi

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ] || [ -n "$update" ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
fi
if [ -n "$missing" ]; then
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing
fi
