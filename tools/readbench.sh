#!/bin/bash
# readbench.sh - read speed, metadata speed, app start and daemon memory of
# imgfs against the same tree unpacked on local disk (native),
# squashfuse_ll and erofsfuse, measured side by side in one run.
#
# usage: tools/readbench.sh [-n RUNS] [-o OUTDIR] [-w WORKDIR] [-x SKIP]
#
# RUNS (default 5) runs of every measurement; each run measures every
# system once, in a rotating order, and the table shows the medians.
# SKIP is a comma list of sections to leave out: build (tools/buildbench.sh
# on the same layer tars), million (the one-million-file image).
# The table goes to stdout and, as CSV, to OUTDIR/readbench.csv (default
# ./readbench-out), the single runs to OUTDIR/runs.csv.  WORKDIR (default
# /var/tmp/imgfs-readbench) keeps the prepared trees and images between
# runs.  Needs root (drop_caches, chroot, FUSE mounts).
#
# The trees, all from the pytorch test image (tools/mkimage.sh):
#   native         umoci raw unpack of the original image, on local disk
#   imgfs          imgtool build of it, mounted from the local layout with
#                  -o fill=on and measured once every chunk is cached
#   squashfuse_ll  mksquashfs -comp zstd -Xcompression-level 3 -b 128K
#   erofsfuse      mkfs.erofs -zlz4 (erofs-utils 1.5 has no zstd), default
#                  cluster size; erofsfuse built by tools/peers-build.sh
# "cold" means after echo 3 > /proc/sys/vm/drop_caches (page, dentry and
# inode caches dropped; the FUSE daemons keep their own state); "warm" is
# the same work again right after.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
DATA=${IMGFS_DATA:-/var/tmp/imgfs-data}
IMGTOOL=$root/build/tools/imgtool
runs=5
out=readbench-out
work=/var/tmp/imgfs-readbench
skip=
usage() {
	echo "usage: $0 [-n RUNS] [-o OUTDIR] [-w WORKDIR] [-x build,million]" >&2
	exit 2
}
while getopts n:o:w:x: o; do
	case $o in
	n) runs=$OPTARG ;;
	o) out=$OPTARG ;;
	w) work=$OPTARG ;;
	x) skip=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
[ "$(id -u)" = 0 ] || { echo "readbench: must run as root" >&2; exit 1; }
[ -x "$IMGTOOL" ] || { echo "build first: bash tools/setup.sh" >&2; exit 1; }
for c in mksquashfs mkfs.erofs squashfuse_ll umoci fusermount3 unshare; do
	command -v "$c" >/dev/null ||
		{ echo "readbench: no $c; run tools/setup.sh" >&2; exit 1; }
done
skipped() { case ",$skip," in *,"$1",*) return 0 ;; esac; return 1; }

SYSTEMS=(native imgfs squashfuse_ll erofsfuse)
mkdir -p "$work" "$out"
out=$(cd "$out" && pwd)
work=$(cd "$work" && pwd)
tmp=$(mktemp -d /tmp/readbench.XXXXXX)
mnt=$work/mnt
mounts=()  # mount points to undo on exit
pids=()    # processes to end on exit

cleanup() {
	local m p
	set +e
	for m in "${mounts[@]}"; do
		mountpoint -q "$m" && { fusermount3 -u "$m" || umount -l "$m"; }
	done
	sleep 0.5
	for p in "${pids[@]}"; do
		kill -0 "$p" 2>/dev/null && kill "$p"
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.4f", b - a }'; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'; }
say() { printf '[readbench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# ---------------------------------------------------------------- prepare

# The pytorch image and everything made from it, each step only once per
# WORKDIR (a step's output appears under its final name when complete).
prepare() {
	local src=$DATA/oci/pytorch
	[ -d "$src" ] || "$root/tools/mkimage.sh" -o "$DATA" pytorch
	if [ ! -d "$work/native" ]; then
		say "umoci raw unpack -> $work/native"
		rm -rf "$work/native.tmp"
		umoci raw unpack --image "$src:latest" "$work/native.tmp" >/dev/null
		mv "$work/native.tmp" "$work/native"
	fi
	if [ ! -f "$work/pytorch.sqfs" ]; then
		say "mksquashfs -comp zstd -Xcompression-level 3 -b 128K"
		mksquashfs "$work/native" "$work/pytorch.sqfs.tmp" -comp zstd \
			-Xcompression-level 3 -b 131072 -noappend -quiet \
			-no-progress >/dev/null
		mv "$work/pytorch.sqfs.tmp" "$work/pytorch.sqfs"
	fi
	if [ ! -f "$work/pytorch.erofs" ]; then
		say "mkfs.erofs -zlz4"
		mkfs.erofs --quiet -zlz4 "$work/pytorch.erofs.tmp" \
			"$work/native" >/dev/null
		mv "$work/pytorch.erofs.tmp" "$work/pytorch.erofs"
	fi
	if [ ! -d "$work/pytorch-imgfs" ]; then
		say "imgtool build -> $work/pytorch-imgfs"
		rm -rf "$work/pytorch-imgfs.tmp"
		"$IMGTOOL" build -q "oci:$src:latest" \
			"oci:$work/pytorch-imgfs.tmp" >/dev/null
		mv "$work/pytorch-imgfs.tmp" "$work/pytorch-imgfs"
	fi
	EROFSFUSE=$("$root/tools/peers-build.sh" "$work/peers" \
		2>"$work/peers-build.log") ||
		{ cat "$work/peers-build.log" >&2; exit 1; }
}

# daemon_pid MOUNTPOINT: the imgfs daemon serving it (its command line
# names the mount point; it detached from the imgtool we started).
daemon_pid() {
	local p
	for p in /proc/[0-9]*; do
		if { tr '\0' '\n' <"$p/cmdline"; } 2>/dev/null | grep -qxF "$1" &&
			[ "$(readlink "$p/exe" 2>/dev/null)" = "$(readlink -f "$IMGTOOL")" ]; then
			echo "${p#/proc/}"
			return 0
		fi
	done
	return 1
}

# wait_ready DIR: until the FUSE mount answers.
wait_ready() {
	local i
	for i in $(seq 1 200); do
		mountpoint -q "$1" && ls "$1" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "readbench: $1 did not come up" >&2
	return 1
}

vm_field() { awk -v f="$2:" '$1 == f { print $2 * 1024 }' "/proc/$1/status"; }
status_field() { "$IMGTOOL" status "$1" | awk -v f="$2" '$1 == f { print $2 }'; }

declare -A TREE PID
mount_all() {
	local m
	mkdir -p "$mnt"/{imgfs,squashfuse_ll,erofsfuse}
	for m in "$mnt"/{imgfs,squashfuse_ll,erofsfuse}; do
		mountpoint -q "$m" && { echo "readbench: $m is mounted" >&2; exit 1; }
	done
	TREE[native]=$work/native
	mounts+=("$mnt/imgfs")
	"$IMGTOOL" mount -f -o "cache=$work/cache,fill=on" \
		"oci:$work/pytorch-imgfs" "$mnt/imgfs" >"$out/imgfs.log" 2>&1 &
	PID[imgfs]=$!
	pids+=("$!")
	TREE[imgfs]=$mnt/imgfs
	wait_ready "$mnt/imgfs"
	mounts+=("$mnt/squashfuse_ll")
	squashfuse_ll -f "$work/pytorch.sqfs" "$mnt/squashfuse_ll" \
		>"$tmp/squashfuse_ll.log" 2>&1 &
	PID[squashfuse_ll]=$!
	pids+=("$!")
	TREE[squashfuse_ll]=$mnt/squashfuse_ll
	mounts+=("$mnt/erofsfuse")
	"$EROFSFUSE" -f "$work/pytorch.erofs" "$mnt/erofsfuse" \
		>"$tmp/erofsfuse.log" 2>&1 &
	PID[erofsfuse]=$!
	pids+=("$!")
	TREE[erofsfuse]=$mnt/erofsfuse
	wait_ready "$mnt/squashfuse_ll"
	wait_ready "$mnt/erofsfuse"
	say "imgfs: waiting for the fill (every chunk into $work/cache)"
	while [ "$(status_field "$mnt/imgfs" prefetch_percent)" != 100.0 ]; do
		sleep 1
	done
	[ "$(status_field "$mnt/imgfs" prefetch_failed)" = 0 ] ||
		{ echo "readbench: imgfs fill had failures" >&2; exit 1; }
}

# ---------------------------------------------------------------- measurements
# Each prints one number for one tree: MiB/s or seconds.

# big_files: the big shared objects (over 10 MiB, one name per hard-link
# group), relative to the tree, the largest first.
big_files() {
	(cd "$work/native" && find . -type f -name '*.so*' -size +10M \
		-printf '%s %i %P\n') | sort -k1,1nr -k3 | awk '!seen[$2]++ { print $3 }'
}

m_seq() {
	local f=$1/$LARGEST t
	drop_caches
	t=$(now)
	dd if="$f" of=/dev/null bs=1M status=none
	awk -v s="$(since "$t")" -v b="$LARGEST_SIZE" 'BEGIN { printf "%.1f\n", b / s / 1048576 }'
}

cat >"$tmp/randread.py" <<'EOF'
import os, random, sys, time
# randread.py SEED COUNT BS ROOT FILE...: COUNT reads of BS bytes at random
# BS-aligned offsets, a file picked in proportion to its size; prints MiB/s
# of a first pass and of the same reads again.
seed, count, bs, root = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
fds = [os.open(os.path.join(root, f), os.O_RDONLY) for f in sys.argv[5:]]
sizes = [os.fstat(fd).st_size for fd in fds]
rng = random.Random(seed)
plan = []
for _ in range(count):
    i = rng.choices(range(len(fds)), weights=sizes)[0]
    plan.append((fds[i], rng.randrange(0, (sizes[i] - bs) // bs) * bs))
rates = []
for _ in range(2):
    t = time.perf_counter()
    for fd, off in plan:
        if len(os.pread(fd, bs, off)) != bs:
            sys.exit("short read")
    rates.append(count * bs / (time.perf_counter() - t) / 1048576)
print("%.1f %.1f" % tuple(rates))
EOF

# m_rand TREE BS COUNT: "cold warm" MiB/s.
m_rand() {
	drop_caches
	# shellcheck disable=SC2086
	python3 "$tmp/randread.py" 1234 "$3" "$2" "$1" $BIG
}

m_tar_data() {
	local t
	drop_caches
	t=$(now)
	tar -C "$1" -cf - . | cat >/dev/null
	since "$t"; echo
}

# GNU tar notices an archive on /dev/null and reads no file data: this is
# a walk with lstat and open of every file, as the brief's command does.
m_tar_null() {
	local t
	drop_caches
	t=$(now)
	tar -C "$1" -cf /dev/null .
	since "$t"; echo
}

# m_walk TREE: "cold warm" seconds of find with an lstat of every entry.
m_walk() {
	local t a b
	drop_caches
	t=$(now)
	find "$1" -printf '%s %m %U %T@\n' >/dev/null
	a=$(since "$t")
	t=$(now)
	find "$1" -printf '%s %m %U %T@\n' >/dev/null
	b=$(since "$t")
	echo "$a $b"
}

# app TREE: the image's Cmd as a runtime would start it (own mount
# namespace, /dev and /proc inside, chroot, WorkingDir /app); prints the
# line with its import time.  The trees are read-only or must stay
# unchanged, hence no .pyc writing.
app() {
	unshare -m --propagation private sh -c '
		mount --bind /dev "$1/dev" && mount -t proc proc "$1/proc" &&
		cd "$1/app" && PYTHONDONTWRITEBYTECODE=1 exec chroot "$1" \
			sh -c "cd /app && exec python3 /app/app.py"' sh "$1" |
		awk '/^import torch:/ { print $3 }'
}

# m_app TREE: "wall import" seconds of a warm start (warm-up run first;
# idle pages are paged out within minutes here, so right before).
m_app() {
	local t imp
	app "$1" >/dev/null
	t=$(now)
	imp=$(app "$1")
	echo "$(since "$t") $imp"
}

# ---------------------------------------------------------------- runs

record() { # record NAME SYSTEM RUN VALUE
	echo "$1,$2,$3,$4" >>"$out/runs.csv"
	echo "$4" >>"$tmp/$1.$2"
}

# rotated RUN: the systems, starting at a different one each run.
rotated() {
	local i n=${#SYSTEMS[@]}
	for i in $(seq 0 $((n - 1))); do
		echo "${SYSTEMS[$(((i + $1) % n))]}"
	done
}

run_pytorch() {
	local r s d v
	for r in $(seq 1 "$runs"); do
		say "run $r of $runs (load $(loadavg))"
		loadavg >>"$tmp/load"
		for s in $(rotated "$r"); do
			d=${TREE[$s]}
			[ "$s" = native ] || kill -0 "${PID[$s]}" ||
				{ echo "readbench: $s daemon is gone" >&2; exit 1; }
			record seq "$s" "$r" "$(m_seq "$d")"
			v=$(m_rand "$d" 4096 3000)
			record rand4k_cold "$s" "$r" "${v% *}"
			record rand4k_warm "$s" "$r" "${v#* }"
			v=$(m_rand "$d" 131072 2000)
			record rand128k_cold "$s" "$r" "${v% *}"
			record rand128k_warm "$s" "$r" "${v#* }"
			record tar_data "$s" "$r" "$(m_tar_data "$d")"
			record tar_null "$s" "$r" "$(m_tar_null "$d")"
			v=$(m_walk "$d")
			record walk_cold "$s" "$r" "${v% *}"
			record walk_warm "$s" "$r" "${v#* }"
			v=$(m_app "$d")
			record app_wall "$s" "$r" "${v% *}"
			record app_import "$s" "$r" "${v#* }"
		done
	done
	loadavg >>"$tmp/load"
	# Every file has been read whole by now (tar): the daemons' peaks.
	for s in imgfs squashfuse_ll erofsfuse; do
		record rss_pytorch "$s" 1 "$(vm_field "${PID[$s]}" VmHWM)"
	done
	INDEX_BYTES=$(status_field "$mnt/imgfs" index_bytes)
	MISSES_AFTER=$(status_field "$mnt/imgfs" cache_misses)
}

run_build() {
	local line
	say "tools/buildbench.sh -n $runs pytorch"
	"$root/tools/buildbench.sh" -n "$runs" pytorch >"$tmp/build.txt"
	cat "$tmp/build.txt" >&2
	loadavg >>"$tmp/load"
	line=$(awk '$2 == "imgtool" { print $4 }' "$tmp/build.txt")
	record build_mibs imgfs 1 "$line"
	line=$(awk '$2 == "zstd-T0-3" { print $4 }' "$tmp/build.txt")
	record build_mibs native 1 "$line"
	line=$(sed -n 's/.*imgtool output is \([-+0-9.]*\)% against zstd -3.*/\1/p' "$tmp/build.txt")
	record build_size_pct imgfs 1 "$line"
}

# The one-million-file image: generated once per WORKDIR.
prepare_million() {
	if [ ! -d "$work/million-imgfs" ]; then
		say "generating the million-file tar and image"
		[ -f "$work/million.tar" ] ||
			{ python3 "$root/tools/manyfiles.py" "$work/million.tar.tmp" &&
				mv "$work/million.tar.tmp" "$work/million.tar"; }
		rm -rf "$work/million-in" "$work/million-imgfs.tmp"
		python3 "$root/tests/mkoci.py" "$work/million-in" \
			"$work/million.tar" >/dev/null
		"$IMGTOOL" build -q "oci:$work/million-in" \
			"oci:$work/million-imgfs.tmp" >/dev/null
		mv "$work/million-imgfs.tmp" "$work/million-imgfs"
		rm -rf "$work/million-in"
	fi
}

run_million() {
	local r t m=$mnt/million p
	prepare_million
	mkdir -p "$m"
	mounts+=("$m")
	for r in $(seq 1 "$runs"); do
		say "million-file image, mount $r of $runs (load $(loadavg))"
		drop_caches
		t=$(now)
		"$IMGTOOL" mount -o "cache=$work/cache-million" \
			"oci:$work/million-imgfs" "$m"
		record million_mount imgfs "$r" "$(since "$t")"
		p=$(daemon_pid "$m")
		pids+=("$p")
		record million_rss_mount imgfs "$r" "$(vm_field "$p" VmHWM)"
		t=$(now)
		find "$m" -printf '%s %m\n' >/dev/null
		record million_walk imgfs "$r" "$(since "$t")"
		record million_rss_walk imgfs "$r" "$(vm_field "$p" VmHWM)"
		MILLION_INDEX=$(status_field "$m" index_bytes)
		fusermount3 -u "$m"
		while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
	done
	loadavg >>"$tmp/load"
}

# ---------------------------------------------------------------- table

med() { [ -f "$tmp/$1.$2" ] && median <"$tmp/$1.$2" || true; }

# row NAME LABEL UNIT KIND TARGET: KIND rate (higher is better), time
# (lower is better) or bytes; TARGET "N:0.8,S:1.5" means imgfs/native at
# least 0.8 and imgfs/squashfuse_ll at least 1.5 for rates, at most for
# times; "R:X" compares imgfs with X directly (at most).
row() {
	local name=$1 label=$2 unit=$3 kind=$4 target=$5 s vals=()
	for s in "${SYSTEMS[@]}"; do vals+=("$(med "$name" "$s")"); done
	awk -v label="$label" -v unit="$unit" -v kind="$kind" -v target="$target" \
		-v n="${vals[0]}" -v i="${vals[1]}" -v q="${vals[2]}" -v e="${vals[3]}" \
		-v csv="$out/readbench.csv" '
	function fmt(v) {
		if (v == "") return "-"
		if (kind == "bytes") return sprintf("%.1f", v / 1048576)
		if (kind == "time") return sprintf("%.3f", v)
		return sprintf("%.1f", v)
	}
	function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "" : a / b }
	BEGIN {
		rn = ratio(i, n); rq = ratio(i, q); ok = ""; shown = ""
		np = split(target, parts, ",")
		for (k = 1; k <= np; k++) {
			if (parts[k] == "") continue
			split(parts[k], kv, ":")
			if (kv[1] == "N") { r = rn; what = "/native" }
			else if (kv[1] == "S") { r = rq; what = "/sqfs" }
			else { r = i; what = "" }
			if (kind == "rate") { good = r != "" && r >= kv[2]; op = ">=" }
			else { good = r != "" && r <= kv[2]; op = "<=" }
			lim = kind == "bytes" ? sprintf("%.0fMiB", kv[2] / 1048576) : kv[2]
			shown = shown (shown == "" ? "" : " ") what op lim
			ok = ok (ok == "" ? "" : "/") (r == "" ? "?" : (good ? "met" : "MISSED"))
		}
		if (shown == "") { shown = "-"; ok = "-" }
		printf "%-30s %-6s %9s %9s %9s %9s %8s %8s  %-20s %s\n", label, unit,
			fmt(n), fmt(i), fmt(q), fmt(e),
			rn == "" ? "-" : sprintf("%.3f", rn),
			rq == "" ? "-" : sprintf("%.3f", rq), shown, ok
		printf "\"%s\",%s,%s,%s,%s,%s,%s,%s,\"%s\",%s\n", label, unit,
			n, i, q, e, rn, rq, shown, ok >> csv
	}'
}

print_table() {
	: >"$out/readbench.csv"
	echo "measurement,unit,native,imgfs,squashfuse_ll,erofsfuse,imgfs/native,imgfs/squashfuse_ll,target,met" >"$out/readbench.csv"
	printf '%-30s %-6s %9s %9s %9s %9s %8s %8s  %-20s %s\n' measurement unit \
		native imgfs sqfs_ll erofsfuse i/native i/sqfs target met
	row seq "seq read largest file, cold" MiB/s rate N:0.8,S:1.5
	row rand4k_cold "4K random reads, cold" MiB/s rate N:0.8,S:1.5
	row rand4k_warm "4K random reads, warm" MiB/s rate N:0.8,S:1.5
	row rand128k_cold "128K random reads, cold" MiB/s rate N:0.8,S:1.5
	row rand128k_warm "128K random reads, warm" MiB/s rate N:0.8,S:1.5
	row tar_data "tar -cf - | cat, cold" s time ""
	row tar_null "tar -cf /dev/null, cold" s time ""
	row walk_cold "find+stat walk, 1st (cold)" s time ""
	row walk_warm "find+stat walk, 2nd (warm)" s time N:1.2
	row app_wall "app start, warm (wall)" s time N:1.1
	row app_import "app import torch, warm" s time ""
	if ! skipped build; then
		row build_mibs "build: imgtool vs zstd-T0-3" MiB/s rate N:0.8
		row build_size_pct "build: size vs zstd -3 (%)" pct time R:3
	fi
	row rss_pytorch "daemon VmHWM, pytorch read" MiB bytes \
		"R:$((INDEX_BYTES + 64 * 1048576))"
	if ! skipped million; then
		row million_mount "1M files: mount time" s time R:3
		row million_rss_mount "1M files: VmHWM after mount" MiB bytes R:314572800
		row million_walk "1M files: find walk" s time ""
		row million_rss_walk "1M files: VmHWM after walk" MiB bytes R:314572800
	fi
}

# ---------------------------------------------------------------- main

load_start=$(loadavg)
prepare
: >"$out/runs.csv"
echo "measurement,system,run,value" >"$out/runs.csv"
LARGEST=$(big_files | head -1)
LARGEST_NAME=$(basename "$LARGEST")
LARGEST_SIZE=$(stat -c %s "$work/native/$LARGEST")
BIG=$(big_files | tr '\n' ' ')
mount_all
MISSES_BEFORE=$(status_field "$mnt/imgfs" cache_misses)
run_pytorch
skipped build || run_build
skipped million || run_million

print_table | tee "$out/table.txt"
{
	echo "median of $runs runs; rates in MiB/s (higher is better), times in s; largest file: $LARGEST_NAME"
	echo "random reads: 3000 x 4 KiB and 2000 x 128 KiB, seed 1234, over $(echo "$BIG" | wc -w) shared objects over 10 MiB"
	echo "imgfs index $INDEX_BYTES bytes (RSS target $((INDEX_BYTES / 1048576 + 64)) MiB); cache misses during the runs: $((MISSES_AFTER - MISSES_BEFORE))"
	[ -n "${MILLION_INDEX:-}" ] && echo "1M-file image: index $MILLION_INDEX bytes"
	echo "load average: start $load_start; per run $(tr '\n' ';' <"$tmp/load")"
	echo "csv: $out/readbench.csv, single runs: $out/runs.csv"
} | tee -a "$out/table.txt"
