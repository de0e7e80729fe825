#!/bin/sh
# The README's first command ends here: kiln's main job on the daemon example from testdata/,
# into the default store (/var/lib/kiln for root, or $KILN_ROOT).
#  1. make the local base image from Debian's busybox-static (no network) and import it;
#  2. build testdata/daemon twice, as a user would: `kiln build --tag my_daemon:0.1 .` and
#     `kiln build --tag my_daemon:0.2 -f Dockerfile2 .`;
#  3. show the images.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
kiln=$(cd "$(dirname "${1:-build/cli/kiln}")" && pwd)/$(basename "${1:-build/cli/kiln}")

rootfs_tar=$("$top/testdata/base/make-rootfs.sh")
"$kiln" import "$rootfs_tar" kiln-test/busybox:latest
cd "$top/testdata/daemon"
"$kiln" build --tag my_daemon:0.1 .
"$kiln" build --tag my_daemon:0.2 -f Dockerfile2 .
"$kiln" images
