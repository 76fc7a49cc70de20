#!/bin/bash
# The daemon as a service sees it: logs to stderr in the foreground (one
# line at start, one at stop), exits 0 and unmounts on SIGTERM, writes
# and removes its pid file, refuses a missing, busy (already a mount),
# in-use (holds files) or dead mountpoint with a clear error, and with
# allow_other serves users other than the one who mounted.
source "$(dirname "$0")/lib.sh"
need_fuse
need_cmd zstd python3 setpriv

synthetic_image "$WORK"
SRC="oci:$WORK/out"

say "foreground: logs to stderr, SIGTERM unmounts and exits 0"
mount_fg "$SRC" "$WORK/mnt" -o "cache=$WORK/cache"
grep -qx localhost "$WORK/mnt/etc/hostname" || fail "read through the mount"
kill -TERM "$DAEMON_PID"
rc=0
wait "$DAEMON_PID" || rc=$?
[ "$rc" = 0 ] || { cat "$WORK/daemon.log" >&2; fail "daemon exited $rc on SIGTERM"; }
! mountpoint -q "$WORK/mnt" || fail "still mounted after SIGTERM"
[ "$(grep -c 'info: imgfs .* serving ' "$WORK/daemon.log")" = 1 ] ||
	fail "no single start line on stderr: $(cat "$WORK/daemon.log")"
grep -q 'info: exiting: signal SIGTERM' "$WORK/daemon.log" ||
	fail "no exit line naming SIGTERM: $(cat "$WORK/daemon.log")"
[ "$(wc -l <"$WORK/daemon.log")" = 2 ] ||
	fail "more than a start and a stop line: $(cat "$WORK/daemon.log")"

say "detached: pid file, nothing on stderr, SIGTERM unmounts"
MOUNTS+=("$WORK/mnt")
"$IMGTOOL" mount -o "cache=$WORK/cache,pidfile=$WORK/run/pid" "$SRC" \
	"$WORK/mnt" 2>"$WORK/detached.err" && fail "pid file in a missing dir"
grep -q "cannot write pid file $WORK/run/pid" "$WORK/detached.err" ||
	fail "unclear pid file error: $(cat "$WORK/detached.err")"
! mountpoint -q "$WORK/mnt" || fail "left mounted after the pid file failed"
mkdir "$WORK/run"
"$IMGTOOL" mount -o "cache=$WORK/cache,pidfile=$WORK/run/pid" "$SRC" \
	"$WORK/mnt" 2>"$WORK/detached.err" || fail "detached mount failed"
[ ! -s "$WORK/detached.err" ] || fail "detached mount printed: $(cat "$WORK/detached.err")"
pid=$(cat "$WORK/run/pid")
PIDS+=("$pid")
[ "$(readlink "/proc/$pid/exe")" = "$(readlink -f "$IMGTOOL")" ] ||
	fail "pid file names $pid, not the daemon"
grep -qx localhost "$WORK/mnt/etc/hostname" || fail "read through the daemon"
sigterm_ends "$pid" "$WORK/mnt" "$WORK/run/pid" daemon

say "refused mountpoints"
# refused PATTERN MOUNTPOINT: mounting there fails with a matching error.
refused() {
	if "$IMGTOOL" mount -o "cache=$WORK/cache" "$SRC" "$2" 2>"$WORK/refused.err"; then
		fusermount3 -u "$2"
		fail "mounted on $2, but should have been refused"
	fi
	grep -q "$1" "$WORK/refused.err" ||
		fail "unclear error for $2: $(cat "$WORK/refused.err")"
	say "refused: $(head -1 "$WORK/refused.err")"
}
refused "$WORK/none: it does not exist" "$WORK/none"
mount_fg "$SRC" "$WORK/mnt" -o "cache=$WORK/cache"
refused "mountpoint is busy, something is already mounted" "$WORK/mnt"
unmount_fg "$WORK/mnt"
mkdir -p "$WORK/full"
touch "$WORK/full/precious"
refused "mountpoint is in use, it holds files" "$WORK/full"
"$IMGTOOL" mount -o "cache=$WORK/cache,nonempty" "$SRC" "$WORK/full" ||
	fail "-o nonempty refused"
MOUNTS+=("$WORK/full")
fusermount3 -u "$WORK/full"
# A daemon killed without a supervisor leaves a dead mount behind.
mount_fg "$SRC" "$WORK/mnt" -o "cache=$WORK/cache"
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
refused "a FUSE mount whose daemon is gone" "$WORK/mnt"
umount -l "$WORK/mnt"
mount_refused "a URL of a scheme this tool does not read" "ftp://host/img"

say "allow_other: another user reads through the mount"
chmod 755 "$WORK"
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
mount_fg "$SRC" "$WORK/mnt" -o "cache=$WORK/cache"
if as_nobody cat "$WORK/mnt/etc/hostname" >/dev/null 2>&1; then
	fail "another user reads a mount without allow_other"
fi
unmount_fg "$WORK/mnt"
mount_fg "$SRC" "$WORK/mnt" -o "cache=$WORK/cache,allow_other"
[ "$(as_nobody cat "$WORK/mnt/etc/hostname")" = localhost ] ||
	fail "nobody cannot read etc/hostname with allow_other"
want=$(sha256sum "$WORK/mnt/usr/lib/libbig.so" | cut -d' ' -f1)
got=$(as_nobody sha256sum "$WORK/mnt/usr/lib/libbig.so" | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "nobody reads other bytes than root"
if as_nobody cat "$WORK/mnt/etc/shadow" >/dev/null 2>&1; then
	fail "nobody reads etc/shadow (mode 0600): permissions not checked"
fi
unmount_fg "$WORK/mnt"
say "ok"
