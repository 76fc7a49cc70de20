#!/bin/bash
# One cache for several images: the cache is content-addressed (each
# file is named by the SHA-256 of its bytes), so two images that share
# layers, mounted at the same time with the same cache=DIR, store each
# shared chunk once, and the second image fetches nothing of the layer
# the first one already brought in.
source "$(dirname "$0")/lib.sh"
need_fuse
need_cmd zstd python3

synthetic_image "$WORK"
sharing_image "$WORK"

read_all() { find "$1" -type f -print0 | xargs -0 cat >/dev/null; }
# chunks CACHE: the names of the cached chunks, one per line, sorted.
chunks() { (cd "$1/chunks" && find . -type f | sed 's|.*/||' | sort); }

say "each image alone, in a cache of its own"
for img in out outB; do
	mount_fg "oci:$WORK/$img" "$WORK/mnt-$img" -o "cache=$WORK/alone-$img"
	read_all "$WORK/mnt-$img"
	unmount_fg "$WORK/mnt-$img"
	chunks "$WORK/alone-$img" >"$WORK/$img.chunks"
done
sort -u "$WORK/out.chunks" "$WORK/outB.chunks" >"$WORK/union.chunks"
n_a=$(wc -l <"$WORK/out.chunks")
n_b=$(wc -l <"$WORK/outB.chunks")
n_u=$(wc -l <"$WORK/union.chunks")
say "chunks: A $n_a, B $n_b, distinct in both $n_u"
[ "$n_u" -lt $((n_a + n_b)) ] || fail "the images share no chunk: the test proves nothing"

say "both mounted at once on one cache"
mount_fg "oci:$WORK/out" "$WORK/mnt-a" -o "cache=$WORK/shared"
pid_a=$DAEMON_PID
read_all "$WORK/mnt-a"
mount_fg "oci:$WORK/outB" "$WORK/mnt-b" -o "cache=$WORK/shared"
read_all "$WORK/mnt-b"
[ "$(stat_of "$WORK/mnt-b" layer0_bytes_fetched)" = 0 ] ||
	fail "B fetched $(stat_of "$WORK/mnt-b" layer0_bytes_fetched) bytes of the shared layer"
[ "$(stat_of "$WORK/mnt-b" cache_hits)" -gt 0 ] || fail "B had no cache hit"
unmount_fg "$WORK/mnt-b"
DAEMON_PID=$pid_a
unmount_fg "$WORK/mnt-a"

chunks "$WORK/shared" >"$WORK/shared.chunks"
cmp -s "$WORK/shared.chunks" "$WORK/union.chunks" ||
	fail "shared cache holds $(wc -l <"$WORK/shared.chunks") chunks, want the $n_u distinct ones"
python3 - "$WORK/shared/chunks" <<'PY' || fail "a cache file is not named by its SHA-256"
import hashlib, os, sys
for d, _, files in os.walk(sys.argv[1]):
    for f in files:
        if hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest() != f:
            sys.exit("bad: " + f)
PY
say "ok"
