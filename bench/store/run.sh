#!/bin/bash
# Store benchmark: save and load of a ~300 MB image (~20,000 files, 40% incompressible) with kiln
# vs skopeo copy, in one run on the same data; kiln's peak RSS (/usr/bin/time -v).
#
# usage: bench/store/run.sh [KILN] [WORKDIR]
#   KILN     the kiln binary (default: build/cli/kiln)
#   WORKDIR  scratch dir (default: /tmp/kiln-bench-store); the generated image is kept there.
# env: MB (300), FILES (20000), RANDOM_PCT (40), LAYERS (3), RUNS (3: best of)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
KILN=${1:-$here/../../build/cli/kiln}
W=${2:-/tmp/kiln-bench-store}
MB=${MB:-300} FILES=${FILES:-20000} RANDOM_PCT=${RANDOM_PCT:-40} LAYERS=${LAYERS:-3} RUNS=${RUNS:-3}
mkdir -p "$W"
img="$W/big-$MB-$FILES-$RANDOM_PCT.tar"
if [ ! -f "$img" ]; then
	echo "generating $img ..." >&2
	/usr/bin/python3 "$here/gen-image.py" "$img" --mb "$MB" --files "$FILES" --layers "$LAYERS" \
		--random-pct "$RANDOM_PCT" --name bench/big:1
fi

# run_timed NAME CMD...: best wall time of RUNS runs (seconds) in $best, peak RSS (KiB) in $rss.
run_timed() {
	local name=$1; shift
	best= rss=0
	for _ in $(seq "$RUNS"); do
		"$reset"
		/usr/bin/time -f '%e %M' -o "$W/time" "$@" >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
		read -r t m <"$W/time"
		if [ -z "$best" ] || awk -v a="$t" -v b="$best" 'BEGIN{exit !(a<b)}'; then best=$t; fi
		if [ "$m" -gt "$rss" ]; then rss=$m; fi
	done
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

sync
size=$(stat -c %s "$img")
echo "image: $img ($((size / 1000000)) MB, $FILES files, ${RANDOM_PCT}% incompressible, $LAYERS layers)"
printf '%-44s %9s %12s\n' "operation" "seconds" "peak RSS"

# load: docker-archive -> local store
reset=reset_load
reset_load() { rm -rf "$W/root" "$W/skopeo-oci"; sync; }
run_timed kiln-load "$KILN" --root "$W/root" load -q -i "$img"
kl=$best; klr=$rss
printf '%-44s %9s %9s KiB\n' "kiln load -i big.tar" "$kl" "$klr"
run_timed skopeo-load skopeo copy -q "docker-archive:$img" "oci:$W/skopeo-oci:bench/big:1"
sl=$best
printf '%-44s %9s %9s KiB\n' "skopeo copy docker-archive: oci:" "$sl" "$rss"
[ -f "$img.gz" ] || pigz -1 -c "$img" >"$img.gz"
run_timed kiln-load-gz "$KILN" --root "$W/root" load -q -i "$img.gz"
klg=$best; klgr=$rss
printf '%-44s %9s %9s KiB\n' "kiln load -i big.tar.gz (pigz -1)" "$klg" "$klgr"

# save: local store -> docker-archive
"$KILN" --root "$W/root" load -q -i "$img"
reset=reset_save
reset_save() { rm -f "$W/out.tar" "$W/out-skopeo.tar"; sync; }
run_timed kiln-save "$KILN" --root "$W/root" save -o "$W/out.tar" bench/big:1
ks=$best; ksr=$rss
printf '%-44s %9s %9s KiB\n' "kiln save -o out.tar" "$ks" "$ksr"
run_timed skopeo-save skopeo copy -q "oci:$W/root:docker.io/bench/big:1" "docker-archive:$W/out-skopeo.tar:bench/big:1"
ss=$best
printf '%-44s %9s %9s KiB\n' "skopeo copy oci:(kiln store) docker-archive:" "$ss" "$rss"
run_timed kiln-save-oci "$KILN" --root "$W/root" save --format oci-archive -o "$W/out.tar" bench/big:1
printf '%-44s %9s %9s KiB\n' "kiln save --format oci-archive" "$best" "$rss"

echo
echo "load: kiln/skopeo time ratio $(ratio "$kl" "$sl")   save: kiln/skopeo time ratio $(ratio "$ks" "$ss")"
echo "kiln peak RSS: load $((klr / 1024)) MiB, load .gz $((klgr / 1024)) MiB, save $((ksr / 1024)) MiB (goal < 64 MiB)"
if [ "$klr" -ge 65536 ] || [ "$ksr" -ge 65536 ] || [ "$klgr" -ge 65536 ]; then
	echo "FAIL: peak RSS over 64 MiB" >&2
	exit 1
fi
rm -rf "$W/root" "$W/skopeo-oci" "$W/out.tar" "$W/out-skopeo.tar"
