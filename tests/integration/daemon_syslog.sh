#!/bin/bash
# Detached, the daemon logs to syslog and to nothing else: one info line
# at start and one at stop, debug lines only with -o debug.  A private
# mount namespace puts a tmpfs on /dev with a stand-in logger on
# /dev/log (tests/net/syslogd.py), so the test sees exactly what the
# daemon sent.
source "$(dirname "$0")/lib.sh"
need_fuse
need_cmd zstd python3
private_mount_ns "$@"

mount -t tmpfs -o mode=755 imgfs-test-dev /dev
mknod -m 666 /dev/fuse c 10 229
mknod -m 666 /dev/null c 1 3
mknod -m 666 /dev/zero c 1 5
mknod -m 666 /dev/urandom c 1 9
ln -s /proc/self/fd /dev/fd
python3 "$TESTS/net/syslogd.py" /dev/log "$WORK/syslog.txt" &
PIDS+=($!)
for i in $(seq 1 50); do [ -e "$WORK/syslog.txt.ready" ] && break; sleep 0.1; done
[ -S /dev/log ] || fail "stand-in logger did not start"

synthetic_image "$WORK"
mkdir -p "$WORK/mnt"
MOUNTS+=("$WORK/mnt")

# run_detached OPTIONS: mounts detached, reads, stops the daemon with
# SIGTERM, and waits for it; the mount must have printed nothing.
run_detached() {
	local pid
	"$IMGTOOL" mount -o "cache=$WORK/cache,pidfile=$WORK/pid$1" \
		"oci:$WORK/out" "$WORK/mnt" 2>"$WORK/stderr" ||
		fail "detached mount failed: $(cat "$WORK/stderr")"
	[ ! -s "$WORK/stderr" ] || fail "detached mount printed: $(cat "$WORK/stderr")"
	pid=$(cat "$WORK/pid")
	PIDS+=("$pid")
	cat "$WORK/mnt/usr/lib/libbig.so" >/dev/null
	ls "$WORK/mnt/no-such-dir" 2>/dev/null || true
	kill -TERM "$pid"
	for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	! mountpoint -q "$WORK/mnt" || fail "still mounted after SIGTERM"
	sleep 0.3 # the logger's last datagram
	DPID=$pid
}

say "start and stop lines in syslog, nothing else"
run_detached ""
mine=$(grep "imgfs\[$DPID\]: " "$WORK/syslog.txt" || true)
[ "$(echo "$mine" | grep -c 'imgfs 0.1.0 serving oci:')" = 1 ] ||
	fail "no start line in syslog: $(cat "$WORK/syslog.txt")"
echo "$mine" | grep -q '^<30>.*exiting: signal SIGTERM$' ||
	fail "no info (daemon facility) stop line: $(cat "$WORK/syslog.txt")"
[ "$(echo "$mine" | wc -l)" = 2 ] || fail "more than two lines: $mine"

say "-o debug: requests traced at debug level"
run_detached ",debug"
mine=$(grep "imgfs\[$DPID\]: " "$WORK/syslog.txt" || true)
echo "$mine" | grep -q '^<31>.*lookup 1 .no-such-dir.$' ||
	fail "no debug line for the lookup: $mine"
say "ok"
