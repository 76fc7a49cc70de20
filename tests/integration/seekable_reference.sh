#!/bin/bash
# A third-party reader of the zstd seekable format (the reference
# decompressor from Debian's zstd source package) reads any range of our
# blobs: the seek table lists every frame, index and locator included.
source "$(dirname "$0")/lib.sh"
need_cmd gcc python3 zstd

SRC=$DATA/zstd-src
SEEKDEC=$SRC/seekdec

# Builds the reference decompressor from Debian's zstd source package,
# fetched with apt through a private deb-src list (the system's apt
# configuration is left alone).  Cached in $DATA between runs.
build_seekdec() {
	local apt=$SRC/apt dir
	mkdir -p "$apt/lists/partial" "$apt/parts"
	cat >"$apt/parts/src.sources" <<'SRCS'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRCS
	local o=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt/parts"
		-o "Dir::State::Lists=$apt/lists")
	apt-get -q "${o[@]}" update >"$SRC/apt.log" 2>&1 || return 1
	(cd "$SRC" && apt-get -q "${o[@]}" source --download-only zstd) \
		>>"$SRC/apt.log" 2>&1 || return 1
	tar -C "$SRC" -xJf "$SRC"/libzstd_*.orig.tar.xz --wildcards \
		'*/contrib/seekable_format/*' '*/lib/*' || return 1
	dir=$(echo "$SRC"/zstd-*/contrib/seekable_format)
	gcc -O2 -I"$dir" -I"$dir/../../lib" -I"$dir/../../lib/common" \
		"$dir/examples/seekable_decompression.c" \
		"$dir/zstdseek_decompress.c" "$dir/../../lib/common/xxhash.c" \
		-o "$SEEKDEC" -lzstd
}

if [ ! -x "$SEEKDEC" ]; then
	mkdir -p "$SRC"
	build_seekdec || skip "cannot fetch or build zstd's seekable reference decompressor (see $SRC/apt.log)"
fi

synthetic_image "$WORK"
python3 - "$WORK" "$SEEKDEC" <<'PY' || fail "reference decompressor disagrees"
import json, random, subprocess, sys
w, seekdec = sys.argv[1], sys.argv[2]
idx = json.load(open(w + "/out/index.json"))
m = json.load(open(w + "/out/blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
rng = random.Random(7)
n = 0
for i, l in enumerate(m["layers"]):
    tar = open("%s/layers/l%d.tar" % (w, i + 1), "rb").read()
    blob = w + "/out/blobs/sha256/" + l["digest"][7:]
    ranges = [(0, len(tar)), (0, 1), (len(tar) - 1, len(tar))]
    for _ in range(40):
        a = rng.randrange(len(tar))
        ranges.append((a, min(len(tar), a + rng.randrange(1, 3 << 20))))
    for a, b in ranges:
        out = subprocess.run([seekdec, blob, str(a), str(b)], check=True,
                             stdout=subprocess.PIPE).stdout
        if out != tar[a:b]:
            sys.exit("layer %d range %d-%d: %d bytes differ" % (i, a, b, len(out)))
        n += 1
print("seekable_reference: %d ranges match" % n)
PY
say "ok"
