#!/usr/bin/env python3
"""corpus_docs.py - seed inputs of the fuzz harnesses from a built layout.

usage: corpus_docs.py LAYOUT OUT NAME   (index, blob tail and image seeds)
       corpus_docs.py --remote OUT_DIR  (HTTP answers for fuzz_remote)
       corpus_docs.py --tar TAR OUT     (a tar without its zero padding)

The input formats are the ones the harnesses describe at their top:
fuzz_image takes a flag byte and NUL-separated documents, fuzz_remote a
flag byte, offset and length, then [kind][n][bytes] records.
"""
import base64
import json
import os
import struct
import sys

TAIL = 2048
INDEX_MAX = 48 << 10


def blob(d, digest):
    return open(os.path.join(d, "blobs", "sha256", digest[7:]), "rb").read()


def layout(d, out, name):
    idx_raw = open(os.path.join(d, "index.json"), "rb").read()
    idx = json.loads(idx_raw)
    man_raw = blob(d, idx["manifests"][0]["digest"])
    man = json.loads(man_raw)
    cfg_raw = blob(d, man["config"]["digest"])
    for i, l in enumerate(man["layers"]):
        b = blob(d, l["digest"])
        a = l["annotations"]
        off, n = int(a["org.imgfs.index.offset"]), int(a["org.imgfs.index.length"])
        if n <= INDEX_MAX:
            open("%s/index/%s-%d.idx" % (out, name, i), "wb").write(b[off:off + n])
        # The tail as the harness reads it: its first byte stretches the
        # blob, so a zero there keeps the blob the size of the tail.
        t = b[-TAIL:]
        open("%s/index/%s-%d.tail" % (out, name, i), "wb").write(b"\0" + t[1:]
            if len(b) <= TAIL else t)
    img = out + "/image/" + name
    # layout index.json, tagged and not; then a registry's answer.
    open(img + "-layout", "wb").write(b"\x01" + idx_raw + b"\0" + man_raw + b"\0" + cfg_raw)
    open(img + "-tag", "wb").write(b"\x03" + idx_raw + b"\0" + man_raw + b"\0" + cfg_raw)
    open(img + "-registry", "wb").write(b"\x00" + man_raw + b"\0" + cfg_raw)


def profiles(out):
    recs = [(0, 5), (1, 0), (0, 1)]
    raw = b"IMGFSPRF" + struct.pack("<II", 1, len(recs))
    raw += b"".join(struct.pack("<II", l, c) for l, c in recs)
    text = base64.b64encode(raw)
    open(out + "/image/profile", "wb").write(bytes([0x04 | 2 << 4]) + text)
    cfg = {"config": {"Labels": {"org.imgfs.profile.v1": text.decode()}},
           "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64] * 2}}
    lay = {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
           "digest": "sha256:" + "2" * 64, "size": 100}
    man = {"schemaVersion": 2, "config": {"digest": "sha256:" + "3" * 64,
           "size": 10}, "layers": [lay, lay]}
    ix = {"manifests": [{"digest": "sha256:" + "4" * 64,
                         "platform": {"os": "linux", "architecture": "arm64"}},
                        {"digest": "sha256:" + "5" * 64}]}
    open(out + "/image/profile-config", "wb").write(
        b"\x00" + json.dumps(ix).encode() + b"\0" + json.dumps(man).encode() +
        b"\0" + json.dumps(cfg).encode())


def rec(kind, data):
    out = b""
    while True:
        out += bytes([kind, min(len(data), 255)]) + data[:255]
        data = data[255:]
        if not data:
            return out


def hdr(line):
    return rec(0, line.encode() + b"\r\n")


def remote(d):
    os.makedirs(d, exist_ok=True)
    body = bytes(range(256)) * 4
    cases = {
        # 206 with the asked range, in two pieces.
        "range-206": (1, 100, 64, [hdr("HTTP/1.1 206 Partial Content"),
            hdr("Content-Range: bytes 100-163/1024"), hdr(""),
            rec(1, body[100:130]), rec(1, body[130:164])]),
        # Range ignored: the whole blob, cut.
        "range-200": (1, 100, 64, [hdr("HTTP/1.1 200 OK"), hdr(""),
            rec(1, body[:255]), rec(1, body[255:510])]),
        # A redirect, then the answer.
        "redirect": (1, 0, 16, [hdr("HTTP/1.1 307 Temporary Redirect"),
            hdr("Location: http://other/blob"), hdr(""), rec(1, b"moved"),
            hdr("HTTP/1.1 206 Partial Content"),
            hdr("Content-Range: bytes 0-15/1024"), hdr(""), rec(1, body[:16])]),
        # Cut short, then resumed from where it stopped.
        "resume": (1, 10, 40, [hdr("HTTP/1.1 206 Partial Content"),
            hdr("Content-Range: bytes 10-49/1024"), hdr(""),
            rec(1, body[10:30]), bytes([0xff, 0]),
            hdr("HTTP/1.1 206 Partial Content"),
            hdr("Content-Range: bytes 30-49/1024"), hdr(""),
            rec(1, body[30:50])]),
        # Wrong range: refused.
        "wrong-range": (1, 10, 40, [hdr("HTTP/1.1 206 Partial Content"),
            hdr("Content-Range: bytes 0-39/1024"), hdr(""), rec(1, body[:40])]),
        # Throttled, then authenticated, then served.
        "retry-auth": (1, 0, 8, [hdr("HTTP/1.1 429 Too Many Requests"),
            hdr("Retry-After: 1"), hdr(""), rec(1, b"slow down"),
            bytes([0xff, 0]), hdr("HTTP/1.1 401 Unauthorized"),
            hdr('WWW-Authenticate: Bearer realm="http://t/token",'
                'service="reg",scope="repository:a:pull"'), hdr(""),
            bytes([0xff, 0]), hdr("HTTP/1.1 206 Partial Content"),
            hdr("Content-Range: bytes 0-7/8"), hdr(""), rec(1, body[:8])]),
        # A document, and one over its cap.
        "doc": (0, 0, 4096, [hdr("HTTP/1.1 200 OK"),
            hdr("Content-Type: application/json"), hdr(""),
            rec(1, b'{"schemaVersion": 2}')]),
        "doc-too-big": (0, 0, 8, [hdr("HTTP/2 200"), hdr(""),
            rec(1, b'{"schemaVersion": 2}')]),
        "not-found": (0, 0, 4096, [hdr("HTTP/1.1 404 Not Found"), hdr(""),
            rec(1, b"blob unknown")]),
    }
    for name, (flags, off, ln, recs) in cases.items():
        data = bytes([flags]) + struct.pack("<HH", off, ln) + b"".join(recs)
        open(os.path.join(d, name), "wb").write(data)


def trim_tar(src, dst):
    """Drops the zero blocks that pad a tar to its record size, keeping
    the two that end the archive."""
    data = open(src, "rb").read()
    end = len(data)
    while end >= 512 and data[end - 512:end] == bytes(512):
        end -= 512
    open(dst, "wb").write(data[:end + 1024])


def main():
    if sys.argv[1] == "--tar":
        trim_tar(sys.argv[2], sys.argv[3])
        return
    if sys.argv[1] == "--remote":
        remote(sys.argv[2])
        return
    layout(sys.argv[1], sys.argv[2], sys.argv[3])
    if sys.argv[3] == "syn":
        profiles(sys.argv[2])


if __name__ == "__main__":
    main()
