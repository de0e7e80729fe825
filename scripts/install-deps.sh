#!/bin/sh
# Installs what kiln needs on Debian 12: the build dependencies, and with --test also what the
# test suite uses (the independent judges skopeo, umoci, buildah; a registry; a busybox for the
# locally made base image; clang's libFuzzer). Run as root. Idempotent.
set -eu

build_pkgs="build-essential cmake pkg-config libarchive-dev libssl-dev libcurl4-openssl-dev
  libzstd-dev libjansson-dev zlib1g-dev libdeflate-dev libseccomp-dev busybox-static ca-certificates"
test_pkgs="bats libcmocka-dev clang libclang-rt-14-dev libfuzzer-14-dev skopeo umoci buildah
  docker-registry apache2-utils pigz zstd hyperfine jq python3 python3-cryptography python3-jwt
  tar gzip bzip2 xz-utils file uidmap libcap2-bin runc iproute2 procps curl time openssl bc tmux bsdutils"

pkgs=$build_pkgs
case "${1:-}" in
--test) pkgs="$build_pkgs $test_pkgs" ;;
"") ;;
*) echo "usage: $0 [--test]" >&2; exit 2 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: run as root (apt-get install)" >&2
	exit 1
fi

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing
fi
