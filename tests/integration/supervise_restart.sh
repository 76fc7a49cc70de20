#!/bin/bash
# -o supervise keeps a mount in use working across restarts of the
# daemon: a program holding a file and a directory stream open (and its
# working directory in the mount) reads on, with the same bytes and
# inode numbers, after the daemon is killed with SIGKILL, and after it
# is replaced by a new binary on SIGHUP; a read the daemon had taken but
# not answered when killed (stalled by a server) is sent again by the
# kernel and answered by the next daemon.  SIGTERM to the supervisor and
# an unmount both end everything with status 0.
source "$(dirname "$0")/lib.sh"
source "$TESTS/integration/netlib.sh"
need_fuse
need_cmd zstd python3 pgrep nginx

synthetic_image "$WORK"
F=usr/lib/libbig.so
D=usr/share/doc

# expected MOUNT: the file's digest and size, its inode number, the
# directory's entries with their inode numbers, as holdopen.py reports.
expected() {
	python3 - "$1/$F" "$1/$D" <<'PY'
import hashlib, json, os, sys
f, d = sys.argv[1:3]
data = open(f, "rb").read()
print(json.dumps({"sha256": hashlib.sha256(data).hexdigest(),
                  "size": len(data), "ino": os.stat(f).st_ino,
                  "dir_ino": os.stat(d).st_ino,
                  "entries": sorted([e.name, e.inode()]
                                    for e in os.scandir(d))}))
PY
}
mount_fg "oci:$WORK/out" "$WORK/mnt" -o "cache=$WORK/cache0"
expected "$WORK/mnt" >"$WORK/want.json"
unmount_fg "$WORK/mnt"

# start_supervisor BINARY MOUNTPOINT SOURCE OPTIONS: sets SUP.
start_supervisor() {
	mkdir -p "$2"
	"$1" mount -f -o "supervise,$4" "$3" "$2" 2>>"$WORK/sup.log" &
	SUP=$!
	PIDS+=("$SUP")
	MOUNTS+=("$2")
	for i in $(seq 1 300); do
		mountpoint -q "$2" && [ -n "$(daemon_of "$SUP")" ] && return 0
		kill -0 "$SUP" 2>/dev/null || break
		sleep 0.1
	done
	cat "$WORK/sup.log" >&2
	fail "supervised mount on $2 did not come up"
}

daemon_of() { pgrep -P "$1" -x imgtool || true; }

# new_daemon SUP OLD: waits until SUP's daemon is another than OLD and
# serves; prints its pid.
new_daemon() {
	local d
	for i in $(seq 1 200); do
		d=$(daemon_of "$1")
		if [ -n "$d" ] && [ "$d" != "$2" ] &&
		   grep -q "daemon $d serves" "$WORK/sup.log"; then
			echo "$d"
			return 0
		fi
		sleep 0.1
	done
	cat "$WORK/sup.log" >&2
	fail "no new daemon after $2"
}

# hold N: starts holdopen.py on the mount; release N: lets it finish and
# holds its report against want.json.
hold() {
	python3 "$TESTS/holdopen.py" "$WORK/mnt/$F" "$WORK/mnt/$D" \
		"$WORK/hold$1.json" &
	HOLD=$!
	PIDS+=("$HOLD")
	for i in $(seq 1 100); do [ -e "$WORK/hold$1.json.ready" ] && return 0; sleep 0.1; done
	fail "holdopen.py did not get going"
}
release() {
	touch "$WORK/hold$1.json.go"
	timeout 60 tail --pid="$HOLD" -f /dev/null || fail "holdopen.py hangs"
	wait "$HOLD" || fail "holdopen.py failed"
	python3 - "$WORK/want.json" "$WORK/hold$1.json" <<'PY' || fail "reads after the restart differ"
import json, sys
want, got = (json.load(open(p)) for p in sys.argv[1:3])
problems = []
for k in ("ino_before", "ino_after", "ino_path"):
    if got[k] != want["ino"]:
        problems.append("%s %d, want %d" % (k, got[k], want["ino"]))
for k in ("dir_ino_before", "dir_ino_after"):
    if got[k] != want["dir_ino"]:
        problems.append("%s %d, want %d" % (k, got[k], want["dir_ino"]))
for k in ("sha256", "size", "entries"):
    if got[k] != want[k]:
        problems.append("%s differs" % k)
if got["cwd_listing"] != sorted(n for n, _ in want["entries"]):
    problems.append("listing of the working directory differs")
if not got["head_ok"]:
    problems.append("first 4 KiB differ")
if got["first_batch"] >= len(want["entries"]):
    problems.append("the first getdents read the whole directory")
print("\n".join(problems) or "same bytes, entries and inode numbers")
sys.exit(1 if problems else 0)
PY
}

# The supervisor runs a copy of imgtool, which is replaced later.
mkdir -p "$WORK/bin"
cp "$IMGTOOL" "$WORK/bin/imgtool"
start_supervisor "$WORK/bin/imgtool" "$WORK/mnt" "oci:$WORK/out" \
	"cache=$WORK/cache,pidfile=$WORK/sup.pid"
[ "$(cat "$WORK/sup.pid")" = "$SUP" ] || fail "pid file does not name the supervisor"

say "SIGKILL: the supervisor starts the daemon again, the program reads on"
hold 1
old=$(daemon_of "$SUP")
kill -9 "$old"
new=$(new_daemon "$SUP" "$old")
grep -q "daemon .*killed by signal SIGKILL; starting it again" "$WORK/sup.log" ||
	fail "restart not logged: $(cat "$WORK/sup.log")"
release 1
[ "$(stat_of "$WORK/mnt" blob_reads)" -gt 0 ] ||
	fail "the new daemon fetched nothing: the reads did not reach it"

say "SIGHUP after the binary was replaced: the new binary takes over"
hold 2
old_exe=$(stat -L -c %i "/proc/$new/exe")
cp "$IMGTOOL" "$WORK/bin/imgtool.new"
mv -f "$WORK/bin/imgtool.new" "$WORK/bin/imgtool"
kill -HUP "$SUP"
newer=$(new_daemon "$SUP" "$new")
[ "$(stat -L -c %i "/proc/$newer/exe")" = "$(stat -c %i "$WORK/bin/imgtool")" ] ||
	fail "the daemon after SIGHUP is not the new binary"
[ "$old_exe" != "$(stat -c %i "$WORK/bin/imgtool")" ] || fail "binary was not replaced"
release 2

say "SIGTERM to the supervisor: unmounted, status 0"
kill -TERM "$SUP"
rc=0
wait "$SUP" || rc=$?
[ "$rc" = 0 ] || { cat "$WORK/sup.log" >&2; fail "supervisor exited $rc"; }
! mountpoint -q "$WORK/mnt" || fail "still mounted"
[ -z "$(daemon_of "$SUP")" ] || fail "daemon left running"
[ ! -e "$WORK/sup.pid" ] || fail "pid file left behind"
grep -q "supervisor exiting: signal SIGTERM" "$WORK/sup.log" || fail "no exit line"

say "a read taken by the daemon when it was killed is answered after"
start_nginx "$WORK"
start_proxy "$NGINX_PORT"
start_supervisor "$IMGTOOL" "$WORK/mnt2" \
	"http://127.0.0.1:$PROXY_PORT/out:latest" \
	"cache=$WORK/cache2,fill=off,prefetch=off,stall=60,deadline=120"
fault stall 1
timeout 60 sha256sum "$WORK/mnt2/$F" >"$WORK/inflight.sum" &
reader=$!
PIDS+=("$reader")
for i in $(seq 1 100); do
	[ "$(proxy_count '"/blobs/" in path')" -gt 0 ] && break
	sleep 0.1
done
sleep 0.5
kill -0 "$reader" 2>/dev/null || fail "the read was not stalled"
old=$(daemon_of "$SUP")
kill -9 "$old"
new_daemon "$SUP" "$old" >/dev/null
rc=0
wait "$reader" || rc=$?
[ "$rc" = 0 ] || fail "the stalled read failed after the restart (status $rc)"
[ "$(cut -d' ' -f1 "$WORK/inflight.sum")" = \
  "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sha256"])' "$WORK/want.json")" ] ||
	fail "the stalled read returned other bytes"

say "unmounting a supervised mount ends the supervisor with status 0"
fusermount3 -u "$WORK/mnt2"
rc=0
wait "$SUP" || rc=$?
[ "$rc" = 0 ] || { cat "$WORK/sup.log" >&2; fail "supervisor exited $rc after unmount"; }

say "detached, as imgfs@.service runs it: ready when it returns"
mkdir -p "$WORK/mnt3"
MOUNTS+=("$WORK/mnt3")
"$IMGTOOL" mount -o "supervise,pidfile=$WORK/unit.pid,cache=$WORK/cache" \
	"oci:$WORK/out" "$WORK/mnt3" 2>"$WORK/unit.err" || fail "detached supervise failed"
[ ! -s "$WORK/unit.err" ] || fail "detached supervisor printed: $(cat "$WORK/unit.err")"
sup=$(cat "$WORK/unit.pid")
PIDS+=("$sup")
d=$(daemon_of "$sup")
[ -n "$d" ] || fail "pid file does not name the supervisor of a daemon"
PIDS+=("$d")
grep -qx localhost "$WORK/mnt3/etc/hostname" || fail "read through the mount"
kill -9 "$d"
for i in $(seq 1 100); do
	d2=$(daemon_of "$sup")
	[ -n "$d2" ] && [ "$d2" != "$d" ] && break
	sleep 0.1
done
[ -n "$d2" ] && [ "$d2" != "$d" ] || fail "detached supervisor did not restart the daemon"
PIDS+=("$d2")
[ "$(stat_of "$WORK/mnt3" inodes)" -gt 0 ] || fail "no answer after the restart"
sigterm_ends "$sup" "$WORK/mnt3" "$WORK/unit.pid" supervisor
say "ok"
