#!/bin/bash
# demo.sh - the main job, end to end, on a fresh Debian 12 machine (root):
# install and build (tools/setup.sh), build the python-numpy image from
# Debian's packages (tools/mkimage.sh, cached in IMGFS_DATA), convert it
# with `imgtool build`, mount it lazily with `imgtool mount` and a cold
# cache, run numpy chrooted into the mount, and show how much of the
# layer blobs that read.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
DATA=${IMGFS_DATA:-/var/tmp/imgfs-data}
IMGTOOL=$root/build/tools/imgtool

bash "$root/tools/setup.sh"
"$root/tools/mkimage.sh" -o "$DATA" python-numpy

work=$(mktemp -d /var/tmp/imgfs-demo.XXXXXX)
mnt=$work/mnt
cleanup() {
	mountpoint -q "$mnt" 2>/dev/null && fusermount3 -u "$mnt"
	rm -rf "$work"
}
trap cleanup EXIT

echo "== imgtool build oci:$DATA/oci/python-numpy:latest oci:$work/image"
"$IMGTOOL" build "oci:$DATA/oci/python-numpy:latest" "oci:$work/image"

echo "== imgtool mount (cold cache)"
mkdir -p "$mnt"
"$IMGTOOL" mount -o "cache=$work/cache" "oci:$work/image" "$mnt"

echo "== chroot $mnt python3 -c 'import numpy; print(numpy.arange(6).sum())'"
chroot "$mnt" python3 -c 'import numpy; print(numpy.arange(6).sum())'

read=$("$IMGTOOL" status "$mnt" | awk '$1 == "blob_bytes_read" { print $2 }')
total=$("$IMGTOOL" status "$mnt" | awk '$1 == "blobs_total_size" { print $2 }')
awk -v r="$read" -v t="$total" 'BEGIN {
	printf "read %d of %d bytes of the layer blobs (%.1f%%)\n", r, t, 100 * r / t }'
fusermount3 -u "$mnt"
echo "== unmounted"
