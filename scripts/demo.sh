#!/bin/sh
# The README's first command ends here: kiln's main job on an example from testdata/.
set -eu
kiln=${1:-build/cli/kiln}
cd "$(dirname "$0")/.."
"$kiln" parse --plan -f testdata/multistage/Dockerfile
