#!/bin/bash
# Bad bytes are never served: a chunk corrupted in its blob fails with
# EIO while the rest of the image reads fine, `index verify` names the
# chunk, and a blob whose index does not match its digest, or that lost
# its tail, is refused at mount with a clear error.
source "$(dirname "$0")/lib.sh"
need_fuse
need_cmd zstd python3

synthetic_image "$WORK"
blob=$(python3 - "$WORK/out" <<'PY'
import json, sys
d = sys.argv[1]
idx = json.load(open(d + "/index.json"))
m = json.load(open(d + "/blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
print(d + "/blobs/sha256/" + m["layers"][0]["digest"][7:])
PY
)
# The chunk holding the start of usr/lib/libbig.so.
read -r off len < <("$IMGTOOL" index show "$blob" 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    if e["path"] == "usr/lib/libbig.so":
        print(e["chunks"][0], e["chunks"][1])
')
chunk_off=$(python3 - "$blob" "$off" <<'PY'
import struct, sys
blob, first = sys.argv[1], int(sys.argv[2])
data = open(blob, "rb").read()
n = struct.unpack("<I", data[-9:-5])[0]
st = len(data) - 9 - 8 * n
pos = 0
for i in range(first):
    pos += struct.unpack("<I", data[st + 8 * i:st + 8 * i + 4])[0]
print(pos + 100)
PY
)
cp "$blob" "$WORK/good-blob"
printf '\xff\xfe\xfd\xfc' | dd of="$blob" bs=1 seek="$chunk_off" conv=notrunc status=none

say "index verify names the bad chunk"
command_refused "chunk $off " "$IMGTOOL" index verify "oci:$WORK/out"

say "the corrupt chunk reads as EIO, the rest reads fine"
mount_fg "oci:$WORK/out" "$WORK/mnt" -o "cache=$WORK/cache"
if cat "$WORK/mnt/usr/lib/libbig.so" >/dev/null 2>"$WORK/cat.err"; then
	fail "corrupt chunk was served"
fi
grep -q "Input/output error" "$WORK/cat.err" || fail "not EIO: $(cat "$WORK/cat.err")"
grep -qx localhost "$WORK/mnt/etc/hostname" || fail "other files unreadable"
cmp -s "$WORK/mnt/usr/bin/su" <(tar -xOf "$WORK/layers/l1.tar" usr/bin/su) ||
	fail "other file content wrong"
[ "$(stat_of "$WORK/mnt" read_errors)" -ge 1 ] || fail "read error not counted"
unmount_fg "$WORK/mnt"
grep -q "err.*chunk" "$WORK/daemon.log" || fail "daemon did not log the failed chunk"
cp "$WORK/good-blob" "$blob"

say "a frame that decompresses past the chunk's size is refused"
# The chunk's frame, same length, rewritten as a bomb: its header declares
# the index's size but its blocks repeat bytes far beyond it.
python3 - "$blob" "$off" <<'PY'
import struct, sys
blob, first = sys.argv[1], int(sys.argv[2])
data = bytearray(open(blob, "rb").read())
n = struct.unpack("<I", data[-9:-5])[0]
st = len(data) - 9 - 8 * n
ent = lambda i: struct.unpack("<II", data[st + 8 * i:st + 8 * i + 8])
pos = sum(ent(i)[0] for i in range(first))
blen, tlen = ent(first)
def block(kind, size, payload, last=0):
    return struct.pack("<I", size << 3 | kind << 1 | last)[:3] + payload
rle = min(tlen, 1 << 17)
tail = b"".join(block(1, rle, b"A", i == tlen // rle + 1)
                for i in range(tlen // rle + 2))
frame = b"\x28\xb5\x2f\xfd\xe0" + struct.pack("<Q", tlen)
pad = blen - len(frame) - len(tail)
while pad > 0:
    k = min(pad - 3, 1 << 17)
    frame += block(0, k, bytes(k))
    pad -= 3 + k
assert pad == 0, "frame too small for the bomb"
frame += tail
data[pos:pos + blen] = frame
open(blob, "wb").write(data)
PY
command_refused "chunk $off " "$IMGTOOL" index verify "oci:$WORK/out"
mount_fg "oci:$WORK/out" "$WORK/mnt" -o "cache=$WORK/cache-bomb"
if cat "$WORK/mnt/usr/lib/libbig.so" >/dev/null 2>"$WORK/cat.err"; then
	fail "bomb chunk was served"
fi
grep -q "Input/output error" "$WORK/cat.err" || fail "not EIO: $(cat "$WORK/cat.err")"
cmp -s "$WORK/mnt/usr/bin/su" <(tar -xOf "$WORK/layers/l1.tar" usr/bin/su) ||
	fail "other file content wrong"
unmount_fg "$WORK/mnt"
grep -q "err.*chunk $off .*Destination buffer is too small" "$WORK/daemon.log" ||
	fail "daemon did not log the refused frame: $(grep err "$WORK/daemon.log")"
cp "$WORK/good-blob" "$blob"

say "an index that does not match its digest is refused"
python3 - "$blob" <<'PY'
import struct, sys
blob = sys.argv[1]
data = bytearray(open(blob, "rb").read())
n = struct.unpack("<I", data[-9:-5])[0]
loc = len(data) - (8 + 8 * n + 9) - 72
off = struct.unpack("<Q", data[loc + 24:loc + 32])[0]
data[off + 200] ^= 0x55
open(blob, "wb").write(data)
PY
mkdir -p "$WORK/mnt3"
if "$IMGTOOL" mount -f "oci:$WORK/out" "$WORK/mnt3" 2>"$WORK/m.err"; then
	fail "mounted an image with a corrupt index"
fi
grep -q "does not match its digest" "$WORK/m.err" || fail "unclear: $(cat "$WORK/m.err")"

say "a blob that lost its tail is refused"
head -c 100000 "$WORK/good-blob" >"$WORK/short-blob"
if "$IMGTOOL" index show "$WORK/short-blob" >/dev/null 2>"$WORK/s.err"; then
	fail "read an index from a truncated blob"
fi
grep -q "not a seekable layer" "$WORK/s.err" || fail "unclear: $(cat "$WORK/s.err")"
say "ok"
