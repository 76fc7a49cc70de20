#!/bin/bash
# lazybench.sh - what a cold lazy mount fetches from a registry, step by
# step: requests and body bytes counted by a logging proxy in front of
# Debian's docker-registry on 127.0.0.1.
#
# usage: tools/lazybench.sh [-n RUNS] [-t TREE] [-o MOUNT_OPTIONS]
#
# The image is one layer holding TREE (default: a generated 52 MiB tree
# like the one ../shared/peers uses: a 32 MiB incompressible file, 16 MiB
# of Python source text, 500 files of 4 KiB, 169 Python modules and a
# symlink; -t takes another tree, e.g. the peers' own /tmp/peers/tree, to
# compare on the same bytes).  Each run mounts with an empty cache and
# does, in order:
#   mount + ls /
#   read one 4 KiB file                       (small/f1.txt)
#   read 64 KiB at offset 16 MiB of the 32 MiB file
#   read the rest of that file
#   read and sha256 the whole tree
# and prints, per step, the requests and bytes fetched (median of RUNS
# runs, default 3) against the bytes the step reads.  The mount runs with
# fill=off,readahead=off by default, so that each step shows what its own
# reads cost; -o replaces those options (e.g. -o fill=off to see what
# the read-ahead adds).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=3
tree=
mopts=fill=off,readahead=off
while getopts n:t:o: o; do
	case $o in
	n) runs=$OPTARG ;;
	t) tree=$OPTARG ;;
	o) mopts=$OPTARG ;;
	*) echo "usage: $0 [-n RUNS] [-t TREE] [-o MOUNT_OPTIONS]" >&2; exit 2 ;;
	esac
done
[ -x "$root/build/tools/imgtool" ] || bash "$root/tools/setup.sh"
export IMGFS_BUILD=$root/build
# The tests' helpers: servers on free loopback ports, all stopped on exit.
source "$root/tests/integration/lib.sh"
source "$root/tests/integration/netlib.sh"
need_fuse
need_net_cmds

gen_tree() {
	python3 - "$1" <<'PY'
import glob, os, random, shutil, sys
out = sys.argv[1]
for d in ("big", "small", "src/python"):
    os.makedirs(os.path.join(out, d), exist_ok=True)
rng = random.Random(32)
with open(os.path.join(out, "big/random32m.bin"), "wb") as f:
    for _ in range(32):
        f.write(rng.randbytes(1 << 20))
lib = "/usr/lib/python3.11"
keep = ["asyncio", "concurrent", "email", "http", "importlib", "json",
        "logging", "multiprocessing", "unittest", "urllib", "xml"]
text = bytearray()
for p in sorted(glob.glob(lib + "/**/*.py", recursive=True)):
    rel = os.path.relpath(p, lib)
    if rel.split("/")[0] in keep or "site-packages" in rel:
        continue
    text += open(p, "rb").read()
while len(text) < 16 << 20:
    text += text[: (16 << 20) - len(text)]
text = text[: 16 << 20]
open(os.path.join(out, "big/text16m.txt"), "wb").write(text)
for i in range(1, 501):
    with open(os.path.join(out, "small/f%d.txt" % i), "wb") as f:
        f.write(text[(i - 1) * 4096: i * 4096])
n = 0
for k in keep:
    for p in sorted(glob.glob("%s/%s/**/*.py" % (lib, k), recursive=True)):
        if n == 169:
            break
        dst = os.path.join(out, "src/python", os.path.relpath(p, lib))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(p, dst)
        n += 1
os.symlink("big/random32m.bin", os.path.join(out, "link-to-random"))
PY
}

if [ -z "$tree" ]; then
	tree=$WORK/tree
	gen_tree "$tree"
fi
[ -f "$tree/big/random32m.bin" ] || fail "$tree has no big/random32m.bin"
big=big/random32m.bin
small=small/f1.txt
[ -f "$tree/$small" ] || small=$(cd "$tree" && find . -type f -size -5k | sort | head -1)

tar -C "$tree" --numeric-owner --sort=name -cf "$WORK/layer.tar" .
python3 "$TESTS/mkoci.py" "$WORK/oci" "$WORK/layer.tar" >/dev/null
"$IMGTOOL" build -q "oci:$WORK/oci:latest" "oci:$WORK/img:latest"
start_registry open none
push_image "$WORK/img" "127.0.0.1:$REG_PORT/tree:v1"
start_proxy "$REG_PORT"
blob=$(du -b "$WORK"/img/blobs/sha256/* | sort -n | tail -1 | cut -f1)

# counts: requests and bytes the proxy logged since line $1 of its log.
counts() {
	python3 - "$PROXY_LOG" "$1" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()[int(sys.argv[2]):]
recs = [json.loads(l) for l in lines]
recs = [r for r in recs if not r["path"].startswith("/__")]
print(len(recs), sum(max(r["bytes"], 0) for r in recs))
PY
}

STEPS=("mount + ls /" "read one 4 KiB file" "64 KiB at 16 MiB of 32 MiB"
	"the rest of that file" "read + sha256 the whole tree")
NEED=(0 "$(stat -c %s "$tree/$small")" 65536
	$(($(stat -c %s "$tree/$big") - 65536))
	"$(find "$tree" -type f -printf '%s\n' | awk '{s += $1} END {print s}')")

one_run() {
	local r=$1 mark
	sync
	echo 3 >/proc/sys/vm/drop_caches
	mark=$(wc -l <"$PROXY_LOG")
	mount_fg "docker://127.0.0.1:$PROXY_PORT/tree:v1" "$WORK/mnt" \
		-o "$mopts,cache=$WORK/cache$r"
	ls "$WORK/mnt" >/dev/null
	echo "0 $(counts "$mark")"
	mark=$(wc -l <"$PROXY_LOG")
	cat "$WORK/mnt/$small" >/dev/null
	echo "1 $(counts "$mark")"
	mark=$(wc -l <"$PROXY_LOG")
	dd if="$WORK/mnt/$big" of=/dev/null bs=64k skip=256 count=1 status=none
	echo "2 $(counts "$mark")"
	mark=$(wc -l <"$PROXY_LOG")
	cat "$WORK/mnt/$big" >/dev/null
	echo "3 $(counts "$mark")"
	mark=$(wc -l <"$PROXY_LOG")
	(cd "$WORK/mnt" && find . -type f -print0 | xargs -0 sha256sum) \
		>"$WORK/sums"
	echo "4 $(counts "$mark")"
	(cd "$tree" && sha256sum -c --quiet "$WORK/sums") ||
		fail "the tree read through the mount differs"
	unmount_fg "$WORK/mnt"
	rm -rf "$WORK/cache$r"
}

for r in $(seq 1 "$runs"); do
	one_run "$r" >"$WORK/run$r"
done

python3 - "$runs" "$WORK" "$blob" "${NEED[@]}" "${STEPS[@]}" <<'PY'
import statistics, sys
runs, work, blob = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
need = [int(x) for x in sys.argv[4:9]]
steps = sys.argv[9:14]
per = {i: ([], []) for i in range(5)}
for r in range(1, runs + 1):
    for line in open("%s/run%d" % (work, r)):
        i, req, b = map(int, line.split())
        per[i][0].append(req)
        per[i][1].append(b)
print("%-32s %9s %14s %14s %8s" % ("step", "requests", "bytes fetched",
                                  "bytes read", "fetched/read"))
for i in range(5):
    req = statistics.median(per[i][0])
    b = statistics.median(per[i][1])
    ratio = "%.2f" % (b / need[i]) if need[i] else "-"
    print("%-32s %9d %14d %14d %8s" % (steps[i], req, b, need[i], ratio))
print("layer blob %d bytes; median of %d cold runs; counted by a proxy "
      "in front of docker-registry" % (blob, runs))
PY
