#!/bin/bash
# buildbench.sh - build throughput and output size of `imgtool build`
# against plain zstd at the same level, over the same layer tars.
#
# usage: tools/buildbench.sh [-n RUNS] [IMAGE...]
#
# IMAGE is a test image name made by tools/mkimage.sh (default
# python-numpy), found in $IMGFS_DATA/oci.  The layers are decompressed to
# plain tars once; each run then times, on a warm page cache:
#   imgtool build   oci:(plain-tar layout) -> oci:(new layout)
#   zstd -3         each tar, one thread
#   zstd -T0 -3     each tar, all cores
# and prints the median of RUNS runs (default 3) with ratios against
# zstd.  Sizes are the compressed layer blobs (imgtool's include the
# index and trailer).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
DATA=${IMGFS_DATA:-/var/tmp/imgfs-data}
IMGTOOL=$root/build/tools/imgtool
runs=3
while getopts n: o; do
	case $o in
	n) runs=$OPTARG ;;
	*) echo "usage: $0 [-n RUNS] [IMAGE...]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || set -- python-numpy
[ -x "$IMGTOOL" ] || { echo "build first: bash tools/setup.sh" >&2; exit 1; }

work=$(mktemp -d /var/tmp/imgfs-buildbench.XXXXXX)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# layer_tars IMAGE OUTDIR: the image's layers as plain tars, bottom first.
layer_tars() {
	local dir=$DATA/oci/$1 out=$2 manifest d i=0
	manifest=$(python3 -c '
import json, sys
d = sys.argv[1]
idx = json.load(open(d + "/index.json"))
m = idx["manifests"][0]["digest"].split(":")[1]
man = json.load(open(d + "/blobs/sha256/" + m))
for l in man["layers"]:
    print(l["digest"].split(":")[1])' "$dir")
	mkdir -p "$out"
	for d in $manifest; do
		i=$((i + 1))
		case $(head -c 4 "$dir/blobs/sha256/$d" | xxd -p) in
		1f8b*) gzip -dc "$dir/blobs/sha256/$d" >"$out/layer$i.tar" ;;
		28b52ffd) zstd -qdc "$dir/blobs/sha256/$d" >"$out/layer$i.tar" ;;
		*) cp "$dir/blobs/sha256/$d" "$out/layer$i.tar" ;;
		esac
	done
}

printf '%-14s %10s %10s %8s %10s %8s %8s\n' image tool "time(s)" "MiB/s" \
	"size(MiB)" ratio "vs-zstd"
for img in "$@"; do
	[ -d "$DATA/oci/$img" ] || "$root/tools/mkimage.sh" -o "$DATA" "$img"
	tars=$work/$img-tars
	layer_tars "$img" "$tars"
	python3 "$root/tests/mkoci.py" "$work/$img-in" "$tars"/layer*.tar >/dev/null
	in_bytes=$(cat "$tars"/layer*.tar | wc -c)
	: >"$work/t.imgtool"; : >"$work/t.zstd1"; : >"$work/t.zstdT0"
	for run in $(seq 1 "$runs"); do
		rm -rf "$work/out"
		t0=$(now)
		"$IMGTOOL" build "oci:$work/$img-in" "oci:$work/out" >/dev/null
		t1=$(now)
		awk -v a="$t0" -v b="$t1" "BEGIN { print b - a }" >>"$work/t.imgtool"
		t0=$(now)
		for t in "$tars"/layer*.tar; do zstd -q -f -3 -T1 "$t" -o "$t.zst1"; done
		t1=$(now)
		awk -v a="$t0" -v b="$t1" "BEGIN { print b - a }" >>"$work/t.zstd1"
		t0=$(now)
		for t in "$tars"/layer*.tar; do zstd -q -f -3 -T0 "$t" -o "$t.zstT0"; done
		t1=$(now)
		awk -v a="$t0" -v b="$t1" "BEGIN { print b - a }" >>"$work/t.zstdT0"
	done
	out_bytes=$(python3 -c '
import json, sys
d = sys.argv[1]
idx = json.load(open(d + "/index.json"))
m = idx["manifests"][0]["digest"].split(":")[1]
man = json.load(open(d + "/blobs/sha256/" + m))
print(sum(l["size"] for l in man["layers"]))' "$work/out")
	z1_bytes=$(cat "$tars"/*.zst1 | wc -c)
	zT_bytes=$(cat "$tars"/*.zstT0 | wc -c)
	ti=$(median <"$work/t.imgtool")
	t1=$(median <"$work/t.zstd1")
	tT=$(median <"$work/t.zstdT0")
	row() { # tool seconds bytes
		awk -v img="$img" -v tool="$1" -v t="$2" -v b="$3" -v inb="$in_bytes" \
			-v tz="$tT" -v bz="$zT_bytes" 'BEGIN {
			printf "%-14s %10s %10.2f %8.1f %10.1f %8.3f %8s\n", img, tool, t,
				inb / t / 1048576, b / 1048576, b / inb,
				sprintf("%.2fx", tz / t)
		}'
	}
	row imgtool "$ti" "$out_bytes"
	row zstd-3 "$t1" "$z1_bytes"
	row zstd-T0-3 "$tT" "$zT_bytes"
	awk -v i="$out_bytes" -v z="$z1_bytes" -v n="$runs" -v inb="$in_bytes" 'BEGIN {
		printf "  input %.1f MiB of tar; imgtool output is %+.1f%% against zstd -3; median of %d runs; vs-zstd = throughput against zstd -T0 -3\n",
			inb / 1048576, 100 * (i - z) / z, n }'
done
