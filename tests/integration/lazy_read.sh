#!/bin/bash
# A cold mount that reads one small file fetches a small part of the
# blobs: the chunk of that file, not the layer.
source "$(dirname "$0")/lib.sh"
need_fuse
need_cmd zstd python3

synthetic_image "$WORK"
mount_fg "oci:$WORK/out" "$WORK/mnt" -o "cache=$WORK/cache"
[ "$(stat_of "$WORK/mnt" blob_bytes_read)" = 0 ] || fail "mount alone read chunk data"
ls -R "$WORK/mnt" >/dev/null
[ "$(stat_of "$WORK/mnt" blob_bytes_read)" = 0 ] || fail "listing read chunk data"
grep -qx localhost "$WORK/mnt/etc/hostname" || fail "wrong content"
read=$(stat_of "$WORK/mnt" blob_bytes_read)
total=$(stat_of "$WORK/mnt" blobs_total_size)
say "one small file: $read of $total blob bytes read"
[ "$read" -gt 0 ] || fail "no bytes read from blobs for a cold read"
[ $((read * 20)) -lt "$total" ] || fail "read $read of $total bytes for one small file"
# A 64 KiB read inside the 5 MiB library fetches about one chunk.
dd if="$WORK/mnt/usr/lib/libbig.so" of=/dev/null bs=64k skip=40 count=1 status=none
read2=$(stat_of "$WORK/mnt" blob_bytes_read)
say "64 KiB at 2.5 MiB of a 5 MiB file: $((read2 - read)) more bytes"
[ $((read2 - read)) -le $((4 << 20)) ] || fail "read $((read2 - read)) bytes for 64 KiB"
unmount_fg "$WORK/mnt"
say "ok"
