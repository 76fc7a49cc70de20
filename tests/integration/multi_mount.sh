#!/bin/bash
# One daemon serves several mounts: `imgtool mount SRC1 MNT1 SRC2 MNT2`
# mounts two images that share layers, with one cache where a shared
# chunk is stored once and one metrics file holding both mounts; the
# daemon goes on serving one mount after the other is unmounted, exits 0
# when the last one is, and on SIGTERM unmounts both and exits 0.
source "$(dirname "$0")/lib.sh"
need_fuse
need_cmd zstd python3

synthetic_image "$WORK"
sharing_image "$WORK"
A=$WORK/mnt-a
B=$WORK/mnt-b
M=$WORK/both.prom

# start_both [OPTIONS]: one foreground daemon for both; sets DAEMON_PID.
start_both() {
	mkdir -p "$A" "$B"
	"$IMGTOOL" mount -f -o "cache=$WORK/cache$1" "oci:$WORK/out" "$A" \
		"oci:$WORK/outB" "$B" 2>>"$WORK/daemon.log" &
	DAEMON_PID=$!
	PIDS+=("$DAEMON_PID")
	MOUNTS+=("$A" "$B")
	for i in $(seq 1 300); do
		mountpoint -q "$A" && mountpoint -q "$B" && return 0
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$WORK/daemon.log" >&2
	fail "the two mounts did not come up"
}
read_all() { find "$1" -type f -print0 | xargs -0 cat >/dev/null; }

say "two images, one daemon, one cache, one metrics file"
start_both ",metrics=$M,metrics_interval=1"
[ "$(grep -c ' serving oci:' "$WORK/daemon.log")" = 2 ] ||
	fail "not one start line per mount: $(cat "$WORK/daemon.log")"
read_all "$A"
read_all "$B"
[ "$(stat_of "$B" layer0_bytes_fetched)" = 0 ] ||
	fail "B fetched its layer shared with A"
[ "$(stat_of "$B" cache_hits)" -gt 0 ] || fail "B had no cache hit"
n_stored=$(find "$WORK/cache/chunks" -type f | wc -l)
n_a=$(stat_of "$A" chunks_fetched)
[ "$n_stored" = "$n_a" ] ||
	fail "$n_stored chunks stored, A fetched $n_a and B none new"
hits_b=$(stat_of "$B" cache_hits)
sleep 2.2
python3 "$TESTS/promcheck.py" "$M" imgfs_cache_hits_total \
	imgfs_chunk_fetch_seconds || fail "metrics of two mounts not valid"
grep -qx "imgfs_cache_hits_total{mountpoint=\"$B\"} $hits_b" "$M" ||
	fail "no cache hits of B in the metrics: $(grep cache_hits "$M")"
grep -q "^imgfs_cache_hits_total{mountpoint=\"$A\"} " "$M" ||
	fail "no series of A in the metrics"

say "unmounting one leaves the other served"
fusermount3 -u "$B"
sleep 0.3
kill -0 "$DAEMON_PID" || fail "daemon ended with one mount left"
grep -qx localhost "$A/etc/hostname" || fail "A no longer served"
unmount_fg "$A"

say "SIGTERM unmounts both and exits 0"
start_both ""
kill -TERM "$DAEMON_PID"
rc=0
wait "$DAEMON_PID" || rc=$?
[ "$rc" = 0 ] || { cat "$WORK/daemon.log" >&2; fail "daemon exited $rc"; }
! mountpoint -q "$A" && ! mountpoint -q "$B" || fail "left mounted after SIGTERM"
grep -q "exiting: signal SIGTERM" "$WORK/daemon.log" || fail "no exit line"
! grep -q "fuse:" "$WORK/daemon.log" || fail "libfuse complained: $(grep fuse: "$WORK/daemon.log")"

say "refused: supervise with several mounts, an odd number of arguments"
if "$IMGTOOL" mount -o supervise "oci:$WORK/out" "$A" "oci:$WORK/outB" "$B" \
	2>"$WORK/sup.err"; then
	fail "supervise with two mounts accepted"
fi
grep -q "supervise serves one mount" "$WORK/sup.err" ||
	fail "unclear error: $(cat "$WORK/sup.err")"
! mountpoint -q "$A" || fail "mounted anyway"
if "$IMGTOOL" mount "oci:$WORK/out" "$A" "oci:$WORK/outB" 2>"$WORK/odd.err"; then
	fail "odd number of arguments accepted"
fi
grep -q "usage: imgtool mount" "$WORK/odd.err" || fail "no usage for odd arguments"
say "ok"
