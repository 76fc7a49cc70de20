#!/bin/bash
# case.sh CASE: one failure case, from input layers to a mounted tree held
# against the case's expected.txt (grammar: tests/check_tree.py).
#
# CASE is either Cnn, a case of the shared corpus in $ROOT/../shared/cases
# (its gen.sh writes the layers; skipped loudly when the corpus is absent,
# as in a plain clone), or a name known to tests/gen_cases.py, which writes
# the layers and expected.txt itself.
#
# The layers become an OCI layout (tests/mkoci.py), imgtool build converts
# it and imgtool mount -f serves it.  An image the case says is bad must be
# refused by the build or the mount with a message, not by a crash or a
# hang; an image the case says is good must show every directive.
source "$(dirname "$0")/lib.sh"
id=${1:?usage: case.sh CASE}
NAME=case_$id
need_fuse
need_cmd python3 gzip zstd timeout

host=$WORK/host
mkdir -p "$host"
case $id in
C[0-9]*)
	dir=$ROOT/../shared/cases/$id
	[ -f "$dir/gen.sh" ] ||
		skip "the shared case corpus is absent (no $dir/gen.sh);" \
			"this test needs ../shared/cases next to the clone"
	bash "$dir/gen.sh" "$host/layers" >/dev/null || fail "gen.sh failed"
	expected=$dir/expected.txt
	;;
*)
	python3 "$TESTS/gen_cases.py" "$id" "$host/layers" ||
		fail "gen_cases.py cannot write case $id"
	expected=$host/layers/expected.txt
	;;
esac

layers=()
while read -r l; do layers+=("$host/layers/$l"); done <"$host/layers/layers"
python3 "$TESTS/mkoci.py" "$host/oci" "${layers[@]}" ||
	fail "mkoci.py cannot write the layout"
deadline=$(sed -n 's/^deadline-seconds=//p' "$expected" | head -1)
limit=${deadline:-900}
python3 "$TESTS/check_tree.py" --snapshot "$host" \
	--exclude out --exclude mnt --exclude cache >"$WORK/host.before"

# refused WHAT RC LOG: the build or the mount said no.  It must be an
# orderly exit with a message, and the case must allow an error.
refused() {
	local what=$1 rc=$2 log=$3
	[ "$rc" != 124 ] || fail "$what did not finish within $limit s"
	[ "$rc" -lt 128 ] || { cat "$log" >&2; fail "$what died of signal $((rc - 128))"; }
	grep -q . "$log" || fail "$what failed (exit $rc) without a message"
	say "$what refused the image: $(tail -n 1 "$log")"
	python3 "$TESTS/check_tree.py" "$expected" --failed ||
		{ cat "$log" >&2; fail "$what refused an image the case accepts"; }
	say "ok"
	exit 0
}

started=$(date +%s.%N)
rc=0
timeout "$limit" "$IMGTOOL" build -q "oci:$host/oci:latest" \
	"oci:$host/out:latest" 2>"$WORK/build.log" || rc=$?
[ "$rc" = 0 ] || refused "imgtool build" "$rc" "$WORK/build.log"

# Every entry prints as one line of valid JSON, whatever bytes its name
# holds (those that are not UTF-8 come back through surrogateescape).
"$IMGTOOL" index show "oci:$host/out" 2>/dev/null | python3 -c '
import json, sys
for n, line in enumerate(sys.stdin.buffer, 1):
    try:
        e = json.loads(line.decode("utf-8"))
        e["path"].encode("utf-8", "surrogateescape")
    except (ValueError, UnicodeError, KeyError) as x:
        sys.exit("index show line %d is not valid JSON: %s" % (n, x))
' || fail "imgtool index show prints bad JSON"

if ! try_mount_fg "oci:$host/out" "$host/mnt" -o "cache=$host/cache"; then
	if kill -0 "$DAEMON_PID" 2>/dev/null; then
		cat "$WORK/daemon.log" >&2
		fail "the mount did not come up in time (the daemon still runs)"
	fi
	rc=0
	wait "$DAEMON_PID" || rc=$?
	[ "$rc" != 0 ] || echo "(exited 0 without mounting)" >>"$WORK/daemon.log"
	refused "imgtool mount" "$rc" "$WORK/daemon.log"
fi
rc=0
timeout "$limit" python3 "$TESTS/check_tree.py" "$expected" \
	--mount "$host/mnt" --started "$started" --host "$host" \
	--host-before "$WORK/host.before" \
	--exclude out --exclude mnt --exclude cache || rc=$?
[ "$rc" = 0 ] || { cat "$WORK/daemon.log" >&2; fail "tree differs from $expected"; }
unmount_fg "$host/mnt"
say "ok"
