#!/bin/bash
# The chunk cache on disk: after the daemon is killed with SIGKILL and
# started again, chunks already fetched are served without a request; a
# cache file torn or damaged while the daemon was down is never served
# (it is fetched again); a temp file left by the dead daemon is swept.
# With -o cache_max= the cache is kept under its cap, whole chunks at a
# time, never evicting the chunks of a file that is open.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netlib.sh"
need_fuse
need_net_cmds
need_cmd umoci zstd

synthetic_image "$WORK"
umoci_unpack "$WORK/oci" "$WORK/expected"
start_registry open none
push_image "$WORK/out" "127.0.0.1:$REG_PORT/syn:v1"
SRC=docker://127.0.0.1:$REG_PORT/syn:v1
C=$WORK/cache
FILES=(usr/lib/libbig.so usr/lib/libmid.so usr/bin/perl etc/hostname)

read_files() {
	local f
	for f in "${FILES[@]}"; do
		cmp "$WORK/expected/$f" "$WORK/mnt/$f" || fail "$f differs ($1)"
	done
}

say "first mount: fetch some files"
mount_fg "$SRC" "$WORK/mnt" -o "fill=off,readahead=off,cache=$C"
read_files "first mount"
fetched=$(stat_of "$WORK/mnt" chunks_fetched)
[ "$fetched" -gt 0 ] || fail "nothing was fetched"

say "SIGKILL, then a new daemon on the same cache"
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
fusermount3 -u "$WORK/mnt" 2>/dev/null || umount -l "$WORK/mnt"
# What a daemon killed while writing leaves behind.
dead=$(sh -c 'echo $$')
echo partial >"$C/tmp/$dead.$dead"
mount_fg "$SRC" "$WORK/mnt" -o "fill=off,readahead=off,cache=$C"
read_files "after SIGKILL"
[ "$(stat_of "$WORK/mnt" blob_reads)" = 0 ] ||
	fail "cached chunks were fetched again after a restart"
# Manifest and config only: the indexes are kept in the cache too.
req=$(stat_of "$WORK/mnt" http_requests)
say "restarted mount: $req requests, no chunk fetched"
[ "$req" -le 2 ] || fail "restarted mount made $req requests"
[ ! -e "$C/tmp/$dead.$dead" ] || fail "the dead daemon's temp file is still there"
unmount_fg "$WORK/mnt"

say "torn and damaged cache files are fetched again, never served"
mapfile -t files < <(find "$C/chunks" -type f -size +8k | sort | head -2)
[ ${#files[@]} = 2 ] || fail "expected cached chunks in $C/chunks"
truncate -s $(($(stat -c %s "${files[0]}") / 2)) "${files[0]}"
printf 'X' | dd of="${files[1]}" bs=1 seek=100 conv=notrunc status=none
mount_fg "$SRC" "$WORK/mnt" -o "fill=off,readahead=off,cache=$C"
read_files "after damage"
refetched=$(stat_of "$WORK/mnt" chunks_fetched)
say "$refetched chunks fetched again"
[ "$refetched" = 2 ] || fail "$refetched chunks fetched again, expected the 2 damaged ones"
grep -q 'removing corrupt cache file' "$WORK/daemon.log" ||
	fail "the damaged files were not reported"
unmount_fg "$WORK/mnt"

say "cache_max: a 3 MiB cap while the whole tree is read"
CAP=$((3 << 20))
mount_fg "$SRC" "$WORK/mnt" -o "fill=off,readahead=off,cache=$WORK/capped,cache_max=3M"
# Hold the 5 MiB library open: its chunks may not go, even over the cap.
exec 7<"$WORK/mnt/usr/lib/libbig.so"
cat <&7 >/dev/null
python3 "$TESTS/treecmp.py" "$WORK/expected" "$WORK/mnt" ||
	fail "tree differs under a cache cap"
before=$(stat_of "$WORK/mnt" blob_reads)
cmp "$WORK/expected/usr/lib/libbig.so" "$WORK/mnt/usr/lib/libbig.so" ||
	fail "libbig.so differs"
[ "$(stat_of "$WORK/mnt" blob_reads)" = "$before" ] ||
	fail "chunks of an open file were evicted"
exec 7<&-
evicted=$(stat_of "$WORK/mnt" cache_evicted_bytes)
[ "$evicted" -gt 0 ] || fail "nothing was evicted"
# Once the file is closed its chunks may go too: reading the tree again
# refetches what was evicted, and the rounds this sets off end under the
# cap.
python3 "$TESTS/treecmp.py" "$WORK/expected" "$WORK/mnt" ||
	fail "tree differs after evictions"
for i in $(seq 1 50); do
	size=$(find "$WORK/capped/chunks" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
	[ "$size" -le "$CAP" ] && break
	sleep 0.1
done
say "capped cache: $size bytes on disk, $evicted bytes evicted"
[ "$size" -le "$CAP" ] || fail "cache holds $size bytes, over the $CAP cap"
unmount_fg "$WORK/mnt"

say "fill=on under a cap smaller than the image: no fill, with a warning"
mount_fg "$SRC" "$WORK/mnt" -o "fill=on,cache=$WORK/capped,cache_max=3M"
[ "$(stat_of "$WORK/mnt" prefetch_fill_chunks)" = 0 ] ||
	fail "a fill was planned that cannot fit the cap"
grep -q "no fill: the image's .* bytes do not fit cache_max" "$WORK/daemon.log" ||
	fail "no warning about the skipped fill"
unmount_fg "$WORK/mnt"
say "ok"
