#!/bin/bash
# The builder keeps every layer byte for byte and writes an image that
# stock clients read: zstd -d gives back each tar (so DiffIDs hold),
# skopeo accepts it, and umoci unpacks the same tree as from the source.
source "$(dirname "$0")/lib.sh"
need_cmd zstd skopeo umoci python3

synthetic_image "$WORK"
"$IMGTOOL" index verify "oci:$WORK/out" >/dev/null || fail "index verify failed"

say "zstd -d of each blob equals its input tar"
mapfile -t blobs < <(python3 - "$WORK/out" <<'PY'
import json, sys
d = sys.argv[1]
idx = json.load(open(d + "/index.json"))
m = json.load(open(d + "/blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
for l in m["layers"]:
    assert l["mediaType"].endswith("tar+zstd"), l
    for k in ("org.imgfs.index.offset", "org.imgfs.index.length",
              "org.imgfs.index.digest"):
        assert k in l["annotations"], k
    print(l["digest"][7:])
PY
)
i=1
for b in "${blobs[@]}"; do
	got=$(zstd -dc "$WORK/out/blobs/sha256/$b" | sha256sum | cut -d' ' -f1)
	want=$(sha256sum < "$WORK/layers/l$i.tar" | cut -d' ' -f1)
	[ "$got" = "$want" ] || fail "layer $i: zstd -d gives $got, tar is $want"
	i=$((i + 1))
done

say "skopeo inspect"
skopeo inspect "oci:$WORK/out:latest" >/dev/null || fail "skopeo rejects output"

say "umoci unpack of the output equals umoci unpack of the input"
umoci_unpack "$WORK/oci" "$WORK/want"
umoci_unpack "$WORK/out" "$WORK/got"
python3 "$TESTS/treecmp.py" --random-reads 100 "$WORK/want" "$WORK/got" ||
	fail "trees differ"

say "docker-archive source gives the same layers"
# skopeo writes docker-archive layers uncompressed but cannot take zstd
# ones there, so it goes through gzip first.
skopeo copy -q --dest-compress --dest-compress-format gzip \
	"oci:$WORK/oci:latest" "oci:$WORK/gzsrc:latest"
skopeo copy -q "oci:$WORK/gzsrc:latest" "docker-archive:$WORK/img.tar:img:v1"
"$IMGTOOL" build -q "docker-archive:$WORK/img.tar" "oci:$WORK/out2"
python3 - "$WORK/out" "$WORK/out2" <<'PY' || fail "docker-archive build differs"
import json, sys
def layers(d, tag):
    idx = json.load(open(d + "/index.json"))
    for m in idx["manifests"]:
        if m["annotations"]["org.opencontainers.image.ref.name"] == tag:
            man = json.load(open(d + "/blobs/sha256/" + m["digest"][7:]))
            return [l["digest"] for l in man["layers"]]
a, b = layers(sys.argv[1], "latest"), layers(sys.argv[2], "v1")
assert a == b, (a, b)
PY

say "a layer that decompresses past -m is refused, others build"
"$IMGTOOL" build -q -m 16 "oci:$WORK/oci:latest" "oci:$WORK/capped" ||
	fail "-m 16 refused layers of at most 8 MiB"
# 64 MiB of zeros: about 2 KiB of zstd.
head -c $((64 << 20)) /dev/zero | zstd -q -19 >"$WORK/bomb.tar.zst"
python3 "$TESTS/mkoci.py" "$WORK/bomb-oci" "$WORK/bomb.tar.zst" >/dev/null
command_refused "decompresses to more than 16777216 bytes" \
	"$IMGTOOL" build -q -m 16 "oci:$WORK/bomb-oci" "oci:$WORK/bomb"
[ ! -e "$WORK/bomb" ] || fail "the failed build left $WORK/bomb behind"

say "a plain tar over -m is refused without being read"
mkdir -p "$WORK/big"
head -c $((17 << 20)) /dev/zero >"$WORK/big/zeros"
tar -C "$WORK/big" -cf "$WORK/big.tar" zeros
python3 "$TESTS/mkoci.py" "$WORK/big-oci" "$WORK/big.tar" >/dev/null
command_refused "holds more than 16777216 bytes" \
	"$IMGTOOL" build -q -m 16 "oci:$WORK/big-oci" "oci:$WORK/big-out"
"$IMGTOOL" build -q "oci:$WORK/big-oci" "oci:$WORK/big-out" ||
	fail "the 17 MiB plain layer did not build without -m"

say "index verify: a blob that does not hash to its name, layers out of order"
cp -a "$WORK/out" "$WORK/flipped"
python3 - "$WORK/flipped" <<'PY'
import json, sys
d = sys.argv[1]
idx = json.load(open(d + "/index.json"))
m = json.load(open(d + "/blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
p = d + "/blobs/sha256/" + m["layers"][0]["digest"][7:]
# A byte of the last seek-table entry (before the 9-byte footer): no
# reader of ours looks there, so only the blob's digest tells.
f = open(p, "r+b")
f.seek(-11, 2)
c = f.read(1)
f.seek(-11, 2)
f.write(bytes([c[0] ^ 1]))
PY
command_refused "not to its name" "$IMGTOOL" index verify "oci:$WORK/flipped"
cp -a "$WORK/out" "$WORK/swapped"
python3 - "$WORK/swapped" <<'PY'
import hashlib, json, sys
d = sys.argv[1]
idx = json.load(open(d + "/index.json"))
m = json.load(open(d + "/blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
m["layers"].reverse()
data = json.dumps(m).encode()
dg = hashlib.sha256(data).hexdigest()
open(d + "/blobs/sha256/" + dg, "wb").write(data)
idx["manifests"][0].update(digest="sha256:" + dg, size=len(data))
json.dump(idx, open(d + "/index.json", "w"))
PY
command_refused "layers out of order" "$IMGTOOL" index verify "oci:$WORK/swapped"

say "a layer whose DiffID does not match the config is refused"
python3 - "$WORK/oci" <<'PY'
import json, sys, hashlib, os
d = sys.argv[1]
idx = json.load(open(d + "/index.json"))
mp = d + "/blobs/sha256/" + idx["manifests"][0]["digest"][7:]
m = json.load(open(mp))
cp = d + "/blobs/sha256/" + m["config"]["digest"][7:]
c = json.load(open(cp))
c["rootfs"]["diff_ids"][0] = "sha256:" + "0" * 64
data = json.dumps(c).encode()
dg = hashlib.sha256(data).hexdigest()
open(d + "/blobs/sha256/" + dg, "wb").write(data)
m["config"] = {"mediaType": m["config"]["mediaType"], "digest": "sha256:" + dg, "size": len(data)}
data = json.dumps(m).encode()
dg = hashlib.sha256(data).hexdigest()
open(d + "/blobs/sha256/" + dg, "wb").write(data)
idx["manifests"][0]["digest"] = "sha256:" + dg
idx["manifests"][0]["size"] = len(data)
json.dump(idx, open(d + "/index.json", "w"))
PY
command_refused "config says" "$IMGTOOL" build -q "oci:$WORK/oci" "oci:$WORK/bad"
say "ok"
