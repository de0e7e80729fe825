#!/bin/bash
# Layer creation benchmark: kiln (gzip, zstd) vs tar | gzip -6, tar | pigz -p2, tar | zstd -3 -T2
# on the same ~300 MB tree of ~20,000 files (40% of the bytes incompressible), in one run; prints
# seconds, sizes, ratios and kiln's peak RSS (/usr/bin/time -v).
#
# usage: bench/layers/run.sh [BUILD_DIR] [WORKDIR]
#   BUILD_DIR  a kiln build dir holding tests/layer/layer-tool (default: build)
#   WORKDIR    scratch dir (default: /var/tmp/kiln-bench-layers); the tree is made once and kept
# env: MB (300), FILES (20000), RANDOM_PCT (40), RUNS (3: best of)
#
# kiln's side runs layer-tool create (the same code path as a build step's layer: tar -> diff_id
# -> compression -> digest -> store blob writer with fsync), not a kiln CLI flag; the "to a file"
# rows run the same pipeline into a plain file without the store's fsync, like the shell
# pipelines.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:-$here/../../build}
W=${2:-/var/tmp/kiln-bench-layers}
MB=${MB:-300} FILES=${FILES:-20000} RANDOM_PCT=${RANDOM_PCT:-40} RUNS=${RUNS:-3}
TOOL=$BUILD/tests/layer/layer-tool
[ -x "$TOOL" ] || { echo "bench: $TOOL missing (build the tree first)" >&2; exit 1; }
for t in pigz zstd gzip /usr/bin/time; do
	command -v "$t" >/dev/null || { echo "bench: $t missing" >&2; exit 1; }
done

tree=$W/tree-$MB-$FILES-$RANDOM_PCT
if [ ! -d "$tree" ]; then
	echo "bench: making $tree (once)"
	/usr/bin/python3 "$here/gen-tree.py" "$tree.tmp" --mb "$MB" --files "$FILES" --random-pct "$RANDOM_PCT"
	mv "$tree.tmp" "$tree"
fi
out=$W/out
rm -rf "$out"
mkdir -p "$out"
files=$(find "$tree" -type f | wc -l)
tarsize=$(tar --sort=name -C "$tree" -cf - . | wc -c)
echo "bench: tree $tree: $files files, tar $((tarsize / 1048576)) MiB; $(nproc) CPUs; best of $RUNS"

# best VAR CMD...: runs CMD $RUNS times; VAR gets the best wall time and VAR_cpu the CPU time
# (user + sys, children included) of that run. CPU time is the fairer figure on a loaded box.
best() {
	local var=$1 b= c= line
	shift
	for _ in $(seq "$RUNS"); do
		line=$(/usr/bin/time -f '%e %U %S' "$@" 2>&1 >/dev/null | tail -1)
		read -r e u s <<<"$line"
		if [ -z "$b" ] || awk -v e="$e" -v b="$b" 'BEGIN { exit !(e < b) }'; then
			b=$e
			c=$(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }')
		fi
	done
	printf -v "$var" '%.2f' "$b"
	printf -v "${var}_cpu" '%.2f' "$c"
}

export tree out TOOL
shell_tar='tar --sort=name -C "$tree" -cf - . | cat >/dev/null'
shell_gzip='tar --sort=name -C "$tree" -cf - . | gzip -6 >"$out/gzip.tar.gz"'
shell_pigz='tar --sort=name -C "$tree" -cf - . | pigz -6 -p2 >"$out/pigz.tar.gz"'
shell_zstd='tar --sort=name -C "$tree" -cf - . | zstd -q -3 -T2 >"$out/zstd.tar.zst"'
kiln_layer='rm -rf "$out/store-$0" && "$TOOL" create "$out/store-$0" "$tree" -c "$0" >"$out/kiln-$0.out"'
kiln_file='"$TOOL" create --to-file "$out/kiln-file-$0" "$tree" -c "$0" >/dev/null' 
rss() {
	rm -rf "$out/store-$1"
	/usr/bin/time -v "$TOOL" create "$out/store-$1" "$tree" -c "$1" 2>&1 >/dev/null |
		awk '/Maximum resident set size/ {printf "%.1f", $6 / 1024}'
}
size_of() { stat -c %s "$1"; }
kiln_size() { awk '$1 == "size" {print $2}' "$out/kiln-$1.out"; }

tar --sort=name -C "$tree" -cf - . | cat >/dev/null # warm the page cache
best t_tar bash -c "$shell_tar"
best t_gzip bash -c "$shell_gzip"
best t_pigz bash -c "$shell_pigz"
best t_zstd bash -c "$shell_zstd"
best t_kgz bash -c "$kiln_layer" gzip
best t_kzst bash -c "$kiln_layer" zstd
best t_kgzf bash -c "$kiln_file" gzip
best t_kzstf bash -c "$kiln_file" zstd
rss_gz=$(rss gzip)
rss_zst=$(rss zstd)

row() {
	printf '%-28s %8s s %8s s %10.1f MiB %7.3f %s\n' "$1" "$2" "$3" \
		"$(awk -v n="$4" 'BEGIN { print n / 1048576 }')" \
		"$(awk -v n="$4" -v t="$tarsize" 'BEGIN { print n / t }')" "${5:-}"
}
echo
printf '%-28s %10s %10s %14s %7s %s\n' "method" "wall" "cpu" "size" "ratio" "peak RSS"
row "tar -c (no compression)" "$t_tar" "$t_tar_cpu" "$tarsize"
row "tar -c | gzip -6" "$t_gzip" "$t_gzip_cpu" "$(size_of "$out/gzip.tar.gz")"
row "tar -c | pigz -6 -p2" "$t_pigz" "$t_pigz_cpu" "$(size_of "$out/pigz.tar.gz")"
row "kiln layer gzip (level 6)" "$t_kgz" "$t_kgz_cpu" "$(kiln_size gzip)" "${rss_gz} MiB"
row "  same, to a file (no store)" "$t_kgzf" "$t_kgzf_cpu" "$(size_of "$out/kiln-file-gzip")"
row "tar -c | zstd -3 -T2" "$t_zstd" "$t_zstd_cpu" "$(size_of "$out/zstd.tar.zst")"
row "kiln layer zstd (level 3)" "$t_kzst" "$t_kzst_cpu" "$(kiln_size zstd)" "${rss_zst} MiB"
row "  same, to a file (no store)" "$t_kzstf" "$t_kzstf_cpu" "$(size_of "$out/kiln-file-zstd")"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$out"
