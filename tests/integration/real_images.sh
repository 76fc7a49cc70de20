#!/bin/bash
# The real Debian images (debian-minbase, python-numpy), built from Debian's
# packages by tools/mkimage.sh, converted and mounted: the tree through the
# mount equals umoci's unpack of the original image in every path, type,
# mode, owner, size, mtime, link, xattr, device and content; a stock
# client unpacks the converted image to the same tree; and python runs
# numpy from the lazily mounted image.
source "$(dirname "$0")/lib.sh"
need_fuse
need_cmd zstd skopeo umoci python3 debootstrap

build_test_images debian-minbase python-numpy

for img in debian-minbase python-numpy; do
	say "$img: convert"
	"$IMGTOOL" build -q "oci:$DATA/oci/$img:latest" "oci:$WORK/$img" ||
		fail "$img: imgtool build failed"
	"$IMGTOOL" index verify "oci:$WORK/$img" >/dev/null || fail "$img: verify"
	say "$img: umoci unpack of the original"
	umoci raw unpack --image "$DATA/oci/$img:latest" "$WORK/want-$img" \
		>/dev/null 2>&1 || fail "$img: umoci cannot unpack the original"
	say "$img: compare through the mount"
	mount_fg "oci:$WORK/$img" "$WORK/mnt-$img" -o "cache=$WORK/cache-$img"
	python3 "$TESTS/treecmp.py" --random-reads 500 "$WORK/want-$img" \
		"$WORK/mnt-$img" || fail "$img: mounted tree differs from umoci's"
	unmount_fg "$WORK/mnt-$img"
done

say "python-numpy: few descriptors (hard limit 400): the table of open cache files cycles"
# 400 descriptors leave (400 - 256) / 2 = 72 for the table, far fewer
# than the image has chunk files.
printf '#!/bin/sh\nulimit -n 400 && exec "%s" "$@"\n' "$IMGTOOL" \
	>"$WORK/imgtool-fewfds"
chmod +x "$WORK/imgtool-fewfds"
IMGTOOL=$WORK/imgtool-fewfds mount_fg "oci:$WORK/python-numpy" \
	"$WORK/mnt-fds" -o "cache=$WORK/cache-python-numpy"
python3 "$TESTS/treecmp.py" --random-reads 500 "$WORK/want-python-numpy" \
	"$WORK/mnt-fds" || fail "tree differs with few descriptors"
fds=$(stat_of "$WORK/mnt-fds" cache_fds)
fds_max=$(stat_of "$WORK/mnt-fds" cache_fds_max)
hits=$(stat_of "$WORK/mnt-fds" cache_hits)
say "open cache files: $fds of at most $fds_max, $hits cache hits"
[ "$fds_max" = 72 ] || fail "table of $fds_max descriptors, not 72"
[ "$fds" -le 72 ] && [ "$fds" -gt 0 ] || fail "$fds descriptors held"
unmount_fg "$WORK/mnt-fds"
printf '#!/bin/sh\nulimit -n 32 && exec "%s" "$@"\n' "$IMGTOOL" \
	>"$WORK/imgtool-32fds"
chmod +x "$WORK/imgtool-32fds"
IMGTOOL=$WORK/imgtool-32fds mount_refused "the daemon needs at least 64" \
	"oci:$WORK/python-numpy" -o "cache=$WORK/cache-python-numpy"

say "python-numpy: a stock client unpacks the converted image alike"
umoci_unpack "$WORK/python-numpy" "$WORK/stock"
python3 "$TESTS/treecmp.py" "$WORK/want-python-numpy" "$WORK/stock" ||
	fail "skopeo+umoci unpack of the converted image differs"
rm -rf "$WORK/stock" "$WORK/want-debian-minbase"

say "python-numpy: numpy from a cold lazy mount"
mount_fg "oci:$WORK/python-numpy" "$WORK/mnt" -o "cache=$WORK/cache-cold"
import_numpy "$WORK/mnt"
read=$(stat_of "$WORK/mnt" blob_bytes_read)
total=$(stat_of "$WORK/mnt" blobs_total_size)
say "import numpy read $read of $total blob bytes"
[ $((read * 2)) -lt "$total" ] || fail "import numpy read $read of $total bytes"
unmount_fg "$WORK/mnt"
say "ok"
