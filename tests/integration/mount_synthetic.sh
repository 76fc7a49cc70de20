#!/bin/bash
# Mounting the converted synthetic image shows exactly the tree umoci
# unpacks from the original: types, modes, owners, times, xattrs, links,
# devices and contents, plus random reads; the mount is read-only,
# inode numbers stay the same across mounts, and the daemon exits 0.
source "$(dirname "$0")/lib.sh"
need_fuse
need_cmd zstd skopeo umoci python3

synthetic_image "$WORK"
umoci_unpack "$WORK/oci" "$WORK/want"

say "tree through the mount equals umoci's unpack"
mount_fg "oci:$WORK/out" "$WORK/mnt" -o "cache=$WORK/cache"
python3 "$TESTS/treecmp.py" --random-reads 300 "$WORK/want" "$WORK/mnt" ||
	fail "mounted tree differs from umoci's"

say "read-only, errors and statfs"
if echo x 2>/dev/null >"$WORK/mnt/etc/hostname"; then
	fail "write to a read-only mount succeeded"
fi
if touch "$WORK/mnt/newfile" 2>/dev/null; then fail "create succeeded"; fi
[ ! -e "$WORK/mnt/no/such/file" ] || fail "missing path exists"
files=$(stat -f -c %c "$WORK/mnt")
[ "$files" -gt 300 ] || fail "statfs reports $files inodes"
getfattr -n user.comment --only-values "$WORK/mnt/var/tmp/user-xattr" 2>/dev/null |
	grep -qx hello || fail "xattr user.comment not readable"
ino1=$(stat -c %i "$WORK/mnt/usr/bin/perl" "$WORK/mnt/srv/keep")
[ "$(stat -c %i "$WORK/mnt/usr/bin/perl")" = "$(stat -c %i "$WORK/mnt/usr/bin/perl5.36")" ] ||
	fail "hard links do not share an inode"
[ "$(stat -c %F "$WORK/mnt/var/null")" = "character special file" ] || fail "char device type"
[ "$(stat -c %t:%T "$WORK/mnt/var/sda")" = "8:0" ] || fail "block device numbers"
[ "$(stat -c %F "$WORK/mnt/var/fifo")" = "fifo" ] || fail "fifo type"
ls -la "$WORK/mnt/usr/share/doc" | grep -q f299.txt || fail "readdir misses entries"
unmount_fg "$WORK/mnt"

say "inode numbers are stable across mounts (cache kept)"
mount_fg "oci:$WORK/out" "$WORK/mnt" -o "cache=$WORK/cache"
ino2=$(stat -c %i "$WORK/mnt/usr/bin/perl" "$WORK/mnt/srv/keep")
[ "$ino1" = "$ino2" ] || fail "inode numbers changed: $ino1 vs $ino2"
[ "$(stat_of "$WORK/mnt" blob_bytes_read)" = 0 ] || fail "fresh mount read blobs"
cmp "$WORK/want/usr/lib/libbig.so" "$WORK/mnt/usr/lib/libbig.so" ||
	fail "content from the cache differs"
[ "$(stat_of "$WORK/mnt" blob_bytes_read)" = 0 ] ||
	fail "cached chunks were fetched again"
unmount_fg "$WORK/mnt"

say "imgtool mount without -f returns once the mount is ready"
mkdir -p "$WORK/mnt2"
MOUNTS+=("$WORK/mnt2")
"$IMGTOOL" mount -o "cache=$WORK/cache2" "oci:$WORK/out" "$WORK/mnt2" ||
	fail "imgtool mount failed"
mountpoint -q "$WORK/mnt2" || fail "not mounted when imgtool mount returned"
cat "$WORK/mnt2/etc/hostname" | grep -qx localhost || fail "read through detached daemon"
fusermount3 -u "$WORK/mnt2"
say "ok"
