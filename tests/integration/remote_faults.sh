#!/bin/bash
# The fetcher against servers that misbehave: a proxy in front of a
# token-auth registry ignores Range, refuses multi-range requests, sends
# 429 and 503 storms, stalls, resets, cuts bodies short, corrupts bytes,
# redirects to presigned storage on another host name, and is killed in
# the middle of a read.  Each step checks what a reader of the mount sees:
# the right bytes, or EIO within the deadline; never a wrong byte.  After
# every failure the daemon goes on serving.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netlib.sh"
need_fuse
need_net_cmds
need_cmd umoci zstd

DEADLINE=4
synthetic_image "$WORK"
umoci_unpack "$WORK/oci" "$WORK/expected"
start_registry token token
push_image "$WORK/out" "127.0.0.1:$REG_PORT/syn:v1" \
	--dest-creds "$REG_USER:$REG_PASS"
start_proxy "$REG_PORT"
authfile "$WORK/auth.json" "127.0.0.1:$PROXY_PORT"
SRC=docker://127.0.0.1:$PROXY_PORT/syn:v1
BIG=usr/lib/libbig.so
MID=usr/lib/libmid.so
n=0

# remount: a new mount with an empty cache, so that every read fetches.
remount() {
	if mountpoint -q "$WORK/mnt"; then
		unmount_fg "$WORK/mnt"
	fi
	n=$((n + 1))
	mount_fg "$SRC" "$WORK/mnt" -o "fill=off,cache=$WORK/cache$n,authfile=$WORK/auth.json,deadline=$DEADLINE,stall=1"
}

# expect ok|eio FILE [ARGS]: what a reader of FILE in the mount must see.
expect() {
	local want=$1 f=$2 rc=0
	shift 2
	python3 "$TESTS/readcheck.py" --expect "$want" \
		--within $((DEADLINE + 2)) "$@" \
		"$WORK/expected/$f" "$WORK/mnt/$f" >&2 || rc=$?
	[ "$rc" != 3 ] || fail "wrong bytes returned from $f"
	[ "$rc" = 0 ] || fail "$f: the reader did not see $want"
}

say "stalled body, twice"
remount
fault stall 2
expect ok "$BIG"

say "Range ignored: 200 with the whole blob"
remount
fault ignore-range
expect ok "$BIG" --offset 3000000 --length 65536
expect ok "$MID"
[ "$(stat_of "$WORK/mnt" http_range_ignored)" -gt 0 ] ||
	fail "range-ignoring answers were not noticed"

say "multi-range refused: whole tree"
remount
fault no-multirange
python3 "$TESTS/treecmp.py" "$WORK/expected" "$WORK/mnt" ||
	fail "tree differs behind a server refusing multi-range"
[ "$(proxy_count 'status == 400')" = 0 ] || fail "a multi-range request was sent"

say "429 storm of 6 answers, then service"
remount
fault status 6 429
expect ok "$MID"
[ "$(stat_of "$WORK/mnt" http_retries)" -ge 6 ] || fail "429s were not retried"

say "503 until the deadline: EIO, then the same file once the server is back"
remount
fault status -1 503
expect eio "$MID"
fault pass
sleep 2.5 # FS_FAIL_HOLD_MS: a failed chunk fails at once for 2 s
expect ok "$MID"
grep -q "cannot fetch chunk" "$WORK/daemon.log" ||
	fail "the EIO was not logged"

say "connection reset in the body, three times"
remount
fault reset 3
expect ok "$BIG"

say "body cut short, twice"
remount
fault short 2
expect ok "$MID"

say "corrupt bytes from the server: EIO, and good bytes once fixed"
remount
fault corrupt
expect eio "$MID"
expect eio "$BIG" --offset 4000000 --length 4096
fault pass
sleep 2.5
expect ok "$MID"
expect ok "$BIG"

say "206 for another range than asked, said honestly or hidden"
for mode in other-range shift; do
	remount
	fault $mode
	expect eio "$MID"
	fault pass
done

say "an index that does not match its digest: the mount is refused"
fault corrupt -1 ranges
mount_refused 'index.*digest' "$SRC" \
	-o "fill=off,cache=$WORK/cache-bad,authfile=$WORK/auth.json"
fault pass

say "redirect to presigned storage on another host name"
remount
fault redirect
python3 "$TESTS/treecmp.py" "$WORK/expected" "$WORK/mnt" ||
	fail "tree differs through redirects"
[ "$(proxy_count 'listener == "storage" and status in (200, 206)')" -gt 0 ] ||
	fail "no blob was read from the storage host"
[ "$(proxy_count 'listener == "storage" and status >= 400')" = 0 ] ||
	fail "storage refused a request (credentials sent to it, or HEAD)"
fault pass

say "server killed in the middle of a read and started again"
remount
fault slow -1 1000000
python3 "$TESTS/readcheck.py" "$WORK/expected/$BIG" "$WORK/mnt/$BIG" \
	>"$WORK/slow.out" 2>&1 &
reader=$!
sleep 1
kill -9 "$PROXY_PID"
wait "$PROXY_PID" 2>/dev/null || true
sleep 1
start_proxy "$REG_PORT" "$PROXY_PORT"
rc=0
wait "$reader" || rc=$?
cat "$WORK/slow.out" >&2
[ "$rc" = 0 ] || fail "the read did not survive a server restart"

say "server killed and not started again: EIO within the deadline"
remount
kill -9 "$PROXY_PID"
wait "$PROXY_PID" 2>/dev/null || true
expect eio "$MID"
start_proxy "$REG_PORT" "$PROXY_PORT"
sleep 2.5
expect ok "$MID"
unmount_fg "$WORK/mnt"
say "ok"
