#!/bin/bash
# coldstart.sh - how much sooner a program starts from a lazy mount than
# after a full pull, over an emulated WAN link, on this machine alone.
#
# usage: tools/coldstart.sh [-n RUNS] [-l LINKS] [-i IMAGES] [-v VARIANTS]
#                           [-o OUTDIR]
#
#   LINKS     "MBIT:RTT_MS ..."  (default "1000:10 200:40")
#   IMAGES    test images of tools/mkimage.sh (default "python-numpy pytorch")
#   VARIANTS  any of full lazy profile casync readall-full readall-lazy
#             (default: all)
#   OUTDIR    where coldstart.csv and coldstart.png go (default
#             ./coldstart-results)
#   IMGFS_BENCH_MOUNT_OPTS (environment): more imgtool mount options for
#             the lazy variants, e.g. fill=off
#
# Debian's docker-registry serves the images on 127.0.0.1 behind
# tools/wanproxy (our delaying, rate-limiting TCP proxy: this kernel has no
# netem).  Before every run the page cache is dropped and the local cache
# is empty.  The program is started as a container runtime would start it:
# a writable overlayfs over the image's tree, /proc and /dev mounted,
# chroot.  Each run is timed from the start of the pull (or mount) until
# the program exits:
#
#   full          skopeo copy of the original (gzip) image, umoci raw
#                 unpack, then the program
#   lazy          imgtool mount of the converted image, then the program
#   profile       the same image with a recorded startup profile
#   casync        casync mount of the same tree from nginx (a second lazy
#                 reference; one GET per chunk)
#   readall-full  full pull, then every file read (find | xargs cat)
#   readall-lazy  lazy mount, then every file read
#
# Prints, per link and image, the median of RUNS runs (default 3) of each
# variant, its ratio against the full pull (readall-lazy against
# readall-full) and the bytes fetched: for imgfs what the daemon had
# fetched when the program exited (the fill goes on after), for the others
# what crossed the link.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=3
links="1000:10 200:40"
images="python-numpy pytorch"
variants="full lazy profile casync readall-full readall-lazy"
outdir=$PWD/coldstart-results
while getopts n:l:i:v:o: o; do
	case $o in
	n) runs=$OPTARG ;;
	l) links=$OPTARG ;;
	i) images=$OPTARG ;;
	v) variants=$OPTARG ;;
	o) outdir=$OPTARG ;;
	*) sed -n '2,30p' "$0" >&2; exit 2 ;;
	esac
done
[ -x "$root/build/tools/wanproxy" ] || bash "$root/tools/setup.sh"
export IMGFS_BUILD=$root/build
source "$root/tests/integration/lib.sh"
source "$root/tests/integration/netlib.sh"
need_fuse
need_net_cmds
need_cmd umoci casync nginx gnuplot unshare
WANPROXY=$root/build/tools/wanproxy
mkdir -p "$outdir"
STATE=${IMGFS_BENCH_DIR:-/var/tmp/imgfs-bench}
mkdir -p "$STATE"

declare -A APP=(
	[python-numpy]="python3 -c 'import numpy'"
	[pytorch]="python3 /app/app.py"
)

# ---- preparing the images (kept in $STATE between runs) ----

# prepare IMAGE: original, converted, converted+profile, unpacked tree and
# its casync store, all under $STATE/IMAGE.
prepare() {
	local img=$1 d=$STATE/$1
	build_test_images "$img"
	mkdir -p "$d"
	if [ ! -f "$d/lazy/index.json" ]; then
		say "$img: convert"
		"$IMGTOOL" build -q "oci:$DATA/oci/$img:latest" "oci:$d/lazy:latest"
	fi
	if [ ! -f "$d/prof.done" ]; then
		say "$img: record the startup profile"
		rm -rf "$d/prof"
		cp -a "$d/lazy" "$d/prof"
		eval "\"\$IMGTOOL\" record \"oci:\$d/prof:latest\" -- ${APP[$img]}" \
			>"$d/record.log" 2>&1 || {
			cat "$d/record.log" >&2
			fail "$img: imgtool record failed"
		}
		touch "$d/prof.done"
	fi
	if [ ! -f "$d/casync.done" ]; then
		say "$img: unpack and make the casync store"
		rm -rf "$d/tree" "$d/www"
		umoci raw unpack --image "$DATA/oci/$img:latest" "$d/tree" \
			>/dev/null 2>&1 || fail "$img: umoci cannot unpack"
		mkdir -p "$d/www"
		casync make --compression=zstd --store="$d/www/store" \
			"$d/www/tree.caidx" "$d/tree/" >/dev/null
		rm -rf "$d/tree"
		touch "$d/casync.done"
	fi
}

# push IMAGE: the three images into the registry started by this run.
push() {
	local img=$1 d=$STATE/$1
	push_image "$DATA/oci/$img" "127.0.0.1:$REG_PORT/$img:orig"
	push_image "$d/lazy" "127.0.0.1:$REG_PORT/$img:lazy"
	push_image "$d/prof" "127.0.0.1:$REG_PORT/$img:prof"
}

# ---- one run ----

# link_up UPSTREAM_PORT MBIT RTT: a fresh wanproxy; sets LINK_PORT.
link_up() {
	rm -f "$WORK/link.port" "$WORK/link.stats"
	"$WANPROXY" --listen 127.0.0.1:0 --upstream "127.0.0.1:$1" \
		--rate-mbit "$2" --rtt-ms "$3" --port-file "$WORK/link.port" \
		--stats-file "$WORK/link.stats" 2>>"$WORK/wanproxy.log" &
	LINK_PID=$!
	PIDS+=("$LINK_PID")
	LINK_PORT=$(wait_port_file "$WORK/link.port" "$LINK_PID")
}

# link_down: stops the proxy; prints the bytes it carried to the client.
link_down() {
	kill -TERM "$LINK_PID" 2>/dev/null || true
	wait "$LINK_PID" 2>/dev/null || true
	awk '$1 == "bytes_down" { print $2 }' "$WORK/link.stats" 2>/dev/null ||
		echo 0
}

cold() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# in_container LOWER CMD: runs CMD (a shell string) chrooted into a
# writable overlay over LOWER, with /proc and /dev, in its own mount
# namespace; everything it mounts goes away with it.
in_container() {
	local lower=$1 cmd=$2 c=$WORK/ctr
	rm -rf "$c"
	mkdir -p "$c/upper" "$c/work" "$c/merged"
	unshare --mount --propagation private sh -c '
		set -e
		mount -t overlay overlay -o "lowerdir=$1,upperdir=$2/upper,workdir=$2/work" "$2/merged"
		mkdir -p "$2/merged/proc" "$2/merged/dev"
		mount -t proc proc "$2/merged/proc"
		mount --rbind /dev "$2/merged/dev"
		exec chroot "$2/merged" /bin/sh -c "cd /; $3"
	' sh "$lower" "$c" "$cmd" >"$WORK/app.out" 2>&1 ||
		{ cat "$WORK/app.out" >&2; fail "the program failed in $lower"; }
}

now() { date +%s.%N; }

# read_all DIR: reads every file.  (Not tar -cf /dev/null: GNU tar sees
# /dev/null and reads no file data at all.)
read_all() {
	(cd "$1" && find . -type f -print0 | xargs -0 -P 4 -n 64 cat) \
		>/dev/null
}

# run_one VARIANT IMAGE MBIT RTT: sets RUN_SECS and RUN_BYTES.  (Not run
# in a subshell: what it starts must stay known to the cleanup trap.)
run_one() {
	local v=$1 img=$2 mbit=$3 rtt=$4 t0 t1 mnt=$WORK/mnt
	local work=$WORK/run
	rm -rf "$work"
	mkdir -p "$work"
	case $v in
	casync) link_up "$NGINX_PORT" "$mbit" "$rtt" ;;
	*) link_up "$REG_PORT" "$mbit" "$rtt" ;;
	esac
	cold
	t0=$(now)
	case $v in
	full | readall-full)
		skopeo copy -q --src-tls-verify=false \
			"docker://127.0.0.1:$LINK_PORT/$img:orig" \
			"oci:$work/pull:latest"
		umoci raw unpack --image "$work/pull:latest" "$work/rootfs" \
			>/dev/null 2>&1
		if [ "$v" = full ]; then
			in_container "$work/rootfs" "${APP[$img]}"
		else
			read_all "$work/rootfs"
		fi
		;;
	lazy | profile | readall-lazy)
		local tag=lazy
		[ "$v" = profile ] && tag=prof
		mount_fg "docker://127.0.0.1:$LINK_PORT/$img:$tag" "$mnt" \
			-o "cache=$work/cache${IMGFS_BENCH_MOUNT_OPTS:+,$IMGFS_BENCH_MOUNT_OPTS}"
		if [ "$v" = readall-lazy ]; then
			read_all "$mnt"
		else
			in_container "$mnt" "${APP[$img]}"
		fi
		;;
	casync)
		mkdir -p "$mnt"
		casync mount --store="http://127.0.0.1:$LINK_PORT/$img/store" \
			"http://127.0.0.1:$LINK_PORT/$img/tree.caidx" "$mnt" \
			2>>"$WORK/casync.log" &
		PIDS+=($!)
		MOUNTS+=("$mnt")
		for _ in $(seq 1 600); do mountpoint -q "$mnt" && break; sleep 0.05; done
		in_container "$mnt" "${APP[$img]}"
		;;
	esac
	t1=$(now)
	case $v in
	lazy | profile | readall-lazy)
		# What the daemon had fetched when the program was done (the
		# fill goes on until the unmount).
		RUN_BYTES=$(stat_of "$mnt" http_bytes)
		unmount_fg "$mnt"
		link_down >/dev/null
		;;
	casync)
		fusermount3 -u "$mnt"
		RUN_BYTES=$(link_down)
		;;
	*) RUN_BYTES=$(link_down) ;;
	esac
	RUN_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	rm -rf "$work"
}

# ---- the benchmark ----

start_registry bench none
mkdir -p "$WORK/www"
for img in $images; do
	prepare "$img"
	push "$img"
	ln -sfn "$STATE/$img/www" "$WORK/www/$img"
done
chmod a+x "$WORK"
start_nginx "$WORK/www"

csv=$outdir/coldstart.csv
echo "link,image,variant,run,seconds,bytes" >"$csv"
# Runs go round the variants (run 1 of each, then run 2 of each, ...), so
# that a change in the machine's load over time falls on every variant
# alike rather than on the ones that happen to run last.
for link in $links; do
	mbit=${link%%:*}
	rtt=${link##*:}
	for img in $images; do
		for r in $(seq 1 "$runs"); do
			for v in $variants; do
				say "$mbit Mbit/s ${rtt} ms: $img $v, run $r"
				run_one "$v" "$img" "$mbit" "$rtt"
				echo "${mbit}M/${rtt}ms,$img,$v,$r,$RUN_SECS,$RUN_BYTES" >>"$csv"
			done
		done
	done
done

python3 - "$csv" "$outdir" <<'PY'
import collections, csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
med = collections.OrderedDict()
for r in rows:
    k = (r["link"], r["image"], r["variant"])
    med.setdefault(k, ([], []))
    med[k][0].append(float(r["seconds"]))
    med[k][1].append(int(r["bytes"] or 0))
base = {"full": "full", "lazy": "full", "profile": "full", "casync": "full",
        "readall-full": "readall-full", "readall-lazy": "readall-full"}
print("%-11s %-13s %-13s %9s %8s %14s" % ("link", "image", "variant",
                                          "seconds", "ratio", "bytes"))
out = open(sys.argv[2] + "/coldstart-medians.csv", "w")
out.write("link,image,variant,median_seconds,ratio,median_bytes\n")
for (link, img, v), (secs, byts) in med.items():
    s = statistics.median(secs)
    b = int(statistics.median(byts))
    ref = med.get((link, img, base[v]))
    ratio = s / statistics.median(ref[0]) if ref else float("nan")
    print("%-11s %-13s %-13s %9.2f %8.3f %14d" % (link, img, v, s, ratio, b))
    out.write("%s,%s,%s,%.3f,%.4f,%d\n" % (link, img, v, s, ratio, b))
print("median of %d runs each" % len(next(iter(med.values()))[0]))
PY

# The plot: median seconds per variant, one group per link and image.
python3 - "$outdir/coldstart-medians.csv" >"$WORK/plot.dat" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
variants = []
for r in rows:
    if r["variant"] not in variants:
        variants.append(r["variant"])
groups = []
for r in rows:
    g = r["link"] + " " + r["image"]
    if g not in groups:
        groups.append(g)
print("group " + " ".join(variants))
for g in groups:
    vals = []
    for v in variants:
        m = [r for r in rows if r["link"] + " " + r["image"] == g and r["variant"] == v]
        vals.append(m[0]["median_seconds"] if m else "NaN")
    print('"%s" %s' % (g, " ".join(vals)))
PY
ncol=$(head -1 "$WORK/plot.dat" | wc -w)
gnuplot <<EOF
set terminal pngcairo size 1100,600
set output "$outdir/coldstart.png"
set title "Cold start over an emulated WAN link (median seconds, lower is better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel "seconds (log scale)"
set logscale y
set key outside right
set xtics rotate by -20
plot for [i=2:$ncol] "$WORK/plot.dat" using i:xtic(1) title columnheader(i)
EOF
say "wrote $csv, $outdir/coldstart-medians.csv and $outdir/coldstart.png"
