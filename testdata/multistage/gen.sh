#!/bin/sh
# Generates the "build output" of the multistage example into $1.
set -e
out=$1
mkdir -p "$out/bin" "$out/share"
cat >"$out/bin/hello" <<'SCRIPT'
#!/bin/sh
echo "hello, ${1:-world} from $(id -un)"
SCRIPT
chmod 755 "$out/bin/hello"
i=1
while [ $i -le 10 ]; do
	echo "data $i" >"$out/share/data-$i.txt"
	i=$((i + 1))
done
echo "built" >"$out/BUILD_INFO"
