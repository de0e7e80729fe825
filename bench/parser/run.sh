#!/bin/sh
# Parser benchmark: generates a 20,000-line Dockerfile (500 stages, ARGs, ENV, COPY --from, RUN)
# and times `kiln parse --plan` on it. Also times 10,000 stages to show there is no quadratic
# behaviour. Usage: bench/parser/run.sh [KILN]   (default: build/cli/kiln)
# Uses hyperfine when installed, else a loop timed with date +%s%N.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
kiln=${1:-${KILN:-$here/../../build/cli/kiln}}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

sh "$here/gen.sh" 20000 500 >"$tmp/Dockerfile"
sh "$here/gen.sh" 60000 10000 >"$tmp/Dockerfile.10k"
echo "generated: $(wc -l <"$tmp/Dockerfile") lines, $(grep -c '^FROM' "$tmp/Dockerfile") stages;" \
	"$(wc -l <"$tmp/Dockerfile.10k") lines, $(grep -c '^FROM' "$tmp/Dockerfile.10k") stages"
"$kiln" parse --plan -f "$tmp/Dockerfile" >/dev/null
"$kiln" parse --plan -f "$tmp/Dockerfile.10k" >/dev/null

if command -v hyperfine >/dev/null 2>&1; then
	hyperfine -N --warmup 3 --runs 20 \
		"$kiln parse --plan -f $tmp/Dockerfile" \
		"$kiln parse --plan -f $tmp/Dockerfile.10k"
else
	for f in Dockerfile Dockerfile.10k; do
		runs=20
		start=$(date +%s%N)
		i=0
		while [ $i -lt $runs ]; do
			"$kiln" parse --plan -f "$tmp/$f" >/dev/null
			i=$((i + 1))
		done
		end=$(date +%s%N)
		echo "$f: mean $(((end - start) / runs / 1000)) us over $runs runs"
	done
fi
