#!/bin/bash
# mount(8) mounts an image the standard ways: `mount -t fuse.imgfs` and
# an fstab line (with options only fstab knows) go through Debian's
# mount.fuse3 to our `imgfs` helper, which must be on the default PATH:
# here a private mount namespace puts the built one in /usr/local/bin.
# umount unmounts, and the daemon exits.
source "$(dirname "$0")/lib.sh"
need_fuse
need_cmd zstd python3 findmnt
[ -x /sbin/mount.fuse3 ] || skip "mount.fuse3 missing (fuse3 package)"
private_mount_ns "$@"

HELPER=$BUILD/tools/imgfs
[ -x "$HELPER" ] || fail "helper not built at $HELPER"
mkdir -p "$WORK/bin"
ln -s "$HELPER" "$WORK/bin/imgfs"
mount --bind "$WORK/bin" /usr/local/bin

synthetic_image "$WORK"
mkdir -p "$WORK/mnt"
MOUNTS+=("$WORK/mnt")

# check_mounted: the image is there under the type fuse.imgfs, served by
# the daemon of the pid file; umount ends the daemon.
check_mounted_then_umount() {
	local pid
	mountpoint -q "$WORK/mnt" || fail "not mounted"
	[ "$(findmnt -n -o FSTYPE "$WORK/mnt")" = fuse.imgfs ] ||
		fail "type is $(findmnt -n -o FSTYPE "$WORK/mnt")"
	grep -qx localhost "$WORK/mnt/etc/hostname" || fail "read through the mount"
	pid=$(cat "$WORK/pid")
	PIDS+=("$pid")
	umount "$WORK/mnt" || fail "umount failed"
	for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	! kill -0 "$pid" 2>/dev/null || fail "daemon still runs after umount"
	! mountpoint -q "$WORK/mnt" || fail "still mounted after umount"
}

say "mount -t fuse.imgfs"
mount -t fuse.imgfs "oci:$WORK/out:latest" "$WORK/mnt" \
	-o "allow_other,cache=$WORK/cache,pidfile=$WORK/pid" ||
	fail "mount -t fuse.imgfs failed"
check_mounted_then_umount

say "an fstab line"
cat >"$WORK/fstab" <<FSTAB
# SOURCE  MOUNTPOINT  TYPE  OPTIONS  DUMP  PASS
oci:$WORK/out:latest $WORK/mnt fuse.imgfs ro,nofail,_netdev,x-systemd.after=network-online.target,allow_other,cache=$WORK/cache,pidfile=$WORK/pid 0 0
FSTAB
mount -T "$WORK/fstab" "$WORK/mnt" || fail "mount from the fstab line failed"
check_mounted_then_umount

say "a bad option fails mount(8) with our message"
if mount -t fuse.imgfs "oci:$WORK/out:latest" "$WORK/mnt" \
	-o "cache_max=lots" 2>"$WORK/bad.err"; then
	umount "$WORK/mnt"
	fail "a bad option was accepted"
fi
grep -q "bad size in -o cache_max=lots" "$WORK/bad.err" ||
	fail "unclear error: $(cat "$WORK/bad.err")"
say "ok"
