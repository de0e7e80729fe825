#!/bin/bash
# Runs every benchmark, each side by side with its peer in the same run, and prints the figures
# and ratios. Needs root and the test packages (./scripts/install-deps.sh --test).
# Usage: bench/run.sh [BUILD_DIR]   (default: build)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(realpath "${1:-$here/../build}")
kiln=$build/cli/kiln
[ -x "$kiln" ] || { echo "bench: $kiln not built (make)" >&2; exit 1; }

section() { printf '\n==== %s ====\n' "$1"; }
section "parser: 20,000-line Dockerfile, parse and plan"
"$here/parser/run.sh" "$kiln"
section "sandbox: per-RUN overhead vs unshare+chroot"
"$here/sandbox/run.sh" "$build"
section "run: kiln run to first output line vs runc run of the same bundle"
"$here/run/run.sh" "$kiln"
section "layers: layer creation vs tar|gzip, tar|pigz, tar|zstd"
"$here/layers/run.sh" "$build"
section "store: save/load vs skopeo copy"
"$here/store/run.sh" "$kiln"
section "registry: push/pull vs skopeo copy"
"$here/registry/run.sh" --kiln "$kiln"
section "rootless: per-RUN overhead, rootless vs root"
"$here/rootless/run.sh" "$kiln"
section "build: kiln build vs buildah bud"
"$here/build/run.sh" "$kiln"
section "ci: cold build, rebuild on a fresh store from the registry cache, plain pull"
"$here/ci/run.sh" "$kiln"
