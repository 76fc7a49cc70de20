# lib.sh - sourced by the integration tests: paths, skip/fail, and a trap
# that unmounts and kills whatever the test started, even when it fails.
set -euo pipefail

TESTS=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=$(cd "$TESTS/.." && pwd)
BUILD=${IMGFS_BUILD:-$ROOT/build}
IMGTOOL=$BUILD/tools/imgtool
DATA=${IMGFS_DATA:-/var/tmp/imgfs-data}
NAME=$(basename "$0" .sh)

skip() { echo "SKIP $NAME: $*" >&2; exit 77; }
fail() { echo "FAIL $NAME: $*" >&2; exit 1; }
say() { echo "== $NAME: $*" >&2; }

[ -x "$IMGTOOL" ] || fail "imgtool not built at $IMGTOOL"

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/imgfs-$NAME.XXXXXX")
MOUNTS=()
PIDS=()

cleanup() {
	local m p
	for m in "${MOUNTS[@]}"; do
		if mountpoint -q "$m" 2>/dev/null; then
			fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
		fi
	done
	for p in "${PIDS[@]}"; do
		kill -9 "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [ -n "${IMGFS_KEEP_WORK:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_root() { [ "$(id -u)" = 0 ] || skip "needs root"; }

need_fuse() {
	need_root
	[ -c /dev/fuse ] || skip "no /dev/fuse on this machine"
	command -v fusermount3 >/dev/null || skip "fusermount3 missing"
}

need_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || skip "$c missing (run tools/setup.sh)"
	done
}

# try_mount_fg SOURCE MOUNTPOINT [imgtool mount options...]
# Starts the daemon in the foreground (in the background of this shell),
# waits until the mount is up, and leaves its pid in DAEMON_PID.  Returns 1
# when the daemon exits (or gives up) before the mount appears; the caller
# then reaps it with wait "$DAEMON_PID".
try_mount_fg() {
	local src=$1 mnt=$2 i
	shift 2
	mkdir -p "$mnt"
	"$IMGTOOL" mount -f "$@" "$src" "$mnt" 2>>"$WORK/daemon.log" &
	DAEMON_PID=$!
	PIDS+=("$DAEMON_PID")
	MOUNTS+=("$mnt")
	for i in $(seq 1 300); do
		mountpoint -q "$mnt" && return 0
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.1
	done
	return 1
}

# mount_fg SOURCE MOUNTPOINT [imgtool mount options...]: try_mount_fg,
# failing the test when the mount does not come up.
mount_fg() {
	try_mount_fg "$@" && return 0
	cat "$WORK/daemon.log" >&2
	fail "mount of $1 on $2 did not come up"
}

# unmount_fg MOUNTPOINT: unmounts and checks that the daemon exited 0.
unmount_fg() {
	local mnt=$1 rc=0 i
	fusermount3 -u "$mnt" || fail "fusermount3 -u $mnt failed"
	# The daemon ends when the kernel drops the connection, which a copy
	# of the mount in another mount namespace (made by unshare while it
	# was mounted) delays until that namespace goes: bounded, not a hang.
	for i in $(seq 1 600); do
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$DAEMON_PID" 2>/dev/null; then
		cat "$WORK/daemon.log" >&2
		fail "daemon still running 60 s after the unmount of $mnt"
	fi
	wait "$DAEMON_PID" || rc=$?
	[ "$rc" = 0 ] || { cat "$WORK/daemon.log" >&2; fail "daemon exited with $rc"; }
}

# mount_refused PATTERN SOURCE [imgtool mount options...]: the mount must
# fail, with an error matching the grep PATTERN; says what it printed.
mount_refused() {
	local pat=$1 src=$2 mnt=$WORK/refused-mnt
	shift 2
	mkdir -p "$mnt"
	if "$IMGTOOL" mount "$@" "$src" "$mnt" 2>"$WORK/refused.err"; then
		fusermount3 -u "$mnt"
		fail "$src was mounted, but should have been refused"
	fi
	grep -q "$pat" "$WORK/refused.err" ||
		fail "unclear error for $src: $(cat "$WORK/refused.err")"
	say "refused: $(head -1 "$WORK/refused.err")"
}

# command_refused PATTERN COMMAND [ARGS...]: COMMAND must fail, with an
# error matching the grep PATTERN.
command_refused() {
	local pat=$1
	shift
	if "$@" >/dev/null 2>"$WORK/refused.err"; then
		fail "'$*' succeeded, but should have been refused"
	fi
	grep -q "$pat" "$WORK/refused.err" ||
		fail "unclear error from '$*': $(cat "$WORK/refused.err")"
}

# sigterm_ends PID MOUNTPOINT PIDFILE WHAT: SIGTERM ends PID (the WHAT)
# within 10 s, which leaves nothing mounted and removes the pid file.
sigterm_ends() {
	local pid=$1 i
	kill -TERM "$pid"
	for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	! kill -0 "$pid" 2>/dev/null || fail "$4 still runs after SIGTERM"
	! mountpoint -q "$2" || fail "still mounted after SIGTERM"
	[ ! -e "$3" ] || fail "pid file left behind"
}

# build_test_images NAME...: the real images, built from Debian's packages
# by tools/mkimage.sh into $DATA/oci (cached there between runs).  Skips
# when the Debian mirror cannot be reached.
build_test_images() {
	need_cmd debootstrap skopeo umoci
	say "building the test images $* (cached in $DATA)"
	"$ROOT/tools/mkimage.sh" -o "$DATA" "$@" >"$WORK/mkimage.log" 2>&1 || {
		tail -20 "$WORK/mkimage.log" >&2
		if grep -qiE "could not resolve|failed to fetch|unable to connect|temporary failure" \
			"$WORK/mkimage.log"; then
			skip "cannot reach the Debian mirror to build the images"
		fi
		fail "tools/mkimage.sh failed"
	}
}

# stat_of MOUNTPOINT KEY: one counter of a mounted image.
stat_of() {
	"$IMGTOOL" status "$1" | awk -v k="$2" '$1 == k { print $2 }'
}

# import_numpy ROOT: python in the python-numpy image at ROOT imports
# numpy and sums with it; fails the test unless it prints 15.
import_numpy() {
	local out
	out=$(chroot "$1" python3 -c 'import numpy; print(numpy.arange(6).sum())')
	[ "$out" = 15 ] || fail "python printed '$out', not 15"
}

# synthetic_image DIR: the generated layers as an OCI layout in DIR/oci
# (gzip, zstd and plain layers) and its conversion in DIR/out.
synthetic_image() {
	local d=$1
	python3 "$TESTS/gen_layers.py" "$d/layers" >/dev/null
	gzip -nk "$d/layers/l1.tar"
	zstd -q "$d/layers/l2.tar"
	python3 "$TESTS/mkoci.py" "$d/oci" "$d/layers/l1.tar.gz" \
		"$d/layers/l2.tar.zst" "$d/layers/l3.tar"
	"$IMGTOOL" build -q "oci:$d/oci:latest" "oci:$d/out:latest"
}

# sharing_image DIR: after synthetic_image DIR, a second image in
# DIR/outB made of the first and the last of its layers, so that the two
# share chunks.
sharing_image() {
	local d=$1
	python3 "$TESTS/mkoci.py" "$d/ociB" "$d/layers/l1.tar.gz" \
		"$d/layers/l3.tar" >/dev/null
	"$IMGTOOL" build -q "oci:$d/ociB:latest" "oci:$d/outB:latest"
}

# umoci_unpack LAYOUT_DIR DEST: the oracle's view of an image.  umoci
# 0.4.7 reads gzip and plain layers only, so skopeo recompresses first.
umoci_unpack() {
	local src=$1 dest=$2 gz
	gz=$(mktemp -d "$WORK/gz.XXXXXX")
	skopeo copy -q --dest-compress --dest-compress-format gzip \
		"oci:$src:latest" "oci:$gz:latest"
	umoci raw unpack --image "$gz:latest" "$dest" >/dev/null 2>&1 ||
		fail "umoci cannot unpack $src"
	rm -rf "$gz"
}

# private_mount_ns: runs this test again, from the start, in a mount
# namespace of its own, so that what it mounts over system paths
# (/usr/local/bin, /dev) is seen by it alone and goes away with it.
# Call right after need_fuse, before anything is started.
private_mount_ns() {
	[ -n "${IMGFS_IN_NS:-}" ] && return 0
	need_cmd unshare
	rm -rf "$WORK"
	trap - EXIT
	IMGFS_IN_NS=1 exec unshare -m --propagation private bash "$0" "$@"
}
